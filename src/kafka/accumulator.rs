//! The batch accumulator: records waiting per partition, sealed into
//! RecordBatches by linger, size or a flush; idempotent sequence numbers;
//! resending, splitting and giving up on sealed batches; and the counts of
//! what it holds (so the producer thread stays within its share of
//! `buffer`). Pure: no I/O, no clock — every time is an argument.
//!
//! Each partition has at most one sealed batch at a time (sent, or waiting
//! to be resent), so per-key order holds through retries; a retried batch
//! keeps its bytes (same producer id, epoch and base sequence).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use log::error;

use super::config::KafkaConfig;
use super::partitioner::partition_for;
use super::protocol::{self, ProducerIdentity, Record};
use crate::spool::Ticket;

/// A sealed batch for one partition: sent, or waiting to be resent as is.
pub struct Batch {
    pub records: Vec<Record>,
    /// The spool's tickets for `records` (None: not spooled).
    pub tickets: Vec<Option<Ticket>>,
    pub bytes: usize,
    pub base_sequence: i32,
    pub pid: ProducerIdentity,
    pub encoded: bytes::Bytes,
    pub attempts: u32,
    pub retry_at: Instant,
}

/// One partition's queue and its sealed batch, if any.
#[derive(Default)]
pub struct PartState {
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

impl PartState {
    pub fn batch(&self) -> Option<&Batch> {
        self.batch.as_ref()
    }

    /// When the oldest unsealed record arrived (None: queue empty).
    pub fn first_at(&self) -> Option<Instant> {
        self.first_at
    }
}

pub struct Accumulator {
    cfg: Arc<KafkaConfig>,
    /// Most records held at once (the thread's share of `buffer`).
    limit: usize,
    parts: Vec<PartState>,
    held_records: usize,
    held_bytes: usize,
}

impl Accumulator {
    pub fn new(cfg: Arc<KafkaConfig>, limit: usize) -> Self {
        Accumulator {
            cfg,
            limit,
            parts: Vec::new(),
            held_records: 0,
            held_bytes: 0,
        }
    }

    pub fn parts(&self) -> &[PartState] {
        &self.parts
    }

    /// Records held (queued or in sealed batches).
    pub fn held(&self) -> usize {
        self.held_records
    }

    /// Grows to `n` partitions (a topic's partitions are never removed).
    pub fn ensure_partitions(&mut self, n: usize) {
        if n > self.parts.len() {
            self.parts.resize_with(n, PartState::default);
        }
    }

    /// Queues a record on its key's partition.
    pub fn place(&mut self, r: Record, ticket: Option<Ticket>, now: Instant) {
        let n = self.parts.len().max(1) as i32;
        let p = partition_for(&r.key, n) as usize;
        self.ensure_partitions(p + 1);
        let size = protocol::record_size_estimate(&r);
        let ps = &mut self.parts[p];
        if ps.first_at.is_none() {
            ps.first_at = Some(now);
        }
        ps.queue_bytes += size;
        ps.queue.push_back(r);
        ps.tickets.push_back(ticket);
        self.held_records += 1;
        self.held_bytes += size;
    }

    /// Whether another record may be taken in.
    pub fn room(&self) -> bool {
        let byte_cap = self
            .cfg
            .batch_max_bytes
            .saturating_mul(self.parts.len().max(1))
            .saturating_mul(2);
        self.held_records < self.limit && self.held_bytes < byte_cap
    }

