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

/// `text` with every occurrence of `secret` (a password that a peer's reply
/// may echo) replaced by `***`.
pub fn hiding<'a>(text: &'a str, secret: &str) -> Cow<'a, str> {
    if secret.is_empty() || !text.contains(secret) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace(secret, "***"))
}

/// A URL for a message: credentials hidden, then cut and escaped.
pub fn url_value(u: &str) -> String {
    value(&url(u))
}

/// A URL that failed to parse, for its error message: cut and escaped, with
/// everything between `://` (or the start, without one) and the LAST `@` of
/// the whole text hidden. [`url`] finds the userinfo inside the authority,
/// which is right for a valid URL; in a malformed one a password holding
/// `/`, `?`, `#` (or a `,` that cut the field) moves the authority's end, so
/// no guess about where the userinfo ends is trusted: if there is an `@`
/// anywhere, all before it may be secret.
pub fn malformed_url_value(u: &str) -> String {
    let Some(at) = u.rfind('@') else {
        return value(u);
    };
    // Only a real scheme's `://` is kept: one inside a password is hidden too.
    let start = match u.find("://") {
        Some(s)
            if s > 0
                && s < at
                && u[..s]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            s + 3
        }
        _ => 0,
    };
    value(&format!("{}***{}", &u[..start], &u[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_hides_all_before_its_last_at() {
        // Found by the property test: `://` inside a password, no scheme.
        assert_eq!(
            malformed_url_value("user:Aa://a@host.test/"),
            "***@host.test/"
        );
        assert_eq!(malformed_url_value("http://u:p/w@h"), "http://***@h");
        assert_eq!(malformed_url_value("no at sign"), "no at sign");
    }

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
        assert_eq!(hiding("bad pw hunter2!", "hunter2"), "bad pw ***!");
        assert_eq!(hiding("x", ""), "x");
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

/// Issue 19 item 4 as a property: whatever a password holds, no error from
/// the URL parser, the targets file or `-X` quotes it.
#[cfg(test)]
mod never_a_password {
    use proptest::prelude::*;
    use std::ffi::OsString;

    /// Every 5-character window of `pw` that the input shows nowhere else
    /// (a shorter one could be a word of the message by chance) is absent
    /// from `message`.
    fn assert_hidden(pw: &str, input: &str, message: &str) {
        let rest = input.replacen(pw, "\u{0}", 1);
        let chars: Vec<char> = pw.chars().collect();
        for w in chars.windows(5) {
            let w: String = w.iter().collect();
            if rest.contains(&w) {
                continue;
            }
            assert!(
                !message.contains(&w),
                "`{w}` of the password {pw:?} in: {message}"
            );
        }
    }

    fn cli_error(args: &[&str]) -> Option<String> {
        let low = crate::cli::parse_low(args.iter().map(OsString::from));
        match low.and_then(|l| crate::cli::to_config(l, None)) {
            Err(e) => Some(e.0),
            // The flags check every Kafka setting: a run that starts had none wrong.
            Ok(_) => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_error_quotes_a_password(
            pw in "[ -~]{6,24}",
            port in prop::sample::select(vec!["", ":8080", ":99999", ":x"]),
        ) {
            prop_assume!(pw.trim() == pw);
            for url in [
                format!("http://user:{pw}@host.test{port}/p"),
                format!("https://{pw}@host.test{port}/"),
                format!("user:{pw}@host.test/"),
            ] {
                prop_assume!(url.matches(pw.as_str()).count() == 1);
                if let Err(e) = crate::url::parse(&url) {
                    assert_hidden(&pw, &url, &e);
                }
                for line in [format!("5, {url}"), format!("5, {url}, name=x, ip=4")] {
                    if let Err(e) = crate::targets::parse("t.csv", line.as_bytes()) {
                        assert_hidden(&pw, &line, &e.to_string());
                    }
                }
            }
            for sep in ["=", ":", " ", ""] {
                let arg = format!("sasl.password{sep}{pw}");
                if let Some(e) = cli_error(&["-B", "k:1", "-X", &arg, "t.csv"]) {
                    assert_hidden(&pw, &arg, &e);
                }
            }
            let arg = format!("sasl.mechanism={pw}");
            if let Some(e) = cli_error(&["-B", "k:1", "-X", &arg, "t.csv"]) {
                assert_hidden(&pw, &arg, &e);
            }
        }
    }
}
