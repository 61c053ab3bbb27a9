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

/// With a spool and a registry: the last schema id, for a start while the
/// registry is down. One line: `<registry> <subject> <id>`.
const SCHEMA_CACHE: &str = "schema-id";
const UNKNOWN_ID: u64 = u64::MAX;

struct SchemaCache {
    path: std::path::PathBuf,
    /// Registry URL (no credentials) and subject: an id is only reused for
    /// the same ones.
    key: String,
}

impl SchemaCache {
    fn load(&self) -> Option<u32> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let (key, id) = text.trim_end().rsplit_once(' ')?;
        (key == self.key).then(|| id.parse().ok()).flatten()
    }

    fn store(&self, id: u32) {
        let tmp = self.path.with_extension("tmp");
        // The registry is asked before the spool is opened (and creates it).
        let dir = self.path.parent().map(std::fs::create_dir_all);
        let r = dir
            .unwrap_or(Ok(()))
            .and_then(|()| std::fs::write(&tmp, format!("{} {id}\n", self.key)))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = r {
            log::warn!("cannot cache the schema id in {}: {e}", self.path.display());
        }
    }
}

/// Puts the schema id into records made while it was unknown, and holds
/// records back until it is known.
struct SchemaStamp {
    id: AtomicU64,
}

impl crate::kafka::Finisher for SchemaStamp {
    fn ready(&self) -> bool {
        self.id.load(Ordering::Acquire) != UNKNOWN_ID
    }

