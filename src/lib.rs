//! latency-logger library: the modules behind the binary, public so tests reach them.
pub mod buffers;
pub mod cli;
pub mod expect;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod logging;
pub mod panics;
pub mod pipeline;
pub mod probe;
pub mod queue;
pub mod record;
pub mod redact;
pub mod redirect;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod startup;
pub mod targets;
pub mod url;
pub mod wire_body;
pub mod x509;
