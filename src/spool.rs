//! The disk spool (`--spool DIR`): an append-only log of records on their
//! way to Kafka, so that a crash, a power cut or a long outage loses none.
//!
//! Layout: numbered segment files (`00000000000000000001.seg`, …), each a
//! run of frames `magic u32 | len u32 | crc32c(len ‖ payload) u32 | payload`
//! (little-endian), an `ack` file (the position up to which every record is
//! done, written to a temporary file and renamed at sync time) and a `lock`
//! file held with an exclusive lock while a process uses the directory.
//!
//! Flash-aware: segments are only appended to, never rewritten; fsync
//! happens at most once per `sync_every` (group commit, driven by
//! [`Spool::sync`] with the time passed in); a segment is deleted whole once
//! every record in it is done (delivered or refused by Kafka).
//!
//! Bounded: when appending would pass `max_bytes`, the oldest whole
//! segments are deleted and their unread records counted as dropped.
//!
//! Damage: a frame whose magic, length or checksum is wrong is skipped by
//! searching forward for the next valid frame (counted as corrupt); damage
//! that runs to the end of a segment is a torn tail (a power cut
//! mid-write) and is discarded. No content of any file can make this
//! module panic: every length is checked against what is left.
//!
//! Why not the `queue-file` crate (2.0): one ring-buffer file whose header
//! is rewritten in place on every add and remove (the same flash block,
//! thousands of times a minute), `sync_data` after every write by default,
//! growth by doubling and copying, removed data overwritten with zeros (a
//! second write per record), and no policy for dropping the oldest when
//! full; 1.x asserts (panics) on a bad header. A segment log meets the
//! brief with ~500 lines and no new crate (CRC-32C comes from `crc32c`,
//! already compiled in for Kafka record batches).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Marks the start of a frame; lets the reader find the next frame after
/// damage.
pub(crate) const MAGIC: u32 = 0x4C53_5031; // "1PSL" little-endian
const HEADER: u64 = 12;
/// Largest payload accepted; a bigger length field is damage.
pub const MAX_RECORD: usize = 1 << 20;
const ACK_FILE: &str = "ack";
/// The done position is saved at most this often between a run's first
/// and last commit: a stale one only means records already in Kafka are
/// sent again after a crash (at-least-once, same `id`), and saving it at
/// every commit was most of the spool's disk writes and CPU at low rates.
const ACK_EVERY: Duration = Duration::from_secs(10);
const ACK_MAGIC: u32 = 0x4C41_434B;
/// How much the reader scans at a time while looking for the next frame.
const SCAN_CHUNK: usize = 64 * 1024;

/// Why the spool failed.
#[derive(Debug)]
pub enum SpoolError {
    /// A file operation failed; says which file.
    Io { path: PathBuf, err: io::Error },
    /// Another process holds the directory.
    Locked(PathBuf),
    /// The record can never fit (larger than `MAX_RECORD` or the spool).
    TooLarge(usize),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Io { path, err } => write!(f, "spool {}: {err}", path.display()),
            SpoolError::Locked(p) => write!(
                f,
                "spool {} is in use by another process (lock held)",
                p.display()
            ),
            SpoolError::TooLarge(n) => write!(f, "record of {n} bytes does not fit the spool"),
        }
    }
}

impl std::error::Error for SpoolError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |err| SpoolError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Total size of all segment files; the oldest are deleted past it.
    pub max_bytes: u64,
    /// Group commit: at most one fsync per this interval.
    pub sync_every: Duration,
}

impl SpoolConfig {
    /// Segments are an eighth of the spool (4 KiB to 16 MiB), so dropping
    /// the oldest when full loses a small part, and a mostly-acknowledged
    /// spool frees space soon.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(4096, 16 << 20)
    }
}

/// Counts, for logs and the stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records on disk not yet done (includes those being sent).
    pub pending: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// Records deleted unread because the spool was full.
    pub dropped: u64,
    /// Damaged regions skipped in the middle of a segment.
    pub corrupt: u64,
    /// Damaged segment tails discarded (power cut mid-write).
    pub torn: u64,
    /// Records found from a previous run when opened.
    pub recovered: u64,
}

