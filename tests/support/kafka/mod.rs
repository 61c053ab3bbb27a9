//! Real-broker harness for integration tests (std only): thin wrappers around
//! `tests/support/kafka/{broker.sh,tansu.sh,consume.py,registry.py}`.
//!
//! Needs `.ci/test-deps.sh` to have run (jars, venv; tansu for `Tansu`).
//! Use from a test file with `mod support;` where `tests/support/mod.rs` has
//! `pub mod kafka;`.
//!
//! ```ignore
//! let k = support::kafka::Broker::shared(Mode::All);   // one broker per test binary
//! let topic = k.unique_topic("reports", 3);             // fresh topic per test
//! // run latency-logger with -B k.addr(Listener::SaslSsl) ...
//! let recs = k.consume(Listener::Plaintext, &topic, 10, Duration::from_secs(30), &Decode::SingleObject)?;
//! ```
//! Every broker is started with `--owner <this process>`: a watchdog kills it
//! when the test process exits, even if `Drop` never runs (statics, SIGKILL).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Listener sets, as `broker.sh start --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plaintext,
    SaslPlaintext,
    Ssl,
    SaslSsl,
    All,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::SaslPlaintext => "sasl_plaintext",
            Mode::Ssl => "ssl",
            Mode::SaslSsl => "sasl_ssl",
            Mode::All => "all",
        }
    }
}

/// One listener of a running broker (see `DIR/env`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Plaintext,
    SaslPlaintext,
    /// TLS, client certificate optional (`ssl.client.auth=requested`).
    Ssl,
    /// TLS, client certificate required.
    Mtls,
    SaslSsl,
}

impl Listener {
    pub fn name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::Mtls => "MTLS",
            Listener::SaslSsl => "SASL_SSL",
        }
    }
}

/// How `consume.py` decodes values.
pub enum Decode<'a> {
    /// Avro single-object encoding, checked against `src/report.avsc`.
    SingleObject,
    /// Confluent wire format through a registry (URL, optional "user:password").
    Registry(&'a str, Option<&'a str>),
    /// No decoding: values as hex.
    Raw,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn support_dir() -> PathBuf {
    repo_root().join("tests/support/kafka")
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("LL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"))
}

/// Python of the harness venv (confluent-kafka, fastavro).
pub fn venv_python() -> PathBuf {
    cache_dir().join("venv/bin/python")
}

pub fn schema_path() -> PathBuf {
    repo_root().join("src/report.avsc")
}

/// True when `.ci/test-deps.sh` has installed the Kafka jars and the venv.
pub fn kafka_available() -> bool {
    let v = std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.4.0".into());
    cache_dir()
        .join(format!("kafka-{v}/libs/.complete"))
        .exists()
        && venv_python().exists()
}

