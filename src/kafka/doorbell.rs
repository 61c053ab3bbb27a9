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

#[derive(Default)]
struct State {
    /// The thread waits for records (it holds none), so any record wakes it.
    idle: bool,
    /// Something arrived since the thread last looked.
    pending: bool,
    /// A wake-up is owed (urgent, or pending while idle).
    rung: bool,
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

    /// Called after a record was queued: wakes the thread if it is idle, or
    /// if `urgent` (closing, or so many records wait that they must be taken).
    pub fn ring(&self, urgent: bool) {
        let mut s = self.lock();
        if !s.pending {
            s.since = Some(Instant::now());
        }
        s.pending = true;
        if urgent || s.idle {
            s.rung = true;
            self.cond.notify_one();
        }
    }

    /// Called by the thread before it looks for records: what arrives from
    /// now on is `pending` again. Returns when the first record since the
    /// last `clear` arrived (a lingering thread takes records late, and
    /// their linger counts from their arrival).
    pub fn clear(&self) -> Option<Instant> {
        let mut s = self.lock();
        s.pending = false;
        s.rung = false;
        s.since.take()
    }

    /// Sleeps up to `wait`. `idle`: the thread holds no records, so a record
    /// (already pending, or rung while asleep) ends the wait at once.
    /// Returns whether it was woken rather than timed out.
    pub fn wait(&self, wait: Duration, idle: bool) -> bool {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        if s.rung || (idle && s.pending) {
            s.rung = false;
            return true;
        }
        s.idle = idle;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                s.idle = false;
                return false;
            }
            s = match self.cond.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            if s.rung {
                s.rung = false;
                s.idle = false;
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_record_wakes_an_idle_thread_but_not_a_lingering_one() {
        let bell = Arc::new(Doorbell::default());
        let b = bell.clone();
        let idle = std::thread::spawn(move || b.wait(Duration::from_secs(10), true));
        std::thread::sleep(Duration::from_millis(20));
        bell.ring(false);
        assert!(idle.join().expect("thread"), "woken, not timed out");

        bell.clear();
        let b = bell.clone();
        let lingering = std::thread::spawn(move || {
            let t = Instant::now();
            (b.wait(Duration::from_millis(100), false), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        bell.ring(false);
        let (woken, took) = lingering.join().expect("thread");
        assert!(!woken && took >= Duration::from_millis(100), "{took:?}");
    }

    #[test]
    fn urgent_wakes_a_lingering_thread_and_nothing_is_lost_between_look_and_sleep() {
        let bell = Arc::new(Doorbell::default());
        let b = bell.clone();
        let t = std::thread::spawn(move || b.wait(Duration::from_secs(10), false));
        std::thread::sleep(Duration::from_millis(20));
        bell.ring(true);
        assert!(t.join().expect("thread"));
        // A record queued after `clear` and before the wait: no sleep at all.
        bell.clear();
        bell.ring(false);
        let started = Instant::now();
        assert!(bell.wait(Duration::from_secs(10), true));
        assert!(started.elapsed() < Duration::from_secs(1));
        // Without anything pending the wait times out.
        bell.clear();
        assert!(!bell.wait(Duration::from_millis(10), true));
    }
}
