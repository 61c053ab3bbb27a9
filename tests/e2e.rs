//! End to end: the built binary against local HTTP and HTTPS servers, its
//! stdout parsed line by line, then SIGTERM and a clean exit.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::time::{Duration, Instant};
use support::process::{parse_lines, read_all, signal, spawn};
use support::{Cert, HttpServer, HttpsServer};

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    support::process::wait_bounded(child, limit)
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} not a number in {v}"))
}

#[test]
fn runs_schedule_against_local_targets_and_stops_on_sigterm() {
    let http = HttpServer::start();
    let https = HttpsServer::start();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("targets.csv");
    let targets = [
        (0.5, http.url("/fixed")),
        (0.5, https.url("/fixed")),
        (1.0, http.url("/status500")),
        (0.7, format!("http://127.0.0.1:{refused}/")),
        (1.0, http.url("/delay")),
    ];
    let mut text = String::from("# local targets\n");
    for (iv, url) in &targets {
        text.push_str(&format!("{iv}, {url}\n"));
    }
    std::fs::write(&csv, text).expect("write csv");
    let ca = https.ca_pem_path().display().to_string();

    let started = Instant::now();
    let mut child = spawn(&["-W", "4", "--cacert", &ca, csv.to_str().expect("path")]);
    std::thread::sleep(Duration::from_millis(3300));
    signal(&child, "-TERM");
    let elapsed = started.elapsed().as_secs_f64();
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    let records = parse_lines(&out);

    let mut by_url: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &records {
        by_url
            .entry(r["url"].as_str().expect("url").to_string())
            .or_default()
            .push(r);
    }
    for (iv, url) in &targets {
        let got = by_url.get(url).map_or(0, Vec::len) as f64;
        let want = (elapsed / iv).floor();
        assert!(
            (got - want).abs() <= 1.0,
            "{url}: {got} probes, expected {want} ± 1 in {elapsed:.2} s"
        );
    }
    for r in &records {
        let url = r["url"].as_str().expect("url");
        let kind = r["error_kind"].as_str();
        if url.ends_with("/fixed") || url.ends_with("/delay") || url.ends_with("/status500") {
            // A 500 is a response, judged by the default expectation (200-399).
            let (want_kind, want_success) = if url.ends_with("/status500") {
                (Some("expectation"), false)
            } else {
                (None, true)
            };
            assert_eq!(kind, want_kind, "{r}");
            assert_eq!(r["success"], want_success, "{r}");
            let order = [
                "namelookup",
                "connect",
                "pretransfer",
                "starttransfer",
                "total",
            ];
            for w in order.windows(2) {
                assert!(f(r, w[0]) <= f(r, w[1]), "{} > {} in {r}", w[0], w[1]);
            }
            assert!(f(r, "lateness") >= 0.0 && f(r, "lateness") < 0.5, "{r}");
            assert!(
                (f(r, "timestamp") - f(r, "scheduled") - f(r, "lateness")).abs() < 0.05,
                "{r}"
            );
        }
        if url.ends_with("/fixed") {
            assert_eq!(r["code"], 200);
            assert_eq!(r["size_download"], support::FIXED_BODY_LEN as u64);
        }
        if url.starts_with("https") {
            assert!(
                f(r, "appconnect") >= f(r, "connect") && f(r, "appconnect") <= f(r, "pretransfer"),
                "{r}"
            );
        }
        if url.ends_with("/status500") {
            assert_eq!(r["code"], 500);
            assert_eq!(r["error"], "status 500 not in 200-399");
        }
        if url.ends_with("/delay") {
            let server = f(r, "starttransfer") - f(r, "pretransfer");
            assert!((0.2..0.3).contains(&server), "{r}");
        }
        if url.contains(&format!(":{refused}/")) {
            assert_eq!(kind, Some("connect"), "{r}");
            assert_eq!(r["code"], 0);
        }
    }
    // Fixed rate: consecutive scheduled slots of a target are exactly one interval apart.
    let fixed = &by_url[&http.url("/fixed")];
    let mut slots: Vec<f64> = fixed.iter().map(|r| f(r, "scheduled")).collect();
    slots.sort_by(f64::total_cmp);
    for w in slots.windows(2) {
        assert!(
            ((w[1] - w[0]) - 0.5).abs() < 0.002,
            "slots drift: {slots:?}"
        );
    }
}

#[test]
fn full_queue_reports_skipped_and_never_blocks_the_schedule() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    // One worker stuck on /hang for 2 s, a queue of 1, and a fast target:
    // jobs due meanwhile must come out as `skipped` reports.
    std::fs::write(
        &csv,
        format!("0.1, {}\n0.1, {}\n", http.url("/hang"), http.url("/fixed")),
    )
    .expect("write");
    let mut child = spawn(&[
        "-W",
        "1",
        "-Q",
        "1",
        "--timeout",
        "1",
        csv.to_str().expect("path"),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-INT");
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    let records = parse_lines(&out);
    let skipped = records
        .iter()
        .filter(|r| r["error_kind"] == "skipped")
        .count();
    assert!(
        skipped >= 5,
        "expected many skipped reports, got {skipped} of {}",
        records.len()
    );
    let timeouts = records
        .iter()
        .filter(|r| r["error_kind"] == "timeout")
        .count();
    assert!(timeouts >= 1, "the hang should time out: {out}");
}

#[test]
fn closed_stdout_exits_quietly_with_zero() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, format!("0.05, {}\n", http.url("/fixed"))).expect("write");
    let mut child = spawn(&[csv.to_str().expect("path")]);
    // Read two lines, then close the pipe as `| head -2` would.
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("read");
        serde_json::from_str::<serde_json::Value>(&line).expect("json");
    }
    drop(lines);
    let status = wait(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn second_signal_exits_at_once_with_130() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    // A probe stuck on /hang keeps the graceful stop waiting; the second signal cuts it.
    std::fs::write(&csv, format!("0.1, {}\n", http.url("/hang"))).expect("write");
    let mut child = spawn(&["--timeout", "30", csv.to_str().expect("path")]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    // A repeat within 0.5 s is the same request delivered twice (as `timeout`
    // does to the process and its group): it must not cut the graceful stop.
    signal(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "should still wait for the hung probe"
    );
    signal(&child, "-TERM");
    let status = wait(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
}

#[test]
fn every_record_says_who_probed() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, format!("0.1, {}\n", http.url("/fixed"))).expect("write");
    let mut child = spawn(&[
        "--source",
        "edge-7",
        "--label",
        "site=ams",
        "--label",
        "uplink=lte 2",
        csv.to_str().expect("path"),
    ]);
    std::thread::sleep(Duration::from_millis(450));
    signal(&child, "-TERM");
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    let records = parse_lines(&out);
    assert!(records.len() >= 3, "{out}");
    let mut ids = std::collections::HashSet::new();
    for r in &records {
        assert_eq!(r["source"], "edge-7", "{r}");
        assert_eq!(
            r["labels"],
            serde_json::json!({"site": "ams", "uplink": "lte 2"}),
            "{r}"
        );
        assert!(ids.insert(r["id"].as_str().expect("id").to_string()), "{r}");
    }
}

