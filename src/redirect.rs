//! Redirects, followed by the prober one hop at a time (`--follow-redirects`).
//!
//! This module owns the decision for one hop: is the response a redirect,
//! where does its `Location` lead (RFC 3986 reference resolution by a URL
//! crate, then the same checks every target URL gets in [`crate::url`]), with
//! which method, and whether the target's credentials go along. It does no
//! I/O, so every rule is tested without a network; `probe` sends the hops.
//!
//! The rules are curl's (`-L`): only http and https are followed; 303 turns
//! any method but HEAD into GET, 301 and 302 turn POST into GET, 307 and 308
//! keep the method; credentials (the URL's userinfo, `Authorization` and
//! `Cookie` headers) are sent only to the target's own origin (scheme, host
//! and port), as curl does since 7.83.

use std::fmt;

use iri_string::types::{IriAbsoluteStr, IriReferenceStr};
use ureq::http::{Method, Uri};

use crate::redact;
use crate::url::TargetUrl;

/// Whether a header carries credentials, never sent to another origin.
pub fn is_credential_header(name: &str) -> bool {
    ["authorization", "cookie"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether a status is a redirect that has a `Location` to follow.
pub fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// Scheme, host and port of a request URL: where credentials may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of a request-form URL (as [`TargetUrl::request`] gives);
    /// `None` if it is not an absolute http(s) URL.
    pub fn of(request_url: &str) -> Option<Origin> {
        let uri: Uri = request_url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        Some(Origin {
            host: uri.host()?.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(default),
            scheme,
        })
    }

    /// Whether `host` and `port` (as the resolver sees a hop) are this origin's.
    pub fn is_host_port(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host.eq_ignore_ascii_case(host)
    }
}

/// The next request of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Checked URL: request form (ASCII) and shown form (no credentials).
    pub url: TargetUrl,
    pub method: Method,
    /// Whether the hop goes to the target's own origin; if not, credential
    /// headers are left out (the URL's own userinfo already is).
    pub same_origin: bool,
}

impl Hop {
    /// Whether header `name` is sent on this hop.
    pub fn sends_header(&self, name: &str) -> bool {
        self.same_origin || !is_credential_header(name)
    }
}

/// Why a redirect is not followed: the record says so, with the 3xx's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A 3xx without a `Location` is a final answer, not a refusal; this is a
    /// `Location` that is present but not a URI reference.
    Malformed(String),
    /// A scheme other than http and https (`file:`, `ftp:`, `javascript:` …).
    Scheme(String),
    /// Resolved, but not a URL this prober can request (bad port, no host …).
    Target(String),
    /// More than the limit of redirects in one chain.
    TooMany(u32),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Malformed(why) => write!(f, "malformed Location: {why}"),
            Refused::Scheme(s) => write!(f, "redirect to unsupported scheme {s}"),
            Refused::Target(why) => write!(f, "redirect to an invalid URL: {why}"),
            Refused::TooMany(n) => write!(f, "too many redirects (more than {n})"),
        }
    }
}

/// Where a `code` response to `current` (a request-form URL) with this
/// `Location` leads, asked with `method`; `target` is the origin of the
/// probe's own URL. Messages quote nothing secret: the Location is shown
/// with its credentials hidden and cut short.
pub fn next(
    current: &str,
    location: &[u8],
    code: u16,
    method: &Method,
    target: &Origin,
) -> Result<Hop, Refused> {
    let resolved = resolve(current, location)?;
    let scheme_end = resolved.find(':').unwrap_or(0);
    let scheme = resolved[..scheme_end].to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(Refused::Scheme(redact::value(&scheme)));
    }
    let url = crate::url::parse(&resolved).map_err(Refused::Target)?;
    let same_origin = Origin::of(url.request()).is_some_and(|o| o == *target);
    let url = if same_origin {
        url
    } else {
        without_userinfo(url)?
    };
    Ok(Hop {
        url,
        method: method_after(code, method),
        same_origin,
    })
}

/// RFC 3986 section 5 resolution of `location` against `current`, fragment
/// dropped (it is never sent). Spaces, which servers put in Locations and
/// curl sends encoded, are encoded; anything else invalid is malformed.
fn resolve(current: &str, location: &[u8]) -> Result<String, Refused> {
    let text = std::str::from_utf8(location)
        .map_err(|_| Refused::Malformed("not UTF-8".to_string()))?
        .trim_matches([' ', '\t']);
    if text.is_empty() {
        return Err(Refused::Malformed("empty".to_string()));
    }
    // A Location that does not parse may split its userinfo anywhere: hide
    // everything before its last `@`.
    let quoted = || format!("`{}`", redact::malformed_url_value(text));
    let encoded = text.replace(' ', "%20");
    let reference = IriReferenceStr::new(&encoded)
        .map_err(|_| Refused::Malformed(format!("{} is not a URI reference", quoted())))?;
    let base_text = current.split('#').next().unwrap_or(current);
    let base = IriAbsoluteStr::new(base_text)
        .map_err(|_| Refused::Malformed(format!("cannot resolve {} here", quoted())))?;
    let resolved = reference.resolve_against(base);
    resolved
        .ensure_rfc3986_normalizable()
        .map_err(|_| Refused::Malformed(format!("{} does not resolve", quoted())))?;
    let mut out = resolved.to_string();
    if let Some(hash) = out.find('#') {
        out.truncate(hash);
    }
    Ok(out)
}

