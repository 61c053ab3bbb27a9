//! The Kafka sink: each report becomes a framed Avro record (key = URL,
//! timestamp = probe start) handed to the producer thread without waiting.

use super::Sink;
use crate::kafka::{ProducerHandle, Record, RecordSender};
use crate::report::{AvroEncoder, Report};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct KafkaSink {
    encoder: AvroEncoder,
    sender: RecordSender,
    /// Taken once by `close`.
    producer: Mutex<Option<ProducerHandle>>,
    topic: String,
    encode_failures: AtomicU64,
}

impl KafkaSink {
    pub fn new(encoder: AvroEncoder, producer: ProducerHandle, topic: &str) -> KafkaSink {
        KafkaSink {
            encoder,
            sender: producer.sender(),
            producer: Mutex::new(Some(producer)),
            topic: topic.to_string(),
            encode_failures: AtomicU64::new(0),
        }
    }
}

impl Sink for KafkaSink {
    fn emit(&self, report: Report) {
        match self.encoder.encode(&report) {
            Ok(value) => self.sender.send(Record {
                key: report.url.into_bytes(),
                value,
                timestamp_ms: (report.timestamp * 1000.0) as i64,
            }),
            Err(e) => {
                // Cannot happen with the built-in schema; never lose it silently.
                self.encode_failures.fetch_add(1, Ordering::Relaxed);
                log::error!("{e}");
            }
        }
    }

    fn close(&self) -> Result<String, String> {
        let producer = self
            .producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(producer) = producer else {
            return Err("Kafka sink closed twice".to_string());
        };
        let stats = producer.close();
        let lost = stats.failed + stats.dropped + self.encode_failures.load(Ordering::Relaxed);
        let msg = format!(
            "Kafka topic {}: {} records delivered, {} not delivered ({} failed or unflushed, {} dropped from a full buffer), {} bytes produced",
            self.topic, stats.delivered, lost, stats.failed, stats.dropped, stats.produce_bytes
        );
        if lost == 0 { Ok(msg) } else { Err(msg) }
    }
}

/// Why the Kafka sink could not start.
#[derive(Debug)]
pub enum StartError {
    /// A bad setting: fix the flags (exit 2).
    Config(String),
    /// The brokers or the registry refused or failed (exit 1).
    Runtime(String),
    /// Stopped by a signal while waiting for the registry.
    Interrupted,
}

/// Builds the producer config from the CLI's settings, registers the schema
/// when a registry is given (retrying while `keep_waiting(delay)` allows),
/// and starts the producer after its start-up check of the brokers.
pub fn start(
    args: &crate::cli::KafkaArgs,
    keep_waiting: impl FnMut(std::time::Duration) -> bool,
) -> Result<KafkaSink, StartError> {
    use crate::kafka::{ErrorKind, KafkaConfig, Producer};
    use crate::registry::{Registry, RegistryError};
    use crate::report::{Framing, SCHEMA_JSON};

    let mut cfg = KafkaConfig::default();
    for (key, value) in &args.properties {
        cfg.set(key, value)
            .map_err(|e| StartError::Config(format!("Kafka setting {key}: {e}")))?;
    }
    cfg.topic = args.topic.clone();
    cfg.flush_timeout = args.flush_timeout;
    cfg.create_topic = cfg.create_topic || args.create_topic;
    cfg.validate().map_err(|e| {
        let hint = if e.contains("sasl.password") {
            format!(
                " (set ${} or give --sasl-password-file)",
                crate::cli::PASSWORD_ENV
            )
        } else {
            String::new()
        };
        StartError::Config(format!("Kafka settings: {e}{hint}"))
    })?;

    let framing = match &args.schema_registry {
        None => Framing::SingleObject,
        Some(url) => {
            let registry = Registry::parse(url).map_err(StartError::Config)?;
            let subject = format!("{}-value", args.topic);
            match registry.register(&subject, SCHEMA_JSON, keep_waiting) {
                Ok(schema_id) => {
                    log::info!("schema registered in {registry:?} under {subject}: id {schema_id}");
                    Framing::Confluent { schema_id }
                }
                Err(RegistryError::Refused(e)) => return Err(StartError::Runtime(e)),
                Err(RegistryError::Interrupted) => return Err(StartError::Interrupted),
            }
        }
    };
    let encoder = AvroEncoder::new(framing).map_err(StartError::Runtime)?;
    let producer = Producer::start(cfg).map_err(|e| match e.kind {
        ErrorKind::Config => StartError::Config(e.message),
        _ => StartError::Runtime(e.message),
    })?;
    Ok(KafkaSink::new(encoder, producer, &args.topic))
}
