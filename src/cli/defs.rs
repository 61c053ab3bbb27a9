//! Every flag, defined once: its names, the value it takes, its default, its
//! help, and the function that parses and checks its value into [`LowArgs`].
//! This table drives parsing, `-h` (and so the man page) and docs/flags.md;
//! a unit test fails when docs/flags.md drifts from it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::{LowArgs, UsageError};
use crate::expect::StatusSet;
use crate::targets::{Bind, IpMode, header};

/// Upper bounds: beyond them a value is a typo, and would exhaust memory
/// (the job queue is allocated whole) or threads.
pub const MAX_QUEUE: usize = 100_000;
pub const MAX_WORKERS: usize = 1024;
pub const MAX_BUFFER: usize = 1_000_000;
/// Longest stop or flush bound: a service manager kills long before.
pub const MAX_STOP_SECONDS: f64 = 3600.0;
/// Longest `--source` or label key/value accepted.
const MAX_IDENTITY_LEN: usize = 256;

/// Where a flag is listed in `-h` and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    General,
    Probes,
    Output,
    Kafka,
    Spool,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::General,
        Section::Probes,
        Section::Output,
        Section::Kafka,
        Section::Spool,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::General => "General",
            Section::Probes => "Probes",
            Section::Output => "Output",
            Section::Kafka => "Kafka (with -B)",
            Section::Spool => "Spool (with -B)",
        }
    }
}

/// A flag's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// None (the help says what happens without it).
    None,
    /// This value, parsed by the flag's own `set` before argv is read.
    Value(&'static str),
    /// Described only: decided elsewhere (the producer's defaults, the host name).
    Described(&'static str),
}

/// A flag's value as given, with the name to show in messages.
pub struct Val {
    /// `-Q/--queue` or `--timeout`.
    pub shown: String,
    pub value: Option<OsString>,
}

impl Val {
    pub fn text(&self) -> Result<String, UsageError> {
        self.value
            .clone()
            .unwrap_or_default()
            .into_string()
            .map_err(|v| UsageError(format!("{}: value {v:?} is not valid UTF-8", self.shown)))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.value.clone().unwrap_or_default())
    }
}

/// One flag. `value` is the name of the value it takes (`None`: a switch).
pub struct Flag {
    pub short: Option<char>,
    pub long: &'static str,
    pub value: Option<&'static str>,
    pub default: Default,
    pub section: Section,
    pub help: &'static str,
    /// Parses and checks the value into its field of `LowArgs`.
    pub set: fn(&mut LowArgs, &Val) -> Result<(), UsageError>,
}

impl Flag {
    /// `-Q/--queue` or `--timeout`, as messages name it.
    pub fn shown(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}/--{}", self.long),
            None => format!("--{}", self.long),
        }
    }
}

/// A Kafka producer setting under its librdkafka name, in argv order, so
/// dedicated flags and `-X` share one path and the last one wins.
fn kafka(low: &mut LowArgs, key: &str, v: &Val) -> Result<(), UsageError> {
    let value = v.text()?;
    low.kafka.push((key.to_string(), value));
    Ok(())
}

