//! Signals and the events that end a run. SIGINT/SIGTERM ask for a graceful
//! stop; a second one exits at once with status 130.

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Why the main thread should stop waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// SIGINT or SIGTERM (the number).
    Signal(i32),
    /// Stdout's reader went away.
    OutputClosed,
    /// A worker thread ended; `panicked` if it died of a panic.
    WorkerExited { id: usize, panicked: bool },
    /// The scheduler thread ended.
    SchedulerExited { panicked: bool },
    /// The sink cannot go on (e.g. Kafka rejected our credentials).
    SinkFailed(String),
}

/// A repeat signal sooner than this after the first is the same request.
const DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// Starts the signal thread: the first SIGINT/SIGTERM becomes an `Event`,
/// the second exits the process immediately with 130.
pub fn watch_signals(events: Sender<Event>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first: Option<std::time::Instant> = None;
            for sig in signals.forever() {
                match first {
                    None => {
                        first = Some(std::time::Instant::now());
                        log::info!("signal {sig}: stopping (finishing in-flight probes; signal again to exit at once)");
                        let _ = events.send(Event::Signal(sig));
                    }
                    // `timeout`, `kill 0` and some supervisors deliver one stop
                    // request twice (to the process and to its group) within
                    // microseconds: that is not an operator insisting.
                    Some(at) if at.elapsed() < DUPLICATE_WINDOW => {}
                    Some(_) => {
                        log::warn!("second signal {sig}: exiting now");
                        std::process::exit(130);
                    }
                }
            }
        })?;
    Ok(())
}

/// Sends an exit event when dropped, so a thread's end (normal or by panic)
/// always reaches the main thread.
pub struct ExitGuard {
    events: Sender<Event>,
    make: Box<dyn Fn(bool) -> Event + Send>,
}

impl ExitGuard {
    pub fn new(events: Sender<Event>, make: impl Fn(bool) -> Event + Send + 'static) -> ExitGuard {
        ExitGuard {
            events,
            make: Box::new(make),
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = self.events.send((self.make)(std::thread::panicking()));
    }
}
