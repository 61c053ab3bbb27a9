//! Scheduler scale: `sched_scale CSV SECONDS [SPLAY_S] [QUEUE] [CONSUMERS]`.
//!
//! Loads the targets file the way the binary does (`targets::parse`, then
//! `Schedule::new`, then the targets moved into an `Arc<[Target]>` as
//! `pipeline::run` does), runs the real `schedule::run_loop` on its own thread
//! for SECONDS, with CONSUMERS threads standing in for workers that take each
//! job and drop it. Prints one `key=value` line:
//!
//! - `load_ms`: read + parse + Schedule::new + Arc, monotonic clock.
//! - `bytes_per_target`: (VmRSS after load − VmRSS before) / targets.
//! - `hwm_load_kib`: VmHWM right after load (includes the file bytes and the
//!   transient Vec→Arc copy); `maxrss_kib`: getrusage peak at the end.
//! - lateness: for every job a consumer receives, (receive time − the job's
//!   scheduled deadline), on the monotonic clock. The scheduler's own push
//!   time is not visible from outside `run_loop`, so this is an upper bound
//!   on (push time − deadline): it adds the channel hand-off and the
//!   consumer's wake-up.
//! - `sched_cpu_ns_per_dispatch`: the scheduler thread's CPU
//!   (CLOCK_THREAD_CPUTIME_ID, sleeps excluded, wake-ups included) divided by
//!   the jobs it dispatched.

mod common;

use latency_logger::schedule::{self, Control, Job, Overflow, Schedule};
use latency_logger::targets;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct CountSkips(AtomicU64);

impl Overflow for CountSkips {
    fn queue_full(&self, _job: Job) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> T {
    match args.get(i) {
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("argument {i} ({s}) is not valid")),
        None => default.expect("usage: sched_scale CSV SECONDS [SPLAY_S] [QUEUE] [CONSUMERS]"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let csv: String = arg(&args, 0, None);
    let seconds: f64 = arg(&args, 1, None);
    let splay: f64 = arg(&args, 2, Some(1.0));
    let queue: usize = arg(&args, 3, Some(100));
    let consumers: usize = arg(&args, 4, Some(2));

    let rss0 = common::status_kib("VmRSS");
    let t0 = Instant::now();
    let bytes = std::fs::read(&csv).expect("read targets CSV");
    let parsed = targets::parse(&csv, &bytes).expect("targets CSV is valid");
    drop(bytes);
    let start = Instant::now();
    let n = parsed.len();
    let sched = Schedule::new(parsed, start, Duration::from_secs_f64(splay));
    let load = t0.elapsed();
    let rss1 = common::status_kib("VmRSS");
    let hwm_load = common::status_kib("VmHWM");

    let (jobs_tx, jobs_rx) = latency_logger::queue::bounded::<Job>(queue);
    let (stop_tx, stop_rx) = std::sync::mpsc::sync_channel::<Control>(1);
    let skips = Arc::new(CountSkips(AtomicU64::new(0)));

    let workers: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = jobs_rx.clone();
            std::thread::spawn(move || {
                let mut late = Vec::with_capacity(1 << 16);
                while let Some(job) = rx.recv() {
                    let now = Instant::now();
                    late.push(now.saturating_duration_since(job.deadline).as_nanos() as u64);
                }
                late
            })
        })
        .collect();
    drop(jobs_rx);

    let scheduler = {
        let skips = skips.clone();
        let splay = Duration::from_secs_f64(splay);
        std::thread::spawn(move || {
            let c0 = common::thread_cpu();
            let counts = schedule::run_loop(sched, &jobs_tx, &stop_rx, &*skips, splay);
            (counts, common::thread_cpu() - c0)
        })
    };

    std::thread::sleep(Duration::from_secs_f64(seconds));
    drop(stop_tx);
    let (counts, sched_cpu) = scheduler.join().expect("scheduler thread");
    let mut late: Vec<u64> = Vec::new();
    for w in workers {
        late.extend(w.join().expect("consumer thread"));
    }
    late.sort_unstable();
    let usage = common::Usage::now();
    let us = |ns: u64| ns as f64 / 1e3;
    let per_dispatch = sched_cpu.as_nanos() as f64 / counts.dispatched.max(1) as f64;
    println!(
        "targets={n} load_ms={:.1} rss_before_kib={rss0} rss_after_load_kib={rss1} \
         bytes_per_target={:.0} hwm_load_kib={hwm_load} maxrss_kib={} seconds={seconds} \
         dispatched={} skipped={} missed={} received={} sched_cpu_ms={:.1} \
         sched_cpu_ns_per_dispatch={:.0} late_p50_us={:.1} late_p99_us={:.1} late_max_us={:.1}",
        load.as_secs_f64() * 1e3,
        (rss1.saturating_sub(rss0) * 1024) as f64 / n.max(1) as f64,
        usage.maxrss_kib,
        counts.dispatched,
        skips.0.load(Ordering::Relaxed),
        counts.missed,
        late.len(),
        sched_cpu.as_secs_f64() * 1e3,
        per_dispatch,
        us(common::quantile(&late, 0.5)),
        us(common::quantile(&late, 0.99)),
        us(late.last().copied().unwrap_or(0)),
    );
}
