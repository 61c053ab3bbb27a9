//! Throughput of the Kafka path into a local broker, as the Kafka sink runs
//! it: each probe Report is Avro-encoded (single-object framing, the default
//! without a registry), keyed by its URL and handed to the producer thread.
//!
//!     cargo run --release --example kafka_bench -- BOOTSTRAP TOPIC [RECORDS] [-X key=value]...
//!         [--spool DIR [--replay]]
//!
//! With `--spool DIR` every record goes through the disk spool first (as
//! the sink does with `--spool`, group commit every 1000 ms) and the line
//! adds disk bytes written per record (`/proc/self/io` write_bytes). With
//! `--replay` too, all RECORDS are first written to the spool with no
//! producer running (as a previous run left them), then the producer is
//! started and the figures time the replay alone.
//!
//! Sends RECORDS (default 200000) reports over 100 distinct URLs with
//! acks=all and linger 5 ms unless overridden with -X (librdkafka names), then
//! prints one line of key=value figures: records/s from the first send to the
//! last acknowledgement, Produce-request bytes per record, Avro bytes per
//! record. Exit 1 when any record was not delivered.
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use latency_logger::kafka::{KafkaConfig, Producer, Record, SpoolFeed};
use latency_logger::report::{AvroEncoder, ErrorKind, Framing, Report};
use latency_logger::spool::{Spool, SpoolConfig};

fn main() {
    let _ = simple_logger::init_with_level(log::Level::Warn);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: kafka_bench BOOTSTRAP TOPIC [RECORDS] [-X key=value]...");
        std::process::exit(2);
    }
    let mut cfg = KafkaConfig::new(&args[0]);
    cfg.topic = args[1].clone();
    cfg.linger = std::time::Duration::from_millis(5);
    let mut positional = Vec::new();
    let mut spool_dir: Option<std::path::PathBuf> = None;
    let mut replay = false;
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        if a == "--spool" {
            spool_dir = it.next().map(Into::into);
        } else if a == "--replay" {
            replay = true;
        } else if a == "-X" {
            let kv = it.next().map(String::as_str).unwrap_or("");
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if let Err(e) = cfg.set(k, v) {
                eprintln!("{e}");
                std::process::exit(2);
            }
        } else {
            positional.push(a.clone());
        }
    }
    let n: u64 = match positional.first().map(|s| s.parse()) {
        None => 200_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("RECORDS: {e}");
            std::process::exit(2);
        }
    };
    // The producer thread holds at most a quarter of `buffer`; the rest
    // waits in the channel. Room for everything: nothing is dropped.
    cfg.buffer = cfg.buffer.max(2 * n as usize);
    cfg.flush_timeout = std::time::Duration::from_secs(300);
    let encoder = match AvroEncoder::new(Framing::SingleObject) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Avro: {e}");
            std::process::exit(2);
        }
    };
    let feed = spool_dir.as_ref().map(|dir| {
        let spool = Spool::open(
            SpoolConfig {
                dir: dir.clone(),
                max_bytes: 1 << 30,
                sync_every: std::time::Duration::from_millis(1000),
            },
            Instant::now(),
        )
        .unwrap_or_else(|e| {
            eprintln!("spool: {e}");
            std::process::exit(2);
        });
        SpoolFeed::new(spool)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let urls: Vec<String> = (0..100)
        .map(|i| format!("https://host{i:02}.example.com/health"))
        .collect();
    let make = |i: u64| -> Record {
        let report = report(&urls[(i % 100) as usize], now + i as f64 * 1e-3, i);
        Record {
            value: encoder.encode(&report),
            key: report.url.into_bytes(),
            timestamp_ms: (report.timestamp * 1000.0) as i64,
        }
    };
    let mut avro_bytes = 0u64;
    if let (true, Some(feed)) = (replay, &feed) {
        for i in 0..n {
            let r = make(i);
            avro_bytes += r.value.len() as u64;
            if let Err(e) = feed.append(&r) {
                eprintln!("spool: {e}");
                std::process::exit(1);
            }
        }
        if let Err(e) = feed.sync_now(Instant::now()) {
            eprintln!("spool: {e}");
            std::process::exit(1);
        }
    }
    let io0 = write_bytes();
    let checked = match latency_logger::kafka::Checked::new(cfg.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(2);
        }
    };
    let p = match Producer::start_with(checked, feed.clone(), None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    // The group commit as the sink's thread does it, from this thread.
    let mut next_sync = Instant::now();
    for i in (0..n).filter(|_| !replay) {
        let r = make(i);
        avro_bytes += r.value.len() as u64;
        match &feed {
            None => p.send(r),
            Some(f) => {
                if let Err(e) = f.append(&r) {
                    eprintln!("spool: {e}");
                    std::process::exit(1);
                }
                if i % 256 == 0 && Instant::now() >= next_sync {
                    let _ = f.sync_if_due(Instant::now());
                    next_sync = Instant::now() + std::time::Duration::from_millis(100);
                }
            }
        }
    }
    let queued = t0.elapsed().as_secs_f64();
    if let Some(f) = &feed {
        // Wait for the producer to empty the spool, syncing meanwhile.
        while f.stats().pending > 0 && t0.elapsed().as_secs() < 300 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = f.sync_if_due(Instant::now());
        }
    }
    let s = p.close();
    if let Some(f) = &feed {
        let _ = f.sync_now(Instant::now());
    }
    let total = t0.elapsed().as_secs_f64();
    let per = |x: u64| x as f64 / s.delivered.max(1) as f64;
    println!(
        "records={n} delivered={} failed={} dropped={} queued_s={queued:.3} seconds={total:.3} \
         records_per_s={:.0} bytes_per_record={:.1} avro_bytes_per_record={:.1} acks={:?} linger_ms={} compression={:?}{}",
        s.delivered,
        s.failed,
        s.dropped,
        s.delivered as f64 / total,
        per(s.produce_bytes),
        avro_bytes as f64 / n.max(1) as f64,
        cfg.acks,
        cfg.linger.as_millis(),
        cfg.compression,
        match &feed {
            None => String::new(),
            Some(_) => format!(
                " spool={} disk_write_bytes_per_record={:.1}",
                if replay { "replay" } else { "live" },
                write_bytes().saturating_sub(io0) as f64 / n.max(1) as f64
            ),
        },
    );
    if s.delivered != n {
        std::process::exit(1);
    }
}

