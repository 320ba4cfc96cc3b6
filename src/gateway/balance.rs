//! One gateway route's downstream hosts: which one a new request or
//! connection goes to (Ocelot's load balancers), the circuit breaker that
//! skips a failing host for a while, sticky sessions, and the counters
//! `/api/status` shows. Sans-IO: the caller passes the clock and reports
//! what happened.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::stats::DownstreamStats;

use crate::config::{Balancer, Breaker, ProxyConfig};

/// Sticky sessions remembered at most; a full map first forgets the expired
/// ones, then the one closest to expiring, so a flood of new sessions costs
/// memory up to this and no more.
const STICKY_CAP: usize = 10_000;

/// The hosts of one route with their state.
#[derive(Debug)]
pub(crate) struct Pool {
    hosts: Vec<Host>,
    balancer: Balancer,
    breaker: Breaker,
    expiry: Duration,
    /// The next host round robin starts from.
    next: usize,
    /// Sticky value → (host, until).
    sticky: HashMap<String, (usize, Instant)>,
}

#[derive(Debug)]
struct Host {
    name: String,
    open: u32,
    requests: u64,
    /// All failures, for the status.
    failures: u64,
    /// Failures since the last success, for the breaker.
    in_a_row: u32,
    /// Set while the breaker is open, and after: half-open.
    open_until: Option<Instant>,
    /// A half-open host has been picked and its outcome is awaited: one trial at a time.
    trial: bool,
}

/// A host's breaker as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl Host {
    fn breaker(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a new request may go here: closed, or half-open with no trial out.
    fn usable(&self, now: Instant) -> bool {
        match self.breaker(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.trial,
        }
    }
}

impl Pool {
    pub fn new(cfg: &ProxyConfig) -> Pool {
        Pool {
            hosts: cfg
                .hosts
                .iter()
                .map(|name| Host {
                    name: name.clone(),
                    open: 0,
                    requests: 0,
                    failures: 0,
                    in_a_row: 0,
                    open_until: None,
                    trial: false,
                })
                .collect(),
            balancer: cfg.balancer,
            breaker: cfg.breaker,
            expiry: cfg.sticky.expiry,
            next: 0,
            sticky: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// The `host:port` of host `i` (an index [`Pool::pick`] returned).
    pub fn host(&self, i: usize) -> &str {
        &self.hosts[i].name
    }

    /// The host for a new request or connection, skipping `tried` and hosts
    /// whose breaker is open; `None` when none is left. `sticky` is the
    /// client's sticky cookie value (`CookieStickySessions` only).
    ///
    /// Picking a half-open host makes it the trial: no other request goes
    /// there until [`Pool::succeeded`] or [`Pool::failed`] reports on it.
    pub fn pick(&mut self, now: Instant, sticky: Option<&str>, tried: &[usize]) -> Option<usize> {
        let choice = match self.balancer {
            Balancer::NoLoadBalancer => self.first(now, tried),
            Balancer::RoundRobin => self.round_robin(now, tried),
            Balancer::LeastConnection => self.least_connection(now, tried),
            Balancer::CookieStickySessions => match self.stuck(now, sticky, tried) {
                Some(i) => Some(i),
                None => self.round_robin(now, tried),
            },
        }?;
        let host = &mut self.hosts[choice];
        if host.breaker(now) == BreakerState::HalfOpen {
            host.trial = true;
        }
        Some(choice)
    }

    fn available(&self, i: usize, now: Instant, tried: &[usize]) -> bool {
        !tried.contains(&i) && self.hosts[i].usable(now)
    }

    fn first(&self, now: Instant, tried: &[usize]) -> Option<usize> {
        (0..self.len()).find(|&i| self.available(i, now, tried))
    }

    /// The hosts in order from the round-robin cursor.
    fn rotation(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len();
        (0..n).map(move |k| (self.next + k) % n)
    }

    fn round_robin(&mut self, now: Instant, tried: &[usize]) -> Option<usize> {
        let i = self.rotation().find(|&i| self.available(i, now, tried))?;
        self.next = (i + 1) % self.len();
        Some(i)
    }

    /// The fewest open connections; among equals, the first from the cursor,
    /// which then moves past it so equal hosts take turns.
    fn least_connection(&mut self, now: Instant, tried: &[usize]) -> Option<usize> {
        let i = self
            .rotation()
            .filter(|&i| self.available(i, now, tried))
            .min_by_key(|&i| self.hosts[i].open)?;
        self.next = (i + 1) % self.len();
        Some(i)
    }

    /// The host a known, unexpired sticky value is bound to, if it is
    /// available; its expiry is refreshed.
    fn stuck(&mut self, now: Instant, sticky: Option<&str>, tried: &[usize]) -> Option<usize> {
        let value = sticky?;
        let &(i, until) = self.sticky.get(value)?;
        if now >= until || i >= self.len() || !self.available(i, now, tried) {
            return None;
        }
        self.sticky
            .insert(value.to_string(), (i, now + self.expiry));
        Some(i)
    }

    /// A connection to host `i` opened: one more open, one more request.
    pub fn opened(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.open += 1;
            h.requests += 1;
        }
    }

    /// A request went to host `i` on a connection kept open from before.
    pub fn requested(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.requests += 1;
        }
    }

