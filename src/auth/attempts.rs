//! Login attempts per client address (`auth.attempts`, such as `'5/min'`):
//! a window opens at an address's first attempt and allows `count` in it.
//! At most [`MAX_ADDRESSES`] addresses are remembered; when full, closed
//! windows are forgotten, then the oldest.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Attempts;

/// Addresses remembered at once.
pub(crate) const MAX_ADDRESSES: usize = 4096;

/// The attempts of each address in its current window.
#[derive(Debug)]
pub(crate) struct Limiter {
    allowed: Attempts,
    windows: Vec<(IpAddr, Instant, u32)>,
}

impl Limiter {
    pub fn new(allowed: Attempts) -> Limiter {
        Limiter {
            allowed,
            windows: Vec::new(),
        }
    }

    /// Counts an attempt from `peer`: `Err(wait)` when it is over the
    /// limit (answered 429 with `Retry-After`), and then not counted.
    pub fn attempt(&mut self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let per = self.allowed.per;
        let open = |start: Instant| now.saturating_duration_since(start) < per;
        if let Some(w) = self.windows.iter_mut().find(|w| w.0 == peer) {
            if !open(w.1) {
                *w = (peer, now, 0);
            }
            if w.2 >= self.allowed.count {
                return Err(per.saturating_sub(now.saturating_duration_since(w.1)));
            }
            w.2 += 1;
            return Ok(());
        }
        if self.windows.len() >= MAX_ADDRESSES {
            self.windows.retain(|w| open(w.1));
            if self.windows.len() >= MAX_ADDRESSES {
                if let Some(oldest) = (0..self.windows.len()).min_by_key(|&i| self.windows[i].1) {
                    self.windows.swap_remove(oldest);
                }
            }
        }
        self.windows.push((peer, now, 1));
        Ok(())
    }

    /// True when `peer` has no attempt left in its window (checked before
    /// HTTP Basic credentials are verified).
    pub fn exhausted(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let w = self.windows.iter().find(|w| w.0 == peer)?;
        let elapsed = now.saturating_duration_since(w.1);
        (elapsed < self.allowed.per && w.2 >= self.allowed.count)
            .then(|| self.allowed.per - elapsed)
    }
}

/// `Retry-After` in whole seconds, rounded up.
pub(crate) fn retry_after(wait: Duration) -> String {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .max(1)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_per_address_per_window() {
        let min = Duration::from_secs(60);
        let mut l = Limiter::new(Attempts { count: 2, per: min });
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        assert!(l.attempt(a, t0).is_ok());
        assert!(l.exhausted(a, t0).is_none());
        assert!(l.attempt(a, t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(
            l.exhausted(a, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            l.attempt(a, t0 + Duration::from_secs(30)),
            Err(Duration::from_secs(30))
        );
        assert!(l.attempt(b, t0 + Duration::from_secs(30)).is_ok());
        // A new window.
        assert!(l.attempt(a, t0 + min).is_ok());
        assert_eq!(retry_after(Duration::from_millis(1500)), "2");
        assert_eq!(retry_after(Duration::ZERO), "1");
    }
}