/// The URL without `user:password@`: for another origin.
fn without_userinfo(url: TargetUrl) -> Result<TargetUrl, Refused> {
    let request = url.request();
    let Some(scheme_end) = request.find("://") else {
        return Ok(url);
    };
    let rest = &request[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Ok(url);
    };
    let stripped = format!("{}{}", &request[..scheme_end + 3], &rest[at + 1..]);
    crate::url::parse(&stripped).map_err(Refused::Target)
}

/// curl's method rules for a redirect.
fn method_after(code: u16, method: &Method) -> Method {
    match code {
        303 if *method != Method::HEAD => Method::GET,
        301 | 302 if *method == Method::POST => Method::GET,
        _ => method.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://u:pw@example.com:8080/a/b?q=1#frag";

    fn origin() -> Origin {
        Origin::of(BASE).expect("origin")
    }

    fn go(location: &str) -> Result<Hop, Refused> {
        next(BASE, location.as_bytes(), 302, &Method::GET, &origin())
    }

    #[test]
    fn relative_references_resolve_by_rfc_3986() {
        let cases = [
            ("/x", "http://u:pw@example.com:8080/x"),
            ("c", "http://u:pw@example.com:8080/a/c"),
            ("../c?z", "http://u:pw@example.com:8080/c?z"),
            ("?z", "http://u:pw@example.com:8080/a/b?z"),
            ("//other.example/p", "http://other.example/p"),
            ("https://example.com:8080/s#f", "https://example.com:8080/s"),
            ("/with space", "http://u:pw@example.com:8080/with%20space"),
        ];
        for (location, want) in cases {
            let hop = go(location).unwrap_or_else(|e| panic!("{location}: {e}"));
            assert_eq!(hop.url.request(), want, "{location}");
        }
    }

    #[test]
    fn credentials_stay_with_the_targets_origin() {
        let same = go("/x").expect("same");
        assert!(same.same_origin);
        assert!(same.sends_header("Authorization"));
        assert_eq!(same.url.shown(), "http://u:***@example.com:8080/x");

        // Another host, scheme or port is another origin.
        for location in [
            "http://evil.example:8080/",
            "https://example.com:8080/",
            "http://example.com:8081/",
        ] {
            let hop = go(location).expect(location);
            assert!(!hop.same_origin, "{location}");
            assert!(!hop.sends_header("authorization"), "{location}");
            assert!(!hop.sends_header("Cookie"), "{location}");
            assert!(hop.sends_header("X-Trace"), "{location}");
            assert!(!hop.url.request().contains("pw"), "{location}");
        }
        // Explicit default port = same origin.
        let base = "http://example.com/";
        let hop = next(
            base,
            b"http://EXAMPLE.com:80/x",
            302,
            &Method::GET,
            &Origin::of(base).expect("origin"),
        )
        .expect("hop");
        assert!(hop.same_origin);
    }

    #[test]
    fn only_http_and_https_are_followed() {
        assert_eq!(
            go("file:///etc/passwd"),
            Err(Refused::Scheme("file".to_string()))
        );
        assert_eq!(
            go("javascript:alert(1)"),
            Err(Refused::Scheme("javascript".to_string()))
        );
        assert_eq!(
            go("FTP://example.com/"),
            Err(Refused::Scheme("ftp".to_string()))
        );
    }

    #[test]
    fn bad_ports_and_malformed_locations_are_refused() {
        match go("http://127.0.0.1:99999/ok") {
            Err(Refused::Target(why)) => assert!(why.contains("99999"), "{why}"),
            other => panic!("{other:?}"),
        }
        for bad in ["http://[::1", "http://a b:c/", "\u{1}", "http://x/%zz"] {
            assert!(
                matches!(go(bad), Err(Refused::Malformed(_) | Refused::Target(_))),
                "{bad:?}: {:?}",
                go(bad)
            );
        }
        assert!(matches!(
            next(BASE, b"/\xff", 302, &Method::GET, &origin()),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(go("  "), Err(Refused::Malformed(_))));
    }

    #[test]
    fn refusals_quote_no_password() {
        let e = go("ftp://user:hunter22@host/").expect_err("ftp");
        assert!(!e.to_string().contains("hunter22"), "{e}");
        let e = go("http://user:hunter22@[::1/").expect_err("bracket");
        assert!(!e.to_string().contains("hunter22"), "{e}");
        let e = go("http://u:hun/ter22@[::1").expect_err("slash in the password");
        assert!(!e.to_string().contains("ter22"), "{e}");
    }

    #[test]
    fn methods_follow_curl() {
        let m = |code, method: Method| method_after(code, &method);
        assert_eq!(m(303, Method::POST), Method::GET);
        assert_eq!(m(303, Method::PUT), Method::GET);
        assert_eq!(m(303, Method::HEAD), Method::HEAD);
        assert_eq!(m(301, Method::POST), Method::GET);
        assert_eq!(m(302, Method::POST), Method::GET);
        assert_eq!(m(302, Method::PUT), Method::PUT);
        assert_eq!(m(307, Method::POST), Method::POST);
        assert_eq!(m(308, Method::POST), Method::POST);
        assert!(is_redirect(308) && !is_redirect(304) && !is_redirect(300));
    }

    #[test]
    fn origin_matches_hops_host_and_port() {
        let o = Origin::of("https://Example.COM/x").expect("origin");
        assert!(o.is_host_port("example.com", 443));
        assert!(!o.is_host_port("example.com", 80));
        let v6 = Origin::of("http://[::1]:81/").expect("v6");
        assert!(v6.is_host_port("[::1]", 81));
    }
}
