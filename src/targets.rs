//! The targets file: `interval_seconds, URL` per line → validated `Target`s.
//!
//! A bad file is rejected as a whole, with every bad line listed as
//! `FILE:LINE: what is wrong`, so an operator fixes it in one pass.

use crate::redact;
use crate::url::{self, TargetUrl};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Shortest interval accepted: below this the probe itself would dominate.
const MIN_INTERVAL: f64 = 0.001;
/// Longest interval accepted (one year): keeps deadline arithmetic far from overflow.
const MAX_INTERVAL: f64 = 366.0 * 86_400.0;

/// Bad lines listed at most; beyond this a count is given instead.
const MAX_PROBLEMS: usize = 1000;

/// One URL to probe and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub interval: Duration,
    pub url: TargetUrl,
    /// Line in the targets file, for messages.
    pub line: u64,
}

/// Every problem found in a targets file, each already formatted as `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsError {
    pub problems: Vec<String>,
}

impl fmt::Display for TargetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for TargetsError {}

/// Reads and parses the targets file at `path`.
pub fn load(path: &Path) -> Result<Vec<Target>, TargetsError> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => parse(&name, &bytes),
        Err(e) => Err(TargetsError {
            problems: vec![format!("{name}: cannot read targets file: {e}")],
        }),
    }
}

/// Parses the contents of a targets file; `name` is used in messages only.
///
/// Each line is parsed as one CSV record: a URL never spans lines, and
/// splitting first gives exact line numbers (csv's own counter skips comments).
pub fn parse(name: &str, bytes: &[u8]) -> Result<Vec<Target>, TargetsError> {
    let name = redact::value(name);
    // Windows editors start UTF-8 files with a byte order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(TargetsError {
            problems: vec![format!(
                "{name}:{line}: NUL byte: this is not a text file of `interval, URL` lines"
            )],
        });
    }
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    let mut more = 0_usize;
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index as u64 + 1;
        let text = raw.trim_ascii();
        if text.is_empty() || text[0] == b'#' {
            continue;
        }
        match parse_line(text) {
            Ok((interval, url)) => targets.push(Target {
                interval,
                url,
                line,
            }),
            Err(_) if problems.len() >= MAX_PROBLEMS => more += 1,
            Err(reason) => problems.push(format!("{name}:{line}: {reason}")),
        }
    }
    if more > 0 {
        problems.push(format!("{name}: … and {more} more bad lines"));
    }
    if problems.is_empty() && targets.is_empty() {
        problems.push(format!(
            "{name}: no targets (expected lines like `5, https://example.com/`)"
        ));
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(TargetsError { problems })
    }
}

/// One non-blank, non-comment line → (interval, URL) or the reason it is bad.
fn parse_line(text: &[u8]) -> Result<(Duration, TargetUrl), String> {
    // Most lines have no quotes: split them directly. Building a csv reader
    // per line costs ~30 µs, which is 30 s for a million targets.
    if text.contains(&b'"') {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text);
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Err("empty record".to_string()),
            Err(e) => return Err(format!("unreadable CSV: {e}")),
        }
        return check_fields(&record.iter().collect::<Vec<_>>());
    }
    let fields: Vec<&[u8]> = text.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
    check_fields(&fields)
}

/// The fields of one record → (interval, URL) or the reason they are bad.
fn check_fields(fields: &[&[u8]]) -> Result<(Duration, TargetUrl), String> {
    if fields.len() != 2 {
        return Err(format!(
            "expected 2 fields `interval_seconds, URL`, found {}",
            fields.len()
        ));
    }
    let interval = std::str::from_utf8(fields[0])
        .map_err(|_| format!("interval `{}` is not valid UTF-8", redact::bytes(fields[0])))?;
    let url = std::str::from_utf8(fields[1])
        .map_err(|_| format!("URL `{}` is not valid UTF-8", redact::bytes(fields[1])))?;
    let interval = parse_interval(interval)?;
    Ok((interval, url::parse(url)?))
}

