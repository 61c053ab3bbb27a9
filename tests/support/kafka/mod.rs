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
//! `Broker::shared(Mode::All)` and `Tansu::from_env` use the brokers that
//! tests/kafka.sh started when it says so (LATENCY_LOGGER_KAFKA_ENV,
//! LATENCY_LOGGER_TANSU_ENV).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Listener sets, as `broker.sh start --mode` (which also offers
/// sasl_plaintext, ssl and sasl_ssl; no test here needs them alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub enum Mode {
    Plaintext,
    All,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::All => "all",
        }
    }
}

/// One listener of a running broker (see `DIR/env`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
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
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
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
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub enum Decode<'a> {
    /// Avro single-object encoding, checked against `src/report.avsc`.
    SingleObject,
    /// Confluent wire format through a registry (URL, optional "user:password").
    Registry(&'a str, Option<&'a str>),
    /// No decoding: values as hex.
    Raw,
}

#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub fn support_dir() -> PathBuf {
    repo_root().join("tests/support/kafka")
}

#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"))
}

/// Python of the harness venv (confluent-kafka, fastavro).
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub fn venv_python() -> PathBuf {
    cache_dir().join("venv/bin/python")
}

#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub fn schema_path() -> PathBuf {
    repo_root().join("src/report.avsc")
}

/// True when `.ci/test-deps.sh` has installed the Kafka jars and the venv.
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
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
#[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
pub struct Broker {
    pub dir: PathBuf,
    env: HashMap<String, String>,
    /// Started here (stopped on drop), not one that tests/kafka.sh runs.
    owned: bool,
}

