//! The few facts a record carries about a certificate — subject, issuer and
//! validity — read straight from its DER, so that they are known whether or
//! not the certificate verified (webpki checks, it does not describe).
//!
//! Only the start of the TBSCertificate is walked; anything malformed gives
//! `None`, never a panic.

/// What a record says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// e.g. `CN=example.com, O=Example`, attributes in the order encoded.
    pub subject: String,
    pub issuer: String,
    /// POSIX seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// Longest subject or issuer kept; longer ones are cut with "…".
const MAX_NAME: usize = 256;

/// One DER element: (tag, contents, rest after it).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The facts of a DER certificate, or None if it cannot be read.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xA0 {
        rest = after; // explicit version
    }
    let (_, _, rest) = element(rest)?; // serial number
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (0x30, issuer, rest) = element(rest)? else {
        return None;
    };
    let (0x30, validity, rest) = element(rest)? else {
        return None;
    };
    let (0x30, subject, _) = element(rest)? else {
        return None;
    };
    let (t1, before, after) = element(validity)?;
    let (t2, not_after, _) = element(after)?;
    Some(CertFacts {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_before: time(t1, before)?,
        not_after: time(t2, not_after)?,
    })
}

/// A Name (SEQUENCE OF SET OF {type, value}) as `CN=…, O=…`.
fn name(mut seq: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !seq.is_empty() {
        let (0x31, mut set, rest) = element(seq)? else {
            return None;
        };
        seq = rest;
        while !set.is_empty() {
            let (0x30, atv, rest) = element(set)? else {
                return None;
            };
            set = rest;
            let (0x06, oid, value) = element(atv)? else {
                return None;
            };
            let (tag, value, _) = element(value)?;
            parts.push(format!("{}={}", attribute(oid), text(tag, value)));
        }
    }
    let mut joined = parts.join(", ");
    if joined.chars().count() > MAX_NAME {
        joined = joined.chars().take(MAX_NAME).collect::<String>() + "…";
    }
    Some(joined)
}

/// Short names for the usual attributes, the dotted OID for the rest.
fn attribute(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0A] => "O".into(),
        [0x55, 0x04, 0x0B] => "OU".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress".into(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A directory string, control characters escaped.
fn text(tag: u8, value: &[u8]) -> String {
    let s = if tag == 0x1E {
        // BMPString: UTF-16BE.
        let units: Vec<u16> = value
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(value).into_owned()
    };
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → POSIX seconds.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    // Every byte before the 'Z' must be an ASCII digit before anything is
    // sliced: the bytes come from the server, and a multi-byte character
    // (`1€00000000Z`) or a sign (`+1…`) must give None, not a panic or a
    // wrong year.
    let digits = value.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |d: &[u8]| {
        d.iter()
            .fold(0i64, |acc, &b| acc * 10 + i64::from(b - b'0'))
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| num(&rest[i..i + 2]);
    let (month, day, h, m, sec) = (n(0), n(2), n(4), n(6), n(8));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20000229000000Z"), Some(951_782_400));
        assert_eq!(time(0x17, b"2001010000Z"), None);
        assert_eq!(time(0x18, b"2000022900000Z"), None);
        assert_eq!(time(0x17, b"701301000000Z"), None);
        // Issue 19 fault 1: a multi-byte character in notBefore (12 bytes
        // before the Z) panicked slicing s[..2].
        assert_eq!(time(0x17, "1€00000000Z".as_bytes()), None);
        assert_eq!(time(0x18, "1€0000000000Z".as_bytes()), None);
        assert_eq!(time(0x18, "2000€0000000Z".as_bytes()), None);
        // Signs are not digits (str::parse would take "+1" as 1).
        assert_eq!(time(0x17, b"+10101000000Z"), None);
        assert_eq!(time(0x18, b"-0010101000000Z"), None);
        assert_eq!(time(0x17, b"Z"), None);
        assert_eq!(time(0x17, b""), None);
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend_from_slice(&[0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    /// A certificate skeleton with the given validity times (UTCTime).
    fn cert(not_before: &[u8], not_after: &[u8]) -> Vec<u8> {
        let cn = |v: &str| {
            let atv = [der(0x06, &[0x55, 0x04, 0x03]), der(0x0C, v.as_bytes())].concat();
            der(0x30, &der(0x31, &der(0x30, &atv)))
        };
        let validity = der(
            0x30,
            &[der(0x17, not_before), der(0x17, not_after)].concat(),
        );
        let tbs = [
            der(0xA0, &der(0x02, &[2])),
            der(0x02, &[1]),
            der(
                0x30,
                &der(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]),
            ),
            cn("issuer"),
            validity,
            cn("subject"),
        ]
        .concat();
        der(0x30, &der(0x30, &tbs))
    }

    #[test]
    fn multibyte_not_before_is_none_not_a_panic() {
        let good = cert(b"700101000000Z", b"491231235959Z");
        let f = facts(&good).expect("skeleton parses");
        assert_eq!(
            (f.subject.as_str(), f.issuer.as_str()),
            ("CN=subject", "CN=issuer")
        );
        assert_eq!((f.not_before, f.not_after), (0, 2_524_607_999));
        // Issue 19 fault 1: this notBefore killed the prober.
        assert_eq!(
            facts(&cert("1€00000000Z".as_bytes(), b"491231235959Z")),
            None
        );
        assert_eq!(
            facts(&cert(b"700101000000Z", "1€00000000Z".as_bytes())),
            None
        );
    }

    #[test]
    fn dotted_oids() {
        assert_eq!(
            dotted(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D]),
            "1.2.840.113549"
        );
        assert_eq!(attribute(&[0x55, 0x04, 0x03]), "CN");
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly structure bytes, so that the walk goes deep.
                    [0x30, 0x31, 0x06, 0x17, 0x82, 0x01, 0xA0, 0x02][(x % 8) as usize]
                        ^ (x >> 60) as u8
                })
                .collect();
            let _ = facts(&bytes);
        }
        assert_eq!(facts(&[]), None);
        assert_eq!(facts(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