/// A plausible probe report: every tenth a failure, timings that vary.
fn report(url: &str, timestamp: f64, i: u64) -> Report {
    let jitter = (i % 97) as f64 * 1e-5;
    let failed = i % 10 == 9;
    Report {
        url: url.to_string(),
        code: if failed { 0 } else { 200 },
        timestamp,
        namelookup: 0.000_5 + jitter,
        connect: 0.001_2 + jitter,
        appconnect: if failed { 0.0 } else { 0.012 + jitter },
        pretransfer: if failed { 0.0 } else { 0.012_1 + jitter },
        starttransfer: if failed { 0.0 } else { 0.045 + jitter },
        total: 0.046 + jitter,
        size_download: if failed { 0 } else { 10_000 + (i % 100) as i64 },
        remote_ip: Some(format!("192.0.2.{}", i % 100)),
        http_version: (!failed).then(|| "HTTP/1.1".to_string()),
        error_kind: failed.then_some(ErrorKind::Connect),
        error: failed.then(|| "connection refused".to_string()),
        scheduled: timestamp - 0.000_1,
        lateness: 0.000_1,
        id: format!("0123456789abcdef-{i}"),
        source: "edge-device-42".into(),
        labels: vec![("site".to_string(), "ams".to_string())].into(),
        success: Some(!failed),
        name: None,
        redirect_count: 0,
        redirect_time: 0.0,
        effective_url: None,
        tls_version: None,
        tls_cipher: None,
        alpn: None,
        cert_subject: None,
        cert_issuer: None,
        cert_not_before: None,
        cert_not_after: None,
        cert_chain_not_after: None,
        ip_family: Some("ipv4".into()),
        addresses_tried: Vec::new(),
        fallback_time: 0.0,
    }
}

/// Bytes this process caused to be written to storage (`/proc/self/io`).
fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
