//! Shared pieces of wisp's benchmark harness: a latency histogram, what
//! `/proc` says about a process, and the command-line helpers the binaries
//! share.
//!
//! The binaries:
//!
//! | binary | what it is |
//! |---|---|
//! | `load` | the closed-loop WebSocket load generator (echo, idle, fan-out) |
//! | `wisp_echo` | wisp serving the benchmark's paths (and a folder of files) |
//! | `tungstenite_echo` | the same paths on tokio-tungstenite |
//! | `fastws_echo` | the same paths on fastwebsockets + hyper |
//! | `fault_soak` | real workloads through the [`faults`] proxy, every message checked (`scripts/soak --faults`) |
//!
//! With `--tls CERT KEY`, `wisp_echo` and `tungstenite_echo` serve the same
//! paths over TLS instead (`https://`, `wss://`), and `load --tls CA` is
//! their client; [`tls`] builds both ends' rustls configurations.
//!
//! Every server answers the same three WebSocket paths, so `load` drives
//! them all alike:
//!
//! - `/ws/echo`: every data message back with its opcode;
//! - `/ws/room`: joins the one room and only receives;
//! - `/ws/publish`: every data message it sends is published to the room.

#![deny(missing_docs, rust_2018_idioms)]

use std::fs;
use std::time::Duration;

pub mod deflate;
pub mod faults;
pub mod tls;

/// The WebSocket path that echoes.
pub const ECHO_PATH: &str = "/ws/echo";
/// The WebSocket path whose connections join the room.
pub const ROOM_PATH: &str = "/ws/room";
/// The WebSocket path whose messages are published to the room.
pub const PUBLISH_PATH: &str = "/ws/publish";

/// Sub-buckets per power of two: 2^7 = 128, so a bucket is under 1% wide.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Buckets covering every `u64`.
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// A log-linear histogram of durations in nanoseconds: exact below 256 ns,
/// then 128 buckets per power of two (each under 1% wide). Fixed size
/// (58 KiB), no allocation after creation, `record` is a few instructions.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < (2 * SUB) as u64 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        shift as usize * SUB + (v >> shift) as usize
    }

    /// The smallest value that lands in bucket `i`.
    fn lowest(i: usize) -> u64 {
        if i < 2 * SUB {
            return i as u64;
        }
        let shift = i / SUB - 1;
        let low = ((i - shift * SUB) as u128) << shift;
        u64::try_from(low).unwrap_or(u64::MAX)
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest duration recorded, in nanoseconds.
    pub fn max_ns(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.5 for the median), in nanoseconds: the
    /// middle of the bucket that holds it. 0 when nothing was recorded.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let low = Self::lowest(i);
                let high = Self::lowest(i + 1).max(low + 1);
                return (low + (high - low - 1) / 2).min(self.max);
            }
        }
        self.max
    }
}

/// CPU time a process has used so far (all its threads, user + system), in
/// nanoseconds: the sum of `/proc/PID/task/*/schedstat`, or `utime + stime`
/// from `/proc/PID/stat` (10 ms ticks) where schedstat is missing.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found {
        return Some(total);
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) * 10_000_000)
}

/// A field of `/proc/PID/status` in KiB, e.g. `VmRSS` or `VmHWM`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// The port a server binary was given as its first argument (default 9002).
pub fn port_arg() -> Result<u16, String> {
    match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(|_| format!("not a port: {p}")),
        None => Ok(9002),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= last, "index went back at {v}");
            assert!(Histogram::lowest(i) <= v);
            assert!(v < Histogram::lowest(i + 1) || Histogram::lowest(i + 1) == u64::MAX);
            last = i;
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_ns(0.5) as f64;
        let p99 = h.quantile_ns(0.99) as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.01, "{p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max_ns(), 1_000_000);
    }
}
