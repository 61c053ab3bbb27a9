//! The targets file: `interval_seconds, URL[, key=value …]` per line →
//! validated `Target`s. Options after the URL (`method=`, `header=`,
//! `expect=`, `timeout=`, `name=`) override the flags' defaults for that line.
//!
//! A bad file is rejected as a whole, with every bad line listed as
//! `FILE:LINE: what is wrong`, so an operator fixes it in one pass.

use crate::expect::StatusSet;
use crate::redact;
use crate::url::{self, TargetUrl};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Shortest interval accepted: below this the probe itself would dominate.
const MIN_INTERVAL: f64 = 0.001;
/// Longest interval accepted (one year): keeps deadline arithmetic far from overflow.
const MAX_INTERVAL: f64 = 366.0 * 86_400.0;

/// Bad lines listed at most; beyond this a count is given instead.
const MAX_PROBLEMS: usize = 1000;

/// How one target is requested and judged. Targets without options share
/// the defaults' `Arc` (a million targets, one `Spec`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    pub method: ureq::http::Method,
    /// Sent with every request; values may be secret (never logged).
    pub headers: Vec<(String, String)>,
    /// Status codes that count as success.
    pub expect: StatusSet,
    /// Whole-probe limit for this target; None = `--timeout`.
    pub timeout: Option<Duration>,
    /// A label for the target (`name` in its records).
    pub name: Option<String>,
    /// Regular expression the first 64 KiB of the body must match.
    pub body_match: Option<BodyMatch>,
    /// Address family to probe over.
    pub ip: IpMode,
    /// Local address or interface to probe from.
    pub bind: Option<Bind>,
    /// Addresses to connect to, in order, instead of resolving the host
    /// (curl --resolve); empty = DNS.
    pub resolve: Vec<std::net::IpAddr>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            method: ureq::http::Method::GET,
            headers: Vec::new(),
            expect: StatusSet::default(),
            timeout: None,
            name: None,
            body_match: None,
            ip: IpMode::Any,
            bind: None,
            resolve: Vec::new(),
        }
    }
}

/// Which address family a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpMode {
    /// Whatever the resolver gives, in its order (falling back address by address).
    Any,
    V4,
    V6,
    /// One probe per family per slot (a dual-stack pair of records).
    Both,
}

impl IpMode {
    pub fn parse(text: &str) -> Result<IpMode, String> {
        match text {
            "any" => Ok(IpMode::Any),
            "4" => Ok(IpMode::V4),
            "6" => Ok(IpMode::V6),
            "both" => Ok(IpMode::Both),
            _ => Err(format!(
                "ip `{}` must be 4, 6, any or both",
                redact::value(text)
            )),
        }
    }
}

/// A local address or an interface to probe from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    Address(std::net::IpAddr),
    /// Linux SO_BINDTODEVICE.
    Interface(String),
}

impl Bind {
    /// An IP address, else an interface name (1-15 characters, as Linux allows).
    pub fn parse(text: &str) -> Result<Bind, String> {
        if let Ok(ip) = text.parse() {
            return Ok(Bind::Address(ip));
        }
        let ok = !text.is_empty()
            && text.len() <= 15
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b));
        if ok {
            Ok(Bind::Interface(text.to_string()))
        } else {
            Err(format!(
                "bind `{}` is neither an IP address nor an interface name",
                redact::value(text)
            ))
        }
    }
}

/// A compiled `match=` expression; compared and hashed by its text.
#[derive(Debug, Clone)]
pub struct BodyMatch {
    pub pattern: String,
    pub regex: regex_lite::Regex,
}

impl BodyMatch {
    pub fn parse(pattern: &str) -> Result<BodyMatch, String> {
        let regex = regex_lite::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                format!(
                    "match `{}` is not a valid regular expression: {}",
                    redact::value(pattern),
                    redact::value(&e.to_string())
                )
            })?;
        Ok(BodyMatch {
            pattern: pattern.to_string(),
            regex,
        })
    }
}

impl PartialEq for BodyMatch {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for BodyMatch {}

impl std::hash::Hash for BodyMatch {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pattern.hash(state);
    }
}

/// Option keys a line may carry after the URL.
const OPTION_KEYS: &str = "method, header, expect, match, timeout, name, ip, bind, resolve";

/// One URL to probe and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub interval: Duration,
    pub url: TargetUrl,
    pub spec: Arc<Spec>,
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

/// Reads and parses the targets file at `path`; lines without options get `defaults`.
pub fn load(path: &Path, defaults: &Arc<Spec>) -> Result<Vec<Target>, TargetsError> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => parse_with(&name, &bytes, defaults),
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
    parse_with(name, bytes, &Arc::new(Spec::default()))
}

