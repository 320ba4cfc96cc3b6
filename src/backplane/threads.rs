//! The backplane's two threads: publishing what the loops queued, and
//! handing on what other nodes published.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire;
use crate::cluster::{BackplaneCounters, Link, Remote, LINK_CAPACITY};
use crate::config::Backplane;
use crate::message::serial;

/// Messages waiting for the publishing thread, at most.
pub(super) const QUEUE: usize = LINK_CAPACITY;
/// Queued messages sent to Redis in one round trip, at most.
const PIPELINE: usize = 256;
/// How long a thread waits before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(250);
/// How long to wait for Redis to answer a connect or a command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// The first pause before reconnecting, doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What each backplane thread knows.
#[derive(Debug, Clone)]
pub(super) struct Side {
    pub settings: Backplane,
    /// This node's index in the node names.
    pub node: u16,
    pub counters: Arc<BackplaneCounters>,
    pub stop: Arc<AtomicBool>,
}

impl Side {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.settings.redis.as_str())?;
        let con = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
        con.set_read_timeout(Some(REDIS_TIMEOUT))?;
        con.set_write_timeout(Some(REDIS_TIMEOUT))?;
        Ok(con)
    }

    /// The publishing thread: each queued delivery, encoded, to the channel.
    pub fn publish_all(&self, rx: &Receiver<Remote>) {
        let counters = &self.counters;
        let mut con: Option<redis::Connection> = None;
        let mut backoff = Backoff::default();
        while !self.stopped() {
            if counters.stale.swap(false, Ordering::Relaxed) && con.take().is_some() {
                counters.publishing.store(false, Ordering::Relaxed);
            }
            if con.is_none() && backoff.due() {
                match self.connect() {
                    Ok(c) => {
                        con = Some(c);
                        backoff = Backoff::default();
                    }
                    Err(e) => {
                        log::debug!("backplane: cannot publish to {}: {e}", self.settings.redis);
                        backoff.failed();
                    }
                }
                counters.publishing.store(con.is_some(), Ordering::Relaxed);
            }
            let remote = match rx.recv_timeout(POLL) {
                Ok(remote) => remote,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // What else is waiting goes in the same round trip (pipelined,
            // in order), so a burst costs one wait for Redis, not one each.
            let batch: Vec<Remote> = std::iter::once(remote)
                .chain(rx.try_iter().take(PIPELINE - 1))
                .collect();
            let n = batch.len() as u64;
            let Some(c) = &mut con else {
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                continue;
            };
            let mut pipe = redis::pipe();
            for remote in &batch {
                let bytes = wire::encode(&self.settings.node, remote);
                pipe.cmd("PUBLISH")
                    .arg(&self.settings.channel)
                    .arg(bytes)
                    .ignore();
            }
            match pipe.query::<()>(c) {
                Ok(()) => {
                    counters.sent.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    log::warn!(
                        "backplane: publishing to {} failed: {e}",
                        self.settings.redis
                    );
                    counters.dropped.fetch_add(n, Ordering::Relaxed);
                    con = None;
                    counters.publishing.store(false, Ordering::Relaxed);
                    backoff.failed();
                }
            }
        }
    }

    /// The subscribing thread: listens, and on any failure logs and counts
    /// the outage once, waits, and listens again.
    pub fn subscribe(&self, links: &[Link], max: usize) {
        let counters = &self.counters;
        let mut backoff = Backoff::default();
        let mut was_up = None;
        while !self.stopped() {
            let outcome = self.listen(links, max, &mut was_up);
            counters.subscribed.store(false, Ordering::Relaxed);
            counters.stale.store(true, Ordering::Relaxed);
            let Err(e) = outcome else {
                return; // Stopped.
            };
            if was_up != Some(false) {
                let what = if was_up.is_none() {
                    "unreachable"
                } else {
                    "lost"
                };
                log::warn!(
                    "backplane: Redis at {} {what} ({e}): serving locally, retrying",
                    self.settings.redis
                );
                BackplaneCounters::add(&counters.outages);
                was_up = Some(false);
            }
            backoff.failed();
            while !self.stopped() && !backoff.due() {
                std::thread::sleep(backoff.left().min(POLL));
            }
        }
    }

    /// Subscribes and hands on what arrives, until Redis fails (`Err`) or
    /// the server stops (`Ok`).
    fn listen(
        &self,
        links: &[Link],
        max: usize,
        was_up: &mut Option<bool>,
    ) -> redis::RedisResult<()> {
        let mut con = self.connect()?;
        let mut pubsub = con.as_pubsub();
        pubsub.subscribe(&self.settings.channel)?;
        pubsub.set_read_timeout(Some(POLL))?;
        self.counters.subscribed.store(true, Ordering::Relaxed);
        let again = if was_up.is_some() { " again" } else { "" };
        log::info!(
            "backplane: node {} subscribed{again} to {:?} on {}",
            self.settings.node,
            self.settings.channel,
            self.settings.redis
        );
        *was_up = Some(true);
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(msg) => self.hand_on(links, msg.get_payload_bytes(), max),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Decodes a message and gives it to the workers it is for.
    fn hand_on(&self, links: &[Link], bytes: &[u8], max: usize) {
        let counters = &self.counters;
        let remote = match wire::decode(bytes, &self.settings.node, max) {
            Some(wire::Inbound::Deliver(remote)) => remote,
            Some(wire::Inbound::Own) => return,
            None => {
                log::debug!(
                    "backplane: a malformed message dropped ({} bytes)",
                    bytes.len()
                );
                BackplaneCounters::add(&counters.malformed);
                return;
            }
        };
        let dropped = match &remote {
            Remote::Send { to, .. } => {
                if serial::node(to.serial) != self.node {
                    return; // For another node.
                }
                match links.get(to.worker()) {
                    Some(link) => u64::from(!link.offer(remote)),
                    None => 1,
                }
            }
            _ => links.iter().filter(|l| !l.offer(remote.clone())).count() as u64,
        };
        BackplaneCounters::add(&counters.received);
        counters.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

/// When to try Redis again: 100 ms after a failure, doubling to 2 s.
#[derive(Debug, Default)]
struct Backoff {
    next: Option<Instant>,
    pause: Option<Duration>,
}

impl Backoff {
    fn due(&self) -> bool {
        self.next.is_none_or(|t| t <= Instant::now())
    }

    fn left(&self) -> Duration {
        self.next.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
    }

    fn failed(&mut self) {
        let pause = self
            .pause
            .map_or(FIRST_BACKOFF, |p| (p * 2).min(MAX_BACKOFF));
        self.pause = Some(pause);
        self.next = Some(Instant::now() + pause);
    }
}
