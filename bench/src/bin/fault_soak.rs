//! The fault soak: real workloads at once, every connection through the
//! fault proxy ([`wisp_bench::faults`]) with a seeded random schedule, every
//! message checked. `scripts/soak --faults SECONDS` runs it against the
//! release binary.
//!
//! ```text
//! fault_soak --addr 127.0.0.1:PORT --docs DIR --seconds 60 [--tls-addr 127.0.0.1:PORT --ca ca.pem]
//!            [--seed N] [--workers 12] [--latency-bound-ms 2000]
//! ```
//!
//! The workloads (each connection one of them, in turn):
//!
//! - `http`, `https`: pipelined GETs of `DOCS/big.bin` and `DOCS/small.txt`
//!   and `Range` requests of `big.bin`, sent at once; every answer must be
//!   `200` with the whole file or `206` with the exact `Content-Range` and
//!   slice, in order.
//! - `ws`, `ws-deflate`, `wss`, `gateway`: WebSocket echo on `/ws/echo`
//!   (`gateway`: on `/gateway/echo`, which the server's `proxy` route passes
//!   to its own `/ws/echo`), messages fragmented at random (pings between
//!   fragments now and then), in batches; `ws-deflate` negotiates
//!   permessage-deflate and sends every message compressed. Each message
//!   carries `seq=N sum=FNV len=L|` and its body; each echo must be the
//!   next sequence number with a matching checksum and the very bytes sent.
//!   The clean end is a close `1000` answered with `1000`.
//! - `chat`: rooms of three members on `/ws/chat`; each member says ten
//!   numbered, checksummed lines once all have joined, and every member
//!   must get every member's lines, each sender's in order.
//!
//! Each connection gets a non-destructive schedule (split, delay, stall:
//! everything must arrive intact and in order) or, now and then, a
//! deliberate break, with its documented outcome checked:
//!
//! - half-close (plain `http`, `ws`, `ws-deflate`): the client shuts its
//!   write side after its last request or message; every answer or echo
//!   still arrives, then the server closes (EOF); through the gateway
//!   (`gateway`), a FIN without a close frame is a client gone (the
//!   downstream gets 1001), so the echoes still on their way back may be
//!   lost: what arrives must be an intact, in-order prefix, then EOF;
//! - reset mid-request / mid-frame (plain): the proxy passes the client's
//!   bytes up to a point inside a request or a WebSocket frame, then resets
//!   both sides; what came back before must be an intact, in-order prefix,
//!   and the connection ends;
//! - reset mid-handshake: inside the upgrade request or the TLS handshake;
//!   no `101` and no answer may come back.
//!
//! A probe thread GETs `/small.txt` directly (not through the proxy) on a
//! fresh connection every 20 ms; its worst latency must stay under the
//! bound. Exits non-zero on any loss, damage, unexpected status, close code
//! or ending, or a latency breach; prints the seed so a failure can be run
//! again with `--seed`.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use wisp_bench::deflate::{self, Deflater, Inflater};
use wisp_bench::faults::{Counters, FaultProxy, Plan, Rng};

/// How long one read may wait before the soak calls the connection stuck.
const STUCK: Duration = Duration::from_secs(15);
/// Members of a chat room.
const MEMBERS: usize = 3;
/// Lines each chat member says.
const LINES: usize = 10;
/// Largest inflated message accepted.
const MAX_MESSAGE: usize = 1 << 20;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The connection ended (EOF or reset): the documented end of a
/// deliberately broken one, a loss on any other.
fn eof(what: String) -> Error {
    Box::new(io::Error::new(io::ErrorKind::UnexpectedEof, what))
}

/// Whether `e` is a connection's end (EOF, reset), not damage, a wrong
/// answer or a hang.
fn ended(e: &Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    })
}

#[derive(Clone)]
struct Args {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ca: Option<PathBuf>,
    docs: PathBuf,
    seconds: u64,
    seed: u64,
    workers: usize,
    bound: Duration,
}

fn parse_args() -> Result<Args, Error> {
    let usage = "usage: fault_soak --addr HOST:PORT --docs DIR --seconds N \
                 [--tls-addr HOST:PORT --ca CA.pem] [--seed N] [--workers N] [--latency-bound-ms N]";
    let mut addr = None;
    let mut args = Args {
        addr: "127.0.0.1:0".parse()?,
        tls_addr: None,
        ca: None,
        docs: PathBuf::new(),
        seconds: 0,
        seed: SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
        workers: 12,
        bound: Duration::from_secs(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--addr" => addr = Some(value.parse()?),
            "--tls-addr" => args.tls_addr = Some(value.parse()?),
            "--ca" => args.ca = Some(value.into()),
            "--docs" => args.docs = value.into(),
            "--seconds" => args.seconds = value.parse()?,
            "--seed" => args.seed = value.parse()?,
            "--workers" => args.workers = value.parse()?,
            "--latency-bound-ms" => args.bound = Duration::from_millis(value.parse()?),
            _ => return Err(format!("unknown flag {flag}; {usage}").into()),
        }
    }
    args.addr = addr.ok_or(usage)?;
    for a in [Some(args.addr), args.tls_addr].into_iter().flatten() {
        if !a.ip().is_loopback() {
            return Err("the fault soak only targets loopback addresses".into());
        }
    }
    if args.tls_addr.is_some() != args.ca.is_some() {
        return Err("--tls-addr and --ca go together".into());
    }
    Ok(args)
}

