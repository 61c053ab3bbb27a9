//! The default sink: one JSON object per line on stdout, written by its own
//! thread behind a bounded buffer so that a slow or stalled reader never
//! blocks the workers or the scheduler.
//!
//! Each wake-up writes every waiting record at once (a reader sees each probe
//! as it happens). Under load (records arrived while it wrote) the writer
//! pauses [`COALESCE`] before its next write instead of waking per record
//! (less if half the buffer fills meanwhile).
//! Beyond `capacity` waiting records the oldest are dropped,
//! counted and logged at most once per [`DROP_LOG_EVERY`]. A write error other
//! than a closed pipe (ENOSPC, EIO) ends the run; a line cut short by it is
//! taken back where the output is a regular file, so the output never ends in
//! a partial line.

use super::Sink;
use crate::report::Report;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer's pause between writes while records keep arriving: at
/// 1,000 records/s it wakes ~100 times a second rather than 1,000, and no
/// line waits longer than this for its reader.
pub const COALESCE: Duration = Duration::from_millis(10);

/// Overflow is logged at most this often (with the count since the last line).
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Where lines go: stdout in production, a buffer or a failing writer in tests.
pub trait Output: Write + Send + 'static {
    /// Takes back the last `bytes` written (the torn end of a failed write),
    /// if this output can; returns whether it did.
    fn unwrite(&mut self, bytes: u64) -> bool;
}

/// Stdout as a file of its own (a duplicate of fd 1), so that writes bypass
/// std's locked, line-buffered `Stdout` and a regular file can be truncated.
pub struct StdoutFile(std::fs::File);

impl StdoutFile {
    pub fn open() -> io::Result<StdoutFile> {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(StdoutFile(std::fs::File::from(fd)))
    }
}

impl Write for StdoutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output for StdoutFile {
    fn unwrite(&mut self, bytes: u64) -> bool {
        use std::io::Seek;
        let Ok(meta) = self.0.metadata() else {
            return false;
        };
        if !meta.is_file() {
            return false;
        }
        let len = meta.len();
        let Some(keep) = len.checked_sub(bytes) else {
            return false;
        };
        self.0.set_len(keep).is_ok() && self.0.seek(io::SeekFrom::Start(keep)).is_ok()
    }
}

/// How the output ended early, for the process to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The reader went away (EPIPE): stop quietly.
    ReaderGone,
    /// A write failed: stop with a failure.
    Failed(String),
}

struct State {
    waiting: VecDeque<Report>,
    closing: bool,
    /// The writer thread has returned.
    finished: bool,
    ended: Option<End>,
    written: u64,
    /// Dropped from a full buffer.
    dropped: u64,
    /// Lost to a write error, or emitted after the output ended.
    unwritten: u64,
    dropped_unlogged: u64,
    last_drop_log: Option<Instant>,
    /// Records the writer has taken and not yet accounted for.
    in_hand: u64,
    /// The writer waits for a record (only then does `emit` wake it).
    idle: bool,
    /// The writer pauses between writes (`emit` wakes it at half capacity).
    pausing: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer: records waiting, or closing.
    wake: Condvar,
    /// Signals `close`: the writer finished.
    done: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// JSON lines to an [`Output`] from a writer thread.
pub struct JsonLines {
    shared: Arc<Shared>,
    flush_timeout: Duration,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl JsonLines {
    /// Starts the writer thread. `capacity`: records that may wait; `on_end`
    /// is called once if the output ends early; `flush_timeout` bounds `close`.
    pub fn start(
        out: impl Output,
        capacity: usize,
        flush_timeout: Duration,
        on_end: Box<dyn Fn(End) + Send>,
    ) -> io::Result<JsonLines> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                closing: false,
                finished: false,
                ended: None,
                written: 0,
                dropped: 0,
                unwritten: 0,
                dropped_unlogged: 0,
                last_drop_log: None,
                in_hand: 0,
                idle: false,
                pausing: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            capacity: capacity.max(1),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("stdout".into())
                .spawn(move || {
                    let run = crate::panics::catch(|| write_loop(&shared, out, &*on_end));
                    if let Err(caught) = run {
                        writer_died(&shared, &*on_end, &caught);
                    }
                })?
        };
        Ok(JsonLines {
            shared,
            flush_timeout,
            writer: Mutex::new(Some(writer)),
        })
    }
}

