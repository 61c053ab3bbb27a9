//! Running the built binary in tests: spawning it, bounded waits and
//! signals (so a test that goes wrong fails instead of hanging), and reading
//! its JSON lines.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, unattended
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_latency-logger")
}

/// The binary under test with `args`, stdin closed, stdout and stderr piped.
#[allow(dead_code)] // used by e2e, unattended
pub fn spawn(args: &[&str]) -> Child {
    spawn_to(args, Stdio::piped())
}

/// As [`spawn`], with stdout going to `stdout`.
#[allow(dead_code)] // used by e2e, unattended
pub fn spawn_to(args: &[&str], stdout: Stdio) -> Child {
    Command::new(binary())
        .args(args)
        .env_remove("LATENCY_LOGGER_SASL_PASSWORD")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binary")
}

/// Reads the child's stdout on a thread while it runs (a test that reads
/// only after exit would stall the binary once the pipe is full).
#[allow(dead_code)] // used by kafka_e2e, kafka_spool, unattended
pub fn read_stdout_meanwhile(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut o = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        // A kill -9 may cut the last line anywhere, even inside a character.
        let mut out = Vec::new();
        let _ = o.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// The binary running, its stdout and stderr drained on threads as it runs
/// (a full pipe would otherwise stall the probes writing to it).
#[allow(dead_code)] // used by kafka_e2e, kafka_spool, unattended
pub struct Running {
    pub child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

/// The binary under test with `args` and extra environment, output drained.
#[allow(dead_code)] // used by kafka_e2e, kafka_spool, unattended
pub fn spawn_drained(args: &[String], env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("LATENCY_LOGGER_SASL_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binary");
    let out = read_stdout_meanwhile(&mut child);
    let mut se = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    Running { child, out, err }
}

/// Waits for exit within `limit`, then returns (status code, stdout, stderr).
#[allow(dead_code)] // used by kafka_e2e, kafka_spool, unattended
pub fn finish(run: Running, limit: Duration) -> (Option<i32>, String, String) {
    let Running {
        mut child,
        out,
        err,
    } = run;
    let status = wait_bounded(&mut child, limit);
    (
        status.code(),
        out.join().expect("stdout"),
        err.join().expect("stderr"),
    )
}

/// Everything left on the child's stdout (if piped) and stderr.
#[allow(dead_code)] // used by e2e, unattended
pub fn read_all(child: &mut Child) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).expect("read stdout");
    }
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (out, err)
}

/// Every line as JSON; fails on a partial last line or a line that is not JSON.
#[allow(dead_code)] // used by e2e, unattended
pub fn parse_lines(out: &str) -> Vec<serde_json::Value> {
    assert!(
        out.is_empty() || out.ends_with('\n'),
        "partial last line: {:?}",
        &out[out.len().saturating_sub(200)..]
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Waits up to `limit` for `child` to exit; kills it and panics past that.
#[allow(dead_code)] // used by bad_input, e2e, kafka_e2e, kafka_spool, unattended
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("binary did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` (e.g. "-TERM") to `child` with kill(1).
#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, unattended
pub fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {} failed", child.id());
}
