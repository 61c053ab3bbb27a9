//! Library-level tests of the Kafka producer against a real broker, through
//! the harness in tests/support/kafka: the shared broker (the one
//! tests/kafka.sh started, `LATENCY_LOGGER_KAFKA_ENV`, or one started here),
//! a private broker per outage test, and tansu when tests/kafka.sh runs it
//! (`LATENCY_LOGGER_TANSU_ENV`).
//!
//! Needs `.ci/test-deps.sh` (Kafka jars, Python venv). Without them each test
//! says why it is skipped; with `LATENCY_LOGGER_REQUIRE_KAFKA=1` a missing
//! harness is a failure instead.
//!
//! Records are read back with the harness's independent consumer
//! (`consume.py`, confluent-kafka/librdkafka), not with our own code.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latency_logger::kafka::partitioner::partition_for;
use latency_logger::kafka::{
    ErrorKind, KafkaConfig, Producer, Record, Sasl, SaslMechanism, SecurityProtocol,
};
use support::kafka::{Broker, Decode, Listener, Mode, Tansu};

/// Outage tests run one at a time: each starts, stops and restarts a
/// private broker (≈ 350 MB), never the shared one other tests use.
static OUTAGE: Mutex<()> = Mutex::new(());

fn say(msg: &str) {
    // Straight to stderr: the test harness does not capture this.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Logging on, and whether the harness is installed (else skip, or fail
/// when a broker is required).
fn harness_ready(test: &str) -> bool {
    // Producer logs (info and up; RUST_LOG overrides) show with a failure.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init();
    if support::kafka::kafka_available() {
        return true;
    }
    let why = "Kafka harness not installed (run .ci/test-deps.sh python kafka)";
    assert!(
        std::env::var_os("LATENCY_LOGGER_REQUIRE_KAFKA").is_none(),
        "{test}: {why}"
    );
    say(&format!("SKIP {test}: {why}"));
    false
}

/// The shared broker, when the harness is there.
fn harness(test: &str) -> Option<&'static Broker> {
    harness_ready(test).then(|| Broker::shared(Mode::All))
}

fn plaintext(k: &Broker, topic: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(k.addr(Listener::Plaintext));
    c.topic = topic.into();
    c
}

/// Reads `expect` records back with consume.py; fails on more (duplicates).
fn consume(k: &Broker, topic: &str, expect: usize, timeout_s: u64) -> Vec<Consumed> {
    let got = k.consume_args(
        Listener::Plaintext,
        topic,
        expect,
        Duration::from_secs(timeout_s),
        &Decode::Raw,
        &["--settle", "3"],
    );
    parse_all(got)
}

fn parse_all(got: Result<Vec<String>, String>) -> Vec<Consumed> {
    let lines = got.unwrap_or_else(|e| panic!("consume.py: {e}"));
    lines.iter().map(|l| parse_consumed(l)).collect()
}

#[derive(Debug)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: String,
    timestamp_ms: i64,
    value: Vec<u8>,
}

fn parse_consumed(line: &str) -> Consumed {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("consume.py line {line:?}: {e}"));
    let hex = v["value"].as_str().unwrap_or("");
    let value = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    Consumed {
        partition: v["partition"].as_i64().expect("partition") as i32,
        offset: v["offset"].as_i64().expect("offset"),
        key: v["key"].as_str().unwrap_or("").to_string(),
        timestamp_ms: v["timestamp_ms"].as_i64().unwrap_or(-1),
        value,
    }
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), n % 1_000_000_000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Record `seq`: key cycles over `keys` URLs; value = seq (8 bytes BE) + filler.
fn record(seq: u64, keys: u64, t0: i64) -> Record {
    let key = format!("https://site{}.example.org/health", seq % keys);
    let mut value = seq.to_be_bytes().to_vec();
    value.extend(std::iter::repeat_n(b'.', 120));
    Record {
        key: key.into_bytes(),
        value,
        timestamp_ms: t0 + seq as i64,
    }
}

fn seq_of(c: &Consumed) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.value[..8]);
    u64::from_be_bytes(b)
}

