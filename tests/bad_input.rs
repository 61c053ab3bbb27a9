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
                ":2: expected key=value after the URL (method, header, expect, match, timeout, name, ip, bind, resolve), found `x`",
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
            &[":1: URL `http://\u{fffd}/` is not valid UTF-8"],
        ),
        (
            "options.csv",
            b"5, http://a.test/, colour=red\n5, http://a.test/, header=X-Token: s3cr3t\x7f\n5, http://a.test/, expect=2xx\n",
            &[
                ":1: unknown option `colour` (known: method, header, expect, match, timeout, name, ip, bind, resolve)",
                ":2: header `X-Token`: its value has characters a header cannot carry",
                ":3: expect: `2xx` is not a status code or range (100-599, e.g. 200-299|301)",
            ],
        ),
        (
            "port.csv",
            b"2, http://127.0.0.1:99999/\n2, http://127.0.0.1:70000/\n2, http://127.0.0.1:-1/\n2, http://127.0.0.1:abc/\n",
            &[
                ":1: URL `http://127.0.0.1:99999/`: bad port \"99999\" (1-65535)",
                ":2: URL `http://127.0.0.1:70000/`: bad port \"70000\" (1-65535)",
                ":3: URL `http://127.0.0.1:-1/`: bad port \"-1\" (1-65535)",
                ":4: URL `http://127.0.0.1:abc/`: bad port \"abc\" (1-65535)",
            ],
        ),
        (
            "secret.csv",
            b"2, http://admin:TopSecret@127.0.0.1:0/\n",
            &[":1: URL `http://***@127.0.0.1:0/`: bad port \"0\" (1-65535)"],
        ),
        (
            "escapes.csv",
            b"\x1b]0;owned\x07\x1b[2J, http://a.test/\n",
            &[":1: interval `\\u{1b}]0;owned\\u{7}\\u{1b}[2J` is not a number of seconds"],
        ),
        (
            "binary.csv",
            b"\x7fELF\x02\x01\x01\n\x00\x00\x00\x00\n",
            &[":2: NUL byte: this is not a text file of `interval, URL` lines"],
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
        assert!(
            !err.contains("TopSecret") && !err.contains("s3cr3t"),
            "{name}: secret in {err}"
        );
        assert!(
            !err.contains('\x1b') && !err.contains('\0'),
            "{name}: raw control characters"
        );
        // --check names the same problems, with the same status, and starts nothing.
        let check = run(&["--check", &path]);
        assert_eq!(check.status.code(), Some(2), "{name}: --check");
        assert_eq!(stderr(&check), err, "{name}: --check differs from a run");
    }
}

#[test]
fn a_huge_line_is_quoted_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = vec![b'9'; 20 << 20];
    text.extend_from_slice(b"x, http://a.test/\n");
    let path = write(dir.path(), "huge.csv", &text);
    let out = run(&[&path]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.len() < 500, "{} bytes of stderr", err.len());
    assert!(err.contains(&format!("{path}:1: interval `999")), "{err}");
    assert!(err.contains("…` is not a number of seconds"), "{err}");
}

#[test]
fn byte_order_mark_and_idn_are_accepted_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bom.csv",
        "\u{feff}1, http://127.0.0.1:1/\n2.5, https://bücher.example/\n".as_bytes(),
    );
    let out = run(&["--check", "-W", "7", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with(&format!(
            "{path}: OK, 2 target(s) (1 http, 1 https), intervals 1 s to 2.5 s; 7 worker(s)"
        )),
        "{summary}"
    );
    assert!(
        summary.contains("output: JSON lines on stdout"),
        "{summary}"
    );
}

