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

/// Gives every report its `id` before the real sink sees it
/// (`<random 64-bit hex chosen at start>-<sequence>`, so ids never repeat
/// across restarts and a record sent twice after a crash keeps its id),
/// counts probes, and logs the stats line every `--stats-interval` and at
/// close.
pub struct Stamped {
    inner: Arc<dyn Sink>,
    prefix: String,
    source: Arc<str>,
    labels: crate::report::Labels,
    probes: Arc<ProbeCounts>,
    stop: Mutex<Option<crossbeam_channel::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct ProbeCounts {
    next: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl Stamped {
    /// `source` and `labels` go into every report (the prober's identity).
    pub fn new(
        inner: Arc<dyn Sink>,
        stats_every: Option<Duration>,
        source: &str,
        labels: &[(String, String)],
    ) -> Stamped {
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
        Stamped {
            inner,
            prefix: format!("{:016x}", random_u64()),
            source: source.into(),
            labels: labels.into(),
            probes,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(thread),
        }
    }
}

fn stats_line(p: &ProbeCounts, d: Option<DeliveryCounts>) -> String {
    let n = p.next.load(Ordering::Relaxed);
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

impl Sink for Stamped {
    fn emit(&self, mut report: Report) {
        let n = self.probes.next.fetch_add(1, Ordering::Relaxed);
        match report.error_kind {
            None => {}
            Some(crate::report::ErrorKind::Skipped) => {
                self.probes.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.probes.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if report.id.is_empty() {
            report.id = format!("{}-{n}", self.prefix);
        }
        report.success = Some(report.error_kind.is_none());
        report.source = self.source.clone();
        report.labels = self.labels.clone();
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

/// 64 random bits from the kernel; if that fails (no /dev/urandom in a
/// chroot), the clock and pid, which still differ between runs.
fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
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
    fn stamped_gives_unique_ids_with_a_per_run_prefix_and_counts_probes() {
        let keep = Arc::new(Keep::default());
        let labels = [("site".to_string(), "ams".to_string())];
        let a = Stamped::new(keep.clone(), None, "edge-7", &labels);
        let b = Stamped::new(Arc::new(Keep::default()), None, "", &[]);
        assert_ne!(a.prefix, b.prefix, "two runs share an id prefix");
        a.emit(Report::default());
        a.emit(Report::skipped("http://x/", 1.0, 2.0, "queue full"));
        a.emit(Report {
            error_kind: Some(crate::report::ErrorKind::Connect),
            ..Report::default()
        });
        a.emit(Report {
            id: "kept".into(),
            ..Report::default()
        });
        let ids: Vec<String> = keep
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(
            ids[..3],
            [0, 1, 2].map(|n| format!("{}-{n}", a.prefix)),
            "{ids:?}"
        );
        assert_eq!(ids[3], "kept");
        let kept = keep.0.lock().unwrap();
        assert!(
            kept.iter()
                .all(|r| &*r.source == "edge-7" && r.labels[..] == labels)
        );
        assert_eq!(a.prefix.len(), 16);
        assert_eq!(
            stats_line(&a.probes, None),
            "stats: probes 2 done, 1 failed, 1 skipped"
        );
    }
}
