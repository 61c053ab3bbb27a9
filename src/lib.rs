//! latency-logger library: the modules behind the binary, public so tests reach them.
pub mod cli;
pub mod report;
pub mod schedule;
pub mod targets;
