//! How the producer thread is woken: records arrived while it had nothing to
//! do, records are piling up, or the producer is closing.
//!
//! The thread sleeps until its next deadline (a batch's linger, a retry, a
//! metadata refresh). A record that arrives while a batch is lingering does
//! not wake it: the record is taken when the linger ends. So at 10 records a
//! second with a 1 s linger the thread wakes a few times per batch, not
//! several times per record (issue 10's cost: each wake-up of a thread is
//! ~20 µs of CPU on the machines measured). Waits park at once (a mutex and
//! a condition variable; crossbeam's timed receive spins and yields first).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why the bell rings, in rising order: a thread asleep wakes for rings at
/// or above the level it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ring {
    /// A record was queued: wakes a thread that holds none.
    Record,
    /// Half the buffer waits: wakes a lingering thread too.
    Urgent,
    /// Closing: wakes the thread whatever it waits for.
    Close,
}

#[derive(Default)]
struct State {
    /// The level the sleeping thread wakes for (None: not asleep).
    asleep_for: Option<Ring>,
    /// The highest ring since the thread last looked.
    rung: Option<Ring>,
    /// When the first record since the thread last looked arrived.
    since: Option<Instant>,
}

#[derive(Default)]
pub struct Doorbell {
    state: Mutex<State>,
    cond: Condvar,
}

impl Doorbell {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called after a record was queued (`Record`, `Urgent`) or at close.
    pub fn ring(&self, why: Ring) {
        let mut s = self.lock();
        if why != Ring::Close && s.since.is_none() {
            s.since = Some(Instant::now());
        }
        s.rung = s.rung.max(Some(why));
        if s.asleep_for.is_some_and(|level| why >= level) {
            self.cond.notify_one();
        }
    }

    /// Called by the thread before it looks for records: what arrives from
    /// now on rings again. Returns when the first record since the last
    /// `clear` arrived (a lingering thread takes records late, and their
    /// linger counts from their arrival).
    pub fn clear(&self) -> Option<Instant> {
        let mut s = self.lock();
        s.rung = None;
        s.since.take()
    }

    /// Sleeps up to `wait`, or until a ring at `wake_for` or above (one
    /// since the last `clear` ends it at once). `Record` when the thread
    /// holds no records, `Urgent` while a batch lingers, `Close` while it
    /// cannot take records at all (no broker yet, no room): then records
    /// never wake it one by one. Returns whether it was woken.
    pub fn wait(&self, wait: Duration, wake_for: Ring) -> bool {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        loop {
            if s.rung >= Some(wake_for) {
                s.asleep_for = None;
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                s.asleep_for = None;
                return false;
            }
            s.asleep_for = Some(wake_for);
            s = match self.cond.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Runs `wait(100 ms, level)` on a thread, rings `why` 20 ms in:
    /// (woken, how long it slept).
    fn ring_while_asleep(level: Ring, why: Ring) -> (bool, Duration) {
        let bell = Arc::new(Doorbell::default());
        let b = bell.clone();
        let t = std::thread::spawn(move || {
            let t0 = Instant::now();
            (b.wait(Duration::from_millis(100), level), t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        bell.ring(why);
        t.join().expect("thread")
    }

    #[test]
    fn each_wait_wakes_for_its_level_and_above_only() {
        for (level, why, wakes) in [
            (Ring::Record, Ring::Record, true),
            (Ring::Urgent, Ring::Record, false),
            (Ring::Urgent, Ring::Urgent, true),
            (Ring::Close, Ring::Urgent, false),
            (Ring::Close, Ring::Close, true),
            (Ring::Record, Ring::Close, true),
        ] {
            let (woken, slept) = ring_while_asleep(level, why);
            assert_eq!(woken, wakes, "{level:?} woken by {why:?}");
            if wakes {
                assert!(slept < Duration::from_millis(90), "{slept:?}");
            } else {
                assert!(slept >= Duration::from_millis(100), "{slept:?}");
            }
        }
    }

    #[test]
    fn nothing_is_lost_between_look_and_sleep() {
        let bell = Doorbell::default();
        // A record queued after `clear` and before the wait: no sleep at all.
        bell.clear();
        bell.ring(Ring::Record);
        let started = Instant::now();
        assert!(bell.wait(Duration::from_secs(10), Ring::Record));
        assert!(started.elapsed() < Duration::from_secs(1));
        // It stays rung until the thread looks (clear), and says when it came.
        assert!(bell.wait(Duration::from_secs(10), Ring::Record));
        assert!(bell.clear().is_some());
        // Without anything since, the wait times out.
        assert!(!bell.wait(Duration::from_millis(10), Ring::Record));
        assert!(bell.clear().is_none());
        // Close is not a record.
        bell.ring(Ring::Close);
        assert!(bell.clear().is_none());
    }
}
