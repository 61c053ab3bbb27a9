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
//! twice. The batches are `accumulator`'s; brokers, metadata and the
//! producer id are `cluster`'s; this module is the loop and its handles.
//!
//! Memory: callers never block. Records wait in a channel bounded by
//! `buffer` (allocated as records arrive, not reserved up front); when it
//! is full the oldest record is dropped and counted. The thread holds at
//! most a quarter of `buffer` itself, so the total stays within `buffer`.
//!
//! Wake-ups: see `doorbell`. The thread sleeps until its next deadline;
//! records wake it only when it holds none (or when half the buffer waits).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use log::{debug, error, info, warn};

use super::accumulator::{Accumulator, Batch};
use super::checked::Checked;
use super::cluster::Cluster;
use super::config::{Acks, KafkaConfig};
use super::doorbell::{Doorbell, Ring};
use super::feed::SpoolFeed;
use super::protocol::{self, ErrorClass, ProducerIdentity, Record, classify, error_name};
use super::{ErrorKind, KafkaError};
use crate::spool::Ticket;

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
/// Longest the thread sleeps without a deadline (closing rings the doorbell;
/// this only bounds how late an overdue metadata refresh can be).
const MAX_IDLE: Duration = Duration::from_secs(1);

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
    bell: Arc<Doorbell>,
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
    /// Records the channel may hold.
    capacity: usize,
}

impl RecordSender {
    /// Queues a record; never blocks. When the buffer is full the oldest
    /// queued record is dropped to make room.
    pub fn send(&self, record: Record) {
        if self.shared.closing.load(Ordering::Acquire) {
            self.shared.note_drop();
            return;
        }
        // The bound is ours (the channel grows with what waits): with several
        // senders at once it may be passed by a record per sender.
        while self.tx.len() >= self.capacity {
            match self.rx.try_recv() {
                Ok(_) => self.shared.note_drop(),
                Err(_) => break,
            }
        }
        if self.tx.send(record).is_err() {
            // Cannot happen while we hold `rx`; count it rather than panic.
            self.shared.note_drop();
            return;
        }
        // Half full: take them now rather than at the end of the linger.
        let urgent = self.tx.len() * 2 >= self.capacity;
        self.shared
            .bell
            .ring(if urgent { Ring::Urgent } else { Ring::Record });
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
        shared.bell.ring(Ring::Close);
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

/// Entry point: `Producer::start(cfg)`.
pub struct Producer;

impl Producer {
    /// Validates `cfg`, connects to a bootstrap broker (TLS, SASL,
    /// ApiVersions), checks the topic, then starts the producer thread.
    pub fn start(cfg: KafkaConfig) -> Result<ProducerHandle, KafkaError> {
        let checked = Checked::new(cfg)
            .map_err(|m| KafkaError::new(ErrorKind::Config, format!("Kafka config: {m}")))?;
        Self::start_with(checked, None, None)
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
        checked: Checked,
        spool: Option<Arc<SpoolFeed>>,
        finisher: Option<Arc<dyn Finisher>>,
    ) -> Result<ProducerHandle, KafkaError> {
        let (cfg, tls) = checked.into_parts();
        let cfg = Arc::new(cfg);
        let now = Instant::now();
        let mut cluster = Cluster::new(cfg.clone(), tls, now);
        // None: checked. Some(when): nobody answered at that time.
        let unanswered = match cluster.startup_check() {
            Ok(()) => None,
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
                Some(Instant::now())
            }
            Err(e) => return Err(e),
        };

        let thread_limit = (cfg.buffer / 4).max(1);
        let mut capacity = cfg.buffer.saturating_sub(thread_limit).max(1);
        if spool.is_some() {
            // Records wait in the spool; the channel only carries the few
            // that could not be appended.
            capacity = capacity.min(1024);
        }
        // Unbounded underneath, bounded by `send`: crossbeam's bounded
        // channel touches every slot up front (75,000 slots, ~5 MB of RSS).
        let (tx, rx) = crossbeam_channel::unbounded();
        // The spool's appends ring the same bell.
        let bell = spool
            .as_ref()
            .map_or_else(|| Arc::new(Doorbell::default()), |f| f.bell.clone());
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
            buffer: cfg.buffer,
            bell,
        });
        let mut acc = Accumulator::new(cfg.clone(), thread_limit);
        acc.ensure_partitions(cluster.partitions());
        let next_check_at = unanswered.map_or(now, |t| t + cfg.backoff(1));
        let w = Worker {
            cfg,
            cluster,
            acc,
            rx: rx.clone(),
            shared: shared.clone(),
            spool,
            finisher,
            outage_since: unanswered,
            unchecked: unanswered.is_some(),
            check_failures: u32::from(unanswered.is_some()),
            next_check_at,
            waiting_since: None,
        };
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
            sender: RecordSender {
                tx,
                rx,
                shared,
                capacity,
            },
            thread: Some(thread),
        })
    }
}

