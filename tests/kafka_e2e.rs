//! The binary against a real Apache Kafka (started by the harness in
//! tests/support/kafka): every report lands as an Avro record that an
//! independent consumer (confluent-kafka + fastavro) decodes to exactly what
//! the probe printed with `--stdout`.
//!
//! Needs `.ci/test-deps.sh` (Kafka jars, Python venv). Without them each test
//! says why it is skipped; with `LATENCY_LOGGER_REQUIRE_KAFKA=1` (set by
//! `make test`) a missing harness is a failure instead.

mod support;

use latency_logger::kafka::partitioner::partition_for;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;
use support::HttpServer;
use support::kafka::{Broker, Decode, Listener, Mode, Registry};
use support::process::{Running, finish, spawn_drained as spawn};

fn harness_ready(test: &str) -> bool {
    if support::kafka::kafka_available() {
        return true;
    }
    let why = "Kafka harness not installed (run .ci/test-deps.sh python kafka)";
    if std::env::var_os("LATENCY_LOGGER_REQUIRE_KAFKA").is_some() {
        panic!("{test}: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// Owned arguments from borrowed ones.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn term(run: &Running) {
    support::process::signal(&run.child, "-TERM");
}

fn targets_csv(dir: &std::path::Path, http: &HttpServer) -> (String, Vec<String>) {
    let urls = vec![
        http.url("/fixed"),
        http.url("/status500"),
        http.url("/redirect"),
        "http://127.0.0.1:9/refused".to_string(),
    ];
    let text: String = urls.iter().map(|u| format!("0.2, {u}\n")).collect();
    let path = dir.join("targets.csv");
    std::fs::write(&path, text).expect("csv");
    (path.display().to_string(), urls)
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Checks that the consumed records are exactly the printed reports: same
/// count, no duplicates, every field equal, key = URL, Kafka timestamp =
/// probe start, partition = Java murmur2 partition of the key, and per-URL
/// order kept (offsets rise with timestamps).
fn assert_same(printed: &[serde_json::Value], consumed: &[String], partitions: i32) {
    let consumed: Vec<serde_json::Value> = consumed
        .iter()
        .map(|l| serde_json::from_str(l).expect("consumer JSON"))
        .collect();
    assert_eq!(consumed.len(), printed.len(), "record count differs");
    // By id, not by timestamp text: the same double can print as
    // ...7539063 (Rust) and ...7539062 (Python), and serde_json's default
    // float parsing may land them 1 ULP apart (seen once in CI).
    let key = |v: &serde_json::Value| {
        (
            v["url"].as_str().unwrap_or("").to_string(),
            v["id"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut by_key: HashMap<(String, String), &serde_json::Value> = HashMap::new();
    for p in printed {
        assert!(
            by_key.insert(key(p), p).is_none(),
            "duplicate printed report {p}"
        );
    }
    let mut seen = HashSet::new();
    let mut last: HashMap<String, (i64, f64)> = HashMap::new();
    for c in &consumed {
        let value = &c["value"];
        let k = key(value);
        assert!(seen.insert(k.clone()), "duplicate record in Kafka: {value}");
        let p = by_key
            .get(&k)
            .unwrap_or_else(|| panic!("record not printed: {value}"));
        for (name, field) in p.as_object().expect("object") {
            let got = &value[name];
            match (field.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{name}: {a} vs {b}"),
                _ => assert_eq!(field, got, "{name} differs for {k:?}"),
            }
        }
        let url = value["url"].as_str().expect("url");
        assert_eq!(c["key"], url, "key must be the URL");
        let ts = (value["timestamp"].as_f64().expect("ts") * 1000.0) as i64;
        assert_eq!(c["timestamp_ms"].as_i64(), Some(ts));
        let part = c["partition"].as_i64().expect("partition");
        assert_eq!(
            part,
            i64::from(partition_for(url.as_bytes(), partitions)),
            "murmur2 partition of {url}"
        );
        let off = c["offset"].as_i64().expect("offset");
        let t = value["timestamp"].as_f64().expect("ts");
        if let Some((prev_off, prev_t)) = last.get(url)
            && off > *prev_off
        {
            assert!(t >= *prev_t, "{url}: order broken");
        }
        last.insert(url.to_string(), (off, t));
    }
}

#[test]
fn reports_land_in_kafka_as_decodable_avro_matching_the_json() {
    if !harness_ready("reports_land_in_kafka") {
        return;
    }
    let k = Broker::shared(Mode::All);
    let topic = k.unique_topic("probes", 3);
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (csv, urls) = targets_csv(dir.path(), &http);
    let args = owned(&[
        "--stdout",
        "-B",
        k.addr(Listener::Plaintext),
        "-T",
        &topic,
        &csv,
    ]);
    let child = spawn(&args, &[]);
    std::thread::sleep(Duration::from_millis(2100));
    term(&child);
    let (code, out, err) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    let printed = json_lines(&out);
    assert!(printed.len() >= 4 * 8, "{} reports", printed.len());
    for u in &urls {
        assert!(
            printed.iter().any(|p| p["url"] == u.as_str()),
            "no report for {u}"
        );
    }
    let consumed = k
        .consume(
            Listener::Plaintext,
            &topic,
            printed.len(),
            Duration::from_secs(60),
            &Decode::SingleObject,
        )
        .expect("consume");
    assert_same(&printed, &consumed, 3);
    assert!(
        err.contains(&format!(
            "{} records delivered, 0 not delivered",
            printed.len()
        )),
        "{err}"
    );
}

#[test]
fn sasl_ssl_scram_and_schema_registry_wire_format() {
    if !harness_ready("sasl_ssl_scram_and_schema_registry") {
        return;
    }
    let k = Broker::shared(Mode::All);
    let topic = k.unique_topic("probes-reg", 2);
    let registry = Registry::start(Some("reg:reg-secret"));
    let auth_url = registry
        .url
        .replacen("http://", "http://reg:reg-secret@", 1);
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (csv, _) = targets_csv(dir.path(), &http);
    let args = owned(&[
        "--stdout",
        "-B",
        k.addr(Listener::SaslSsl),
        "-T",
        &topic,
        "-S",
        &auth_url,
        "--security-protocol",
        "sasl_ssl",
        "--sasl-mechanism",
        "SCRAM-SHA-256",
        "--sasl-username",
        k.sasl_user(),
        "--ca-cert",
        k.ca(),
        "--compression",
        "gzip",
        &csv,
    ]);
    let child = spawn(
        &args,
        &[("LATENCY_LOGGER_SASL_PASSWORD", k.sasl_password())],
    );
    std::thread::sleep(Duration::from_millis(1500));
    term(&child);
    let (code, out, err) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !err.contains(k.sasl_password()) && !err.contains("reg-secret"),
        "secret in logs: {err}"
    );
    let printed = json_lines(&out);
    assert!(!printed.is_empty());
    let consumed = k
        .consume(
            Listener::Plaintext,
            &topic,
            printed.len(),
            Duration::from_secs(60),
            &Decode::Registry(&registry.url, Some("reg:reg-secret")),
        )
        .expect("consume via registry");
    assert_same(&printed, &consumed, 2);
}

#[test]
fn start_up_failures_are_clear_and_non_zero() {
    if !harness_ready("start_up_failures") {
        return;
    }
    let k = Broker::shared(Mode::All);
    let topic = k.unique_topic("probes-err", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "1, http://127.0.0.1:9/\n").expect("csv");
    let csv = csv.display().to_string();
    let s = owned;
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, i32, &'a str);
    let cases: Vec<Case> = vec![
        (
            s(&[
                "-B",
                k.addr(Listener::SaslPlaintext),
                "-T",
                &topic,
                "--security-protocol",
                "sasl_plaintext",
                "--sasl-mechanism",
                "SCRAM-SHA-512",
                "--sasl-username",
                k.sasl_user(),
                &csv,
            ]),
            vec![("LATENCY_LOGGER_SASL_PASSWORD", "wrong-password-123")],
            1,
            "SASL authentication failed for user alice",
        ),
        (
            s(&[
                "-B",
                k.addr(Listener::Ssl),
                "-T",
                &topic,
                "--security-protocol",
                "ssl",
                &csv,
            ]),
            vec![],
            1,
            "UnknownIssuer",
        ),
        (
            s(&[
                "-B",
                k.addr(Listener::Plaintext),
                "-T",
                "no-such-topic",
                &csv,
            ]),
            vec![],
            1,
            "topic no-such-topic does not exist",
        ),
        (
            s(&[
                "-B",
                k.addr(Listener::SaslPlaintext),
                "--security-protocol",
                "sasl_plaintext",
                "--sasl-mechanism",
                "PLAIN",
                "--sasl-username",
                "alice",
                &csv,
            ]),
            vec![],
            2,
            "LATENCY_LOGGER_SASL_PASSWORD",
        ),
        (
            s(&[
                "-B",
                k.addr(Listener::Plaintext),
                "-X",
                "linger.ms=soon",
                &csv,
            ]),
            vec![],
            2,
            "linger.ms",
        ),
        (
            s(&[
                "-B",
                k.addr(Listener::Plaintext),
                "-X",
                "no.such.property=1",
                &csv,
            ]),
            vec![],
            2,
            "no.such.property",
        ),
    ];
    for (args, env, want, text) in cases {
        let (code, out, err) = finish(spawn(&args, &env), Duration::from_secs(60));
        assert_eq!(code, Some(want), "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: expected {text:?} in {err}");
        assert!(out.is_empty(), "nothing may be probed: {out}");
        assert!(
            !err.contains("wrong-password-123"),
            "password leaked: {err}"
        );
    }
}

#[test]
fn broker_down_20s_mid_run_loses_and_duplicates_nothing() {
    if !harness_ready("broker_down_20s") {
        return;
    }
    // A private broker: this test stops it.
    let mut k = Broker::start(Mode::Plaintext);
    let topic = k.unique_topic("outage", 3);
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (csv, _) = targets_csv(dir.path(), &http);
    let args = owned(&[
        "--stdout",
        "-B",
        k.addr(Listener::Plaintext),
        "-T",
        &topic,
        "--flush-timeout",
        "30",
        &csv,
    ]);
    let child = spawn(&args, &[]);
    std::thread::sleep(Duration::from_secs(3));
    k.stop();
    std::thread::sleep(Duration::from_secs(20));
    k.restart();
    std::thread::sleep(Duration::from_secs(5));
    term(&child);
    let (code, out, err) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    let printed = json_lines(&out);
    // 4 targets every 0.2 s for the whole run, outage included: probing
    // never waits for Kafka.
    let ts: Vec<f64> = printed
        .iter()
        .filter_map(|p| p["timestamp"].as_f64())
        .collect();
    let span =
        ts.iter().cloned().fold(f64::MIN, f64::max) - ts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(span > 25.0, "probes covered only {span:.1} s: {err}");
    let mut per: HashMap<String, usize> = HashMap::new();
    for p in &printed {
        *per.entry(p["url"].to_string()).or_default() += 1;
    }
    assert!(
        printed.len() as f64 > span * 20.0 * 0.8,
        "{} reports in {span:.1} s: {per:?}",
        printed.len()
    );
    let consumed = k
        .consume_args(
            Listener::Plaintext,
            &topic,
            printed.len(),
            Duration::from_secs(90),
            &Decode::SingleObject,
            &["--settle", "3"],
        )
        .expect("consume");
    assert_same(&printed, &consumed, 3);
}

#[test]
fn records_of_the_previous_schema_and_this_one_decode_side_by_side() {
    if !harness_ready("records_of_the_previous_schema_and_this_one") {
        return;
    }
    let k = Broker::shared(Mode::All);
    let topic = k.unique_topic("probes-evolve", 1);
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().expect("tempdir");
    // The schema as this session found it: the first 16 fields.
    let mut old: serde_json::Value =
        serde_json::from_str(latency_logger::report::SCHEMA_JSON).expect("schema");
    old["fields"].as_array_mut().expect("fields").truncate(16);
    let old_path = dir.path().join("old.avsc");
    std::fs::write(&old_path, old.to_string()).expect("write old schema");
    let status = Command::new(support::kafka::venv_python())
        .arg(support::kafka::support_dir().join("produce_old.py"))
        .arg("--env")
        .arg(k.dir.join("env"))
        .args([
            "--topic",
            &topic,
            "--registry",
            &registry.url,
            "--count",
            "3",
        ])
        .arg("--schema")
        .arg(&old_path)
        .status()
        .expect("run produce_old.py");
    assert!(status.success(), "produce_old.py failed");

    let http = HttpServer::start();
    let (csv, _) = targets_csv(dir.path(), &http);
    let args = owned(&[
        "--stdout",
        "-B",
        k.addr(Listener::Plaintext),
        "-T",
        &topic,
        "-S",
        &registry.url,
        &csv,
    ]);
    let child = spawn(&args, &[]);
    std::thread::sleep(Duration::from_millis(700));
    term(&child);
    let (code, out, err) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    let printed = json_lines(&out);
    assert!(!printed.is_empty());
    let consumed = k
        .consume_args(
            Listener::Plaintext,
            &topic,
            3 + printed.len(),
            Duration::from_secs(60),
            &Decode::Registry(&registry.url, None),
            &["--any-registered-schema"],
        )
        .expect("consume old and new records");
    let values: Vec<serde_json::Value> = consumed
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["value"].clone())
        .collect();
    let fields = |v: &serde_json::Value| v.as_object().map_or(0, |o| o.len());
    let total = fields_now();
    assert_eq!(
        values.iter().filter(|v| fields(v) == 16).count(),
        3,
        "{values:?}"
    );
    assert_eq!(
        values.iter().filter(|v| fields(v) == total).count(),
        printed.len(),
        "{values:?}"
    );
}

/// Fields in the current schema.
fn fields_now() -> usize {
    let now: serde_json::Value =
        serde_json::from_str(latency_logger::report::SCHEMA_JSON).expect("schema");
    now["fields"].as_array().map_or(0, Vec::len)
}
