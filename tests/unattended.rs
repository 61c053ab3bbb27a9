//! Unattended operation, with the binary: reloads, full disks, stalled
//! readers, hung probes at shutdown, signals during start-up, and credentials
//! that must never be written anywhere. Each test checks the exit status, that
//! every stdout line is complete JSON, and what stderr says.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::HttpServer;
use support::process::{
    finish, parse_lines, read_all, read_stdout_meanwhile, signal, spawn, spawn_drained, spawn_to,
    wait_bounded,
};

fn write_targets(path: &std::path::Path, lines: &[(f64, String)]) {
    let text: String = lines.iter().map(|(iv, u)| format!("{iv}, {u}\n")).collect();
    // Written whole and renamed, as an editor or a config manager would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write targets");
    std::fs::rename(&tmp, path).expect("rename targets");
}

fn count(records: &[serde_json::Value], key: &str, value: &str) -> usize {
    records.iter().filter(|r| r[key] == value).count()
}

#[test]
fn sighup_applies_a_new_list_and_a_bad_one_keeps_the_old() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    let (fixed, failing) = (http.url("/fixed"), http.url("/status500"));
    write_targets(&csv, &[(0.1, fixed.clone())]);
    let mut child = spawn(&[csv.to_str().expect("path")]);
    let stdout = read_stdout_meanwhile(&mut child);
    std::thread::sleep(Duration::from_millis(550));
    write_targets(&csv, &[(0.1, failing.clone()), (0.1, fixed.clone())]);
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(550));
    std::fs::write(&csv, "0.1, http://127.0.0.1:99999/\nnonsense\n").expect("write");
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(550));
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(15));
    let (_, err) = read_all(&mut child);
    let out = stdout.join().expect("stdout reader");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("reload: 1 added, 0 removed, 1 unchanged"),
        "{err}"
    );
    let path = csv.display();
    assert!(
        err.contains(&format!(
            "reload: {path}:1: URL `http://127.0.0.1:99999/`: bad port"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("reload: {path}:2: expected 2 fields")),
        "{err}"
    );
    assert!(
        err.contains("reload failed: still probing the previous targets"),
        "{err}"
    );
    let records = parse_lines(&out);
    // The new target ran from the first reload to the end, bad reload included.
    let failing_n = count(&records, "url", &failing);
    assert!(
        (6..=16).contains(&failing_n),
        "{failing_n} probes of the added target"
    );
    // The kept target never lost its phase: its slots stay 0.1 s apart.
    let mut slots: Vec<f64> = records
        .iter()
        .filter(|r| r["url"] == fixed.as_str())
        .map(|r| r["scheduled"].as_f64().expect("scheduled"))
        .collect();
    slots.sort_by(f64::total_cmp);
    assert!(
        slots.len() >= 14,
        "{} probes of the kept target",
        slots.len()
    );
    for w in slots.windows(2) {
        assert!(
            ((w[1] - w[0]) - 0.1).abs() < 0.002,
            "phase moved: {slots:?}"
        );
    }
}

#[test]
fn a_full_disk_ends_the_run_with_1_and_no_torn_line() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.02, http.url("/fixed"))]);
    let csv = csv.to_str().expect("path").to_string();

    // /dev/full: every write fails with ENOSPC.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut child = spawn_to(&[&csv], Stdio::from(full));
    let status = wait_bounded(&mut child, Duration::from_secs(15));
    let (_, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write to stdout: No space left on device"),
        "{err}"
    );
    assert!(err.contains("record(s) not written"), "{err}");
    assert!(!err.contains("; 0 record(s) not written"), "{err}");

    // A file that hits its size limit mid-line (as a full partition does):
    // the torn line is taken back.
    let out_path = dir.path().join("out.json");
    let out = std::fs::File::create(&out_path).expect("create");
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -f 8; exec \"$0\" \"$@\"",
            support::process::binary(),
            &csv,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn under ulimit");
    let status = wait_bounded(&mut child, Duration::from_secs(15));
    let (_, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert!(!err.contains("cut short"), "{err}");
    let text = std::fs::read_to_string(&out_path).expect("read output");
    let records = parse_lines(&text);
    assert!(!records.is_empty());
    assert!(text.len() <= 8 * 1024, "{} bytes", text.len());
}