/// Every seq 0..n exactly once, partition = murmur2, per-key order by offset.
fn check_delivery(got: &[Consumed], n: u64, partitions: i32, t0: i64) {
    assert_eq!(got.len() as u64, n, "record count");
    let mut seen = HashSet::new();
    for c in got {
        let s = seq_of(c);
        assert!(seen.insert(s), "duplicate record {s}");
        assert_eq!(
            c.partition,
            partition_for(c.key.as_bytes(), partitions),
            "partition of key {}",
            c.key
        );
        assert_eq!(c.timestamp_ms, t0 + s as i64, "timestamp of record {s}");
    }
    assert_eq!(seen.len() as u64, n);
    assert!(seen.iter().all(|s| *s < n));
    let mut by_key: HashMap<&str, Vec<(i64, u64)>> = HashMap::new();
    for c in got {
        by_key
            .entry(&c.key)
            .or_default()
            .push((c.offset, seq_of(c)));
    }
    for (k, mut v) in by_key {
        v.sort();
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "records of key {k} are out of order"
        );
    }
}

#[test]
fn plaintext_delivers_everything_in_order_on_murmur2_partitions() {
    let Some(k) = harness("plaintext_delivers_everything") else {
        return;
    };
    let topic = unique("ll-plain");
    k.topic(&topic, 3);
    let n = 3000;
    let t0 = now_ms();
    let p = Producer::start(plaintext(k, &topic)).expect("start");
    for i in 0..n {
        p.send(record(i, 37, t0));
    }
    let s = p.close();
    assert_eq!((s.delivered, s.failed, s.dropped), (n, 0, 0), "{s:?}");
    let got = consume(k, &topic, n as usize, 60);
    check_delivery(&got, n, 3, t0);
}

#[test]
fn compression_and_non_idempotent_acks_1_round_trip() {
    let Some(k) = harness("compression_round_trips") else {
        return;
    };
    // snappy also runs without the idempotent producer and with acks=1.
    for codec in ["gzip", "snappy"] {
        let topic = unique(&format!("ll-{codec}"));
        k.topic(&topic, 3);
        let mut cfg = plaintext(k, &topic);
        cfg.set("compression.type", codec).expect("codec");
        if codec == "snappy" {
            cfg.set("enable.idempotence", "false").expect("idempotence");
            cfg.set("acks", "1").expect("acks");
        }
        let t0 = now_ms();
        let p = Producer::start(cfg).expect("start");
        for i in 0..500 {
            p.send(record(i, 11, t0));
        }
        let s = p.close();
        assert_eq!(s.delivered, 500, "{codec}: {s:?}");
        check_delivery(&consume(k, &topic, 500, 60), 500, 3, t0);
    }
}

/// A record the broker refuses (too large) is counted as failed, and the
/// records after it still arrive: no sequence gap stalls the partition. The
/// topic's limit is below the batch size, so batches must also be split.
#[test]
fn a_rejected_batch_is_counted_and_later_records_still_arrive() {
    let Some(k) = harness("rejected_batch") else {
        return;
    };
    let topic = unique("ll-toolarge");
    k.topic_with(&topic, 1, &["max.message.bytes=2000"]);
    let mut cfg = plaintext(k, &topic);
    cfg.linger = Duration::from_millis(0);
    let t0 = now_ms();
    let p = Producer::start(cfg).expect("start");
    let mut big = record(0, 1, t0);
    big.value.extend(std::iter::repeat_n(b'x', 5000));
    p.send(big);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..100 {
        p.send(record(i, 1, t0));
    }
    let s = p.close();
    assert_eq!((s.delivered, s.failed), (100, 1), "{s:?}");
    check_delivery(&consume(k, &topic, 100, 60), 100, 1, t0);
}

#[test]
fn missing_topic_is_a_clear_error_unless_created() {
    let Some(k) = harness("missing_topic") else {
        return;
    };
    let topic = unique("ll-missing");
    let e = Producer::start(plaintext(k, &topic))
        .err()
        .expect("must fail");
    assert_eq!(e.kind, ErrorKind::Topic, "{e}");
    assert!(e.message.contains(&topic), "{e}");
    assert!(e.message.contains("does not exist"), "{e}");

    let mut cfg = plaintext(k, &topic);
    cfg.create_topic = true;
    cfg.create_topic_partitions = 2;
    let t0 = now_ms();
    let p = Producer::start(cfg).expect("start with create_topic");
    p.send(record(0, 1, t0));
    assert_eq!(p.close().delivered, 1);
    check_delivery(&consume(k, &topic, 1, 60), 1, 2, t0);
}