    fn finish(&self, r: &mut Record) {
        let id = self.id.load(Ordering::Acquire);
        // Only the placeholder 0: a record framed with a real id (this run's
        // or a previous one's) keeps the id of the schema it was written with.
        if let (Ok(id), Some([0, 0, 0, 0, 0])) = (u32::try_from(id), r.value.get(..5)) {
            r.value[1..5].copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// Registers the schema in the background while the registry is down.
struct Registering {
    stop: Mutex<Option<crossbeam_channel::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Registering {
    fn start(
        registry: crate::registry::Registry,
        subject: String,
        cache: Option<SchemaCache>,
        stamp: Arc<SchemaStamp>,
    ) -> std::io::Result<Registering> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || {
                let keep_trying = |d| {
                    matches!(
                        stop_rx.recv_timeout(d),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout)
                    )
                };
                // The first try was made at start: wait before the next.
                if !keep_trying(Duration::from_millis(500)) {
                    return;
                }
                match registry.register(&subject, crate::report::SCHEMA_JSON, keep_trying) {
                    Ok(id) => {
                        log::info!("schema registered in {registry:?} under {subject}: id {id}");
                        let old = stamp.id.swap(u64::from(id), Ordering::AcqRel);
                        if old != UNKNOWN_ID && old != u64::from(id) {
                            log::warn!(
                                "schema id {id} differs from the cached {old}; records already framed keep {old}"
                            );
                        }
                        if let Some(c) = &cache {
                            c.store(id);
                        }
                    }
                    Err(crate::registry::RegistryError::Refused(e)) => {
                        log::error!("{e}; records wait (fix the registry, then restart)")
                    }
                    Err(crate::registry::RegistryError::Interrupted) => {}
                }
            })?;
        Ok(Registering {
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn stop(&self) {
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The spool and its group-commit thread.
struct Spooling {
    feed: Arc<SpoolFeed>,
    /// Dropped to stop the sync thread.
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Appends that failed (disk full, I/O error): sent from memory.
    failures: AtomicU64,
}

impl Spooling {
    fn start(feed: Arc<SpoolFeed>, sync_every: Duration) -> std::io::Result<Spooling> {
        // std's channel: its timed wait parks at once (crossbeam's spins first).
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let f = feed.clone();
        // One wake-up per interval, each at least `sync_every` after the last
        // commit, so the commit is always due and a power cut loses at most
        // that window; never a busy loop at 0 ms.
        let every = sync_every.max(Duration::from_millis(5));
        let thread = std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || {
                let mut failing = false;
                let mut next = Instant::now() + every;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(next.saturating_duration_since(Instant::now()))
                {
                    let now = Instant::now();
                    next = now + every;
                    match f.sync_if_due(now) {
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
    spool: Option<Spooling>,
    registering: Option<Registering>,
    /// The producer's last counts, once closed.
    closed: Mutex<Option<crate::kafka::Stats>>,
}

impl KafkaSink {
    pub fn new(encoder: AvroEncoder, producer: ProducerHandle, topic: &str) -> KafkaSink {
        KafkaSink {
            encoder,
            sender: producer.sender(),
            producer: Mutex::new(Some(producer)),
            topic: topic.to_string(),
            spool: None,
            registering: None,
            closed: Mutex::new(None),
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
        let value = self.encoder.encode(&report);
        self.send(Record {
            key: report.url.into_bytes(),
            value,
            timestamp_ms: (report.timestamp * 1000.0) as i64,
        });
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
        if let Some(r) = &self.registering {
            r.stop();
        }
        let mut stats = producer.close();
        stats.waiting = 0;
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
        let mut lost = stats.failed + stats.dropped;
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

    fn counts(&self) -> Option<super::DeliveryCounts> {
        let stats = match &*self.producer.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(p) => p.stats(),
            None => (*self.closed.lock().unwrap_or_else(|p| p.into_inner())).unwrap_or_default(),
        };
        let spool = self
            .spool
            .as_ref()
            .map(|s| s.feed.stats())
            .unwrap_or_default();
        Some(super::DeliveryCounts {
            delivered: stats.delivered,
            waiting_in_memory: stats.waiting,
            in_spool: spool.pending,
            dropped: stats.dropped + spool.dropped,
            failed: stats.failed,
        })
    }
}

/// Why the Kafka sink could not start.
#[derive(Debug)]
pub enum StartError {
    /// A bad setting: fix the flags (exit 2).
    Config(String),
    /// The brokers or the registry refused or failed (exit 1).
    Runtime(String),
}

/// Starts the Kafka output from settings the flags already checked whole:
/// registers the schema when a registry is given (in the background while
/// it does not answer), opens the spool, and starts the producer after its
/// start-up check of the brokers.
pub fn start(args: &crate::cli::KafkaSettings) -> Result<KafkaSink, StartError> {
    use crate::kafka::{ErrorKind, Producer};
    use crate::registry::RegistryError;
    use crate::report::{Framing, SCHEMA_JSON};

    let mut schema = None;
    let framing = match &args.schema_registry {
        None => Framing::SingleObject,
        Some(registry) => {
            let registry = registry.clone();
            let subject = format!("{}-value", args.topic());
            let cache = args.spool.as_ref().map(|s| SchemaCache {
                path: s.dir.join(SCHEMA_CACHE),
                key: format!("{registry:?} {subject}"),
            });
            // One try now: a registry that answers and refuses stops the
            // start; one that does not answer is retried in the background
            // while probing starts.
            match registry.register(&subject, SCHEMA_JSON, |_| false) {
                Ok(schema_id) => {
                    log::info!("schema registered in {registry:?} under {subject}: id {schema_id}");
                    if let Some(c) = &cache {
                        c.store(schema_id);
                    }
                    Framing::Confluent { schema_id }
                }
                Err(RegistryError::Refused(e)) => return Err(StartError::Runtime(e)),
                Err(RegistryError::Interrupted) => {
                    let cached = cache.as_ref().and_then(SchemaCache::load);
                    match cached {
                        Some(id) => log::warn!(
                            "schema registry {registry:?} unreachable: using schema id {id} from the spool's cache; registering again in the background"
                        ),
                        None => log::warn!(
                            "schema registry {registry:?} unreachable: probing starts, records wait until the schema is registered"
                        ),
                    }
                    let stamp = Arc::new(SchemaStamp {
                        id: AtomicU64::new(cached.map_or(UNKNOWN_ID, u64::from)),
                    });
                    schema = Some((registry, subject, cache, stamp));
                    // Records made while the id is unknown carry 0 (never a
                    // registry id) and get the id when the producer takes them.
                    Framing::Confluent {
                        schema_id: cached.unwrap_or(0),
                    }
                }
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
    let finisher = schema
        .as_ref()
        .map(|(_, _, _, stamp)| stamp.clone() as Arc<dyn crate::kafka::Finisher>);
    let producer =
        Producer::start_with(args.producer.clone(), feed.clone(), finisher).map_err(|e| match e
            .kind
        {
            ErrorKind::Config => StartError::Config(e.message),
            _ => StartError::Runtime(e.message),
        })?;
    let mut sink = KafkaSink::new(encoder, producer, args.topic());
    if let Some((registry, subject, cache, stamp)) = schema {
        sink.registering = Some(
            Registering::start(registry, subject, cache, stamp)
                .map_err(|e| StartError::Runtime(format!("cannot start registry thread: {e}")))?,
        );
    }
    if let (Some(feed), Some(sa)) = (feed, &args.spool) {
        sink.spool = Some(
            Spooling::start(feed, sa.sync_every)
                .map_err(|e| StartError::Runtime(format!("cannot start spool thread: {e}")))?,
        );
    }
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::Finisher;

    fn rec(value: &[u8]) -> Record {
        Record {
            key: vec![],
            value: value.to_vec(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn schema_stamp_holds_records_until_the_id_is_known_and_fills_only_placeholders() {
        let stamp = SchemaStamp {
            id: AtomicU64::new(UNKNOWN_ID),
        };
        assert!(!stamp.ready());
        stamp.id.store(0x0102_0304, Ordering::Release);
        assert!(stamp.ready());
        let mut placeholder = rec(&[0, 0, 0, 0, 0, 9, 9]);
        stamp.finish(&mut placeholder);
        assert_eq!(placeholder.value, [0, 1, 2, 3, 4, 9, 9]);
        // Framed with a real id (an older run's): kept as it is.
        let mut framed = rec(&[0, 0, 0, 0, 7, 9]);
        stamp.finish(&mut framed);
        assert_eq!(framed.value, [0, 0, 0, 0, 7, 9]);
        let mut short = rec(&[0, 0]);
        stamp.finish(&mut short);
        assert_eq!(short.value, [0, 0]);
    }

    #[test]
    fn schema_cache_is_keyed_by_registry_and_subject() {
        let d = tempfile::tempdir().unwrap();
        let c = SchemaCache {
            path: d.path().join("sub/schema-id"),
            key: "http://r:8081 t-value".into(),
        };
        assert_eq!(c.load(), None);
        c.store(42);
        assert_eq!(c.load(), Some(42));
        let other = SchemaCache {
            path: c.path.clone(),
            key: "http://other:8081 t-value".into(),
        };
        assert_eq!(other.load(), None);
        std::fs::write(&c.path, "garbage").unwrap();
        assert_eq!(c.load(), None);
    }
}
