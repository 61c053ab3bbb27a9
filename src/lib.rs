//! latency-logger library: the modules behind the binary, public so tests reach them.
pub mod cli;
pub mod kafka;
pub mod pipeline;
pub mod probe;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod targets;
