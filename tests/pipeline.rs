//! The pipeline at library level: a worker that dies is noticed and the run
//! shuts down with a failure instead of limping on half-staffed; a stop is
//! bounded even when probes hang; SIGHUP's reload reaches the scheduler.

mod support;

use latency_logger::pipeline::{self, Outcome, Settings};
use latency_logger::probe::{ProbeConfig, Prober};
use latency_logger::report::Report;
use latency_logger::shutdown::Event;
use latency_logger::sink::Sink;
use latency_logger::targets::{self, Target};
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

fn collect() -> Arc<Collect> {
    Arc::new(Collect {
        reports: Mutex::new(Vec::new()),
        seen: AtomicUsize::new(0),
        panic_on: usize::MAX,
    })
}

/// Runs the pipeline on another thread with `text` as the targets file (and
/// `reload` as what SIGHUP reads) and returns its outcome, bounded by 15 s.
/// `during` runs meanwhile with the event sender, to send signals.
fn run_with(
    sink: Arc<Collect>,
    text: String,
    reload: String,
    stop_timeout: Duration,
    during: impl FnOnce(&crossbeam_channel::Sender<Event>),
) -> Outcome {
    let (events_tx, events) = crossbeam_channel::unbounded::<Event>();
    let (done_tx, done_rx) = mpsc::channel();
    let tx = events_tx.clone();
    std::thread::spawn(move || {
        let targets: Vec<Target> = targets::parse("t.csv", text.as_bytes()).expect("targets");
        let prober = Prober::new(&ProbeConfig::default()).expect("prober");
        let settings = Settings {
            workers: 2,
            queue: 10,
            splay: Duration::ZERO,
            stop_timeout,
            cert_warn_days: 14,
            identity: latency_logger::record::Identity {
                source: "test".into(),
                labels: Vec::new().into(),
            },
        };
        let load: pipeline::Loader = Arc::new(move || targets::parse("t.csv", reload.as_bytes()));
        let outcome =
            pipeline::run(targets, prober, sink, &settings, load, &tx, &events).expect("run");
        let _ = done_tx.send(outcome);
    });
    during(&events_tx);
    done_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("pipeline did not finish")
}

/// One target every 50 ms; a stop signal after `stop_after` if given.
fn run_bounded(sink: Arc<Collect>, url: String, stop_after: Option<Duration>) -> Outcome {
    run_with(
        sink,
        format!("0.05, {url}\n"),
        String::new(),
        Duration::from_secs(10),
        |tx| {
            if let Some(after) = stop_after {
                std::thread::sleep(after);
                tx.send(Event::Signal(15)).expect("send signal");
            }
        },
    )
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

#[test]
fn a_stop_is_bounded_and_hung_probes_are_reported_as_interrupted() {
    let http = HttpServer::start();
    let sink = collect();
    let started = std::time::Instant::now();
    let outcome = run_with(
        sink.clone(),
        format!("0.05, {}\n", http.url("/hang")),
        String::new(),
        Duration::from_millis(300),
        |tx| {
            std::thread::sleep(Duration::from_millis(400));
            tx.send(Event::Signal(15)).expect("signal");
        },
    );
    let took = started.elapsed();
    assert_eq!(outcome, Outcome::Stopped);
    // 400 ms of running + 300 ms stop bound, well under the probes' 300 s timeout.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let reports = sink.reports.lock().expect("lock");
    let interrupted: Vec<&Report> = reports
        .iter()
        .filter(|r| r.error_kind.map(|k| k.as_str()) == Some("interrupted"))
        .collect();
    // Both workers hang on a probe each; the queue's jobs are skipped.
    assert_eq!(interrupted.len(), 2, "{reports:?}");
    for r in &interrupted {
        let e = r.error.as_deref().unwrap_or_default();
        assert!(e.contains("--stop-timeout 0.3 s"), "{e}");
        assert!(
            e.contains("waiting for the response from 127.0.0.1:"),
            "{e}"
        );
        assert!(r.connect > 0.0 && r.pretransfer >= r.connect, "{r:?}");
        assert_eq!(r.starttransfer, 0.0);
        assert!(r.total >= 0.3, "{r:?}");
        assert!(r.scheduled > 0.0);
    }
    assert!(
        reports.iter().all(|r| matches!(
            r.error_kind.map(|k| k.as_str()),
            Some("interrupted" | "skipped")
        )),
        "{reports:?}"
    );
}

#[test]
fn a_reload_replaces_the_targets_at_their_new_schedule() {
    let http = HttpServer::start();
    let sink = collect();
    let (a, b) = (http.url("/fixed"), http.url("/status500"));
    let outcome = run_with(
        sink.clone(),
        format!("0.05, {a}\n"),
        format!("0.05, {b}\n"),
        Duration::from_secs(5),
        |tx| {
            std::thread::sleep(Duration::from_millis(300));
            tx.send(Event::Reload).expect("reload");
            std::thread::sleep(Duration::from_millis(300));
            tx.send(Event::Signal(15)).expect("signal");
        },
    );
    assert_eq!(outcome, Outcome::Stopped);
    let reports = sink.reports.lock().expect("lock");
    let first_b = reports
        .iter()
        .position(|r| r.url == b)
        .expect("b probed after reload");
    let last_a = reports
        .iter()
        .rposition(|r| r.url == a)
        .expect("a probed before");
    assert!(last_a < first_b, "a after the reload: {reports:?}");
    assert!(reports[first_b..].iter().all(|r| r.url == b));
    assert!(first_b >= 3, "{first_b}");
}