    /// A connection to host `i` closed.
    pub fn closed(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.open = h.open.saturating_sub(1);
        }
    }

    /// Host `i` failed (refused, timed out, broke): after `breaker.failures`
    /// in a row, or at once when it was on trial, it is skipped for `breaker.pause`.
    pub fn failed(&mut self, i: usize, now: Instant) {
        let Breaker { failures, pause } = self.breaker;
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        h.failures += 1;
        h.in_a_row = h.in_a_row.saturating_add(1);
        let on_trial = h.breaker(now) == BreakerState::HalfOpen;
        if failures > 0 && (h.in_a_row >= failures || on_trial) {
            h.open_until = Some(now + pause);
        }
        h.trial = false;
    }

    /// Host `i` answered: its breaker closes and the count starts again.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.in_a_row = 0;
            h.open_until = None;
            h.trial = false;
        }
    }

    /// Binds a sticky cookie value to host `i` until `now` + `sticky.expiry`.
    pub fn stick(&mut self, value: &str, i: usize, now: Instant) {
        if self.sticky.len() >= STICKY_CAP && !self.sticky.contains_key(value) {
            self.sticky.retain(|_, &mut (_, until)| until > now);
        }
        if self.sticky.len() >= STICKY_CAP && !self.sticky.contains_key(value) {
            let soonest = self
                .sticky
                .iter()
                .min_by_key(|(_, &(_, until))| until)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                self.sticky.remove(&k);
            }
        }
        self.sticky
            .insert(value.to_string(), (i, now + self.expiry));
    }

    /// Every host's counters and breaker, for `/api/status` (`failures`
    /// counts all of them, not just those in a row).
    pub fn status<'a>(
        &'a self,
        route: &'a str,
        now: Instant,
    ) -> impl Iterator<Item = DownstreamStats> + 'a {
        self.hosts.iter().map(move |h| {
            let breaker = match h.breaker(now) {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half-open",
            };
            DownstreamStats {
                route: route.to_string(),
                host: h.name.clone(),
                open: u64::from(h.open),
                requests: h.requests,
                failures: h.failures,
                breaker: breaker.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Scheme, Sticky};

    /// Host `i`'s breaker state as `/api/status` shows it.
    fn breaker(p: &Pool, now: Instant, i: usize) -> String {
        p.status("/r/", now)
            .nth(i)
            .map(|s| s.breaker)
            .unwrap_or_default()
    }

    fn pool(balancer: Balancer, n: usize) -> Pool {
        let names: Vec<String> = (1..=n).map(|i| format!("h{i}:80")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut cfg = ProxyConfig::new(&names, Scheme::Ws);
        cfg.balancer = balancer;
        cfg.breaker = Breaker {
            failures: 2,
            pause: Duration::from_secs(30),
        };
        cfg.sticky = Sticky {
            cookie: "s".into(),
            expiry: Duration::from_secs(60),
        };
        Pool::new(&cfg)
    }

    fn picks(p: &mut Pool, now: Instant, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| p.pick(now, None, &[]).unwrap())
            .collect()
    }

    #[test]
    fn round_robin_rotates_and_skips_tried() {
        let now = Instant::now();
        let mut p = pool(Balancer::RoundRobin, 3);
        assert_eq!(picks(&mut p, now, 4), [0, 1, 2, 0]);
        assert_eq!(p.pick(now, None, &[1]), Some(2));
        assert_eq!(p.pick(now, None, &[0, 1, 2]), None);
        assert_eq!(p.host(2), "h3:80");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn no_load_balancer_takes_the_first_up() {
        let now = Instant::now();
        let mut p = pool(Balancer::NoLoadBalancer, 3);
        assert_eq!(picks(&mut p, now, 3), [0, 0, 0]);
        assert_eq!(p.pick(now, None, &[0]), Some(1));
        p.failed(0, now);
        p.failed(0, now);
        assert_eq!(p.pick(now, None, &[]), Some(1), "0's breaker is open");
    }

    #[test]
    fn least_connection_prefers_the_idle_and_rotates_ties() {
        let now = Instant::now();
        let mut p = pool(Balancer::LeastConnection, 3);
        assert_eq!(picks(&mut p, now, 3), [0, 1, 2], "ties rotate");
        p.opened(0);
        p.opened(0);
        p.opened(2);
        assert_eq!(p.pick(now, None, &[]), Some(1));
        p.opened(1);
        assert_eq!(
            p.pick(now, None, &[]),
            Some(2),
            "1 and 2 tie; the cursor is at 2"
        );
        p.closed(0);
        p.closed(0);
        p.closed(0); // one too many is harmless
        assert_eq!(p.pick(now, None, &[]), Some(0));
        assert_eq!(p.pick(now, None, &[0]), Some(1));
    }

    #[test]
    fn breaker_opens_after_failures_in_a_row_and_closes_after_a_trial() {
        let now = Instant::now();
        let mut p = pool(Balancer::NoLoadBalancer, 2);
        p.failed(0, now);
        p.succeeded(0);
        p.failed(0, now);
        assert_eq!(
            p.pick(now, None, &[]),
            Some(0),
            "the success reset the count"
        );
        p.failed(0, now);
        assert_eq!(p.pick(now, None, &[]), Some(1), "two in a row: open");
        assert_eq!(breaker(&p, now, 0), "open");
        let later = now + Duration::from_secs(30);
        assert_eq!(breaker(&p, later, 0), "half-open");
        assert_eq!(p.pick(later, None, &[]), Some(0), "half-open: one trial");
        assert_eq!(p.pick(later, None, &[]), Some(1), "while the trial is out");
        p.failed(0, later);
        assert_eq!(
            breaker(&p, later, 0),
            "open",
            "a failed trial opens it again"
        );
        let again = later + Duration::from_secs(30);
        assert_eq!(p.pick(again, None, &[]), Some(0));
        p.succeeded(0);
        assert_eq!(breaker(&p, again, 0), "closed");
        assert_eq!(picks(&mut p, again, 2), [0, 0]);
    }

    #[test]
    fn zero_failures_never_opens() {
        let now = Instant::now();
        let mut cfg = ProxyConfig::new(&["a:1"], Scheme::Http);
        cfg.breaker.failures = 0;
        let mut p = Pool::new(&cfg);
        for _ in 0..10 {
            p.failed(0, now);
        }
        assert_eq!(p.pick(now, None, &[]), Some(0));
    }

    #[test]
    fn all_down_is_none() {
        let now = Instant::now();
        let mut p = pool(Balancer::RoundRobin, 2);
        for i in [0, 1, 0, 1] {
            p.failed(i, now);
        }
        assert_eq!(p.pick(now, None, &[]), None);
        assert_eq!(p.pick(now, Some("x"), &[]), None);
    }

    #[test]
    fn sticky_sessions_keep_their_host_until_expiry() {
        let now = Instant::now();
        let mut p = pool(Balancer::CookieStickySessions, 3);
        p.stick("abc", 2, now);
        assert_eq!(p.pick(now, Some("abc"), &[]), Some(2));
        assert_eq!(p.pick(now, Some("abc"), &[]), Some(2));
        assert_eq!(
            p.pick(now, Some("unknown"), &[]),
            Some(0),
            "else round robin"
        );
        assert_eq!(p.pick(now, None, &[]), Some(1));
        let refreshed = now + Duration::from_secs(50);
        assert_eq!(p.pick(refreshed, Some("abc"), &[]), Some(2), "refreshes");
        let within = now + Duration::from_secs(100);
        assert_eq!(
            p.pick(within, Some("abc"), &[]),
            Some(2),
            "60 s after the refresh"
        );
        let expired = within + Duration::from_secs(60);
        assert_eq!(p.stuck(expired, Some("abc"), &[]), None, "expired");
        p.stick("abc", 2, expired);
        assert_eq!(
            p.pick(expired, Some("abc"), &[2]),
            Some(0),
            "tried: round robin"
        );
        p.failed(2, expired);
        p.failed(2, expired);
        assert_eq!(p.pick(expired, Some("abc"), &[]), Some(1), "breaker open");
    }

    #[test]
    fn sticky_map_is_bounded() {
        let now = Instant::now();
        let mut p = pool(Balancer::CookieStickySessions, 2);
        for k in 0..STICKY_CAP {
            p.stick(&k.to_string(), 0, now + Duration::from_millis(k as u64));
        }
        p.stick("new", 1, now + Duration::from_secs(1));
        assert_eq!(p.sticky.len(), STICKY_CAP);
        assert!(!p.sticky.contains_key("0"), "the soonest to expire went");
        let later = now + Duration::from_secs(3600);
        p.stick("newer", 1, later);
        assert_eq!(p.sticky.len(), 1, "every expired one went");
    }

    #[test]
    fn status_counts() {
        let now = Instant::now();
        let mut p = pool(Balancer::RoundRobin, 2);
        p.opened(1);
        p.opened(1);
        p.closed(1);
        p.failed(1, now);
        let rows: Vec<(String, u64, u64, u64, String)> = p
            .status("/r/", now)
            .map(|s| (s.host, s.open, s.requests, s.failures, s.breaker))
            .collect();
        let row = |h: &str, o, r, f| (h.to_string(), o, r, f, "closed".to_string());
        assert_eq!(rows, [row("h1:80", 0, 0, 0), row("h2:80", 1, 2, 1)]);
    }
}
