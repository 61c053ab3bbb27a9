//! The scheduler: a binary heap of targets ordered by their next deadline on
//! the monotonic clock (pure logic, "now" passed in), reloading a new target
//! list without losing the phase of the targets kept, and the thread loop that
//! sleeps until the earliest deadline and hands due jobs to the workers.

use crate::targets::{Spec, Target};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A probe that fell due: which target, and the slot it was scheduled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index into the schedule's targets ([`Schedule::target`]).
    pub target: usize,
    /// The scheduled slot this probe stands for.
    pub deadline: Instant,
    /// Earlier slots of this target that were skipped because the scheduler
    /// woke too late for them (machine suspended, clock stall).
    pub missed: u64,
}

/// Targets ordered by next deadline. Ties fire in target order.
#[derive(Debug)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Inline, not one `Arc` each: a job carries a clone of its target (one
    /// small allocation per dispatch) so that a million idle targets cost
    /// 56 bytes each here rather than 88.
    targets: Vec<Target>,
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadSummary {
    pub added: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} unchanged",
            self.added, self.removed, self.unchanged
        )
    }
}

/// Deadlines spread evenly over `splay`: the `i`-th of `n` is pushed `splay * i / n` later.
fn splay_offset(splay: Duration, i: usize, n: usize) -> Duration {
    let offset = splay.as_nanos() * i as u128 / n.max(1) as u128;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

/// A target's identity across reloads: the same URL probed at the same
/// interval in the same way (method, headers, expectations).
fn identity(t: &Target) -> (&str, Duration, &Spec) {
    (t.url.request(), t.interval, &t.spec)
}

impl Schedule {
    /// Every target's first probe is due one interval after `start`, pushed
    /// later by an even share of `splay` so that many targets with the same
    /// interval do not all fire in the same instant.
    pub fn new(targets: Vec<Target>, start: Instant, splay: Duration) -> Schedule {
        let n = targets.len();
        let heap = targets
            .iter()
            .enumerate()
            .map(|(i, t)| Reverse((start + t.interval + splay_offset(splay, i, n), i)))
            .collect();
        Schedule { heap, targets }
    }

    /// Replaces the target list. A target kept (same URL and interval) keeps
    /// its next deadline, so its phase does not move; a new one is first due
    /// one interval after `now` plus its share of `splay`, as at start-up; a
    /// removed one is no longer scheduled (a probe of it in flight still reports).
    pub fn reload(&mut self, new: Vec<Target>, now: Instant, splay: Duration) -> ReloadSummary {
        let mut next: Vec<Option<Instant>> = vec![None; self.targets.len()];
        for Reverse((at, i)) in self.heap.iter() {
            next[*i] = Some(*at);
        }
        // Several lines may name the same URL and interval: match them in order.
        // A Spec's regex caches internally, but its Hash and Eq use only the
        // pattern text: the key cannot change while in the map.
        #[allow(clippy::mutable_key_type)]
        let mut old: HashMap<(&str, Duration, &Spec), VecDeque<usize>> = HashMap::new();
        for (i, t) in self.targets.iter().enumerate() {
            old.entry(identity(t)).or_default().push_back(i);
        }
        let mut kept: Vec<Option<usize>> = Vec::with_capacity(new.len());
        for t in &new {
            kept.push(old.get_mut(&identity(t)).and_then(VecDeque::pop_front));
        }
        let unchanged = kept.iter().flatten().count();
        let added = new.len() - unchanged;
        let summary = ReloadSummary {
            added,
            removed: self.targets.len() - unchanged,
            unchanged,
        };
        let mut targets = Vec::with_capacity(new.len());
        let mut heap = BinaryHeap::with_capacity(new.len());
        let mut nth_added = 0;
        for (i, (t, was)) in new.into_iter().zip(kept).enumerate() {
            // A kept target takes the new line (its line number may have moved).
            let at = match was.and_then(|w| next[w]) {
                Some(at) => at,
                None => {
                    let at = now + t.interval + splay_offset(splay, nth_added, added);
                    nth_added += 1;
                    at
                }
            };
            targets.push(t);
            heap.push(Reverse((at, i)));
        }
        self.targets = targets;
        self.heap = heap;
        summary
    }

    /// The target at `index` (as in [`Due::target`]).
    pub fn target(&self, index: usize) -> &Target {
        &self.targets[index]
    }

    /// Number of targets scheduled.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when there is nothing to schedule.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline, if any target is scheduled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest job due at or before `now`, rescheduling its target
    /// at a fixed rate (previous deadline + interval, so slow probes never make
    /// a schedule drift). If `now` is already past the next slot too, the
    /// missed slots are skipped and counted instead of fired in a burst: the
    /// job stands for the latest slot not after `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due> {
        let Reverse((deadline, target)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        let interval = self.targets[target].interval;
        let behind = now.duration_since(deadline).as_nanos();
        let missed = behind / interval.as_nanos().max(1);
        let missed64 = u64::try_from(missed).unwrap_or(u64::MAX);
        let slot = deadline + mul(interval, missed);
        let next = slot + interval;
        self.heap.pop();
        self.heap.push(Reverse((next, target)));
        Some(Due {
            target,
            deadline: slot,
            missed: missed64,
        })
    }
}

/// `d * k` without overflow panics (saturates; the interval bounds keep it far away).
fn mul(d: Duration, k: u128) -> Duration {
    let nanos = d.as_nanos().saturating_mul(k);
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX / 2),
        (nanos % 1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn target(url: &str, interval: Duration) -> Target {
        Target {
            interval,
            url: crate::url::parse(url).expect("url"),
            spec: Arc::new(Spec::default()),
            line: 0,
        }
    }

    /// One target per interval, each with its own URL.
    fn ts(intervals: Vec<Duration>) -> Vec<Target> {
        intervals
            .into_iter()
            .enumerate()
            .map(|(i, iv)| target(&format!("http://t{i}.test/"), iv))
            .collect()
    }

    /// Runs the schedule from `start` to `start + horizon`, waking exactly at
    /// each deadline as the thread does, and returns (seconds, target) fired.
    fn simulate(s: &mut Schedule, start: Instant, horizon: Duration) -> Vec<(f64, usize)> {
        let end = start + horizon;
        let mut fired = Vec::new();
        while let Some(at) = s.next_deadline() {
            if at > end {
                break;
            }
            while let Some(due) = s.pop_due(at) {
                assert_eq!(due.missed, 0);
                fired.push(((due.deadline - start).as_secs_f64(), due.target));
            }
        }
        fired
    }

    #[test]
    fn canned_programme() {
        // The original tool's test: intervals 4, 2 and 5 seconds over 20 s.
        let start = Instant::now();
        let mut s = Schedule::new(
            ts(vec![secs(4.0), secs(2.0), secs(5.0)]),
            start,
            Duration::ZERO,
        );
        let fired = simulate(&mut s, start, secs(20.0));
        let expected = vec![
            (2.0, 1),
            (4.0, 0),
            (4.0, 1),
            (5.0, 2),
            (6.0, 1),
            (8.0, 0),
            (8.0, 1),
            (10.0, 1),
            (10.0, 2),
            (12.0, 0),
            (12.0, 1),
            (14.0, 1),
            (15.0, 2),
            (16.0, 0),
            (16.0, 1),
            (18.0, 1),
            (20.0, 0),
            (20.0, 1),
            (20.0, 2),
        ];
        assert_eq!(fired, expected);
    }

    /// Small deterministic generator so the property test needs no extra crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn every_target_fires_floor_d_over_interval_times_in_order() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _case in 0..200 {
            let n = 1 + (rng.next() % 20) as usize;
            // Intervals in whole milliseconds from 1 ms to 5 s, so floor() is exact.
            let intervals: Vec<Duration> = (0..n)
                .map(|_| Duration::from_millis(1 + rng.next() % 5_000))
                .collect();
            let horizon = Duration::from_millis(rng.next() % 60_000);
            let start = Instant::now();
            let mut s = Schedule::new(ts(intervals.clone()), start, Duration::ZERO);
            let fired = simulate(&mut s, start, horizon);
            for w in fired.windows(2) {
                assert!(w[0].0 <= w[1].0, "deadlines out of order: {w:?}");
            }
            for (i, iv) in intervals.iter().enumerate() {
                let count = fired.iter().filter(|f| f.1 == i).count() as u128;
                assert_eq!(count, horizon.as_nanos() / iv.as_nanos(), "target {i}");
            }
        }
    }

    #[test]
    fn fixed_rate_does_not_drift_when_woken_late() {
        let start = Instant::now();
        let mut s = Schedule::new(ts(vec![secs(1.0)]), start, Duration::ZERO);
        // Woken 300 ms late: the job keeps its slot, the next slot stays on the grid.
        let due = s.pop_due(start + secs(1.3)).expect("due");
        assert_eq!(due.deadline, start + secs(1.0));
        assert_eq!(due.missed, 0);
        assert_eq!(s.next_deadline(), Some(start + secs(2.0)));
    }

    #[test]
    fn stall_skips_missed_slots_instead_of_bursting() {
        let start = Instant::now();
        let mut s = Schedule::new(ts(vec![secs(1.0)]), start, Duration::ZERO);
        // Suspended until 5.5 s: slots 1..4 are missed, slot 5 fires once.
        let now = start + secs(5.5);
        let due = s.pop_due(now).expect("due");
        assert_eq!(due.missed, 4);
        assert_eq!(due.deadline, start + secs(5.0));
        assert_eq!(s.pop_due(now), None);
        assert_eq!(s.next_deadline(), Some(start + secs(6.0)));
    }

    #[test]
    fn nothing_due_before_first_interval() {
        let start = Instant::now();
        let mut s = Schedule::new(ts(vec![secs(2.0)]), start, Duration::ZERO);
        assert_eq!(s.pop_due(start + secs(1.999)), None);
        assert!(s.pop_due(start + secs(2.0)).is_some());
    }

    #[test]
    fn reload_keeps_phase_of_unchanged_targets() {
        let start = Instant::now();
        let mut s = Schedule::new(
            vec![
                target("http://a.test/", secs(10.0)),
                target("http://b.test/", secs(4.0)),
                target("http://c.test/", secs(6.0)),
            ],
            start,
            Duration::ZERO,
        );
        // a fires at 10; b at 4 and 8 (next 12); c at 6 (next 12).
        let now = start + secs(9.0);
        while s.pop_due(now).is_some() {}
        let summary = s.reload(
            vec![
                target("http://c.test/", secs(6.0)),  // unchanged: next 12
                target("http://b.test/", secs(5.0)),  // interval changed: new
                target("http://a.test/", secs(10.0)), // unchanged: next 10
                target("http://d.test/", secs(1.0)),  // new: 9 + 1
            ],
            now,
            Duration::ZERO,
        );
        assert_eq!(
            summary,
            ReloadSummary {
                added: 2,
                removed: 1,
                unchanged: 2
            }
        );
        assert_eq!(summary.to_string(), "2 added, 1 removed, 2 unchanged");
        let mut fired = Vec::new();
        while let Some(at) = s.next_deadline() {
            if at > start + secs(14.5) {
                break;
            }
            let due = s.pop_due(at).expect("due");
            fired.push((
                (due.deadline - start).as_secs_f64(),
                s.target(due.target).url.request().to_string(),
            ));
        }
        let want = [
            (10.0, "http://a.test/"),
            (10.0, "http://d.test/"),
            (11.0, "http://d.test/"),
            (12.0, "http://c.test/"),
            (12.0, "http://d.test/"),
            (13.0, "http://d.test/"),
            (14.0, "http://b.test/"),
            (14.0, "http://d.test/"),
        ];
        let want: Vec<(f64, String)> = want.iter().map(|(t, u)| (*t, u.to_string())).collect();
        assert_eq!(fired, want);
    }

    #[test]
    fn a_kept_target_takes_its_new_line() {
        let start = Instant::now();
        let line = |url: &str, n: u64| Target {
            line: n,
            ..target(url, secs(10.0))
        };
        let mut s = Schedule::new(vec![line("http://a.test/", 1)], start, Duration::ZERO);
        let summary = s.reload(
            vec![line("http://b.test/", 1), line("http://a.test/", 7)],
            start + secs(5.0),
            Duration::ZERO,
        );
        assert_eq!(summary.unchanged, 1);
        // a keeps its phase (due at 10) and now names line 7 in messages.
        let due = s.pop_due(start + secs(10.0)).expect("a due");
        assert_eq!(s.target(due.target).url.request(), "http://a.test/");
        assert_eq!(s.target(due.target).line, 7);
        assert_eq!(s.next_deadline(), Some(start + secs(15.0)));
    }

    #[test]
    fn reload_matches_duplicate_lines_one_to_one_and_splays_new_ones() {
        let start = Instant::now();
        let same = || target("http://a.test/", secs(2.0));
        let mut s = Schedule::new(vec![same(), same()], start, Duration::ZERO);
        let summary = s.reload(vec![same(), same(), same()], start + secs(1.0), secs(1.0));
        assert_eq!(
            (summary.added, summary.unchanged, summary.removed),
            (1, 2, 0)
        );
        let mut at = Vec::new();
        while let Some(d) = s.next_deadline() {
            if d > start + secs(3.5) {
                break;
            }
            s.pop_due(d).expect("due");
            at.push((d - start).as_secs_f64());
        }
        // Kept: 2, 2; added: 1 + 2 + 0 (its splay share as the only new one).
        assert_eq!(at, vec![2.0, 2.0, 3.0]);
    }

    #[test]
    fn reload_to_nothing_and_back() {
        let start = Instant::now();
        let mut s = Schedule::new(ts(vec![secs(1.0)]), start, Duration::ZERO);
        let r = s.reload(Vec::new(), start, Duration::ZERO);
        assert_eq!((r.added, r.removed), (0, 1));
        assert!(s.is_empty());
        assert_eq!(s.next_deadline(), None);
        s.reload(ts(vec![secs(1.0)]), start + secs(5.0), Duration::ZERO);
        assert_eq!(s.next_deadline(), Some(start + secs(6.0)));
    }

    #[test]
    fn splay_spreads_first_probes() {
        let start = Instant::now();
        let mut s = Schedule::new(ts(vec![secs(10.0); 4]), start, secs(2.0));
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let at = s.next_deadline().expect("deadline");
            let due = s.pop_due(at).expect("due");
            firsts.push(((due.deadline - start).as_secs_f64(), due.target));
        }
        assert_eq!(firsts, vec![(10.0, 0), (10.5, 1), (11.0, 2), (11.5, 3)]);
        // Afterwards each keeps its own grid.
        assert_eq!(s.next_deadline(), Some(start + secs(20.0)));
    }
}

