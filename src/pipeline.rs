//! The running service: starts the scheduler thread and the workers, waits
//! for a signal or a failure (reloading the targets on SIGHUP meanwhile), then
//! stops everything in order within bounds (scheduler; in-flight probes up to
//! the stop timeout, then reported as interrupted; sink flush) and says how it went.

use crate::probe::{Prober, Progress};
use crate::queue::QueueReceiver;
use crate::report::Report;
use crate::schedule::{self, Control, Job, Overflow, Schedule};
use crate::shutdown::{Event, ExitGuard};
use crate::sink::Sink;
use crate::targets::{IpMode, Target, TargetsError};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// After a stop request, how long probes in flight may still run before
    /// they are reported as `interrupted` and left behind.
    pub stop_timeout: Duration,
    /// Warn (once a day per target) of certificates ending within this many days; 0 = never.
    pub cert_warn_days: u32,
}

/// Reads the targets again (SIGHUP). Runs on a thread of its own, so a file
/// that blocks (a FIFO without a writer) never stops the service from stopping.
pub type Loader = Arc<dyn Fn() -> Result<Vec<Target>, TargetsError> + Send + Sync>;

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by a signal or a closed stdout: exit 0.
    Stopped,
    /// A thread died or the sink failed: exit non-zero.
    Failed(String),
}

struct Shared {
    sink: Arc<dyn Sink>,
    clock: Clock,
    cert_warn_days: u32,
    /// When each target's certificate was last warned about (POSIX seconds).
    cert_warned: Mutex<std::collections::HashMap<String, f64>>,
}

impl Shared {
    /// Logs a certificate near or past its end, at most once a day per target.
    fn check_certificate(&self, report: &Report) {
        let Some(not_after) = report.cert_not_after else {
            return;
        };
        let now = report.timestamp;
        let Some(warning) = crate::expect::expiry_warning(not_after, now, self.cert_warn_days)
        else {
            return;
        };
        let mut warned = self.cert_warned.lock().unwrap_or_else(|p| p.into_inner());
        let last = warned.get(&report.url).copied();
        if last.is_none_or(|at| now - at >= 86_400.0) {
            warned.insert(report.url.clone(), now);
            log::warn!("{}: {warning}", report.url);
        }
    }
}

impl Overflow for Shared {
    fn queue_full(&self, job: Job) {
        let url = job.target.url.shown();
        log::debug!("{url}: job queue full, probe skipped");
        self.sink.emit(skipped(
            &job,
            &self.clock,
            "job queue full (all workers busy)",
        ));
    }
}

/// The report for a job never probed, named as its target is.
fn skipped(job: &Job, clock: &Clock, why: &str) -> Report {
    let mut report = Report::skipped(
        job.target.url.shown(),
        clock.wall(job.deadline),
        wall_now(),
        why,
    );
    report.name.clone_from(&job.target.spec.name);
    report
}

/// The record of a probe that panicked (a bug): logged once with the
/// target's name; the message and location only, with the target's
/// credentials and header values hidden in case the message quotes them.
/// Its timings are those the probe reached, as for an interrupted one.
fn internal(job: &Job, progress: &Progress, caught: &crate::panics::Caught) -> Report {
    let url = &job.target.url;
    let mut text = crate::redact::secrets_of(url.request(), &caught.to_string()).into_owned();
    for (_, value) in &job.target.spec.headers {
        if !value.is_empty() {
            text = text.replace(value.as_str(), "***");
        }
    }
    log::error!(
        "{}: the probe failed inside the prober (a bug, reported as error_kind internal; probing goes on): {text}",
        url.shown()
    );
    let mut report = progress.interrupted(url.shown(), &format!("internal error: {text}"));
    report.error_kind = Some(crate::report::ErrorKind::Internal);
    report
}

/// What a worker is doing, visible to the main thread at shutdown.
#[derive(Default)]
struct Slot {
    running: Option<Running>,
    /// Set by the main thread when the stop bound ran out: from then on the
    /// worker emits nothing (its probe was already reported as interrupted).
    abandoned: bool,
}

struct Running {
    job: Job,
    progress: Progress,
}

