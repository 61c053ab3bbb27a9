//! Where reports go: the `Sink` trait and its kinds (stdout JSON lines, Kafka).

pub mod kafka;
pub mod stdout;

use crate::report::Report;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Takes every report from the scheduler and the workers. Must never block
/// for long: workers call it between probes.
pub trait Sink: Send + Sync {
    /// Hands over one report.
    fn emit(&self, report: Report);
    /// Delivers whatever is pending (bounded by the sink's own time limit) and
    /// says what happened. Called once, after every producer of reports stopped.
    fn close(&self) -> Result<String, String>;
    /// Delivery counts for the stats line; None for sinks that deliver at once.
    fn counts(&self) -> Option<DeliveryCounts> {
        None
    }
}

/// Where records are, for the stats line (`--stats-interval`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub delivered: u64,
    pub waiting_in_memory: u64,
    pub in_spool: u64,
    pub dropped: u64,
    /// Refused by Kafka, or still in memory when the flush time ran out.
    pub failed: u64,
}

/// Sends every report to two sinks (Kafka and stdout with `--stdout`).
pub struct Tee(pub std::sync::Arc<dyn Sink>, pub std::sync::Arc<dyn Sink>);

impl Sink for Tee {
    fn emit(&self, report: Report) {
        self.1.emit(report.clone());
        self.0.emit(report);
    }

    fn close(&self) -> Result<String, String> {
        // Close both even if the first fails, then report both.
        match (self.0.close(), self.1.close()) {
            (Ok(a), Ok(b)) => Ok(format!("{a}; {b}")),
            (Err(e), Ok(b)) | (Ok(b), Err(e)) => Err(format!("{e}; {b}")),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }

    fn counts(&self) -> Option<DeliveryCounts> {
        self.0.counts().or_else(|| self.1.counts())
    }
}

/// Counts the records on their way to the real sink (probes done, failed,
/// skipped) and logs the stats line every `--stats-interval` and at close.
/// It fills no field: records are finished in `crate::record`.
pub struct Counted {
    inner: Arc<dyn Sink>,
    probes: Arc<ProbeCounts>,
    stop: Mutex<Option<crossbeam_channel::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct ProbeCounts {
    records: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl Counted {
    pub fn new(inner: Arc<dyn Sink>, stats_every: Option<Duration>) -> Counted {
        let probes = Arc::new(ProbeCounts::default());
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = stats_every.and_then(|every| {
            let (inner, probes) = (inner.clone(), probes.clone());
            std::thread::Builder::new()
                .name("stats".into())
                .spawn(move || {
                    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                        stop_rx.recv_timeout(every)
                    {
                        log::info!("{}", stats_line(&probes, inner.counts()));
                    }
                })
                .map_err(|e| log::warn!("no stats line: cannot start its thread: {e}"))
                .ok()
        });
        Counted {
            inner,
            probes,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(thread),
        }
    }
}

fn stats_line(p: &ProbeCounts, d: Option<DeliveryCounts>) -> String {
    let n = p.records.load(Ordering::Relaxed);
    let failed = p.failed.load(Ordering::Relaxed);
    let skipped = p.skipped.load(Ordering::Relaxed);
    let mut line = format!(
        "stats: probes {} done, {failed} failed, {skipped} skipped",
        n.saturating_sub(failed + skipped)
    );
    if let Some(d) = d {
        line.push_str(&format!(
            "; records {} delivered, {} waiting in memory, {} in the spool, {} dropped, {} failed",
            d.delivered, d.waiting_in_memory, d.in_spool, d.dropped, d.failed
        ));
    }
    line
}

impl Sink for Counted {
    fn emit(&self, report: Report) {
        self.probes.records.fetch_add(1, Ordering::Relaxed);
        match report.error_kind {
            None => {}
            Some(crate::report::ErrorKind::Skipped) => {
                self.probes.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.probes.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.inner.emit(report);
    }

    fn close(&self) -> Result<String, String> {
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        let result = self.inner.close();
        log::info!("{}", stats_line(&self.probes, self.inner.counts()));
        result
    }

    fn counts(&self) -> Option<DeliveryCounts> {
        self.inner.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is given.
    #[derive(Default)]
    struct Keep(Mutex<Vec<Report>>);

    impl Sink for Keep {
        fn emit(&self, report: Report) {
            self.0.lock().unwrap().push(report);
        }
        fn close(&self) -> Result<String, String> {
            Ok(String::new())
        }
    }

    #[test]
    fn counted_counts_by_kind_and_passes_records_unchanged() {
        let keep = Arc::new(Keep::default());
        let a = Counted::new(keep.clone(), None);
        let records = [
            Report {
                id: "a-0".into(),
                ..Report::default()
            },
            Report {
                error_kind: Some(crate::report::ErrorKind::Skipped),
                ..Report::default()
            },
            Report {
                error_kind: Some(crate::report::ErrorKind::Connect),
                ..Report::default()
            },
        ];
        for r in &records {
            a.emit(r.clone());
        }
        assert_eq!(keep.0.lock().unwrap()[..], records[..]);
        assert_eq!(
            stats_line(&a.probes, None),
            "stats: probes 1 done, 1 failed, 1 skipped"
        );
    }
}