/// Identifies a record handed out by [`Spool::read`], to [`Spool::done`] it.
pub type Ticket = u64;

#[derive(Debug)]
struct Segment {
    num: u64,
    /// Bytes that hold frames: the file length for the active segment, up
    /// to the end of the last good frame for one from a previous run.
    len: u64,
    /// Bytes on disk (for the size bound).
    file_len: u64,
    /// Records not yet handed out by `read`.
    unread: u64,
}

/// A position: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    seg: u64,
    off: u64,
}

struct InFlight {
    start: Pos,
    done: bool,
}

/// What the frame reader found at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A good frame: its payload and where the next one starts.
    Good(Vec<u8>, u64),
    /// Damage, then a good frame at this offset.
    Skip(u64),
    /// Damage to the end: nothing more here.
    Torn,
    /// Exactly at the end.
    End,
}

/// The spool. One per directory per process; not thread-safe by itself
/// (the Kafka sink wraps it in a mutex).
pub struct Spool {
    cfg: SpoolConfig,
    segments: VecDeque<Segment>,
    /// The segment being appended to (the last in `segments`).
    active: Option<File>,
    next_num: u64,
    /// The read cursor: the next record `read` hands out.
    cursor: Pos,
    reader: Option<(u64, File)>,
    /// Records handed out, in order; the front's ticket is `first_ticket`.
    inflight: VecDeque<InFlight>,
    /// How many of `inflight` are not done.
    out: usize,
    first_ticket: Ticket,
    /// The acknowledged position last written to the ack file.
    saved_ack: Option<Pos>,
    dirty: bool,
    dir_dirty: bool,
    /// Closed segments not yet fsynced.
    unsynced: Vec<File>,
    last_sync: Instant,
    /// When the ack file was last written (see `ACK_EVERY`).
    last_ack: Instant,
    stats: SpoolStats,
    _lock: File,
}