#[test]
fn a_stalled_reader_never_blocks_probing_and_sigterm_still_stops() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.01, http.url("/fixed"))]);
    // stdout is a pipe nobody reads: it fills after ~150 records.
    let mut child = spawn(&[
        "--buffer",
        "50",
        "--stop-timeout",
        "1",
        "--flush-timeout",
        "1",
        csv.to_str().expect("path"),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let stopped = Instant::now();
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let took = stopped.elapsed();
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(4), "stop took {took:?}");
    assert!(err.contains("stdout is not keeping up"), "{err}");
    assert!(
        err.contains("not written: the reader did not take them within the flush timeout (1.0 s)"),
        "{err}"
    );
    // The scheduler and the workers went on at full rate: nothing skipped.
    let line = err
        .lines()
        .find(|l| l.contains("scheduler stopped:"))
        .expect("scheduler summary");
    assert!(line.contains(" 0 skipped (queue full)"), "{line}");
    let dispatched: u64 = line
        .split("scheduler stopped: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("dispatched count");
    assert!(dispatched >= 200, "{line}");
    parse_lines(&out);
}

#[test]
fn sigterm_with_hung_probes_stops_within_the_bound() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    let lines: Vec<(f64, String)> = (0..100).map(|_| (0.2, http.url("/hang"))).collect();
    write_targets(&csv, &lines);
    let mut child = spawn(&[
        "-W",
        "20",
        "--stop-timeout",
        "1",
        csv.to_str().expect("path"),
    ]);
    let stdout = read_stdout_meanwhile(&mut child);
    std::thread::sleep(Duration::from_millis(1000));
    let stopped = Instant::now();
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let took = stopped.elapsed();
    let (_, err) = read_all(&mut child);
    let out = stdout.join().expect("stdout reader");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        took < Duration::from_secs(3),
        "stop took {took:?} with --stop-timeout 1"
    );
    assert!(
        err.contains("20 probe(s) still running after --stop-timeout 1.0 s"),
        "{err}"
    );
    let records = parse_lines(&out);
    let interrupted: Vec<_> = records
        .iter()
        .filter(|r| r["error_kind"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 20, "{out}");
    for r in interrupted {
        assert!(r["connect"].as_f64().expect("connect") > 0.0, "{r}");
        assert!(r["total"].as_f64().expect("total") >= 1.0, "{r}");
        let e = r["error"].as_str().expect("error");
        assert!(
            e.contains("waiting for the response from 127.0.0.1:"),
            "{e}"
        );
    }
}

#[test]
fn signals_during_start_up_stop_it_like_any_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("targets.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut child = spawn(&[fifo.to_str().expect("path")]);
    std::thread::sleep(Duration::from_millis(300));
    // A reload request while the file is still being read does not kill it.
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "SIGHUP ended start-up"
    );
    let stopped = Instant::now();
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(5));
    assert!(stopped.elapsed() < Duration::from_secs(2));
    let (out, err) = read_all(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("stopped during start-up"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn credentials_never_leave_the_process() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    write_targets(
        &csv,
        &[
            (
                0.1,
                http.url("/status500")
                    .replace("http://", "http://admin:TopSecret@"),
            ),
            (0.1, format!("http://admin:TopSecret@127.0.0.1:{refused}/")),
            (
                0.1,
                http.url("/hang").replace("http://", "http://tok3nSecret@"),
            ),
        ],
    );
    let mut child = spawn(&[
        "-vv",
        "-W",
        "1",
        "-Q",
        "1",
        "--stop-timeout",
        "0.2",
        csv.to_str().expect("path"),
    ]);
    let stdout = read_stdout_meanwhile(&mut child);
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let (_, err) = read_all(&mut child);
    let out = stdout.join().expect("stdout reader");
    assert_eq!(status.code(), Some(0), "{err}");
    for secret in ["TopSecret", "tok3nSecret"] {
        assert!(!out.contains(secret), "{secret} in stdout");
        assert!(!err.contains(secret), "{secret} in stderr");
    }
    let records = parse_lines(&out);
    assert!(count(&records, "error_kind", "skipped") > 0, "{out}");
    assert!(records.iter().any(|r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://admin:***@"))
    }));
    assert!(records.iter().any(|r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://***@"))
    }));
    // Sent as Basic auth all the same.
    assert!(
        http.requests()
            .iter()
            .any(|h| h.contains("Basic YWRtaW46VG9wU2VjcmV0"))
    );
}