#[test]
fn per_target_options_shape_the_request_and_the_verdict() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        format!(
            "0.1, {}, expect=500, name=expected failure, method=head\n\
             0.1, {}, expect=200-204, header=X-Probe: line\n\
             0.1, {}, timeout=0.2\n",
            http.url("/status500"),
            http.url("/fixed"),
            http.url("/hang"),
        ),
    )
    .expect("write");
    let mut child = spawn(&[
        "--header",
        "X-Probe: flag",
        "--header",
        "Authorization: Bearer s3cr3t",
        csv.to_str().expect("path"),
    ]);
    std::thread::sleep(Duration::from_millis(650));
    signal(&child, "-TERM");
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"));
    let records = parse_lines(&out);
    let of = |path: &str| -> Vec<&serde_json::Value> {
        records
            .iter()
            .filter(|r| r["url"].as_str().is_some_and(|u| u.ends_with(path)))
            .collect()
    };
    for r in of("/status500") {
        assert_eq!(
            (r["code"].as_i64(), r["success"].as_bool()),
            (Some(500), Some(true)),
            "{r}"
        );
        assert_eq!(r["name"], "expected failure", "{r}");
        assert_eq!(r["size_download"], 0, "HEAD has no body: {r}");
    }
    for r in of("/fixed") {
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["name"], serde_json::Value::Null);
    }
    let hung = of("/hang");
    assert!(!hung.is_empty());
    for r in hung {
        assert_eq!(r["error_kind"], "timeout", "{r}");
        assert!(f(r, "total") < 0.5, "timeout=0.2 not applied: {r}");
        assert_eq!(r["success"], false);
    }
    let heads: Vec<String> = http.requests();
    assert!(
        heads.iter().any(|h| h.starts_with("HEAD /status500")),
        "{heads:?}"
    );
    let fixed: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("GET /fixed"))
        .collect();
    assert!(!fixed.is_empty());
    for h in fixed {
        let lower = h.to_ascii_lowercase();
        assert!(
            lower.contains("x-probe: line") && !lower.contains("x-probe: flag"),
            "{h}"
        );
        assert!(lower.contains("authorization: bearer s3cr3t"), "{h}");
    }
}

#[test]
fn a_certificate_near_its_end_is_logged_once_a_day_and_described_in_each_record() {
    let https = HttpsServer::start_with(Cert::Expired);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, format!("0.1, {}\n", https.url("/fixed"))).expect("write");
    let ca = https.ca_pem_path().display().to_string();
    let mut child = spawn(&["--cacert", &ca, csv.to_str().expect("path")]);
    std::thread::sleep(Duration::from_millis(550));
    signal(&child, "-TERM");
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    let records = parse_lines(&out);
    assert!(records.len() >= 3, "{out}");
    for r in &records {
        assert_eq!(r["error_kind"], "tls", "{r}");
        assert_eq!(r["cert_not_after"], 1_577_836_800, "{r}");
        assert_eq!(r["cert_subject"], "CN=localhost", "{r}");
    }
    assert_eq!(err.matches("certificate expired").count(), 1, "{err}");
}

#[test]
fn ip_both_gives_a_dual_stack_pair_per_slot() {
    let http = HttpServer::start(); // 127.0.0.1 only: IPv6 is refused
    let port = http.addr().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        format!("0.1, http://pair.invalid:{port}/fixed, ip=both, resolve=127.0.0.1|::1\n"),
    )
    .expect("write");
    let mut child = spawn(&[csv.to_str().expect("path")]);
    std::thread::sleep(Duration::from_millis(450));
    signal(&child, "-TERM");
    let status = wait(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    let records = parse_lines(&out);
    let v4: Vec<_> = records
        .iter()
        .filter(|r| r["ip_family"] == "ipv4")
        .collect();
    let v6_failed: Vec<_> = records
        .iter()
        .filter(|r| {
            r["error_kind"] == "connect" && r["error"].as_str().is_some_and(|e| e.contains("[::1]"))
        })
        .collect();
    assert!(v4.len() >= 3, "{out}");
    assert_eq!(v4.len(), v6_failed.len(), "one of each per slot: {out}");
    let slots = |rs: &[&serde_json::Value]| {
        let mut v: Vec<String> = rs.iter().map(|r| r["scheduled"].to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(slots(&v4), slots(&v6_failed), "each pair shares its slot");
}