impl Spool {
    /// Opens (creating) the directory, takes its lock, reads the ack
    /// position, deletes segments wholly before it, and scans the rest
    /// (counting records, damage and torn tails). Appends go to a new
    /// segment, so an old file is never written again.
    pub fn open(cfg: SpoolConfig, now: Instant) -> Result<Spool, SpoolError> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let ack = read_ack(&dir.join(ACK_FILE));
        let mut nums = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(num) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            nums.push(num);
        }
        nums.sort_unstable();
        let mut spool = Spool {
            // Never below the ack file's segment: a segment numbered under
            // it would be taken as done (deleted) by the next open.
            next_num: nums
                .last()
                .copied()
                .max(ack.map(|a| a.seg))
                .map_or(1, |n| n.saturating_add(1)),
            cursor: Pos { seg: 0, off: 0 },
            segments: VecDeque::new(),
            active: None,
            reader: None,
            inflight: VecDeque::new(),
            out: 0,
            first_ticket: 0,
            saved_ack: None,
            dirty: false,
            dir_dirty: false,
            unsynced: Vec::new(),
            last_sync: now,
            last_ack: now,
            stats: SpoolStats::default(),
            cfg,
            _lock: lock,
        };
        let start = ack.unwrap_or(Pos { seg: 0, off: 0 });
        for num in nums {
            let path = spool.seg_path(num);
            if num < start.seg {
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let from = if num == start.seg { start.off } else { 0 };
            let file = File::open(&path).map_err(io_err(&path))?;
            let file_len = file.metadata().map_err(io_err(&path))?.len();
            let (records, len, corrupt, torn) = scan(&file, from, file_len);
            spool.stats.corrupt += corrupt;
            if torn {
                spool.stats.torn += 1;
                log::warn!(
                    "spool {}: damaged tail discarded ({} bytes; a write cut short)",
                    path.display(),
                    file_len - len
                );
            }
            if corrupt > 0 {
                log::warn!(
                    "spool {}: {corrupt} damaged record(s) skipped",
                    path.display()
                );
            }
            spool.stats.pending += records;
            spool.stats.bytes += file_len;
            spool.segments.push_back(Segment {
                num,
                len,
                file_len,
                unread: records,
            });
        }
        spool.stats.recovered = spool.stats.pending;
        spool.cursor = match spool.segments.front() {
            Some(s) if s.num == start.seg => start,
            Some(s) => Pos { seg: s.num, off: 0 },
            None => Pos {
                seg: spool.next_num,
                off: 0,
            },
        };
        // Same meaning as what is on disk (no ack file = from the start).
        spool.saved_ack = Some(spool.cursor);
        Ok(spool)
    }

    fn seg_path(&self, num: u64) -> PathBuf {
        self.cfg.dir.join(format!("{num:020}.seg"))
    }

    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    /// Records handed out by `read` and not yet done.
    pub fn in_flight(&self) -> usize {
        self.out
    }

    /// Appends one record. When the spool is full the oldest segments are
    /// deleted first (their unread records counted as dropped). Written to
    /// the OS at once, made durable by the next `sync`.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let need = HEADER + payload.len() as u64;
        if payload.len() > MAX_RECORD || need > self.cfg.max_bytes / 2 {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let seg_bytes = self.cfg.segment_bytes();
        let roll = match (&self.active, self.segments.back()) {
            (Some(_), Some(s)) => s.len > 0 && s.len + need > seg_bytes,
            _ => true,
        };
        if roll {
            self.roll()?;
        }
        while self.stats.bytes + need > self.cfg.max_bytes && self.segments.len() > 1 {
            self.drop_oldest()?;
        }
        let mut frame = Vec::with_capacity(need as usize);
        frame.extend_from_slice(&MAGIC.to_le_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&checksum(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        let num = self.next_num - 1;
        let path = self.seg_path(num);
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(io_err(&path)(io::Error::other("no active segment")));
        };
        let fresh = seg.len == 0;
        if let Err(e) = file.write_all(&frame) {
            // A short write leaves a partial frame: stop using this file
            // (the reader treats it as a torn tail) and start a new one.
            self.active = None;
            if fresh {
                // Nothing of this segment was kept: remove it, or a full disk
                // would leave one empty file behind per failed append.
                let _ = fs::remove_file(&path);
                self.segments.pop_back();
                self.dir_dirty = true;
            }
            return Err(io_err(&path)(e));
        }
        seg.len += need;
        seg.file_len += need;
        seg.unread += 1;
        self.stats.bytes += need;
        self.stats.pending += 1;
        self.dirty = true;
        Ok(())
    }

    fn roll(&mut self) -> Result<(), SpoolError> {
        if let Some(old) = self.active.take() {
            self.unsynced.push(old);
        }
        let num = self.next_num;
        let path = self.seg_path(num);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.next_num += 1;
        self.segments.push_back(Segment {
            num,
            len: 0,
            file_len: 0,
            unread: 0,
        });
        self.active = Some(file);
        self.dir_dirty = true;
        Ok(())
    }

    /// Deletes the oldest segment to make room.
    fn drop_oldest(&mut self) -> Result<(), SpoolError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        self.stats.dropped += seg.unread;
        self.stats.pending = self.stats.pending.saturating_sub(seg.unread);
        self.stats.bytes = self.stats.bytes.saturating_sub(seg.file_len);
        if self.cursor.seg <= seg.num {
            self.cursor = Pos {
                seg: seg.num + 1,
                off: 0,
            };
        }
        let path = self.seg_path(seg.num);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.dir_dirty = true;
        Ok(())
    }

    /// Hands out up to `max` records not yet handed out, oldest first.
    pub fn read(&mut self, max: usize) -> Vec<(Ticket, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < max {
            // The cursor's segment, or the next one that still exists.
            let Some(idx) = self.segments.iter().position(|s| s.num >= self.cursor.seg) else {
                break;
            };
            let (num, len) = (self.segments[idx].num, self.segments[idx].len);
            if num != self.cursor.seg {
                self.cursor = Pos { seg: num, off: 0 };
            }
            if self.cursor.off >= len {
                if idx + 1 == self.segments.len() {
                    break;
                }
                self.cursor = Pos {
                    seg: num + 1,
                    off: 0,
                };
                continue;
            }
            if self.reader.as_ref().is_none_or(|(n, _)| *n != num) {
                let path = self.seg_path(num);
                match File::open(&path) {
                    Ok(f) => self.reader = Some((num, f)),
                    Err(e) => {
                        log::error!("spool {}: {e}; its records are skipped", path.display());
                        self.cursor.off = len;
                        continue;
                    }
                }
            }
            let Some((_, file)) = &self.reader else { break };
            match frame_at(file, self.cursor.off, len) {
                Frame::Good(payload, next) => {
                    self.inflight.push_back(InFlight {
                        start: self.cursor,
                        done: false,
                    });
                    self.out += 1;
                    let ticket = self.first_ticket + self.inflight.len() as u64 - 1;
                    self.cursor.off = next;
                    let seg = &mut self.segments[idx];
                    seg.unread = seg.unread.saturating_sub(1);
                    out.push((ticket, payload));
                }
                // Damage was counted when the segment was scanned at open.
                Frame::Skip(next) => self.cursor.off = next,
                Frame::Torn | Frame::End => self.cursor.off = len,
            }
        }
        out
    }

    /// A record handed out by `read` is done: delivered, or refused for
    /// good. It leaves the spool once every record before it is done too.
    pub fn done(&mut self, ticket: Ticket) {
        let Some(i) = ticket.checked_sub(self.first_ticket) else {
            return;
        };
        let Some(f) = self.inflight.get_mut(i as usize) else {
            return;
        };
        if !f.done {
            f.done = true;
            self.out -= 1;
            self.stats.pending = self.stats.pending.saturating_sub(1);
        }
        while self.inflight.front().is_some_and(|f| f.done) {
            self.inflight.pop_front();
            self.first_ticket += 1;
        }
    }

    /// Everything before this position is done.
    fn acked(&self) -> Pos {
        self.inflight
            .iter()
            .find(|f| !f.done)
            .map_or(self.cursor, |f| f.start)
    }

    /// True when a group commit is due: something changed and `sync_every`
    /// has passed since the last one.
    pub fn sync_due(&self, now: Instant) -> bool {
        let changed = self.dirty || self.dir_dirty || Some(self.acked()) != self.saved_ack;
        changed && now.saturating_duration_since(self.last_sync) >= self.cfg.sync_every
    }

    /// The group commit: fsync what was written, delete segments whose
    /// records are all done, and save the done position (write + rename).
    /// The final commit (shutdown): the ack file is written too, whatever
    /// `ACK_EVERY` says.
    pub fn sync(&mut self, now: Instant) -> Result<(), SpoolError> {
        self.commit(now, true)?.run()
    }

    /// The group commit's quick part, done under the caller's lock: deletes
    /// finished segments, writes the ack file, and returns the slow part
    /// (the fsyncs) to run after the lock is released, so appends never
    /// wait for the disk.
    pub fn begin_sync(&mut self, now: Instant) -> Result<SyncJob, SpoolError> {
        self.commit(now, false)
    }

    /// `begin_sync`; `last`: the final commit, which saves the ack file.
    fn commit(&mut self, now: Instant, last: bool) -> Result<SyncJob, SpoolError> {
        self.last_sync = now;
        let dir = self.cfg.dir.clone();
        let mut job = SyncJob {
            files: std::mem::take(&mut self.unsynced),
            dir: None,
            path: dir.clone(),
        };
        if self.dirty {
            if let Some(f) = &self.active {
                let path = self.seg_path(self.next_num - 1);
                job.files.push(f.try_clone().map_err(io_err(&path))?);
            }
            self.dirty = false;
        }
        let acked = self.acked();
        while let Some(s) = self.segments.front() {
            let is_active = self.segments.len() == 1 && self.active.is_some();
            let behind = s.num < acked.seg || (s.num == acked.seg && acked.off >= s.len);
            if !behind || is_active {
                break;
            }
            let path = self.seg_path(s.num);
            self.stats.bytes = self.stats.bytes.saturating_sub(s.file_len);
            self.segments.pop_front();
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                return Err(io_err(&path)(e));
            }
            self.dir_dirty = true;
        }
        if Some(acked) != self.saved_ack
            && (last || now.saturating_duration_since(self.last_ack) >= ACK_EVERY)
        {
            // Not fsynced, and no directory fsync for its rename: a lost or
            // stale ack file costs duplicates, never a loss.
            write_ack(&dir, acked)?;
            self.saved_ack = Some(acked);
            self.last_ack = now;
        }
        if self.dir_dirty {
            // New, renamed and deleted files are durable only once the
            // directory is.
            job.dir = Some(File::open(&dir).map_err(io_err(&dir))?);
            self.dir_dirty = false;
        }
        Ok(job)
    }
}

