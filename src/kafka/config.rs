//! Producer configuration: [`KafkaConfig`], its defaults, librdkafka-style
//! `key=value` properties (for the CLI's `-X`) and validation.
//!
//! Secrets: [`Sasl`]'s `Debug` redacts the password, so a config can be
//! logged with `{:?}` safely.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How many acknowledgements the producer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// All in-sync replicas (`acks=all` / `-1`). The default.
    All,
    /// The partition leader only (`acks=1`).
    Leader,
    /// Fire and forget (`acks=0`): the broker sends no response.
    None,
}

impl Acks {
    /// The value of the `acks` field in a Produce request.
    pub fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// Batch compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
}

/// How the producer talks to brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            // The value is not quoted: every `sasl.*` value is treated as secret.
            _ => Err(
                "unsupported SASL mechanism (use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                    .to_string(),
            ),
        }
    }
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Sasl {
    // The password must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS files (PEM). With no `ca_file`, the Mozilla roots from
/// `webpki-roots` are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Everything the producer needs to know.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub bootstrap: Vec<String>,
    pub topic: String,
    pub client_id: String,
    pub acks: Acks,
    pub compression: Compression,
    /// How long a partition's batch waits for more records before it is sent.
    pub linger: Duration,
    /// Largest record batch (encoded, before compression) per partition.
    pub batch_max_bytes: usize,
    /// Records held while Kafka is away; past it the oldest are dropped.
    pub buffer: usize,
    /// Time allowed to deliver what is pending at `close()`.
    pub flush_timeout: Duration,
    /// Per request: connect, send and wait for the reply.
    pub request_timeout: Duration,
    /// First retry delay; doubles on each failure up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub security_protocol: SecurityProtocol,
    pub sasl: Option<Sasl>,
    pub tls: TlsFiles,
    /// Create the topic at start-up if it is missing.
    pub create_topic: bool,
    /// Partitions for a topic created by `create_topic` (-1: broker default).
    pub create_topic_partitions: i32,
    /// Set by `set()` when sasl.username/password came without
    /// sasl.mechanism: guessing PLAIN could send a password in clear to a
    /// user who meant SCRAM, so `validate()` refuses instead.
    sasl_mechanism_missing: bool,
    /// Use the idempotent producer when the broker supports it and acks=all
    /// (with acks other than all it is silently not used, as in librdkafka
    /// before 2.0: a default must not turn into a start-up error).
    pub enable_idempotence: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: Vec::new(),
            topic: "monitoring".into(),
            client_id: "latency-logger".into(),
            acks: Acks::All,
            compression: Compression::None,
            // Not librdkafka's 5 ms: probes come seconds apart, and one request
            // per second instead of one per record is what an edge device's
            // CPU and uplink want (issue 10); records still reach Kafka within
            // about a second, and at once at shutdown.
            linger: Duration::from_millis(1000),
            batch_max_bytes: 1024 * 1024,
            buffer: 100_000,
            flush_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: TlsFiles::default(),
            create_topic: false,
            create_topic_partitions: -1,
            sasl_mechanism_missing: false,
            enable_idempotence: true,
        }
    }
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{key}: expected milliseconds (a whole number), got {value:?}"))
}

fn parse_usize(key: &str, value: &str) -> Result<usize, String> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("{key}: expected a whole number, got {value:?}"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}: expected true or false, got {value:?}")),
    }
}

/// The property names [`KafkaConfig::set`] knows (every arm of its match).
pub const KNOWN_KEYS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "topic",
    "client.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "linger.ms",
    "queue.buffering.max.ms",
    "acks",
    "request.required.acks",
    "compression.type",
    "compression.codec",
    "message.timeout.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "batch.size",
    "batch.num.bytes",
    "queue.buffering.max.messages",
    "enable.idempotence",
    "allow.auto.create.topics",
];

/// Words that make a property's value secret wherever they are in its name.
const SECRET_WORDS: &[&str] = &["password", "secret", "token", "jaas", "credential"];

/// Whether a property's value may be a secret and must never be quoted:
/// `*.password`, `*.secret`, every `sasl.*` and `ssl.key.*` (except
/// `ssl.key.location`, a file name), and any name holding a word of
/// [`SECRET_WORDS`].
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    k.starts_with("sasl.")
        || (k.starts_with("ssl.key.") && k != "ssl.key.location")
        || SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// A property name for a message, never more than can be shown safely: a