type Slots = Arc<[Mutex<Slot>]>;

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs until a signal, a closed stdout or a failure. `events` must already
/// receive signals (see `shutdown::watch_signals`); the sink's callbacks may
/// send on `events_tx` too. SIGHUP reloads the targets with `load`.
pub fn run(
    targets: Vec<Target>,
    prober: Prober,
    sink: Arc<dyn Sink>,
    settings: &Settings,
    load: Loader,
    events_tx: &Sender<Event>,
    events: &Receiver<Event>,
) -> std::io::Result<Outcome> {
    let clock = Clock::now();
    let count = targets.len();
    let schedule = Schedule::new(targets, clock.start, settings.splay);
    let shared = Arc::new(Shared {
        sink,
        clock,
        cert_warn_days: settings.cert_warn_days,
        cert_warned: Mutex::default(),
    });
    let prober = Arc::new(prober);
    let stopping = Arc::new(AtomicBool::new(false));
    let slots: Slots = (0..settings.workers)
        .map(|_| Mutex::new(Slot::default()))
        .collect();
    let (jobs_tx, jobs_rx) = crate::queue::bounded::<Job>(settings.queue);
    // std's channel, not crossbeam's: its receiver parks at once, where
    // crossbeam's spins and yields (8 sched_yield per timer wake-up, issue 12).
    let (control_tx, control_rx) = std::sync::mpsc::channel::<Control>();

    let scheduler = {
        let shared = shared.clone();
        let events = events_tx.clone();
        let splay = settings.splay;
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let _guard = ExitGuard::new(events, |panicked| Event::SchedulerExited { panicked });
                schedule::run_loop(schedule, &jobs_tx, &control_rx, &*shared, splay)
            })?
    };

    let mut workers: Vec<JoinHandle<()>> = Vec::with_capacity(settings.workers);
    for id in 0..settings.workers {
        let (shared, prober, stopping, jobs, slots) = (
            shared.clone(),
            prober.clone(),
            stopping.clone(),
            jobs_rx.clone(),
            slots.clone(),
        );
        let events = events_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                let _guard =
                    ExitGuard::new(events, move |panicked| Event::WorkerExited { id, panicked });
                work(&jobs, &prober, &shared, &stopping, &slots[id]);
            });
        match handle {
            Ok(h) => workers.push(h),
            Err(e) => {
                drop(control_tx);
                return Err(e);
            }
        }
    }
    log::info!(
        "probing {count} target(s) with {} worker(s), queue {}",
        settings.workers,
        settings.queue
    );

    let mut outcome = wait(events, events_tx, &control_tx, &load);
    stopping.store(true, Ordering::SeqCst);
    // Closing the control channel wakes the scheduler at once; it then drops
    // the job sender, so workers finish what they hold and see the channel close.
    drop(control_tx);
    let counts = scheduler.join().unwrap_or_default();
    log::info!(
        "scheduler stopped: {} dispatched, {} skipped (queue full), {} missed after stalls",
        counts.dispatched,
        counts.skipped,
        counts.missed
    );
    let deadline = Instant::now() + settings.stop_timeout;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(STOP_POLL);
    }
    let mut interrupted = 0;
    for (id, (w, slot)) in workers.into_iter().zip(slots.iter()).enumerate() {
        let mut slot = lock(slot);
        slot.abandoned = true;
        if let Some(running) = slot.running.take() {
            interrupted += 1;
            let why = format!(
                "stopped at shutdown (--stop-timeout {:.1} s)",
                settings.stop_timeout.as_secs_f64()
            );
            let mut report = running
                .progress
                .interrupted(running.job.target.url.shown(), &why);
            report.scheduled = shared.clock.wall(running.job.deadline);
            report.name.clone_from(&running.job.target.spec.name);
            report.lateness = (report.timestamp - report.scheduled).max(0.0);
            shared.sink.emit(report);
        }
        drop(slot);
        if w.is_finished() && w.join().is_err() && outcome == Outcome::Stopped {
            outcome = Outcome::Failed(format!("worker {id} panicked while stopping"));
        }
    }
    // Jobs the abandoned workers never took: skipped, like any job queued at a stop.
    for job in jobs_rx.try_iter() {
        shared
            .sink
            .emit(skipped(&job, &shared.clock, "shutting down"));
    }
    drop(jobs_rx);
    if interrupted > 0 {
        log::warn!(
            "{interrupted} probe(s) still running after --stop-timeout {:.1} s: reported as interrupted",
            settings.stop_timeout.as_secs_f64()
        );
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

/// How often the main thread looks whether the workers have finished while stopping.
const STOP_POLL: Duration = Duration::from_millis(10);

/// Waits for the first event that ends the run, reloading on SIGHUP meanwhile.
fn wait(
    events: &Receiver<Event>,
    events_tx: &Sender<Event>,
    control: &std::sync::mpsc::Sender<Control>,
    load: &Loader,
) -> Outcome {
    let mut reloading = false;
    loop {
        let Ok(event) = events.recv() else {
            return Outcome::Failed("event channel closed".into());
        };
        let failed = |msg: String| {
            log::error!("{msg}");
            Outcome::Failed(msg)
        };
        match event {
            Event::Signal(_) | Event::OutputClosed => return Outcome::Stopped,
            Event::Reload if reloading => {
                log::warn!("reload: already reading the targets file; this request is ignored");
            }
            Event::Reload => {
                let (load, tx) = (load.clone(), events_tx.clone());
                let spawned = std::thread::Builder::new()
                    .name("reload".into())
                    .spawn(move || {
                        let _ = tx.send(Event::Reloaded(load()));
                    });
                match spawned {
                    Ok(_) => reloading = true,
                    Err(e) => log::error!("reload: cannot start a thread to read the file: {e}"),
                }
            }
            Event::Reloaded(result) => {
                reloading = false;
                match result {
                    Ok(targets) => {
                        let n = targets.len();
                        if control.send(Control::Reload(targets)).is_err() {
                            return failed("scheduler gone during a reload".into());
                        }
                        log::info!("reload: {n} target(s) read");
                    }
                    Err(e) => {
                        for problem in &e.problems {
                            log::error!("reload: {problem}");
                        }
                        log::error!("reload failed: still probing the previous targets");
                    }
                }
            }
            Event::WorkerExited { id, panicked } => {
                let how = if panicked { "panicked" } else { "exited" };
                return failed(format!("worker {id} {how} unexpectedly; shutting down"));
            }
            Event::SchedulerExited { panicked } => {
                let how = if panicked { "panicked" } else { "exited" };
                return failed(format!("scheduler {how} unexpectedly; shutting down"));
            }
            Event::SinkFailed(e) => return failed(e),
            // Logged by the panic hook already.
            Event::ThreadPanicked(e) => return Outcome::Failed(format!("{e}; shutting down")),
        }
    }
}

/// A worker: probe each job, stamp it with its schedule, hand it to the sink.
/// Once stopping, queued jobs are reported as skipped rather than probed, so
/// shutdown waits only for probes already in flight. Every emit happens under
/// the worker's slot lock, so once the main thread has abandoned the slot
/// nothing more comes from this worker.
fn work(
    jobs: &QueueReceiver<Job>,
    prober: &Prober,
    shared: &Shared,
    stopping: &AtomicBool,
    slot: &Mutex<Slot>,
) {
    while let Some(job) = jobs.recv() {
        let url = &job.target.url;
        let scheduled = shared.clock.wall(job.deadline);
        if stopping.load(Ordering::SeqCst) {
            let s = lock(slot);
            if s.abandoned {
                return;
            }
            shared
                .sink
                .emit(skipped(&job, &shared.clock, "shutting down"));
            continue;
        }
        // ip=both: a dual-stack pair of records per slot, IPv4 then IPv6.
        let families: &[IpMode] = match job.target.spec.ip {
            IpMode::Both => &[IpMode::V4, IpMode::V6],
            IpMode::V4 => &[IpMode::V4],
            IpMode::V6 => &[IpMode::V6],
            IpMode::Any => &[IpMode::Any],
        };
        for &ip in families {
            let progress = Progress::default();
            {
                let mut s = lock(slot);
                if s.abandoned {
                    return;
                }
                s.running = Some(Running {
                    job: job.clone(),
                    progress: progress.clone(),
                });
            }
            let started = Instant::now();
            let report = crate::panics::catch(|| {
                let spec = &job.target.spec;
                let mut report = prober.probe_with(url.request(), spec, ip, &progress);
                url.shown().clone_into(&mut report.url);
                crate::expect::judge(&mut report, &spec.expect);
                shared.check_certificate(&report);
                report
            })
            .unwrap_or_else(|caught| internal(&job, &progress, &caught));
            let mut report = report;
            report.name.clone_from(&job.target.spec.name);
            report.scheduled = scheduled;
            report.lateness = started
                .saturating_duration_since(job.deadline)
                .as_secs_f64();
            let mut s = lock(slot);
            if s.abandoned {
                return;
            }
            s.running = None;
            shared.sink.emit(report);
        }
    }
}
