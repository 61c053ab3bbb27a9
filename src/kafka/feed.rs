//! The spool as the producer sees it: appends from the sink (waking the
//! producer thread), reads of records not yet in flight, and "done" when
//! Kafka has answered for them. Records are stored as
//! `timestamp i64 | key length u32 | key | value` (little-endian).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::warn;

use super::doorbell::{Doorbell, Ring};
use super::protocol::Record;
use crate::spool::{Spool, SpoolError, SpoolStats, Ticket};

/// "Spool full" warnings are rate-limited to one per this interval.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);

/// A spool shared by the sink (appends) and the producer thread (reads,
/// marks done); see `crate::spool`. Records are stored as
/// `timestamp i64 | key length u32 | key | value` (little-endian).
pub struct SpoolFeed {
    spool: Mutex<Spool>,
    /// Rung by appends; the producer thread waits on it.
    pub(super) bell: Arc<Doorbell>,
    /// When the last "spool full" warning was logged (rate limit).
    drop_warned: Mutex<Option<Instant>>,
}

impl SpoolFeed {
    pub fn new(spool: Spool) -> Arc<SpoolFeed> {
        Arc::new(SpoolFeed {
            spool: Mutex::new(spool),
            bell: Arc::new(Doorbell::default()),
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
        self.bell.ring(Ring::Record);
        Ok(())
    }

    pub(super) fn read(&self, max: usize) -> Vec<(Ticket, Record)> {
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

    pub(super) fn done(&self, tickets: &[Option<Ticket>]) {
        if tickets.iter().all(|t| t.is_none()) {
            return;
        }
        let mut spool = self.lock();
        for t in tickets.iter().flatten() {
            spool.done(*t);
        }
    }

    pub(super) fn unread(&self) -> u64 {
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