/// The writer thread: takes everything waiting, writes it as one block.
fn write_loop(shared: &Shared, mut out: impl Output, on_end: &dyn Fn(End)) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut batch = VecDeque::new();
    loop {
        {
            let mut st = shared.lock();
            while st.waiting.is_empty() && !st.closing {
                st.idle = true;
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.idle = false;
            if st.waiting.is_empty() {
                break;
            }
            std::mem::swap(&mut st.waiting, &mut batch);
            st.in_hand = batch.len() as u64;
        }
        #[cfg(debug_assertions)]
        crate::panics::forced("@stdout");
        buf.clear();
        for report in &batch {
            report.write_json_line(&mut buf);
        }
        let count = batch.len() as u64;
        batch.clear();
        // Keep a burst's capacity, not a stall's.
        batch.shrink_to(1024);
        match write_block(&mut out, &buf) {
            Ok(()) => {
                let mut st = shared.lock();
                st.written += count;
                st.in_hand = 0;
                if !st.waiting.is_empty() && !st.closing {
                    // The pause ends early once half the buffer waits, so a
                    // small --buffer that the writer keeps up with drops nothing.
                    let until = Instant::now() + COALESCE;
                    st.pausing = true;
                    while !st.closing && st.waiting.len() * 2 < shared.capacity {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        st = shared
                            .wake
                            .wait_timeout(st, left)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    st.pausing = false;
                }
            }
            Err((e, sent)) => {
                let whole = buf[..sent].iter().filter(|&&b| b == b'\n').count() as u64;
                let last_nl = buf[..sent].iter().rposition(|&b| b == b'\n');
                let torn = sent - last_nl.map_or(0, |i| i + 1);
                let gone = e.kind() == io::ErrorKind::BrokenPipe;
                let untorn = gone || torn == 0 || out.unwrite(torn as u64);
                let mut st = shared.lock();
                st.in_hand = 0;
                let lost = count - whole + st.waiting.len() as u64;
                st.waiting.clear();
                st.written += whole;
                st.unwritten += lost;
                let end = if gone {
                    log::debug!("stdout closed by its reader; stopping");
                    End::ReaderGone
                } else {
                    End::Failed(format!(
                        "cannot write to stdout: {}; {lost} record(s) not written{}",
                        os_message(&e),
                        if untorn {
                            ""
                        } else {
                            " (the last line is cut short)"
                        }
                    ))
                };
                st.ended = Some(end.clone());
                drop(st);
                on_end(end);
                break;
            }
        }
    }
    let mut st = shared.lock();
    st.finished = true;
    drop(st);
    shared.done.notify_all();
}

/// The writer panicked (a bug): the run ends with exit 1 saying so, and
/// what waits is counted as not written (close() then does not wait).
fn writer_died(shared: &Shared, on_end: &dyn Fn(End), caught: &crate::panics::Caught) {
    let mut st = shared.lock();
    let lost = st.waiting.len() as u64 + std::mem::take(&mut st.in_hand);
    st.waiting.clear();
    st.unwritten += lost;
    let end = End::Failed(format!(
        "the stdout writer failed (a bug): {caught}; {lost} record(s) not written"
    ));
    st.ended = Some(end.clone());
    st.finished = true;
    drop(st);
    shared.done.notify_all();
    on_end(end);
}

/// Writes `buf` whole; on failure, the error and how many bytes went out.
fn write_block(out: &mut impl Output, buf: &[u8]) -> Result<(), (io::Error, usize)> {
    let mut sent = 0;
    while sent < buf.len() {
        match out.write(&buf[sent..]) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), sent)),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, sent)),
        }
    }
    Ok(())
}

