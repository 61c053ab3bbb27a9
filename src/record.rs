//! A probe's record is made here, and only here: the prober's report (or a
//! job never probed) is judged (expectations, certificate warning) and
//! stamped (id, source, labels, name, scheduled time, lateness) into the
//! finished record. Sinks only encode and deliver what leaves this module;
//! no field is filled after it.
//!
//! Lateness is always read on the monotonic clock (the moment a worker took
//! the job, or the moment a job was given up on, less its deadline), so a
//! wall-clock step never makes a record look late or early.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::panics::Caught;
use crate::probe::Progress;
use crate::report::{ErrorKind, Labels, Report};
use crate::schedule::Job;

/// Maps the monotonic clock (which schedules) to POSIX seconds (which records carry).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall: f64,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            start: Instant::now(),
            start_wall: wall_now(),
        }
    }

    /// When the clock was read (monotonic): the schedule's start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// POSIX seconds of a monotonic instant.
    pub fn wall(&self, at: Instant) -> f64 {
        if at >= self.start {
            self.start_wall + (at - self.start).as_secs_f64()
        } else {
            self.start_wall - (self.start - at).as_secs_f64()
        }
    }
}

/// POSIX seconds now.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Who probes, in every record.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `--source` (default: the host name).
    pub source: std::sync::Arc<str>,
    /// `--label` pairs, keys unique, in the order given.
    pub labels: Labels,
}

/// Makes the records of one run.
pub struct Records {
    /// `<random 64-bit hex chosen at start>-<sequence>`: ids never repeat
    /// across restarts, and a record sent twice after a crash keeps its id.
    prefix: String,
    next: AtomicU64,
    identity: Identity,
    clock: Clock,
    /// Warn of certificates ending within this many days; 0 = never.
    cert_warn_days: u32,
    /// When each target's certificate was last warned about (POSIX seconds).
    cert_warned: Mutex<HashMap<String, f64>>,
}