/// The producer thread's state, built whole in `Producer::start_with`.
struct Worker {
    cfg: Arc<KafkaConfig>,
    cluster: Cluster,
    acc: Accumulator,
    rx: Receiver<Record>,
    shared: Arc<Shared>,
    spool: Option<Arc<SpoolFeed>>,
    finisher: Option<Arc<dyn Finisher>>,
    /// Set while no broker answers; for one warning and one recovery line.
    outage_since: Option<Instant>,
    /// No broker answered at start: the start-up check is still to do, and
    /// no record is taken (partitions unknown) until it passes.
    unchecked: bool,
    check_failures: u32,
    next_check_at: Instant,
    /// The first arrival among records not yet taken (see `Doorbell::clear`).
    waiting_since: Option<Instant>,
}

/// Finishes records as the producer takes them; see `Producer::start_with`.
pub trait Finisher: Send + Sync {
    /// False while records must wait.
    fn ready(&self) -> bool;
    fn finish(&self, record: &mut Record);
}

impl Worker {
    fn count(&self, delivered: u64, failed: u64) {
        self.shared
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
        self.shared.failed.fetch_add(failed, Ordering::Relaxed);
    }

    fn place(&mut self, r: Record) {
        self.place_ticketed(r, None)
    }

    fn place_ticketed(&mut self, mut r: Record, ticket: Option<Ticket>) {
        if let Some(f) = &self.finisher {
            f.finish(&mut r);
        }
        // Records taken late (they did not wake a lingering thread) linger
        // from when they arrived, not from now.
        let now = Instant::now();
        let at = self.waiting_since.map_or(now, |t| t.min(now));
        self.acc.place(r, ticket, at);
    }

    fn room(&self) -> bool {
        self.acc.room()
    }

    /// Sleeps until `wait` has passed or the doorbell rings (a record while
    /// the thread holds none, many records, closing), then moves records
    /// from the spool and the channel into partition queues.
    fn pull(&mut self, wait: Duration) {
        let bell = self.shared.bell.clone();
        let blocked = self.unchecked || self.finisher.as_ref().is_some_and(|f| !f.ready());
        let waiting = !self.rx.is_empty() || self.spool.as_ref().is_some_and(|f| f.unread() > 0);
        if blocked || !self.room() {
            // Records cannot be taken now (no broker yet, schema id unknown,
            // no room), so they must not wake the thread one by one.
            bell.wait(wait.min(MAX_IDLE), Ring::Close);
        } else if !waiting {
            let wake_for = if self.acc.held() == 0 {
                Ring::Record
            } else {
                Ring::Urgent
            };
            bell.wait(wait, wake_for);
        }
        // What arrives from here on rings again.
        if let Some(t) = bell.clear() {
            self.waiting_since = Some(self.waiting_since.map_or(t, |w| w.min(t)));
        }
        if blocked {
            // Records wait where they are (channel, spool).
            return;
        }
        if let Some(feed) = self.spool.clone() {
            // The channel only carries records the spool could not take.
            while self.room() {
                let got = feed.read(256);
                if got.is_empty() {
                    break;
                }
                for (t, r) in got {
                    self.place_ticketed(r, Some(t));
                }
            }
        }
        while self.room() {
            match self.rx.try_recv() {
                Ok(r) => self.place(r),
                Err(_) => break,
            }
        }
        if self.rx.is_empty() && self.spool.as_ref().is_none_or(|f| f.unread() == 0) {
            self.waiting_since = None;
        }
    }

