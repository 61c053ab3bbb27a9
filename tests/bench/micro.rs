//! Criterion micro-benchmarks of the pure functions on the hot paths:
//! scheduler pop+push at three heap sizes, report encoding (Avro, JSON line),
//! targets CSV parsing, Kafka murmur2 partitioning. Kept short (a few seconds each) so `make bench` stays
//! bounded; run alone with `cargo bench --bench micro`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use latency_logger::kafka::partitioner;
use latency_logger::report::{AvroEncoder, Framing, Report};
use latency_logger::schedule::Schedule;
use latency_logger::targets;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Targets with mixed intervals 0.25 s … 1 h, deterministic.
fn intervals(n: usize) -> Vec<targets::Target> {
    const MIX_MS: [u64; 8] = [250, 500, 1_000, 2_000, 5_000, 60_000, 600_000, 3_600_000];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut text = String::with_capacity(n * 32);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = MIX_MS[(x % MIX_MS.len() as u64) as usize];
        text.push_str(&format!("{}, http://t{i}.test/\n", ms as f64 / 1000.0));
    }
    targets::parse("bench.csv", text.as_bytes()).expect("valid targets")
}

fn schedule_pop_push(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule_pop_due");
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut s = Schedule::new(intervals(n), Instant::now(), Duration::from_secs(1));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // Earliest deadline, then pop it and push its next slot: one dispatch.
                let at = s.next_deadline().expect("non-empty schedule");
                black_box(s.pop_due(black_box(at)))
            })
        });
    }
    g.finish();
}

fn sample_report() -> Report {
    Report {
        url: "https://edge-device-42.example.net/health".into(),
        code: 200,
        timestamp: 1_764_300_000.123_456,
        namelookup: 0.000_512,
        connect: 0.001_234,
        appconnect: 0.012_345,
        pretransfer: 0.012_400,
        starttransfer: 0.045_678,
        total: 0.046_789,
        size_download: 10_000,
        remote_ip: Some("192.0.2.10".into()),
        http_version: Some("HTTP/1.1".into()),
        error_kind: None,
        error: None,
        scheduled: 1_764_300_000.1,
        lateness: 0.000_123,
        id: "0123456789abcdef-123456".into(),
        source: "edge-device-42".into(),
        labels: vec![("site".to_string(), "ams".to_string())].into(),
        success: Some(true),
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

fn report_encoding(c: &mut Criterion) {
    let report = sample_report();
    let enc = AvroEncoder::new(Framing::SingleObject).expect("Avro encoder");
    let mut g = c.benchmark_group("report");
    g.bench_function("avro_encode_single_object", |b| {
        b.iter(|| black_box(enc.encode(black_box(&report))))
    });
    let mut out = Vec::with_capacity(1024);
    g.bench_function("json_line", |b| {
        b.iter(|| {
            out.clear();
            black_box(&report).write_json_line(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn csv_parse(c: &mut Criterion) {
    let mut text = String::new();
    for (i, iv) in intervals(1_000).iter().enumerate() {
        text.push_str(&format!(
            "{}, http://127.0.0.1:9/probe/target-{i:07}\n",
            iv.interval.as_secs_f64()
        ));
    }
    let mut g = c.benchmark_group("targets_parse");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("1000_lines", |b| {
        b.iter(|| black_box(targets::parse("bench.csv", black_box(text.as_bytes()))))
    });
    g.finish();
}

/// Java-compatible murmur2 partitioning of a URL key (once per record).
fn murmur2(c: &mut Criterion) {
    let key = b"https://edge-device-42.example.net/health";
    let mut g = c.benchmark_group("kafka");
    g.bench_function("murmur2_partition_for_url_key", |b| {
        b.iter(|| black_box(partitioner::partition_for(black_box(key), black_box(12))))
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500));
    targets = schedule_pop_push, report_encoding, csv_parse, murmur2
}
criterion_main!(micro);
