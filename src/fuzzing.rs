//! Entry points for the fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly,
//! cargo-fuzz) and for their replay on stable (`tests/fuzz_replay.rs`):
//! one function per parser of bytes that come from outside, each taking any
//! bytes. None may panic; the cheap invariants checked here panic when they
//! fail, so the fuzzer reports them as crashes.
//!
//! Not part of the program's interface (hidden from the docs).

use crate::kafka::config::SaslMechanism;
use crate::kafka::protocol::{self as kp, Request as _};
use crate::kafka::sasl::ScramClient;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use std::sync::Arc;

/// A certificate's DER (`x509::facts`): None or facts, never a panic; names
/// stay cut to their limit and free of control characters.
pub fn x509(data: &[u8]) {
    if let Some(f) = crate::x509::facts(data) {
        for name in [&f.subject, &f.issuer] {
            assert!(name.chars().count() <= 257, "name not cut: {name:?}");
            assert!(!name.chars().any(char::is_control), "control in {name:?}");
        }
    }
}

/// A targets file's bytes (`targets::parse_with`, as `--targets FILE` reads
/// it): targets or problems, never a panic.
pub fn targets(data: &[u8]) {
    let defaults = Arc::new(crate::targets::Spec::default());
    match crate::targets::parse_with("fuzz.csv", data, &defaults) {
        Ok(list) => {
            assert!(!list.is_empty());
            for t in &list {
                assert!(t.url.request().is_ascii());
                assert!(t.interval.as_secs_f64() > 0.0);
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            // At most MAX_PROBLEMS lines, then one "… and N more".
            assert!(e.problems.len() <= 1001, "{} problems", e.problems.len());
            for p in &e.problems {
                assert!(p.starts_with("fuzz.csv"), "{p:?}");
            }
        }
    }
}

/// A URL (`url::parse`), from the bytes as UTF-8 (non-UTF-8 input is skipped:
/// URLs reach the parser as `&str`). The shown form and any error never
/// carry the userinfo as `redact::url` sees it.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `://user:password@` may recur verbatim in the path or query (and
    // the scheme, quoted on its own, holds no "://"): the one that is the
    // userinfo must be gone, so shown forms and messages hold fewer.
    let secret = userinfo_with_secret(text).map(|ui| format!("://{ui}@"));
    let fewer = |out: &str| {
        secret
            .as_ref()
            .is_none_or(|s| out.matches(s.as_str()).count() < text.matches(s.as_str()).count())
    };
    match crate::url::parse(text) {
        Ok(u) => {
            assert!(u.request().is_ascii(), "request form {:?}", u.request());
            assert_eq!(u.shown(), crate::redact::url(text));
            assert!(fewer(u.shown()), "{:?}", u.shown());
        }
        Err(msg) => assert!(fewer(&msg), "{msg:?}"),
    }
    location(data);
}

/// The same bytes as a redirect's `Location` (src/redirect.rs): resolved
/// against a fixed base; a hop it allows is an http(s) URL that passed the
/// target checks, and a same-origin hop keeps the base's host and port.
pub fn location(data: &[u8]) {
    let base = "http://u:pw@base.test:8080/a/b?q";
    let Some(origin) = crate::redirect::Origin::of(base) else {
        return;
    };
    let method = ureq::http::Method::POST;
    for code in [302, 307] {
        if let Ok(hop) = crate::redirect::next(base, data, code, &method, &origin) {
            let request = hop.url.request();
            assert!(
                request.starts_with("http://") || request.starts_with("https://"),
                "{request:?}"
            );
            assert!(crate::url::parse(request).is_ok(), "{request:?}");
            if !hop.same_origin {
                assert!(!request.contains("u:pw@"), "{request:?}");
            }
        }
    }
}

/// The `user:password` before the last '@' of the authority, the way
/// `redact::url` reads it, when it holds a password other than `***`.
fn userinfo_with_secret(text: &str) -> Option<&str> {
    let rest = &text[text.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty() && password != "***").then_some(userinfo)
}

