//! Target URLs: checks what ureq's parser lets through (a port out of range
//! would otherwise be probed on the scheme's default port), turns
//! internationalised host names into their punycode form as curl and browsers
//! do, and keeps two forms: the one requested (credentials included, sent as
//! HTTP Basic auth) and the one shown everywhere else (credentials hidden).

use crate::redact;

/// A checked target URL in its two forms, [`TargetUrl::request`] and
/// [`TargetUrl::shown`], kept in one allocation and stored once when they are
/// the same (most URLs): a million targets are a million of these.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The request form, then the shown form unless it is the same.
    text: Box<str>,
    /// Where the request form ends in `text`.
    request_end: usize,
}

/// Shows the shown form only: `{:?}` of a target never prints its credentials.
impl std::fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TargetUrl").field(&self.shown()).finish()
    }
}

impl TargetUrl {
    fn new(request: String, shown: &str) -> TargetUrl {
        let request_end = request.len();
        let mut text = request;
        if shown != text {
            text.push_str(shown);
        }
        TargetUrl {
            text: text.into_boxed_str(),
            request_end,
        }
    }

    /// What is requested: ASCII only (punycode host, percent-encoded path).
    pub fn request(&self) -> &str {
        &self.text[..self.request_end]
    }

    /// What records, Kafka keys and logs carry: as written, credentials hidden.
    pub fn shown(&self) -> &str {
        if self.request_end == self.text.len() {
            &self.text
        } else {
            &self.text[self.request_end..]
        }
    }
}

/// Checks an absolute http(s) URL. The error says what is wrong, quoting the
/// URL with its credentials hidden.
pub fn parse(text: &str) -> Result<TargetUrl, String> {
    let quoted = || redact::url_value(text);
    if text.is_empty() {
        return Err("URL is empty".to_string());
    }
    let Some(scheme_end) = text.find("://") else {
        return Err(format!(
            "URL `{}` is not absolute (expected http:// or https://)",
            quoted()
        ));
    };
    let scheme = &text[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!(
            "URL `{}` has scheme `{}`; only http and https are probed",
            quoted(),
            redact::value(scheme)
        ));
    }
    let rest = &text[scheme_end + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport).map_err(|e| format!("URL `{}`: {e}", quoted()))?;
    if host.is_empty() || host == "[]" {
        return Err(format!("URL `{}` has no host", quoted()));
    }
    if let Some(p) = port {
        check_port(p).map_err(|e| format!("URL `{}`: {e}", quoted()))?;
    }
    let ascii_host = if host.is_ascii() {
        host.to_string()
    } else {
        idna_to_ascii(host).map_err(|e| format!("URL `{}`: {e}", quoted()))?
    };
    let mut request = String::with_capacity(text.len() + 16);
    request.push_str(&scheme.to_ascii_lowercase());
    request.push_str("://");
    if let Some(u) = userinfo {
        percent_encode_non_ascii(u, &mut request);
        request.push('@');
    }
    request.push_str(&ascii_host);
    if let Some(p) = port {
        request.push(':');
        request.push_str(p);
    }
    percent_encode_non_ascii(tail, &mut request);
    request
        .parse::<ureq::http::Uri>()
        .map_err(|e| format!("URL `{}` is not valid: {e}", quoted()))?;
    Ok(TargetUrl::new(request, &redact::url(text)))
}

/// `host[:port]` or `[v6][:port]` → (host, port text if a ':' was there).
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    if hostport.starts_with('[') {
        let Some(close) = hostport.find(']') else {
            return Err("unclosed `[` in the IPv6 address".to_string());
        };
        let (host, after) = hostport.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!(
                "unexpected `{}` after the IPv6 address",
                redact::value(after)
            )),
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

fn check_port(p: &str) -> Result<(), String> {
    let bad = || format!("bad port \"{}\" (1-65535)", redact::value(p));
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
        return Err(bad());
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(()),
        _ => Err(bad()),
    }
}

