//! `limits.rate`: token buckets that bound each WebSocket's messages and bytes per second.

use std::time::Instant;

use crate::config::{Rate, RateAction};

/// One bucket: refills at `rate` per second up to `capacity`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    rate: f64,
    capacity: f64,
}

impl Bucket {
    fn new(rate: f64, capacity: f64) -> Bucket {
        Bucket {
            tokens: capacity,
            rate,
            capacity,
        }
    }

    fn refill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + seconds * self.rate).min(self.capacity);
    }
}

/// The buckets of one connection.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    last: Instant,
    pub action: RateAction,
}

impl RateLimiter {
    pub fn new(rate: &Rate, now: Instant) -> RateLimiter {
        let burst = |per_second: f64| rate.burst.unwrap_or(per_second).max(1.0);
        RateLimiter {
            messages: rate.messages.map(|r| Bucket::new(r, burst(r))),
            // The byte bucket holds one second's worth (at least one maximal message is not implied).
            bytes: rate.bytes.map(|r| Bucket::new(r, r.max(1.0))),
            last: now,
            action: rate.action,
        }
    }

    /// Takes one message of `bytes` from the buckets; false if it does not fit.
    /// A message that does not fit takes nothing.
    pub fn allow(&mut self, now: Instant, messages: u32, bytes: usize) -> bool {
        let seconds = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        for bucket in [&mut self.messages, &mut self.bytes].into_iter().flatten() {
            bucket.refill(seconds);
        }
        let fits = |b: &Option<Bucket>, n: f64| b.as_ref().is_none_or(|b| b.tokens >= n);
        if !fits(&self.messages, f64::from(messages)) || !fits(&self.bytes, bytes as f64) {
            return false;
        }
        if let Some(b) = &mut self.messages {
            b.tokens -= f64::from(messages);
        }
        if let Some(b) = &mut self.bytes {
            b.tokens -= bytes as f64;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(messages: Option<f64>, bytes: Option<f64>, burst: Option<f64>) -> Rate {
        Rate {
            messages,
            bytes,
            burst,
            action: RateAction::Drop,
        }
    }

    #[test]
    fn burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(&rate(Some(10.0), None, Some(3.0)), t0);
        assert!((0..3).all(|_| r.allow(t0, 1, 0)), "the burst");
        assert!(!r.allow(t0, 1, 0), "then nothing");
        assert!(
            r.allow(t0 + Duration::from_millis(100), 1, 0),
            "one more after 1/10 s"
        );
        assert!(!r.allow(t0 + Duration::from_millis(100), 1, 0));
        assert!(
            (0..3).all(|_| r.allow(t0 + Duration::from_secs(60), 1, 0)),
            "refills up to the burst only"
        );
        assert!(!r.allow(t0 + Duration::from_secs(60), 1, 0));
    }

    #[test]
    fn bytes_are_limited_too_and_a_refused_message_costs_nothing() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(&rate(Some(100.0), Some(1000.0), None), t0);
        assert!(r.allow(t0, 1, 600));
        assert!(!r.allow(t0, 1, 600), "only 400 bytes left");
        assert!(r.allow(t0, 1, 400), "the refused one took nothing");
        assert!(r.allow(t0 + Duration::from_millis(500), 1, 500));
    }
}
