//! A fault-injecting TCP proxy for tests: it sits between a client and the
//! server on loopback and, per connection and by a seeded random schedule,
//! splits writes down to single bytes, delays and stalls segments, passes a
//! client's half-close on, and resets a connection (an RST, by `SO_LINGER`
//! 0) after an exact number of the client's bytes — in the middle of a
//! WebSocket frame, an HTTP request or a TLS handshake.
//!
//! Loopback loses no packet, so this user-space proxy is the fault model of
//! the fault soak (`fault_soak`, run by `scripts/soak --faults SECONDS`).
//! Threads, blocking sockets: it is a test tool, not the server.
//!
//! ```no_run
//! use wisp_bench::faults::{Counters, FaultProxy, Plan, Rng};
//! # fn main() -> std::io::Result<()> {
//! let counters = std::sync::Arc::new(Counters::default());
//! let proxy = FaultProxy::start("127.0.0.1:8080".parse().unwrap(), counters)?;
//! let mut rng = Rng::new(42);
//! let plan = Plan::disruptive(&mut rng); // split, delay and stall at random
//! let stream = proxy.connect(plan)?;    // a client socket through the proxy
//! # drop(stream); Ok(()) }
//! ```
//!
//! Split, delay and stall do not break a connection: everything sent
//! arrives, intact and in order, only in other pieces and later. A reset
//! does: the client's first `reset_after` bytes reach the server, then both
//! sides get an RST. A half-close is the client's own `shutdown(Write)`,
//! which the proxy passes on as a FIN once everything before it is through.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A small seeded PRNG (splitmix64): the same seed, the same schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A generator of its own for a sub-task, derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Seeds the connection's schedule (both directions).
    pub seed: u64,
    /// Forward every read in pieces of 1..=`split` bytes (1: byte by byte).
    pub split: Option<usize>,
    /// Percent of pieces delayed by 1–5 ms before they are forwarded.
    pub delay: u8,
    /// Percent of pieces held 50–300 ms before they are forwarded.
    pub stall: u8,
    /// After this many of the client's bytes have reached the server, reset
    /// both sides (RST, no FIN).
    pub reset_after: Option<u64>,
}

impl Plan {
    /// A clean pass-through.
    pub fn clean(seed: u64) -> Plan {
        Plan {
            seed,
            ..Plan::default()
        }
    }

    /// A non-destructive schedule: at least one of split, delay and stall.
    pub fn disruptive(rng: &mut Rng) -> Plan {
        let mut plan = Plan::clean(rng.next_u64());
        let kinds = rng.range(1, 7);
        if kinds & 1 != 0 {
            plan.split = Some(match rng.range(0, 2) {
                0 => 1,
                1 => rng.range(2, 8) as usize,
                _ => rng.range(9, 200) as usize,
            });
        }
        if kinds & 2 != 0 {
            plan.delay = rng.range(5, 30) as u8;
        }
        if kinds & 4 != 0 {
            plan.stall = rng.range(1, 4) as u8;
        }
        plan
    }

    /// Whether the plan breaks the connection on purpose.
    pub fn breaks(&self) -> bool {
        self.reset_after.is_some()
    }
}

/// Faults injected, by kind, over every connection of every proxy sharing
/// these counters (the soak's summary).
#[derive(Debug, Default)]
pub struct Counters {
    /// Reads forwarded in more than one piece.
    pub split: AtomicU64,
    /// Pieces delayed a few milliseconds.
    pub delay: AtomicU64,
    /// Pieces held up to a few hundred milliseconds.
    pub stall: AtomicU64,
    /// Half-closes (client FIN) passed on to the server.
    pub half_close: AtomicU64,
    /// Connections reset on purpose.
    pub reset: AtomicU64,
    /// Connections the proxy carried.
    pub connections: AtomicU64,
}

/// How to cut one read of `len` bytes: the piece lengths, in order (they
/// add up to `len`).
pub fn pieces(rng: &mut Rng, len: usize, split: Option<usize>) -> Vec<usize> {
    let Some(max) = split else {
        return vec![len];
    };
    let max = max.max(1);
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = (rng.range(1, max as u64) as usize).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// Pieces one direction of a connection is cut into at most; after that
/// its reads go on whole (a large file byte by byte would take minutes).
pub const MAX_PIECES: u32 = 20_000;
/// Stalls in one direction of a connection at most.
pub const MAX_STALLS: u32 = 3;
/// Delays in one direction of a connection at most.
pub const MAX_DELAYS: u32 = 40;

/// One direction's schedule: the plan, its generator and what is left of
/// its budgets.
#[derive(Debug)]
pub struct Schedule {
    plan: Plan,
    rng: Rng,
    pieces: u32,
    stalls: u32,
    delays: u32,
}

/// What to do before forwarding one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Nothing: forward it now.
    None,
    /// Sleep a few milliseconds first.
    Delay(Duration),
    /// Hold it up to a few hundred milliseconds first.
    Stall(Duration),
}

