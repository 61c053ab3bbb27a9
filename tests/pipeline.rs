//! The pipeline at library level: a worker that dies is noticed and the run
//! shuts down with a failure instead of limping on half-staffed.

mod support;

use latency_logger::pipeline::{self, Outcome, Settings};
use latency_logger::probe::{ProbeConfig, Prober};
use latency_logger::report::Report;
use latency_logger::shutdown::Event;
use latency_logger::sink::Sink;
use latency_logger::targets::Target;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use support::HttpServer;

/// Collects reports; panics on the `panic_on`-th one (to kill its worker).
struct Collect {
    reports: Mutex<Vec<Report>>,
    seen: AtomicUsize,
    panic_on: usize,
}

impl Sink for Collect {
    fn emit(&self, report: Report) {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.panic_on {
            panic!("test sink: simulated bug in a worker");
        }
        self.reports.lock().expect("lock").push(report);
    }
    fn close(&self) -> Result<String, String> {
        Ok("closed".into())
    }
}

/// Runs the pipeline on another thread and returns its outcome, bounded by 15 s.
fn run_bounded(sink: Arc<Collect>, url: String, stop_after: Option<Duration>) -> Outcome {
    let (events_tx, events) = crossbeam_channel::unbounded::<Event>();
    let (done_tx, done_rx) = mpsc::channel();
    let tx = events_tx.clone();
    std::thread::spawn(move || {
        let targets = vec![Target {
            interval: Duration::from_millis(50),
            url,
            line: 1,
        }];
        let prober = Prober::new(&ProbeConfig::default()).expect("prober");
        let settings = Settings {
            workers: 2,
            queue: 10,
            splay: Duration::ZERO,
        };
        let outcome = pipeline::run(targets, prober, sink, &settings, &tx, &events).expect("run");
        let _ = done_tx.send(outcome);
    });
    if let Some(after) = stop_after {
        std::thread::sleep(after);
        events_tx.send(Event::Signal(15)).expect("send signal");
    }
    done_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("pipeline did not finish")
}

#[test]
fn a_dead_worker_stops_the_run_with_a_failure() {
    let http = HttpServer::start();
    let sink = Arc::new(Collect {
        reports: Mutex::new(Vec::new()),
        seen: AtomicUsize::new(0),
        panic_on: 3,
    });
    let outcome = run_bounded(sink.clone(), http.url("/fixed"), None);
    match outcome {
        Outcome::Failed(msg) => assert!(msg.contains("panicked"), "{msg}"),
        other => panic!("expected failure, got {other:?}"),
    }
    // The other worker and the shutdown drain keep reporting; the run still ends.
    assert!(sink.reports.lock().expect("lock").len() >= 2);
}

#[test]
fn a_signal_stops_the_run_cleanly_with_every_report() {
    let http = HttpServer::start();
    let sink = Arc::new(Collect {
        reports: Mutex::new(Vec::new()),
        seen: AtomicUsize::new(0),
        panic_on: usize::MAX,
    });
    let outcome = run_bounded(
        sink.clone(),
        http.url("/fixed"),
        Some(Duration::from_millis(520)),
    );
    assert_eq!(outcome, Outcome::Stopped);
    let reports = sink.reports.lock().expect("lock");
    // Due at 50, 100, ... 500 ms: 10 slots (± 1 for timing at the edge).
    assert!(
        (9..=11).contains(&reports.len()),
        "{} reports",
        reports.len()
    );
    assert!(reports.iter().all(|r| r.code == 200), "{reports:?}");
}