impl Records {
    pub fn new(identity: Identity, clock: Clock, cert_warn_days: u32) -> Records {
        Records {
            prefix: format!("{:016x}", random_u64()),
            next: AtomicU64::new(0),
            identity,
            clock,
            cert_warn_days,
            cert_warned: Mutex::default(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The record of a probe the prober finished: judged, then stamped.
    /// `started` is when the worker began it.
    pub fn probed(&self, job: &Job, started: Instant, mut report: Report) -> Report {
        crate::expect::judge(&mut report, &job.target.spec.expect);
        self.check_certificate(job, &report);
        self.stamp(job, started, report)
    }

    /// The record of a job never probed (queue full, shutting down), given
    /// up on at `now`.
    pub fn skipped(&self, job: &Job, now: Instant, why: &str) -> Report {
        let report = Report {
            timestamp: self.clock.wall(now),
            error_kind: Some(ErrorKind::Skipped),
            error: Some(why.to_string()),
            ..Report::default()
        };
        self.stamp(job, now, report)
    }

    /// The record of a probe abandoned at the stop bound: the phases it reached.
    pub fn interrupted(
        &self,
        job: &Job,
        started: Instant,
        progress: &Progress,
        why: &str,
    ) -> Report {
        let report = progress.interrupted(job.target.url.shown(), why);
        self.stamp(job, started, report)
    }

    /// The record of a probe that panicked (a bug), logged once with the
    /// target's name: the message and location only, with the target's
    /// credentials and header values hidden in case the message quotes them;
    /// its timings are those the probe reached.
    pub fn internal(
        &self,
        job: &Job,
        started: Instant,
        progress: &Progress,
        caught: &Caught,
    ) -> Report {
        let url = &job.target.url;
        let mut text = crate::redact::secrets_of(url.request(), &caught.to_string()).into_owned();
        for (_, value) in &job.target.spec.headers {
            if !value.is_empty() {
                text = text.replace(value.as_str(), "***");
            }
        }
        log::error!(
            "{}: the probe failed inside the prober (a bug, reported as error_kind internal; probing goes on): {text}",
            url.shown()
        );
        let mut report = progress.interrupted(url.shown(), &format!("internal error: {text}"));
        report.error_kind = Some(ErrorKind::Internal);
        self.stamp(job, started, report)
    }

    /// The fields every record gets from its job and the run.
    fn stamp(&self, job: &Job, started: Instant, report: Report) -> Report {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Report {
            url: job.target.url.shown().to_string(),
            name: job.target.spec.name.clone(),
            scheduled: self.clock.wall(job.deadline),
            lateness: started
                .saturating_duration_since(job.deadline)
                .as_secs_f64(),
            id: format!("{}-{n}", self.prefix),
            success: Some(report.error_kind.is_none()),
            source: self.identity.source.clone(),
            labels: self.identity.labels.clone(),
            ..report
        }
    }

    /// Logs a certificate near or past its end, at most once a day per target.
    fn check_certificate(&self, job: &Job, report: &Report) {
        let Some(not_after) = report.cert_not_after else {
            return;
        };
        let now = report.timestamp;
        let Some(warning) = crate::expect::expiry_warning(not_after, now, self.cert_warn_days)
        else {
            return;
        };
        let url = job.target.url.shown();
        let mut warned = self.cert_warned.lock().unwrap_or_else(|p| p.into_inner());
        let last = warned.get(url).copied();
        if last.is_none_or(|at| now - at >= 86_400.0) {
            warned.insert(url.to_string(), now);
            log::warn!("{url}: {warning}");
        }
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
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn records() -> Records {
        let identity = Identity {
            source: "edge-7".into(),
            labels: vec![("site".to_string(), "ams".to_string())].into(),
        };
        Records::new(identity, Clock::now(), 14)
    }

    fn job(line: &str) -> Job {
        let t = crate::targets::parse("t.csv", line.as_bytes()).expect("target");
        Job {
            target: t[0].clone(),
            deadline: Instant::now(),
        }
    }

    #[test]
    fn every_record_is_finished_whole_here() {
        let r = records();
        let job = job("1, http://u:pw@a.test/, name=front, expect=200\n");
        let started = job.deadline + Duration::from_millis(250);
        let probed = r.probed(
            &job,
            started,
            Report {
                code: 503,
                ..Report::default()
            },
        );
        // Judged: 503 is not in expect=200.
        assert_eq!(probed.error_kind, Some(ErrorKind::Expectation));
        assert_eq!(probed.success, Some(false));
        assert_eq!(probed.url, "http://u:***@a.test/");
        assert_eq!(probed.name.as_deref(), Some("front"));
        assert_eq!(
            (&*probed.source, &probed.labels[..]),
            ("edge-7", &[("site".to_string(), "ams".to_string())][..])
        );
        // Lateness from the monotonic clock; scheduled from the same clock.
        assert!((probed.lateness - 0.25).abs() < 1e-9, "{}", probed.lateness);
        assert!((r.clock().wall(job.deadline) - probed.scheduled).abs() < 1e-9);

        let skipped = r.skipped(&job, job.deadline + Duration::from_millis(5), "queue full");
        assert_eq!(skipped.error_kind, Some(ErrorKind::Skipped));
        assert!((skipped.lateness - 0.005).abs() < 1e-9);
        assert_eq!(skipped.name.as_deref(), Some("front"));
        // Ids: one run prefix, a sequence; another run has another prefix.
        let (a, b) = (probed.id.clone(), skipped.id.clone());
        assert_eq!(a.len(), 16 + 2);
        assert_eq!(a[..17], b[..17]);
        assert!(a.ends_with("-0") && b.ends_with("-1"), "{a} {b}");
        let other = records().skipped(&job, Instant::now(), "x");
        assert_ne!(other.id[..16], a[..16]);
    }

    #[test]
    fn a_panicked_probe_hides_credentials_and_header_values() {
        let r = records();
        let job = job("1, http://u:s3cret@a.test/, header=X-Key: k3y-value\n");
        let caught = Caught {
            message: "bad http://u:s3cret@a.test/ with k3y-value".into(),
            location: Some("src/x.rs:1:2".into()),
        };
        let rec = r.internal(&job, Instant::now(), &Progress::default(), &caught);
        let e = rec.error.clone().unwrap_or_default();
        assert_eq!(rec.error_kind, Some(ErrorKind::Internal));
        assert!(e.starts_with("internal error: bad"), "{e}");
        assert!(e.contains("src/x.rs:1:2"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("k3y-value"), "{e}");
    }
}
