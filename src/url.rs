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
///
/// A URL that fails is quoted by [`redact::malformed_url_value`] (everything
/// before its last `@` hidden), and a piece of it (a port, a host) is quoted
/// only if it lies after that `@`: in `http://u:Sec?ret@h/` the "port" is
/// `Sec`, a piece of the password.
pub fn parse(text: &str) -> Result<TargetUrl, String> {
    let quoted = || redact::malformed_url_value(text);
    let last_at = text.rfind('@');
    // A piece of `text` for a message, or `***` if it may be secret.
    let part = |piece: &str| -> String {
        let offset = (piece.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
        match (offset, last_at) {
            (Some(o), Some(at)) if o > at && o <= text.len() => redact::value(piece),
            (Some(o), None) if o <= text.len() => redact::value(piece),
            _ => "***".to_string(),
        }
    };
    // Said when a piece is hidden: the likely cause and its fix.
    let hint = |piece: &str| -> &'static str {
        if part(piece) == "***" {
            " (not shown: it may be part of a password; in a password, write `/` `?` `#` `@` `,` as %2F %3F %23 %40 %2C)"
        } else {
            ""
        }
    };
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
        let plausible = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        return Err(if plausible {
            format!(
                "URL `{}` has scheme `{}`; only http and https are probed",
                quoted(),
                redact::value(scheme)
            )
        } else {
            format!("URL `{}` does not start with http:// or https://", quoted())
        });
    }
    let rest = &text[scheme_end + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport).map_err(|e| {
        let what = match e {
            HostPortError::Unclosed => "unclosed `[` in the IPv6 address".to_string(),
            HostPortError::After(after) => format!(
                "unexpected `{}` after the IPv6 address{}",
                part(after),
                hint(after)
            ),
        };
        format!("URL `{}`: {what}", quoted())
    })?;
    if host.is_empty() || host == "[]" {
        return Err(format!("URL `{}` has no host", quoted()));
    }
    if let Some(p) = port
        && !port_ok(p)
    {
        return Err(format!(
            "URL `{}`: bad port \"{}\" (1-65535){}",
            quoted(),
            part(p),
            hint(p)
        ));
    }
    let ascii_host = if host.is_ascii() {
        host.to_string()
    } else {
        idna_to_ascii(host).map_err(|e| {
            format!(
                "URL `{}`: host `{}` {e}{}",
                quoted(),
                part(host),
                hint(host)
            )
        })?
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
    // http's messages are fixed texts ("invalid uri character"): no piece quoted.
    request
        .parse::<ureq::http::Uri>()
        .map_err(|e| format!("URL `{}` is not valid: {e}", quoted()))?;
    Ok(TargetUrl::new(request, &redact::url(text)))
}

/// What is wrong with a `host[:port]`, the piece quoted given back.
enum HostPortError<'a> {
    Unclosed,
    After(&'a str),
}

/// `host[:port]` or `[v6][:port]` → (host, port text if a ':' was there).
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), HostPortError<'_>> {
    if hostport.starts_with('[') {
        let Some(close) = hostport.find(']') else {
            return Err(HostPortError::Unclosed);
        };
        let (host, after) = hostport.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(HostPortError::After(after)),
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

/// A port is 1-65535, digits only.
fn port_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
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
            return Err("has a control or space character".to_string());
        }
        let encoded = punycode(label)
            .map(|p| format!("xn--{p}"))
            .filter(|l| l.len() <= 63)
            .ok_or_else(|| "has a label too long for DNS once punycode-encoded".to_string())?;
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

    /// Issue 19 fault 7: a password holding `?`, `#`, `/` or `@` made the
    /// authority end early and its piece was quoted as a "port".
    #[test]
    fn passwords_with_delimiters_are_never_quoted() {
        for pw in ["Sec?ret", "Sec#ret", "Sec/ret", "Sec?r/e#t@x"] {
            for url in [
                format!("http://user:{pw}@host.test/"),
                format!("https://user:{pw}@host.test:99999/p?q=1"),
                format!("user:{pw}@host.test/"),
                format!("ftp://user:{pw}@host.test/"),
                format!("http://user:{pw}@[::1/"),
            ] {
                let e = parse(&url).expect_err(&url);
                assert!(!e.contains("Sec") && !e.contains("ret"), "{url}: {e}");
            }
        }
        let e = parse("http://user:Sec?ret@host.test/").expect_err("port Sec");
        assert_eq!(
            e,
            "URL `http://***@host.test/`: bad port \"***\" (1-65535) (not shown: it may be part of a password; in a password, write `/` `?` `#` `@` `,` as %2F %3F %23 %40 %2C)"
        );
        // `@` in a password is inside the authority: the URL is valid, shown without it.
        let u = parse("http://user:Sec@ret@host.test/").expect("last @ ends the userinfo");
        assert_eq!(u.shown(), "http://user:***@host.test/");
        let e = parse("http://user:Sec@ret@host.test:0/").expect_err("port 0");
        assert!(e.contains("bad port \"0\"") && !e.contains("Sec"), "{e}");
        // `http://Sec?ret@h/` is a valid URL (host `Sec`, query `ret@h/`, as
        // RFC 3986 and curl read it): not an error, nothing to hide in one.
        // Without any `@`, pieces are quoted as before.
        let e = parse("http://host.test:abc/").expect_err("abc");
        assert!(e.ends_with("bad port \"abc\" (1-65535)"), "{e}");
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