/// The fsyncs of one group commit (see `Spool::begin_sync`).
pub struct SyncJob {
    files: Vec<File>,
    dir: Option<File>,
    path: PathBuf,
}

impl SyncJob {
    pub fn run(self) -> Result<(), SpoolError> {
        for f in &self.files {
            f.sync_data().map_err(io_err(&self.path))?;
        }
        if let Some(d) = &self.dir {
            d.sync_all().map_err(io_err(&self.path))?;
        }
        Ok(())
    }
}

/// CRC-32C over the payload's length and bytes, so a damaged length field
/// fails the check too.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&(payload.len() as u32).to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// Where frames are read from: a segment file, or (for tests and the fuzz
/// target) its bytes in memory, so that the same code reads both.
pub(crate) trait ReadAt {
    /// Fills `buf` from `off`, or fails if that runs past the end.
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let src = usize::try_from(off)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A good frame exactly at `off` (not past `end`): its payload and end.
fn good_frame_at<R: ReadAt + ?Sized>(file: &R, off: u64, end: u64) -> Option<(Vec<u8>, u64)> {
    if off.checked_add(HEADER)? > end {
        return None;
    }
    let mut h = [0u8; HEADER as usize];
    file.read_exact_at(&mut h, off).ok()?;
    let len = read_u32(&h, 4) as usize;
    if read_u32(&h, 0) != MAGIC || len > MAX_RECORD {
        return None;
    }
    let next = off + HEADER + len as u64;
    if next > end {
        return None;
    }
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, off + HEADER).ok()?;
    (checksum(&payload) == read_u32(&h, 8)).then_some((payload, next))
}

