//! The producer: a start-up check done synchronously (so a wrong password or
//! a missing topic stops the program before it probes anything), then one
//! thread that owns every broker connection, batches records per partition,
//! sends them, retries, and flushes at close.
//!
//! The loop: move records from the channel into per-partition queues; seal
//! a queue into a RecordBatch when `linger` has passed or it is full; then
//! one round: write one Produce request to every leader that has sealed
//! batches, and read every reply (brokers work in parallel, each has one
//! request in flight). Replies sort each batch: delivered, resend later
//! (retriable error, lost connection: backoff, metadata refresh, reconnect
//! to any known or bootstrap broker), split (too large), or failed.
//!
//! Ordering and duplicates: each partition has at most one sealed batch at a
//! time (sent, or waiting to be resent), so per-key order holds through
//! retries. A retried batch is resent byte for byte (same producer id,
//! epoch and base sequence), so with the idempotent producer a broker that
//! already wrote it answers with the original offset instead of writing it
//! twice.
//!
//! Memory: callers never block. Records wait in a bounded channel; when it
//! is full the oldest record is dropped and counted. The thread holds at
//! most a quarter of `buffer` itself, so the total stays within `buffer`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsResponse, InitProducerIdResponse, MetadataResponse, ProduceResponse,
};
use log::{debug, error, info, warn};
use rustls::ClientConfig;

use super::config::{Acks, KafkaConfig};
use super::conn::Conn;
use super::partitioner::partition_for;
use super::protocol::{
    self, ClusterMeta, ErrorClass, ProducerIdentity, Record, classify, code, error_name,
};
use super::{ErrorKind, KafkaError};
use crate::spool::{Spool, SpoolError, SpoolStats, Ticket};
use std::sync::Mutex;

/// Outcome counts, returned by [`ProducerHandle::close`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acknowledged by Kafka (or written, with acks=0).
    pub delivered: u64,
    /// Rejected by Kafka, or still pending when the flush time ran out.
    pub failed: u64,
    /// Dropped because the buffer was full (oldest first) or sent after close.
    pub dropped: u64,
    /// Bytes of Produce requests written to brokers (retries included).
    pub produce_bytes: u64,
    /// With a spool: records not delivered by close, kept on disk for the
    /// next run (not counted as failed).
    pub kept: u64,
    /// Records in memory now: in the channel and held by the thread.
    pub waiting: u64,
}

/// Drop warnings are rate-limited to one per this interval.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);
/// Longest the thread sleeps without looking at the close flag.
const MAX_IDLE: Duration = Duration::from_millis(50);
/// Metadata is refreshed at least this often (as the Java client's
/// metadata.max.age.ms), so added partitions and moved leaders are seen.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

struct Shared {
    closing: AtomicBool,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    produce_bytes: AtomicU64,
    kept: AtomicU64,
    /// Records the thread holds (for the stats line).
    held: AtomicU64,
    start: Instant,
    /// Milliseconds since `start` of the last drop warning, +1 (0 = never).
    last_drop_warn: AtomicU64,
    buffer: usize,
}

impl Shared {
    fn note_drop(&self) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last_drop_warn.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= DROP_WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_drop_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                "Kafka buffer full ({} records held): dropping the oldest records, {n} dropped so far",
                self.buffer
            );
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            produce_bytes: self.produce_bytes.load(Ordering::Relaxed),
            kept: self.kept.load(Ordering::Relaxed),
            waiting: self.held.load(Ordering::Relaxed),
        }
    }
}

/// A cheap, cloneable way to hand records to the producer from any thread.
#[derive(Clone)]
pub struct RecordSender {
    tx: Sender<Record>,
    // Held so that a full channel can drop its oldest record.
    rx: Receiver<Record>,
    shared: Arc<Shared>,
}

impl RecordSender {
    /// Queues a record; never blocks. When the buffer is full the oldest
    /// queued record is dropped to make room.
    pub fn send(&self, record: Record) {
        if self.shared.closing.load(Ordering::Acquire) {
            self.shared.note_drop();
            return;
        }
        let mut r = record;
        loop {
            match self.tx.try_send(r) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    r = back;
                    if self.rx.try_recv().is_ok() {
                        self.shared.note_drop();
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    // Cannot happen while we hold `rx`; count it rather than panic.
                    self.shared.note_drop();
                    return;
                }
            }
        }
    }
}

/// The running producer. `send` from any thread; `close` once at the end.
pub struct ProducerHandle {
    sender: RecordSender,
    thread: Option<JoinHandle<()>>,
}

impl ProducerHandle {
    pub fn send(&self, record: Record) {
        self.sender.send(record)
    }

    /// A clone-able sender for worker threads.
    pub fn sender(&self) -> RecordSender {
        self.sender.clone()
    }

    /// Counts so far (delivered, failed, dropped).
    pub fn stats(&self) -> Stats {
        let mut s = self.sender.shared.stats();
        s.waiting += self.sender.rx.len() as u64;
        s
    }

    /// Stops accepting records, delivers what is pending within
    /// `flush_timeout`, and returns the final counts.
    pub fn close(mut self) -> Stats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Stats {
        let shared = &self.sender.shared;
        shared.closing.store(true, Ordering::Release);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!("Kafka producer thread panicked; pending records are lost");
        }
        // Anything that slipped in after the thread's last look.
        while self.sender.rx.try_recv().is_ok() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        shared.stats()
    }
}

impl Drop for ProducerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// A spool shared by the sink (appends) and the producer thread (reads,
/// marks done); see `crate::spool`. Records are stored as
/// `timestamp i64 | key length u32 | key | value` (little-endian).
pub struct SpoolFeed {
    spool: Mutex<Spool>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// When the last "spool full" warning was logged (rate limit).
    drop_warned: Mutex<Option<Instant>>,
}

