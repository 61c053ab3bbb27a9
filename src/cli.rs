//! Command-line flags: lexopt turns argv into raw `LowArgs`, which are then
//! validated into one `Config` the rest of the program runs from. Help text
//! lives next to each flag in `FLAGS`.

use crate::expect::StatusSet;
use crate::targets::{Bind, IpMode, Spec, header};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the SASL password (never a plain flag: argv is
/// visible to every user of the machine).
pub const PASSWORD_ENV: &str = "LATENCY_LOGGER_SASL_PASSWORD";

pub const USAGE: &str = "usage: latency-logger [-h] [-V] [-v] [--check] [-Q N] [-W N] [--connect-timeout S] \
[--timeout S] [--follow-redirects] [--splay S] [--cacert FILE] [--stop-timeout S] [--flush-timeout S] \
[--buffer N] [-B HOST:PORT[,...]] [-T TOPIC] [-S URL] [--source NAME] [--label K=V] [KAFKA OPTIONS] FILE";

/// Upper bounds: beyond them a value is a typo, and would exhaust memory
/// (the job queue is allocated whole) or threads.
pub const MAX_QUEUE: usize = 100_000;
pub const MAX_WORKERS: usize = 1024;
pub const MAX_BUFFER: usize = 1_000_000;
/// Longest stop or flush bound: a service manager kills long before.
pub const MAX_STOP_SECONDS: f64 = 3600.0;

/// One flag's documentation: (short, long, value name, help).
type FlagDoc = (
    Option<char>,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// Every flag, in help order. `parse_low` matches on the same names.
const FLAGS: &[FlagDoc] = &[
    (Some('h'), "help", None, "Print this help and exit."),
    (Some('V'), "version", None, "Print the version and exit."),
    (
        Some('v'),
        "verbose",
        None,
        "Log more to stderr (default: start-up and shutdown summaries and problems; -v debug, -vv trace).",
    ),
    (
        None,
        "check",
        None,
        "Check the flags and the targets file, print a summary, exit 0 (or 2 with every problem). Starts nothing.",
    ),
    (
        Some('Q'),
        "queue",
        Some("N"),
        "Capacity of the job queue between scheduler and workers [default: 100, at most 100000]. A job due while it is full is reported as `skipped`.",
    ),
    (
        Some('W'),
        "workers",
        Some("N"),
        "Number of worker threads probing in parallel [default: 3, at most 1024].",
    ),
    (
        None,
        "connect-timeout",
        Some("S"),
        "Seconds allowed for DNS, TCP connect and TLS together [default: 30].",
    ),
    (
        None,
        "timeout",
        Some("S"),
        "Seconds allowed for a whole probe [default: 300].",
    ),
    (
        None,
        "follow-redirects",
        None,
        "Follow HTTP redirects (default: report the 3xx itself).",
    ),
    (
        None,
        "expect",
        Some("CODES"),
        "Status codes that count as success, e.g. 200-299|301; a target's expect= wins [default: 200-399].",
    ),
    (
        None,
        "header",
        Some("'NAME: VALUE'"),
        "Header sent with every probe (repeatable; a target's header= of the same name wins). Values are never logged.",
    ),
    (
        None,
        "cert-warn-days",
        Some("N"),
        "Log a warning (once a day per target) when a server's certificate ends within N days; 0 = never [default: 14].",
    ),
    (
        None,
        "ip",
        Some("4|6|any|both"),
        "Address family for every target (both: one record per family per slot); a target's ip= wins [default: any].",
    ),
    (
        None,
        "bind",
        Some("ADDR|IFACE"),
        "Local address or (Linux) interface every probe connects from; a target's bind= wins.",
    ),
    (
        None,
        "splay",
        Some("S"),
        "Spread the first probes evenly over S extra seconds [default: 0].",
    ),
    (
        None,
        "cacert",
        Some("FILE"),
        "PEM CA bundle to trust for HTTPS targets (default: built-in web roots).",
    ),
    (
        None,
        "stop-timeout",
        Some("S"),
        "After SIGINT/SIGTERM, seconds probes in flight may still run; then they are reported as `interrupted` [default: 10].",
    ),
    (
        None,
        "flush-timeout",
        Some("S"),
        "Seconds allowed at shutdown to write or deliver pending records, after --stop-timeout [default: 10].",
    ),
    (
        None,
        "buffer",
        Some("N"),
        "Records waiting for the output (a slow stdout reader, an unreachable Kafka); beyond it the oldest are dropped [default: 100000, at most 1000000].",
    ),
    (
        None,
        "stdout",
        None,
        "With -B: also print JSON lines on stdout.",
    ),
    (
        Some('B'),
        "bootstrap-servers",
        Some("HOST:PORT[,...]"),
        "Kafka brokers; sends Avro records to Kafka instead of JSON lines to stdout.",
    ),
    (
        Some('T'),
        "topic",
        Some("NAME"),
        "Kafka topic [default: monitoring].",
    ),
    (
        Some('S'),
        "schema-registry",
        Some("URL"),
        "Confluent Schema Registry (user:password@ in the URL for basic auth); records use its wire format. Default: Avro single-object encoding.",
    ),
    (
        None,
        "ca-cert",
        Some("FILE"),
        "PEM CA bundle to trust for Kafka TLS.",
    ),
    (
        None,
        "auth-cert",
        Some("FILE"),
        "PEM client certificate for Kafka mutual TLS.",
    ),
    (
        None,
        "auth-key",
        Some("FILE"),
        "PEM private key for --auth-cert.",
    ),
    (
        None,
        "security-protocol",
        Some("P"),
        "plaintext, ssl, sasl_plaintext or sasl_ssl [default: plaintext]; the TLS files need ssl or sasl_ssl.",
    ),
    (
        None,
        "sasl-mechanism",
        Some("M"),
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    ),
    (
        None,
        "sasl-username",
        Some("NAME"),
        "SASL user name. The password comes from $LATENCY_LOGGER_SASL_PASSWORD or --sasl-password-file.",
    ),
    (
        None,
        "sasl-password-file",
        Some("FILE"),
        "File holding the SASL password (trailing newline ignored).",
    ),
    (
        None,
        "acks",
        Some("all|1|0"),
        "Broker acknowledgements to wait for [default: all].",
    ),
    (
        None,
        "compression",
        Some("C"),
        "none, gzip or snappy [default: none].",
    ),
    (
        None,
        "linger-ms",
        Some("MS"),
        "Milliseconds to wait for more records before sending a batch [default: 1000].",
    ),
    (
        None,
        "create-topic",
        None,
        "Ask the broker to create a missing topic (if it allows that).",
    ),
    (
        None,
        "spool",
        Some("DIR"),
        "Keep records on their way to Kafka in this directory, so a crash, power cut or long outage loses none; recommended on devices [default: off].",
    ),
    (
        None,
        "spool-sync-ms",
        Some("MS"),
        "With --spool: at most one fsync per this many milliseconds; a power cut loses at most the last interval [default: 1000].",
    ),
    (
        None,
        "spool-max-bytes",
        Some("N[K|M|G]"),
        "With --spool: size limit of the spool; when full the oldest records are dropped [default: 64M].",
    ),
    (
        None,
        "stats-interval",
        Some("S"),
        "Seconds between INFO lines counting probes and records (0 = off) [default: 300].",
    ),
    (
        None,
        "source",
        Some("NAME"),
        "Who probes, in every record's `source` field [default: the host name].",
    ),
    (
        None,
        "label",
        Some("KEY=VALUE"),
        "A label in every record's `labels` map, e.g. --label site=ams (repeatable).",
    ),
    (
        Some('X'),
        "producer-property",
        Some("KEY=VALUE"),
        "Producer setting by its librdkafka name, e.g. -X linger.ms=20 (repeatable).",
    ),
];

/// Flags as given, before validation.
#[derive(Debug, Default)]
pub struct LowArgs {
    pub help: bool,
    pub version: bool,
    pub check: bool,
    pub verbose: u8,
    pub queue: Option<String>,
    pub workers: Option<String>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub follow_redirects: bool,
    pub splay: Option<String>,
    pub cacert: Option<PathBuf>,
    pub topic: Option<String>,
    pub schema_registry: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
    pub flush_timeout: Option<String>,
    pub stop_timeout: Option<String>,
    pub buffer: Option<String>,
    pub create_topic: bool,
    pub also_stdout: bool,
    pub spool: Option<PathBuf>,
    pub spool_sync_ms: Option<String>,
    pub spool_max_bytes: Option<String>,
    pub stats_interval: Option<String>,
    pub source: Option<String>,
    pub labels: Vec<String>,
    pub expect: Option<String>,
    pub headers: Vec<String>,
    pub cert_warn_days: Option<String>,
    pub ip: Option<String>,
    pub bind: Option<String>,
    /// Kafka producer settings as librdkafka names them, in the order given,
    /// so dedicated flags and `-X` share one path and the last one wins.
    pub kafka: Vec<(String, String)>,
    pub file: Option<PathBuf>,
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

/// Parses argv (without the program name) into raw values.
pub fn parse_low(args: impl IntoIterator<Item = OsString>) -> Result<LowArgs, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut low = LowArgs::default();
    while let Some(arg) = p.next()? {
        // Only what FLAGS defines (and so `-h` shows) is a flag at all.
        let flag = match &arg {
            Short(c) => FLAGS.iter().find(|f| f.0 == Some(*c)),
            Long(l) => FLAGS.iter().find(|f| f.1 == *l),
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
        let Some(&(short, long, value, _)) = flag else {
            return Err(arg.unexpected().into());
        };
        let shown = match short {
            Some(c) => format!("-{c}/--{long}"),
            None => format!("--{long}"),
        };
        let value = match value {
            Some(_) => Some(p.value()?),
            None => None,
        };
        apply(&mut low, long, &shown, value)?;
    }
    Ok(low)
}

/// Stores one flag (by its long name in FLAGS) and its value, if it takes one.
fn apply(
    low: &mut LowArgs,
    long: &str,
    shown: &str,
    value: Option<OsString>,
) -> Result<(), UsageError> {
    let path = || PathBuf::from(value.clone().unwrap_or_default());
    let text = || -> Result<String, UsageError> {
        value
            .clone()
            .unwrap_or_default()
            .into_string()
            .map_err(|v| UsageError(format!("{shown}: value {v:?} is not valid UTF-8")))
    };
    let mut kafka = |key: &str| -> Result<(), UsageError> {
        let v = text()?;
        low.kafka.push((key.to_string(), v));
        Ok(())
    };
    match long {
        "help" => low.help = true,
        "version" => low.version = true,
        "verbose" => low.verbose = low.verbose.saturating_add(1),
        "check" => low.check = true,
        "queue" => low.queue = Some(text()?),
        "workers" => low.workers = Some(text()?),
        "connect-timeout" => low.connect_timeout = Some(text()?),
        "timeout" => low.timeout = Some(text()?),
        "follow-redirects" => low.follow_redirects = true,
        "splay" => low.splay = Some(text()?),
        "cacert" => low.cacert = Some(path()),
        "bootstrap-servers" => kafka("bootstrap.servers")?,
        "topic" => low.topic = Some(text()?),
        "schema-registry" => low.schema_registry = Some(text()?),
        "ca-cert" => kafka("ssl.ca.location")?,
        "auth-cert" => kafka("ssl.certificate.location")?,
        "auth-key" => kafka("ssl.key.location")?,
        "security-protocol" => kafka("security.protocol")?,
        "sasl-mechanism" => kafka("sasl.mechanism")?,
        "sasl-username" => kafka("sasl.username")?,
        "sasl-password-file" => low.sasl_password_file = Some(path()),
        "acks" => kafka("acks")?,
        "compression" => kafka("compression.type")?,
        "linger-ms" => kafka("linger.ms")?,
        "buffer" => low.buffer = Some(text()?),
        "flush-timeout" => low.flush_timeout = Some(text()?),
        "stop-timeout" => low.stop_timeout = Some(text()?),
        "create-topic" => low.create_topic = true,
        "stdout" => low.also_stdout = true,
        "spool" => low.spool = Some(path()),
        "spool-sync-ms" => low.spool_sync_ms = Some(text()?),
        "spool-max-bytes" => low.spool_max_bytes = Some(text()?),
        "stats-interval" => low.stats_interval = Some(text()?),
        "source" => low.source = Some(text()?),
        "label" => low.labels.push(text()?),
        "expect" => low.expect = Some(text()?),
        "header" => low.headers.push(text()?),
        "cert-warn-days" => low.cert_warn_days = Some(text()?),
        "ip" => low.ip = Some(text()?),
        "bind" => low.bind = Some(text()?),
        "producer-property" => {
            let kv = text()?;
            // Nothing after the key is ever echoed: with `:` or a space for
            // `=`, the rest is a value that may be a password.
            let Some((k, v)) = kv.split_once('=') else {
                let shown = crate::kafka::config::known_key_shown(&kv);
                return Err(UsageError(if shown.is_empty() {
                    "-X: expected KEY=VALUE (got no `=`; the text is not shown, it may hold a secret)".to_string()
                } else {
                    format!(
                        "-X: expected KEY=VALUE (got `{}`, value hidden)",
                        crate::redact::value(&shown)
                    )
                }));
            };
            if k.trim().is_empty() {
                return Err(UsageError(
                    "-X: empty key before `=` (value not shown)".to_string(),
                ));
            }
            low.kafka.push((k.trim().to_string(), v.to_string()));
        }
        // A flag in FLAGS that is stored nowhere: a bug, caught by a test.
        _ => return Err(UsageError(format!("{shown}: flag not handled"))),
    }
    Ok(())
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

/// Longest `--source` or label key/value accepted.
const MAX_IDENTITY_LEN: usize = 256;

/// This machine's host name, for `--source`'s default ("" if unknown).
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A `--source` or label part: printable text of bounded length.
fn identity_text(v: &str, what: &str) -> Result<String, UsageError> {
    if v.is_empty() || v.chars().count() > MAX_IDENTITY_LEN || v.chars().any(char::is_control) {
        return Err(UsageError(format!(
            "{what}: `{}` must be 1-{MAX_IDENTITY_LEN} printable characters",
            crate::redact::value(v)
        )));
    }
    Ok(v.to_string())
}

/// `--label KEY=VALUE` flags → pairs; keys unique.
fn labels(raw: &[String]) -> Result<Vec<(String, String)>, UsageError> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for kv in raw {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(UsageError(format!(
                "--label: expected KEY=VALUE, got `{}`",
                crate::redact::value(kv)
            )));
        };
        let k = identity_text(k.trim(), "--label key")?;
        if out.iter().any(|(have, _)| *have == k) {
            return Err(UsageError(format!("--label: key `{k}` given twice")));
        }
        let v = identity_text(v, "--label value")?;
        out.push((k, v));
    }
    Ok(out)
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

/// `--spool*` flags, validated.
fn spool_args(low: &LowArgs) -> Result<Option<SpoolArgs>, UsageError> {
    let Some(dir) = &low.spool else {
        if low.spool_sync_ms.is_some() || low.spool_max_bytes.is_some() {
            return Err(UsageError(
                "--spool-sync-ms/--spool-max-bytes given without --spool DIR".to_string(),
            ));
        }
        return Ok(None);
    };
    let sync_ms = match low.spool_sync_ms.as_deref() {
        None => 1000,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= 3_600_000 => n,
            _ => {
                return Err(UsageError(format!(
                    "--spool-sync-ms: `{v}` is not a whole number of milliseconds (0 to 3600000)"
                )));
            }
        },
    };
    let max_bytes = match low.spool_max_bytes.as_deref() {
        None => 64 << 20,
        Some(v) => {
            let t = v.trim();
            let (num, mult) = match t.char_indices().last() {
                Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
                Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
                Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
                _ => (t, 1),
            };
            match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
                Some(n) if n >= 64 << 10 => n,
                _ => {
                    return Err(UsageError(format!(
                        "--spool-max-bytes: `{v}` is not a size of at least 64K (a number, optionally with K, M or G)"
                    )));
                }
            }
        }
    };
    Ok(Some(SpoolArgs {
        dir: dir.clone(),
        sync_every: Duration::from_millis(sync_ms),
        max_bytes,
    }))
}

/// Validates raw flags. `password_env` is `$LATENCY_LOGGER_SASL_PASSWORD`
/// (passed in so tests need not touch the environment).
pub fn to_config(low: LowArgs, password_env: Option<String>) -> Result<Command, UsageError> {
    if low.help {
        return Ok(Command::Help);
    }
    if low.version {
        return Ok(Command::Version);
    }
    let queue = count(low.queue.as_deref(), "-Q/--queue", 100, MAX_QUEUE)?;
    let workers = count(low.workers.as_deref(), "-W/--workers", 3, MAX_WORKERS)?;
    let buffer = count(low.buffer.as_deref(), "--buffer", 100_000, MAX_BUFFER)?;
    let connect_timeout = seconds(
        low.connect_timeout.as_deref(),
        "--connect-timeout",
        30.0,
        false,
    )?;
    let timeout = seconds(low.timeout.as_deref(), "--timeout", 300.0, false)?;
    let splay = seconds(low.splay.as_deref(), "--splay", 0.0, true)?;
    let stop_timeout = bound(
        seconds(low.stop_timeout.as_deref(), "--stop-timeout", 10.0, true)?,
        "--stop-timeout",
    )?;
    let flush_timeout = bound(
        seconds(low.flush_timeout.as_deref(), "--flush-timeout", 10.0, true)?,
        "--flush-timeout",
    )?;
    let spool = spool_args(&low)?;
    let source = match &low.source {
        Some(s) => identity_text(s, "--source")?,
        None => host_name(),
    };
    let labels = labels(&low.labels)?;
    let mut defaults = Spec::default();
    if let Some(e) = &low.expect {
        defaults.expect = StatusSet::parse(e).map_err(|e| UsageError(format!("--expect: {e}")))?;
    }
    for h in &low.headers {
        let (name, value) = header(h).map_err(|e| UsageError(format!("--header: {e}")))?;
        defaults
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        defaults.headers.push((name, value));
    }
    if let Some(ip) = &low.ip {
        defaults.ip = IpMode::parse(ip).map_err(|e| UsageError(format!("--ip: {e}")))?;
    }
    if let Some(b) = &low.bind {
        defaults.bind = Some(Bind::parse(b).map_err(|e| UsageError(format!("--bind: {e}")))?);
    }
    let defaults = Arc::new(defaults);
    let cert_warn_days = match low.cert_warn_days.as_deref() {
        None => 14,
        Some("0") => 0,
        Some(v) => u32::try_from(count(Some(v), "--cert-warn-days", 14, 3650)?).unwrap_or(3650),
    };
    let file = low
        .file
        .clone()
        .ok_or_else(|| UsageError("missing the targets FILE argument".to_string()))?;
    let stats_interval = seconds(
        low.stats_interval.as_deref(),
        "--stats-interval",
        300.0,
        true,
    )?;
    let stats_interval = (!stats_interval.is_zero()).then_some(stats_interval);
    let kafka = kafka_settings(&low, buffer, flush_timeout, spool, password_env)?;
    let config = Box::new(Config {
        verbose: low.verbose,
        queue,
        workers,
        connect_timeout,
        timeout,
        follow_redirects: low.follow_redirects,
        splay,
        cacert: low.cacert,
        stop_timeout,
        flush_timeout,
        buffer,
        file,
        kafka,
        stats_interval,
        source,
        labels,
        defaults,
        cert_warn_days,
    });
    Ok(if low.check {
        Command::Check(config)
    } else {
        Command::Run(config)
    })
}

/// Kafka keys that enable the Kafka output (`-B` sets the first).
const BROKER_KEYS: [&str; 2] = ["bootstrap.servers", "metadata.broker.list"];

/// The Kafka output when `-B` (or `-X bootstrap.servers=` /
/// `metadata.broker.list=`) asks for it: every setting applied in the order
/// given and checked as a run checks it, so `--check` fails exactly where a
/// run would. Kafka-only flags without brokers are an error.
fn kafka_settings(
    low: &LowArgs,
    buffer: usize,
    flush_timeout: Duration,
    spool: Option<SpoolArgs>,
    password_env: Option<String>,
) -> Result<Option<KafkaSettings>, UsageError> {
    let wants_kafka = low
        .kafka
        .iter()
        .any(|(k, _)| BROKER_KEYS.contains(&k.as_str()));
    if !wants_kafka {
        let kafka_only = low.topic.is_some()
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
    if let (Some(_), Some(_)) = (&low.topic, x_topic) {
        return Err(UsageError(
            "-T/--topic and -X topic= both set the topic: give one of them".to_string(),
        ));
    }
    let topic = match (&low.topic, x_topic) {
        (Some(t), _) => t.clone(),
        (None, Some((_, t))) => t.trim().to_string(),
        (None, None) => "monitoring".to_string(),
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
    if low.buffer.is_some() {
        cfg.buffer = buffer;
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
    cfg.flush_timeout = flush_timeout;
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

/// A positive whole number, at most `max`.
fn count(v: Option<&str>, flag: &str, default: usize, max: usize) -> Result<usize, UsageError> {
    let Some(v) = v else { return Ok(default) };
    let shown = crate::redact::value(v);
    let digits = v.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError(format!(
            "{flag}: `{shown}` is not a positive whole number"
        )));
    }
    match digits.parse::<usize>() {
        Ok(0) => Err(UsageError(format!(
            "{flag}: `{shown}` is not a positive whole number"
        ))),
        Ok(n) if n <= max => Ok(n),
        _ => Err(UsageError(format!(
            "{flag}: `{shown}` is more than the maximum of {max}"
        ))),
    }
}

/// A stop or flush bound of at most [`MAX_STOP_SECONDS`].
fn bound(d: Duration, flag: &str) -> Result<Duration, UsageError> {
    if d.as_secs_f64() > MAX_STOP_SECONDS {
        return Err(UsageError(format!(
            "{flag}: {} s is more than the maximum of {MAX_STOP_SECONDS} s",
            d.as_secs_f64()
        )));
    }
    Ok(d)
}

/// Seconds, fractions allowed; zero only where `zero_ok`.
fn seconds(
    v: Option<&str>,
    flag: &str,
    default: f64,
    zero_ok: bool,
) -> Result<Duration, UsageError> {
    let secs = match v {
        None => default,
        Some(v) => v.trim().parse::<f64>().map_err(|_| {
            UsageError(format!(
                "{flag}: `{}` is not a number of seconds",
                crate::redact::value(v)
            ))
        })?,
    };
    let ok = secs.is_finite() && (secs > 0.0 || (zero_ok && secs == 0.0)) && secs <= 31_622_400.0;
    if !ok {
        let want = if zero_ok {
            "zero or more"
        } else {
            "more than zero"
        };
        return Err(UsageError(format!(
            "{flag}: `{}` must be {want} seconds (at most a year)",
            crate::redact::value(v.unwrap_or_default())
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The `-h` text: usage, then every flag with its help.
pub fn help() -> String {
    let mut out = format!(
        "latency-logger {}\nProbes HTTP(S) URLs on their own schedules, times each request the way curl\n\
         does, and writes one report per probe: JSON lines to stdout, or Avro to Kafka.\n\n{USAGE}\n\n\
         FILE holds one target per line: `interval_seconds, URL` (# comments, blank lines ok).\n\nOptions:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (short, long, value, text) in FLAGS {
        let mut left = match short {
            Some(c) => format!("  -{c}, --{long}"),
            None => format!("      --{long}"),
        };
        if let Some(v) = value {
            left.push(' ');
            left.push_str(v);
        }
        out.push_str(&format!("{left:<40} {text}\n"));
    }
    out.push_str(&format!(
        "\nEnvironment:\n  {PASSWORD_ENV:<38} SASL password.\n\nExit status: 0 ok (also after SIGINT/SIGTERM), 1 runtime failure, 2 bad flags or targets file, 130 second signal.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(config(&["t.csv"]).source, host_name());
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
    fn every_flag_in_the_table_is_handled() {
        for &(_, long, value, _) in FLAGS {
            let mut low = LowArgs::default();
            let v = value.map(|_| OsString::from("k=v"));
            let r = apply(&mut low, long, long, v);
            assert!(
                !matches!(&r, Err(UsageError(e)) if e.ends_with("flag not handled")),
                "--{long} is in FLAGS but not parsed"
            );
        }
    }

    #[test]
    fn readme_and_help_name_the_same_flags() {
        let readme = include_str!("../docs/flags.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `-")).collect();
        if rows.is_empty() && readme.contains("<!-- generated from src/cli.rs FLAGS") {
            // Not generated yet: nothing to compare.
            return;
        }
        let mut in_readme: Vec<String> = Vec::new();
        for line in rows {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for word in cell.split(['`', ',', ' ']) {
                if let Some(name) = word.strip_prefix("--") {
                    in_readme.push(name.to_string());
                } else if let Some(c) = word.strip_prefix('-').filter(|w| w.len() == 1) {
                    let long = FLAGS
                        .iter()
                        .find(|f| f.0.map(String::from).as_deref() == Some(c))
                        .map(|f| f.1.to_string());
                    in_readme.push(long.unwrap_or_else(|| format!("-{c} (unknown)")));
                }
            }
        }
        in_readme.sort();
        in_readme.dedup();
        let mut in_table: Vec<String> = FLAGS.iter().map(|f| f.1.to_string()).collect();
        in_table.sort();
        assert_eq!(
            in_readme, in_table,
            "docs/flags.md flag tables vs FLAGS (-h)"
        );
    }

    #[test]
    fn help_lists_every_flag() {
        let h = help();
        for (_, long, _, _) in FLAGS {
            assert!(h.contains(&format!("--{long}")), "{long}");
        }
        assert!(matches!(run(&["-h"]), Ok(Command::Help)));
        assert!(matches!(run(&["-V"]), Ok(Command::Version)));
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