/// A job handed to the workers: which target, and the slot it stands for.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Target,
    pub deadline: Instant,
}

/// Counts kept by the scheduler thread, returned when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub dispatched: u64,
    /// Due while the queue was full: reported as `skipped`.
    pub skipped: u64,
    /// Slots passed over after a stall.
    pub missed: u64,
}

/// What the scheduler thread does with a job it cannot queue.
pub trait Overflow {
    /// `job` was due but the queue was full.
    fn queue_full(&self, job: Job);
}

/// Requests to the scheduler thread. It stops when the channel disconnects.
#[derive(Debug)]
pub enum Control {
    /// Replace the targets (already validated), keeping the phase of those kept.
    Reload(Vec<Target>),
}

/// The scheduler thread's loop: sleeps until the earliest deadline, or until
/// `control` delivers or disconnects (no polling), then queues every due job
/// without ever blocking. Returns when `control` disconnects or the workers are gone.
pub fn run_loop(
    mut schedule: Schedule,
    jobs: &crate::queue::QueueSender<Job>,
    control: &std::sync::mpsc::Receiver<Control>,
    overflow: &dyn Overflow,
    splay: Duration,
) -> Counts {
    use crossbeam_channel::TrySendError;
    use std::sync::mpsc::RecvTimeoutError;
    let mut counts = Counts::default();
    loop {
        let woke = match schedule.next_deadline() {
            Some(at) => control.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => control.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match woke {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Control::Reload(targets)) => {
                let summary = schedule.reload(targets, Instant::now(), splay);
                log::info!("reload: {summary}");
            }
            Err(RecvTimeoutError::Disconnected) => return counts,
        }
        let now = Instant::now();
        while let Some(due) = schedule.pop_due(now) {
            let target = schedule.target(due.target).clone();
            if due.missed > 0 {
                counts.missed += due.missed;
                log::warn!(
                    "{}: scheduler woke late (stall?); skipped {} missed slot(s)",
                    target.url.shown(),
                    due.missed
                );
            }
            // Test builds: a bug in the scheduler after four dispatches.
            #[cfg(debug_assertions)]
            if counts.dispatched == 4 {
                crate::panics::forced("@scheduler");
            }
            let job = Job {
                target,
                deadline: due.deadline,
            };
            match jobs.try_send(job) {
                Ok(()) => counts.dispatched += 1,
                Err(TrySendError::Full(job)) => {
                    counts.skipped += 1;
                    overflow.queue_full(job);
                }
                Err(TrySendError::Disconnected(_)) => return counts,
            }
        }
    }
}