impl SpoolFeed {
    pub fn new(spool: Spool) -> Arc<SpoolFeed> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Arc::new(SpoolFeed {
            spool: Mutex::new(spool),
            wake_tx,
            wake_rx,
            drop_warned: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        // A panic elsewhere while holding it leaves the spool consistent
        // enough: every operation updates its state after the file I/O.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record and wakes the producer.
    pub fn append(&self, r: &Record) -> Result<(), SpoolError> {
        let mut b = Vec::with_capacity(12 + r.key.len() + r.value.len());
        b.extend_from_slice(&r.timestamp_ms.to_le_bytes());
        b.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        b.extend_from_slice(&r.key);
        b.extend_from_slice(&r.value);
        let (before, after, bytes) = {
            let mut s = self.lock();
            let before = s.stats().dropped;
            s.append(&b)?;
            (before, s.stats().dropped, s.stats().bytes)
        };
        if after > before {
            let mut last = self.drop_warned.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= DROP_WARN_EVERY) {
                *last = Some(Instant::now());
                warn!(
                    "spool full ({bytes} bytes): dropping the oldest records, {after} dropped so far"
                );
            }
        }
        let _ = self.wake_tx.try_send(());
        Ok(())
    }

    fn read(&self, max: usize) -> Vec<(Ticket, Record)> {
        let mut spool = self.lock();
        let mut out = Vec::new();
        for (t, b) in spool.read(max) {
            match decode_spooled(&b) {
                Some(r) => out.push((t, r)),
                None => {
                    // Passed the checksum but is not ours: skip it.
                    log::warn!("spool: a record of {} bytes is malformed; skipped", b.len());
                    spool.done(t);
                }
            }
        }
        out
    }

    fn done(&self, tickets: &[Option<Ticket>]) {
        if tickets.iter().all(|t| t.is_none()) {
            return;
        }
        let mut spool = self.lock();
        for t in tickets.iter().flatten() {
            spool.done(*t);
        }
    }

    fn unread(&self) -> u64 {
        let s = self.lock();
        s.stats().pending.saturating_sub(s.in_flight() as u64)
    }

    pub fn stats(&self) -> SpoolStats {
        self.lock().stats()
    }

    /// Group commit when due (see `Spool::sync_due`).
    pub fn sync_if_due(&self, now: Instant) -> Result<(), SpoolError> {
        let job = {
            let mut s = self.lock();
            if !s.sync_due(now) {
                return Ok(());
            }
            s.begin_sync(now)?
        };
        // The fsyncs run unlocked: appends (probe workers) never wait for them.
        job.run()
    }

    /// A final commit at shutdown, whatever the interval.
    pub fn sync_now(&self, now: Instant) -> Result<(), SpoolError> {
        self.lock().sync(now)
    }
}

fn decode_spooled(b: &[u8]) -> Option<Record> {
    let ts = i64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
    let klen = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    let key = b.get(12..12usize.checked_add(klen)?)?.to_vec();
    let value = b.get(12 + klen..)?.to_vec();
    Some(Record {
        key,
        value,
        timestamp_ms: ts,
    })
}

/// Entry point: `Producer::start(cfg)`.
pub struct Producer;

impl Producer {
    /// Validates `cfg`, connects to a bootstrap broker (TLS, SASL,
    /// ApiVersions), checks the topic, then starts the producer thread.
    pub fn start(cfg: KafkaConfig) -> Result<ProducerHandle, KafkaError> {
        Self::start_with(cfg, None, None)
    }

    /// As `start`; with a spool, records are also taken from it (oldest
    /// first, those left by a previous run included) and leave it when
    /// Kafka has answered for them.
    ///
    /// When no broker answers at all (refused, timed out), the producer
    /// starts anyway and keeps trying; records wait in the buffer (and the
    /// spool). A broker that answers and refuses is still an error here.
    /// `finisher`, if given, holds records back until it is ready and
    /// finishes each one as the producer takes it.
    pub fn start_with(
        cfg: KafkaConfig,
        spool: Option<Arc<SpoolFeed>>,
        finisher: Option<Arc<dyn Finisher>>,
    ) -> Result<ProducerHandle, KafkaError> {
        cfg.validate()
            .map_err(|m| KafkaError::new(ErrorKind::Config, format!("Kafka config: {m}")))?;
        let tls = super::conn::tls_config(&cfg)?;
        let mut w = Worker::new(cfg, tls)?;
        match w.startup_check() {
            Ok(()) => {}
            // Nobody answered, or only "try again later": not a refusal.
            Err(e) if matches!(e.kind, ErrorKind::Network | ErrorKind::Busy) => {
                let wait = if spool.is_some() {
                    "in memory and in the spool"
                } else {
                    "in memory"
                };
                warn!(
                    "Kafka: {e}; probing starts anyway, records wait {wait} until a broker answers"
                );
                w.unchecked = true;
                w.outage_since = Some(Instant::now());
                w.check_failures = 1;
                w.next_check_at = Instant::now() + backoff(&w.cfg, 1);
            }
            Err(e) => return Err(e),
        }
        w.finisher = finisher;

        let thread_limit = (w.cfg.buffer / 4).max(1);
        let mut capacity = w.cfg.buffer.saturating_sub(thread_limit).max(1);
        if spool.is_some() {
            // Records wait in the spool; the channel only carries the few
            // that could not be appended. (crossbeam's bounded channel
            // touches every slot up front: 75,000 slots are ~6 MB of RSS.)
            capacity = capacity.min(1024);
        }
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            produce_bytes: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            held: AtomicU64::new(0),
            start: Instant::now(),
            last_drop_warn: AtomicU64::new(0),
            buffer: w.cfg.buffer,
        });
        w.rx = Some(rx.clone());
        w.shared = Some(shared.clone());
        w.thread_limit = thread_limit;
        w.spool = spool;
        let thread = std::thread::Builder::new()
            .name("kafka-producer".into())
            .spawn(move || w.run())
            .map_err(|e| {
                KafkaError::new(
                    ErrorKind::Config,
                    format!("cannot start producer thread: {e}"),
                )
            })?;
        Ok(ProducerHandle {
            sender: RecordSender { tx, rx, shared },
            thread: Some(thread),
        })
    }
}

