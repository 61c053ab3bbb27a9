//! The probe report: one record per probe (failures and skips included), its
//! JSON line form and its Avro form (schema in `schema/report.avsc`).

use std::fmt;

/// Why a probe produced no (complete) response. Named by the phase that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    Io,
    Http,
    Skipped,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Http => "http",
            ErrorKind::Skipped => "skipped",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe's result. Timings are cumulative seconds from the request start,
/// with curl's meaning; a phase never reached stays 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub url: String,
    /// HTTP status; 0 when no response arrived.
    pub code: i32,
    /// POSIX seconds at probe start.
    pub timestamp: f64,
    pub namelookup: f64,
    pub connect: f64,
    pub appconnect: f64,
    pub pretransfer: f64,
    pub starttransfer: f64,
    pub total: f64,
    pub size_download: i64,
    pub remote_ip: Option<String>,
    pub http_version: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    /// POSIX seconds the probe was scheduled for.
    pub scheduled: f64,
    /// Seconds the probe started after `scheduled`.
    pub lateness: f64,
}