/// A schema registry's reply to a registration (`{"id": N}`): an id or a
/// message of bounded size, whatever the body (the registry's text is
/// quoted cut short).
pub fn registry(data: &[u8]) {
    // ureq's read_to_string fails on non-UTF-8 (the caller then has "");
    // lossy decoding reaches the same parser with more inputs.
    let text = String::from_utf8_lossy(data);
    match crate::registry::parse_id(&text) {
        Ok(id) => {
            let v: serde_json::Value = serde_json::from_str(&text).expect("parsed once");
            assert_eq!(
                v.get("id").and_then(serde_json::Value::as_u64),
                Some(id.into())
            );
        }
        Err(msg) => assert!(msg.len() < 600, "message of {} bytes", msg.len()),
    }
    // The refusal message for a non-200 answer quotes the body this way.
    // MAX_SHOWN characters kept, each escaped to at most 10 (`\u{10ffff}`), then "…".
    let shown = crate::redact::value(text.trim());
    assert!(shown.chars().count() <= crate::redact::MAX_SHOWN * 10 + 1);
}

/// A Kafka response frame (without its size prefix), decoded as the
/// producer decodes it. `data[0]` picks the API (bit 7: expect another
/// correlation id than the frame's, for the mismatch path), `data[1]` the
/// version among those the producer may agree; the rest is the frame.
pub fn kafka_response(data: &[u8]) {
    let [sel, ver, frame @ ..] = data else {
        return;
    };
    let corr = if sel & 0x80 != 0 {
        0x7fff_fff0
    } else {
        frame
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, i32::from_be_bytes)
    };
    let version = |min: i16, max: i16| min + i16::from(*ver) % (max - min + 1);
    let bytes = Bytes::copy_from_slice(frame);
    match sel & 0x7f & 7 {
        0 => api_versions(version(0, kp::API_VERSIONS_MAX), corr, bytes),
        1 => {
            let v = version(kp::METADATA_MIN, kp::METADATA_MAX);
            let Ok(r) = kp::decode_response::<MetadataResponse>(ApiKey::Metadata, v, corr, bytes)
            else {
                return;
            };
            MetadataRequest::check(&r).expect("Metadata has no request-wide error");
            let first = r
                .topics
                .first()
                .and_then(|t| t.name.as_ref())
                .map(|n| n.0.to_string());
            for topic in first.iter().map(String::as_str).chain(["latency"]) {
                if let Ok(meta) = kp::parse_metadata(&r, topic)
                    && meta.topic_error.is_none()
                {
                    for (i, p) in meta.partitions.iter().enumerate() {
                        assert_eq!(p.id, i as i32, "partitions not 0..n");
                    }
                }
            }
        }
        2 => {
            let v = version(kp::PRODUCE_MIN, kp::PRODUCE_MAX);
            let Ok(r) = kp::decode_response::<ProduceResponse>(ApiKey::Produce, v, corr, bytes)
            else {
                return;
            };
            let topic = r.responses.first().map(|t| t.name.0.to_string());
            for p in kp::parse_produce(&r, topic.as_deref().unwrap_or("latency")) {
                if let Some(e) = p.error {
                    let _ = (kp::classify(e), kp::error_name(e));
                }
            }
        }
        3 => {
            let v = version(0, kp::INIT_PRODUCER_ID_MAX);
            if let Ok(r) = kp::decode_response::<InitProducerIdResponse>(
                ApiKey::InitProducerId,
                v,
                corr,
                bytes,
            ) && let Err(e) = InitProducerIdRequest::check(&r)
            {
                let _ = (e.to_string(), kp::classify(e.error));
            }
        }
        4 => {
            let v = version(kp::CREATE_TOPICS_MIN, kp::CREATE_TOPICS_MAX);
            if let Ok(r) =
                kp::decode_response::<CreateTopicsResponse>(ApiKey::CreateTopics, v, corr, bytes)
                && let Err(e) = CreateTopicsRequest::check(&r)
            {
                let _ = e.to_string();
            }
        }
        5 => {
            let v = version(0, kp::SASL_HANDSHAKE_MAX);
            if let Ok(r) =
                kp::decode_response::<SaslHandshakeResponse>(ApiKey::SaslHandshake, v, corr, bytes)
                && let Err(e) = SaslHandshakeRequest::check(&r)
            {
                let _ = e.to_string();
            }
        }
        6 => {
            let v = version(0, kp::SASL_AUTHENTICATE_MAX);
            let Ok(r) = kp::decode_response::<SaslAuthenticateResponse>(
                ApiKey::SaslAuthenticate,
                v,
                corr,
                bytes,
            ) else {
                return;
            };
            if let Err(e) = SaslAuthenticateRequest::check(&r) {
                let _ = e.to_string();
                return;
            }
            scram(*ver & 1 == 0, &r.auth_bytes);
        }
        _ => {
            // The size prefix, as the connection reads it first.
            if let Some(prefix) = data.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok())
                && let Ok(n) = kp::frame_len(prefix)
            {
                assert!((4..=kp::MAX_FRAME).contains(&n));
            }
        }
    }
}

