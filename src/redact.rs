//! What may leave the process: URLs without their credentials, and values
//! quoted in messages cut short and with control characters escaped.
//!
//! Every place a target URL is written (records, Kafka keys, logs, error
//! messages) goes through [`url`]; every value from a file or the network that
//! is quoted in a message goes through [`value`], so a 100 MB line or a
//! terminal escape sequence never reaches a log verbatim.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters of a value kept in a message before it is cut with "…".
pub const MAX_SHOWN: usize = 60;

/// The URL with the password of its `user:password@` part replaced by `***`
/// (a lone `token@`, which is as secret as a password, becomes `***@`).
/// Anything else is returned unchanged, without copying.
pub fn url(u: &str) -> Cow<'_, str> {
    let Some(scheme_end) = u.find("://") else {
        return Cow::Borrowed(u);
    };
    let rest = &u[scheme_end + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // The last '@' ends the userinfo: a password may itself hold an '@'.
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(u);
    };
    let userinfo = &authority[..at];
    let kept = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_string(),
    };
    Cow::Owned(format!(
        "{}{kept}{}",
        &u[..scheme_end + 3],
        &rest[at..] // from the '@' on
    ))
}

/// A value for a message: control characters escaped (`\u{1b}`, `\0`, …) and
/// cut after [`MAX_SHOWN`] characters with "…".
pub fn value(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN + 8));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\u{feff}' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes that may not be UTF-8, for a message: as [`value`], invalid
/// sequences shown as U+FFFD.
pub fn bytes(b: &[u8]) -> String {
    // Only the start is shown: do not decode a 100 MB line to cut it.
    let head = &b[..b.len().min(MAX_SHOWN * 4 + 4)];
    let mut shown = value(&String::from_utf8_lossy(head));
    if head.len() < b.len() && !shown.ends_with('…') {
        shown.push('…');
    }
    shown
}

/// `text` with the credentials of `url` (its userinfo) replaced as [`url`]
/// does: a safety net for messages built from errors that may quote the URL.
pub fn secrets_of<'a>(url_text: &str, text: &'a str) -> Cow<'a, str> {
    let Some(scheme_end) = url_text.find("://") else {
        return Cow::Borrowed(text);
    };
    let rest = &url_text[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(text);
    };
    let userinfo = &authority[..at];
    let secret = match userinfo.find(':') {
        Some(colon) => &userinfo[colon + 1..],
        None => userinfo,
    };
    if secret.is_empty() || !text.contains(secret) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace(secret, "***"))
}

/// A URL for a message: credentials hidden, then cut and escaped.
pub fn url_value(u: &str) -> String {
    value(&url(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_and_tokens() {
        assert_eq!(
            url("http://admin:TopSecret@127.0.0.1:8080/x?y=1"),
            "http://admin:***@127.0.0.1:8080/x?y=1"
        );
        assert_eq!(url("https://tok3n@a.test/"), "https://***@a.test/");
        assert_eq!(url("https://u:p@ss@a.test/"), "https://u:***@a.test/");
        // An '@' in the path or query is not userinfo.
        assert_eq!(url("http://a.test/x@y?z=@"), "http://a.test/x@y?z=@");
        assert!(matches!(url("http://a.test/"), Cow::Borrowed(_)));
        assert_eq!(url("not a url @ all"), "not a url @ all");
    }

    #[test]
    fn secrets_in_messages() {
        assert_eq!(
            secrets_of("http://u:s3cret@h/", "bad uri http://u:s3cret@h/ x"),
            "bad uri http://u:***@h/ x"
        );
        assert_eq!(secrets_of("http://h/", "no secret"), "no secret");
    }

    #[test]
    fn values_are_cut_and_escaped() {
        assert_eq!(value("plain"), "plain");
        assert_eq!(value("a\u{1b}[31mred\0"), "a\\u{1b}[31mred\\u{0}");
        assert_eq!(value("\u{feff}1"), "\\u{feff}1");
        let long = "x".repeat(1000);
        let shown = value(&long);
        assert_eq!(shown.chars().count(), MAX_SHOWN + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(bytes(b"\xff\x00ok"), "\u{fffd}\\u{0}ok");
        assert!(bytes(&[b'a'; 100_000]).ends_with('…'));
    }
}
