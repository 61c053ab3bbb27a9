//! Command-line flags. lexopt splits argv; each flag's own definition in
//! [`defs::FLAGS`] parses and checks its value into [`LowArgs`] (ripgrep's
//! low-level args); [`to_config`] then combines them into one validated
//! [`Config`] (its high-level args) the rest of the program runs from,
//! Kafka output included, so `--check` rejects exactly what a run rejects.
//! [`doc`] renders the same table as `-h` and docs/flags.md.

pub mod defs;
pub mod doc;

use crate::targets::Spec;
use defs::{FLAGS, Val};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use defs::{MAX_BUFFER, MAX_QUEUE, MAX_STOP_SECONDS, MAX_WORKERS};
pub use doc::{help, usage};

/// Environment variable holding the SASL password (never a plain flag: argv is
/// visible to every user of the machine).
pub const PASSWORD_ENV: &str = "LATENCY_LOGGER_SASL_PASSWORD";

/// Flags as given, each value already parsed and checked by its flag; the
/// defaults come from the same table, applied before argv is read.
#[derive(Debug, Default)]
pub struct LowArgs {
    pub help: bool,
    pub version: bool,
    pub check: bool,
    pub verbose: u8,
    pub queue: usize,
    pub workers: usize,
    pub buffer: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub splay: Duration,
    pub stop_timeout: Duration,
    pub flush_timeout: Duration,
    /// 0 = off.
    pub stats_interval: Duration,
    pub cacert: Option<PathBuf>,
    pub cert_warn_days: u32,
    /// What a target line does not say (`--expect`, `--header`, `--ip`, `--bind`).
    pub defaults: Spec,
    pub source: Option<String>,
    pub labels: Vec<(String, String)>,
    pub topic: String,
    pub schema_registry: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
    pub create_topic: bool,
    pub also_stdout: bool,
    pub spool: Option<PathBuf>,
    pub spool_sync: Duration,
    pub spool_max_bytes: u64,
    /// Kafka producer settings as librdkafka names them, in the order given,
    /// so dedicated flags and `-X` share one path and the last one wins.
    pub kafka: Vec<(String, String)>,
    pub file: Option<PathBuf>,
    /// Long names of the flags given on the command line (not defaulted).
    pub given: Vec<&'static str>,
}

impl LowArgs {
    /// Whether `--long` was given on the command line.
    pub fn given(&self, long: &str) -> bool {
        self.given.contains(&long)
    }
}

/// A usage error: the message names the flag or value at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> UsageError {
        UsageError(e.to_string())
    }
}

/// Parses argv (without the program name): every flag's value parsed and
/// checked by its definition, defaults first.
pub fn parse_low(args: impl IntoIterator<Item = OsString>) -> Result<LowArgs, UsageError> {
    use lexopt::prelude::*;
    let mut low = LowArgs::default();
    for f in FLAGS {
        if let defs::Default::Value(v) = f.default {
            let val = Val {
                shown: f.shown(),
                value: Some(v.into()),
            };
            (f.set)(&mut low, &val)?;
        }
    }
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        // Only what FLAGS defines (and so `-h` shows) is a flag at all.
        let flag = match &arg {
            Short(c) => FLAGS.iter().find(|f| f.short == Some(*c)),
            Long(l) => FLAGS.iter().find(|f| f.long == *l),
            Value(v) if low.file.is_none() => {
                low.file = Some(v.into());
                continue;
            }
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected extra argument {v:?} (only one targets FILE is taken)"
                )));
            }
        };
        let Some(flag) = flag else {
            return Err(arg.unexpected().into());
        };
        let value = match flag.value {
            Some(_) => Some(p.value()?),
            None => None,
        };
        let val = Val {
            shown: flag.shown(),
            value,
        };
        (flag.set)(&mut low, &val)?;
        low.given.push(flag.long);
    }
    Ok(low)
}

