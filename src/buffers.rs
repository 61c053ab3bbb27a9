//! Connection buffers for our ureq transports, kept by each thread and reused
//! from probe to probe.
//!
//! ureq's `LazyBuffers` allocates and zero-fills a fresh input and output
//! buffer for every connection: 81 KiB per HTTP probe and twice that per
//! HTTPS probe (the TCP transport's and the TLS transport's). Zeroing and
//! faulting in those pages was the largest copy cost of a probe, and on musl
//! the one that made the static binary dearer than the glibc build (issue 12).
//! Here a worker zero-fills its buffers once; each connection then starts
//! from empty cursors over memory already mapped. Nothing is shared between
//! connections but that memory: every probe still opens a fresh connection.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use ureq::unversioned::transport::Buffers;

/// An HTTPS probe holds two pairs (TCP's and TLS's).
const KEEP: usize = 4;

/// Spares kept by all threads together (16 workers' worth, ~2.6 MB at most):
/// with `-W 1024` idle workers must not each keep their own.
const MAX_KEPT: usize = 64;

/// Spares kept now, all threads together.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// A thread's spares; they leave the count when the thread ends.
struct Spare(Vec<Vec<u8>>);

impl Drop for Spare {
    fn drop(&mut self) {
        KEPT.fetch_sub(self.0.len(), Ordering::Relaxed);
    }
}

/// ureq's minimum scratch space for reading a request body (its
/// `LazyBuffers::tmp_and_output`).
const MIN_TMP: usize = 10 * 1024;

thread_local! {
    static SPARE: RefCell<Spare> = const { RefCell::new(Spare(Vec::new())) };
}

/// A spare buffer of exactly `size` bytes, or a new zeroed one.
fn take(size: usize) -> Vec<u8> {
    let reused = SPARE
        .try_with(|spare| {
            let spare = &mut spare.borrow_mut().0;
            let i = spare.iter().position(|b| b.len() == size)?;
            KEPT.fetch_sub(1, Ordering::Relaxed);
            Some(spare.swap_remove(i))
        })
        .ok()
        .flatten();
    reused.unwrap_or_else(|| vec![0; size])
}

/// Keeps `buf` for this thread's next connection (the oldest spare goes if
/// the thread has enough; freed if all threads together have `MAX_KEPT`, or
/// during thread exit).
fn give_back(buf: Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let spare = &mut spare.borrow_mut().0;
        if spare.len() >= KEEP {
            spare.remove(0);
        } else if KEPT.load(Ordering::Relaxed) >= MAX_KEPT {
            return;
        } else {
            KEPT.fetch_add(1, Ordering::Relaxed);
        }
        spare.push(buf);
    });
}

/// ureq's `Buffers` (same semantics as its `LazyBuffers`) over reused memory.
#[derive(Debug)]
pub struct Reused {
    input: Vec<u8>,
    /// Bytes of `input` holding data, and how many of those ureq consumed.
    filled: usize,
    consumed: usize,
    output: Vec<u8>,
    /// Whether the last `input_consume` took anything (ureq's `can_use_input`).
    progress: bool,
}

impl Reused {
    pub fn new(input: usize, output: usize) -> Reused {
        Reused {
            input: take(input.max(1)),
            filled: 0,
            consumed: 0,
            output: take(output.max(1)),
            progress: false,
        }
    }

    /// Moves unconsumed bytes to the front when that frees useful room
    /// (as ureq's `ConsumeBuf::maybe_shift`).
    fn shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.input));
        give_back(std::mem::take(&mut self.output));
    }
}

impl Buffers for Reused {
    fn output(&mut self) -> &mut [u8] {
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.shift();
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.shift();
        let free = self.input.len() - self.filled;
        if free < MIN_TMP {
            // Only when the peer sent a lot before we asked (ureq's own comment
            // calls it pathological); such a buffer is not reused at this size.
            self.input.resize(self.filled + MIN_TMP, 0);
        }
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.filled > self.consumed && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests that look at what is kept run one at a time (the count is
    /// shared by all threads of the test binary).
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn cursors_behave_as_ureqs_lazy_buffers() {
        let mut b = Reused::new(16, 8);
        assert_eq!(b.output().len(), 8);
        assert!(b.input().is_empty());
        b.input_append_buf()[..5].copy_from_slice(b"hello");
        b.input_appended(5);
        assert_eq!(b.input(), b"hello");
        assert!(!b.can_use_input(), "nothing consumed yet");
        b.input_consume(2);
        assert_eq!(b.input(), b"llo");
        assert!(b.can_use_input());
        // More than half full with 2 consumed: the rest moves to the front.
        b.input_append_buf()[..6].copy_from_slice(b" world");
        b.input_appended(6);
        assert_eq!(b.input(), b"llo world");
        // 11 of 16 filled, 2 consumed: asking for room moves the 9 to the front.
        assert_eq!(b.input_append_buf().len(), 16 - 9);
        assert_eq!(b.input(), b"llo world");
        let free = b.input_append_buf().len();
        b.input_consume(3);
        assert_eq!(b.input_append_buf().len(), free + 3, "shifted");
        assert_eq!(b.input(), b" world");
        // Over-long counts are clamped, never a panic.
        b.input_consume(100);
        assert!(b.input().is_empty());
        assert_eq!(
            b.input_append_buf().len(),
            16,
            "all consumed: cursors reset"
        );
        b.input_appended(1000);
        assert_eq!(b.input().len(), 16);
    }

    #[test]
    fn tmp_space_is_at_least_ureqs_minimum() {
        let mut b = Reused::new(64, 8);
        let (tmp, out) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP);
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn a_thread_reuses_its_buffers_and_a_new_connection_starts_empty() {
        let _serial = serial();
        std::thread::spawn(|| {
            let first = {
                let mut b = Reused::new(4096, 1024);
                b.input_append_buf()[..3].copy_from_slice(b"old");
                b.input_appended(3);
                b.input.as_ptr() as usize
            };
            let mut b = Reused::new(4096, 1024);
            assert_eq!(b.input.as_ptr() as usize, first, "same memory again");
            assert!(b.input().is_empty(), "no bytes carried over");
            assert_eq!(b.input_append_buf().len(), 4096);
            // Two at once (HTTPS): the second gets its own memory.
            let c = Reused::new(4096, 1024);
            assert_ne!(c.input.as_ptr(), b.input.as_ptr());
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn the_pool_stays_bounded() {
        let _serial = serial();
        std::thread::spawn(|| {
            let many: Vec<Reused> = (0..10).map(|_| Reused::new(100, 10)).collect();
            drop(many);
            let kept = SPARE.with(|s| s.borrow().0.len());
            assert_eq!(kept, KEEP);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn many_threads_together_keep_at_most_max_kept() {
        let _serial = serial();
        let n = 40;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    let four: Vec<Reused> = (0..4).map(|_| Reused::new(1000, 100)).collect();
                    drop(four);
                    b.wait(); // all alive, each holding what it kept
                    b.wait();
                })
            })
            .collect();
        barrier.wait();
        // Other tests' threads may hold a few; 40 threads x 8 would be 320.
        let kept = KEPT.load(Ordering::Relaxed);
        assert!(kept <= MAX_KEPT + 16, "{kept}");
        barrier.wait();
        for t in threads {
            t.join().expect("thread");
        }
    }
}