impl Broker {
    /// Starts a new broker; panics with the harness's message on failure.
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn start(mode: Mode) -> Broker {
        Self::try_start(mode).unwrap_or_else(|e| panic!("kafka broker did not start: {e}"))
    }

    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
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
        Ok(Broker {
            dir,
            env,
            owned: true,
        })
    }

    /// A broker someone else runs, from its `DIR/env` (never stopped here).
    fn attach(env_file: &Path) -> Broker {
        let env = read_env(env_file).unwrap_or_else(|e| panic!("kafka broker env: {e}"));
        let dir = env_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Broker {
            dir,
            env,
            owned: false,
        }
    }

    /// One broker per test binary and mode, started on first use, never dropped
    /// (the owner watchdog stops it when the test process exits). Do not stop/kill
    /// a shared broker: start your own for restart tests. `Mode::All` is the
    /// broker `LATENCY_LOGGER_KAFKA_ENV=DIR/env` names when that is set
    /// (tests/kafka.sh: one broker for all suites, or another Kafka version).
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn shared(mode: Mode) -> &'static Broker {
        static ALL: OnceLock<Broker> = OnceLock::new();
        static PLAIN: OnceLock<Broker> = OnceLock::new();
        match mode {
            Mode::All => ALL.get_or_init(|| match std::env::var_os("LATENCY_LOGGER_KAFKA_ENV") {
                Some(env) => Broker::attach(Path::new(&env)),
                None => Broker::start(Mode::All),
            }),
            Mode::Plaintext => PLAIN.get_or_init(|| Broker::start(Mode::Plaintext)),
        }
    }

    /// A variable of `DIR/env`, e.g. "KAFKA_CA", "KAFKA_SASL_USER".
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} not in {}/env", self.dir.display()))
    }

    /// "127.0.0.1:PORT" of a listener (panics if the mode has no such listener).
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn addr(&self, l: Listener) -> &str {
        self.var(&format!("KAFKA_{}", l.name()))
    }

    #[allow(dead_code)] // used by kafka_e2e, kafka_producer
    pub fn ca(&self) -> &str {
        self.var("KAFKA_CA")
    }
    #[allow(dead_code)] // used by kafka_producer
    pub fn client_cert(&self) -> &str {
        self.var("KAFKA_CLIENT_CERT")
    }
    #[allow(dead_code)] // used by kafka_producer
    pub fn client_key(&self) -> &str {
        self.var("KAFKA_CLIENT_KEY")
    }
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer
    pub fn sasl_user(&self) -> &str {
        self.var("KAFKA_SASL_USER")
    }
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer
    pub fn sasl_password(&self) -> &str {
        self.var("KAFKA_SASL_PASSWORD")
    }

    fn script(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(support_dir().join("broker.sh")).args(args))
    }

    /// Creates a topic and waits until every partition has a leader.
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn topic(&self, name: &str, partitions: u32) {
        self.topic_with(name, partitions, &[]);
    }

    /// As `topic`, with topic configs ("max.message.bytes=2000").
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn topic_with(&self, name: &str, partitions: u32, configs: &[&str]) {
        let parts = partitions.to_string();
        let mut args = vec!["topic", self.dir.to_str().unwrap(), name, &parts];
        args.extend_from_slice(configs);
        self.script(&args)
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    }

    /// Creates `PREFIX-<unique>` and returns its name.
    #[allow(dead_code)] // used by kafka_e2e, kafka_spool
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
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn stop(&self) {
        self.script(&["stop", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
    /// SIGKILL (crash; data kept).
    #[allow(dead_code)] // used by kafka_producer
    pub fn kill(&self) {
        self.script(&["kill", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("kill: {e}"));
    }
    /// Start again after stop/kill: same ports, same data. Blocks until ready.
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
    pub fn restart(&mut self) {
        self.script(&["restart", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("restart: {e}"));
        self.env = read_env(&self.dir.join("env")).expect("env after restart");
    }
    /// SIGSTOP: the broker keeps its sockets but answers nothing (a hung broker).
    #[allow(dead_code)] // used by kafka_producer
    pub fn pause(&self) {
        self.script(&["pause", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("pause: {e}"));
    }
    #[allow(dead_code)] // used by kafka_producer
    pub fn resume(&self) {
        self.script(&["resume", self.dir.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("resume: {e}"));
    }

    /// Reads `expect` records with consume.py (assign from the beginning of every
    /// partition) over `listener`; returns one JSON line per record
    /// (`{"partition","offset","key","timestamp_ms","value"}`). Err carries
    /// consume.py's exit status and message: 1 timeout, 3 undecodable, 4 too many.
    #[allow(dead_code)] // used by kafka_e2e
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
    #[allow(dead_code)] // used by kafka_e2e, kafka_producer, kafka_spool
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
        if !self.owned {
            return;
        }
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
#[allow(dead_code)] // used by kafka_e2e, kafka_spool
pub struct Registry {
    pub url: String,
    child: Child,
}

impl Registry {
    /// `auth`: Some("user:password") to require HTTP basic auth.
    #[allow(dead_code)] // used by kafka_e2e, kafka_spool
    pub fn start(auth: Option<&str>) -> Registry {
        Self::start_on(0, auth)
    }

    /// On a given port (0 = any free one), e.g. one a client already uses.
    #[allow(dead_code)] // used by kafka_e2e, kafka_spool
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

/// tansu (Kafka-compatible broker in Rust; in-memory), as tests/kafka.sh
/// runs it: `LATENCY_LOGGER_TANSU_ENV=DIR/env` (tansu.sh start DIR).
#[allow(dead_code)] // used by kafka_producer
pub struct Tansu {
    pub dir: PathBuf,
    pub addr: String,
}

impl Tansu {
    /// The running tansu, or None when LATENCY_LOGGER_TANSU_ENV is not set.
    #[allow(dead_code)] // used by kafka_producer
    pub fn from_env() -> Option<Tansu> {
        let path = PathBuf::from(std::env::var_os("LATENCY_LOGGER_TANSU_ENV")?);
        let env = read_env(&path).unwrap_or_else(|e| panic!("tansu env: {e}"));
        let addr = env.get("TANSU").cloned();
        Some(Tansu {
            addr: addr.unwrap_or_else(|| panic!("no TANSU in {}", path.display())),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }

    #[allow(dead_code)] // used by kafka_producer
    pub fn topic(&self, name: &str, partitions: u32) {
        run(Command::new(support_dir().join("tansu.sh"))
            .arg("topic")
            .arg(&self.dir)
            .arg(name)
            .arg(partitions.to_string()))
        .unwrap_or_else(|e| panic!("tansu topic {name}: {e}"));
    }

    /// As `Broker::consume_args`, from tansu.
    #[allow(dead_code)] // used by kafka_producer
    pub fn consume_args(
        &self,
        topic: &str,
        expect: usize,
        timeout: Duration,
        decode: &Decode,
        extra: &[&str],
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
        cmd.args(extra);
        Ok(run(&mut cmd)?.lines().map(str::to_string).collect())
    }
}