/// A sealed batch for one partition: sent, or waiting to be resent as is.
struct Batch {
    records: Vec<Record>,
    /// The spool's tickets for `records` (None: not spooled).
    tickets: Vec<Option<Ticket>>,
    bytes: usize,
    base_sequence: i32,
    pid: ProducerIdentity,
    encoded: bytes::Bytes,
    attempts: u32,
    retry_at: Instant,
}

#[derive(Default)]
struct PartState {
    queue: VecDeque<Record>,
    /// Parallel to `queue`.
    tickets: VecDeque<Option<Ticket>>,
    queue_bytes: usize,
    first_at: Option<Instant>,
    batch: Option<Batch>,
    next_sequence: i32,
    /// Lowered when the broker says a batch is too large (its topic's
    /// max.message.bytes may be below batch_max_bytes); 0 = no limit.
    max_bytes: usize,
}

struct Worker {
    cfg: KafkaConfig,
    tls: Option<Arc<ClientConfig>>,
    rx: Option<Receiver<Record>>,
    shared: Option<Arc<Shared>>,
    thread_limit: usize,
    conns: HashMap<String, Conn>,
    meta: ClusterMeta,
    meta_stale: bool,
    meta_at: Instant,
    meta_failures: u32,
    next_meta_at: Instant,
    parts: Vec<PartState>,
    held_records: usize,
    held_bytes: usize,
    idempotent: bool,
    pid: ProducerIdentity,
    pid_failures: u32,
    next_pid_at: Instant,
    /// Set while no broker answers; for one warning and one recovery line.
    outage_since: Option<Instant>,
    spool: Option<Arc<SpoolFeed>>,
    finisher: Option<Arc<dyn Finisher>>,
    /// No broker answered at start: the start-up check is still to do, and
    /// no record is taken (partitions unknown) until it passes.
    unchecked: bool,
    check_failures: u32,
    next_check_at: Instant,
}

/// Finishes records as the producer takes them; see `Producer::start_with`.
pub trait Finisher: Send + Sync {
    /// False while records must wait.
    fn ready(&self) -> bool;
    fn finish(&self, record: &mut Record);
}

fn backoff(cfg: &KafkaConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    let d = cfg.retry_backoff.saturating_mul(1u32 << exp);
    d.min(cfg.retry_backoff_max)
}

impl Worker {
    fn new(cfg: KafkaConfig, tls: Option<Arc<ClientConfig>>) -> Result<Self, KafkaError> {
        let now = Instant::now();
        Ok(Worker {
            cfg,
            tls,
            rx: None,
            shared: None,
            thread_limit: 1,
            conns: HashMap::new(),
            meta: ClusterMeta {
                brokers: Vec::new(),
                topic_error: 0,
                partitions: Vec::new(),
            },
            meta_stale: true,
            meta_at: now,
            meta_failures: 0,
            next_meta_at: now,
            parts: Vec::new(),
            held_records: 0,
            held_bytes: 0,
            idempotent: false,
            pid: ProducerIdentity::NONE,
            pid_failures: 0,
            next_pid_at: now,
            outage_since: None,
            spool: None,
            finisher: None,
            unchecked: false,
            check_failures: 0,
            next_check_at: now,
        })
    }

    fn io_timeout(&self) -> Duration {
        // The broker answers a Produce within timeout_ms; leave it a margin.
        self.cfg.request_timeout + Duration::from_secs(2)
    }

    /// Opens (or reuses) a connection to `addr`.
    fn conn(&mut self, addr: &str, timeout: Duration) -> Result<&mut Conn, KafkaError> {
        if !self.conns.contains_key(addr) {
            let c = Conn::open(addr, &self.cfg, self.tls.as_ref(), timeout)?;
            debug!("Kafka: connected to {addr}");
            self.conns.insert(addr.to_string(), c);
        }
        let c = self.conns.get_mut(addr).ok_or_else(|| {
            KafkaError::new(ErrorKind::Network, format!("connection to {addr} vanished"))
        })?;
        c.set_timeout(timeout);
        Ok(c)
    }

    /// Brokers to ask for metadata: open connections, known brokers, bootstrap.
    fn candidates(&self) -> Vec<String> {
        let mut v: Vec<String> = self.conns.keys().cloned().collect();
        for b in &self.meta.brokers {
            if !v.contains(&b.addr) {
                v.push(b.addr.clone());
            }
        }
        for b in &self.cfg.bootstrap {
            if !v.contains(b) {
                v.push(b.clone());
            }
        }
        v
    }

    fn fetch_metadata(
        &mut self,
        allow_auto_create: bool,
        timeout: Duration,
    ) -> Result<ClusterMeta, KafkaError> {
        let mut errors: Vec<KafkaError> = Vec::new();
        for addr in self.candidates() {
            let topic = self.cfg.topic.clone();
            let result = self.conn(&addr, timeout).and_then(|c| {
                let v = c.versions.metadata;
                let resp: MetadataResponse = c.call(
                    ApiKey::Metadata,
                    v,
                    &protocol::metadata_request(&topic, allow_auto_create, v),
                    "Metadata",
                )?;
                protocol::parse_metadata(&resp, &topic).map_err(|e| {
                    KafkaError::new(ErrorKind::Protocol, format!("broker {addr}: {e}"))
                })
            });
            match result {
                Ok(m) => return Ok(m),
                Err(e) => {
                    self.conns.remove(&addr);
                    // Credentials and certificates fail the same way on every
                    // broker: no point hiding them behind a network error.
                    if !e.is_transient() {
                        return Err(e);
                    }
                    errors.push(e);
                }
            }
        }
        let msg = errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        // Something that answers with bytes that are not Kafka (a wrong
        // port) is no outage: say so as a protocol error.
        let kind = if errors.iter().any(|e| e.kind == ErrorKind::Protocol) {
            ErrorKind::Protocol
        } else {
            ErrorKind::Network
        };
        Err(KafkaError::new(
            kind,
            format!("no Kafka broker reachable: {msg}"),
        ))
    }