/// Secrets that parse badly: a registry password holding a `/` (the URL's
/// authority then ends inside it) and a header value cut at a `,` in the
/// targets file. With -vv, neither stderr nor stdout quotes them.
#[test]
fn credentials_that_parse_badly_never_leave_the_process() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.1, http.url("/fixed"))]);
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let registry = format!("http://reg:Reg/Pass0rdSecret@{}/", http.addr());
    let mut child = spawn(&[
        "-vv",
        "-B",
        &format!("127.0.0.1:{refused}"),
        "-S",
        &registry,
        "--flush-timeout",
        "0.2",
        csv.to_str().expect("path"),
    ]);
    let stdout = read_stdout_meanwhile(&mut child);
    std::thread::sleep(Duration::from_millis(800));
    if child.try_wait().expect("try_wait").is_none() {
        signal(&child, "-TERM");
    }
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let (_, err) = read_all(&mut child);
    let out = stdout.join().expect("stdout reader");
    for secret in ["Pass0rdSecret", "Reg/Pass"] {
        assert!(!out.contains(secret), "{secret} in stdout: {out}");
        assert!(!err.contains(secret), "{secret} in stderr: {err}");
    }
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("%2F"), "{err}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "0.1, {}, header=Authorization: Bearer ab,HdrTok3nSecret\n\
             0.1, {}, header=X-Key: ab,KeyTok3n=Secret\n",
            http.url("/fixed"),
            http.url("/fixed")
        ),
    )
    .expect("write targets");
    let mut child = spawn(&["-vv", bad.to_str().expect("path")]);
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let (out, err) = read_all(&mut child);
    for secret in ["HdrTok3nSecret", "KeyTok3n"] {
        assert!(!out.contains(secret), "{secret} in stdout: {out}");
        assert!(!err.contains(secret), "{secret} in stderr: {err}");
    }
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("header value cut at a `,`"), "{err}");
}

#[test]
fn a_closed_stderr_never_turns_into_a_panic() {
    use std::io::{BufRead, BufReader};
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.02, http.url("/fixed"))]);
    let out_path = dir.path().join("out.json");
    let out = std::fs::File::create(&out_path).expect("create");
    // -vv logs every probe: the next log line after the reader left hits EPIPE.
    let mut child = spawn_to(&["-vv", csv.to_str().expect("path")], Stdio::from(out));
    let err = child.stderr.take().expect("stderr");
    let mut first = String::new();
    BufReader::new(err)
        .read_line(&mut first)
        .expect("a log line");
    // The reader is gone now (as `2>&1 | head -1` leaves it).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "died with stderr closed"
    );
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let records = parse_lines(&std::fs::read_to_string(&out_path).expect("read"));
    assert!(records.len() >= 15, "{} records", records.len());
}

