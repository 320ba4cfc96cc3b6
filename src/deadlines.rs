//! Deadlines for every connection in one min-heap.
//!
//! A connection keeps its own deadline; the heap only holds wake-ups.
//! Moving a deadline later pushes nothing (the old wake-up re-arms itself when
//! it fires early), so a busy connection costs no heap work per event, and an
//! entry for a closed or reused slot is recognised by its serial and skipped.
//! A busy WebSocket does not even record its later deadline: the reactor
//! reads it from the connection again when a wake-up fires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An instant in 8 bytes, where an `Instant` takes 16 (and an
/// `Option<Instant>` too): nanoseconds from the process's first use of it,
/// signed and offset by 2^63, so that it is never zero and an `Option<At>`
/// is 8 bytes as well. Exact within 292 years either side. For the times
/// every connection keeps in its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At(NonZeroU64);

const BIAS: u64 = 1 << 63;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl At {
    pub fn new(t: Instant) -> At {
        let epoch = epoch();
        let biased = match t.checked_duration_since(epoch) {
            Some(d) => BIAS.saturating_add(nanos(d)),
            None => BIAS.saturating_sub(nanos(epoch - t)),
        };
        At(NonZeroU64::new(biased).unwrap_or(NonZeroU64::MIN))
    }

    /// `self` plus `d`; `None` past the 292 years it can tell. Cheaper than
    /// `At::new(t + d)`: no clock arithmetic, one addition.
    #[inline]
    pub fn checked_add(self, d: Duration) -> Option<At> {
        self.0.checked_add(nanos(d)).map(At)
    }

    pub fn instant(self) -> Instant {
        let biased = self.0.get();
        if biased >= BIAS {
            epoch() + Duration::from_nanos(biased - BIAS)
        } else {
            epoch() - Duration::from_nanos(BIAS - biased)
        }
    }
}

/// `d` in nanoseconds, `u64::MAX` past 584 years. In 64-bit arithmetic:
/// `as_nanos` would multiply in 128 bits, on every turn of the loop.
#[inline]
fn nanos(d: Duration) -> u64 {
    let secs = d.as_secs().saturating_mul(1_000_000_000);
    secs.saturating_add(u64::from(d.subsec_nanos()))
}

/// A wake-up for the connection in slab slot `key` whose serial number was
/// `serial` (its low 32 bits: a stale wake-up that matched a reused slot's
/// serial by chance would only make the reactor ask that connection for its
/// deadline early, which `fire` handles). `at` is in nanoseconds from the
/// heap's start. Sixteen bytes: every connection has one in the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Wake {
    at: u64,
    key: u32,
    serial: u32,
}

impl Wake {
    /// The slab key of the connection it is for.
    pub fn key(&self) -> usize {
        self.key as usize
    }

    /// Whether it was made for the connection whose serial is `serial`.
    pub fn is_for(&self, serial: u64) -> bool {
        self.serial == serial as u32
    }
}

/// A connection's side of the bookkeeping: the earliest wake-up already in
/// the heap for it (its `at` plus one; `None` when there is none). When it
/// wants attention is not kept: the reactor asks the connection when a
/// wake-up fires (see [`Timers::fire`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deadline {
    armed: Option<NonZeroU64>,
}

/// The heap of wake-ups.
#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Wake>>,
    /// What the wake-ups' times count from.
    start: Instant,
    /// The earliest wake-up's time as an `Instant`, kept so that the loop's
    /// checks on every turn compare instants instead of converting `now`.
    top: Option<Instant>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            start: Instant::now(),
            top: None,
        }
    }
}

impl Timers {
    /// Sets a connection's deadline, pushing a wake-up only if none fires by then.
    #[inline]
    pub fn set(&mut self, d: &mut Deadline, due: Option<Instant>, key: usize, serial: u64) {
        if let Some(due) = due {
            self.push(d, due, key as u32, serial as u32);
        }
    }

    #[inline]
    fn push(&mut self, d: &mut Deadline, due: Instant, key: u32, serial: u32) {
        let at = self.ticks(due);
        if d.armed.is_none_or(|armed| at < armed.get() - 1) {
            d.armed = NonZeroU64::new(at.saturating_add(1));
            self.heap.push(Reverse(Wake { at, key, serial }));
            if self.top.is_none_or(|top| due < top) {
                self.top = Some(due.max(self.start));
            }
        }
    }