fn unique_dir(prefix: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn read_env(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// A single-node Apache Kafka (KRaft) in its own temp dir.
pub struct Broker {
    pub dir: PathBuf,
    env: HashMap<String, String>,
}

impl Broker {
    /// Starts a new broker; panics with the harness's message on failure.
    pub fn start(mode: Mode) -> Broker {
        Self::try_start(mode).unwrap_or_else(|e| panic!("kafka broker did not start: {e}"))
    }

    pub fn try_start(mode: Mode) -> Result<Broker, String> {
        let dir = unique_dir("ll-kafka");
        run(Command::new(support_dir().join("broker.sh"))
            .arg("start")
            .arg(&dir)
            .args([
                "--mode",
                mode.arg(),
                "--owner",
                &std::process::id().to_string(),
            ]))?;
        let env = read_env(&dir.join("env"))?;
        Ok(Broker { dir, env })
    }

    /// One broker per test binary and mode, started on first use, never dropped
    /// (the owner watchdog stops it when the test process exits). Do not stop/kill
    /// a shared broker: start your own for restart tests.
    pub fn shared(mode: Mode) -> &'static Broker {
        static ALL: OnceLock<Broker> = OnceLock::new();
        static PLAIN: OnceLock<Broker> = OnceLock::new();
        match mode {
            Mode::All => ALL.get_or_init(|| Broker::start(Mode::All)),
            Mode::Plaintext => PLAIN.get_or_init(|| Broker::start(Mode::Plaintext)),
            _ => panic!("shared() supports Mode::All and Mode::Plaintext; use start() for others"),
        }
    }

    /// A variable of `DIR/env`, e.g. "KAFKA_CA", "KAFKA_SASL_USER".
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} not in {}/env", self.dir.display()))
    }

    /// "127.0.0.1:PORT" of a listener (panics if the mode has no such listener).
    pub fn addr(&self, l: Listener) -> &str {
        self.var(&format!("KAFKA_{}", l.name()))
    }

    pub fn ca(&self) -> &str {
        self.var("KAFKA_CA")
    }
    pub fn client_cert(&self) -> &str {
        self.var("KAFKA_CLIENT_CERT")
    }
    pub fn client_key(&self) -> &str {
        self.var("KAFKA_CLIENT_KEY")
    }
    pub fn sasl_user(&self) -> &str {
        self.var("KAFKA_SASL_USER")
    }
    pub fn sasl_password(&self) -> &str {
        self.var("KAFKA_SASL_PASSWORD")
    }
    pub fn pid(&self) -> u32 {
        self.var("KAFKA_PID").parse().expect("KAFKA_PID")
    }

    fn script(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(support_dir().join("broker.sh")).args(args))
    }

    /// Creates a topic and waits until every partition has a leader.
    pub fn topic(&self, name: &str, partitions: u32) {
        self.script(&[
            "topic",
            self.dir.to_str().unwrap(),
            name,
            &partitions.to_string(),
        ])
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    }

    /// Creates `PREFIX-<unique>` and returns its name.
    pub fn unique_topic(&self, prefix: &str, partitions: u32) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.topic(&name, partitions);
        name
    }

    /// Graceful stop (data kept; `restart` brings it back on the same ports).
    pub fn stop(&self) {
        self.script(&["stop", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
    /// SIGKILL (crash; data kept).
    pub fn kill(&self) {
        self.script(&["kill", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("kill: {e}"));
    }
    /// Start again after stop/kill: same ports, same data. Blocks until ready.
    pub fn restart(&mut self) {
        self.script(&["restart", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("restart: {e}"));
        self.env = read_env(&self.dir.join("env")).expect("env after restart");
    }
    /// SIGSTOP: the broker keeps its sockets but answers nothing (a hung broker).
    pub fn pause(&self) {
        self.script(&["pause", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("pause: {e}"));
    }
    pub fn resume(&self) {
        self.script(&["resume", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("resume: {e}"));
    }

    /// Reads `expect` records with consume.py (assign from the beginning of every
    /// partition) over `listener`; returns one JSON line per record
    /// (`{"partition","offset","key","timestamp_ms","value"}`). Err carries
    /// consume.py's exit status and message: 1 timeout, 3 undecodable, 4 too many.
    pub fn consume(
        &self,
        listener: Listener,
        topic: &str,
        expect: usize,
        timeout: Duration,
        decode: &Decode,
    ) -> Result<Vec<String>, String> {
        self.consume_args(listener, topic, expect, timeout, decode, &[])
    }

    /// As `consume`, with extra consume.py arguments (e.g. ["--settle", "2"],
    /// ["--sasl-mechanism", "SCRAM-SHA-512"]).
    pub fn consume_args(
        &self,
        listener: Listener,
        topic: &str,
        expect: usize,
        timeout: Duration,
        decode: &Decode,
        extra: &[&str],
    ) -> Result<Vec<String>, String> {
        let mut cmd = Command::new(venv_python());
        cmd.arg(support_dir().join("consume.py"))
            .arg("--env")
            .arg(self.dir.join("env"))
            .args(["--listener", listener.name(), "--topic", topic])
            .args([
                "--expect",
                &expect.to_string(),
                "--timeout",
                &format!("{}", timeout.as_secs_f64()),
            ]);
        decode_args(&mut cmd, decode);
        cmd.args(extra);
        Ok(run(&mut cmd)?.lines().map(str::to_string).collect())
    }
}

fn decode_args(cmd: &mut Command, decode: &Decode) {
    match decode {
        Decode::SingleObject => {
            cmd.arg("--schema").arg(schema_path());
        }
        Decode::Registry(url, auth) => {
            cmd.arg("--schema")
                .arg(schema_path())
                .args(["--registry", url]);
            if let Some(a) = auth {
                cmd.args(["--registry-auth", a]);
            }
        }
        Decode::Raw => {
            cmd.arg("--raw");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.script(&["stop", self.dir.to_str().unwrap()]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "kafka broker dir kept for inspection: {}",
                self.dir.display()
            );
        }
    }
}

/// registry.py: a minimal Confluent Schema Registry on 127.0.0.1.
pub struct Registry {
    pub url: String,
    child: Child,
}

impl Registry {
    /// `auth`: Some("user:password") to require HTTP basic auth.
    pub fn start(auth: Option<&str>) -> Registry {
        Self::start_on(0, auth)
    }

    /// On a given port (0 = any free one), e.g. one a client already uses.
    pub fn start_on(port: u16, auth: Option<&str>) -> Registry {
        let mut cmd = Command::new(venv_python());
        cmd.arg(support_dir().join("registry.py"))
            .args(["--port", &port.to_string()]);
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn registry.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("registry.py output");
        let url = line
            .trim()
            .strip_prefix("REGISTRY_URL=")
            .unwrap_or_else(|| panic!("registry.py said {line:?}"));
        Registry {
            url: url.to_string(),
            child,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tansu (Kafka-compatible broker in Rust; in-memory, data lost on stop).
pub struct Tansu {
    pub dir: PathBuf,
    pub addr: String,
}

impl Tansu {
    pub fn available() -> bool {
        std::env::var_os("TANSU_BIN").is_some() || cache_dir().join("tansu/bin/tansu").exists()
    }

    pub fn start() -> Tansu {
        let dir = unique_dir("ll-tansu");
        run(Command::new(support_dir().join("tansu.sh"))
            .arg("start")
            .arg(&dir)
            .args(["--owner", &std::process::id().to_string()]))
        .unwrap_or_else(|e| panic!("tansu did not start: {e}"));
        let env = read_env(&dir.join("env")).expect("tansu env");
        Tansu {
            addr: env["TANSU"].clone(),
            dir,
        }
    }

    pub fn topic(&self, name: &str, partitions: u32) {
        run(Command::new(support_dir().join("tansu.sh"))
            .arg("topic")
            .arg(&self.dir)
            .arg(name)
            .arg(partitions.to_string()))
        .unwrap_or_else(|e| panic!("tansu topic {name}: {e}"));
    }

    pub fn consume(
        &self,
        topic: &str,
        expect: usize,
        timeout: Duration,
        decode: &Decode,
    ) -> Result<Vec<String>, String> {
        let mut cmd = Command::new(venv_python());
        cmd.arg(support_dir().join("consume.py"))
            .args(["--bootstrap", &self.addr, "--topic", topic])
            .args([
                "--expect",
                &expect.to_string(),
                "--timeout",
                &format!("{}", timeout.as_secs_f64()),
            ]);
        decode_args(&mut cmd, decode);
        Ok(run(&mut cmd)?.lines().map(str::to_string).collect())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = run(Command::new(support_dir().join("tansu.sh"))
            .arg("stop")
            .arg(&self.dir));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