// ---------------------------------------------------------------------------
// What is counted

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Http,
    Https,
    Ws,
    WsDeflate,
    Wss,
    Gateway,
    Chat,
}

impl Workload {
    const ALL: [Workload; 7] = [
        Workload::Http,
        Workload::Ws,
        Workload::Chat,
        Workload::WsDeflate,
        Workload::Https,
        Workload::Gateway,
        Workload::Wss,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Http => "http",
            Workload::Https => "https",
            Workload::Ws => "ws",
            Workload::WsDeflate => "ws-deflate",
            Workload::Wss => "wss",
            Workload::Gateway => "gateway",
            Workload::Chat => "chat",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Workload::Https | Workload::Wss)
    }
}

/// The deliberate break of one connection, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Break {
    None,
    HalfClose,
    /// Reset inside a request (HTTP) or a frame (WebSocket).
    ResetMid,
    ResetHandshake,
}

#[derive(Default)]
struct Tally {
    connections: [AtomicU64; 7],
    chat_rooms: AtomicU64,
    half_close: AtomicU64,
    reset_frame: AtomicU64,
    reset_request: AtomicU64,
    reset_handshake: AtomicU64,
    /// Deliberately broken connections that ended as documented.
    breaks_as_documented: AtomicU64,
    /// Half-closes through the gateway whose last echoes did not come back.
    gateway_cut_short: AtomicU64,
    verified: AtomicU64,
    lost: AtomicU64,
    failures: AtomicU64,
}

impl Tally {
    fn fail(&self, what: String) {
        let n = self.failures.fetch_add(1, Relaxed);
        if n < 10 {
            eprintln!("fault soak: FAIL {what}");
        }
    }
}

// ---------------------------------------------------------------------------
// A client stream: plain or TLS, through the proxy

enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => &s.sock,
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.shutdown(Shutdown::Write),
            Io::Tls(_) => Err(io::Error::other("no half-close over TLS here")),
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// A stream and what was read from it but not yet used.
struct Conn {
    io: Io,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more; false at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls reports a peer that closed without close_notify as an error.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes `n` bytes, reading as needed; an error at EOF.
    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF in the middle of an answer",
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Whether the peer ends the stream (EOF or reset) with nothing more to say.
    fn at_end(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!("{} bytes more than expected", self.buf.len()));
        }
        match self.fill() {
            Ok(false) => Ok(()),
            Ok(true) => Err(format!("{} bytes more than expected", self.buf.len())),
            Err(e) => Err(format!("{e} instead of EOF")),
        }
    }
}

struct Env {
    args: Args,
    proxy: FaultProxy,
    tls_proxy: Option<FaultProxy>,
    tls: Option<Arc<ClientConfig>>,
    big: Vec<u8>,
    small: Vec<u8>,
    counters: Arc<Counters>,
    tally: Tally,
    deadline: Instant,
}

impl Env {
    fn connect(&self, tls: bool, plan: Plan) -> Result<Conn, Error> {
        let io = if tls {
            let proxy = self.tls_proxy.as_ref().ok_or("no TLS listener")?;
            let config = self.tls.clone().ok_or("no TLS client")?;
            let s = proxy.connect(plan)?;
            s.set_read_timeout(Some(STUCK))?;
            s.set_write_timeout(Some(STUCK))?;
            let c = ClientConnection::new(config, wisp_bench::tls::server_name())?;
            Io::Tls(Box::new(StreamOwned::new(c, s)))
        } else {
            let s = self.proxy.connect(plan)?;
            s.set_read_timeout(Some(STUCK))?;
            s.set_write_timeout(Some(STUCK))?;
            Io::Plain(s)
        };
        let _ = io.tcp().set_nodelay(true);
        Ok(Conn {
            io,
            buf: Vec::new(),
        })
    }
}

// ---------------------------------------------------------------------------
// Messages: numbered and checksummed

