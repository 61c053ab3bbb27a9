//! Bad flags and bad targets files: each is refused before anything starts,
//! with exit status 2 and a message naming the flag or `FILE:LINE`.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs the binary; every case here must exit by itself within 20 s (a
/// refused input must never start probing), otherwise it is killed and fails.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latency-logger"))
        .args(args)
        .env_remove("LATENCY_LOGGER_SASL_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run binary");
    let status = support::process::wait_bounded(&mut child, Duration::from_secs(20));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_end(&mut stderr)
        .expect("read");
    Output {
        status,
        stdout,
        stderr,
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

#[test]
fn bad_targets_files_list_every_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus: &[(&str, &[u8], &[&str])] = &[
        (
            "interval.csv",
            b"5, http://127.0.0.1:1/\nfive, http://127.0.0.1:1/\n",
            &[":2: interval `five` is not a number of seconds"],
        ),
        (
            "zero.csv",
            b"0, http://127.0.0.1:1/\n",
            &[":1: interval `0` must be a positive number of seconds"],
        ),
        (
            "negative.csv",
            b"# c\n-3, http://127.0.0.1:1/\n",
            &[":2: interval `-3` must be a positive"],
        ),
        (
            "scheme.csv",
            b"5, ftp://127.0.0.1/\n",
            &[":1: URL `ftp://127.0.0.1/` has scheme `ftp`"],
        ),
        (
            "relative.csv",
            b"5, /x\n",
            &[":1: URL `/x` is not absolute"],
        ),
        (
            "fields.csv",
            b"5\n5, http://a.test/, x\n",
            &[
                ":1: expected 2 fields",
                ":2: expected 2 fields `interval_seconds, URL`, found 3",
            ],
        ),
        (
            "many.csv",
            b"\n1, http://ok.test/\nx, http://a.test/\n\n2, gopher://a.test/\n",
            &[":3: interval `x`", ":5: URL `gopher://a.test/`"],
        ),
        (
            "utf8.csv",
            b"5, http://\xff/\n",
            &[":1: URL is not valid UTF-8"],
        ),
        ("empty.csv", b"", &[": no targets"]),
        ("comments.csv", b"# nothing\n\n   \n", &[": no targets"]),
    ];
    for (name, text, expected) in corpus {
        let path = write(dir.path(), name, text);
        let out = run(&[&path]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: nothing may start");
        for e in *expected {
            assert!(
                err.contains(&format!("{path}{e}")),
                "{name}: expected `{path}{e}` in:\n{err}"
            );
        }
        // Every bad line is named, not just the first.
        assert_eq!(err.lines().count(), expected.len(), "{name}:\n{err}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = run(&["/nonexistent/targets.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/targets.csv: cannot read targets file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_name_the_flag_and_show_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = write(dir.path(), "ok.csv", b"5, http://127.0.0.1:1/\n");
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "--bogus"),
        (&["-Q", "0"], "-Q/--queue: `0`"),
        (&["-W", "many"], "-W/--workers: `many`"),
        (&["--timeout", "0"], "--timeout: `0`"),
        (&["--connect-timeout", "abc"], "--connect-timeout: `abc`"),
        (&["--splay", "-1"], "--splay: `-1`"),
        (&["-T", "x"], "without -B"),
        (
            &["-B", "127.0.0.1:1", "-X", "nonsense"],
            "-X: expected KEY=VALUE",
        ),
        (&["-B", "127.0.0.1:1", "-T", "bad topic"], "-T/--topic"),
    ];
    for (args, expected) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.push(&ok);
        let out = run(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in {err}"
        );
        assert!(err.contains("usage: latency-logger"), "{args:?}: {err}");
    }
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing the targets FILE"));
}

#[test]
fn bad_ca_file_is_refused_before_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = write(dir.path(), "ok.csv", b"5, https://127.0.0.1:1/\n");
    let junk = write(dir.path(), "junk.pem", b"not a certificate\n");
    for ca in ["/nonexistent/ca.pem", junk.as_str()] {
        let out = run(&["--cacert", ca, &ok]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(ca), "{}", stderr(&out));
    }
}

#[test]
fn help_and_version() {
    let out = run(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--queue",
        "--workers",
        "--connect-timeout",
        "--timeout",
        "--follow-redirects",
        "--splay",
        "--cacert",
        "--bootstrap-servers",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    let out = run(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("latency-logger "));
}