impl Schedule {
    /// The schedule of one direction of a connection treated by `plan`.
    pub fn new(plan: Plan, rng: Rng) -> Schedule {
        Schedule {
            plan,
            rng,
            pieces: MAX_PIECES,
            stalls: MAX_STALLS,
            delays: MAX_DELAYS,
        }
    }

    /// How to cut the next read of `len` bytes.
    pub fn cut(&mut self, len: usize) -> Vec<usize> {
        if self.pieces == 0 {
            return vec![len];
        }
        let cut = pieces(&mut self.rng, len, self.plan.split);
        self.pieces = self.pieces.saturating_sub(cut.len() as u32);
        cut
    }

    /// The pause before the next piece.
    pub fn pause(&mut self) -> Pause {
        if self.stalls > 0 && self.plan.stall > 0 && self.rng.chance(self.plan.stall.into()) {
            self.stalls -= 1;
            return Pause::Stall(Duration::from_millis(self.rng.range(50, 300)));
        }
        if self.delays > 0 && self.plan.delay > 0 && self.rng.chance(self.plan.delay.into()) {
            self.delays -= 1;
            return Pause::Delay(Duration::from_millis(self.rng.range(1, 5)));
        }
        Pause::None
    }
}

type Plans = Arc<(Mutex<HashMap<u16, Plan>>, Condvar)>;

/// The proxy: a listener on `127.0.0.1:0` in front of one upstream.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    plans: Plans,
    stop: Arc<AtomicBool>,
}

/// How long a connection waits for its plan, and for the upstream's connect.
const PLAN_WAIT: Duration = Duration::from_secs(5);

impl FaultProxy {
    /// Listens on a loopback port of the OS's choosing, forwarding to
    /// `upstream`, and counts faults into `counters`.
    pub fn start(upstream: SocketAddr, counters: Arc<Counters>) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let plans: Plans = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (plans.clone(), stop.clone());
        thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (p, c) = (p.clone(), counters.clone());
                    let _ = thread::Builder::new()
                        .name("fault-conn".into())
                        .spawn(move || carry(client, upstream, p, c));
                }
            })?;
        Ok(FaultProxy { addr, plans, stop })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client connection through the proxy, treated by `plan`.
    pub fn connect(&self, plan: Plan) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr)?;
        let port = stream.local_addr()?.port();
        let (lock, ready) = &*self.plans;
        lock.lock().expect("plans").insert(port, plan);
        ready.notify_all();
        Ok(stream)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Sets `SO_LINGER` to 0: closing the socket then sends an RST.