    /// Seals queued records into batches where linger or size says so,
    /// stamped with `pid` (`NONE` when not idempotent). Returns the tickets
    /// of batches that could not be encoded (their records are given up:
    /// one entry per record).
    pub fn seal(
        &mut self,
        now: Instant,
        flushing: bool,
        pid: ProducerIdentity,
    ) -> Vec<Option<Ticket>> {
        let max = self.cfg.batch_max_bytes;
        let linger = self.cfg.linger;
        let compression = self.cfg.compression;
        let mut failed = Vec::new();
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
                    failed.extend(tickets);
                }
            }
        }
        failed
    }

    /// Partitions whose sealed batch is due to be sent.
    pub fn ready(&self, now: Instant) -> Vec<usize> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, ps)| ps.batch.as_ref().is_some_and(|b| b.retry_at <= now))
            .map(|(i, _)| i)
            .collect()
    }

    pub fn batch(&self, partition: usize) -> Option<&Batch> {
        self.parts.get(partition)?.batch.as_ref()
    }

    /// Takes a batch out (delivered or failed) and frees its room.
    pub fn finish(&mut self, partition: usize) -> Option<Batch> {
        let b = self.parts.get_mut(partition)?.batch.take()?;
        self.held_records = self.held_records.saturating_sub(b.records.len());
        self.held_bytes = self.held_bytes.saturating_sub(b.bytes);
        Some(b)
    }

    /// Takes out a batch the broker refused for good. The broker did not
    /// write it, so it still expects this batch's base sequence: reuse it
    /// for the next batch rather than leave a hole
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER). Safe because nothing later in this
    /// partition is sealed.
    pub fn reject(&mut self, partition: usize, pid: ProducerIdentity) -> Option<Batch> {
        let ps = self.parts.get_mut(partition)?;
        if let Some(b) = &ps.batch
            && b.base_sequence >= 0
            && b.pid == pid
        {
            ps.next_sequence = b.base_sequence;
        }
        self.finish(partition)
    }

    /// Puts a rejected batch's records back at the head of the queue and
    /// halves the partition's batch size. The broker wrote none of them, so
    /// the sequence restarts at the batch's base.
    pub fn split(&mut self, partition: usize, now: Instant, pid: ProducerIdentity) {
        let Some(ps) = self.parts.get_mut(partition) else {
            return;
        };
        let Some(b) = ps.batch.take() else { return };
        ps.max_bytes = (b.bytes / 2).max(1);
        if b.base_sequence >= 0 && b.pid == pid {
            ps.next_sequence = b.base_sequence;
        }
        ps.queue_bytes += b.bytes;
        for (r, t) in b.records.into_iter().zip(b.tickets).rev() {
            ps.queue.push_front(r);
            ps.tickets.push_front(t);
        }
        ps.first_at = Some(now);
    }

    /// A batch must be resent later, unchanged.
    pub fn retry_later(&mut self, partition: usize, now: Instant) {
        let cfg = &self.cfg;
        if let Some(b) = self.parts.get_mut(partition).and_then(|p| p.batch.as_mut()) {
            b.attempts += 1;
            b.retry_at = now + cfg.backoff(b.attempts);
        }
    }

    /// After a new producer id (or none): sequences restart at 0 in every
    /// partition, and a batch still waiting is re-stamped (it was not
    /// accepted under the old id, or we would not be here).
    pub fn renumber(&mut self, pid: ProducerIdentity) {
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

    /// Held records that came from the spool (they stay there at close).
    pub fn spooled(&self) -> u64 {
        self.parts
            .iter()
            .flat_map(|p| {
                p.tickets
                    .iter()
                    .chain(p.batch.iter().flat_map(|b| b.tickets.iter()))
            })
            .filter(|t| t.is_some())
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(i: u8) -> Record {
        Record {
            key: vec![i],
            value: vec![i],
            timestamp_ms: i as i64,
        }
    }

    #[test]
    fn sealing_respects_linger_size_and_order() {
        let mut cfg = KafkaConfig::new("x:1");
        cfg.batch_max_bytes = 1024;
        cfg.linger = Duration::from_secs(3600);
        let mut a = Accumulator::new(Arc::new(cfg), 1000);
        a.ensure_partitions(1);
        let now = Instant::now();
        for i in 0..10 {
            let r = Record {
                key: vec![1],
                value: vec![i; 200],
                timestamp_ms: 0,
            };
            a.place(r, None, now);
        }
        let none = ProducerIdentity::NONE;
        // 10 × ~221 bytes > 1024: one full batch is sealed despite linger.
        assert!(a.seal(now, false, none).is_empty());
        let b = a.parts[0].batch.as_ref().unwrap();
        assert_eq!(b.records.len(), 4);
        assert_eq!(b.records[0].value[0], 0);
        assert_eq!(b.base_sequence, -1);
        // Nothing more is sealed while that batch is out.
        a.seal(now, true, none);
        assert_eq!(a.parts[0].queue.len(), 6);
        assert_eq!(a.finish(0).map(|b| b.records.len()), Some(4));
        assert_eq!(a.held_records, 6);
        a.seal(now, true, none);
        assert_eq!(a.parts[0].batch.as_ref().unwrap().records[0].value[0], 4);
    }

    #[test]
    fn idempotent_sequences_advance_and_retries_keep_bytes() {
        let mut a = Accumulator::new(Arc::new(KafkaConfig::new("x:1")), 1000);
        a.ensure_partitions(1);
        let now = Instant::now();
        let pid = ProducerIdentity { id: 5, epoch: 0 };
        a.place(rec(1), None, now);
        a.seal(now, true, pid);
        let first = a.parts[0].batch.as_ref().unwrap().encoded.clone();
        a.retry_later(0, now);
        assert_eq!(a.parts[0].batch.as_ref().unwrap().encoded, first);
        assert_eq!(a.parts[0].batch.as_ref().unwrap().attempts, 1);
        assert!(a.ready(now).is_empty(), "a retry waits for its backoff");
        a.finish(0);
        a.place(rec(2), None, now);
        a.place(rec(3), None, now);
        a.seal(now, true, pid);
        assert_eq!(a.parts[0].batch.as_ref().unwrap().base_sequence, 1);
        assert_eq!(a.parts[0].next_sequence, 3);
        // A new producer id restarts sequences and re-stamps the waiting batch.
        a.renumber(ProducerIdentity { id: 6, epoch: 0 });
        let b = a.parts[0].batch.as_ref().unwrap();
        assert_eq!((b.base_sequence, b.pid.id), (0, 6));
        assert_eq!(a.parts[0].next_sequence, 2);
    }
}
