//! The producer against a scripted fake broker on loopback: failure cases a
//! real broker will not produce on demand (a lost reply, a refused batch, a
//! broker too old, garbage on the wire). Needs no harness; always runs.
//!
//! The fake speaks only old, non-flexible versions (ApiVersions v0,
//! Metadata v1, InitProducerId v0, Produce v3), all hand-encoded here, so
//! these tests do not share encoding code with the producer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use latency_logger::kafka::{ErrorKind, KafkaConfig, Producer, Record};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const PRODUCER_ID: i64 = 1000;

/// What the fake does with the n-th Produce request (0-based).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Ok,
    /// Every partition gets this error code.
    Error(i16),
    /// Read the request, then close the connection without a reply.
    Hangup,
}

#[derive(Default)]
struct Log {
    /// (request number, partition, batch bytes)
    batches: Vec<(usize, i32, Vec<u8>)>,
    produce_requests: usize,
    connections: usize,
}

struct Fake {
    addr: String,
    log: Arc<Mutex<Log>>,
}

fn put16(v: &mut Vec<u8>, x: i16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn put32(v: &mut Vec<u8>, x: i32) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn put64(v: &mut Vec<u8>, x: i64) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn put_str(v: &mut Vec<u8>, s: &str) {
    put16(v, s.len() as i16);
    v.extend_from_slice(s.as_bytes());
}

struct Cursor<'a>(&'a [u8]);
impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().expect("2"))
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4"))
    }
    fn string(&mut self) -> String {
        let n = self.i16();
        if n < 0 {
            return String::new();
        }
        String::from_utf8_lossy(self.take(n as usize)).into_owned()
    }
}

fn reply(s: &mut TcpStream, corr: i32, body: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::new();
    put32(&mut frame, (body.len() + 4) as i32);
    put32(&mut frame, corr);
    frame.extend_from_slice(body);
    s.write_all(&frame)
}

fn serve(
    mut s: TcpStream,
    port: u16,
    produce_max: i16,
    script: Arc<Vec<Answer>>,
    log: Arc<Mutex<Log>>,
) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
        if s.read_exact(&mut req).is_err() {
            return;
        }
        let mut c = Cursor(&req);
        let (key, version, corr) = (c.i16(), c.i16(), c.i32());
        let _client = c.string();
        let mut body = Vec::new();
        let ok = match (key, version) {
            (18, v) => {
                // ApiVersions: answer anything above v0 with UNSUPPORTED_VERSION.
                put16(&mut body, if v > 0 { 35 } else { 0 });
                let keys: &[(i16, i16, i16)] =
                    &[(0, 0, produce_max), (3, 0, 1), (18, 0, 0), (22, 0, 0)];
                put32(&mut body, keys.len() as i32);
                for (k, lo, hi) in keys {
                    put16(&mut body, *k);
                    put16(&mut body, *lo);
                    put16(&mut body, *hi);
                }
                reply(&mut s, corr, &body)
            }
            (3, 1) => {
                put32(&mut body, 1);
                put32(&mut body, 1);
                put_str(&mut body, "127.0.0.1");
                put32(&mut body, port as i32);
                put16(&mut body, -1);
                put32(&mut body, 1); // controller
                put32(&mut body, 1);
                put16(&mut body, 0);
                put_str(&mut body, TOPIC);
                body.push(0);
                put32(&mut body, PARTITIONS);
                for p in 0..PARTITIONS {
                    put16(&mut body, 0);
                    put32(&mut body, p);
                    put32(&mut body, 1);
                    put32(&mut body, 1);
                    put32(&mut body, 1);
                    put32(&mut body, 1);
                    put32(&mut body, 1);
                }
                reply(&mut s, corr, &body)
            }
            (22, 0) => {
                put32(&mut body, 0);
                put16(&mut body, 0);
                put64(&mut body, PRODUCER_ID);
                put16(&mut body, 0);
                reply(&mut s, corr, &body)
            }
            (0, 3) => {
                let _txn = c.string();
                let _acks = c.i16();
                let _timeout = c.i32();
                let mut parts = Vec::new();
                let n = {
                    let mut l = log.lock().expect("log");
                    l.produce_requests += 1;
                    l.produce_requests - 1
                };
                for _ in 0..c.i32() {
                    let _name = c.string();
                    for _ in 0..c.i32() {
                        let p = c.i32();
                        let len = c.i32() as usize;
                        let batch = c.take(len).to_vec();
                        log.lock().expect("log").batches.push((n, p, batch));
                        parts.push(p);
                    }
                }
                let answer = script.get(n).copied().unwrap_or(Answer::Ok);
                if answer == Answer::Hangup {
                    return;
                }
                let code = match answer {
                    Answer::Error(c) => c,
                    _ => 0,
                };
                put32(&mut body, 1);
                put_str(&mut body, TOPIC);
                put32(&mut body, parts.len() as i32);
                for p in parts {
                    put32(&mut body, p);
                    put16(&mut body, code);
                    put64(&mut body, if code == 0 { n as i64 * 100 } else { -1 });
                    put64(&mut body, -1);
                }
                put32(&mut body, 0);
                reply(&mut s, corr, &body)
            }
            _ => return,
        };
        if ok.is_err() {
            return;
        }
    }
}