/// Percent-encodes every non-ASCII byte (UTF-8), as browsers do for paths.
fn percent_encode_non_ascii(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A host name with non-ASCII labels → lower case, each such label as
/// `xn--` + punycode (RFC 3492), as IDNA's ToASCII does for ordinary names.
fn idna_to_ascii(host: &str) -> Result<String, String> {
    let lower = host.to_lowercase();
    let mut labels = Vec::new();
    for label in lower.split('.') {
        if label.is_ascii() {
            labels.push(label.to_string());
            continue;
        }
        if label.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "host `{}` has a control or space character",
                redact::value(host)
            ));
        }
        let encoded = punycode(label)
            .map(|p| format!("xn--{p}"))
            .filter(|l| l.len() <= 63)
            .ok_or_else(|| {
                format!(
                    "host label `{}` is too long for DNS once punycode-encoded",
                    redact::value(label)
                )
            })?;
        labels.push(encoded);
    }
    Ok(labels.join("."))
}

/// RFC 3492 punycode encoding of one label; `None` on overflow.
fn punycode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    }
    fn digit(d: u32) -> char {
        // d < 36 by construction.
        let b = if d < 26 {
            b'a' + d as u8
        } else {
            b'0' + (d - 26) as u8
        };
        b as char
    }
    let points: Vec<u32> = input.chars().map(u32::from).collect();
    let mut out: String = input.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias) = (128_u32, 0_u32, 72_u32);
    while (handled as usize) < points.len() {
        let m = points.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &points {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode_rfc_vectors() {
        assert_eq!(punycode("bücher").as_deref(), Some("bcher-kva"));
        assert_eq!(punycode("münchen").as_deref(), Some("mnchen-3ya"));
        // RFC 3492 7.1 (B) Chinese (simplified).
        assert_eq!(
            punycode("他们为什么不说中文").as_deref(),
            Some("ihqwcrb4cv8a8dqg056pqjye")
        );
        // (L) 3<nen>B<gumi><kinpachi><sensei>
        assert_eq!(
            punycode("3年b組金八先生").as_deref(),
            Some("3b-ww4c5e180e575a65lsy2b")
        );
    }

    #[test]
    fn idn_host_becomes_punycode_and_shown_form_stays() {
        let u = parse("http://Bücher.example/straße?q=ü").expect("valid");
        assert_eq!(
            u.request(),
            "http://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"
        );
        assert_eq!(u.shown(), "http://Bücher.example/straße?q=ü");
    }

    #[test]
    fn ports_are_checked() {
        for p in ["99999", "70000", "-1", "abc", "0", "", "123456", "+80"] {
            let e = parse(&format!("http://127.0.0.1:{p}/")).expect_err(p);
            assert!(e.contains(&format!("bad port \"{p}\" (1-65535)")), "{e}");
        }
        assert!(parse("http://127.0.0.1:65535/").is_ok());
        assert!(parse("http://[::1]:8080/").is_ok());
        assert!(parse("http://[::1]/").is_ok());
        assert!(parse("http://[::1]:0/").is_err());
        assert!(parse("http://[::1/").is_err());
    }

    #[test]
    fn both_forms_come_back_whether_stored_once_or_twice() {
        let same = parse("https://example.com:8443/a?b=c").expect("plain");
        assert_eq!(same.request(), "https://example.com:8443/a?b=c");
        assert_eq!(same.shown(), same.request());
        // Only the scheme's case differs: two forms, each whole.
        let upper = parse("HTTP://example.com/").expect("upper-case scheme");
        assert_eq!(upper.request(), "http://example.com/");
        assert_eq!(upper.shown(), "HTTP://example.com/");
    }

    #[test]
    fn credentials_are_requested_but_not_shown() {
        let u = parse("http://admin:TopSecret@127.0.0.1:81/").expect("valid");
        assert_eq!(u.request(), "http://admin:TopSecret@127.0.0.1:81/");
        assert_eq!(u.shown(), "http://admin:***@127.0.0.1:81/");
        assert!(!format!("{u:?}").contains("TopSecret"), "{u:?}");
        let e = parse("http://admin:TopSecret@127.0.0.1:99999/").expect_err("bad port");
        assert!(!e.contains("TopSecret"), "{e}");
    }

    #[test]
    fn other_errors() {
        assert!(
            parse("ftp://a.test/")
                .expect_err("ftp")
                .contains("scheme `ftp`")
        );
        assert!(
            parse("/relative")
                .expect_err("rel")
                .contains("not absolute")
        );
        assert!(parse("http://").expect_err("empty").contains("no host"));
        assert!(parse("http://:80/").expect_err("empty").contains("no host"));
        assert!(
            parse("http://a b/")
                .expect_err("space")
                .contains("not valid")
        );
    }
}
