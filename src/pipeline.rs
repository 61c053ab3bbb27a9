//! The running service: starts the scheduler thread and the workers, waits
//! for a signal or a failure, then stops everything in order (scheduler,
//! in-flight probes, sink flush) and says how it went.

use crate::probe::Prober;
use crate::report::Report;
use crate::schedule::{self, Job, Overflow, Schedule};
use crate::shutdown::{Event, ExitGuard};
use crate::sink::Sink;
use crate::targets::Target;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Maps the monotonic clock (which schedules) to POSIX seconds (which reports carry).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall: f64,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            start: Instant::now(),
            start_wall: wall_now(),
        }
    }

    /// POSIX seconds of a monotonic instant.
    pub fn wall(&self, at: Instant) -> f64 {
        if at >= self.start {
            self.start_wall + (at - self.start).as_secs_f64()
        } else {
            self.start_wall - (self.start - at).as_secs_f64()
        }
    }
}

/// POSIX seconds now.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Settings for one run.
pub struct Settings {
    pub workers: usize,
    pub queue: usize,
    pub splay: Duration,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by a signal or a closed stdout: exit 0.
    Stopped,
    /// A thread died or the sink failed: exit non-zero.
    Failed(String),
}

struct Shared {
    targets: Arc<[Target]>,
    sink: Arc<dyn Sink>,
    clock: Clock,
}

impl Overflow for Shared {
    fn queue_full(&self, job: Job) {
        let url = &self.targets[job.target].url;
        log::debug!("{url}: job queue full, probe skipped");
        self.sink.emit(Report::skipped(
            url,
            self.clock.wall(job.deadline),
            wall_now(),
            "job queue full (all workers busy)",
        ));
    }
}

/// Runs until a signal, a closed stdout or a failure. `events` must already
/// receive signals (see `shutdown::watch_signals`); the sink's callbacks may
/// send on `events_tx` too.
pub fn run(
    targets: Vec<Target>,
    prober: Prober,
    sink: Arc<dyn Sink>,
    settings: &Settings,
    events_tx: &Sender<Event>,
    events: &Receiver<Event>,
) -> std::io::Result<Outcome> {
    let clock = Clock::now();
    let intervals = targets.iter().map(|t| t.interval).collect();
    let schedule = Schedule::new(intervals, clock.start, settings.splay);
    let shared = Arc::new(Shared {
        targets: targets.into(),
        sink,
        clock,
    });
    let prober = Arc::new(prober);
    let stopping = Arc::new(AtomicBool::new(false));
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Job>(settings.queue);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);

    let scheduler = {
        let shared = shared.clone();
        let events = events_tx.clone();
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let _guard = ExitGuard::new(events, |panicked| Event::SchedulerExited { panicked });
                let describe = |i: usize| shared.targets[i].url.clone();
                schedule::run_loop(schedule, &jobs_tx, &stop_rx, &*shared, &describe)
            })?
    };

    let mut workers: Vec<JoinHandle<()>> = Vec::with_capacity(settings.workers);
    for id in 0..settings.workers {
        let (shared, prober, stopping, jobs) = (
            shared.clone(),
            prober.clone(),
            stopping.clone(),
            jobs_rx.clone(),
        );
        let events = events_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                let _guard =
                    ExitGuard::new(events, move |panicked| Event::WorkerExited { id, panicked });
                work(&jobs, &prober, &shared, &stopping);
            });
        match handle {
            Ok(h) => workers.push(h),
            Err(e) => {
                drop(stop_tx);
                return Err(e);
            }
        }
    }
    drop(jobs_rx);
    log::info!(
        "probing {} target(s) with {} worker(s), queue {}",
        shared.targets.len(),
        settings.workers,
        settings.queue
    );

    let outcome = wait(events);
    stopping.store(true, Ordering::SeqCst);
    // Closing the stop channel wakes the scheduler at once; it then drops the
    // job sender, so workers finish what they hold and see the channel close.
    drop(stop_tx);
    let counts = scheduler.join().unwrap_or_default();
    log::info!(
        "scheduler stopped: {} dispatched, {} skipped (queue full), {} missed after stalls",
        counts.dispatched,
        counts.skipped,
        counts.missed
    );
    let mut outcome = outcome;
    for (id, w) in workers.into_iter().enumerate() {
        if w.join().is_err() && outcome == Outcome::Stopped {
            outcome = Outcome::Failed(format!("worker {id} panicked while stopping"));
        }
    }
    match shared.sink.close() {
        Ok(summary) => log::info!("{summary}"),
        Err(e) => {
            log::error!("{e}");
            if outcome == Outcome::Stopped {
                outcome = Outcome::Failed(e);
            }
        }
    }
    Ok(outcome)
}

/// Waits for the first event that ends the run.
fn wait(events: &Receiver<Event>) -> Outcome {
    let Ok(event) = events.recv() else {
        return Outcome::Failed("event channel closed".into());
    };
    match event {
        Event::Signal(_) | Event::OutputClosed => Outcome::Stopped,
        Event::WorkerExited { id, panicked } => {
            let how = if panicked { "panicked" } else { "exited" };
            let msg = format!("worker {id} {how} unexpectedly; shutting down");
            log::error!("{msg}");
            Outcome::Failed(msg)
        }
        Event::SchedulerExited { panicked } => {
            let how = if panicked { "panicked" } else { "exited" };
            let msg = format!("scheduler {how} unexpectedly; shutting down");
            log::error!("{msg}");
            Outcome::Failed(msg)
        }
        Event::SinkFailed(e) => {
            log::error!("{e}");
            Outcome::Failed(e)
        }
    }
}

/// A worker: probe each job, stamp it with its schedule, hand it to the sink.
/// Once stopping, queued jobs are reported as skipped rather than probed, so
/// shutdown waits only for probes already in flight.
fn work(jobs: &Receiver<Job>, prober: &Prober, shared: &Shared, stopping: &AtomicBool) {
    for job in jobs.iter() {
        let url = &shared.targets[job.target].url;
        let scheduled = shared.clock.wall(job.deadline);
        if stopping.load(Ordering::SeqCst) {
            shared
                .sink
                .emit(Report::skipped(url, scheduled, wall_now(), "shutting down"));
            continue;
        }
        let started = Instant::now();
        let mut report = prober.probe(url);
        report.scheduled = scheduled;
        report.lateness = started
            .saturating_duration_since(job.deadline)
            .as_secs_f64();
        shared.sink.emit(report);
    }
}