fn api_versions(version: i16, corr: i32, frame: Bytes) {
    match kp::decode_api_versions(version, corr, frame) {
        Ok(kp::ApiVersionsReply::Ranges(keys)) => {
            if let Ok(v) = kp::negotiate(&keys) {
                assert!((kp::PRODUCE_MIN..=kp::PRODUCE_MAX).contains(&v.produce));
                assert!((kp::METADATA_MIN..=kp::METADATA_MAX).contains(&v.metadata));
                for (got, max) in [
                    (v.init_producer_id, kp::INIT_PRODUCER_ID_MAX),
                    (v.sasl_handshake, kp::SASL_HANDSHAKE_MAX),
                    (v.sasl_authenticate, kp::SASL_AUTHENTICATE_MAX),
                    (v.create_topics, kp::CREATE_TOPICS_MAX),
                ] {
                    assert!(got.is_none_or(|g| (0..=max).contains(&g)));
                }
            }
        }
        Ok(kp::ApiVersionsReply::UnsupportedVersion) => assert!(version > 0),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The SCRAM exchange on a broker's SaslAuthenticate bytes: server-first,
/// then the same bytes as server-final.
fn scram(sha256: bool, server: &[u8]) {
    let mechanism = if sha256 {
        SaslMechanism::ScramSha256
    } else {
        SaslMechanism::ScramSha512
    };
    let mut c = ScramClient::new(mechanism, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
        .expect("valid nonce");
    let _ = c.client_first();
    // The client accepts any iteration count from 4096 up (each costs one
    // HMAC per iteration): above the minimum only the key derivation would
    // be slower, so the fuzzer skips those to keep its pace.
    let iterations = std::str::from_utf8(server).ok().and_then(|s| {
        s.split(',')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "i")
            .map(|(_, v)| v.parse::<u32>().ok())
    });
    if matches!(iterations, Some(Some(n)) if n > 4096) {
        return;
    }
    if let Ok(fin) = c.client_final(server) {
        assert!(fin.starts_with(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL"));
        let _ = c.verify_server_final(server);
    }
}

/// A spool segment's bytes: the scan at open (`spool::scan`) and the reads
/// after it (`spool::frame_at`) agree, every record handed out is a whole
/// good frame of those bytes, and the walk always moves forward. Also the
/// ack file's parser on the same bytes.
pub fn spool(data: &[u8]) {
    use crate::spool::{self as sp, Frame};
    let end = data.len() as u64;
    let (records, last_end, corrupt, torn) = sp::scan(data, 0, end);
    assert!(last_end <= end);
    let (mut good, mut skipped, mut off) = (0, 0, 0u64);
    let mut last_good_end = 0;
    loop {
        match sp::frame_at(data, off, end) {
            Frame::Good(payload, next) => {
                assert!(next > off && next <= end);
                let at = off as usize;
                let frame = &data[at..next as usize];
                assert_eq!(frame[..4], sp::MAGIC.to_le_bytes());
                assert_eq!(frame[4..8], (payload.len() as u32).to_le_bytes());
                assert_eq!(frame[8..12], sp::checksum(&payload).to_le_bytes());
                assert_eq!(&frame[12..], &payload[..]);
                good += 1;
                off = next;
                last_good_end = next;
            }
            Frame::Skip(next) => {
                assert!(next > off && next < end);
                skipped += 1;
                off = next;
            }
            Frame::Torn => {
                assert!(torn);
                break;
            }
            Frame::End => {
                assert!(!torn);
                break;
            }
        }
    }
    assert_eq!((records, corrupt, last_end), (good, skipped, last_good_end));
    let ack = sp::parse_ack(data);
    assert!(ack.is_none() || data.len() == 24);
}