/// Every flag, in help order.
pub const FLAGS: &[Flag] = &[
    Flag {
        short: Some('h'),
        long: "help",
        value: None,
        default: Default::None,
        section: Section::General,
        help: "Print this help and exit.",
        set: |low, _| {
            low.help = true;
            Ok(())
        },
    },
    Flag {
        short: Some('V'),
        long: "version",
        value: None,
        default: Default::None,
        section: Section::General,
        help: "Print the version and exit.",
        set: |low, _| {
            low.version = true;
            Ok(())
        },
    },
    Flag {
        short: Some('v'),
        long: "verbose",
        value: None,
        default: Default::None,
        section: Section::General,
        help: "Log more to stderr (default: start-up and shutdown summaries and problems; -v debug, -vv trace).",
        set: |low, _| {
            low.verbose = low.verbose.saturating_add(1);
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "check",
        value: None,
        default: Default::None,
        section: Section::General,
        help: "Check the flags (Kafka settings and TLS files included) and the targets file as a run would, print a summary, exit 0 (or 2 with the problem). Opens no socket.",
        set: |low, _| {
            low.check = true;
            Ok(())
        },
    },
    Flag {
        short: Some('Q'),
        long: "queue",
        value: Some("N"),
        default: Default::Value("100"),
        section: Section::General,
        help: "Capacity of the job queue between scheduler and workers (at most 100000). A job due while it is full is reported as `skipped`.",
        set: |low, v| {
            low.queue = count(v, MAX_QUEUE)?;
            Ok(())
        },
    },
    Flag {
        short: Some('W'),
        long: "workers",
        value: Some("N"),
        default: Default::Value("3"),
        section: Section::General,
        help: "Number of worker threads probing in parallel (at most 1024).",
        set: |low, v| {
            low.workers = count(v, MAX_WORKERS)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "splay",
        value: Some("S"),
        default: Default::Value("0"),
        section: Section::General,
        help: "Spread the first probes evenly over S extra seconds.",
        set: |low, v| {
            low.splay = seconds(v, true)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "stop-timeout",
        value: Some("S"),
        default: Default::Value("10"),
        section: Section::General,
        help: "After SIGINT/SIGTERM, seconds probes in flight may still run; then they are reported as `interrupted`.",
        set: |low, v| {
            low.stop_timeout = bound(v, seconds(v, true)?)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "flush-timeout",
        value: Some("S"),
        default: Default::Value("10"),
        section: Section::General,
        help: "Seconds allowed at shutdown to write or deliver pending records, after --stop-timeout.",
        set: |low, v| {
            low.flush_timeout = bound(v, seconds(v, true)?)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "stats-interval",
        value: Some("S"),
        default: Default::Value("300"),
        section: Section::General,
        help: "Seconds between INFO lines counting probes and records (0 = off).",
        set: |low, v| {
            low.stats_interval = seconds(v, true)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "connect-timeout",
        value: Some("S"),
        default: Default::Value("30"),
        section: Section::Probes,
        help: "Seconds allowed for DNS, TCP connect and TLS together.",
        set: |low, v| {
            low.connect_timeout = seconds(v, false)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "timeout",
        value: Some("S"),
        default: Default::Value("300"),
        section: Section::Probes,
        help: "Seconds allowed for a whole probe, redirects included.",
        set: |low, v| {
            low.timeout = seconds(v, false)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "follow-redirects",
        value: None,
        default: Default::None,
        section: Section::Probes,
        help: "Follow HTTP redirects as curl -L does, up to 30 (default: report the 3xx itself).",
        set: |low, _| {
            low.follow_redirects = true;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "expect",
        value: Some("CODES"),
        default: Default::Value("200-399"),
        section: Section::Probes,
        help: "Status codes that count as success, e.g. 200-299|301; a target's expect= wins.",
        set: |low, v| {
            low.defaults.expect = StatusSet::parse(&v.text()?).map_err(|e| prefixed(v, e))?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "header",
        value: Some("'NAME: VALUE'"),
        default: Default::None,
        section: Section::Probes,
        help: "Header sent with every probe (repeatable; a target's header= of the same name wins). Values are never logged.",
        set: |low, v| {
            let (name, value) = header(&v.text()?).map_err(|e| prefixed(v, e))?;
            let headers = &mut low.defaults.headers;
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            headers.push((name, value));
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "ip",
        value: Some("4|6|any|both"),
        default: Default::Value("any"),
        section: Section::Probes,
        help: "Address family for every target (both: one record per family per slot); a target's ip= wins.",
        set: |low, v| {
            low.defaults.ip = IpMode::parse(&v.text()?).map_err(|e| prefixed(v, e))?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "bind",
        value: Some("ADDR|IFACE"),
        default: Default::None,
        section: Section::Probes,
        help: "Local address or (Linux) interface every probe connects from; a target's bind= wins.",
        set: |low, v| {
            low.defaults.bind = Some(Bind::parse(&v.text()?).map_err(|e| prefixed(v, e))?);
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "cacert",
        value: Some("FILE"),
        default: Default::Described("built-in web roots"),
        section: Section::Probes,
        help: "PEM CA bundle to trust for HTTPS targets.",
        set: |low, v| {
            low.cacert = Some(v.path());
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "cert-warn-days",
        value: Some("N"),
        default: Default::Value("14"),
        section: Section::Probes,
        help: "Log a warning (once a day per target) when a server's certificate ends within N days; 0 = never.",
        set: |low, v| {
            low.cert_warn_days = match v.text()?.as_str() {
                "0" => 0,
                _ => u32::try_from(count(v, 3650)?).unwrap_or(3650),
            };
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "source",
        value: Some("NAME"),
        default: Default::Described("the host name"),
        section: Section::Output,
        help: "Who probes, in every record's `source` field.",
        set: |low, v| {
            low.source = Some(identity_text(&v.text()?, "--source")?);
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "label",
        value: Some("KEY=VALUE"),
        default: Default::None,
        section: Section::Output,
        help: "A label in every record's `labels` map, e.g. --label site=ams (repeatable).",
        set: |low, v| {
            let kv = v.text()?;
            let Some((k, value)) = kv.split_once('=') else {
                return Err(UsageError(format!(
                    "--label: expected KEY=VALUE, got `{}`",
                    crate::redact::value(&kv)
                )));
            };
            let k = identity_text(k.trim(), "--label key")?;
            if low.labels.iter().any(|(have, _)| *have == k) {
                return Err(UsageError(format!("--label: key `{k}` given twice")));
            }
            let value = identity_text(value, "--label value")?;
            low.labels.push((k, value));
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "buffer",
        value: Some("N"),
        default: Default::Value("100000"),
        section: Section::Output,
        help: "Records waiting for the output (a slow stdout reader, an unreachable Kafka); beyond it the oldest are dropped (at most 1000000).",
        set: |low, v| {
            low.buffer = count(v, MAX_BUFFER)?;
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "stdout",
        value: None,
        default: Default::None,
        section: Section::Output,
        help: "With -B: also print JSON lines on stdout.",
        set: |low, _| {
            low.also_stdout = true;
            Ok(())
        },
    },
    Flag {
        short: Some('B'),
        long: "bootstrap-servers",
        value: Some("HOST:PORT[,...]"),
        default: Default::None,
        section: Section::Kafka,
        help: "Kafka brokers; sends Avro records to Kafka instead of JSON lines to stdout.",
        set: |low, v| kafka(low, "bootstrap.servers", v),
    },
    Flag {
        short: Some('T'),
        long: "topic",
        value: Some("NAME"),
        default: Default::Value("monitoring"),
        section: Section::Kafka,
        help: "Kafka topic (-X topic= is the same setting; give one of them).",
        set: |low, v| {
            low.topic = v.text()?;
            Ok(())
        },
    },
    Flag {
        short: Some('S'),
        long: "schema-registry",
        value: Some("URL"),
        default: Default::Described("Avro single-object encoding"),
        section: Section::Kafka,
        help: "Confluent Schema Registry (user:password@ in the URL for basic auth); records use its wire format.",
        set: |low, v| {
            low.schema_registry = Some(v.text()?);
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "ca-cert",
        value: Some("FILE"),
        default: Default::None,
        section: Section::Kafka,
        help: "PEM CA bundle to trust for Kafka TLS.",
        set: |low, v| kafka(low, "ssl.ca.location", v),
    },
    Flag {
        short: None,
        long: "auth-cert",
        value: Some("FILE"),
        default: Default::None,
        section: Section::Kafka,
        help: "PEM client certificate for Kafka mutual TLS.",
        set: |low, v| kafka(low, "ssl.certificate.location", v),
    },
    Flag {
        short: None,
        long: "auth-key",
        value: Some("FILE"),
        default: Default::None,
        section: Section::Kafka,
        help: "PEM private key for --auth-cert.",
        set: |low, v| kafka(low, "ssl.key.location", v),
    },
    Flag {
        short: None,
        long: "security-protocol",
        value: Some("P"),
        default: Default::Described("plaintext"),
        section: Section::Kafka,
        help: "plaintext, ssl, sasl_plaintext or sasl_ssl; the TLS files need ssl or sasl_ssl.",
        set: |low, v| kafka(low, "security.protocol", v),
    },
    Flag {
        short: None,
        long: "sasl-mechanism",
        value: Some("M"),
        default: Default::None,
        section: Section::Kafka,
        help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        set: |low, v| kafka(low, "sasl.mechanism", v),
    },
    Flag {
        short: None,
        long: "sasl-username",
        value: Some("NAME"),
        default: Default::None,
        section: Section::Kafka,
        help: "SASL user name. The password comes from $LATENCY_LOGGER_SASL_PASSWORD or --sasl-password-file.",
        set: |low, v| kafka(low, "sasl.username", v),
    },
    Flag {
        short: None,
        long: "sasl-password-file",
        value: Some("FILE"),
        default: Default::None,
        section: Section::Kafka,
        help: "File holding the SASL password (trailing newline ignored).",
        set: |low, v| {
            low.sasl_password_file = Some(v.path());
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "acks",
        value: Some("all|1|0"),
        default: Default::Described("all"),
        section: Section::Kafka,
        help: "Broker acknowledgements to wait for.",
        set: |low, v| kafka(low, "acks", v),
    },
    Flag {
        short: None,
        long: "compression",
        value: Some("C"),
        default: Default::Described("none"),
        section: Section::Kafka,
        help: "none, gzip or snappy.",
        set: |low, v| kafka(low, "compression.type", v),
    },
    Flag {
        short: None,
        long: "linger-ms",
        value: Some("MS"),
        default: Default::Described("1000"),
        section: Section::Kafka,
        help: "Milliseconds to wait for more records before sending a batch.",
        set: |low, v| kafka(low, "linger.ms", v),
    },
    Flag {
        short: None,
        long: "create-topic",
        value: None,
        default: Default::None,
        section: Section::Kafka,
        help: "Ask the broker to create a missing topic (if it allows that).",
        set: |low, _| {
            low.create_topic = true;
            Ok(())
        },
    },
    Flag {
        short: Some('X'),
        long: "producer-property",
        value: Some("KEY=VALUE"),
        default: Default::None,
        section: Section::Kafka,
        help: "Producer setting by its librdkafka name, e.g. -X linger.ms=20 (repeatable; later settings win). Keys: see docs/kafka.md.",
        set: producer_property,
    },
    Flag {
        short: None,
        long: "spool",
        value: Some("DIR"),
        default: Default::Described("off"),
        section: Section::Spool,
        help: "Keep records on their way to Kafka in this directory, so a crash, power cut or long outage loses none; recommended on devices.",
        set: |low, v| {
            low.spool = Some(v.path());
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "spool-sync-ms",
        value: Some("MS"),
        default: Default::Value("1000"),
        section: Section::Spool,
        help: "With --spool: at most one fsync per this many milliseconds; a power cut loses at most the last interval.",
        set: |low, v| {
            let text = v.text()?;
            low.spool_sync = match text.trim().parse::<u64>() {
                Ok(n) if n <= 3_600_000 => Duration::from_millis(n),
                _ => {
                    return Err(UsageError(format!(
                        "--spool-sync-ms: `{}` is not a whole number of milliseconds (0 to 3600000)",
                        crate::redact::value(&text)
                    )));
                }
            };
            Ok(())
        },
    },
    Flag {
        short: None,
        long: "spool-max-bytes",
        value: Some("N[K|M|G]"),
        default: Default::Value("64M"),
        section: Section::Spool,
        help: "With --spool: size limit of the spool; when full the oldest records are dropped.",
        set: |low, v| {
            low.spool_max_bytes = size(v)?;
            Ok(())
        },
    },
];

/// `-X KEY=VALUE`. Nothing after the key is ever echoed: with `:` or a space
/// for `=`, the rest is a value that may be a password.
fn producer_property(low: &mut LowArgs, v: &Val) -> Result<(), UsageError> {
    let kv = v.text()?;
    let Some((k, value)) = kv.split_once('=') else {
        let shown = crate::kafka::config::known_key_shown(&kv);
        return Err(UsageError(if shown.is_empty() {
            "-X: expected KEY=VALUE (got no `=`; the text is not shown, it may hold a secret)"
                .to_string()
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
    low.kafka.push((k.trim().to_string(), value.to_string()));
    Ok(())
}

/// A message from a value parser, prefixed with the flag (`--expect: …`).
fn prefixed(v: &Val, e: String) -> UsageError {
    UsageError(format!("{}: {e}", v.shown))
}

/// A positive whole number, at most `max`.
fn count(v: &Val, max: usize) -> Result<usize, UsageError> {
    let text = v.text()?;
    let shown = crate::redact::value(&text);
    let flag = &v.shown;
    let digits = text.trim();
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
fn bound(v: &Val, d: Duration) -> Result<Duration, UsageError> {
    if d.as_secs_f64() > MAX_STOP_SECONDS {
        return Err(UsageError(format!(
            "{}: {} s is more than the maximum of {MAX_STOP_SECONDS} s",
            v.shown,
            d.as_secs_f64()
        )));
    }
    Ok(d)
}

/// Seconds, fractions allowed; zero only where `zero_ok`; at most a year.
fn seconds(v: &Val, zero_ok: bool) -> Result<Duration, UsageError> {
    let text = v.text()?;
    let shown = crate::redact::value(&text);
    let secs = text
        .trim()
        .parse::<f64>()
        .map_err(|_| UsageError(format!("{}: `{shown}` is not a number of seconds", v.shown)))?;
    let ok = secs.is_finite() && (secs > 0.0 || (zero_ok && secs == 0.0)) && secs <= 31_622_400.0;
    if !ok {
        let want = if zero_ok {
            "zero or more"
        } else {
            "more than zero"
        };
        return Err(UsageError(format!(
            "{}: `{shown}` must be {want} seconds (at most a year)",
            v.shown
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A size of at least 64K: a number, optionally with K, M or G.
fn size(v: &Val) -> Result<u64, UsageError> {
    let text = v.text()?;
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(n) if n >= 64 << 10 => Ok(n),
        _ => Err(UsageError(format!(
            "{}: `{}` is not a size of at least 64K (a number, optionally with K, M or G)",
            v.shown,
            crate::redact::value(&text)
        ))),
    }
}

/// A `--source` or label part: printable text of bounded length.
pub fn identity_text(v: &str, what: &str) -> Result<String, UsageError> {
    if v.is_empty() || v.chars().count() > MAX_IDENTITY_LEN || v.chars().any(char::is_control) {
        return Err(UsageError(format!(
            "{what}: `{}` must be 1-{MAX_IDENTITY_LEN} printable characters",
            crate::redact::value(v)
        )));
    }
    Ok(v.to_string())
}