/// A positive number of seconds, fractions allowed.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let shown = redact::value(text);
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("interval `{shown}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "interval `{shown}` must be a positive number of seconds"
        ));
    }
    if secs < MIN_INTERVAL {
        return Err(format!(
            "interval `{shown}` is below the minimum of {MIN_INTERVAL} s"
        ));
    }
    if secs > MAX_INTERVAL {
        return Err(format!(
            "interval `{shown}` is above the maximum of {MAX_INTERVAL} s"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Target> {
        parse("t.csv", text.as_bytes()).expect("valid")
    }

    fn bad(text: &str) -> Vec<String> {
        parse("t.csv", text.as_bytes())
            .expect_err("invalid")
            .problems
    }

    #[test]
    fn parses_trims_and_skips() {
        let t = ok(
            "# comment\n\n  5 ,  https://example.com/ \n   # indented\n0.5,http://a.test:8080/x?y=1\n   \n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].interval, Duration::from_secs(5));
        assert_eq!(t[0].url.request, "https://example.com/");
        assert_eq!(t[0].line, 3);
        assert_eq!(t[1].interval, Duration::from_millis(500));
        assert_eq!(t[1].line, 5);
    }

    #[test]
    fn quoted_url_with_comma() {
        let t = ok("10,\"http://a.test/?q=1,2\"\n");
        assert_eq!(t[0].url.request, "http://a.test/?q=1,2");
    }

    #[test]
    fn lists_every_bad_line() {
        let p = bad(
            "5, https://ok.test/\nx, http://a.test/\n0, http://a.test/\n-1, http://a.test/\n5, ftp://a.test/\n5, /relative\n5\n5, http://a.test/, extra\nnan, http://a.test/\n5, http://\n",
        );
        assert_eq!(
            p,
            vec![
                "t.csv:2: interval `x` is not a number of seconds",
                "t.csv:3: interval `0` must be a positive number of seconds",
                "t.csv:4: interval `-1` must be a positive number of seconds",
                "t.csv:5: URL `ftp://a.test/` has scheme `ftp`; only http and https are probed",
                "t.csv:6: URL `/relative` is not absolute (expected http:// or https://)",
                "t.csv:7: expected 2 fields `interval_seconds, URL`, found 1",
                "t.csv:8: expected 2 fields `interval_seconds, URL`, found 3",
                "t.csv:9: interval `nan` must be a positive number of seconds",
                "t.csv:10: URL `http://` has no host",
            ]
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        assert_eq!(
            bad("# only a comment\n\n"),
            vec!["t.csv: no targets (expected lines like `5, https://example.com/`)"]
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let p = parse("t.csv", b"5, http://a.test/\n5, http://\xff.test/\n")
            .expect_err("invalid")
            .problems;
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("t.csv:2: "), "{p:?}");
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let t = parse("t.csv", b"\xEF\xBB\xBF1, http://a.test/\n").expect("valid");
        assert_eq!(t[0].interval, Duration::from_secs(1));
    }

    #[test]
    fn binary_file_is_one_clear_problem() {
        let p = parse("ls", b"\x7fELF\x02\x01\n\x01\x00\x00junk\n")
            .expect_err("binary")
            .problems;
        assert_eq!(
            p,
            vec!["ls:2: NUL byte: this is not a text file of `interval, URL` lines"]
        );
    }

    #[test]
    fn quoted_values_are_cut_and_escaped() {
        let long = "9".repeat(10_000);
        let p = bad(&format!(
            "{long}x, http://a.test/\n1, http://a.test/\x1b[2J\n"
        ));
        assert!(p[0].len() < 150, "{}", p[0]);
        assert!(p[0].contains('…'), "{}", p[0]);
        assert!(!p[1].contains('\x1b'), "{}", p[1]);
        assert!(p[1].contains("\\u{1b}"), "{}", p[1]);
    }

    #[test]
    fn bad_port_and_hidden_password() {
        let p = bad("2, http://u:TopSecret@127.0.0.1:99999/\n");
        assert_eq!(
            p,
            vec!["t.csv:1: URL `http://u:***@127.0.0.1:99999/`: bad port \"99999\" (1-65535)"]
        );
    }

    #[test]
    fn many_bad_lines_are_counted_past_the_limit() {
        let text = "x, http://a.test/\n".repeat(MAX_PROBLEMS + 5);
        let p = bad(&text);
        assert_eq!(p.len(), MAX_PROBLEMS + 1);
        assert_eq!(p[MAX_PROBLEMS], "t.csv: … and 5 more bad lines");
    }

    #[test]
    fn interval_limits() {
        assert!(parse_interval("0.0001").is_err());
        assert!(parse_interval("1e12").is_err());
        assert!(parse_interval("inf").is_err());
        assert_eq!(parse_interval("1.5"), Ok(Duration::from_millis(1500)));
    }
}