/// known name it starts with (then `…` if there is more), else its leading
/// name characters (letters, digits, `.`, `_`, `-`) cut after a secret word,
/// else nothing. `sasl.password:hunter2` → `sasl.password…`.
pub fn shown_key(key: &str) -> String {
    let key = key.trim();
    let more = |shown: &str| {
        if shown.len() < key.len() {
            format!("{shown}…")
        } else {
            shown.to_string()
        }
    };
    let known = known_key_shown(key);
    if !known.is_empty() {
        return known;
    }
    let name_len = key
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        .unwrap_or(key.len());
    let mut name = &key[..name_len];
    let lower = name.to_ascii_lowercase();
    if let Some(end) = SECRET_WORDS
        .iter()
        .filter_map(|w| lower.find(w).map(|at| at + w.len()))
        .min()
    {
        name = &name[..end];
    }
    more(name)
}

/// The longest known property name `text` starts with (`…` after it if
/// there is more), else "": for text that is not known to be a name at all
/// (a `-X` argument without `=` may be a bare password).
pub fn known_key_shown(text: &str) -> String {
    let text = text.trim();
    match KNOWN_KEYS
        .iter()
        .filter(|k| text.starts_with(**k))
        .max_by_key(|k| k.len())
    {
        Some(k) if k.len() < text.len() => format!("{k}…"),
        Some(k) => (*k).to_string(),
        None => String::new(),
    }
}

impl KafkaConfig {
    /// Applies `-X`-style properties in order; the error names the property
    /// as [`shown_key`] does and never quotes a secret value.
    pub fn apply(&mut self, properties: &[(String, String)]) -> Result<(), String> {
        for (key, value) in properties {
            self.set(key, value)
                .map_err(|e| format!("Kafka setting {}: {e}", shown_key(key)))?;
        }
        Ok(())
    }

    /// A config with defaults and these bootstrap brokers.
    pub fn new(bootstrap: &str) -> Self {
        KafkaConfig {
            bootstrap: split_list(bootstrap),
            ..KafkaConfig::default()
        }
    }

    fn sasl_mut(&mut self) -> &mut Sasl {
        if self.sasl.is_none() {
            self.sasl_mechanism_missing = true;
        }
        self.sasl.get_or_insert_with(|| Sasl {
            mechanism: SaslMechanism::Plain,
            username: String::new(),
            password: String::new(),
        })
    }