    /// The synchronous start-up check.
    fn startup_check(&mut self) -> Result<(), KafkaError> {
        let timeout = self.cfg.request_timeout;
        let mut meta = self.fetch_metadata(false, timeout)?;
        if meta.topic_error == code::UNKNOWN_TOPIC_OR_PARTITION {
            if !self.cfg.create_topic {
                return Err(KafkaError::new(
                    ErrorKind::Topic,
                    format!(
                        "Kafka topic {} does not exist (brokers: {}); create it, or allow creating it",
                        self.cfg.topic,
                        self.cfg.bootstrap.join(",")
                    ),
                ));
            }
            meta = self.create_topic()?;
        }
        match meta.topic_error {
            0 | code::LEADER_NOT_AVAILABLE => {}
            c => {
                let kind = if classify(c) == ErrorClass::Retriable {
                    ErrorKind::Busy
                } else {
                    ErrorKind::Topic
                };
                return Err(KafkaError::new(
                    kind,
                    format!("Kafka topic {}: {}", self.cfg.topic, error_name(c)),
                ));
            }
        }
        if meta.partitions.is_empty() {
            return Err(KafkaError::new(
                ErrorKind::Topic,
                format!("Kafka topic {} has no partitions yet", self.cfg.topic),
            ));
        }
        info!(
            "Kafka: topic {} has {} partitions on {} brokers",
            self.cfg.topic,
            meta.partitions.len(),
            meta.brokers.len()
        );
        self.apply_metadata(meta);

        if self.cfg.wants_idempotence() {
            self.idempotent = self
                .conns
                .values()
                .any(|c| c.versions.init_producer_id.is_some());
            if self.idempotent {
                if let Err(e) = self.init_producer_id() {
                    if !e.is_transient() {
                        warn!(
                            "Kafka: idempotent producer not available ({e}); continuing without it"
                        );
                        self.idempotent = false;
                    } else {
                        warn!("Kafka: could not get a producer id yet ({e}); will retry");
                    }
                }
            } else {
                info!("Kafka: broker does not support idempotent producers; retries may duplicate");
            }
        }
        Ok(())
    }

