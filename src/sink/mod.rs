//! Where reports go: the `Sink` trait and its kinds (stdout JSON lines, Kafka).

pub mod kafka;
pub mod stdout;

use crate::report::Report;

/// Takes every report from the scheduler and the workers. Must never block
/// for long: workers call it between probes.
pub trait Sink: Send + Sync {
    /// Hands over one report.
    fn emit(&self, report: Report);
    /// Delivers whatever is pending (bounded by the sink's own time limit) and
    /// says what happened. Called once, after every producer of reports stopped.
    fn close(&self) -> Result<String, String>;
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
}

/// Gives every report its `id` before the real sink sees it:
/// `<random 64-bit hex chosen at start>-<sequence>`, so ids never repeat
/// across restarts and a record sent twice (after a crash) keeps its id.
pub struct Stamped {
    inner: std::sync::Arc<dyn Sink>,
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl Stamped {
    pub fn new(inner: std::sync::Arc<dyn Sink>) -> Stamped {
        Stamped {
            inner,
            prefix: format!("{:016x}", random_u64()),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Sink for Stamped {
    fn emit(&self, mut report: Report) {
        if report.id.is_empty() {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            report.id = format!("{}-{n}", self.prefix);
        }
        self.inner.emit(report);
    }

    fn close(&self) -> Result<String, String> {
        self.inner.close()
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