fn sasl_cfg(
    k: &Broker,
    listener: Listener,
    mechanism: SaslMechanism,
    password: &str,
) -> KafkaConfig {
    let mut c = KafkaConfig::new(k.addr(listener));
    c.security_protocol = if listener == Listener::SaslSsl {
        c.tls.ca_file = Some(k.ca().into());
        SecurityProtocol::SaslSsl
    } else {
        SecurityProtocol::SaslPlaintext
    };
    c.sasl = Some(Sasl {
        mechanism,
        username: k.sasl_user().into(),
        password: password.into(),
    });
    c
}

#[test]
fn sasl_mechanisms_work_and_a_wrong_password_is_a_clear_error() {
    let Some(k) = harness("sasl") else {
        return;
    };
    let topic = unique("ll-sasl");
    k.topic(&topic, 3);
    let good = k.sasl_password();
    let user = k.sasl_user();
    let t0 = now_ms();
    let mut sent = 0;
    for listener in [Listener::SaslPlaintext, Listener::SaslSsl] {
        for m in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ] {
            let mut cfg = sasl_cfg(k, listener, m, good);
            cfg.topic = topic.clone();
            let p = Producer::start(cfg)
                .unwrap_or_else(|e| panic!("{listener:?} {m:?} with the right password: {e}"));
            for _ in 0..10 {
                p.send(record(sent, 5, t0));
                sent += 1;
            }
            assert_eq!(p.close().delivered, 10, "{listener:?} {m:?}");

            let mut cfg = sasl_cfg(k, listener, m, "not-the-password");
            cfg.topic = topic.clone();
            let e = Producer::start(cfg)
                .err()
                .expect("wrong password must fail");
            assert_eq!(e.kind, ErrorKind::Auth, "{e}");
            assert!(
                e.message
                    .contains(&format!("SASL authentication failed for user {user}")),
                "{e}"
            );
            assert!(!e.message.contains("not-the-password"), "{e}");
        }
    }
    check_delivery(&consume(k, &topic, sent as usize, 60), sent, 3, t0);
}

#[test]
fn tls_and_mutual_tls_deliver() {
    let Some(k) = harness("tls") else {
        return;
    };
    let topic = unique("ll-tls");
    k.topic(&topic, 3);
    let t0 = now_ms();
    let mut cfg = KafkaConfig::new(k.addr(Listener::Ssl));
    cfg.topic = topic.clone();
    cfg.security_protocol = SecurityProtocol::Ssl;
    cfg.tls.ca_file = Some(k.ca().into());
    let p = Producer::start(cfg.clone()).expect("TLS start");
    for i in 0..50 {
        p.send(record(i, 7, t0));
    }
    assert_eq!(p.close().delivered, 50);

    cfg.bootstrap = vec![k.addr(Listener::Mtls).to_string()];
    cfg.tls.cert_file = Some(k.client_cert().into());
    cfg.tls.key_file = Some(k.client_key().into());
    let p = Producer::start(cfg.clone()).expect("mTLS start");
    for i in 50..100 {
        p.send(record(i, 7, t0));
    }
    assert_eq!(p.close().delivered, 50);

    // Without the client certificate the mTLS listener refuses us.
    cfg.tls.cert_file = None;
    cfg.tls.key_file = None;
    let e = Producer::start(cfg)
        .err()
        .expect("mTLS without a certificate");
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    check_delivery(&consume(k, &topic, 100, 60), 100, 3, t0);
}