/// As [`parse`], with `defaults` for what a line does not say.
pub fn parse_with(
    name: &str,
    bytes: &[u8],
    defaults: &Arc<Spec>,
) -> Result<Vec<Target>, TargetsError> {
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
        match parse_line(text, defaults) {
            Ok((interval, url, spec)) => targets.push(Target {
                interval,
                url,
                spec,
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
        // Growing by doubling may have left up to half the list unused, and
        // the list is kept for the whole run (a million targets: ~56 MB).
        targets.shrink_to_fit();
        Ok(targets)
    } else {
        Err(TargetsError { problems })
    }
}

/// One non-blank, non-comment line → (interval, URL) or the reason it is bad.
fn parse_line(
    text: &[u8],
    defaults: &Arc<Spec>,
) -> Result<(Duration, TargetUrl, Arc<Spec>), String> {
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
        return check_fields(&record.iter().collect::<Vec<_>>(), defaults);
    }
    let fields: Vec<&[u8]> = text.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
    check_fields(&fields, defaults)
}

/// The fields of one record → (interval, URL, spec) or the reason they are bad.
fn check_fields(
    fields: &[&[u8]],
    defaults: &Arc<Spec>,
) -> Result<(Duration, TargetUrl, Arc<Spec>), String> {
    if fields.len() < 2 {
        return Err(format!(
            "expected 2 fields `interval_seconds, URL`, found {}",
            fields.len()
        ));
    }
    let interval = std::str::from_utf8(fields[0])
        .map_err(|_| format!("interval `{}` is not valid UTF-8", redact::bytes(fields[0])))?;
    let url = std::str::from_utf8(fields[1]).map_err(|_| {
        format!(
            "URL `{}` is not valid UTF-8",
            redact::malformed_url_value(&String::from_utf8_lossy(fields[1]))
        )
    })?;
    let interval = parse_interval(interval)?;
    // An `@` after the URL field, other than in a known option's value: the
    // URL may have been cut at a `,` of its password (`http://u:ab,cd@host/`
    // is the fields `http://u:ab` and `cd@host/`), so what either error would
    // quote may be a piece of that password. Then neither is quoted, only
    // the likely cause.
    let cut = fields[2..].iter().any(|f| {
        let key = f
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        f.contains(&b'@')
            && !(f.contains(&b'=') && OPTION_KEYS.split(", ").any(|k| k.as_bytes() == key))
    });
    let hidden = |what: &str| {
        format!(
            "{what} (not shown: a field after the URL holds an `@`, so the URL may have been cut at a `,` in its password; write a `,` in a password as %2C, or put the URL in \"…\")"
        )
    };
    let url = match url::parse(url) {
        Ok(url) => url,
        Err(_) if cut => return Err(hidden("the URL is not valid")),
        Err(e) => return Err(e),
    };
    let spec = if fields.len() == 2 {
        defaults.clone()
    } else {
        match options(&fields[2..], defaults) {
            Ok(spec) => Arc::new(spec),
            Err(_) if cut => return Err(hidden("an option after the URL is not valid")),
            Err(e) => return Err(e),
        }
    };
    Ok((interval, url, spec))
}

/// `key=value` fields after the URL, on top of the defaults.
fn options(fields: &[&[u8]], defaults: &Spec) -> Result<Spec, String> {
    let mut spec = defaults.clone();
    let mut seen: Vec<&str> = Vec::new();
    // After a `header=`, a field that is no option may be the rest of its
    // value cut at a `,` (`header=Authorization: Bearer ab,cd`): not quoted.
    let mut after_header = false;
    const CUT_HEADER: &str =
        " (not shown: it may be the rest of a header value cut at a `,`; put the field in \"…\")";
    for raw in fields {
        let text = std::str::from_utf8(raw).map_err(|_| {
            if after_header {
                format!("an option is not valid UTF-8{CUT_HEADER}")
            } else {
                format!("option `{}` is not valid UTF-8", redact::bytes(raw))
            }
        })?;
        let Some((key, value)) = text.split_once('=') else {
            if after_header {
                return Err(format!(
                    "expected key=value after the URL ({OPTION_KEYS}){CUT_HEADER}"
                ));
            }
            return Err(format!(
                "expected key=value after the URL ({OPTION_KEYS}), found `{}`",
                redact::value(text)
            ));
        };
        let known = OPTION_KEYS.split(", ").any(|k| k == key.trim());
        if after_header && !known {
            return Err(format!("unknown option (known: {OPTION_KEYS}){CUT_HEADER}"));
        }
        after_header |= key.trim() == "header";
        let (key, value) = (key.trim(), value.trim());
        if key != "header" {
            if seen.contains(&key) {
                return Err(format!("option `{}` given twice", redact::value(key)));
            }
            seen.push(key);
        }
        match key {
            "method" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(format!(
                        "method `{}` is not an HTTP method (e.g. GET, HEAD)",
                        redact::value(value)
                    ));
                }
                spec.method = ureq::http::Method::from_bytes(value.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("method `{}` is not valid", redact::value(value)))?;
            }
            "header" => {
                let (name, val) = header(value)?;
                // A line's header replaces a default one of the same name.
                spec.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                spec.headers.push((name, val));
            }
            "expect" => {
                spec.expect = StatusSet::parse(value).map_err(|e| format!("expect: {e}"))?
            }
            "timeout" => {
                let t = parse_interval(value).map_err(|e| format!("timeout: {e}"))?;
                spec.timeout = Some(t);
            }
            "match" => spec.body_match = Some(BodyMatch::parse(value)?),
            "ip" => spec.ip = IpMode::parse(value)?,
            "bind" => spec.bind = Some(Bind::parse(value)?),
            "resolve" => {
                spec.resolve = value
                    .split(['|', ' '])
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse()
                            .map_err(|_| {
                                format!("resolve `{}` is not an IP address", redact::value(a))
                            })
                    })
                    .collect::<Result<_, _>>()?;
                // ureq holds at most 16 addresses per name.
                if spec.resolve.is_empty() || spec.resolve.len() > 16 {
                    return Err("resolve takes 1 to 16 IP addresses (a|b|…)".to_string());
                }
            }
            "name" => {
                if value.is_empty()
                    || value.chars().count() > 256
                    || value.chars().any(char::is_control)
                {
                    return Err(format!(
                        "name `{}` must be 1-256 printable characters",
                        redact::value(value)
                    ));
                }
                spec.name = Some(value.to_string());
            }
            _ => {
                return Err(format!(
                    "unknown option `{}` (known: {OPTION_KEYS})",
                    redact::value(key)
                ));
            }
        }
    }
    Ok(spec)
}

