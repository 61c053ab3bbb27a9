//! The targets file: `interval_seconds, URL` per line → validated `Target`s.
//!
//! A bad file is rejected as a whole, with every bad line listed as
//! `FILE:LINE: what is wrong`, so an operator fixes it in one pass.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Shortest interval accepted: below this the probe itself would dominate.
const MIN_INTERVAL: f64 = 0.001;
/// Longest interval accepted (one year): keeps deadline arithmetic far from overflow.
const MAX_INTERVAL: f64 = 366.0 * 86_400.0;

/// One URL to probe and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub interval: Duration,
    pub url: String,
    /// Line in the targets file, for messages.
    pub line: u64,
}

/// Every problem found in a targets file, each already formatted as `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq)]
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
    let mut targets = Vec::new();
    let mut problems = Vec::new();
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
            Err(reason) => problems.push(format!("{name}:{line}: {reason}")),
        }
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
fn parse_line(text: &[u8]) -> Result<(Duration, String), String> {
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
fn check_fields(fields: &[&[u8]]) -> Result<(Duration, String), String> {
    if fields.len() != 2 {
        return Err(format!(
            "expected 2 fields `interval_seconds, URL`, found {}",
            fields.len()
        ));
    }
    let interval =
        std::str::from_utf8(fields[0]).map_err(|_| "interval is not valid UTF-8".to_string())?;
    let url = std::str::from_utf8(fields[1]).map_err(|_| "URL is not valid UTF-8".to_string())?;
    let interval = parse_interval(interval)?;
    check_url(url)?;
    Ok((interval, url.to_string()))
}

/// A positive number of seconds, fractions allowed.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("interval `{text}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "interval `{text}` must be a positive number of seconds"
        ));
    }
    if secs < MIN_INTERVAL {
        return Err(format!(
            "interval `{text}` is below the minimum of {MIN_INTERVAL} s"
        ));
    }
    if secs > MAX_INTERVAL {
        return Err(format!(
            "interval `{text}` is above the maximum of {MAX_INTERVAL} s"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An absolute http or https URL with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("URL is empty".to_string());
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("URL `{url}` is not valid: {e}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(s) => {
            return Err(format!(
                "URL `{url}` has scheme `{s}`; only http and https are probed"
            ));
        }
        None => {
            return Err(format!(
                "URL `{url}` is not absolute (expected http:// or https://)"
            ));
        }
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("URL `{url}` has no host")),
    }
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
        assert_eq!(t[0].url, "https://example.com/");
        assert_eq!(t[0].line, 3);
        assert_eq!(t[1].interval, Duration::from_millis(500));
        assert_eq!(t[1].line, 5);
    }

    #[test]
    fn quoted_url_with_comma() {
        let t = ok("10,\"http://a.test/?q=1,2\"\n");
        assert_eq!(t[0].url, "http://a.test/?q=1,2");
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
                "t.csv:10: URL `http://` is not valid: empty string",
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
    fn interval_limits() {
        assert!(parse_interval("0.0001").is_err());
        assert!(parse_interval("1e12").is_err());
        assert!(parse_interval("inf").is_err());
        assert_eq!(parse_interval("1.5"), Ok(Duration::from_millis(1500)));
    }
}