/// "No space left on device" rather than "... (os error 28)".
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl Sink for JsonLines {
    fn emit(&self, report: Report) {
        let mut st = self.shared.lock();
        if st.ended.is_some() || st.closing {
            st.unwritten += 1;
            return;
        }
        if st.waiting.len() >= self.shared.capacity {
            st.waiting.pop_front();
            st.dropped += 1;
            st.dropped_unlogged += 1;
            let now = Instant::now();
            if st
                .last_drop_log
                .is_none_or(|at| now.duration_since(at) >= DROP_LOG_EVERY)
            {
                log::warn!(
                    "stdout is not keeping up: {} oldest record(s) dropped (buffer of {} full)",
                    st.dropped_unlogged,
                    self.shared.capacity
                );
                st.dropped_unlogged = 0;
                st.last_drop_log = Some(now);
            }
        }
        st.waiting.push_back(report);
        let wake = st.idle || (st.pausing && st.waiting.len() * 2 >= self.shared.capacity);
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Waits up to the flush timeout for every waiting record to be written.
    /// Ok unless records were dropped or not written (a closed pipe is Ok).
    fn close(&self) -> Result<String, String> {
        let deadline = Instant::now() + self.flush_timeout;
        let mut st = self.shared.lock();
        st.closing = true;
        self.shared.wake.notify_all();
        while !st.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .shared
                .done
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let finished = st.finished;
        let stalled = if finished {
            0
        } else {
            // Blocked in a write to a reader that stopped reading: those records
            // and the ones behind them are not written; the thread is left behind.
            st.waiting.len() as u64
        };
        let (written, dropped, unwritten, ended) =
            (st.written, st.dropped, st.unwritten, st.ended.clone());
        drop(st);
        if finished && let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
        let mut msg = format!("stdout: {written} record(s) written");
        if dropped > 0 {
            msg.push_str(&format!(
                ", {dropped} dropped while the reader was not keeping up"
            ));
        }
        if !finished {
            msg.push_str(&format!(
                ", {} not written: the reader did not take them within the flush timeout ({:.1} s)",
                stalled + unwritten,
                self.flush_timeout.as_secs_f64()
            ));
            return Err(msg);
        }
        match ended {
            Some(End::ReaderGone) => Ok(format!("{msg}; stdout closed by its reader")),
            Some(End::Failed(e)) => Err(format!("{msg}; {e}")),
            None if dropped > 0 || unwritten > 0 => Err(msg),
            None => Ok(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A buffer shared with the test; accepts at most `room` bytes, then fails
    /// with ENOSPC (a full disk), taking a short write first like a file would.
    #[derive(Clone)]
    struct Disk {
        data: Arc<Mutex<Vec<u8>>>,
        room: usize,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Disk {
        fn new(room: usize) -> Disk {
            Disk {
                data: Arc::default(),
                room,
                gate: Arc::new((Mutex::new(true), Condvar::new())),
            }
        }
        fn text(&self) -> String {
            String::from_utf8(self.data.lock().expect("lock").clone()).expect("utf8")
        }
        fn set_open(&self, open: bool) {
            *self.gate.0.lock().expect("lock") = open;
            self.gate.1.notify_all();
        }
    }

    impl Write for Disk {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut open = self.gate.0.lock().expect("lock");
            while !*open {
                open = self.gate.1.wait(open).expect("wait");
            }
            let mut data = self.data.lock().expect("lock");
            let left = self.room - data.len();
            if left == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = b.len().min(left);
            data.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output for Disk {
        fn unwrite(&mut self, bytes: u64) -> bool {
            let mut data = self.data.lock().expect("lock");
            let keep = data.len() - bytes as usize;
            data.truncate(keep);
            true
        }
    }

    fn report(i: usize) -> Report {
        Report {
            url: format!("http://a.test/{i}"),
            ..Report::default()
        }
    }

    type Seen = Arc<Mutex<Vec<End>>>;

    fn ends() -> (Seen, Box<dyn Fn(End) + Send>) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        (seen, Box::new(move |e| s.lock().expect("lock").push(e)))
    }

    #[test]
    fn writes_one_line_per_report() {
        let disk = Disk::new(usize::MAX / 2);
        let (seen, on_end) = ends();
        let sink =
            JsonLines::start(disk.clone(), 100, Duration::from_secs(5), on_end).expect("start");
        for i in 0..3 {
            sink.emit(report(i));
        }
        assert_eq!(sink.close(), Ok("stdout: 3 record(s) written".to_string()));
        let text = disk.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert_eq!(v["url"], format!("http://a.test/{i}"));
        }
        assert!(seen.lock().expect("lock").is_empty());
    }

    #[test]
    fn full_disk_fails_without_a_torn_line() {
        // Room for a couple of records, the next one torn; all ten in one batch.
        let disk = Disk::new(1000);
        disk.set_open(false);
        let (seen, on_end) = ends();
        let sink =
            JsonLines::start(disk.clone(), 100, Duration::from_secs(5), on_end).expect("start");
        for i in 0..10 {
            sink.emit(report(i));
        }
        disk.set_open(true);
        let err = sink.close().expect_err("must fail");
        assert!(err.contains("No space left on device"), "{err}");
        let text = disk.text();
        assert!(text.is_empty() || text.ends_with('\n'), "torn: {text:?}");
        let written = text.lines().count();
        assert!(
            err.contains(&format!("{written} record(s) written")),
            "{err}"
        );
        assert!(
            err.contains(&format!("{} record(s) not written", 10 - written)),
            "{err}"
        );
        assert!(matches!(seen.lock().expect("lock")[..], [End::Failed(_)]));
    }

    #[test]
    fn stalled_reader_never_blocks_emit_and_close_is_bounded() {
        let disk = Disk::new(usize::MAX / 2);
        disk.set_open(false);
        let (_seen, on_end) = ends();
        let sink =
            JsonLines::start(disk.clone(), 5, Duration::from_millis(200), on_end).expect("start");
        let t0 = Instant::now();
        for i in 0..1000 {
            sink.emit(report(i));
        }
        assert!(t0.elapsed() < Duration::from_secs(2));
        let t1 = Instant::now();
        let err = sink.close().expect_err("stalled");
        assert!(t1.elapsed() < Duration::from_secs(2));
        assert!(
            err.contains("dropped while the reader was not keeping up"),
            "{err}"
        );
        assert!(err.contains("not written"), "{err}");
        disk.set_open(true);
    }

    #[test]
    fn a_small_buffer_that_keeps_up_loses_nothing_to_the_coalescing_pause() {
        // --buffer 16 and records every 0.5 ms: the writer keeps up easily,
        // but not if it sleeps COALESCE (10 ms) while the buffer fills.
        let disk = Disk::new(usize::MAX / 2);
        disk.set_open(false);
        let (_seen, on_end) = ends();
        let sink =
            JsonLines::start(disk.clone(), 16, Duration::from_secs(5), on_end).expect("start");
        // The writer takes record 0 and waits in its write; 1 and 2 queue
        // behind it, so after the write it sees records waiting (busy).
        sink.emit(report(0));
        std::thread::sleep(Duration::from_millis(20));
        sink.emit(report(1));
        sink.emit(report(2));
        disk.set_open(true);
        for i in 3..30 {
            sink.emit(report(i));
            std::thread::sleep(Duration::from_micros(500));
        }
        assert_eq!(sink.close(), Ok("stdout: 30 record(s) written".to_string()));
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let disk = Disk::new(usize::MAX / 2);
        disk.set_open(false);
        let (_seen, on_end) = ends();
        let sink =
            JsonLines::start(disk.clone(), 3, Duration::from_secs(5), on_end).expect("start");
        // The writer may already hold the first record in its batch.
        for i in 0..10 {
            sink.emit(report(i));
        }
        disk.set_open(true);
        let err = sink.close().expect_err("dropped records fail the run");
        assert!(err.contains("dropped"), "{err}");
        let urls: Vec<String> = disk
            .text()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["url"].as_str().expect("url").to_string()
            })
            .collect();
        // The newest three always survive.
        assert!(
            urls.ends_with(&[
                "http://a.test/7".to_string(),
                "http://a.test/8".to_string(),
                "http://a.test/9".to_string()
            ]),
            "{urls:?}"
        );
    }

    struct Broken(Arc<AtomicU64>);
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Output for Broken {
        fn unwrite(&mut self, _: u64) -> bool {
            false
        }
    }

    #[test]
    fn broken_pipe_ends_once_and_quietly() {
        let writes = Arc::new(AtomicU64::new(0));
        let (seen, on_end) = ends();
        let sink = JsonLines::start(Broken(writes.clone()), 10, Duration::from_secs(5), on_end)
            .expect("start");
        sink.emit(report(0));
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.lock().expect("lock").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        sink.emit(report(1));
        assert!(sink.close().is_ok());
        assert_eq!(*seen.lock().expect("lock"), vec![End::ReaderGone]);
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }
}