#[test]
fn bad_ca_is_a_clear_tls_error() {
    let Some(k) = harness("bad_ca") else {
        return;
    };
    let addr = k.addr(Listener::Ssl);
    // A CA file holding a certificate that did not sign the broker's.
    let mut cfg = KafkaConfig::new(addr);
    cfg.security_protocol = SecurityProtocol::Ssl;
    cfg.tls.ca_file = Some(k.client_cert().into());
    let e = Producer::start(cfg.clone())
        .err()
        .expect("bad CA must fail");
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    assert!(
        e.message
            .contains(&format!("TLS handshake with {addr} failed")),
        "{e}"
    );
    assert!(e.message.contains("UnknownIssuer"), "{e}");
    // No CA file: the public web roots do not know the test CA either.
    cfg.tls.ca_file = None;
    let e = Producer::start(cfg).err().expect("webpki roots must fail");
    assert!(e.message.contains("UnknownIssuer"), "{e}");
}

#[test]
fn broker_outage_loses_nothing_and_duplicates_nothing() {
    outage("broker_outage", "stop", Duration::from_secs(20));
}

/// SIGKILL mid-run: requests in flight lose their replies; the idempotent
/// producer resends them and the broker must not store them twice.
#[test]
fn broker_crash_loses_nothing_and_duplicates_nothing() {
    outage("broker_crash", "kill", Duration::from_secs(5));
}

/// SIGSTOP: connections stay open but nothing answers, so replies time out
/// (request_timeout 3 s) although the broker may have written the batch:
/// the resend must be recognised as a duplicate.
#[test]
fn hung_broker_loses_nothing_and_duplicates_nothing() {
    outage("hung_broker", "pause", Duration::from_secs(10));
}

fn outage(name: &str, how: &str, down: Duration) {
    if !harness_ready(name) {
        return;
    }
    let _g = OUTAGE.lock();
    // Stopped when dropped, however the test ends.
    let mut k = Broker::start(Mode::Plaintext);
    let topic = unique(&format!("ll-{how}"));
    k.topic(&topic, 3);
    let mut cfg = plaintext(&k, &topic);
    cfg.flush_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_secs(3);
    cfg.linger = Duration::from_millis(2);
    let t0 = now_ms();
    let p = Producer::start(cfg).expect("start");
    let sender = p.sender();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // 200 records/s from another thread for the whole test.
    let feeder = std::thread::spawn(move || {
        let mut i = 0u64;
        let start = Instant::now();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            sender.send(record(i, 23, t0));
            i += 1;
            let due = start + Duration::from_millis(5 * i);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        i
    });
    std::thread::sleep(Duration::from_secs(3));
    say(&format!("{name}: broker.sh {how}"));
    match how {
        "stop" => k.stop(),
        "kill" => k.kill(),
        _ => k.pause(),
    }
    std::thread::sleep(down);
    say(&format!("{name}: broker back"));
    match how {
        "pause" => k.resume(),
        _ => k.restart(),
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = feeder.join().expect("feeder");
    let s = p.close();
    say(&format!("{name}: sent {n}, {s:?}"));
    assert_eq!((s.delivered, s.failed, s.dropped), (n, 0, 0), "{s:?}");
    check_delivery(&consume(&k, &topic, n as usize, 90), n, 3, t0);
}

/// A Kafka-compatible broker (tansu, via the harness's tansu.sh). Runs when
/// `LATENCY_LOGGER_TANSU_ENV=DIR/env` is set as well.
#[test]
fn tansu_compatibility() {
    if !harness_ready("tansu_compatibility") {
        return;
    }
    let Some(t) = Tansu::from_env() else {
        // In CI tests/kafka.sh fails earlier if tansu cannot start.
        say("SKIP tansu_compatibility: LATENCY_LOGGER_TANSU_ENV is not set (tansu.sh start DIR)");
        return;
    };
    let topic = unique("ll-tansu");
    t.topic(&topic, 3);
    let mut cfg = KafkaConfig::new(&t.addr);
    cfg.topic = topic.clone();
    let t0 = now_ms();
    let p = Producer::start(cfg).expect("start against tansu");
    for i in 0..500 {
        p.send(record(i, 13, t0));
    }
    let s = p.close();
    assert_eq!((s.delivered, s.failed, s.dropped), (500, 0, 0), "{s:?}");
    let got = t.consume_args(
        &topic,
        500,
        Duration::from_secs(90),
        &Decode::Raw,
        &["--settle", "3"],
    );
    check_delivery(&parse_all(got), 500, 3, t0);
}