/// Reads the frame at `off`; on damage, looks for the next good frame.
pub(crate) fn frame_at<R: ReadAt + ?Sized>(file: &R, off: u64, end: u64) -> Frame {
    if off >= end {
        return Frame::End;
    }
    if let Some((p, next)) = good_frame_at(file, off, end) {
        return Frame::Good(p, next);
    }
    // Scan forward for the magic, then check the frame there.
    let magic = MAGIC.to_le_bytes();
    let mut from = off + 1;
    let mut buf = vec![0u8; SCAN_CHUNK];
    while from + HEADER <= end {
        let n = (SCAN_CHUNK as u64).min(end - from) as usize;
        if file.read_exact_at(&mut buf[..n], from).is_err() {
            return Frame::Torn;
        }
        for i in 0..n.saturating_sub(3) {
            if buf[i..i + 4] == magic {
                let at = from + i as u64;
                if good_frame_at(file, at, end).is_some() {
                    return Frame::Skip(at);
                }
            }
        }
        // Overlap by 3 so a magic across chunks is seen.
        from += (n as u64).saturating_sub(3).max(1);
    }
    Frame::Torn
}

/// Counts good records from `from`, damaged regions, whether the tail is
/// torn, and where the last good frame ends.
pub(crate) fn scan<R: ReadAt + ?Sized>(file: &R, from: u64, end: u64) -> (u64, u64, u64, bool) {
    let (mut records, mut corrupt, mut off) = (0, 0, from);
    let mut last_end = from;
    loop {
        match frame_at(file, off, end) {
            Frame::Good(_, next) => {
                records += 1;
                off = next;
                last_end = next;
            }
            Frame::Skip(next) => {
                corrupt += 1;
                off = next;
            }
            Frame::Torn => return (records, last_end, corrupt, true),
            Frame::End => return (records, last_end, corrupt, false),
        }
    }
}

fn read_ack(path: &Path) -> Option<Pos> {
    parse_ack(&fs::read(path).ok()?)
}

