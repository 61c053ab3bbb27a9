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