/// What `main` should do.
#[derive(Debug)]
pub enum Command {
    Help,
    Version,
    Run(Box<Config>),
    /// `--check`: validate the flags (done) and the targets file, start nothing.
    Check(Box<Config>),
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub verbose: u8,
    pub queue: usize,
    pub workers: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub splay: Duration,
    pub cacert: Option<PathBuf>,
    pub stop_timeout: Duration,
    /// Bound on writing (stdout) or delivering (Kafka) what is pending at shutdown.
    pub flush_timeout: Duration,
    /// Records that may wait for the output.
    pub buffer: usize,
    pub file: PathBuf,
    /// Present when `-B` (or `-X bootstrap.servers=`) asks for the Kafka sink.
    pub kafka: Option<KafkaSettings>,
    /// Between INFO lines with counts; None = off.
    pub stats_interval: Option<Duration>,
    /// Who probes (`source` in every record).
    pub source: String,
    /// `--label` pairs, keys unique, in the order given.
    pub labels: Vec<(String, String)>,
    /// What a target line does not say (`--expect`, `--header`).
    pub defaults: Arc<Spec>,
    /// Warn of certificates ending within this many days; 0 = never.
    pub cert_warn_days: u32,
}

/// This machine's host name, for `--source`'s default ("" if unknown).
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The Kafka output, complete and checked: the producer's settings (every
/// `-X` and dedicated flag applied and validated, TLS files read), the
/// registry, the spool. The sink starts from this and checks nothing again.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub producer: crate::kafka::Checked,
    pub schema_registry: Option<crate::registry::Registry>,
    /// Also print JSON lines on stdout.
    pub also_stdout: bool,
    /// `--spool DIR` and its settings.
    pub spool: Option<SpoolArgs>,
}

impl KafkaSettings {
    pub fn topic(&self) -> &str {
        &self.producer.config().topic
    }
}

/// The disk spool's settings (see `crate::spool`).
#[derive(Debug, Clone)]
pub struct SpoolArgs {
    pub dir: PathBuf,
    pub sync_every: Duration,
    pub max_bytes: u64,
}

/// Combines the flags into one validated configuration. `password_env` is
/// `$LATENCY_LOGGER_SASL_PASSWORD` (passed in so tests need not touch the
/// environment).
pub fn to_config(low: LowArgs, password_env: Option<String>) -> Result<Command, UsageError> {
    if low.help {
        return Ok(Command::Help);
    }
    if low.version {
        return Ok(Command::Version);
    }
    let file = low
        .file
        .clone()
        .ok_or_else(|| UsageError("missing the targets FILE argument".to_string()))?;
    let spool = spool_args(&low)?;
    let kafka = kafka_settings(&low, spool, password_env)?;
    let config = Box::new(Config {
        verbose: low.verbose,
        queue: low.queue,
        workers: low.workers,
        connect_timeout: low.connect_timeout,
        timeout: low.timeout,
        follow_redirects: low.follow_redirects,
        splay: low.splay,
        cacert: low.cacert,
        stop_timeout: low.stop_timeout,
        flush_timeout: low.flush_timeout,
        buffer: low.buffer,
        file,
        kafka,
        stats_interval: (!low.stats_interval.is_zero()).then_some(low.stats_interval),
        source: low.source.unwrap_or_else(host_name),
        labels: low.labels,
        defaults: Arc::new(low.defaults),
        cert_warn_days: low.cert_warn_days,
    });
    Ok(if low.check {
        Command::Check(config)
    } else {
        Command::Run(config)
    })
}

/// `--spool*` flags: settings only with `--spool DIR`.
fn spool_args(low: &LowArgs) -> Result<Option<SpoolArgs>, UsageError> {
    let Some(dir) = &low.spool else {
        if low.given("spool-sync-ms") || low.given("spool-max-bytes") {
            return Err(UsageError(
                "--spool-sync-ms/--spool-max-bytes given without --spool DIR".to_string(),
            ));
        }
        return Ok(None);
    };
    Ok(Some(SpoolArgs {
        dir: dir.clone(),
        sync_every: low.spool_sync,
        max_bytes: low.spool_max_bytes,
    }))
}

/// Kafka keys that enable the Kafka output (`-B` sets the first).
const BROKER_KEYS: [&str; 2] = ["bootstrap.servers", "metadata.broker.list"];