fn fnv(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `seq=N sum=XXXXXXXX len=L|` and a body of `len` letters.
fn message(rng: &mut Rng, seq: u64, max: u64) -> Vec<u8> {
    let len = match rng.range(0, 9) {
        0 => rng.range(1000, max.max(1000)),
        1 => 0,
        _ => rng.range(1, 300),
    } as usize;
    let body: Vec<u8> = (0..len)
        .map(|_| b"abcdefghijklmnopqrstuvwxyz .,"[rng.range(0, 28) as usize])
        .collect();
    let mut m = format!("seq={seq} sum={:08x} len={len}|", fnv(&body)).into_bytes();
    m.extend_from_slice(&body);
    m
}

/// The sequence number of a message whose checksum and length hold.
fn check_message(m: &[u8]) -> Result<u64, String> {
    let bar = m
        .iter()
        .position(|&b| b == b'|')
        .ok_or("a message without its header")?;
    let head = std::str::from_utf8(&m[..bar]).map_err(|_| "a header not UTF-8")?;
    let body = &m[bar + 1..];
    let mut seq = None;
    let mut sum = None;
    let mut len = None;
    for part in head.split(' ') {
        match part.split_once('=') {
            Some(("seq", v)) => seq = v.parse::<u64>().ok(),
            Some(("sum", v)) => sum = u32::from_str_radix(v, 16).ok(),
            Some(("len", v)) => len = v.parse::<usize>().ok(),
            _ => return Err(format!("a header part {part:?}")),
        }
    }
    let (Some(seq), Some(sum), Some(len)) = (seq, sum, len) else {
        return Err(format!("a header {head:?}"));
    };
    if len != body.len() {
        return Err(format!("seq {seq}: length {} for {len}", body.len()));
    }
    if fnv(body) != sum {
        return Err(format!("seq {seq}: the checksum does not match"));
    }
    Ok(seq)
}

// ---------------------------------------------------------------------------
// WebSocket frames

const TEXT: u8 = 0x1;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn masked(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

/// One message as 1–4 frames (a ping between two now and then): the frames' bytes.
fn frames(rng: &mut Rng, payload: &[u8], compressed: bool) -> Vec<Vec<u8>> {
    let parts = if payload.len() < 2 {
        1
    } else {
        rng.range(1, 4) as usize
    };
    let mut cuts: Vec<usize> = (1..parts)
        .map(|_| rng.range(1, payload.len() as u64 - 1) as usize)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.insert(0, 0);
    cuts.push(payload.len());
    let mut out = Vec::new();
    for (i, w) in cuts.windows(2).enumerate() {
        let last = i + 2 == cuts.len();
        let mut first = if i == 0 { TEXT } else { CONT };
        if i == 0 && compressed {
            first |= 0x40;
        }
        if last {
            first |= 0x80;
        }
        let mask = (rng.next_u64() as u32).to_be_bytes();
        out.push(masked(first, &payload[w[0]..w[1]], mask));
        if !last && rng.chance(20) {
            out.push(masked(0x80 | PING, b"p", mask));
        }
    }
    out
}

enum Incoming {
    Text(Vec<u8>),
    Close(Option<u16>),
}

/// Reads one message (skipping pongs and pings), inflating it when RSV1 says so.
fn read_message(c: &mut Conn, inflater: &mut Inflater) -> Result<Option<Incoming>, Error> {
    let mut data: Vec<u8> = Vec::new();
    let mut compressed = false;
    let mut started = false;
    loop {
        if c.buf.is_empty() && !started && !c.fill()? {
            return Ok(None);
        }
        let h = c.take(2)?;
        if h[1] & 0x80 != 0 {
            return Err("a masked frame from the server".into());
        }
        let len = match h[1] & 0x7f {
            126 => u16::from_be_bytes(c.take(2)?.try_into().expect("2")) as usize,
            127 => u64::from_be_bytes(c.take(8)?.try_into().expect("8")) as usize,
            n => n as usize,
        };
        if len > MAX_MESSAGE {
            return Err(format!("a frame of {len} bytes").into());
        }
        let payload = c.take(len)?;
        let (fin, rsv1, op) = (h[0] & 0x80 != 0, h[0] & 0x40 != 0, h[0] & 0x0f);
        match op {
            PING | PONG => continue,
            CLOSE => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                return Ok(Some(Incoming::Close(code)));
            }
            TEXT if !started => {
                started = true;
                compressed = rsv1;
            }
            CONT if started => {}
            _ => return Err(format!("an unexpected frame, first byte {:#04x}", h[0]).into()),
        }
        data.extend_from_slice(&payload);
        if fin {
            break;
        }
    }
    if compressed {
        data = inflater
            .message(&data, true, MAX_MESSAGE)
            .map_err(|e| format!("a message that does not inflate: {e}"))?
            .to_vec();
    }
    Ok(Some(Incoming::Text(data)))
}

/// The HTTP head at the front of the buffer: its status and its lines (lower case).
fn read_head(c: &mut Conn) -> Result<(u16, String), Error> {
    loop {
        if let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = c.buf.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let status = text
                .strip_prefix("http/1.1 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("a bad status line: {:?}", text.lines().next()))?;
            return Ok((status, text));
        }
        if !c.fill()? {
            return Err(eof(if c.buf.is_empty() {
                "EOF instead of an answer".into()
            } else {
                "EOF in an answer's head".into()
            }));
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(path: &str, deflate: bool) -> Vec<u8> {
    let offer = if deflate {
        format!("Sec-WebSocket-Extensions: {}\r\n", deflate::offer(false))
    } else {
        String::new()
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .into_bytes()
}

/// Reads the answer to an upgrade: a 101 (checking the extension answer).
fn read_upgrade(c: &mut Conn, deflate: bool) -> Result<(), Error> {
    let (status, head) = read_head(c)?;
    if status != 101 {
        return Err(format!("upgrade answered {status}").into());
    }
    let ext: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("sec-websocket-extensions:"))
        .collect();
    if deflate {
        deflate::check_answer(&ext, false)?;
    } else if !ext.is_empty() {
        return Err("an extension not offered".into());
    }
    Ok(())
}

/// Ends a WebSocket cleanly: close 1000, the server's close 1000, EOF.
fn close_clean(c: &mut Conn, inflater: &mut Inflater, rng: &mut Rng) -> Result<(), Error> {
    let mask = (rng.next_u64() as u32).to_be_bytes();
    c.io.write_all(&masked(0x80 | CLOSE, &1000u16.to_be_bytes(), mask))?;
    match read_message(c, inflater)? {
        Some(Incoming::Close(Some(1000))) => {}
        Some(Incoming::Close(code)) => {
            return Err(format!("our close 1000 answered with {code:?}").into())
        }
        Some(Incoming::Text(_)) => return Err("a message after our close".into()),
        None => return Err("EOF instead of the close frame".into()),
    }
    c.at_end().map_err(|e| format!("after the close: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Workloads

/// A random break for a connection of `w` (most have none): TLS ones are
/// reset in their handshake (a point inside a TLS record stream is not one
/// the soak can place), plain ones half-closed or reset inside a request,
/// a frame or the upgrade request.
fn pick_break(rng: &mut Rng, w: Workload) -> Break {
    let roll = rng.range(0, 99);
    match (w, roll) {
        (Workload::Chat, _) => Break::None,
        (Workload::Https | Workload::Wss, 0..=9) => Break::ResetHandshake,
        (Workload::Https | Workload::Wss, _) => Break::None,
        (Workload::Http, 0..=9) => Break::HalfClose,
        (Workload::Http, 10..=19) => Break::ResetMid,
        (Workload::Http, _) => Break::None,
        (_, 0..=7) => Break::HalfClose,
        (_, 8..=15) => Break::ResetMid,
        (_, 16..=23) => Break::ResetHandshake,
        _ => Break::None,
    }
}

fn ws_echo(env: &Env, w: Workload, rng: &mut Rng, brk: Break) -> Result<(), Error> {
    let deflate = w == Workload::WsDeflate;
    let path = if w == Workload::Gateway {
        "/gateway/echo"
    } else {
        "/ws/echo"
    };
    let count = rng.range(3, 24);
    let max = if w == Workload::Gateway {
        70_000
    } else {
        40_000
    };
    let mut deflater = Deflater::new(1);
    let messages: Vec<Vec<u8>> = (0..count).map(|s| message(rng, s, max)).collect();
    let framed: Vec<Vec<Vec<u8>>> = messages
        .iter()
        .map(|m| {
            let payload = if deflate {
                deflater.message(m, true).to_vec()
            } else {
                m.clone()
            };
            frames(rng, &payload, deflate)
        })
        .collect();
    let request = upgrade_request(path, deflate);
    let mut plan = Plan::disruptive(rng);
    // Messages whose every byte reaches the server before a reset.
    let mut complete = count;
    match brk {
        Break::ResetHandshake => {
            let most = if w.tls() {
                100
            } else {
                request.len() as u64 - 1
            };
            plan.reset_after = Some(rng.range(1, most));
        }
        Break::ResetMid => {
            let j = rng.range(0, count - 1) as usize;
            let f = rng.range(0, framed[j].len() as u64 - 1) as usize;
            let before: usize = framed[..j].iter().flatten().map(Vec::len).sum::<usize>()
                + framed[j][..f].iter().map(Vec::len).sum::<usize>();
            let inside = rng.range(1, framed[j][f].len() as u64 - 1) as usize;
            plan.reset_after = Some((request.len() + before + inside) as u64);
            complete = j as u64;
        }
        _ => {}
    }
    let mut c = env.connect(w.tls(), plan)?;
    let mut inflater = Inflater::new();
    let reset = plan.breaks();
    // The gateway takes a client's FIN without a close frame for a client
    // gone (README "Gateway": the downstream gets 1001) and ends both legs:
    // echoes still on their way back may be lost, as after a reset.
    let broken = reset || (brk == Break::HalfClose && w == Workload::Gateway);
    let written = c.io.write_all(&request).and_then(|_| c.io.flush());
    if brk == Break::ResetHandshake {
        // No answer may come: the request never ended.
        return match written.map_err(Error::from).and_then(|_| read_head(&mut c)) {
            Ok((status, _)) => Err(format!("a {status} to an upgrade request cut short").into()),
            Err(e) if ended(&e) => Ok(()),
            Err(e) => Err(format!("an upgrade request cut short: {e}").into()),
        };
    }
    let mut echoed = 0u64;
    let result = (|| -> Result<(), Error> {
        written?;
        read_upgrade(&mut c, deflate)?;
        let mut sent = 0usize;
        while sent < messages.len() {
            let batch = rng.range(1, 4) as usize;
            let end = (sent + batch).min(messages.len());
            let bytes: Vec<u8> = framed[sent..end]
                .iter()
                .flatten()
                .flatten()
                .copied()
                .collect();
            c.io.write_all(&bytes)?;
            if end == messages.len() && brk == Break::HalfClose {
                c.io.shutdown_write()?;
            }
            for want in &messages[sent..end] {
                match read_message(&mut c, &mut inflater)? {
                    Some(Incoming::Text(got)) => {
                        let seq = check_message(&got)?;
                        if seq != echoed || &got != want {
                            return Err(
                                format!("echo {seq} came as number {echoed}, or damaged").into()
                            );
                        }
                        echoed += 1;
                        env.tally.verified.fetch_add(1, Relaxed);
                    }
                    Some(Incoming::Close(code)) => {
                        return Err(format!("a close {code:?} after {echoed} echoes").into())
                    }
                    None => return Err(eof(format!("EOF after {echoed} echoes"))),
                }
            }
            sent = end;
        }
        if brk == Break::HalfClose {
            // Every echo came; the server then closes.
            return c
                .at_end()
                .map_err(|e| format!("after a half-close: {e}").into());
        }
        close_clean(&mut c, &mut inflater, rng)
    })();
    match result {
        Ok(()) if reset => {
            Err(format!("reset after {complete} messages, yet the connection ended cleanly").into())
        }
        Ok(()) => Ok(()),
        Err(e) if broken && ended(&e) => {
            if !reset {
                env.tally.gateway_cut_short.fetch_add(1, Relaxed);
            }
            // The echoes before the reset came intact and in order (checked
            // as they came); no more than were sent whole.
            if echoed > complete {
                return Err(format!(
                    "{echoed} echoes of the {complete} messages sent before a reset"
                )
                .into());
            }
            Ok(())
        }
        Err(e) if broken => Err(format!("not the end of a broken connection: {e}").into()),
        Err(e) => {
            env.tally.lost.fetch_add(count - echoed, Relaxed);
            Err(e)
        }
    }
}

enum Ask {
    Whole(bool),
    Range(usize, usize),
}

fn http_pipeline(env: &Env, w: Workload, rng: &mut Rng, brk: Break) -> Result<(), Error> {
    let count = rng.range(2, 10) as usize;
    let mut asks = Vec::new();
    let mut requests: Vec<Vec<u8>> = Vec::new();
    for _ in 0..count {
        let ask = match rng.range(0, 3) {
            0 => Ask::Whole(true),
            1 => Ask::Whole(false),
            _ => {
                let a = rng.range(0, env.big.len() as u64 - 1) as usize;
                let b =
                    rng.range(a as u64, (a as u64 + 40_000).min(env.big.len() as u64 - 1)) as usize;
                Ask::Range(a, b)
            }
        };
        let r = match ask {
            Ask::Whole(big) => format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                if big { "big.bin" } else { "small.txt" }
            ),
            Ask::Range(a, b) => {
                format!("GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={a}-{b}\r\n\r\n")
            }
        };
        requests.push(r.into_bytes());
        asks.push(ask);
    }
    let all: Vec<u8> = requests.concat();
    let mut plan = Plan::disruptive(rng);
    let mut complete = count;
    match brk {
        Break::ResetHandshake => {
            plan.reset_after = Some(rng.range(1, 100));
            complete = 0;
        }
        Break::ResetMid => {
            let j = rng.range(0, count as u64 - 1) as usize;
            let before: usize = requests[..j].iter().map(Vec::len).sum();
            let inside = rng.range(1, requests[j].len() as u64 - 1) as usize;
            plan.reset_after = Some((before + inside) as u64);
            complete = j;
        }
        _ => {}
    }
    let broken = plan.breaks();
    let mut c = env.connect(w.tls(), plan)?;
    let mut answered = 0usize;
    let result = (|| -> Result<(), Error> {
        c.io.write_all(&all)?;
        c.io.flush()?;
        if brk == Break::HalfClose {
            c.io.shutdown_write()?;
        }
        for ask in &asks {
            let (status, head) = read_head(&mut c)?;
            let length: usize = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .ok_or("an answer without Content-Length")?;
            let body = c.take(length)?;
            let (want_status, want) = match *ask {
                Ask::Whole(true) => (200, &env.big[..]),
                Ask::Whole(false) => (200, &env.small[..]),
                Ask::Range(a, b) => {
                    let range = format!("bytes {a}-{b}/{}", env.big.len());
                    if header(&head, "content-range") != Some(range.as_str()) {
                        return Err(format!(
                            "Content-Range {:?} for {range}",
                            header(&head, "content-range")
                        )
                        .into());
                    }
                    (206, &env.big[a..=b])
                }
            };
            if status != want_status {
                return Err(format!("answer {answered}: {status} for {want_status}").into());
            }
            if body != want {
                return Err(format!("answer {answered}: the body is damaged").into());
            }
            answered += 1;
            env.tally.verified.fetch_add(1, Relaxed);
        }
        if brk == Break::HalfClose {
            return c
                .at_end()
                .map_err(|e| format!("after a half-close: {e}").into());
        }
        Ok(())
    })();
    match result {
        Ok(()) if broken => Err("a reset connection answered every request".into()),
        Ok(()) => Ok(()),
        Err(e) if broken && ended(&e) => {
            if answered > complete {
                return Err(format!("{answered} answers to {complete} whole requests").into());
            }
            Ok(())
        }
        Err(e) if broken => Err(format!("not the end of a broken connection: {e}").into()),
        Err(e) => {
            env.tally.lost.fetch_add((count - answered) as u64, Relaxed);
            Err(e)
        }
    }
}

/// A field `"key":"value"` of a JSON text with no escapes in the value.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &json[at..];
    Some(&rest[..rest.find('"')?])
}

fn chat_room(env: &Env, rng: &mut Rng, room: u64) -> Result<(), Error> {
    let room = format!("soak-{room}");
    let rngs: Vec<Rng> = (0..MEMBERS).map(|_| rng.fork()).collect();
    let results: Vec<Result<(), Error>> = thread::scope(|s| {
        let handles: Vec<_> = rngs
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let room = room.clone();
                s.spawn(move || chat_member(env, r, &room, i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a member panicked".into())))
            .collect()
    });
    results.into_iter().collect()
}

fn chat_member(env: &Env, mut rng: Rng, room: &str, me: usize) -> Result<(), Error> {
    let plan = Plan::disruptive(&mut rng);
    let mut c = env.connect(false, plan)?;
    env.tally.connections[Workload::ALL
        .iter()
        .position(|&w| w == Workload::Chat)
        .unwrap_or(0)]
    .fetch_add(1, Relaxed);
    let mut inflater = Inflater::new();
    c.io.write_all(&upgrade_request("/ws/chat", false))?;
    read_upgrade(&mut c, false)?;
    let send = |c: &mut Conn, rng: &mut Rng, text: &str| -> io::Result<()> {
        let mut bytes = Vec::new();
        for f in frames(rng, text.as_bytes(), false) {
            bytes.extend_from_slice(&f);
        }
        c.io.write_all(&bytes)
    };
    let name = format!("m{me}");
    send(
        &mut c,
        &mut rng,
        &format!("{{\"event\":\"join\",\"room\":\"{room}\",\"name\":\"{name}\"}}"),
    )?;
    let mut known = std::collections::BTreeSet::new();
    let mut next = [0u64; MEMBERS];
    let mut pending: Vec<String> = Vec::new();
    // Until every member has joined (the joined list, then presence events).
    while known.len() < MEMBERS {
        let Some(Incoming::Text(m)) = read_message(&mut c, &mut inflater)? else {
            return Err("the chat ended before everyone joined".into());
        };
        let text = String::from_utf8(m)?;
        match field(&text, "event") {
            Some("joined") => {
                let list = text
                    .split("\"members\":[")
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                    .unwrap_or("");
                for n in list
                    .split(',')
                    .map(|n| n.trim_matches('"'))
                    .filter(|n| !n.is_empty())
                {
                    known.insert(n.to_string());
                }
            }
            Some("presence") if text.contains("\"joined\":true") => {
                known.insert(field(&text, "name").unwrap_or("").to_string());
            }
            // A line from a member who saw everyone sooner.
            Some("said") => pending.push(text),
            _ => return Err(format!("chat: unexpected {text}").into()),
        }
    }
    for seq in 0..LINES as u64 {
        let line = String::from_utf8(message(&mut rng, seq, 2000))?;
        send(
            &mut c,
            &mut rng,
            &format!("{{\"event\":\"say\",\"room\":\"{room}\",\"text\":\"{line}\"}}"),
        )?;
    }
    let mut got = 0;
    let want = MEMBERS * LINES;
    let mut check = |text: &str| -> Result<(), Error> {
        let from = field(text, "from").ok_or("a line without its sender")?;
        let i: usize = from
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .ok_or("a stranger")?;
        let line = field(text, "text").ok_or("a line without its text")?;
        let seq = check_message(line.as_bytes())?;
        if i >= MEMBERS || seq != next[i] {
            return Err(format!(
                "{from}'s line {seq} came as number {}",
                next.get(i).copied().unwrap_or(0)
            )
            .into());
        }
        next[i] += 1;
        env.tally.verified.fetch_add(1, Relaxed);
        Ok(())
    };
    for text in pending.drain(..) {
        check(&text)?;
        got += 1;
    }
    while got < want {
        match read_message(&mut c, &mut inflater) {
            Ok(Some(Incoming::Text(m))) => {
                let text = String::from_utf8(m)?;
                match field(&text, "event") {
                    Some("said") => {
                        check(&text)?;
                        got += 1;
                    }
                    // Someone who has all the lines already may leave.
                    Some("presence") => {}
                    _ => return Err(format!("chat: unexpected {text}").into()),
                }
            }
            other => {
                env.tally.lost.fetch_add((want - got) as u64, Relaxed);
                return Err(match other {
                    Err(e) => format!("chat: {e} after {got} of {want} lines").into(),
                    _ => format!("chat: the connection ended after {got} of {want} lines").into(),
                });
            }
        }
    }
    // Presence events may still come before the close's answer.
    let mask = (rng.next_u64() as u32).to_be_bytes();
    c.io.write_all(&masked(0x80 | CLOSE, &1000u16.to_be_bytes(), mask))?;
    loop {
        match read_message(&mut c, &mut inflater)? {
            Some(Incoming::Close(Some(1000))) => break,
            Some(Incoming::Close(code)) => {
                return Err(format!("chat: close answered {code:?}").into())
            }
            Some(Incoming::Text(t))
                if String::from_utf8_lossy(&t).contains("\"event\":\"presence\"") => {}
            Some(Incoming::Text(t)) => {
                return Err(format!("chat: unexpected {}", String::from_utf8_lossy(&t)).into())
            }
            None => return Err("chat: EOF instead of the close frame".into()),
        }
    }
    c.at_end()
        .map_err(|e| format!("chat: after the close: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The run

fn worker(env: &Env, id: usize, rooms: &AtomicU64) {
    let mut rng = Rng::new(env.args.seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut turn = id;
    while Instant::now() < env.deadline {
        let w = Workload::ALL[turn % Workload::ALL.len()];
        turn += 1;
        if w.tls() && env.tls_proxy.is_none() {
            continue;
        }
        let brk = pick_break(&mut rng, w);
        let (counter, what) = match (brk, w) {
            (Break::None, _) => (None, "clean"),
            (Break::HalfClose, _) => (Some(&env.tally.half_close), "half-close"),
            (Break::ResetHandshake, _) => (Some(&env.tally.reset_handshake), "reset mid-handshake"),
            (Break::ResetMid, Workload::Http) => {
                (Some(&env.tally.reset_request), "reset mid-request")
            }
            (Break::ResetMid, _) => (Some(&env.tally.reset_frame), "reset mid-frame"),
        };
        let result = match w {
            Workload::Http | Workload::Https => http_pipeline(env, w, &mut rng, brk),
            Workload::Chat => {
                let room = rooms.fetch_add(1, Relaxed);
                chat_room(env, &mut rng, room)
            }
            _ => ws_echo(env, w, &mut rng, brk),
        };
        if w != Workload::Chat {
            env.tally.connections[Workload::ALL.iter().position(|&x| x == w).unwrap_or(0)]
                .fetch_add(1, Relaxed);
        } else {
            env.tally.chat_rooms.fetch_add(1, Relaxed);
        }
        if let Some(counter) = counter {
            counter.fetch_add(1, Relaxed);
        }
        match result {
            Ok(()) if counter.is_some() => {
                env.tally.breaks_as_documented.fetch_add(1, Relaxed);
            }
            Ok(()) => {}
            Err(e) => env.tally.fail(format!("{} ({what}): {e}", w.name())),
        }
    }
}

/// GETs `/small.txt` directly on a fresh connection every 20 ms: the worst latency.
fn probe(addr: SocketAddr, small: &[u8], stop: &AtomicBool) -> (u64, Duration, u64) {
    let mut worst = Duration::ZERO;
    let (mut count, mut failed) = (0u64, 0u64);
    while !stop.load(Relaxed) {
        let start = Instant::now();
        let ok = (|| -> Result<(), Error> {
            let s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(STUCK))?;
            let mut c = Conn {
                io: Io::Plain(s),
                buf: Vec::new(),
            };
            c.io.write_all(b"GET /small.txt HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")?;
            let (status, head) = read_head(&mut c)?;
            let length: usize = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .ok_or("no length")?;
            if status != 200 || c.take(length)? != small {
                return Err("a wrong answer".into());
            }
            Ok(())
        })();
        worst = worst.max(start.elapsed());
        count += 1;
        if ok.is_err() {
            failed += 1;
        }
        thread::sleep(Duration::from_millis(20));
    }
    (count, worst, failed)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    println!(
        "fault soak: seed {} (run again with --seed {}), {} s, {} workers",
        args.seed, args.seed, args.seconds, args.workers
    );
    let counters = Arc::new(Counters::default());
    let proxy = FaultProxy::start(args.addr, counters.clone())?;
    let tls_proxy = match args.tls_addr {
        Some(a) => Some(FaultProxy::start(a, counters.clone())?),
        None => None,
    };
    let tls = match &args.ca {
        Some(ca) => Some(wisp_bench::tls::client_config(ca, true)?),
        None => None,
    };
    let big = std::fs::read(args.docs.join("big.bin"))?;
    let small = std::fs::read(args.docs.join("small.txt"))?;
    let env = Env {
        deadline: Instant::now() + Duration::from_secs(args.seconds),
        args: args.clone(),
        proxy,
        tls_proxy,
        tls,
        big,
        small,
        counters,
        tally: Tally::default(),
    };
    let stop = AtomicBool::new(false);
    let rooms = AtomicU64::new(0);
    let (probes, worst, probe_failed) = thread::scope(|s| {
        let p = s.spawn(|| probe(args.addr, &env.small, &stop));
        let workers: Vec<_> = (0..args.workers)
            .map(|id| {
                let (env, rooms) = (&env, &rooms);
                s.spawn(move || worker(env, id, rooms))
            })
            .collect();
        for w in workers {
            if w.join().is_err() {
                env.tally.fail("a worker panicked".into());
            }
        }
        stop.store(true, Relaxed);
        p.join().unwrap_or((0, Duration::MAX, 1))
    });

    let t = &env.tally;
    let k = &env.counters;
    let mut by = String::new();
    for (i, w) in Workload::ALL.iter().enumerate() {
        let n = t.connections[i].load(Relaxed);
        if n > 0 {
            let _ = write!(
                by,
                "{}{} {n}",
                if by.is_empty() { "" } else { ", " },
                w.name()
            );
        }
    }
    let total: u64 = t.connections.iter().map(|c| c.load(Relaxed)).sum();
    println!(
        "fault soak: {total} connections ({by}; {} chat rooms), faults: split {}, delay {}, stall {}, half-close {}, reset-frame {}, reset-request {}, reset-handshake {}; messages verified {}, lost {}",
        t.chat_rooms.load(Relaxed),
        k.split.load(Relaxed),
        k.delay.load(Relaxed),
        k.stall.load(Relaxed),
        t.half_close.load(Relaxed),
        t.reset_frame.load(Relaxed),
        t.reset_request.load(Relaxed),
        t.reset_handshake.load(Relaxed),
        t.verified.load(Relaxed),
        t.lost.load(Relaxed),
    );
    let breaks = t.half_close.load(Relaxed)
        + t.reset_frame.load(Relaxed)
        + t.reset_request.load(Relaxed)
        + t.reset_handshake.load(Relaxed);
    println!(
        "fault soak: {breaks} connections broken on purpose, {} ended as documented \
         (half-close: every answer or echo, then EOF; reset: an intact prefix, then the end; \
         cut short in the handshake: no answer); {} gateway half-closes lost echoes in flight (the gateway takes a FIN for a client gone)",
        t.breaks_as_documented.load(Relaxed),
        t.gateway_cut_short.load(Relaxed)
    );
    println!(
        "fault soak: probe: {probes} direct GETs, worst {} ms (bound {} ms), {probe_failed} failed",
        worst.as_millis(),
        args.bound.as_millis()
    );
    let failures = t.failures.load(Relaxed);
    println!("fault soak: {failures} failures");
    let mut problems = Vec::new();
    if t.lost.load(Relaxed) > 0 {
        problems.push("messages lost".to_string());
    }
    if failures > 0 {
        problems.push(format!("{failures} connections failed"));
    }
    if worst > args.bound || probe_failed > 0 {
        problems.push("the probe's latency bound was breached".to_string());
    }
    if !problems.is_empty() {
        return Err(format!(
            "fault soak failed (seed {}): {}",
            args.seed,
            problems.join("; ")
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_checks_and_any_damage_is_seen() {
        let mut rng = Rng::new(11);
        for seq in 0..200 {
            let m = message(&mut rng, seq, 5000);
            assert_eq!(check_message(&m), Ok(seq));
            if m.len() > m.iter().position(|&b| b == b'|').unwrap() + 1 {
                let mut bad = m.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x01;
                assert!(check_message(&bad).is_err(), "a flipped bit");
                assert!(check_message(&m[..last]).is_err(), "a lost byte");
            }
        }
    }

    /// Decodes masked client frames back into the messages' payloads.
    fn unframe(mut bytes: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut out: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut current: Option<(bool, Vec<u8>)> = None;
        while !bytes.is_empty() {
            let (b0, b1) = (bytes[0], bytes[1]);
            assert!(b1 & 0x80 != 0, "client frames are masked");
            let (len, mut at) = match b1 & 0x7f {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let mask = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
            at += 4;
            let payload: Vec<u8> = bytes[at..at + len]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            bytes = &bytes[at + len..];
            match b0 & 0x0f {
                PING => continue,
                TEXT => current = Some((b0 & 0x40 != 0, payload)),
                CONT => current.as_mut().unwrap().1.extend_from_slice(&payload),
                op => panic!("opcode {op}"),
            }
            if b0 & 0x80 != 0 {
                out.push(current.take().unwrap());
            }
        }
        out
    }

    #[test]
    fn fragmented_messages_reassemble_compressed_or_not() {
        let mut rng = Rng::new(5);
        let mut deflater = Deflater::new(1);
        for seq in 0..100 {
            let m = message(&mut rng, seq, 70_000);
            let compressed = seq % 2 == 1;
            let payload = if compressed {
                deflater.message(&m, true).to_vec()
            } else {
                m.clone()
            };
            let bytes: Vec<u8> = frames(&mut rng, &payload, compressed).concat();
            let got = unframe(&bytes);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, compressed);
            let back = if compressed {
                Inflater::new()
                    .message(&got[0].1, true, MAX_MESSAGE)
                    .unwrap()
                    .to_vec()
            } else {
                got[0].1.clone()
            };
            assert_eq!(back, m);
        }
    }

    #[test]
    fn breaks_suit_their_workload() {
        let mut rng = Rng::new(3);
        for w in Workload::ALL {
            let breaks: Vec<Break> = (0..1000).map(|_| pick_break(&mut rng, w)).collect();
            let none = breaks.iter().filter(|b| **b == Break::None).count();
            assert!(none > 700, "{w:?}: most connections are not broken");
            if w == Workload::Chat {
                assert_eq!(none, 1000);
            }
            if w.tls() {
                assert!(breaks
                    .iter()
                    .all(|b| matches!(b, Break::None | Break::ResetHandshake)));
            }
        }
    }

    #[test]
    fn only_an_end_counts_as_the_end_of_a_broken_connection() {
        assert!(ended(&eof("EOF after 3 echoes".into())));
        assert!(ended(
            &io::Error::from(io::ErrorKind::ConnectionReset).into()
        ));
        assert!(!ended(&io::Error::from(io::ErrorKind::WouldBlock).into()));
        assert!(!ended(&"echo 4 came as number 3, or damaged".into()));
    }
}