fn linger_zero(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// One proxied connection: waits for its plan, connects upstream, pumps both ways.
fn carry(client: TcpStream, upstream: SocketAddr, plans: Plans, counters: Arc<Counters>) {
    let Ok(peer) = client.peer_addr() else { return };
    let plan = {
        let (lock, ready) = &*plans;
        let deadline = Instant::now() + PLAN_WAIT;
        let mut map = lock.lock().expect("plans");
        loop {
            if let Some(plan) = map.remove(&peer.port()) {
                break plan;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return; // Not ours (the stop wake-up) or given up.
            }
            map = ready.wait_timeout(map, left).expect("plans").0;
        }
    };
    let Ok(server) = TcpStream::connect_timeout(&upstream, PLAN_WAIT) else {
        linger_zero(&client);
        return;
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let shared = Arc::new(Shared {
        client,
        server,
        aborted: AtomicBool::new(false),
    });
    let mut rng = Rng::new(plan.seed);
    let back_rng = rng.fork();
    let (s, c) = (shared.clone(), counters.clone());
    let back = thread::Builder::new()
        .name("fault-back".into())
        .spawn(move || pump(&s, Direction::ToClient, plan, back_rng, &c));
    pump(&shared, Direction::ToServer, plan, rng, &counters);
    if let Ok(back) = back {
        let _ = back.join();
    }
}

struct Shared {
    client: TcpStream,
    server: TcpStream,
    aborted: AtomicBool,
}

impl Shared {
    /// Both sockets end with an RST once both pumps let go of them.
    fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        linger_zero(&self.client);
        linger_zero(&self.server);
        // Wakes both pumps' reads without sending anything.
        let _ = self.client.shutdown(Shutdown::Read);
        let _ = self.server.shutdown(Shutdown::Read);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

fn pump(shared: &Shared, dir: Direction, plan: Plan, rng: Rng, counters: &Counters) {
    let mut schedule = Schedule::new(plan, rng);
    let (mut from, mut to) = match dir {
        Direction::ToServer => (&shared.client, &shared.server),
        Direction::ToClient => (&shared.server, &shared.client),
    };
    let mut left = match dir {
        Direction::ToServer => plan.reset_after,
        Direction::ToClient => None,
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                shared.abort();
                return;
            }
        };
        if shared.aborted.load(Ordering::SeqCst) {
            return;
        }
        if n == 0 {
            // A FIN: pass it on once everything before it is through.
            if dir == Direction::ToServer {
                counters.half_close.fetch_add(1, Ordering::Relaxed);
            }
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        let mut data = &buf[..n];
        let mut reset_now = false;
        if let Some(l) = left.as_mut() {
            if *l <= n as u64 {
                data = &data[..*l as usize];
                reset_now = true;
            } else {
                *l -= n as u64;
            }
        }
        let cut = schedule.cut(data.len());
        if cut.len() > 1 {
            counters.split.fetch_add(1, Ordering::Relaxed);
        }
        let mut at = 0;
        for len in cut {
            match schedule.pause() {
                Pause::None => {}
                Pause::Delay(d) => {
                    counters.delay.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(d);
                }
                Pause::Stall(d) => {
                    counters.stall.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(d);
                }
            }
            if to.write_all(&data[at..at + len]).is_err() {
                shared.abort();
                return;
            }
            at += len;
        }
        if reset_now {
            counters.reset.fetch_add(1, Ordering::Relaxed);
            shared.abort();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let plans: Vec<Plan> = (0..50).map(|_| Plan::disruptive(&mut a)).collect();
        let again: Vec<Plan> = (0..50).map(|_| Plan::disruptive(&mut b)).collect();
        assert_eq!(plans, again);
        assert!(plans
            .iter()
            .all(|p| p.split.is_some() || p.delay > 0 || p.stall > 0));
        assert!(plans.iter().any(|p| p.split == Some(1)));
        assert!(!plans.iter().any(Plan::breaks));
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn pieces_cover_the_read_exactly() {
        let mut rng = Rng::new(1);
        for len in [0, 1, 2, 17, 4096] {
            for split in [None, Some(1), Some(3), Some(100)] {
                let cut = pieces(&mut rng, len, split);
                assert_eq!(cut.iter().sum::<usize>(), len, "{len} {split:?}");
                if let Some(max) = split {
                    assert!(cut.iter().all(|&n| (1..=max).contains(&n)));
                }
            }
        }
        assert_eq!(pieces(&mut rng, 5, Some(1)), vec![1; 5]);
        assert_eq!(pieces(&mut rng, 5, None), vec![5]);
    }

    #[test]
    fn budgets_bound_the_pieces_and_the_pauses() {
        let plan = Plan {
            seed: 5,
            split: Some(1),
            delay: 100,
            stall: 100,
            reset_after: None,
        };
        let mut s = Schedule::new(plan, Rng::new(5));
        assert_eq!(s.cut(MAX_PIECES as usize).len(), MAX_PIECES as usize);
        assert_eq!(s.cut(10), vec![10]);
        let pauses: Vec<Pause> = (0..100).map(|_| s.pause()).collect();
        let stalls = pauses
            .iter()
            .filter(|p| matches!(p, Pause::Stall(_)))
            .count();
        let delays = pauses
            .iter()
            .filter(|p| matches!(p, Pause::Delay(_)))
            .count();
        assert_eq!((stalls, delays), (MAX_STALLS as usize, MAX_DELAYS as usize));
    }

    /// What the upstream saw, and how its connection ended.
    type Seen = (Vec<u8>, io::Result<()>);

    /// An upstream that echoes one connection, reporting what it saw.
    fn echo_server() -> (SocketAddr, thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return (seen, Ok(())),
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        if let Err(e) = s.write_all(&buf[..n]) {
                            return (seen, Err(e));
                        }
                    }
                    Err(e) => return (seen, Err(e)),
                }
            }
        });
        (addr, handle)
    }

    #[test]
    fn split_delayed_stalled_bytes_arrive_intact_then_the_half_close() {
        let (addr, server) = echo_server();
        let counters = Arc::new(Counters::default());
        let proxy = FaultProxy::start(addr, counters.clone()).unwrap();
        let plan = Plan {
            seed: 3,
            split: Some(1),
            delay: 20,
            stall: 1,
            reset_after: None,
        };
        let mut c = proxy.connect(plan).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        c.write_all(&data).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let (seen, end) = server.join().unwrap();
        assert_eq!(seen, data);
        assert!(end.is_ok());
        assert!(counters.split.load(Ordering::Relaxed) >= 1);
        assert!(counters.delay.load(Ordering::Relaxed) >= 1);
        assert_eq!(counters.half_close.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_reset_passes_exactly_its_bytes_then_resets_both_sides() {
        let (addr, server) = echo_server();
        let counters = Arc::new(Counters::default());
        let proxy = FaultProxy::start(addr, counters.clone()).unwrap();
        let plan = Plan {
            seed: 9,
            split: Some(4),
            reset_after: Some(10),
            ..Plan::default()
        };
        let mut c = proxy.connect(plan).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"0123456789abcdef").unwrap();
        // The server sees the first ten bytes, then an RST (not a FIN).
        let (seen, end) = server.join().unwrap();
        assert_eq!(seen, b"0123456789");
        assert!(end.is_err(), "the server saw a FIN, not an RST");
        // The client's connection ends too (what was echoed, then nothing).
        let mut back = Vec::new();
        let _ = c.read_to_end(&mut back);
        assert!(b"0123456789".starts_with(&back));
        assert_eq!(counters.reset.load(Ordering::Relaxed), 1);
    }
}
