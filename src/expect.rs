//! Expectations a probe is judged by: the HTTP status codes that count as
//! "up" (`expect=200-299|301`, `--expect`), and the verdict on a report.

use crate::report::{ErrorKind, Report};
use std::fmt;

/// Status codes that count as success: ranges, inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusSet(Vec<(u16, u16)>);

impl Default for StatusSet {
    /// 200-399: any success or redirect, as blackbox_exporter and curl -f see it.
    fn default() -> Self {
        StatusSet(vec![(200, 399)])
    }
}

impl StatusSet {
    /// `200-299|301|302`: codes and ranges separated by `|`, `,` or spaces.
    pub fn parse(text: &str) -> Result<StatusSet, String> {
        let bad = |part: &str| {
            format!(
                "`{}` is not a status code or range (100-599, e.g. 200-299|301)",
                crate::redact::value(part)
            )
        };
        let code = |s: &str| -> Option<u16> {
            let n: u16 = s.trim().parse().ok()?;
            (100..=599).contains(&n).then_some(n)
        };
        let mut ranges = Vec::new();
        for part in text.split(['|', ',', ' ']).filter(|p| !p.trim().is_empty()) {
            let range = match part.split_once('-') {
                Some((a, b)) => (code(a), code(b)),
                None => (code(part), code(part)),
            };
            match range {
                (Some(a), Some(b)) if a <= b => ranges.push((a, b)),
                _ => return Err(bad(part)),
            }
        }
        if ranges.is_empty() {
            return Err(bad(text));
        }
        Ok(StatusSet(ranges))
    }

    pub fn contains(&self, code: i32) -> bool {
        self.0
            .iter()
            .any(|&(a, b)| (i32::from(a)..=i32::from(b)).contains(&code))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// Judges a report that has a response: a status outside `expect` becomes
/// an `expectation` failure saying so (it outranks a body that did not
/// match). Transport failures keep their kind.
pub fn judge(report: &mut Report, expect: &StatusSet) {
    let judged = matches!(report.error_kind, None | Some(ErrorKind::Expectation));
    if judged && report.code != 0 && !expect.contains(report.code) {
        report.error_kind = Some(ErrorKind::Expectation);
        report.error = Some(format!("status {} not in {expect}", report.code));
    }
}

/// A warning when a certificate ends its validity within `days` days of
/// `now` (POSIX seconds), or already has; None otherwise.
pub fn expiry_warning(not_after: i64, now: f64, days: u32) -> Option<String> {
    let left = not_after as f64 - now;
    if left >= f64::from(days) * 86_400.0 {
        return None;
    }
    let d = (left.abs() / 86_400.0).floor();
    Some(if left >= 0.0 {
        format!("certificate expires in {d} day(s) (not after {not_after}, POSIX seconds)")
    } else {
        format!("certificate expired {d} day(s) ago (not after {not_after}, POSIX seconds)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warnings() {
        let now = 1_000_000_000.0;
        assert_eq!(expiry_warning(1_000_000_000 + 15 * 86_400, now, 14), None);
        let w = expiry_warning(1_000_000_000 + 3 * 86_400 + 5, now, 14).expect("soon");
        assert!(w.starts_with("certificate expires in 3 day(s)"), "{w}");
        let w = expiry_warning(1_000_000_000 - 2 * 86_400 - 5, now, 14).expect("past");
        assert!(w.starts_with("certificate expired 2 day(s) ago"), "{w}");
        assert_eq!(expiry_warning(1_000_000_000 + 5, now, 0), None);
    }

    #[test]
    fn parses_lists_and_ranges() {
        let s = StatusSet::parse("200-299|301, 302 404").expect("valid");
        assert_eq!(s.to_string(), "200-299|301|302|404");
        assert!(s.contains(204) && s.contains(404) && !s.contains(303) && !s.contains(0));
        assert_eq!(StatusSet::default().to_string(), "200-399");
        for bad in ["", "abc", "600", "299-200", "200-", "99", "2OO"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn judges_only_responses() {
        let mut r = Report {
            code: 503,
            ..Report::default()
        };
        judge(&mut r, &StatusSet::parse("200-299").expect("set"));
        assert_eq!(r.error_kind, Some(ErrorKind::Expectation));
        assert_eq!(r.error.as_deref(), Some("status 503 not in 200-299"));
        let mut r = Report {
            error_kind: Some(ErrorKind::Connect),
            error: Some("refused".into()),
            ..Report::default()
        };
        judge(&mut r, &StatusSet::default());
        assert_eq!(r.error_kind, Some(ErrorKind::Connect));
        let mut ok = Report {
            code: 302,
            ..Report::default()
        };
        judge(&mut ok, &StatusSet::default());
        assert_eq!(ok.error_kind, None);
    }
}