/// The Kafka output when `-B` (or `-X bootstrap.servers=` /
/// `metadata.broker.list=`) asks for it: every setting applied in the order
/// given and checked as a run checks it, so `--check` fails exactly where a
/// run would. Kafka-only flags without brokers are an error.
fn kafka_settings(
    low: &LowArgs,
    spool: Option<SpoolArgs>,
    password_env: Option<String>,
) -> Result<Option<KafkaSettings>, UsageError> {
    let wants_kafka = low
        .kafka
        .iter()
        .any(|(k, _)| BROKER_KEYS.contains(&k.as_str()));
    if !wants_kafka {
        let kafka_only = low.given("topic")
            || low.schema_registry.is_some()
            || low.sasl_password_file.is_some()
            || low.create_topic
            || low.also_stdout
            || low.spool.is_some()
            || !low.kafka.is_empty();
        if kafka_only {
            return Err(UsageError(
                "Kafka options given without -B/--bootstrap-servers (which enables the Kafka sink)"
                    .to_string(),
            ));
        }
        return Ok(None);
    }
    // One owner per setting: the topic is -T's (with -X topic= as its alias).
    let x_topic = low.kafka.iter().rev().find(|(k, _)| k == "topic");
    let topic = match x_topic {
        Some(_) if low.given("topic") => {
            return Err(UsageError(
                "-T/--topic and -X topic= both set the topic: give one of them".to_string(),
            ));
        }
        Some((_, t)) => t.trim().to_string(),
        None => low.topic.clone(),
    };
    if topic.is_empty()
        || topic.len() > 249
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(UsageError(format!(
            "-T/--topic: `{}` is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)",
            crate::redact::value(&topic)
        )));
    }
    let mut cfg = crate::kafka::KafkaConfig::default();
    cfg.apply(&low.kafka).map_err(UsageError)?;
    if low.given("buffer") {
        cfg.buffer = low.buffer;
    }
    if let Some(path) = &low.sasl_password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UsageError(format!(
                "--sasl-password-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        cfg.set("sasl.password", text.trim_end_matches(['\r', '\n']))
            .map_err(UsageError)?;
    } else if let Some(pw) = password_env {
        cfg.set("sasl.password", &pw).map_err(UsageError)?;
    }
    cfg.topic = topic;
    cfg.flush_timeout = low.flush_timeout;
    cfg.create_topic = cfg.create_topic || low.create_topic;
    let missing_password = cfg.sasl_password_missing();
    let producer = crate::kafka::Checked::new(cfg).map_err(|e| {
        let hint = if missing_password {
            format!(" (set ${PASSWORD_ENV} or give --sasl-password-file)")
        } else {
            String::new()
        };
        UsageError(format!("Kafka settings: {e}{hint}"))
    })?;
    let schema_registry = match &low.schema_registry {
        None => None,
        Some(url) => Some(
            crate::registry::Registry::parse(url)
                .map_err(|e| UsageError(format!("-S/--schema-registry: {e}")))?,
        ),
    };
    Ok(Some(KafkaSettings {
        producer,
        schema_registry,
        also_stdout: low.also_stdout,
        spool,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{Bind, IpMode};

    fn run(args: &[&str]) -> Result<Command, UsageError> {
        let low = parse_low(args.iter().map(OsString::from))?;
        to_config(low, None)
    }

    fn config(args: &[&str]) -> Config {
        match run(args) {
            Ok(Command::Run(c)) => *c,
            other => panic!("not a run: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        run(args).expect_err("should fail").0
    }

    #[test]
    fn defaults() {
        let c = config(&["t.csv"]);
        assert_eq!(c.queue, 100);
        assert_eq!(c.workers, 3);
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert!(!c.follow_redirects);
        assert!(c.kafka.is_none());
    }

    #[test]
    fn all_core_flags() {
        let c = config(&[
            "-vv",
            "-Q",
            "5",
            "--workers=8",
            "--connect-timeout",
            "1.5",
            "--timeout",
            "2",
            "--follow-redirects",
            "--splay",
            "3",
            "--cacert",
            "ca.pem",
            "t.csv",
        ]);
        assert_eq!((c.verbose, c.queue, c.workers), (2, 5, 8));
        assert_eq!(c.connect_timeout, Duration::from_millis(1500));
        assert!(c.follow_redirects);
        assert_eq!(c.splay, Duration::from_secs(3));
        assert_eq!(c.cacert, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert_eq!(
            err(&["-Q", "0", "t.csv"]),
            "-Q/--queue: `0` is not a positive whole number"
        );
        assert_eq!(
            err(&["-W", "x", "t.csv"]),
            "-W/--workers: `x` is not a positive whole number"
        );
        assert!(err(&["--timeout", "-1", "t.csv"]).starts_with("--timeout: `-1` must be"));
        assert!(err(&["--bogus", "t.csv"]).contains("--bogus"));
        assert_eq!(err(&[]), "missing the targets FILE argument");
        assert!(err(&["a.csv", "b.csv"]).contains("unexpected extra argument"));
        assert!(err(&["-Q"]).contains("-Q"));
    }

    #[test]
    fn absurd_sizes_are_refused_with_the_bound() {
        assert_eq!(
            err(&["-Q", "18446744073709551615", "t.csv"]),
            "-Q/--queue: `18446744073709551615` is more than the maximum of 100000"
        );
        assert_eq!(
            err(&["-Q", "99999999999999999999999", "t.csv"]),
            "-Q/--queue: `99999999999999999999999` is more than the maximum of 100000"
        );
        assert!(err(&["-Q", "100000000", "t.csv"]).contains("maximum of 100000"));
        assert!(err(&["-W", "5000", "t.csv"]).contains("maximum of 1024"));
        assert!(err(&["--buffer", "1000000000", "t.csv"]).contains("maximum of 1000000"));
        assert!(err(&["-Q", "+5", "t.csv"]).contains("not a positive whole number"));
        assert!(err(&["--stop-timeout", "7200", "t.csv"]).contains("maximum of 3600"));
        let c = config(&["-Q", "100000", "-W", "1024", "--buffer", "5", "t.csv"]);
        assert_eq!((c.queue, c.workers, c.buffer), (100_000, 1024, 5));
    }

    #[test]
    fn stop_flush_and_buffer_apply_without_kafka() {
        let c = config(&["--stop-timeout", "0", "--flush-timeout", "2.5", "t.csv"]);
        assert_eq!(c.stop_timeout, Duration::ZERO);
        assert_eq!(c.flush_timeout, Duration::from_millis(2500));
        assert!(c.kafka.is_none());
        let c = config(&["-B", "k:1", "--buffer", "7", "t.csv"]);
        let k = c.kafka.expect("kafka");
        assert_eq!(k.producer.config().buffer, 7);
    }

    #[test]
    fn expect_and_header_defaults() {
        let c = config(&[
            "--expect", "200|204", "--header", "X-A: 1", "--header", "x-a: 2", "t.csv",
        ]);
        assert_eq!(c.defaults.expect.to_string(), "200|204");
        assert_eq!(
            c.defaults.headers,
            vec![("x-a".to_string(), "2".to_string())]
        );
        assert!(err(&["--expect", "ok", "t.csv"]).starts_with("--expect: `ok`"));
        let c = config(&["--ip", "6", "--bind", "eth1", "t.csv"]);
        assert_eq!(c.defaults.ip, IpMode::V6);
        assert_eq!(c.defaults.bind, Some(Bind::Interface("eth1".into())));
        assert!(err(&["--ip", "7", "t.csv"]).starts_with("--ip: ip `7`"));
        let e = err(&["--header", "X-Token: a\u{7f}secret", "t.csv"]);
        assert!(e.contains("--header") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn source_and_labels() {
        let c = config(&[
            "--source",
            "edge-7",
            "--label",
            "site=ams",
            "--label",
            "uplink=lte",
            "t.csv",
        ]);
        assert_eq!(c.source, "edge-7");
        assert_eq!(
            c.labels,
            vec![
                ("site".into(), "ams".into()),
                ("uplink".into(), "lte".into())
            ]
        );
        // The default is the machine's name, as hostname(1) reads it (uname).
        let uname = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .expect("uname -n");
        let name = String::from_utf8_lossy(&uname.stdout).trim().to_string();
        assert!(!name.is_empty());
        assert_eq!(config(&["t.csv"]).source, name);
        assert!(err(&["--label", "site", "t.csv"]).contains("KEY=VALUE"));
        assert!(err(&["--label", "a=1", "--label", "a=2", "t.csv"]).contains("given twice"));
        assert!(err(&["--label", "=x", "t.csv"]).contains("--label key"));
        assert!(err(&["--source", "", "t.csv"]).contains("--source"));
        assert!(err(&["--source", "a\u{1b}b", "t.csv"]).contains("printable"));
    }

    #[test]
    fn check_is_a_command_with_the_same_validation() {
        assert!(matches!(run(&["--check", "t.csv"]), Ok(Command::Check(_))));
        assert!(run(&["--check", "-Q", "0", "t.csv"]).is_err());
    }

    #[test]
    fn kafka_flags_become_librdkafka_properties_in_order() {
        let c = config(&[
            "-B",
            "k1:9092,k2:9092",
            "-T",
            "probes",
            "--acks",
            "1",
            "-X",
            "linger.ms=20",
            "--linger-ms",
            "30",
            "--security-protocol",
            "ssl",
            "t.csv",
        ]);
        let k = c.kafka.expect("kafka");
        assert_eq!(k.topic(), "probes");
        let p = k.producer.config();
        assert_eq!(p.bootstrap, ["k1:9092", "k2:9092"]);
        assert_eq!(p.acks, crate::kafka::Acks::Leader);
        // In the order given: the last one wins.
        assert_eq!(p.linger, Duration::from_millis(30));
        assert_eq!(p.security_protocol, crate::kafka::SecurityProtocol::Ssl);
        assert!(k.producer.tls().is_some());
    }

    #[test]
    fn bootstrap_by_x_enables_kafka() {
        assert!(
            config(&["-X", "bootstrap.servers=k:9092", "t.csv"])
                .kafka
                .is_some()
        );
    }

    #[test]
    fn kafka_options_without_brokers_are_an_error() {
        assert!(err(&["-T", "x", "t.csv"]).contains("without -B"));
        assert!(err(&["-X", "novalue", "t.csv"]).contains("KEY=VALUE"));
    }

    /// Issue 19 fault 7: `-X sasl.password:hunter2` was echoed whole.
    #[test]
    fn malformed_kafka_properties_never_echo_their_value() {
        let e = err(&["-B", "k:1", "-X", "sasl.password:hunter2", "t.csv"]);
        assert_eq!(
            e,
            "-X: expected KEY=VALUE (got `sasl.password…`, value hidden)"
        );
        for arg in [
            "sasl.password hunter2",
            "sasl.passwordhunter2",
            "my.secret:hunter2",
            "hunter2hunter2",
            "=hunter2",
        ] {
            let e = err(&["-B", "k:1", "-X", arg, "t.csv"]);
            assert!(
                e.starts_with("-X: ") && !e.contains("hunter2"),
                "{arg}: {e}"
            );
        }
        assert!(err(&["-B", "k:1", "-X", "linger.ms:5", "t.csv"]).contains("`linger.ms…`"));
    }

    #[test]
    fn password_from_env_is_redacted_in_debug() {
        let args = [
            "-B",
            "k:1",
            "--security-protocol",
            "sasl_plaintext",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "u",
            "t.csv",
        ];
        let low = parse_low(args.map(OsString::from)).expect("low");
        let Command::Run(c) = to_config(low, Some("hunter2".into())).expect("ok") else {
            panic!()
        };
        let k = c.kafka.expect("kafka");
        let sasl = k.producer.config().sasl.clone().expect("sasl");
        assert_eq!(sasl.password, "hunter2");
        assert!(!format!("{k:?}").contains("hunter2"));
    }

    #[test]
    fn bad_topic_and_registry() {
        assert!(err(&["-B", "k:1", "-T", "a b", "t.csv"]).contains("-T/--topic"));
        assert!(err(&["-B", "k:1", "-S", "reg:8081", "t.csv"]).contains("-S/--schema-registry"));
    }

    #[test]
    fn every_default_in_the_table_parses() {
        // parse_low applies each Default::Value through its flag first.
        let low = parse_low(Vec::<OsString>::new()).expect("defaults parse");
        assert!(low.given.is_empty());
        let names: Vec<&str> = FLAGS.iter().map(|f| f.long).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a long name defined twice");
        let shorts: Vec<char> = FLAGS.iter().filter_map(|f| f.short).collect();
        let mut unique = shorts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), shorts.len(), "a short name defined twice");
    }

    #[test]
    fn described_kafka_defaults_are_the_producers() {
        use crate::kafka::{Acks, Compression, KafkaConfig, SecurityProtocol};
        let d = KafkaConfig::default();
        let described = |long: &str| {
            FLAGS
                .iter()
                .find(|f| f.long == long)
                .map(|f| f.default)
                .expect(long)
        };
        use defs::Default::Described;
        assert_eq!(described("acks"), Described("all"));
        assert_eq!(d.acks, Acks::All);
        assert_eq!(described("compression"), Described("none"));
        assert_eq!(d.compression, Compression::None);
        assert_eq!(described("security-protocol"), Described("plaintext"));
        assert_eq!(d.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(described("linger-ms"), Described("1000"));
        assert_eq!(d.linger, Duration::from_millis(1000));
    }

    /// docs/flags.md is the table rendered; `LL_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn docs_flags_md_is_generated_from_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/flags.md");
        let want = doc::markdown();
        if std::env::var_os("LL_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/flags.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/flags.md differs from the flag table: run `LL_UPDATE_DOCS=1 cargo test --lib cli::`"
        );
        // And -h shows the same flags, from the same table.
        let h = help();
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{}", f.long);
            assert!(have.contains(&format!("--{}", f.long)), "{}", f.long);
        }
    }

    #[test]
    fn help_and_version_are_commands() {
        assert!(matches!(run(&["-h"]), Ok(Command::Help)));
        assert!(matches!(run(&["-V"]), Ok(Command::Version)));
        assert!(usage().ends_with("[KAFKA OPTIONS] FILE"));
        for needed in [
            "--stats-interval",
            "--expect",
            "--header",
            "--ip",
            "--bind",
            "--source",
            "--label",
        ] {
            assert!(usage().contains(needed), "{needed}");
        }
    }

    #[test]
    fn spool_and_stats_flags() {
        let c = config(&["-B", "k:1", "--spool", "/var/spool/ll", "t.csv"]);
        let sp = c.kafka.and_then(|k| k.spool).expect("spool");
        assert_eq!(sp.dir, PathBuf::from("/var/spool/ll"));
        assert_eq!(sp.sync_every, Duration::from_millis(1000));
        assert_eq!(sp.max_bytes, 64 << 20);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(300)));
        let c = config(&[
            "-B",
            "k:1",
            "--spool",
            "d",
            "--spool-sync-ms",
            "0",
            "--spool-max-bytes",
            "2g",
            "--stats-interval",
            "0",
            "t.csv",
        ]);
        let sp = c.kafka.and_then(|k| k.spool).expect("spool");
        assert_eq!((sp.sync_every, sp.max_bytes), (Duration::ZERO, 2 << 30));
        assert_eq!(c.stats_interval, None);
        assert_eq!(
            config(&[
                "-B",
                "k:1",
                "--spool",
                "d",
                "--spool-max-bytes",
                "65536",
                "t.csv"
            ])
            .kafka
            .and_then(|k| k.spool)
            .map(|s| s.max_bytes),
            Some(65536)
        );
        for bad in ["1000", "64", "-1M", "12X", "K", "99999999999G"] {
            let e = err(&[
                "-B",
                "k:1",
                "--spool",
                "d",
                "--spool-max-bytes",
                bad,
                "t.csv",
            ]);
            assert!(e.contains("--spool-max-bytes"), "{bad}: {e}");
        }
        assert!(
            err(&[
                "-B",
                "k:1",
                "--spool",
                "d",
                "--spool-sync-ms",
                "1.5",
                "t.csv"
            ])
            .contains("--spool-sync-ms")
        );
        assert!(err(&["--spool-sync-ms", "5", "t.csv"]).contains("without --spool"));
        assert!(err(&["--spool", "d", "t.csv"]).contains("without -B"));
        assert!(err(&["--stats-interval", "-1", "t.csv"]).contains("--stats-interval"));
    }
}