#[test]
fn absurd_sizes_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = write(dir.path(), "ok.csv", b"5, http://127.0.0.1:1/\n");
    for (args, expected) in [
        (
            ["-Q", "18446744073709551615"],
            "-Q/--queue: `18446744073709551615` is more than the maximum of 100000",
        ),
        (
            ["-Q", "100000000"],
            "-Q/--queue: `100000000` is more than the maximum of 100000",
        ),
        (
            ["-W", "100000"],
            "-W/--workers: `100000` is more than the maximum of 1024",
        ),
        (
            ["--buffer", "18446744073709551615"],
            "--buffer: `18446744073709551615` is more than the maximum of 1000000",
        ),
        (["--stop-timeout", "1e9"], "--stop-timeout: `1e9` must be"),
    ] {
        let out = run(&[args[0], args[1], &ok]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
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
        "--stop-timeout",
        "--flush-timeout",
        "--buffer",
        "--stdout",
        "--check",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    let out = run(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("latency-logger "));
}

/// Issue 19 fault 6: a framing header set by hand made every probe wait to
/// its timeout. Each is refused at load, named with its line, whatever its
/// case, and its value is never quoted; `--header` refuses them the same way.
#[test]
fn framing_headers_are_refused_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = [
        "Content-Length",
        "transfer-encoding",
        "CONNECTION",
        "TE",
        "Trailer",
        "Upgrade",
        "Keep-Alive",
        "Proxy-Connection",
        "Host",
    ];
    let mut text = String::from("5, http://127.0.0.1:1/, header=X-Fine: ok\n");
    for (i, n) in names.iter().enumerate() {
        text.push_str(&format!("5, http://127.0.0.1:1/, header={n}: v4lue{i}x\n"));
    }
    let path = write(dir.path(), "framing.csv", text.as_bytes());
    for args in [vec![path.as_str()], vec!["--check", path.as_str()]] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "nothing may start: {args:?}");
        assert_eq!(err.lines().count(), names.len(), "{err}");
        for (i, n) in names.iter().enumerate() {
            let line = i + 2;
            let shown = n.to_ascii_lowercase();
            assert!(
                err.lines()
                    .any(|l| l.contains(&format!("{path}:{line}: header `"))
                        && l.to_ascii_lowercase()
                            .contains(&format!("`{shown}` cannot be set"))),
                "line {line} ({n}) not named in:\n{err}"
            );
        }
        assert!(!err.contains("v4lue"), "a header value is quoted:\n{err}");
    }
    let ok = write(dir.path(), "ok.csv", b"5, http://127.0.0.1:1/\n");
    for n in ["Content-Length", "transfer-encoding", "Host"] {
        let flag = format!("{n}: s3cr3tv4lue");
        let out = run(&["--check", "--header", &flag, &ok]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "--header {n}: {err}");
        assert!(
            err.contains("--header: header `") && err.contains("cannot be set"),
            "--header {n}: {err}"
        );
        assert!(!err.contains("s3cr3tv4lue"), "{err}");
    }
}

/// Issue 19 fault 7: a password holding `?`, `#`, `/` or `,` was quoted as a
/// "port", and a `-X` pair with `:` for `=` was echoed whole.
#[test]
fn passwords_in_bad_input_are_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "pw.csv",
        b"2, http://user:Sec?ret9@127.0.0.1:1/\n2, http://user:Sec#ret9@127.0.0.1:1/\n2, http://user:Sec/ret9@127.0.0.1:1/\n2, http://user:Sec,ret9@127.0.0.1:1/\n",
    );
    let out = run(&["--check", &path]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 4, "{err}");
    for line in 1..=4 {
        assert!(err.contains(&format!("{path}:{line}: ")), "{line}: {err}");
    }
    assert!(!err.contains("Sec") && !err.contains("ret9"), "{err}");
    let ok = write(dir.path(), "ok.csv", b"5, http://127.0.0.1:1/\n");
    for arg in ["sasl.password:hunter2", "sasl.password hunter2", "=hunter2"] {
        let out = run(&["--check", "-B", "127.0.0.1:1", "-X", arg, &ok]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains("-X: "), "{arg}: {err}");
        assert!(!err.contains("hunter2"), "{arg}: {err}");
    }
}

