//! Throughput of the Kafka producer into a local broker.
//!
//!     cargo run --release --example kafka_bench -- BOOTSTRAP TOPIC [RECORDS] [VALUE_BYTES] [-X key=value]...
//!
//! Sends RECORDS (default 200000) records with ~VALUE_BYTES (default 200)
//! values and URL-like keys, acks=all, linger 5 ms (unless overridden), then
//! prints records/s (send → all acknowledged) and Produce bytes per record.
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use latency_logger::kafka::{KafkaConfig, Producer, Record};

fn main() {
    let _ = simple_logger::init_with_level(log::Level::Warn);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: kafka_bench BOOTSTRAP TOPIC [RECORDS] [VALUE_BYTES] [-X key=value]...");
        std::process::exit(2);
    }
    let mut cfg = KafkaConfig::new(&args[0]);
    cfg.topic = args[1].clone();
    let mut positional = Vec::new();
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        if a == "-X" {
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
    let n: u64 = positional
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let size: usize = positional
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // The producer thread holds at most a quarter of `buffer`; the rest
    // waits in the channel. Room for everything: nothing is dropped.
    cfg.buffer = cfg.buffer.max(2 * n as usize);
    cfg.flush_timeout = std::time::Duration::from_secs(300);
    let p = match Producer::start(cfg.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(2);
        }
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // Values: half pseudo-random bytes (like Avro doubles and longs), half
    // text, so that compression ratios are not flattered.
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let values: Vec<Vec<u8>> = (0..1024)
        .map(|_| {
            (0..size)
                .map(|j| {
                    if j % 2 == 0 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng as u8
                    } else {
                        b"https://example.com/health"[j % 26]
                    }
                })
                .collect()
        })
        .collect();
    let t0 = Instant::now();
    for i in 0..n {
        let key = format!("https://host{}.example.com/path", i % 100);
        let value = values[(i % 1024) as usize].clone();
        p.send(Record {
            key: key.into_bytes(),
            value,
            timestamp_ms: now_ms + i as i64,
        });
    }
    let queued = t0.elapsed();
    let s = p.close();
    let total = t0.elapsed();
    println!(
        "{} records of {} B, acks={:?}, linger={:?}, compression={:?}",
        n, size, cfg.acks, cfg.linger, cfg.compression
    );
    println!(
        "queued in {:.3} s; delivered {} failed {} dropped {} in {:.3} s: {:.0} records/s",
        queued.as_secs_f64(),
        s.delivered,
        s.failed,
        s.dropped,
        total.as_secs_f64(),
        s.delivered as f64 / total.as_secs_f64()
    );
    if s.delivered > 0 {
        println!(
            "Produce requests: {} bytes, {:.1} bytes/record (key ~{} B + value {} B)",
            s.produce_bytes,
            s.produce_bytes as f64 / s.delivered as f64,
            "https://host00.example.com/path".len(),
            size
        );
    }
}
