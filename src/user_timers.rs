//! Timers that handlers set: one-shot or repeating, owned by a connection
//! (its handler's `on_timer` runs) or global (a closure runs with the hub).
//!
//! Connection deadlines (timeouts) live in `deadlines.rs`; these are the
//! user's. A global timer's work is any `F` (the hub's closures), so this
//! queue knows nothing of the hub.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use crate::message::ConnId;

/// Identifies a timer, for cancelling it and for telling timers apart in
/// [`Handler::on_timer`](crate::Handler::on_timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

enum Owner<F> {
    Conn(ConnId),
    /// `None` while the closure is running.
    Global(Option<F>),
}

struct Entry<F> {
    every: Option<Duration>,
    owner: Owner<F>,
}

/// What fired.
pub(crate) enum Fired<F> {
    Conn(TimerId, ConnId),
    /// Run it, then hand it back with [`TimerQueue::restore`].
    Global(TimerId, F),
}

/// Every pending user timer.
pub(crate) struct TimerQueue<F> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, Entry<F>>,
    next: u64,
}

impl<F> Default for TimerQueue<F> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
            next: 0,
        }
    }
}

impl<F> fmt::Debug for TimerQueue<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerQueue")
            .field("pending", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<F> TimerQueue<F> {
    /// A timer whose expiry calls the connection's `on_timer`.
    pub fn add_conn(&mut self, conn: ConnId, after: Duration, every: Option<Duration>) -> TimerId {
        self.add(after, every, Owner::Conn(conn))
    }

    /// A timer whose expiry runs `f`.
    pub fn add_global(&mut self, after: Duration, every: Option<Duration>, f: F) -> TimerId {
        self.add(after, every, Owner::Global(Some(f)))
    }

    fn add(&mut self, after: Duration, every: Option<Duration>, owner: Owner<F>) -> TimerId {
        self.next += 1;
        let id = self.next;
        let at = Instant::now().checked_add(after).unwrap_or_else(far_future);
        self.heap.push(Reverse((at, id)));
        // A zero period would fire on every turn of the loop: at least 1 ms.
        let every = every.map(|d| d.max(Duration::from_millis(1)));
        self.entries.insert(id, Entry { every, owner });
        TimerId(id)
    }

    /// Cancels a timer; false if it is not pending.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.entries.remove(&id.0).is_some()
    }

    /// True if the timer is pending and belongs to `conn`.
    pub fn owned_by(&self, id: TimerId, conn: ConnId) -> bool {
        matches!(self.entries.get(&id.0), Some(Entry { owner: Owner::Conn(c), .. }) if *c == conn)
    }

    /// When the next timer is due (possibly a cancelled one; it is skipped then).
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next timer due by `now`, rescheduled if it repeats.
    pub fn pop_due(&mut self, now: Instant) -> Option<Fired<F>> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue; // cancelled
            };
            let fired = match &mut entry.owner {
                Owner::Conn(conn) => Fired::Conn(TimerId(id), *conn),
                Owner::Global(f) => match f.take() {
                    Some(f) => Fired::Global(TimerId(id), f),
                    None => continue,
                },
            };
            match entry.every {
                // From now, not from `at`: a loop that fell behind does not fire a burst.
                Some(every) => self.heap.push(Reverse((
                    now.checked_add(every).unwrap_or_else(far_future),
                    id,
                ))),
                None if matches!(fired, Fired::Conn(..)) => {
                    self.entries.remove(&id);
                }
                None => {}
            }
            return Some(fired);
        }
        None
    }

    /// Gives a global timer its closure back after it ran; a one-shot or
    /// cancelled timer is dropped instead.
    pub fn restore(&mut self, id: TimerId, f: F) {
        match self.entries.get_mut(&id.0) {
            Some(Entry {
                every: Some(_),
                owner,
            }) => *owner = Owner::Global(Some(f)),
            _ => {
                self.entries.remove(&id.0);
            }
        }
    }

    /// Drops a connection's timer that fired after the connection closed.
    pub fn forget(&mut self, id: TimerId) {
        self.entries.remove(&id.0);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(k: usize) -> ConnId {
        ConnId { key: k, serial: 1 }
    }

    #[test]
    fn one_shot_fires_once_and_repeating_reschedules() {
        let mut q: TimerQueue<()> = TimerQueue::default();
        let once = q.add_conn(conn(1), Duration::ZERO, None);
        let every = q.add_conn(conn(2), Duration::ZERO, Some(Duration::from_secs(1)));
        let now = Instant::now();
        let mut fired = Vec::new();
        while let Some(Fired::Conn(id, _)) = q.pop_due(now) {
            fired.push(id);
        }
        fired.sort();
        assert_eq!(fired, [once, every]);
        assert!(q.pop_due(now).is_none());
        assert!(!q.cancel(once), "a fired one-shot is gone");
        assert!(q.owned_by(every, conn(2)));
        assert!(q
            .next_due()
            .is_some_and(|t| t >= now + Duration::from_secs(1)));
        assert!(
            matches!(q.pop_due(now + Duration::from_secs(2)), Some(Fired::Conn(id, _)) if id == every)
        );
    }

    #[test]
    fn cancelled_timers_never_fire() {
        let mut q: TimerQueue<()> = TimerQueue::default();
        let id = q.add_conn(conn(1), Duration::ZERO, Some(Duration::from_millis(5)));
        assert!(q.cancel(id));
        assert!(q.pop_due(Instant::now() + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn global_closures_come_back_when_repeating() {
        let mut q: TimerQueue<Box<dyn FnMut()>> = TimerQueue::default();
        let rep = q.add_global(
            Duration::ZERO,
            Some(Duration::from_millis(1)),
            Box::new(|| {}),
        );
        let once = q.add_global(Duration::ZERO, None, Box::new(|| {}));
        let now = Instant::now();
        for _ in 0..2 {
            match q.pop_due(now) {
                Some(Fired::Global(id, f)) => q.restore(id, f),
                _ => panic!("a global timer"),
            }
        }
        assert!(q.cancel(rep), "the repeating one is pending again");
        assert!(!q.cancel(once), "the one-shot is gone");
    }
}
