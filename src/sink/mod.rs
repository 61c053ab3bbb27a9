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