    /// Set one librdkafka-named property, as given by `-X key=value`. The
    /// error quotes the value only if its key is not secret ([`is_secret_key`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let k = key.trim();
        if !KNOWN_KEYS.contains(&k) {
            return Err(format!("unknown Kafka property `{}`", shown_key(k)));
        }
        self.set_checked(k, value).map_err(|e| {
            // sasl.mechanism's message quotes no value and says what to use.
            if is_secret_key(k) && !k.starts_with("sasl.mechanism") {
                format!("not a valid value for {} (value not shown)", shown_key(k))
            } else {
                e
            }
        })
    }

    fn set_checked(&mut self, k: &str, value: &str) -> Result<(), String> {
        match k {
            "bootstrap.servers" | "metadata.broker.list" => {
                self.bootstrap = split_list(value);
            }
            "topic" => self.topic = value.trim().to_string(),
            "client.id" => {
                // Sent in every request header and shown in brokers' logs.
                let id = value.trim();
                if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
                    return Err(format!(
                        "client.id: expected 1-255 printable characters, got {}",
                        crate::redact::value(id)
                    ));
                }
                self.client_id = id.to_string();
            }
            "security.protocol" => {
                self.security_protocol = match value.trim().to_ascii_lowercase().as_str() {
                    "plaintext" => SecurityProtocol::Plaintext,
                    "ssl" => SecurityProtocol::Ssl,
                    "sasl_plaintext" => SecurityProtocol::SaslPlaintext,
                    "sasl_ssl" => SecurityProtocol::SaslSsl,
                    _ => {
                        return Err(format!(
                            "security.protocol: expected plaintext, ssl, sasl_plaintext or sasl_ssl, got {value:?}"
                        ));
                    }
                }
            }
            "sasl.mechanism" | "sasl.mechanisms" => {
                let m = SaslMechanism::parse(value.trim()).map_err(|e| format!("{k}: {e}"))?;
                self.sasl_mut().mechanism = m;
                self.sasl_mechanism_missing = false;
            }
            "sasl.username" => self.sasl_mut().username = value.to_string(),
            "sasl.password" => self.sasl_mut().password = value.to_string(),
            "ssl.ca.location" => self.tls.ca_file = Some(PathBuf::from(value.trim())),
            "ssl.certificate.location" => self.tls.cert_file = Some(PathBuf::from(value.trim())),
            "ssl.key.location" => self.tls.key_file = Some(PathBuf::from(value.trim())),
            "linger.ms" | "queue.buffering.max.ms" => self.linger = parse_ms(k, value)?,
            "acks" | "request.required.acks" => {
                self.acks = match value.trim().to_ascii_lowercase().as_str() {
                    "all" | "-1" => Acks::All,
                    "1" => Acks::Leader,
                    "0" => Acks::None,
                    _ => return Err(format!("{k}: expected all, -1, 1 or 0, got {value:?}")),
                }
            }
            "compression.type" | "compression.codec" => {
                self.compression = match value.trim().to_ascii_lowercase().as_str() {
                    "none" => Compression::None,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    _ => {
                        return Err(format!(
                            "{k}: expected none, gzip or snappy, got {value:?} (lz4 and zstd are not built in)"
                        ));
                    }
                }
            }
            "message.timeout.ms" | "request.timeout.ms" => {
                self.request_timeout = parse_ms(k, value)?
            }
            "retry.backoff.ms" => self.retry_backoff = parse_ms(k, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(k, value)?,
            "batch.size" | "batch.num.bytes" => self.batch_max_bytes = parse_usize(k, value)?,
            "queue.buffering.max.messages" => self.buffer = parse_usize(k, value)?,
            "enable.idempotence" => self.enable_idempotence = parse_bool(k, value)?,
            "allow.auto.create.topics" => self.create_topic = parse_bool(k, value)?,
            _ => return Err(format!("unknown Kafka property `{}`", shown_key(k))),
        }
        Ok(())
    }

    /// SASL is asked for but no password was given (the CLI then points at
    /// where a password comes from).
    pub fn sasl_password_missing(&self) -> bool {
        self.security_protocol.uses_sasl()
            && self.sasl.as_ref().is_none_or(|s| s.password.is_empty())
    }

    /// Check the whole config; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap.is_empty() {
            return Err("no bootstrap brokers given (bootstrap.servers)".into());
        }
        for b in &self.bootstrap {
            match b.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => return Err(format!("bootstrap broker {b:?} is not host:port")),
            }
        }
        if self.topic.is_empty() {
            return Err("the topic name is empty".into());
        }
        if self.topic.len() > 249
            || !self
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "topic {:?} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
                self.topic
            ));
        }
        if self.buffer == 0 {
            return Err("queue.buffering.max.messages must be at least 1".into());
        }
        if self.batch_max_bytes < 1024 {
            return Err("batch.size must be at least 1024 bytes".into());
        }
        if self.request_timeout < Duration::from_millis(100) {
            return Err("request.timeout.ms must be at least 100".into());
        }
        if self.create_topic_partitions == 0 || self.create_topic_partitions < -1 {
            return Err("topic partitions must be -1 (broker default) or at least 1".into());
        }
        if self.retry_backoff.is_zero() {
            return Err("retry.backoff.ms must be at least 1".into());
        }
        // librdkafka's upper limits; beyond them a deadline (`now + linger`)
        // would overflow `Instant` and end the producer thread.
        for (key, value, max_ms) in [
            ("linger.ms", self.linger, 900_000),
            ("request.timeout.ms", self.request_timeout, 900_000),
            ("retry.backoff.ms", self.retry_backoff, 300_000),
            ("retry.backoff.max.ms", self.retry_backoff_max, 300_000),
        ] {
            if value > Duration::from_millis(max_ms) {
                return Err(format!("{key} must be at most {max_ms}"));
            }
        }
        match (self.security_protocol.uses_sasl(), &self.sasl) {
            (true, None) => {
                return Err(format!(
                    "security.protocol {:?} needs sasl.mechanism, sasl.username and sasl.password",
                    self.security_protocol
                ));
            }
            (true, Some(s)) => {
                if self.sasl_mechanism_missing {
                    return Err(
                        "SASL needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)".into(),
                    );
                }
                if s.username.is_empty() {
                    return Err("SASL needs sasl.username".into());
                }
                if s.password.is_empty() {
                    return Err("SASL needs sasl.password".into());
                }
            }
            (false, Some(_)) => {
                return Err(
                    "sasl.* properties were given but security.protocol is not sasl_plaintext or sasl_ssl"
                        .into(),
                );
            }
            (false, None) => {}
        }
        let t = &self.tls;
        let any_tls_file = t.ca_file.is_some() || t.cert_file.is_some() || t.key_file.is_some();
        if any_tls_file && !self.security_protocol.uses_tls() {
            return Err(
                "ssl.* files were given but security.protocol is not ssl or sasl_ssl".into(),
            );
        }
        match (&t.cert_file, &t.key_file) {
            (Some(_), None) => {
                return Err("ssl.certificate.location given without ssl.key.location".into());
            }
            (None, Some(_)) => {
                return Err("ssl.key.location given without ssl.certificate.location".into());
            }
            _ => {}
        }
        for (what, p) in [
            ("ssl.ca.location", &t.ca_file),
            ("ssl.certificate.location", &t.cert_file),
            ("ssl.key.location", &t.key_file),
        ] {
            if let Some(p) = p
                && !p.is_file()
            {
                return Err(format!("{what}: {} is not a readable file", p.display()));
            }
        }
        Ok(())
    }

    /// Whether the idempotent producer should be used, given broker support.
    pub fn wants_idempotence(&self) -> bool {
        self.enable_idempotence && self.acks == Acks::All
    }

    /// The wait before the `attempts`-th retry: `retry_backoff`, doubling,
    /// capped at `retry_backoff_max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(16);
        let d = self.retry_backoff.saturating_mul(1u32 << exp);
        d.min(self.retry_backoff_max)
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = KafkaConfig::default();
        assert_eq!(cfg.backoff(1), Duration::from_millis(100));
        assert_eq!(cfg.backoff(2), Duration::from_millis(200));
        assert_eq!(cfg.backoff(4), Duration::from_millis(800));
        assert_eq!(cfg.backoff(10), Duration::from_secs(5));
        assert_eq!(cfg.backoff(1000), Duration::from_secs(5));
    }

    #[test]
    fn defaults() {
        let c = KafkaConfig::default();
        assert_eq!(c.topic, "monitoring");
        assert_eq!(c.client_id, "latency-logger");
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::from_millis(1000));
        assert_eq!(c.batch_max_bytes, 1 << 20);
        assert_eq!(c.buffer, 100_000);
        assert_eq!(c.flush_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert!(!c.create_topic);
        assert!(c.wants_idempotence());
    }

    #[test]
    fn set_librdkafka_properties() {
        let mut c = KafkaConfig::default();
        c.set("bootstrap.servers", "a:9092, b:9093").unwrap();
        assert_eq!(c.bootstrap, vec!["a:9092", "b:9093"]);
        c.set("security.protocol", "SASL_SSL").unwrap();
        c.set("sasl.mechanisms", "SCRAM-SHA-512").unwrap();
        c.set("sasl.username", "alice").unwrap();
        c.set("sasl.password", "s3cret").unwrap();
        c.set("linger.ms", "20").unwrap();
        c.set("acks", "1").unwrap();
        c.set("compression.codec", "snappy").unwrap();
        c.set("batch.size", "65536").unwrap();
        c.set("queue.buffering.max.messages", "10").unwrap();
        c.set("enable.idempotence", "false").unwrap();
        c.set("message.timeout.ms", "5000").unwrap();
        c.set("retry.backoff.ms", "50").unwrap();
        c.set("client.id", "x").unwrap();
        assert_eq!(c.security_protocol, SecurityProtocol::SaslSsl);
        let s = c.sasl.clone().unwrap();
        assert_eq!(s.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(s.username, "alice");
        assert_eq!(c.linger, Duration::from_millis(20));
        assert_eq!(c.acks, Acks::Leader);
        assert_eq!(c.compression, Compression::Snappy);
        assert_eq!(c.batch_max_bytes, 65536);
        assert_eq!(c.buffer, 10);
        assert!(!c.enable_idempotence);
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.retry_backoff, Duration::from_millis(50));
        assert_eq!(c.client_id, "x");
    }

    #[test]
    fn secret_values_and_keys_are_never_quoted() {
        let mut c = KafkaConfig::default();
        // Every known name is one `set` takes.
        for key in KNOWN_KEYS {
            if let Err(e) = c.set(key, "x") {
                assert!(!e.contains("unknown"), "{key}: {e}");
            }
        }
        let e = c
            .apply(&[("sasl.password:hunter2".into(), "x".into())])
            .unwrap_err();
        assert_eq!(
            e,
            "Kafka setting sasl.password…: unknown Kafka property `sasl.password…`"
        );
        let e = c
            .apply(&[("x.token.hunter2".into(), "v".into())])
            .unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(is_secret_key("sasl.username") && is_secret_key("ssl.key.password"));
        assert!(is_secret_key("a.secret") && !is_secret_key("linger.ms"));
        assert!(!is_secret_key("ssl.key.location") && is_secret_key("sasl.mechanism"));
        assert_eq!(shown_key("linger.ms:5"), "linger.ms…");
        assert_eq!(known_key_shown("sasl.passwordhunter2"), "sasl.password…");
        assert_eq!(known_key_shown("hunter2hunter2"), "");
        assert_eq!(shown_key("my.passwordhunter2"), "my.password…");
    }

    #[test]
    fn unknown_and_bad_values_are_named() {
        let mut c = KafkaConfig::default();
        let e = c.set("fetch.wait.max.ms", "1").unwrap_err();
        assert!(e.contains("fetch.wait.max.ms"), "{e}");
        let e = c.set("linger.ms", "soon").unwrap_err();
        assert!(e.contains("linger.ms"), "{e}");
        for key in [
            "linger.ms",
            "request.timeout.ms",
            "retry.backoff.ms",
            "retry.backoff.max.ms",
        ] {
            let mut c = KafkaConfig::default();
            c.set("bootstrap.servers", "kafka:9092").unwrap();
            c.set(key, "18446744073709551615").unwrap();
            let e = c.validate().unwrap_err();
            assert!(e.contains(key) && e.contains("at most"), "{e}");
        }
        let e = c.set("compression.type", "lz4").unwrap_err();
        assert!(e.contains("lz4"), "{e}");
        let e = c.set("sasl.mechanism", "GSSAPI").unwrap_err();
        assert!(
            e.contains("unsupported SASL mechanism") && !e.contains("GSSAPI"),
            "{e}"
        );
    }

    #[test]
    fn debug_redacts_password() {
        let mut c = KafkaConfig::new("h:1");
        c.set("sasl.password", "hunter2").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"));
    }

    #[test]
    fn validate_messages() {
        let c = KafkaConfig::default();
        assert!(c.validate().unwrap_err().contains("bootstrap"));
        let mut c = KafkaConfig::new("localhost");
        assert!(c.validate().unwrap_err().contains("host:port"));
        c = KafkaConfig::new("localhost:9092");
        c.validate().unwrap();
        c.security_protocol = SecurityProtocol::SaslPlaintext;
        assert!(c.validate().unwrap_err().contains("sasl.mechanism"));
        c.set("sasl.username", "u").unwrap();
        c.set("sasl.password", "p").unwrap();
        assert!(c.validate().unwrap_err().contains("sasl.mechanism"));
        c.set("sasl.mechanism", "SCRAM-SHA-256").unwrap();
        c.validate().unwrap();
        c.sasl.as_mut().unwrap().password.clear();
        assert!(c.validate().unwrap_err().contains("sasl.password"));
        let mut c = KafkaConfig::new("localhost:9092");
        c.set("sasl.username", "u").unwrap();
        assert!(c.validate().unwrap_err().contains("security.protocol"));
        let mut c = KafkaConfig::new("localhost:9092");
        c.security_protocol = SecurityProtocol::Ssl;
        c.tls.cert_file = Some("/etc/hostname".into());
        assert!(
            c.validate()
                .unwrap_err()
                .contains("without ssl.key.location")
        );
        c.tls.key_file = Some("/nonexistent/key.pem".into());
        assert!(c.validate().unwrap_err().contains("/nonexistent/key.pem"));
        let mut c = KafkaConfig::new("localhost:9092");
        c.topic = "bad topic".into();
        assert!(c.validate().unwrap_err().contains("bad topic"));
    }
}