    fn create_topic(&mut self) -> Result<ClusterMeta, KafkaError> {
        let timeout = self.cfg.request_timeout;
        let topic = self.cfg.topic.clone();
        let parts = self.cfg.create_topic_partitions;
        let tmo = timeout.as_millis().min(i32::MAX as u128) as i32;
        let addr = self.candidates().into_iter().next().unwrap_or_default();
        let conn = self.conn(&addr, timeout)?;
        match conn.versions.create_topics {
            Some(v) => {
                let resp: CreateTopicsResponse = conn.call(
                    ApiKey::CreateTopics,
                    v,
                    &protocol::create_topics_request(&topic, parts, tmo),
                    "CreateTopics",
                )?;
                if let Err((c, m)) = protocol::check_create_topics(&resp, &topic) {
                    // NOT_CONTROLLER (old ZooKeeper clusters): fall back to
                    // auto-creation through Metadata below.
                    if c != code::NOT_CONTROLLER {
                        return Err(KafkaError::new(ErrorKind::Topic, m));
                    }
                }
                info!("Kafka: created topic {topic}");
            }
            None => debug!("Kafka: no CreateTopics; relying on auto-creation"),
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.fetch_metadata(true, timeout)?;
            if m.topic_error == 0
                && !m.partitions.is_empty()
                && m.partitions.iter().all(|p| p.leader >= 0)
            {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::new(
                    ErrorKind::Topic,
                    format!(
                        "Kafka topic {topic} was not ready within {:?}: {}",
                        timeout,
                        error_name(m.topic_error)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn apply_metadata(&mut self, meta: ClusterMeta) {
        let n = meta.partitions.len();
        if n > self.parts.len() {
            self.parts.resize_with(n, PartState::default);
        }
        let healthy = meta.topic_error == 0 && meta.partitions.iter().all(|p| p.leader >= 0);
        self.meta = meta;
        self.meta_at = Instant::now();
        self.meta_stale = !healthy;
        if healthy {
            self.meta_failures = 0;
        } else {
            self.meta_failures += 1;
            self.next_meta_at = Instant::now() + backoff(&self.cfg, self.meta_failures);
        }
    }

    fn leader_addr(&self, partition: i32) -> Option<String> {
        let p = self.meta.partitions.get(partition as usize)?;
        if p.leader < 0 {
            return None;
        }
        self.meta
            .brokers
            .iter()
            .find(|b| b.id == p.leader)
            .map(|b| b.addr.clone())
    }

    fn init_producer_id(&mut self) -> Result<(), KafkaError> {
        let timeout = self.io_timeout();
        let tmo = self.cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut last = None;
        for addr in self.candidates() {
            let r = self.conn(&addr, timeout).and_then(|c| {
                let v = c.versions.init_producer_id.ok_or_else(|| {
                    KafkaError::new(
                        ErrorKind::Unsupported,
                        format!("broker {addr} lacks InitProducerId"),
                    )
                })?;
                let resp: InitProducerIdResponse = c.call(
                    ApiKey::InitProducerId,
                    v,
                    &protocol::init_producer_id_request(tmo),
                    "InitProducerId",
                )?;
                protocol::parse_init_producer_id(&resp).map_err(|c| {
                    let kind = if classify(c) == ErrorClass::Retriable {
                        ErrorKind::Busy
                    } else {
                        ErrorKind::Broker
                    };
                    KafkaError::new(kind, format!("InitProducerId on {addr}: {}", error_name(c)))
                })
            });
            match r {
                Ok((id, epoch)) => {
                    self.pid = ProducerIdentity { id, epoch };
                    self.pid_failures = 0;
                    info!("Kafka: idempotent producer id {id} epoch {epoch}");
                    self.renumber_batches();
                    return Ok(());
                }
                // The broker answered (busy): keep the connection.
                Err(e) if e.kind == ErrorKind::Busy => last = Some(e),
                Err(e) if e.is_transient() => {
                    self.conns.remove(&addr);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        self.pid_failures += 1;
        self.next_pid_at = Instant::now() + backoff(&self.cfg, self.pid_failures);
        Err(last.unwrap_or_else(|| {
            KafkaError::new(ErrorKind::Network, "no broker for InitProducerId".into())
        }))
    }

    /// After a new producer id: sequences restart at 0 in every partition,
    /// and a batch still waiting is re-stamped (it was not accepted under
    /// the old id, or we would not be here).
    fn renumber_batches(&mut self) {
        let pid = self.pid;
        let compression = self.cfg.compression;
        let base = if pid.is_some() { 0 } else { -1 };
        for p in &mut self.parts {
            p.next_sequence = 0;
            if let Some(b) = &mut p.batch {
                match protocol::encode_batch(&b.records, compression, pid, base) {
                    Ok(enc) => {
                        b.encoded = enc;
                        b.pid = pid;
                        b.base_sequence = base;
                        if pid.is_some() {
                            p.next_sequence = b.records.len() as i32;
                        }
                    }
                    Err(e) => error!("Kafka: re-encoding a batch failed: {e}"),
                }
            }
        }
    }

    // ------------------------------------------------------------ the thread

    fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    fn count(&self, delivered: u64, failed: u64) {
        if let Some(s) = self.shared() {
            s.delivered.fetch_add(delivered, Ordering::Relaxed);
            s.failed.fetch_add(failed, Ordering::Relaxed);
        }
    }

    fn place(&mut self, r: Record) {
        self.place_ticketed(r, None)
    }

    fn place_ticketed(&mut self, mut r: Record, ticket: Option<Ticket>) {
        if let Some(f) = &self.finisher {
            f.finish(&mut r);
        }
        let n = self.parts.len().max(1) as i32;
        let p = partition_for(&r.key, n) as usize;
        if p >= self.parts.len() {
            self.parts.resize_with(p + 1, PartState::default);
        }
        let size = protocol::record_size_estimate(&r);
        let ps = &mut self.parts[p];
        if ps.first_at.is_none() {
            ps.first_at = Some(Instant::now());
        }
        ps.queue_bytes += size;
        ps.queue.push_back(r);
        ps.tickets.push_back(ticket);
        self.held_records += 1;
        self.held_bytes += size;
    }

    fn room(&self) -> bool {
        let byte_cap = self
            .cfg
            .batch_max_bytes
            .saturating_mul(self.parts.len().max(1))
            .saturating_mul(2);
        self.held_records < self.thread_limit && self.held_bytes < byte_cap
    }

    /// Moves records from the channel into partition queues; waits up to
    /// `wait` for the first one.
    fn pull(&mut self, wait: Duration) {
        let Some(rx) = self.rx.clone() else { return };
        if self.unchecked || self.finisher.as_ref().is_some_and(|f| !f.ready()) {
            // Records wait where they are (channel, spool).
            std::thread::sleep(wait.min(MAX_IDLE));
            return;
        }
        if let Some(feed) = self.spool.clone() {
            // Appends wake us; the channel only carries records the spool
            // could not take.
            if self.room() && rx.is_empty() && feed.unread() == 0 {
                let _ = feed.wake_rx.recv_timeout(wait);
            }
            while self.room() {
                let got = feed.read(256);
                if got.is_empty() {
                    break;
                }
                for (t, r) in got {
                    self.place_ticketed(r, Some(t));
                }
            }
            while self.room() {
                match rx.try_recv() {
                    Ok(r) => self.place(r),
                    Err(_) => break,
                }
            }
            if !self.room() {
                std::thread::sleep(wait.min(MAX_IDLE));
            }
            return;
        }
        if self.room() {
            match rx.recv_timeout(wait) {
                Ok(r) => self.place(r),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            std::thread::sleep(wait);
        }
        while self.room() {
            match rx.try_recv() {
                Ok(r) => self.place(r),
                Err(_) => break,
            }
        }
    }

    /// Seals queued records into batches where linger or size says so.
    fn seal(&mut self, now: Instant, flushing: bool) {
        if self.idempotent && !self.pid.is_some() {
            return; // wait for a producer id so sequences are meaningful
        }
        let max = self.cfg.batch_max_bytes;
        let linger = self.cfg.linger;
        let compression = self.cfg.compression;
        let pid = if self.idempotent {
            self.pid
        } else {
            ProducerIdentity::NONE
        };
        for ps in &mut self.parts {
            if ps.batch.is_some() || ps.queue.is_empty() {
                continue;
            }
            let max = if ps.max_bytes > 0 {
                ps.max_bytes.min(max)
            } else {
                max
            };
            let due = flushing
                || ps.queue_bytes >= max
                || ps.first_at.is_some_and(|t| now.duration_since(t) >= linger);
            if !due {
                continue;
            }
            let mut records = Vec::new();
            let mut tickets = Vec::new();
            let mut bytes = 0;
            while let Some(r) = ps.queue.front() {
                let s = protocol::record_size_estimate(r);
                if !records.is_empty() && bytes + s > max {
                    break;
                }
                bytes += s;
                if let Some(r) = ps.queue.pop_front() {
                    records.push(r);
                    tickets.push(ps.tickets.pop_front().flatten());
                }
            }
            ps.queue_bytes = ps.queue_bytes.saturating_sub(bytes);
            ps.first_at = if ps.queue.is_empty() { None } else { Some(now) };
            let base_sequence = if pid.is_some() { ps.next_sequence } else { -1 };
            match protocol::encode_batch(&records, compression, pid, base_sequence) {
                Ok(encoded) => {
                    if pid.is_some() {
                        ps.next_sequence = ps.next_sequence.wrapping_add(records.len() as i32);
                    }
                    ps.batch = Some(Batch {
                        records,
                        tickets,
                        bytes,
                        base_sequence,
                        pid,
                        encoded,
                        attempts: 0,
                        retry_at: now,
                    });
                }
                Err(e) => {
                    error!(
                        "Kafka: cannot encode a batch of {} records: {e}",
                        records.len()
                    );
                    self.held_records = self.held_records.saturating_sub(records.len());
                    self.held_bytes = self.held_bytes.saturating_sub(bytes);
                    if let Some(s) = &self.shared {
                        s.failed.fetch_add(records.len() as u64, Ordering::Relaxed);
                    }
                    if let Some(feed) = &self.spool {
                        feed.done(&tickets);
                    }
                }
            }
        }
    }

    /// Finishes a batch (delivered or failed) and frees its room.
    fn finish(&mut self, partition: usize, delivered: bool) {
        if let Some(b) = self.parts.get_mut(partition).and_then(|p| p.batch.take()) {
            let n = b.records.len();
            // Refused or delivered, it leaves the spool: resending a record
            // the broker refused for good would fail again at every start.
            if let Some(feed) = &self.spool {
                feed.done(&b.tickets);
            }
            self.held_records = self.held_records.saturating_sub(n);
            self.held_bytes = self.held_bytes.saturating_sub(b.bytes);
            if delivered {
                self.count(n as u64, 0);
            } else {
                self.count(0, n as u64);
            }
        }
    }

    /// Puts a rejected batch's records back at the head of the queue and
    /// halves the partition's batch size. The broker wrote none of them, so
    /// the sequence restarts at the batch's base.
    fn split_batch(&mut self, partition: usize) {
        let Some(ps) = self.parts.get_mut(partition) else {
            return;
        };
        let Some(b) = ps.batch.take() else { return };
        ps.max_bytes = (b.bytes / 2).max(1);
        if b.base_sequence >= 0 && b.pid == self.pid {
            ps.next_sequence = b.base_sequence;
        }
        ps.queue_bytes += b.bytes;
        for (r, t) in b.records.into_iter().zip(b.tickets).rev() {
            ps.queue.push_front(r);
            ps.tickets.push_front(t);
        }
        ps.first_at = Some(Instant::now());
    }

    /// A batch must be resent later, unchanged.
    fn retry_later(&mut self, partition: usize) {
        let now = Instant::now();
        let cfg = &self.cfg;
        if let Some(b) = self.parts.get_mut(partition).and_then(|p| p.batch.as_mut()) {
            b.attempts += 1;
            b.retry_at = now + backoff(cfg, b.attempts);
        }
        self.meta_stale = true;
    }

    /// The start-up check, retried until a broker answers. A refusal now
    /// cannot stop the program (it is probing): said loudly, retried.
    fn deferred_check(&mut self) {
        match self.startup_check() {
            Ok(()) => {
                self.unchecked = false;
                self.note_recovered();
            }
            Err(e) => {
                if matches!(e.kind, ErrorKind::Network | ErrorKind::Busy) {
                    debug!("Kafka still unavailable: {e}");
                } else {
                    error!("Kafka: {e}; records wait, retrying");
                }
                self.conns.clear();
                self.check_failures += 1;
                self.next_check_at = Instant::now() + backoff(&self.cfg, self.check_failures);
            }
        }
    }

    fn note_outage(&mut self, e: &KafkaError) {
        if self.outage_since.is_none() {
            warn!("Kafka unavailable, records wait in the buffer: {e}");
            self.outage_since = Some(Instant::now());
        } else {
            debug!("Kafka still unavailable: {e}");
        }
    }

    fn note_recovered(&mut self) {
        if let Some(t) = self.outage_since.take() {
            info!(
                "Kafka reachable again after {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
    }

    fn refresh_metadata(&mut self, timeout: Duration) {
        match self.fetch_metadata(false, timeout) {
            Ok(m) => {
                if m.topic_error != 0 {
                    warn!(
                        "Kafka topic {}: {}",
                        self.cfg.topic,
                        error_name(m.topic_error)
                    );
                }
                self.apply_metadata(m);
                if !self.meta_stale {
                    self.note_recovered();
                }
            }
            Err(e) => {
                self.note_outage(&e);
                self.meta_failures += 1;
                self.next_meta_at = Instant::now() + backoff(&self.cfg, self.meta_failures);
            }
        }
    }

    /// One round: a Produce request to every leader with ready batches,
    /// written to all first, then every reply read.
    fn send_round(&mut self, now: Instant, timeout: Duration) {
        let mut by_leader: HashMap<String, Vec<usize>> = HashMap::new();
        let mut no_leader = Vec::new();
        for (i, ps) in self.parts.iter().enumerate() {
            if let Some(b) = &ps.batch
                && b.retry_at <= now
            {
                match self.leader_addr(i as i32) {
                    Some(a) => by_leader.entry(a).or_default().push(i),
                    None => no_leader.push(i),
                }
            }
        }
        // Back off like any retry, or the loop would spin until metadata
        // names a leader.
        for i in no_leader {
            self.retry_later(i);
        }
        if by_leader.is_empty() {
            return;
        }
        let acks = self.cfg.acks.wire();
        let tmo = self.cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32;
        let topic = self.cfg.topic.clone();
        let mut waiting: Vec<(String, Vec<usize>)> = Vec::new();
        for (addr, parts) in by_leader {
            let batches: Vec<(i32, bytes::Bytes)> = parts
                .iter()
                .filter_map(|&i| {
                    self.parts[i]
                        .batch
                        .as_ref()
                        .map(|b| (i as i32, b.encoded.clone()))
                })
                .collect();
            let req = protocol::produce_request(&topic, acks, tmo, batches);
            let sent = self.conn(&addr, timeout).and_then(|c| {
                let v = c.versions.produce;
                let before = c.bytes_written();
                c.write_request(ApiKey::Produce, v, &req, "Produce")?;
                Ok(c.bytes_written() - before)
            });
            if let (Ok(n), Some(s)) = (&sent, &self.shared) {
                s.produce_bytes.fetch_add(*n, Ordering::Relaxed);
            }
            match sent {
                Ok(_) if self.cfg.acks == Acks::None => {
                    if let Some(c) = self.conns.get_mut(&addr) {
                        c.forget_last();
                    }
                    for i in parts {
                        self.finish(i, true);
                    }
                }
                Ok(_) => waiting.push((addr, parts)),
                Err(e) => {
                    self.conns.remove(&addr);
                    self.fail_request(&parts, &e);
                }
            }
        }
        for (addr, parts) in waiting {
            let reply = match self.conns.get_mut(&addr) {
                Some(c) => c.read_response::<ProduceResponse>("Produce"),
                None => Err(KafkaError::new(
                    ErrorKind::Network,
                    format!("connection to {addr} lost"),
                )),
            };
            match reply {
                Ok(resp) => {
                    self.note_recovered();
                    self.handle_produce(&addr, &parts, &resp);
                }
                Err(e) => {
                    self.conns.remove(&addr);
                    self.fail_request(&parts, &e);
                }
            }
        }
    }

    /// The whole request failed (connection): every batch in it is resent.
    fn fail_request(&mut self, parts: &[usize], e: &KafkaError) {
        if e.is_transient() {
            self.note_outage(e);
            for &i in parts {
                self.retry_later(i);
            }
        } else {
            // TLS or SASL failing on reconnect: keep retrying (an operator
            // may be rotating credentials) but say so loudly.
            error!("Kafka: {e}");
            for &i in parts {
                self.retry_later(i);
            }
        }
    }

    fn handle_produce(&mut self, addr: &str, parts: &[usize], resp: &ProduceResponse) {
        let results = protocol::parse_produce(resp, &self.cfg.topic);
        let mut reset_producer = false;
        for &i in parts {
            let Some(r) = results.iter().find(|r| r.partition == i as i32) else {
                warn!("Kafka: broker {addr} did not answer for partition {i}; resending");
                self.retry_later(i);
                continue;
            };
            if r.error_code == 0 {
                self.finish(i, true);
                continue;
            }
            let attempts = self.parts[i]
                .batch
                .as_ref()
                .map(|b| b.attempts)
                .unwrap_or(0);
            let size = self.parts[i]
                .batch
                .as_ref()
                .map(|b| b.records.len())
                .unwrap_or(0);
            // MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE for a batch of
            // several records: split it, as the Java client does.
            if matches!(
                r.error_code,
                code::MESSAGE_TOO_LARGE | code::RECORD_LIST_TOO_LARGE
            ) && size > 1
            {
                info!(
                    "Kafka: partition {i}: batch of {size} records too large for the broker; splitting"
                );
                self.split_batch(i);
                continue;
            }
            match classify(r.error_code) {
                ErrorClass::Duplicate => self.finish(i, true),
                ErrorClass::Retriable => {
                    let lvl = if attempts == 0 {
                        log::Level::Info
                    } else {
                        log::Level::Warn
                    };
                    log::log!(
                        lvl,
                        "Kafka: partition {i} on {addr}: {}; retrying",
                        error_name(r.error_code)
                    );
                    self.retry_later(i);
                }
                ErrorClass::ResetProducer if self.idempotent => {
                    warn!(
                        "Kafka: partition {i}: {}; getting a new producer id",
                        error_name(r.error_code)
                    );
                    reset_producer = true;
                    self.retry_later(i);
                }
                ErrorClass::ResetProducer | ErrorClass::Fatal => {
                    let n = self.parts[i]
                        .batch
                        .as_ref()
                        .map(|b| b.records.len())
                        .unwrap_or(0);
                    error!(
                        "Kafka: {n} records for partition {i} rejected by {addr}: {}{}",
                        error_name(r.error_code),
                        r.error_message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    // The broker did not write it, so it still expects this
                    // batch's base sequence: reuse it for the next batch
                    // rather than leave a hole (OUT_OF_ORDER_SEQUENCE_NUMBER).
                    // Safe because nothing later in this partition is sealed.
                    if let Some(b) = &self.parts[i].batch
                        && b.base_sequence >= 0
                        && b.pid == self.pid
                    {
                        self.parts[i].next_sequence = b.base_sequence;
                    }
                    self.finish(i, false);
                }
            }
        }
        if reset_producer {
            self.pid = ProducerIdentity::NONE;
            self.next_pid_at = Instant::now();
        }
    }

    fn next_wake(&self, now: Instant, flushing: bool) -> Duration {
        let mut next = now + MAX_IDLE;
        if self.unchecked {
            return self.next_check_at.min(next).saturating_duration_since(now);
        }
        // Without a producer id nothing can be sealed: wake for the next try.
        let can_seal = !self.idempotent || self.pid.is_some();
        if !can_seal {
            next = next.min(self.next_pid_at);
        }
        for ps in &self.parts {
            match &ps.batch {
                Some(b) => next = next.min(b.retry_at),
                None if !can_seal => {}
                None => {
                    if let Some(t) = ps.first_at {
                        next = next.min(if flushing { now } else { t + self.cfg.linger });
                    }
                }
            }
        }
        if self.meta_stale {
            next = next.min(self.next_meta_at);
        }
        next.saturating_duration_since(now)
    }

    fn run(mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let closing = shared.closing.load(Ordering::Acquire);
            if closing && deadline.is_none() {
                deadline = Some(now + self.cfg.flush_timeout);
            }
            if let Some(d) = deadline
                && now >= d
            {
                break;
            }
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(now).min(self.io_timeout()),
                None => self.io_timeout(),
            };

            let wait = self.next_wake(now, closing);
            self.pull(wait);
            shared
                .held
                .store(self.held_records as u64, Ordering::Relaxed);
            let now = Instant::now();
            if closing
                && self.held_records == 0
                && self.rx.as_ref().is_none_or(|r| r.is_empty())
                && self.spool.as_ref().is_none_or(|f| f.unread() == 0)
            {
                break;
            }
            if self.unchecked {
                if now >= self.next_check_at {
                    self.deferred_check();
                }
                continue;
            }
            if !self.meta_stale && now.duration_since(self.meta_at) >= METADATA_MAX_AGE {
                self.meta_stale = true;
            }
            if self.meta_stale && now >= self.next_meta_at {
                self.refresh_metadata(timeout);
            }
            if self.idempotent
                && !self.pid.is_some()
                && now >= self.next_pid_at
                && let Err(e) = self.init_producer_id()
            {
                if e.is_transient() {
                    self.note_outage(&e);
                } else {
                    warn!("Kafka: idempotent producer not available ({e}); continuing without it");
                    self.idempotent = false;
                    self.pid = ProducerIdentity::NONE;
                    self.renumber_batches();
                }
            }
            let flushing = closing;
            self.seal(now, flushing);
            self.send_round(now, timeout);
        }
        // Whatever is still here was not delivered in time.
        let mut left = self.held_records as u64;
        if let Some(rx) = &self.rx {
            while rx.try_recv().is_ok() {
                left += 1;
            }
        }
        if let Some(feed) = &self.spool {
            // Spooled records stay on disk for the next run.
            let spooled: u64 = self
                .parts
                .iter()
                .flat_map(|p| {
                    p.tickets
                        .iter()
                        .chain(p.batch.iter().flat_map(|b| b.tickets.iter()))
                })
                .filter(|t| t.is_some())
                .count() as u64;
            let kept = feed.stats().pending;
            left = left.saturating_sub(spooled);
            if kept > 0 {
                info!("Kafka: {kept} records kept in the spool for the next run");
            }
            if let Some(s) = &self.shared {
                s.kept.store(kept, Ordering::Relaxed);
            }
        }
        if left > 0 {
            warn!("Kafka: flush time ran out with {left} records undelivered");
        }
        self.count(0, left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = KafkaConfig::default();
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(100));
        assert_eq!(backoff(&cfg, 2), Duration::from_millis(200));
        assert_eq!(backoff(&cfg, 4), Duration::from_millis(800));
        assert_eq!(backoff(&cfg, 10), Duration::from_secs(5));
        assert_eq!(backoff(&cfg, 1000), Duration::from_secs(5));
    }

    fn test_sender(buffer: usize) -> RecordSender {
        let (tx, rx) = crossbeam_channel::bounded(buffer);
        RecordSender {
            tx,
            rx,
            shared: Arc::new(Shared {
                closing: AtomicBool::new(false),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                produce_bytes: AtomicU64::new(0),
                kept: AtomicU64::new(0),
                held: AtomicU64::new(0),
                start: Instant::now(),
                last_drop_warn: AtomicU64::new(0),
                buffer,
            }),
        }
    }

    fn rec(i: u8) -> Record {
        Record {
            key: vec![i],
            value: vec![i],
            timestamp_ms: i as i64,
        }
    }

    #[test]
    fn full_buffer_drops_the_oldest() {
        let s = test_sender(3);
        for i in 0..5 {
            s.send(rec(i));
        }
        assert_eq!(s.shared.stats().dropped, 2);
        let kept: Vec<u8> = s.rx.try_iter().map(|r| r.key[0]).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        s.shared.closing.store(true, Ordering::Release);
        s.send(rec(9));
        assert_eq!(s.shared.stats().dropped, 3);
        assert!(s.rx.is_empty());
    }

    #[test]
    fn sealing_respects_linger_size_and_order() {
        let mut cfg = KafkaConfig::new("x:1");
        cfg.batch_max_bytes = 1024;
        cfg.linger = Duration::from_secs(3600);
        let mut w = Worker::new(cfg, None).unwrap();
        w.parts.resize_with(1, PartState::default);
        w.thread_limit = 1000;
        for i in 0..10 {
            w.place(Record {
                key: vec![1],
                value: vec![i; 200],
                timestamp_ms: 0,
            });
        }
        let now = Instant::now();
        // 10 × ~221 bytes > 1024: one full batch is sealed despite linger.
        w.seal(now, false);
        let b = w.parts[0].batch.as_ref().unwrap();
        assert_eq!(b.records.len(), 4);
        assert_eq!(b.records[0].value[0], 0);
        assert_eq!(b.base_sequence, -1);
        // Nothing more is sealed while that batch is out.
        w.seal(now, true);
        assert_eq!(w.parts[0].queue.len(), 6);
        w.finish(0, true);
        assert_eq!(w.held_records, 6);
        w.seal(now, true);
        assert_eq!(w.parts[0].batch.as_ref().unwrap().records[0].value[0], 4);
    }

    #[test]
    fn idempotent_sequences_advance_and_retries_keep_bytes() {
        let mut w = Worker::new(KafkaConfig::new("x:1"), None).unwrap();
        w.parts.resize_with(1, PartState::default);
        w.thread_limit = 1000;
        w.idempotent = true;
        w.place(rec(1));
        w.seal(Instant::now(), true);
        assert!(w.parts[0].batch.is_none(), "no batch before a producer id");
        w.pid = ProducerIdentity { id: 5, epoch: 0 };
        w.seal(Instant::now(), true);
        let first = w.parts[0].batch.as_ref().unwrap().encoded.clone();
        w.retry_later(0);
        assert_eq!(w.parts[0].batch.as_ref().unwrap().encoded, first);
        assert_eq!(w.parts[0].batch.as_ref().unwrap().attempts, 1);
        w.finish(0, true);
        w.place(rec(2));
        w.place(rec(3));
        w.seal(Instant::now(), true);
        assert_eq!(w.parts[0].batch.as_ref().unwrap().base_sequence, 1);
        assert_eq!(w.parts[0].next_sequence, 3);
        // A new producer id restarts sequences and re-stamps the waiting batch.
        w.pid = ProducerIdentity { id: 6, epoch: 0 };
        w.renumber_batches();
        let b = w.parts[0].batch.as_ref().unwrap();
        assert_eq!((b.base_sequence, b.pid.id), (0, 6));
        assert_eq!(w.parts[0].next_sequence, 2);
    }
}