    /// Seals queued records into batches where linger or size says so.
    fn seal(&mut self, now: Instant, flushing: bool) {
        if !self.cluster.can_seal() {
            return; // wait for a producer id so sequences are meaningful
        }
        let failed = self.acc.seal(now, flushing, self.cluster.stamp());
        if !failed.is_empty() {
            self.count(0, failed.len() as u64);
            if let Some(feed) = &self.spool {
                feed.done(&failed);
            }
        }
    }

    /// Finishes a batch (delivered or failed) and frees its room.
    fn finish(&mut self, partition: usize, delivered: bool) {
        if let Some(b) = self.acc.finish(partition) {
            self.finished(b, delivered);
        }
    }

    fn finished(&self, b: Batch, delivered: bool) {
        let n = b.records.len() as u64;
        // Refused or delivered, it leaves the spool: resending a record
        // the broker refused for good would fail again at every start.
        if let Some(feed) = &self.spool {
            feed.done(&b.tickets);
        }
        if delivered {
            self.count(n, 0);
        } else {
            self.count(0, n);
        }
    }

    /// A batch must be resent later, unchanged.
    fn retry_later(&mut self, partition: usize) {
        self.acc.retry_later(partition, Instant::now());
        self.cluster.mark_stale();
    }

    /// The start-up check and the producer id are in: take the partitions
    /// and stamp waiting batches.
    fn cluster_ready(&mut self) {
        self.acc.ensure_partitions(self.cluster.partitions());
        if self.cluster.stamp().is_some() {
            self.acc.renumber(self.cluster.stamp());
        }
    }