/// The ack file's bytes → the done position, None if damaged.
pub(crate) fn parse_ack(b: &[u8]) -> Option<Pos> {
    if b.len() != 24 || read_u32(b, 0) != ACK_MAGIC {
        return None;
    }
    if crc32c::crc32c(&b[..20]) != read_u32(b, 20) {
        return None;
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[4..12]);
    let seg = u64::from_le_bytes(w);
    w.copy_from_slice(&b[12..20]);
    Some(Pos {
        seg,
        off: u64::from_le_bytes(w),
    })
}

fn write_ack(dir: &Path, pos: Pos) -> Result<(), SpoolError> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&ACK_MAGIC.to_le_bytes());
    b.extend_from_slice(&pos.seg.to_le_bytes());
    b.extend_from_slice(&pos.off.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("ack.tmp");
    // No fsync of the ack file: a lost or stale one only means records
    // already in Kafka are sent again (at-least-once), never a loss.
    fs::write(&tmp, &b).map_err(io_err(&tmp))?;
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: max,
            sync_every: Duration::from_millis(1000),
        }
    }

    fn payload(i: u32) -> Vec<u8> {
        format!("record-{i:05}-{}", "x".repeat((i % 37) as usize)).into_bytes()
    }

    fn drain(s: &mut Spool) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let got = s.read(7);
            if got.is_empty() {
                return all;
            }
            for (t, p) in got {
                s.done(t);
                all.push(p);
            }
        }
    }

    fn segs(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replays_unacknowledged_records_in_order_after_reopen() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for i in 0..100 {
                s.append(&payload(i)).unwrap();
            }
            // First 30 delivered, 30..40 handed out but not acknowledged.
            let got = s.read(40);
            for (t, _) in &got[..30] {
                s.done(*t);
            }
            assert_eq!(s.stats().pending, 70);
            s.sync(t0 + Duration::from_secs(2)).unwrap();
        }
        let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
        assert_eq!(s.stats().recovered, 70);
        let all = drain(&mut s);
        let want: Vec<Vec<u8>> = (30..100).map(payload).collect();
        assert_eq!(all, want);
        // New records follow the old ones.
        s.append(b"new").unwrap();
        assert_eq!(drain(&mut s), vec![b"new".to_vec()]);
        s.sync(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(s.stats().pending, 0);
        // Only the active segment remains.
        assert_eq!(segs(d.path()).len(), 1);
    }

    #[test]
    fn out_of_order_acks_keep_the_earliest_pending() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for i in 0..10 {
                s.append(&payload(i)).unwrap();
            }
            let got = s.read(10);
            for (t, _) in got.iter().filter(|(t, _)| *t != 3) {
                s.done(*t);
            }
            assert_eq!(s.in_flight(), 1);
            s.done(99); // unknown tickets are ignored
            assert_eq!(s.in_flight(), 1);
            s.sync(t0 + Duration::from_secs(2)).unwrap();
        }
        let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
        // 3 and everything after it come back (at-least-once).
        assert_eq!(drain(&mut s), (3..10).map(payload).collect::<Vec<_>>());
    }

    #[test]
    fn periodic_commits_save_the_done_position_every_ack_interval_and_lose_nothing() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let reopen = |now| {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), now).unwrap();
            let n = drain(&mut s).len();
            drop(s);
            n
        };
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for i in 0..10 {
                s.append(&payload(i)).unwrap();
            }
            for (t, _) in s.read(4) {
                s.done(t);
            }
            // A commit one second in: data synced, the done position not yet.
            s.begin_sync(t0 + Duration::from_secs(1))
                .unwrap()
                .run()
                .unwrap();
            assert!(!d.path().join(ACK_FILE).exists());
        }
        // A crash here resends the 4 done records: duplicates, nothing lost.
        assert_eq!(reopen(t0), 10);
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for (t, _) in s.read(4) {
                s.done(t);
            }
            // Once ACK_EVERY has passed, a periodic commit saves it.
            s.begin_sync(t0 + ACK_EVERY).unwrap().run().unwrap();
        }
        assert_eq!(reopen(t0), 6);
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for (t, _) in s.read(2) {
                s.done(t);
            }
            // The final commit saves it whatever the interval.
            s.sync(t0 + Duration::from_millis(1)).unwrap();
        }
        assert_eq!(reopen(t0), 4);
    }

    #[test]
    fn a_stale_done_position_after_segments_were_deleted_loses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let pending = |run: u32| (run * 100_000..run * 100_000 + 5).map(payload);
        let mut next = 0;
        for run in 1..=4u32 {
            let mut s = Spool::open(cfg(d.path(), 64 * 1024), t0).unwrap();
            let got = drain(&mut s);
            if run > 1 {
                // Everything the last run left pending is back (done ones may repeat).
                for p in pending(run - 1) {
                    assert!(
                        got.contains(&p),
                        "run {run}: {:?} lost",
                        String::from_utf8_lossy(&p)
                    );
                }
            }
            if run == 2 {
                // The final commit: the done position saved now is stale later.
                s.sync(t0 + sec).unwrap();
            }
            // Many records over several segments, all done: a commit deletes
            // their segments while the saved done position stays behind.
            for i in 0..1000 {
                s.append(&payload(next + i)).unwrap();
            }
            next += 1000;
            drain(&mut s);
            s.begin_sync(t0 + 2 * sec).unwrap().run().unwrap();
            for p in pending(run) {
                s.append(&p).unwrap();
            }
            s.begin_sync(t0 + 3 * sec).unwrap().run().unwrap();
            // Crash: no final commit.
        }
    }

    #[test]
    fn group_commit_waits_for_the_interval() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
        assert!(!s.sync_due(t0 + Duration::from_secs(5)), "nothing written");
        s.append(b"a").unwrap();
        assert!(!s.sync_due(t0 + Duration::from_millis(999)));
        assert!(s.sync_due(t0 + Duration::from_millis(1000)));
        s.sync(t0 + Duration::from_millis(1000)).unwrap();
        assert!(!s.sync_due(t0 + Duration::from_millis(2500)));
        s.append(b"b").unwrap();
        assert!(!s.sync_due(t0 + Duration::from_millis(1500)));
        assert!(s.sync_due(t0 + Duration::from_millis(2000)));
    }

    #[test]
    fn full_spool_drops_the_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let max = 64 * 1024;
        let mut s = Spool::open(cfg(d.path(), max), t0).unwrap();
        let big = vec![7u8; 500];
        for i in 0..1000u32 {
            let mut p = big.clone();
            p[..4].copy_from_slice(&i.to_le_bytes());
            s.append(&p).unwrap();
            assert!(s.stats().bytes <= max, "bytes {} > {max}", s.stats().bytes);
        }
        let st = s.stats();
        assert!(st.dropped > 0);
        assert_eq!(st.dropped + st.pending, 1000);
        let all = drain(&mut s);
        assert_eq!(all.len() as u64, st.pending);
        // What is left is the newest, in order, ending with the last one.
        let ids: Vec<u32> = all
            .iter()
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect();
        assert_eq!(*ids.last().unwrap(), 999);
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(s.append(&vec![0u8; MAX_RECORD + 1]).is_err());
    }

    #[test]
    fn drop_while_records_are_out_keeps_counts_straight() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut s = Spool::open(cfg(d.path(), 32 * 1024), t0).unwrap();
        for i in 0..20 {
            s.append(&payload(i)).unwrap();
        }
        let out = s.read(5);
        for i in 20..2000 {
            s.append(&payload(i)).unwrap();
        }
        for (t, _) in out {
            s.done(t);
        }
        let st = s.stats();
        let rest = drain(&mut s);
        assert_eq!(st.pending, rest.len() as u64);
        assert_eq!(st.pending + st.dropped + 5, 2000);
        s.sync(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(s.stats().pending, 0);
    }

    #[test]
    fn torn_tail_is_discarded_and_corrupt_middle_skipped() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        {
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            for i in 0..10 {
                s.append(&payload(i)).unwrap();
            }
            s.sync(t0 + Duration::from_secs(2)).unwrap();
        }
        let seg = segs(d.path()).pop().unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        // Flip a payload byte of record 3 and cut record 9 in half.
        let mut off = 0usize;
        let mut starts = Vec::new();
        while off < bytes.len() {
            starts.push(off);
            off += 12 + read_u32(&bytes, off + 4) as usize;
        }
        bytes[starts[3] + 14] ^= 0xff;
        bytes.truncate(starts[9] + 9);
        fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
        let st = s.stats();
        assert_eq!((st.corrupt, st.torn, st.recovered), (1, 1, 8));
        let want: Vec<Vec<u8>> = [0, 1, 2, 4, 5, 6, 7, 8].into_iter().map(payload).collect();
        assert_eq!(drain(&mut s), want);
    }

    #[test]
    fn new_segments_never_number_below_a_stale_ack() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        write_ack(d.path(), Pos { seg: 5, off: 100 }).unwrap();
        {
            // Segments deleted by hand; the ack file stayed.
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            s.append(b"a").unwrap();
        }
        let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
        assert_eq!(drain(&mut s), vec![b"a".to_vec()]);
    }

    #[test]
    fn a_second_process_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _a = Spool::open(cfg(d.path(), 1 << 20), Instant::now()).unwrap();
        assert!(matches!(
            Spool::open(cfg(d.path(), 1 << 20), Instant::now()),
            Err(SpoolError::Locked(_))
        ));
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Fuzz-style: segment and ack files of random bytes, and good segments
    /// with random mutations (flips, cuts, inserted junk, forged magic).
    /// Opening and draining must never panic, must return only payloads
    /// that were written (a checksum collision aside), and good frames
    /// after damage must come back.
    #[test]
    fn reader_survives_arbitrary_bytes() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let t0 = Instant::now();
        for round in 0..300 {
            let d = tempfile::tempdir().unwrap();
            let written: Vec<Vec<u8>> = (0..(rng.next() % 40) as u32)
                .map(|i| {
                    let n = (rng.next() % 300) as usize;
                    (0..n).map(|j| (i as usize * 31 + j) as u8).collect()
                })
                .collect();
            {
                let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
                for p in &written {
                    s.append(p).unwrap();
                }
            }
            let mut segments = segs(d.path());
            let mut bytes = segments
                .pop()
                .map(|p| fs::read(p).unwrap())
                .unwrap_or_default();
            match round % 4 {
                0 => bytes = (0..(rng.next() % 4000)).map(|_| rng.next() as u8).collect(),
                1 => {
                    for _ in 0..(rng.next() % 6) {
                        if !bytes.is_empty() {
                            let i = (rng.next() as usize) % bytes.len();
                            bytes[i] ^= 1 << (rng.next() % 8);
                        }
                    }
                }
                2 => {
                    let at = if bytes.is_empty() {
                        0
                    } else {
                        (rng.next() as usize) % bytes.len()
                    };
                    let junk: Vec<u8> = (0..(rng.next() % 50))
                        .flat_map(|_| {
                            if rng.next().is_multiple_of(3) {
                                MAGIC.to_le_bytes().to_vec()
                            } else {
                                vec![rng.next() as u8]
                            }
                        })
                        .collect();
                    bytes.splice(at..at, junk);
                }
                _ => {
                    let keep = (rng.next() as usize) % (bytes.len() + 1);
                    bytes.truncate(keep);
                }
            }
            fs::write(d.path().join("00000000000000000001.seg"), &bytes).unwrap();
            if round % 5 == 0 {
                let junk: Vec<u8> = (0..(rng.next() % 30)).map(|_| rng.next() as u8).collect();
                fs::write(d.path().join(ACK_FILE), junk).unwrap();
            }
            let mut s = Spool::open(cfg(d.path(), 1 << 20), t0).unwrap();
            let got = drain(&mut s);
            assert_eq!(got.len() as u64, s.stats().recovered, "round {round}");
            for p in &got {
                assert!(written.contains(p), "round {round}: invented a record");
            }
            if round % 4 == 3 {
                // A cut keeps a prefix, in order.
                assert_eq!(&written[..got.len()], &got[..], "round {round}");
            }
            if round % 4 == 2 {
                // Inserted junk costs at most the record it landed in.
                assert!(got.len() + 1 >= written.len(), "round {round}");
            }
        }
    }
}
