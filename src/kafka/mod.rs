//! A synchronous, pure-Rust Kafka producer: plain OS threads, std
//! `TcpStream`, rustls, and the `kafka-protocol` codec. It produces
//! (key, value, timestamp) records; what the bytes mean (Avro) is the
//! caller's business.
//!
//! ```no_run
//! use latency_logger::kafka::{KafkaConfig, Producer, Record};
//! let cfg = KafkaConfig::new("localhost:9092");
//! let producer = Producer::start(cfg)?; // connects, checks the topic
//! producer.send(Record { key: b"k".to_vec(), value: b"v".to_vec(), timestamp_ms: 0 });
//! let stats = producer.close(); // flushes within flush_timeout
//! println!("delivered {}, not delivered {}", stats.delivered, stats.failed + stats.dropped);
//! # Ok::<(), latency_logger::kafka::KafkaError>(())
//! ```
//!
//! Modules: `config` (settings, `-X` properties), `checked` (a config
//! that passed every check, what the producer takes), `partitioner` (Java
//! murmur2), `protocol` (sans-IO frames, versions, errors), `sasl` (PLAIN,
//! SCRAM), `conn` (the only module doing I/O: one broker connection),
//! `cluster` (connections by address, metadata, the start-up check, topic
//! creation, the producer id), `accumulator` (per-partition batches,
//! sequences, retries; pure), `feed` (the spool as the producer reads it),
//! `producer` (the thread and its handles).

pub mod accumulator;
pub mod checked;
pub mod cluster;
pub mod config;
pub mod conn;
mod doorbell;
pub mod feed;
pub mod partitioner;
pub mod producer;
pub mod protocol;
pub mod sasl;

use kafka_protocol::error::ResponseError;
use protocol::{BrokerError, ErrorClass, ProtocolError, classify};

pub use checked::Checked;
pub use config::{Acks, Compression, KafkaConfig, Sasl, SaslMechanism, SecurityProtocol, TlsFiles};
pub use feed::SpoolFeed;
pub use producer::{Finisher, Producer, ProducerHandle, RecordSender, Stats};
pub use protocol::Record;

/// What kind of failure, so callers (and the producer) can tell a bad
/// password from a broker that is merely down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration cannot work (bad file, bad property).
    Config,
    /// TCP: resolve, connect, read, write, timeouts. Transient.
    Network,
    /// The broker answered with a retriable error code (e.g. the
    /// coordinator is still loading): retry later on the same connection.
    Busy,
    /// TLS handshake or certificate problems.
    Tls,
    /// SASL: wrong mechanism or credentials.
    Auth,
    /// The broker is too old or lacks a needed API.
    Unsupported,
    /// Malformed or unexpected bytes from the broker.
    Protocol,
    /// The topic is missing or not usable.
    Topic,
    /// A broker error code that retrying will not fix.
    Broker,
}

/// The error of the connection, cluster and producer layers: a kind to act
/// on, a message for operators (never containing secrets), and the
/// broker's error code, typed, when a broker answered with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub kind: ErrorKind,
    pub message: String,
    pub broker: Option<BrokerError>,
}

impl KafkaError {
    pub fn new(kind: ErrorKind, message: String) -> Self {
        KafkaError {
            kind,
            message,
            broker: None,
        }
    }

    /// Broker `addr` answered with an error code: `Busy` when retrying
    /// will help, else `Broker`.
    pub fn from_broker(addr: &str, e: BrokerError) -> Self {
        let kind = if classify(e.error) == ErrorClass::Retriable {
            ErrorKind::Busy
        } else {
            ErrorKind::Broker
        };
        KafkaError {
            kind,
            message: e.to_string(),
            broker: Some(e),
        }
        .at_broker(addr)
    }

    /// Names the broker this happened with.
    pub fn at_broker(mut self, addr: &str) -> Self {
        self.message = format!("broker {addr}: {}", self.message);
        self
    }

    /// The broker's error code, if that is what this is.
    pub fn broker_error(&self) -> Option<ResponseError> {
        self.broker.as_ref().map(|b| b.error)
    }

    /// Transient: worth retrying on this or another broker later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Network | ErrorKind::Busy | ErrorKind::Protocol
        )
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KafkaError {}

/// Malformed or unexpected bytes, with no broker to name.
impl From<ProtocolError> for KafkaError {
    fn from(e: ProtocolError) -> Self {
        KafkaError::new(ErrorKind::Protocol, e.0)
    }
}