    /// The start-up check, retried until a broker answers. A refusal now
    /// cannot stop the program (it is probing): said loudly, retried.
    fn deferred_check(&mut self) {
        match self.cluster.startup_check() {
            Ok(()) => {
                self.unchecked = false;
                self.cluster_ready();
                self.note_recovered();
            }
            Err(e) => {
                if matches!(e.kind, ErrorKind::Network | ErrorKind::Busy) {
                    debug!("Kafka still unavailable: {e}");
                } else {
                    error!("Kafka: {e}; records wait, retrying");
                }
                self.cluster.drop_all_conns();
                self.check_failures += 1;
                self.next_check_at = Instant::now() + self.cfg.backoff(self.check_failures);
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
        match self.cluster.refresh_metadata(timeout) {
            Ok(healthy) => {
                self.acc.ensure_partitions(self.cluster.partitions());
                if healthy {
                    self.note_recovered();
                }
            }
            Err(e) => self.note_outage(&e),
        }
    }

    /// One round: a Produce request to every leader with ready batches,
    /// written to all first, then every reply read.
    fn send_round(&mut self, now: Instant, timeout: Duration) {
        let mut by_leader: HashMap<String, Vec<usize>> = HashMap::new();
        let mut no_leader = Vec::new();
        for i in self.acc.ready(now) {
            match self.cluster.leader_addr(i) {
                Some(a) => by_leader.entry(a).or_default().push(i),
                None => no_leader.push(i),
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
        let mut waiting: Vec<(String, Vec<usize>)> = Vec::new();
        for (addr, parts) in by_leader {
            let batches: Vec<(i32, bytes::Bytes)> = parts
                .iter()
                .filter_map(|&i| self.acc.batch(i).map(|b| (i as i32, b.encoded.clone())))
                .collect();
            let req = protocol::produce_request(&self.cfg.topic, acks, tmo, batches);
            let sent = self
                .cluster
                .conn(&addr, timeout)
                .and_then(|c| c.write(&req));
            if let Ok(n) = &sent {
                self.shared.produce_bytes.fetch_add(*n, Ordering::Relaxed);
            }
            match sent {
                Ok(_) if self.cfg.acks == Acks::None => {
                    if let Some(c) = self.cluster.open_conn(&addr) {
                        c.forget_last();
                    }
                    for i in parts {
                        self.finish(i, true);
                    }
                }
                Ok(_) => waiting.push((addr, parts)),
                Err(e) => {
                    self.cluster.drop_conn(&addr);
                    self.fail_request(&parts, &e);
                }
            }
        }
        for (addr, parts) in waiting {
            let reply = match self.cluster.open_conn(&addr) {
                Some(c) => c.read::<ProduceRequest>(),
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
                    self.cluster.drop_conn(&addr);
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

    fn handle_produce(
        &mut self,
        addr: &str,
        parts: &[usize],
        resp: &kafka_protocol::messages::ProduceResponse,
    ) {
        let results = protocol::parse_produce(resp, &self.cfg.topic);
        let mut reset_producer = false;
        for &i in parts {
            let Some(r) = results.iter().find(|r| r.partition == i as i32) else {
                warn!("Kafka: broker {addr} did not answer for partition {i}; resending");
                self.retry_later(i);
                continue;
            };
            let Some(err) = r.error else {
                self.finish(i, true);
                continue;
            };
            let attempts = self.acc.batch(i).map(|b| b.attempts).unwrap_or(0);
            let size = self.acc.batch(i).map(|b| b.records.len()).unwrap_or(0);
            // MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE for a batch of
            // several records: split it, as the Java client does.
            if matches!(
                err,
                ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge
            ) && size > 1
            {
                info!(
                    "Kafka: partition {i}: batch of {size} records too large for the broker; splitting"
                );
                self.acc.split(i, Instant::now(), self.cluster.stamp());
                continue;
            }
            match classify(err) {
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
                        error_name(err)
                    );
                    self.retry_later(i);
                }
                ErrorClass::ResetProducer if self.cluster.idempotent() => {
                    warn!(
                        "Kafka: partition {i}: {}; getting a new producer id",
                        error_name(err)
                    );
                    reset_producer = true;
                    self.retry_later(i);
                }
                ErrorClass::ResetProducer | ErrorClass::Fatal => {
                    error!(
                        "Kafka: {size} records for partition {i} rejected by {addr}: {}{}",
                        error_name(err),
                        r.error_message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    if let Some(b) = self.acc.reject(i, self.cluster.stamp()) {
                        self.finished(b, false);
                    }
                }
            }
        }
        if reset_producer {
            self.cluster.reset_pid(Instant::now());
        }
    }

    fn next_wake(&self, now: Instant, flushing: bool) -> Duration {
        let mut next = now + MAX_IDLE;
        if self.unchecked {
            return self.next_check_at.min(next).saturating_duration_since(now);
        }
        // Without a producer id nothing can be sealed: wake for the next try.
        let can_seal = self.cluster.can_seal();
        if !can_seal {
            next = next.min(self.cluster.next_pid_at());
        }
        for ps in self.acc.parts() {
            match ps.batch() {
                Some(b) => next = next.min(b.retry_at),
                None if !can_seal => {}
                None => {
                    if let Some(t) = ps.first_at() {
                        next = next.min(if flushing { now } else { t + self.cfg.linger });
                    }
                }
            }
        }
        if self.cluster.meta_stale() {
            next = next.min(self.cluster.next_meta_at());
        }
        next.saturating_duration_since(now)
    }

    fn run(mut self) {
        let shared = self.shared.clone();
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
                Some(d) => d
                    .saturating_duration_since(now)
                    .min(self.cluster.io_timeout()),
                None => self.cluster.io_timeout(),
            };

            let wait = self.next_wake(now, closing);
            self.pull(wait);
            shared.held.store(self.acc.held() as u64, Ordering::Relaxed);
            let now = Instant::now();
            if closing
                && self.acc.held() == 0
                && self.rx.is_empty()
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
            if self.cluster.refresh_due(now) {
                self.refresh_metadata(timeout);
            }
            if self.cluster.pid_due(now) {
                match self.cluster.init_producer_id() {
                    Ok(pid) => self.acc.renumber(pid),
                    Err(e) if e.is_transient() => self.note_outage(&e),
                    Err(e) => {
                        warn!(
                            "Kafka: idempotent producer not available ({e}); continuing without it"
                        );
                        self.cluster.give_up_idempotence();
                        self.acc.renumber(ProducerIdentity::NONE);
                    }
                }
            }
            let flushing = closing;
            self.seal(now, flushing);
            self.send_round(now, timeout);
        }
        // Whatever is still here was not delivered in time.
        let mut left = self.acc.held() as u64;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        if let Some(feed) = &self.spool {
            // Spooled records stay on disk for the next run.
            let spooled = self.acc.spooled();
            let kept = feed.stats().pending;
            left = left.saturating_sub(spooled);
            if kept > 0 {
                info!("Kafka: {kept} records kept in the spool for the next run");
            }
            shared.kept.store(kept, Ordering::Relaxed);
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

    fn test_sender(buffer: usize) -> RecordSender {
        let (tx, rx) = crossbeam_channel::unbounded();
        RecordSender {
            tx,
            rx,
            capacity: buffer,
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
                bell: Arc::new(Doorbell::default()),
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

    /// A Worker with no broker behind it (nothing here talks to one): the
    /// channel's other end and `partitions` partitions.
    fn test_worker(linger: Duration, partitions: usize) -> (Worker, RecordSender) {
        let mut cfg = KafkaConfig::new("127.0.0.1:9");
        cfg.linger = linger;
        let cfg = Arc::new(cfg);
        let sender = test_sender(1000);
        let mut acc = Accumulator::new(cfg.clone(), 250);
        acc.ensure_partitions(partitions);
        let w = Worker {
            cfg: cfg.clone(),
            cluster: Cluster::new(cfg, None, Instant::now()),
            acc,
            rx: sender.rx.clone(),
            shared: sender.shared.clone(),
            spool: None,
            finisher: None,
            outage_since: None,
            unchecked: false,
            check_failures: 0,
            next_check_at: Instant::now(),
            waiting_since: None,
        };
        (w, sender)
    }

    #[test]
    fn a_record_taken_at_the_end_of_another_partitions_linger_keeps_its_own() {
        let linger = Duration::from_millis(400);
        let (mut w, s) = test_worker(linger, 8);
        let part = |k: &[u8]| super::super::partitioner::partition_for(k, 8);
        let a = b"a".to_vec();
        let b = (0u8..=255)
            .map(|i| vec![i])
            .find(|k| part(k) != part(&a))
            .expect("another partition");
        let r = |key: &Vec<u8>| Record {
            key: key.clone(),
            value: vec![1],
            timestamp_ms: 0,
        };
        s.send(r(&a));
        w.pull(Duration::ZERO);
        assert_eq!(w.acc.held(), 1);
        // Partition a lingers; a record for b arrives 50 ms into the sleep
        // and does not wake the thread, which takes it when it wakes.
        let late = std::thread::spawn({
            let (s, b) = (s.clone(), r(&b));
            move || {
                std::thread::sleep(Duration::from_millis(50));
                s.send(b);
                Instant::now()
            }
        });
        w.pull(Duration::from_millis(300));
        let arrived = late.join().expect("sender");
        assert_eq!(w.acc.held(), 2);
        let pb = part(&b) as usize;
        let first = w.acc.parts()[pb].first_at().expect("b queued");
        // b's linger counts from its arrival, not from when it was taken:
        // sealed by arrival + linger, never up to twice the linger later.
        assert!(
            first <= arrived,
            "b's linger starts {:?} after it arrived",
            first.duration_since(arrived)
        );
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
}