fn fake(produce_max: i16, script: Vec<Answer>) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = log.clone();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            log2.lock().expect("log").connections += 1;
            let (script, log) = (script.clone(), log2.clone());
            std::thread::spawn(move || serve(s, port, produce_max, script, log));
        }
    });
    Fake {
        addr: format!("127.0.0.1:{port}"),
        log,
    }
}

fn cfg(addr: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(addr);
    c.topic = TOPIC.into();
    c.retry_backoff = Duration::from_millis(10);
    c.request_timeout = Duration::from_secs(5);
    c
}

fn send_n(p: &latency_logger::kafka::ProducerHandle, n: u64) {
    for i in 0..n {
        p.send(Record {
            key: format!("key-{}", i % 10).into_bytes(),
            value: i.to_be_bytes().to_vec(),
            timestamp_ms: i as i64,
        });
    }
}

fn batch_info(b: &[u8]) -> (i64, i32, i32) {
    let mut bytes = Bytes::copy_from_slice(b);
    let info = RecordBatchDecoder::decode_batch_info(&mut bytes).expect("batch");
    assert_eq!(info.len(), 1, "one batch per partition");
    (
        info[0].producer_id,
        info[0].base_sequence,
        info[0].record_count,
    )
}

/// For every partition: attempts of request 0 are resent byte for byte.
fn assert_resent_identically(log: &Log) {
    let first: Vec<_> = log.batches.iter().filter(|(n, _, _)| *n == 0).collect();
    assert!(!first.is_empty());
    for (_, p, bytes) in &first {
        let again = log
            .batches
            .iter()
            .find(|(n, q, _)| *n > 0 && q == p)
            .unwrap_or_else(|| panic!("partition {p} was not resent"));
        assert_eq!(
            &again.2, bytes,
            "partition {p}: the retry differs from the first attempt"
        );
        let (pid, seq, _) = batch_info(bytes);
        assert_eq!((pid, seq), (PRODUCER_ID, 0), "first batch of partition {p}");
    }
}

#[test]
fn retriable_error_resends_the_same_batch_with_the_same_sequence() {
    let f = fake(3, vec![Answer::Error(6)]); // NOT_LEADER_OR_FOLLOWER
    let p = Producer::start(cfg(&f.addr)).expect("start");
    send_n(&p, 30);
    let s = p.close();
    assert_eq!((s.delivered, s.failed, s.dropped), (30, 0, 0), "{s:?}");
    let log = f.log.lock().expect("log");
    assert_resent_identically(&log);
    // All 30 records were acknowledged exactly once across partitions.
    let acked: i32 = log
        .batches
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(_, _, b)| batch_info(b).2)
        .sum();
    assert_eq!(acked, 30);
}

#[test]
fn lost_reply_reconnects_and_resends_the_same_batch() {
    let f = fake(3, vec![Answer::Hangup]);
    let p = Producer::start(cfg(&f.addr)).expect("start");
    send_n(&p, 30);
    let s = p.close();
    assert_eq!((s.delivered, s.failed), (30, 0), "{s:?}");
    let log = f.log.lock().expect("log");
    assert!(log.connections >= 2, "reconnected");
    assert_resent_identically(&log);
}

