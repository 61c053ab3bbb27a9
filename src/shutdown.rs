//! Signals and the events the main thread acts on. SIGINT/SIGTERM ask for a
//! graceful stop; a second one exits at once with status 130. SIGHUP asks for
//! the targets file to be read again.

use crate::targets::{Target, TargetsError};
use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What the main thread should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// SIGINT or SIGTERM (the number).
    Signal(i32),
    /// SIGHUP: read the targets file again.
    Reload,
    /// The targets file was read again: the new list, or every bad line.
    Reloaded(Result<Vec<Target>, TargetsError>),
    /// Stdout's reader went away.
    OutputClosed,
    /// A worker thread ended; `panicked` if it died of a panic.
    WorkerExited { id: usize, panicked: bool },
    /// The scheduler thread ended.
    SchedulerExited { panicked: bool },
    /// The sink cannot go on (e.g. Kafka rejected our credentials).
    SinkFailed(String),
    /// A thread panicked outside a probe (a bug): the sentence to log.
    ThreadPanicked(String),
}

/// A repeat signal sooner than this after the first is the same request.
const DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// Starts the signal thread: the first SIGINT/SIGTERM becomes an `Event`,
/// the second exits the process immediately with 130; SIGHUP becomes `Reload`.
pub fn watch_signals(events: Sender<Event>) -> std::io::Result<()> {
    // A file size limit (ulimit -f) would otherwise kill the process with
    // SIGXFSZ mid-line; handled, the write fails with EFBIG and the stdout
    // sink ends the run cleanly like any other write error.
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )?;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first: Option<std::time::Instant> = None;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    log::info!("signal {sig} (SIGHUP): reloading the targets file");
                    let _ = events.send(Event::Reload);
                    continue;
                }
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