/// `--check` builds what a run builds: every Kafka setting that makes a run
/// exit 2 makes `--check` exit 2 with the same message (one bad value for
/// every property the producer knows, and an unknown one).
#[test]
fn check_rejects_every_bad_kafka_setting_a_run_rejects() {
    use latency_logger::kafka::config::KNOWN_KEYS;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(dir.path(), "t.csv", b"5, http://127.0.0.1:1/\n");
    let garbage = write(dir.path(), "garbage.pem", b"not a certificate\n");
    let ssl = "security.protocol=ssl";
    let cases: &[(&str, &[&str])] = &[
        ("bootstrap.servers", &["bootstrap.servers=nohostport"]),
        ("metadata.broker.list", &["metadata.broker.list=nohostport"]),
        ("topic", &["topic=a b"]),
        ("client.id", &["client.id="]),
        ("security.protocol", &["security.protocol=tls"]),
        ("sasl.mechanism", &["sasl.mechanism=GSSAPI"]),
        ("sasl.mechanisms", &["sasl.mechanisms=GSSAPI"]),
        ("sasl.username", &["sasl.username=u"]),
        ("sasl.password", &["sasl.password=hunter22"]),
        ("ssl.ca.location", &[ssl, "ssl.ca.location=GARBAGE"]),
        (
            "ssl.certificate.location",
            &[ssl, "ssl.certificate.location=/nonexistent"],
        ),
        ("ssl.key.location", &[ssl, "ssl.key.location=/nonexistent"]),
        ("linger.ms", &["linger.ms=soon"]),
        (
            "queue.buffering.max.ms",
            &["queue.buffering.max.ms=999999999"],
        ),
        ("acks", &["acks=7"]),
        ("request.required.acks", &["request.required.acks=2"]),
        ("compression.type", &["compression.type=lz4"]),
        ("compression.codec", &["compression.codec=zstd"]),
        ("message.timeout.ms", &["message.timeout.ms=x"]),
        ("request.timeout.ms", &["request.timeout.ms=50"]),
        ("retry.backoff.ms", &["retry.backoff.ms=0"]),
        ("retry.backoff.max.ms", &["retry.backoff.max.ms=9999999"]),
        ("batch.size", &["batch.size=10"]),
        ("batch.num.bytes", &["batch.num.bytes=x"]),
        (
            "queue.buffering.max.messages",
            &["queue.buffering.max.messages=0"],
        ),
        ("enable.idempotence", &["enable.idempotence=maybe"]),
        (
            "allow.auto.create.topics",
            &["allow.auto.create.topics=maybe"],
        ),
        ("unknown", &["bogus.key=1"]),
    ];
    for key in KNOWN_KEYS {
        assert!(
            cases.iter().any(|(k, _)| k == key),
            "no bad-value case for {key}"
        );
    }
    for (key, props) in cases {
        let mut args: Vec<String> = vec!["-B".into(), "127.0.0.1:1".into()];
        for p in *props {
            args.push("-X".into());
            args.push(p.replace("GARBAGE", &garbage));
        }
        args.push(csv.clone());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut checked = vec!["--check"];
        checked.extend(&argv);
        let (check, run) = (self::run(&checked), self::run(&argv));
        assert_eq!(
            check.status.code(),
            Some(2),
            "{key}: --check {}",
            stderr(&check)
        );
        assert_eq!(run.status.code(), Some(2), "{key}: run {}", stderr(&run));
        assert_eq!(stderr(&check), stderr(&run), "{key}");
        assert!(check.stdout.is_empty(), "{key}");
        assert!(!stderr(&check).contains("hunter22"), "{key}");
    }
}

#[test]
fn each_kafka_setting_has_one_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(dir.path(), "t.csv", b"5, http://127.0.0.1:1/\n");
    let both = run(&[
        "--check",
        "-B",
        "127.0.0.1:1",
        "-X",
        "topic=a",
        "-T",
        "b",
        &csv,
    ]);
    assert_eq!(both.status.code(), Some(2));
    let e = stderr(&both);
    assert!(e.contains("-T/--topic") && e.contains("-X topic="), "{e}");
    // -X topic= alone is the topic; metadata.broker.list enables Kafka as -B does.
    let alias = run(&[
        "--check",
        "-X",
        "metadata.broker.list=127.0.0.1:1",
        "-X",
        "topic=probes",
        &csv,
    ]);
    assert_eq!(alias.status.code(), Some(0), "{}", stderr(&alias));
    let out = String::from_utf8_lossy(&alias.stdout);
    assert!(
        out.contains("output: Kafka 127.0.0.1:1 topic probes"),
        "{out}"
    );
}