/// Headers that frame the message or the connection, or name the host: the
/// prober sets them itself from the method, the body and the URL. Sent by
/// hand they contradict what is sent (`Content-Length: 10` on a GET with no
/// body makes the server wait for 10 bytes and every probe time out), so
/// `header=` and `--header` refuse them at load. Compared case-insensitively.
pub const REFUSED_HEADERS: &[&str] = &[
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "TE",
    "Trailer",
    "Upgrade",
    "Keep-Alive",
    "Proxy-Connection",
];

/// `Name: value` → a valid header name and value. The value is never quoted
/// in messages: it may be a token.
pub fn header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err("header must be `Name: value`".to_string());
    };
    let (name, value) = (name.trim(), value.trim());
    if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "header name `{}` is not valid",
            redact::value(name)
        ));
    }
    if let Some(refused) = REFUSED_HEADERS
        .iter()
        .find(|r| r.eq_ignore_ascii_case(name))
    {
        let why = if *refused == "Host" {
            "the prober sends the URL's host (to reach another address, use resolve=)"
        } else {
            "it frames the message or the connection, which the prober does from the method and body"
        };
        return Err(format!(
            "header `{refused}` cannot be set: {why} (refused: {})",
            REFUSED_HEADERS.join(", ")
        ));
    }
    if ureq::http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "header `{}`: its value has characters a header cannot carry",
            redact::value(name)
        ));
    }
    Ok((name.to_string(), value.to_string()))
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
        assert_eq!(t[0].url.request(), "https://example.com/");
        assert_eq!(t[0].line, 3);
        assert_eq!(t[1].interval, Duration::from_millis(500));
        assert_eq!(t[1].line, 5);
    }

    #[test]
    fn quoted_url_with_comma() {
        let t = ok("10,\"http://a.test/?q=1,2\"\n");
        assert_eq!(t[0].url.request(), "http://a.test/?q=1,2");
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
                "t.csv:8: expected key=value after the URL (method, header, expect, match, timeout, name, ip, bind, resolve), found `extra`",
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
    fn options_after_the_url() {
        let t = ok(
            "5, http://a.test/, method=head, expect=200-299|301, timeout=2.5, name=edge api,\"header=Authorization: Bearer s3cr3t, x\", header=X-A: 1\n5, http://b.test/\n",
        );
        let s = &t[0].spec;
        assert_eq!(s.method, ureq::http::Method::HEAD);
        assert_eq!(s.expect.to_string(), "200-299|301");
        assert_eq!(s.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.name.as_deref(), Some("edge api"));
        assert_eq!(
            s.headers,
            vec![
                ("Authorization".to_string(), "Bearer s3cr3t, x".to_string()),
                ("X-A".to_string(), "1".to_string())
            ]
        );
        assert_eq!(*t[1].spec, Spec::default());
    }

    #[test]
    fn bad_options_are_named_and_header_values_never_shown() {
        let p = bad(
            "5, http://a.test/, colour=red\n5, http://a.test/, expect=2xx\n5, http://a.test/, timeout=0\n5, http://a.test/, method=GE T\n5, http://a.test/, header=Bad Name: x\n5, http://a.test/, header=X-Token: s3cr3t\u{7f}\n5, http://a.test/, name=a, name=b\n",
        );
        assert_eq!(p.len(), 7, "{p:?}");
        let q = bad(
            "5, http://a.test/, ip=5\n5, http://a.test/, bind=not an interface\n5, http://a.test/, resolve=a.b.c.d\n5, http://a.test/, match=(unclosed\n",
        );
        assert!(
            q[0].contains("ip `5` must be 4, 6, any or both"),
            "{}",
            q[0]
        );
        assert!(q[1].contains("bind `not an interface`"), "{}", q[1]);
        assert!(
            q[2].contains("resolve `a.b.c.d` is not an IP address"),
            "{}",
            q[2]
        );
        assert!(
            q[3].contains("match `(unclosed` is not a valid regular expression"),
            "{}",
            q[3]
        );
        let t = ok(
            "1, http://a.test/, ip=both, bind=127.0.0.2, resolve=::1, match=o+k\n1, http://a.test/, bind=eth0\n",
        );
        assert_eq!(t[0].spec.ip, IpMode::Both);
        assert_eq!(
            t[0].spec.bind,
            Some(Bind::Address("127.0.0.2".parse().expect("ip")))
        );
        assert_eq!(
            t[0].spec.resolve,
            vec!["::1".parse::<std::net::IpAddr>().expect("ip")]
        );
        assert!(
            t[0].spec
                .body_match
                .as_ref()
                .is_some_and(|m| m.regex.is_match("fooook"))
        );
        assert_eq!(t[1].spec.bind, Some(Bind::Interface("eth0".into())));
        let t = ok("1, http://a.test/, resolve=127.0.0.1|[::1]\n");
        assert_eq!(t[0].spec.resolve.len(), 2);
        assert!(p[0].contains("unknown option `colour`"), "{}", p[0]);
        assert!(
            p[1].contains("expect: `2xx` is not a status code"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("t.csv:3: timeout: interval `0`"),
            "{}",
            p[2]
        );
        assert!(p[3].contains("method `GE T`"), "{}", p[3]);
        assert!(p[4].contains("header name `Bad Name`"), "{}", p[4]);
        assert!(
            p[5].contains("header `X-Token`") && !p[5].contains("s3cr3t"),
            "{}",
            p[5]
        );
        assert!(p[6].contains("option `name` given twice"), "{}", p[6]);
    }

    #[test]
    fn defaults_apply_and_a_line_overrides_them() {
        let defaults = Arc::new(Spec {
            headers: vec![("X-A".into(), "flag".into()), ("X-B".into(), "flag".into())],
            expect: StatusSet::parse("200").expect("set"),
            ..Spec::default()
        });
        let t = parse_with(
            "t.csv",
            b"1, http://a.test/\n1, http://a.test/, header=x-a: line\n",
            &defaults,
        )
        .expect("valid");
        assert!(Arc::ptr_eq(&t[0].spec, &defaults));
        assert_eq!(
            t[1].spec.headers,
            vec![
                ("X-B".to_string(), "flag".to_string()),
                ("x-a".to_string(), "line".to_string())
            ]
        );
        assert_eq!(t[1].spec.expect.to_string(), "200");
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
            vec!["t.csv:1: URL `http://***@127.0.0.1:99999/`: bad port \"99999\" (1-65535)"]
        );
    }

    #[test]
    fn a_password_cut_at_a_comma_or_not_utf8_is_never_quoted() {
        let p = bad(
            "2, http://u:Sec,ret@host.test/\n2, http://u:80,Secret@host.test/\n2, http://u:S\u{e9}c,ret@h/, name=x\n",
        );
        assert_eq!(p.len(), 3, "{p:?}");
        for e in &p {
            assert!(!e.contains("Sec") && !e.contains("ret"), "{e}");
            assert!(e.contains("%2C"), "{e}");
        }
        // An `@` in a known option's value keeps the details.
        let p = bad("2, http://a.test/, name=ops@site, ip=5\n");
        assert!(p[0].contains("ip `5`"), "{p:?}");
        let p = parse("t.csv", b"2, http://u:S\xffcret@h/\n")
            .expect_err("not UTF-8")
            .problems;
        assert!(!p[0].contains("cret"), "{p:?}");
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