#[test]
fn a_panicking_probe_is_one_internal_record_and_probing_goes_on() {
    use std::io::{BufRead, BufReader};
    let http = HttpServer::start();
    let port = http.addr().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    // Test builds panic on a probe of this host (LATENCY_LOGGER_TEST_PANIC),
    // deep inside ureq, right after its name lookup.
    let text = format!(
        "0.1, http://panic.invalid:{port}/fixed, resolve=127.0.0.1, header=Authorization: Bearer s3cr3t-t0ken\n\
         0.1, {}\n",
        http.url("/fixed")
    );
    std::fs::write(&csv, text).expect("write targets");
    let mut child = std::process::Command::new(support::process::binary())
        .args(["-W", "1", csv.to_str().expect("path")])
        .env("LATENCY_LOGGER_TEST_PANIC", "panic.invalid")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Until three of each kind arrived (one worker: the same thread goes on).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut internal, mut ok) = (Vec::new(), 0);
    while (internal.len() < 3 || ok < 3) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let r: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        match r["error_kind"].as_str() {
            Some("internal") => internal.push(r),
            None => ok += 1,
            Some(other) => panic!("unexpected {other}: {r}"),
        }
    }
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let (_, err) = read_all(&mut child);
    let _ = reader.join();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(internal.len() >= 3 && ok >= 3, "{internal:?} {ok} {err}");
    for r in &internal {
        assert_eq!(r["success"], false, "{r}");
        assert_eq!(
            r["url"],
            format!("http://panic.invalid:{port}/fixed"),
            "{r}"
        );
        let e = r["error"].as_str().expect("error");
        assert!(
            e.starts_with("internal error: forced panic for a test"),
            "{e}"
        );
        assert!(e.contains("src/probe.rs:"), "{e}");
        assert!(!e.contains("--stop-timeout"), "{e}");
        assert!(r["namelookup"].as_f64().expect("namelookup") > 0.0, "{r}");
    }
    // Logged with the target's name; no default panic text, no secret.
    assert!(
        err.contains(&format!(
            "http://panic.invalid:{port}/fixed: the probe failed inside the prober"
        )),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(!err.contains("note: run with `RUST_BACKTRACE"), "{err}");
    assert!(!err.contains("unexpectedly"), "{err}");
}

#[test]
fn a_panicking_writer_ends_the_run_with_1_saying_so() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.1, http.url("/fixed"))]);
    let run = spawn_drained(
        &[csv.display().to_string()],
        &[("LATENCY_LOGGER_TEST_PANIC", "@stdout")],
    );
    // No signal: the writer's first batch panics and the run must end itself.
    let (code, out, err) = finish(run, Duration::from_secs(15));
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("the stdout writer failed (a bug): forced panic for a test"),
        "{err}"
    );
    assert!(err.contains("src/sink/stdout.rs:"), "{err}");
    assert!(err.contains("record(s) not written"), "{err}");
    assert!(!err.contains("; 0 record(s) not written"), "{err}");
    assert!(!err.contains("--stop-timeout"), "{err}");
}

#[test]
fn a_panicking_scheduler_ends_the_run_with_1_and_flushes_what_was_made() {
    let http = HttpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("t.csv");
    write_targets(&csv, &[(0.1, http.url("/fixed"))]);
    let run = spawn_drained(
        &[csv.display().to_string()],
        &[("LATENCY_LOGGER_TEST_PANIC", "@scheduler")],
    );
    let (code, out, err) = finish(run, Duration::from_secs(15));
    assert_eq!(code, Some(1), "{err}");
    // The scheduler panics at its fifth dispatch: the four jobs dispatched
    // are all written (probed, or skipped if still queued at the stop).
    let records = parse_lines(&out);
    assert_eq!(records.len(), 4, "{out}");
    assert!(
        records
            .iter()
            .all(|r| r["success"] == true || r["error"] == "shutting down"),
        "{out}"
    );
    assert!(
        err.contains("thread 'scheduler' panicked (a bug): forced panic for a test"),
        "{err}"
    );
    assert!(err.contains("src/schedule.rs:"), "{err}");
    assert!(!err.contains("--stop-timeout"), "{err}");
}
