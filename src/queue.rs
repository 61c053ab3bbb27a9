//! The job queue between the scheduler and the workers: crossbeam's bounded
//! channel holds the jobs; idle workers wait on a condition variable.
//!
//! crossbeam's blocking `recv` spins and then calls `sched_yield` four times
//! before it parks (its `Backoff`), which on an idle worker is wasted work on
//! every probe (issue 12: 4 of the 12 `sched_yield` per probe). Here a worker
//! that finds the channel empty parks at once, and the scheduler wakes one
//! only when one is parked.

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct Bell {
    state: Mutex<BellState>,
    ring: Condvar,
}

#[derive(Default)]
struct BellState {
    /// Workers parked on `ring`.
    sleepers: usize,
    /// The sender is gone: nothing more will come.
    closed: bool,
}

impl Bell {
    fn lock(&self) -> MutexGuard<'_, BellState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded queue of `capacity` items (at least 1).
pub fn bounded<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let bell = Arc::new(Bell {
        state: Mutex::default(),
        ring: Condvar::new(),
    });
    (
        QueueSender {
            tx,
            bell: bell.clone(),
        },
        QueueReceiver { rx, bell },
    )
}

/// The scheduler's end. Dropping it closes the queue: receivers take what is
/// left, then get `None`.
pub struct QueueSender<T> {
    tx: Sender<T>,
    bell: Arc<Bell>,
}

impl<T> QueueSender<T> {
    /// Queues `item` without blocking, waking one parked receiver.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(item)?;
        // Taken after the push: a receiver that saw the queue empty is parked
        // (it checks under this lock), so the notification reaches it.
        if self.bell.lock().sleepers > 0 {
            self.bell.ring.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        self.bell.lock().closed = true;
        self.bell.ring.notify_all();
    }
}

/// A worker's end; clone one per worker.
pub struct QueueReceiver<T> {
    rx: Receiver<T>,
    bell: Arc<Bell>,
}

impl<T> Clone for QueueReceiver<T> {
    fn clone(&self) -> Self {
        QueueReceiver {
            rx: self.rx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> QueueReceiver<T> {
    /// The next item, waiting for one; `None` once the sender is gone and
    /// the queue is empty.
    pub fn recv(&self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            let mut st = self.bell.lock();
            // Again under the lock: a push before it is seen here, a push
            // after it finds this receiver parked and wakes it.
            match self.rx.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if st.closed => return None,
                Err(TryRecvError::Empty) => {}
            }
            st.sleepers += 1;
            st = self.bell.ring.wait(st).unwrap_or_else(|p| p.into_inner());
            st.sleepers -= 1;
        }
    }

    /// The items waiting now, without blocking.
    pub fn try_iter(&self) -> crossbeam_channel::TryIter<'_, T> {
        self.rx.try_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_arrive_in_order_and_the_queue_is_bounded() {
        let (tx, rx) = bounded(2);
        tx.try_send(1).expect("room");
        tx.try_send(2).expect("room");
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn parked_receivers_wake_for_each_item_and_end_when_the_sender_goes() {
        let (tx, rx) = bounded::<u32>(100);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(i) = rx.recv() {
                        got.push(i);
                    }
                    got
                })
            })
            .collect();
        // Sent one at a time with pauses, so receivers are parked in between.
        for i in 0..40 {
            tx.try_send(i).expect("room");
            if i % 8 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Items still queued when the sender goes are delivered first.
        drop(tx);
        let mut all: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_receiver_parked_on_an_empty_queue_ends_when_the_sender_goes() {
        let (tx, rx) = bounded::<u32>(1);
        let w = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
        assert_eq!(w.join().expect("worker"), None);
    }
}
