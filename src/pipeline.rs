//! The running service: starts the scheduler thread and the workers, waits
//! for a signal or a failure (reloading the targets on SIGHUP meanwhile), then
//! stops everything in order within bounds (scheduler; in-flight probes up to
//! the stop timeout, then reported as interrupted; sink flush) and says how it went.

use crate::probe::{Prober, Progress};
use crate::queue::QueueReceiver;
use crate::record::{Clock, Identity, Records};
use crate::schedule::{self, Control, Counts, Job, Overflow, Schedule};
use crate::shutdown::{Event, ExitGuard};
use crate::sink::Sink;
use crate::targets::{IpMode, Target, TargetsError};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Who probes, in every record.
    pub identity: Identity,
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

/// What the threads share: where records are made and where they go.
struct Shared {
    sink: Arc<dyn Sink>,
    records: Records,
}

impl Overflow for Shared {
    fn queue_full(&self, job: Job) {
        log::debug!("{}: job queue full, probe skipped", job.target.url.shown());
        let why = "job queue full (all workers busy)";
        self.sink
            .emit(self.records.skipped(&job, Instant::now(), why));
    }
}

/// What a worker is doing, visible to the main thread at shutdown.
#[derive(Default)]
struct Slot {
    running: Option<Running>,
    /// Set by the main thread when the stop bound ran out: from then on the
    /// worker takes and emits nothing (its probe was reported as interrupted).
    abandoned: bool,
}

struct Running {
    job: Job,
    started: Instant,
    progress: Progress,
}

type Slots = Arc<[Mutex<Slot>]>;

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The threads of a run, as started.
struct Threads {
    shared: Arc<Shared>,
    scheduler: JoinHandle<Counts>,
    workers: Vec<JoinHandle<()>>,
    slots: Slots,
    stopping: Arc<AtomicBool>,
    control: std::sync::mpsc::Sender<Control>,
    jobs: QueueReceiver<Job>,
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
    let count = targets.len();
    let threads = start(targets, prober, sink, settings, events_tx)?;
    log::info!(
        "probing {count} target(s) with {} worker(s), queue {}",
        settings.workers,
        settings.queue
    );
    let outcome = wait(events, events_tx, &threads.control, &load);
    Ok(stop(threads, outcome, settings.stop_timeout))
}

/// Starts the scheduler and the workers.
fn start(
    targets: Vec<Target>,
    prober: Prober,
    sink: Arc<dyn Sink>,
    settings: &Settings,
    events_tx: &Sender<Event>,
) -> std::io::Result<Threads> {
    let clock = Clock::now();
    let schedule = Schedule::new(targets, clock.start(), settings.splay);
    let records = Records::new(settings.identity.clone(), clock, settings.cert_warn_days);
    let shared = Arc::new(Shared { sink, records });
    let prober = Arc::new(prober);
    let stopping = Arc::new(AtomicBool::new(false));
    let slots: Slots = (0..settings.workers)
        .map(|_| Mutex::new(Slot::default()))
        .collect();
    let (jobs_tx, jobs) = crate::queue::bounded::<Job>(settings.queue);
    // std's channel, not crossbeam's: its receiver parks at once, where
    // crossbeam's spins and yields (8 sched_yield per timer wake-up, issue 12).
    let (control, control_rx) = std::sync::mpsc::channel::<Control>();
    let scheduler = {
        let (shared, events, splay) = (shared.clone(), events_tx.clone(), settings.splay);
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
            jobs.clone(),
            slots.clone(),
        );
        let events = events_tx.clone();
        // On an error `control` is dropped with the rest: the scheduler ends.
        workers.push(
            std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || {
                    let _guard = ExitGuard::new(events, move |panicked| Event::WorkerExited {
                        id,
                        panicked,
                    });
                    work(&jobs, &prober, &shared, &stopping, &slots[id]);
                })?,
        );
    }
    Ok(Threads {
        shared,
        scheduler,
        workers,
        slots,
        stopping,
        control,
        jobs,
    })
}

