//! The Kafka sink: each report becomes a framed Avro record (key = URL,
//! timestamp = probe start) handed to the producer thread without waiting.
//! With `--spool`, each record is appended to the disk spool first and the
//! producer takes it from there; a small thread does the group commit.

use super::Sink;
use crate::kafka::{ProducerHandle, Record, RecordSender, SpoolFeed};
use crate::report::{AvroEncoder, Report};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The spool and its group-commit thread.
struct Spooling {
    feed: Arc<SpoolFeed>,
    /// Dropped to stop the sync thread.
    stop: Mutex<Option<crossbeam_channel::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Appends that failed (disk full, I/O error): sent from memory.
    failures: AtomicU64,
}

impl Spooling {
    fn start(feed: Arc<SpoolFeed>, sync_every: Duration) -> std::io::Result<Spooling> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let f = feed.clone();
        // Wake often enough to keep the interval, never busy-loop at 0 ms.
        let tick = (sync_every / 2).clamp(Duration::from_millis(5), Duration::from_millis(250));
        let thread = std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(tick)
                {
                    match f.sync_if_due(Instant::now()) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            log::error!("{e}");
                            failing = true;
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(Spooling {
            feed,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
            failures: AtomicU64::new(0),
        })
    }

    fn stop(&self) {
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

pub struct KafkaSink {
    encoder: AvroEncoder,
    sender: RecordSender,
    /// Taken once by `close`.
    producer: Mutex<Option<ProducerHandle>>,
    topic: String,
    encode_failures: AtomicU64,
    spool: Option<Spooling>,
}

impl KafkaSink {
    pub fn new(encoder: AvroEncoder, producer: ProducerHandle, topic: &str) -> KafkaSink {
        KafkaSink {
            encoder,
            sender: producer.sender(),
            producer: Mutex::new(Some(producer)),
            topic: topic.to_string(),
            encode_failures: AtomicU64::new(0),
            spool: None,
        }
    }

    fn send(&self, record: Record) {
        if let Some(sp) = &self.spool {
            match sp.feed.append(&record) {
                Ok(()) => return,
                Err(e) => {
                    // Still sent, from memory; say so now and then.
                    let n = sp.failures.fetch_add(1, Ordering::Relaxed);
                    if n.is_power_of_two() || n == 0 {
                        log::error!("{e}; {} record(s) sent without the spool", n + 1);
                    }
                }
            }
        }
        self.sender.send(record);
    }
}

impl Sink for KafkaSink {
    fn emit(&self, report: Report) {
        match self.encoder.encode(&report) {
            Ok(value) => self.send(Record {
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
        let mut lost = stats.failed + stats.dropped + self.encode_failures.load(Ordering::Relaxed);
        let mut msg = format!(
            "Kafka topic {}: {} records delivered, {} not delivered ({} failed or unflushed, {} dropped from a full buffer), {} bytes produced",
            self.topic, stats.delivered, lost, stats.failed, stats.dropped, stats.produce_bytes
        );
        if let Some(sp) = &self.spool {
            sp.stop();
            if let Err(e) = sp.feed.sync_now(Instant::now()) {
                log::error!("{e}");
                lost += 1;
            }
            let st = sp.feed.stats();
            lost += st.dropped;
            msg.push_str(&format!(
                "; spool: {} kept for the next run, {} dropped when full, {} damaged skipped",
                st.pending, st.dropped, st.corrupt
            ));
        }
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
    let feed = match &args.spool {
        None => None,
        Some(sa) => {
            let spool = crate::spool::Spool::open(
                crate::spool::SpoolConfig {
                    dir: sa.dir.clone(),
                    max_bytes: sa.max_bytes,
                    sync_every: sa.sync_every,
                },
                Instant::now(),
            )
            .map_err(|e| StartError::Runtime(e.to_string()))?;
            let st = spool.stats();
            log::info!(
                "spool {}: {} records from a previous run to send first ({} bytes; {} damaged skipped, {} torn tails)",
                sa.dir.display(),
                st.recovered,
                st.bytes,
                st.corrupt,
                st.torn
            );
            Some(SpoolFeed::new(spool))
        }
    };
    let producer = Producer::start_with(cfg, feed.clone()).map_err(|e| match e.kind {
        ErrorKind::Config => StartError::Config(e.message),
        _ => StartError::Runtime(e.message),
    })?;
    let mut sink = KafkaSink::new(encoder, producer, &args.topic);
    if let (Some(feed), Some(sa)) = (feed, &args.spool) {
        sink.spool = Some(
            Spooling::start(feed, sa.sync_every)
                .map_err(|e| StartError::Runtime(format!("cannot start spool thread: {e}")))?,
        );
    }
    Ok(sink)
}
