//! latency-logger library: the modules behind the binary, public so tests reach them.
pub mod report;