#[test]
fn sequences_continue_across_batches() {
    let f = fake(3, vec![]);
    let mut c = cfg(&f.addr);
    c.linger = Duration::from_millis(0);
    let p = Producer::start(c).expect("start");
    for round in 0..3u64 {
        for i in 0..4u64 {
            p.send(Record {
                key: b"same-key".to_vec(),
                value: vec![round as u8, i as u8],
                timestamp_ms: 0,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = p.close();
    assert_eq!(s.delivered, 12);
    let log = f.log.lock().expect("log");
    let mut next = 0;
    for (_, _, b) in &log.batches {
        let (pid, seq, count) = batch_info(b);
        assert_eq!(pid, PRODUCER_ID);
        assert_eq!(seq, next, "base sequence continues");
        next += count;
    }
    assert_eq!(next, 12);
}

#[test]
fn a_full_buffer_drops_the_oldest_and_close_keeps_its_time_limit() {
    // The broker takes requests but never answers: nothing is delivered.
    let f = fake(3, vec![Answer::Hangup; 10_000]);
    let mut c = cfg(&f.addr);
    c.buffer = 100;
    c.flush_timeout = Duration::from_secs(1);
    let p = Producer::start(c).expect("start");
    send_n(&p, 1000);
    let t = std::time::Instant::now();
    let s = p.close();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!(s.delivered, 0, "{s:?}");
    assert_eq!(
        s.delivered + s.failed + s.dropped,
        1000,
        "every record counted once: {s:?}"
    );
    assert!(s.dropped >= 1000 - 100, "{s:?}");
    assert!(s.failed <= 100, "{s:?}");
}

#[test]
fn a_rejected_batch_leaves_no_sequence_gap() {
    let f = fake(3, vec![Answer::Error(87)]); // INVALID_RECORD, then fine
    let mut c = cfg(&f.addr);
    // Linger gathers each round into one batch; how the records split into
    // batches is not what this test checks, so expectations below come from
    // what the broker actually received.
    c.linger = Duration::from_millis(50);
    let p = Producer::start(c).expect("start");
    for round in 0..2u8 {
        for i in 0..5u8 {
            p.send(Record {
                key: b"k".to_vec(),
                value: vec![round, i],
                timestamp_ms: 0,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = p.close();
    let log = f.log.lock().expect("log");
    let batches: Vec<(i64, i32, i32)> = log.batches.iter().map(|(_, _, b)| batch_info(b)).collect();
    assert!(batches.len() >= 2, "{batches:?}");
    let rejected = batches[0].2 as u64;
    // The first batch was refused: its records fail, every other is delivered.
    assert_eq!((s.delivered, s.failed), (10 - rejected, rejected), "{s:?}");
    // Same producer id throughout; the batch after the refused one reuses its
    // sequence (no gap), and each later batch follows on from the one before.
    assert_eq!((batches[0].0, batches[0].1), (PRODUCER_ID, 0));
    let mut next = 0;
    for (pid, seq, count) in &batches[1..] {
        assert_eq!((*pid, *seq), (PRODUCER_ID, next), "{batches:?}");
        next += count;
    }
    assert_eq!(next as u64, 10 - rejected, "{batches:?}");
}

#[test]
fn a_batch_too_large_for_the_broker_is_split() {
    let f = fake(3, vec![Answer::Error(10)]); // MESSAGE_TOO_LARGE, then fine
    let mut c = cfg(&f.addr);
    c.linger = Duration::from_millis(50);
    let p = Producer::start(c).expect("start");
    for i in 0..6u8 {
        p.send(Record {
            key: b"k".to_vec(),
            value: vec![i; 100],
            timestamp_ms: 0,
        });
    }
    let s = p.close();
    assert_eq!((s.delivered, s.failed), (6, 0), "{s:?}");
    let log = f.log.lock().expect("log");
    let batches: Vec<(i32, i32)> = log
        .batches
        .iter()
        .map(|(_, _, b)| {
            let (_, seq, n) = batch_info(b);
            (seq, n)
        })
        .collect();
    // 6 refused, then halves; sequences restart at the refused base.
    assert_eq!(batches[0], (0, 6));
    assert_eq!(batches.iter().skip(1).map(|b| b.1).sum::<i32>(), 6);
    let mut next = 0;
    for (seq, n) in &batches[1..] {
        assert!(*n < 6);
        assert_eq!(*seq, next);
        next += n;
    }
}

#[test]
fn fatal_error_fails_the_records() {
    let f = fake(3, vec![Answer::Error(29); 100]); // TOPIC_AUTHORIZATION_FAILED
    let p = Producer::start(cfg(&f.addr)).expect("start");
    send_n(&p, 20);
    let s = p.close();
    assert_eq!((s.delivered, s.failed), (0, 20), "{s:?}");
}

#[test]
fn a_broker_without_produce_v3_is_refused_at_start() {
    let f = fake(2, vec![]);
    let e = Producer::start(cfg(&f.addr)).err().expect("must refuse");
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.message.contains("Produce versions 0..2"), "{e}");
}

#[test]
fn garbage_from_the_broker_is_a_clear_error() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let e = Producer::start(cfg(&addr)).err().expect("must fail");
    assert!(e.message.contains("invalid frame length"), "{e}");
    assert!(e.message.contains(&addr), "{e}");
}

#[test]
fn nothing_listening_starts_anyway_and_counts_what_it_could_not_deliver() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    // No broker answers: the producer starts (probing must not wait for
    // Kafka) and records wait; at close they are counted, not delivered.
    let mut c = cfg(&addr);
    c.flush_timeout = Duration::from_millis(500);
    let p = Producer::start(c).expect("starts without a broker");
    send_n(&p, 5);
    let t = std::time::Instant::now();
    let s = p.close();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!((s.delivered, s.failed, s.dropped), (0, 5, 0), "{s:?}");
}

#[test]
fn a_record_arriving_while_another_partition_lingers_waits_only_its_own_linger() {
    let f = fake(3, vec![]);
    let mut c = cfg(&f.addr);
    let linger = Duration::from_millis(400);
    c.linger = linger;
    let p = Producer::start(c).expect("start");
    let part = |k: &[u8]| latency_logger::kafka::partitioner::partition_for(k, PARTITIONS);
    let b = (0u8..=255)
        .map(|i| vec![b'k', i])
        .find(|k| part(k) != part(b"a"))
        .expect("another partition");
    let batches = || f.log.lock().expect("log").batches.len();
    p.send(Record {
        key: b"a".to_vec(),
        value: vec![1],
        timestamp_ms: 0,
    });
    // Half way through a's linger (the thread sleeps, holding a's record).
    std::thread::sleep(linger / 2);
    p.send(Record {
        key: b,
        value: vec![2],
        timestamp_ms: 0,
    });
    let sent = std::time::Instant::now();
    while batches() < 2 && sent.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = sent.elapsed();
    assert_eq!(batches(), 2);
    // Its own linger (400 ms), not the rest of a's and then its own (600 ms).
    assert!(took < linger + linger / 4, "sent after {took:?}");
    assert_eq!(p.close().delivered, 2);
}

/// A SASL broker that refuses the PLAIN login and echoes what it was sent
/// (user and password) with a terminal escape: the error quotes neither.
#[test]
fn a_broker_echoing_the_password_never_gets_it_quoted() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut req).is_err() {
                        return;
                    }
                    let mut c = Cursor(&req);
                    let (key, version, corr) = (c.i16(), c.i16(), c.i32());
                    let _client = c.string();
                    let mut body = Vec::new();
                    match key {
                        18 => {
                            put16(&mut body, if version > 0 { 35 } else { 0 });
                            let keys: &[(i16, i16, i16)] =
                                &[(0, 3, 3), (3, 0, 1), (17, 1, 1), (18, 0, 0), (36, 0, 0)];
                            put32(&mut body, keys.len() as i32);
                            for (k, lo, hi) in keys {
                                put16(&mut body, *k);
                                put16(&mut body, *lo);
                                put16(&mut body, *hi);
                            }
                        }
                        17 => {
                            put16(&mut body, 0);
                            put32(&mut body, 1);
                            put_str(&mut body, "PLAIN");
                        }
                        36 => {
                            let n = c.i32() as usize;
                            let sent = String::from_utf8_lossy(c.take(n)).replace('\0', " ");
                            put16(&mut body, 58); // SASL_AUTHENTICATION_FAILED
                            put_str(&mut body, &format!("\x1b[31mbad login:{sent}"));
                            put32(&mut body, 0);
                        }
                        _ => return,
                    }
                    if reply(&mut s, corr, &body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut c = cfg(&addr);
    let props: Vec<(String, String)> = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "ops"),
        ("sasl.password", "hunter2-Secret"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    c.apply(&props).expect("config");
    let e = Producer::start(c).err().expect("must refuse");
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("bad login"), "{e}");
    assert!(!e.message.contains("hunter2-Secret"), "{e}");
    assert!(!e.message.contains('\x1b'), "{e}");
    let detail = e.broker.and_then(|b| b.detail).unwrap_or_default();
    assert!(!detail.contains("hunter2-Secret"), "{detail}");
}