    /// `top` again, from the heap's earliest wake-up.
    fn refresh_top(&mut self) {
        self.top = self
            .heap
            .peek()
            .map(|Reverse(w)| self.start + Duration::from_nanos(w.at));
    }

    /// `t` in nanoseconds from the start (0 for anything before it).
    #[inline]
    fn ticks(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.start).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }

    /// How long the poll may sleep before the next wake-up.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        self.top.map(|top| top.saturating_duration_since(now))
    }

    /// Removes and returns the next wake-up that is due.
    #[inline]
    pub fn pop_due(&mut self, now: Instant) -> Option<Wake> {
        if self.top.is_none_or(|top| top > now) {
            return None;
        }
        let wake = self.heap.pop().map(|Reverse(w)| w);
        self.refresh_top();
        wake
    }

    /// Handles a popped wake-up for a live connection whose deadline is now
    /// `due`: true when it has really passed; otherwise the wake-up is
    /// re-armed for it.
    pub fn fire(
        &mut self,
        d: &mut Deadline,
        due: Option<Instant>,
        wake: Wake,
        now: Instant,
    ) -> bool {
        if d.armed.is_some_and(|armed| armed.get() - 1 == wake.at) {
            d.armed = None;
        }
        match due {
            Some(due) if due <= now => true,
            Some(due) => {
                self.push(d, due, wake.key, wake.serial);
                false
            }
            None => false,
        }
    }

    /// Number of wake-ups held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops the wake-ups of connections that are gone. A closed connection
    /// leaves its wake-up behind (finding it would cost a heap search), and
    /// under churn those would pile up until their time came; the reactor
    /// calls this when they outnumber the live ones.
    pub fn retain(&mut self, mut live: impl FnMut(&Wake) -> bool) {
        self.heap.retain(|Reverse(w)| live(w));
        self.refresh_top();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_is_its_instant() {
        let now = Instant::now();
        for t in [
            now,
            now + Duration::from_nanos(1),
            now + Duration::from_secs(86_400 * 365),
            now.checked_sub(Duration::from_millis(1500)).unwrap_or(now),
        ] {
            assert_eq!(At::new(t).instant(), t);
            let later = At::new(t).checked_add(Duration::from_millis(2500));
            assert_eq!(later, Some(At::new(t + Duration::from_millis(2500))));
        }
        assert_eq!(At::new(now).checked_add(Duration::MAX), None);
        assert_eq!(std::mem::size_of::<Option<At>>(), 8);
    }

    #[test]
    fn later_deadlines_push_nothing_and_rearm_on_fire() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0 + Duration::from_secs(1)), 3, 7);
        for i in 2..100 {
            timers.set(&mut d, Some(t0 + Duration::from_secs(i)), 3, 7);
        }
        assert_eq!(timers.len(), 1);
        let now = t0 + Duration::from_secs(1);
        let wake = timers.pop_due(now).unwrap();
        assert!(
            !timers.fire(&mut d, Some(t0 + Duration::from_secs(99)), wake, now),
            "deadline moved later: not due"
        );
        assert_eq!(timers.len(), 1, "re-armed for the current deadline");
        let now = t0 + Duration::from_secs(99);
        let wake = timers.pop_due(now).unwrap();
        assert!(timers.fire(&mut d, Some(now), wake, now));
    }

    #[test]
    fn earlier_deadline_pushes_and_poll_timeout_follows() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0 + Duration::from_secs(10)), 0, 1);
        timers.set(&mut d, Some(t0 + Duration::from_secs(2)), 0, 1);
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.poll_timeout(t0), Some(Duration::from_secs(2)));
        assert!(timers.pop_due(t0).is_none());
    }

    #[test]
    fn retain_drops_the_wake_ups_of_closed_connections() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        for key in 0..10 {
            timers.set(&mut Deadline::default(), Some(t0), key, 1);
        }
        timers.retain(|w| w.key() % 2 == 0);
        assert_eq!(timers.len(), 5);
    }

    #[test]
    fn cleared_deadline_never_fires() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0), 0, 1);
        timers.set(&mut d, None, 0, 1);
        let wake = timers.pop_due(t0).unwrap();
        assert!(!timers.fire(&mut d, None, wake, t0));
        assert_eq!(timers.len(), 0);
    }
}