/// The stop sequence, once: scheduler, then workers up to `stop_timeout`
/// (those still probing are reported as interrupted and left behind), then
/// the jobs nobody took, then the sink's flush.
fn stop(threads: Threads, mut outcome: Outcome, stop_timeout: Duration) -> Outcome {
    let Threads {
        shared,
        scheduler,
        workers,
        slots,
        stopping,
        control,
        jobs,
    } = threads;
    stopping.store(true, Ordering::SeqCst);
    // Closing the control channel wakes the scheduler at once; it then drops
    // the job sender, so workers finish what they hold and see the queue close.
    drop(control);
    let counts = scheduler.join().unwrap_or_default();
    log::info!(
        "scheduler stopped: {} dispatched, {} skipped (queue full), {} missed after stalls",
        counts.dispatched,
        counts.skipped,
        counts.missed
    );
    let deadline = Instant::now() + stop_timeout;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(STOP_POLL);
    }
    let why = format!(
        "stopped at shutdown (--stop-timeout {:.1} s)",
        stop_timeout.as_secs_f64()
    );
    let mut interrupted = 0;
    for (id, (w, slot)) in workers.into_iter().zip(slots.iter()).enumerate() {
        // Under the slot lock a worker holds no job it has not reported.
        let mut slot = lock(slot);
        slot.abandoned = true;
        if let Some(r) = slot.running.take() {
            interrupted += 1;
            let record = shared
                .records
                .interrupted(&r.job, r.started, &r.progress, &why);
            shared.sink.emit(record);
        }
        drop(slot);
        if w.is_finished() && w.join().is_err() && outcome == Outcome::Stopped {
            outcome = Outcome::Failed(format!("worker {id} panicked while stopping"));
        }
    }
    // Jobs no worker took: skipped, like any job queued at a stop.
    for job in jobs.try_iter() {
        let record = shared
            .records
            .skipped(&job, Instant::now(), "shutting down");
        shared.sink.emit(record);
    }
    drop(jobs);
    if interrupted > 0 {
        log::warn!(
            "{interrupted} probe(s) still running after --stop-timeout {:.1} s: reported as interrupted",
            stop_timeout.as_secs_f64()
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
    outcome
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

/// A worker: probe each job and hand its record to the sink. Once stopping,
/// queued jobs are reported as skipped rather than probed, so shutdown waits
/// only for probes already in flight. A job is taken, and every record
/// emitted, under the worker's slot lock: once the main thread has abandoned
/// the slot, this worker holds no job it has not reported and emits nothing
/// more. (The queue is closed by then, so `recv` never waits long under it.)
fn work(
    jobs: &QueueReceiver<Job>,
    prober: &Prober,
    shared: &Shared,
    stopping: &AtomicBool,
    slot: &Mutex<Slot>,
) {
    loop {
        let mut s = lock(slot);
        if s.abandoned {
            return;
        }
        let Some(job) = jobs.recv() else { return };
        if stopping.load(Ordering::SeqCst) {
            let record = shared
                .records
                .skipped(&job, Instant::now(), "shutting down");
            shared.sink.emit(record);
            continue;
        }
        for ip in families(job.target.spec.ip) {
            let progress = Progress::default();
            let started = Instant::now();
            s.running = Some(Running {
                job: job.clone(),
                started,
                progress: progress.clone(),
            });
            drop(s);
            let url = job.target.url.request();
            let spec = &job.target.spec;
            let record = crate::panics::catch(|| {
                let report = prober.probe_with(url, spec, *ip, &progress);
                shared.records.probed(&job, started, report)
            })
            .unwrap_or_else(|caught| shared.records.internal(&job, started, &progress, &caught));
            s = lock(slot);
            if s.abandoned {
                return;
            }
            s.running = None;
            shared.sink.emit(record);
        }
    }
}

/// ip=both: a dual-stack pair of records per slot, IPv4 then IPv6; the
/// expansion is here, where jobs become probes, not inside the prober.
fn families(ip: IpMode) -> &'static [IpMode] {
    match ip {
        IpMode::Both => &[IpMode::V4, IpMode::V6],
        IpMode::V4 => &[IpMode::V4],
        IpMode::V6 => &[IpMode::V6],
        IpMode::Any => &[IpMode::Any],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    /// Keeps what it is given.
    #[derive(Default)]
    struct Keep(Mutex<Vec<Report>>);

    impl Sink for Keep {
        fn emit(&self, report: Report) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(report);
        }
        fn close(&self) -> Result<String, String> {
            Ok(String::new())
        }
    }

    fn setup(jobs: usize) -> (Arc<Keep>, Shared, QueueReceiver<Job>, Prober) {
        let keep = Arc::new(Keep::default());
        let identity = Identity {
            source: "t".into(),
            labels: Vec::new().into(),
        };
        let shared = Shared {
            sink: keep.clone(),
            records: Records::new(identity, Clock::now(), 0),
        };
        let targets = crate::targets::parse("t.csv", b"1, http://127.0.0.1:1/\n").expect("targets");
        let (tx, rx) = crate::queue::bounded::<Job>(jobs.max(1));
        for _ in 0..jobs {
            let job = Job {
                target: targets[0].clone(),
                deadline: Instant::now(),
            };
            assert!(tx.try_send(job).is_ok());
        }
        // The scheduler has gone, as at every stop: recv never waits.
        drop(tx);
        let prober = Prober::new(&crate::probe::ProbeConfig::default()).expect("prober");
        (keep, shared, rx, prober)
    }

    /// The race fixed: a worker whose slot was abandoned at the stop bound
    /// takes no job from the queue (it used to take one and drop it without
    /// a record); the main thread's drain reports every one as skipped.
    #[test]
    fn an_abandoned_worker_takes_no_job_so_none_is_lost() {
        let (keep, shared, jobs, prober) = setup(3);
        let slot = Mutex::new(Slot {
            running: None,
            abandoned: true,
        });
        work(&jobs, &prober, &shared, &AtomicBool::new(true), &slot);
        assert!(keep.0.lock().expect("lock").is_empty());
        assert_eq!(jobs.try_iter().count(), 3);
    }

    #[test]
    fn a_stopping_worker_reports_every_queued_job_as_skipped() {
        let (keep, shared, jobs, prober) = setup(3);
        let slot = Mutex::new(Slot::default());
        work(&jobs, &prober, &shared, &AtomicBool::new(true), &slot);
        let kept = keep.0.lock().expect("lock");
        assert_eq!(kept.len(), 3);
        for r in kept.iter() {
            assert_eq!(r.error_kind, Some(crate::report::ErrorKind::Skipped));
            assert_eq!(r.error.as_deref(), Some("shutting down"));
            assert_eq!(r.success, Some(false));
            assert!(r.id.ends_with(['0', '1', '2']), "{}", r.id);
            assert!(r.lateness >= 0.0 && r.scheduled > 0.0, "{r:?}");
        }
    }

    #[test]
    fn both_is_expanded_where_jobs_become_probes() {
        assert_eq!(families(IpMode::Both), [IpMode::V4, IpMode::V6]);
        assert_eq!(families(IpMode::Any), [IpMode::Any]);
    }
}
