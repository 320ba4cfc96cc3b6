//! The closed-loop WebSocket (and HTTP) load generator: one thread, one
//! `mio` loop, non-blocking sockets, optionally TLS. Prints one line of
//! JSON with the results.
//!
//! ```text
//! load echo      --addr 127.0.0.1:9002 --conns 100 --size 20 --depth 1 --duration 5 [--warmup 1] [--pid PID]
//! load echo      --addr 127.0.0.1:9002 --conns 10 --size 20 --messages 2000
//! load idle      --addr 127.0.0.1:9002 --conns 10000 --pid PID
//! load fanout    --addr 127.0.0.1:9002 --conns 10000 --size 1024 --duration 5 --pid PID
//! load echo      --addr 127.0.0.1:9002 --conns 100 --size 1024 --json --deflate --pid PID
//! load get       --addr 127.0.0.1:9443 --path /1k.bin --conns 100 --duration 5 --tls ca.pem
//! load keepalive --addr 127.0.0.1:9443 --path /1k.bin --conns 10000 --pid PID --tls ca.pem
//! load handshake --addr 127.0.0.1:9443 --path /1k.bin --conns 32 --duration 5 --tls ca.pem [--no-resume]
//! ```
//!
//! - `echo`: every connection keeps `--depth` messages of `--size` bytes in
//!   flight on `/ws/echo`; each echo is checked (opcode, length, bytes) and
//!   its round trip recorded, and is answered by the next message. Runs for
//!   `--duration` seconds after `--warmup`, or until every connection has had
//!   `--messages` echoes. Reports messages per second and latency quantiles.
//! - `idle`: opens `--conns` WebSockets, each echoes `--messages` (default 1)
//!   messages, then holds them all for `--hold` seconds and reports how much
//!   the server's RSS grew per connection (needs `--pid`).
//! - `fanout`: `--conns` members on `/ws/room`, then one driver on
//!   `/ws/publish` that sends a message and waits until every member has it
//!   before sending the next. Reports publishes per second and the time from
//!   a publish to its last delivery.
//! - `get`: HTTP/1.1 keep-alive: every connection keeps `--depth` GETs of
//!   `--path` in flight (default 1); each answer must be a 200 whose body
//!   is `Content-Length` long (its bytes are not checked). Reports requests
//!   per second.
//! - `keepalive`: `idle` for HTTP: every connection makes one GET, then all
//!   are held, and the server's RSS growth per connection is reported.
//! - `handshake`: every one of `--conns` slots connects, makes one GET
//!   (with `Connection: close`), and when the whole answer is in drops the
//!   connection and connects again. Reports connections (handshakes) per
//!   second; meant for `--tls`. The latency is connect to last byte.
//!
//! With `--tls CA`, every connection is TLS (rustls with `ring`, TLS 1.3
//! preferred, server name `localhost`) and trusts only the certificates in
//! `CA`: `wss://` for the WebSocket modes, `https://` for the others. The
//! client keeps rustls' session cache (256 sessions, shared by all its
//! connections), so a new connection resumes a session when the server
//! allows; `--no-resume` turns the cache off and every handshake is full.
//! The report says how many handshakes resumed and what was negotiated.
//!
//! With `--pid`, the server's CPU use (all threads, from `/proc/PID/task/*/schedstat`)
//! over the measured window and its RSS at the end are reported too, and so is
//! this process's own CPU use: a server under ~90% CPU was not the bottleneck.
//! When the server is a proxy (the gateway rows), `--downstream-pid` names the
//! server behind it, whose CPU use over the same window is reported as
//! `downstream_cpu_pct`.
//!
//! With `--deflate` (echo, idle, fanout), every WebSocket offers
//! `permessage-deflate; client_no_context_takeover; server_no_context_takeover`
//! (a bare `permessage-deflate` with `--deflate-takeover`) and the server
//! must accept it: the answer is checked (RFC 7692), every message the load
//! sends is compressed (raw DEFLATE, zlib level `--deflate-level`, default
//! 6, the sync flush's `00 00 ff ff` cut off, RSV1 set), and every message
//! with RSV1 that comes back is inflated (the tail put back) and must equal
//! what was sent; one without RSV1 (below the server's threshold) is
//! compared as it is. Without context takeover the message compresses to
//! the same bytes every time, so it is compressed once, up front; and a
//! compressed echo byte for byte equal to the one inflated last is known to
//! inflate to the same message, so it is compared with it instead of being
//! inflated again (`--inflate-all` inflates every one; the report counts
//! both). With context takeover each connection has its own compressor
//! and inflater, and every message is compressed and inflated.
//!
//! `--json` makes the payload a JSON telemetry message of `--size` bytes
//! (text frames): an envelope and an array of samples whose keys repeat
//! and whose readings vary, as real traffic does; see
//! `wisp_bench::deflate::json_payload`.
//!
//! Frames are binary (`--text` for text), masked with a fixed key (the
//! payload is masked once, up front) and written from that one copy, several
//! per gathered write when several are due. Every run ends with a closing handshake
//! on every connection (except `idle`, which just disconnects), so two runs
//! that differ only in `--messages` differ only in the messages.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::path::PathBuf;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::{ClientConfig, ClientConnection, HandshakeKind};
use wisp_bench::deflate::{self, Agreed, Deflater, Inflater};
use wisp_bench::{cpu_ns, rss_kib, status_kib, Histogram, ECHO_PATH, PUBLISH_PATH, ROOM_PATH};

const USAGE: &str = "\
usage: load MODE --addr HOST:PORT [options]
  MODE          echo | idle | fanout (WebSocket); get | keepalive | handshake (HTTP)
  --addr A      the server (loopback only)
  --path P      the echo path (default /ws/echo), or the file to GET (default /1k.bin)
  --conns N     connections (echo: 1; idle, fanout: members; default 1)
  --size B      payload bytes per message (default 20)
  --depth D     messages in flight per connection (echo; default 1)
  --duration S  seconds to measure (default 5; echo, fanout)
  --warmup S    seconds to run before measuring (default 1 with --duration)
  --messages M  echo: stop after M echoes per connection instead of a duration;
                idle: echoes per connection before holding (default 1)
  --hold S      idle: seconds to hold the connections before reading RSS (default 2)
  --pid PID     the server's process id, for its CPU and RSS
  --downstream-pid PID
                a proxy's downstream server, for its CPU over the same window
  --label L     a label copied into the JSON
  --text        send text frames instead of binary
  --json        the payload is JSON telemetry of --size bytes (text frames)
  --deflate     offer permessage-deflate without context takeover (echo, idle,
                fanout); the server must accept it
  --deflate-takeover
                offer permessage-deflate with context takeover instead
  --deflate-level L
                the load's zlib level, 0-9 (default 6)
  --inflate-all inflate every compressed message, even one equal to the last
  --tls CA      TLS (wss://, https://), trusting the PEM certificate(s) in CA
  --no-resume   with --tls: no client session cache, so no resumption";

/// The fixed masking key of every frame the load sends.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The `Sec-WebSocket-Key` every connection sends, and the accept value it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Connections allowed to be connecting or upgrading at once.
const OPENING_AT_ONCE: usize = 256;
/// How long the whole opening phase, or the draining and closing, may take.
const PHASE_LIMIT: Duration = Duration::from_secs(60);
/// How long a run may go without any echo or delivery before it is called stuck.
const STALL_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Idle,
    Fanout,
    /// A new connection per request.
    Handshake,
}

/// What the connections speak.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    WebSocket,
    Http,
}

#[derive(Debug)]
struct Options {
    mode: Mode,
    proto: Proto,
    addr: SocketAddr,
    path: String,
    conns: usize,
    size: usize,
    depth: usize,
    duration: Duration,
    warmup: Duration,
    messages: Option<u64>,
    hold: Duration,
    pid: Option<u32>,
    downstream_pid: Option<u32>,
    label: String,
    text: bool,
    /// The CA to trust, for TLS.
    tls: Option<PathBuf>,
    resume: bool,
    json: bool,
    /// permessage-deflate: offered, with context takeover or without.
    deflate: Option<Takeover>,
    deflate_level: u32,
    inflate_all: bool,
}

/// Which permessage-deflate offer the load makes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Takeover {
    No,
    Yes,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mode, proto) = match args.next().as_deref() {
        Some("echo") => (Mode::Echo, Proto::WebSocket),
        Some("idle") => (Mode::Idle, Proto::WebSocket),
        Some("fanout") => (Mode::Fanout, Proto::WebSocket),
        Some("get") => (Mode::Echo, Proto::Http),
        Some("keepalive") => (Mode::Idle, Proto::Http),
        Some("handshake") => (Mode::Handshake, Proto::Http),
        Some("--help" | "-h") | None => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown mode {other:?}\n{USAGE}")),
    };
    let mut o = Options {
        mode,
        proto,
        addr: "127.0.0.1:9002".parse().unwrap(),
        path: match proto {
            Proto::WebSocket => ECHO_PATH.into(),
            Proto::Http => "/1k.bin".into(),
        },
        conns: 1,
        size: 20,
        depth: 1,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        messages: None,
        hold: Duration::from_secs(2),
        pid: None,
        downstream_pid: None,
        label: String::new(),
        text: false,
        tls: None,
        resume: true,
        json: false,
        deflate: None,
        deflate_level: 6,
        inflate_all: false,
    };
    let mut warmup_given = false;
    while let Some(flag) = args.next() {
        if flag == "--text" {
            o.text = true;
            continue;
        }
        if flag == "--no-resume" {
            o.resume = false;
            continue;
        }
        match flag.as_str() {
            "--json" => {
                o.json = true;
                o.text = true;
                continue;
            }
            "--deflate" => {
                o.deflate = Some(Takeover::No);
                continue;
            }
            "--deflate-takeover" => {
                o.deflate = Some(Takeover::Yes);
                continue;
            }
            "--inflate-all" => {
                o.inflate_all = true;
                continue;
            }
            _ => {}
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = format!("{flag} {value}: not a valid value");
        let seconds = |v: &str| -> Result<Duration, String> {
            let s: f64 = v
                .parse()
                .map_err(|_| format!("{flag} {v}: not a number of seconds"))?;
            Duration::try_from_secs_f64(s).map_err(|_| format!("{flag} {v}: out of range"))
        };
        match flag.as_str() {
            "--addr" => o.addr = value.parse().map_err(|_| bad.clone())?,
            "--path" => o.path = value,
            "--conns" => o.conns = value.parse().map_err(|_| bad.clone())?,
            "--size" => o.size = value.parse().map_err(|_| bad.clone())?,
            "--depth" => o.depth = value.parse().map_err(|_| bad.clone())?,
            "--duration" => o.duration = seconds(&value)?,
            "--warmup" => {
                o.warmup = seconds(&value)?;
                warmup_given = true;
            }
            "--messages" => o.messages = Some(value.parse().map_err(|_| bad.clone())?),
            "--hold" => o.hold = seconds(&value)?,
            "--pid" => o.pid = Some(value.parse().map_err(|_| bad.clone())?),
            "--downstream-pid" => o.downstream_pid = Some(value.parse().map_err(|_| bad.clone())?),
            "--label" => o.label = value,
            "--tls" => o.tls = Some(value.into()),
            "--deflate-level" => {
                o.deflate_level = value.parse().map_err(|_| bad.clone())?;
                if o.deflate_level > 9 {
                    return Err(bad);
                }
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err("load only targets loopback addresses".into());
    }
    if o.conns == 0 || o.depth == 0 {
        return Err("--conns and --depth must be at least 1".into());
    }
    if o.mode == Mode::Echo && o.messages.is_some() && !warmup_given {
        o.warmup = Duration::ZERO;
    }
    if o.deflate.is_some() && o.proto != Proto::WebSocket {
        return Err("--deflate is for the WebSocket modes (echo, idle, fanout)".into());
    }
    if o.mode == Mode::Idle && o.pid.is_none() {
        return Err("idle needs --pid: it measures the server's memory".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match Load::new(options).and_then(Load::run) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where one connection is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not opened yet.
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Upgrading,
    Open,
    /// Our close frame sent, waiting for the server's.
    Closing,
    Done,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Echo,
    Member,
    Driver,
}

struct Conn {
    stream: Option<TcpStream>,
    /// The TLS client beside the socket (with `--tls`): plaintext is
    /// written into it and read out of it.
    tls: Option<ClientConnection>,
    phase: Phase,
    role: Role,
    /// Bytes of an incomplete frame (or head) kept between reads.
    input: Vec<u8>,
    /// Bytes not yet written, from `written` on: the upgrade request,
    /// pongs, the close frame.
    output: Vec<u8>,
    written: usize,
    /// Copies of the load's message frame owed after `output`, the first of
    /// them written up to `frame_at`: written straight from the one frame
    /// (gathered), never copied into `output`, so the load spends its time
    /// on the server's answers rather than on copying its own messages.
    frames: usize,
    frame_at: usize,
    /// Messages sent and echoes received.
    sent: u64,
    received: u64,
    /// When each message in flight was sent, oldest first.
    in_flight: VecDeque<Instant>,
    /// HTTP: the body bytes of the answer being read still to come.
    body_left: Option<usize>,
    /// permessage-deflate, once the server has agreed to it.
    pmd: Option<Box<ConnDeflate>>,
}

/// One connection's permessage-deflate.
struct ConnDeflate {
    /// With client context takeover: the connection's own compressor
    /// (without, the message is compressed once for every connection).
    deflater: Option<Deflater>,
    /// With server context takeover: the connection's own inflater
    /// (without, one inflater reset per message serves every connection).
    inflater: Option<Inflater>,
}

/// The load's permessage-deflate: what was offered and agreed, and what
/// every connection without context takeover shares.
struct Pmd {
    offer: &'static str,
    takeover: Takeover,
    level: u32,
    /// The message compressed afresh: the payload of `Load::frame`.
    packed: usize,
    /// The first answer, as the server wrote it.
    answer: Option<String>,
    agreed: Option<Agreed>,
    inflater: Inflater,
    /// The compressed payload last inflated afresh and found equal to the
    /// message: the same bytes again inflate to the same message.
    verified: Option<Vec<u8>>,
    /// Messages received compressed, and their payload bytes.
    compressed_in: u64,
    compressed_in_bytes: u64,
    /// Messages received uncompressed (allowed: below the server's threshold).
    plain_in: u64,
    /// Compressed messages actually inflated.
    inflated: u64,
    /// With client takeover: messages compressed one by one, and their bytes.
    deflated_out: u64,
    deflated_out_bytes: u64,
}

/// Where the whole run is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Opening,
    /// Sending; measuring once `measure_from` has passed.
    Running,
    /// Idle: holding the connections until the deadline.
    Holding,
    /// No new messages; waiting for those in flight.
    Draining,
    Closing,
    Finished,
}

struct Load {
    o: Options,
    poll: Poll,
    conns: Vec<Conn>,
    /// Connections in `Connecting` or `Upgrading`.
    opening: usize,
    /// The next connection to open.
    next_to_open: usize,
    open: usize,
    done: usize,
    stage: Stage,
    stage_since: Instant,
    /// One masked message, ready to write.
    frame: Vec<u8>,
    /// The payload an echo must carry.
    payload: Vec<u8>,
    opcode: u8,
    close_frame: Vec<u8>,
    scratch: Vec<u8>,
    latency: Histogram,
    measure_from: Option<Instant>,
    measure_until: Option<Instant>,
    measuring: bool,
    measured: u64,
    last_progress: Instant,
    /// Totals over the whole run (not only the measured window).
    echoes: u64,
    /// Fan-out: when the publish in flight was sent, and members that have it.
    published_at: Option<Instant>,
    delivered: usize,
    publishes: u64,
    window: Window,
    opened_at: Option<Instant>,
    rss_before: Option<u64>,
    /// With `--tls`: the client configuration every connection shares (and
    /// with it the session cache), and what the first handshake negotiated.
    client: Option<Arc<ClientConfig>>,
    negotiated: Option<String>,
    /// Handshakes measured that resumed a session.
    resumed: u64,
    /// With `--deflate`: permessage-deflate.
    pmd: Option<Pmd>,
}

/// What was read at the start and the end of the measured window.
#[derive(Default)]
struct Window {
    start: Option<Sample>,
    end: Option<Sample>,
}

/// The clock and the CPU time used so far by the server, this process and
/// (for a proxy) the downstream server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    server: Option<u64>,
    load: Option<u64>,
    downstream: Option<u64>,
}

fn sample(o: &Options) -> Sample {
    Sample {
        at: Instant::now(),
        server: o.pid.and_then(cpu_ns),
        load: cpu_ns(std::process::id()),
        downstream: o.downstream_pid.and_then(cpu_ns),
    }
}

/// At most this many pieces in one gathered write.
const GATHER: usize = 64;

/// Queues bytes of connection `c`'s own after the message frames it owes
/// (those are written into `output` first, so the order holds even when one
/// of them is half written).
fn queue_bytes(c: &mut Conn, frame: &[u8], bytes: &[u8]) {
    if c.frames > 0 {
        c.output.extend_from_slice(&frame[c.frame_at..]);
        for _ in 1..c.frames {
            c.output.extend_from_slice(frame);
        }
        c.frames = 0;
        c.frame_at = 0;
    }
    c.output.extend_from_slice(bytes);
}

/// Moves connection `c`'s write position on by `k` bytes: through its own
/// bytes first, then through the message frames it owes (each `frame_len` long).
fn advance(c: &mut Conn, frame_len: usize, k: usize) {
    let own = (c.output.len() - c.written).min(k);
    c.written += own;
    let done = c.frame_at + (k - own);
    c.frames -= done / frame_len;
    c.frame_at = done % frame_len;
}

/// A masked frame with `payload` (FIN set).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame_with(0x80 | opcode, payload)
}

/// A masked frame whose first byte (FIN, RSV, opcode) is `first`.
fn masked_frame_with(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(first);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// One complete server frame at the start of `buf`: (opcode byte, payload
/// range, frame length), or `None` if more bytes are needed.
fn parse_frame(buf: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err(io::Error::other("the server sent a masked frame"));
    }
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(len).map_err(|_| io::Error::other("a frame too large"))?;
    let end = start + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((buf[0], start, end)))
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Load {
    fn new(o: Options) -> io::Result<Load> {
        let opcode = if o.text { 0x1 } else { 0x2 };
        // Printable bytes, so a text frame is valid UTF-8.
        let payload: Vec<u8> = if o.json {
            deflate::json_payload(o.size)
        } else {
            (0..o.size).map(|i| b'a' + (i % 26) as u8).collect()
        };
        let pmd = o.deflate.map(|takeover| Pmd {
            offer: deflate::offer(takeover == Takeover::Yes),
            takeover,
            level: o.deflate_level,
            packed: 0,
            answer: None,
            agreed: None,
            inflater: Inflater::new(),
            verified: None,
            compressed_in: 0,
            compressed_in_bytes: 0,
            plain_in: 0,
            inflated: 0,
            deflated_out: 0,
            deflated_out_bytes: 0,
        });
        let members = o.conns;
        let mut conns = Vec::with_capacity(members + 1);
        let role = match o.mode {
            Mode::Fanout => Role::Member,
            _ => Role::Echo,
        };
        for _ in 0..members {
            conns.push(Conn::new(role));
        }
        if o.mode == Mode::Fanout {
            conns.push(Conn::new(Role::Driver));
        }
        let now = Instant::now();
        let client = match &o.tls {
            Some(ca) => {
                Some(wisp_bench::tls::client_config(ca, o.resume).map_err(io::Error::other)?)
            }
            None => None,
        };
        let mut pmd = pmd;
        let frame = match o.proto {
            // Without context takeover the message compresses to the same
            // bytes every time: compressed once, here.
            Proto::WebSocket if pmd.is_some() => {
                let p = pmd.as_mut().unwrap();
                let mut deflater = Deflater::new(p.level);
                let packed = deflater.message(&payload, true);
                p.packed = packed.len();
                masked_frame_with(0xC0 | opcode, packed)
            }
            Proto::WebSocket => masked_frame(opcode, &payload),
            Proto::Http => {
                let close = if o.mode == Mode::Handshake {
                    "Connection: close\r\n"
                } else {
                    ""
                };
                format!(
                    "GET {} HTTP/1.1\r\nHost: {}\r\n{close}\r\n",
                    o.path,
                    wisp_bench::tls::SERVER_NAME
                )
                .into_bytes()
            }
        };
        Ok(Load {
            frame,
            close_frame: masked_frame(0x8, &1000u16.to_be_bytes()),
            payload,
            opcode,
            poll: Poll::new()?,
            conns,
            opening: 0,
            next_to_open: 0,
            open: 0,
            done: 0,
            stage: Stage::Opening,
            stage_since: now,
            scratch: vec![0; 256 * 1024],
            latency: Histogram::default(),
            measure_from: None,
            measure_until: None,
            measuring: false,
            measured: 0,
            last_progress: now,
            echoes: 0,
            published_at: None,
            delivered: 0,
            publishes: 0,
            window: Window::default(),
            opened_at: None,
            rss_before: None,
            client,
            negotiated: None,
            resumed: 0,
            pmd,
            o,
        })
    }

    fn run(mut self) -> io::Result<String> {
        let started = Instant::now();
        if self.o.mode == Mode::Idle {
            self.rss_before = self.o.pid.and_then(rss_kib);
        }
        let mut events = Events::with_capacity(1024);
        if self.o.mode == Mode::Handshake {
            self.start(Instant::now())?;
        }
        self.open_more()?;
        while self.stage != Stage::Finished {
            let timeout = Some(Duration::from_millis(20));
            self.poll.poll(&mut events, timeout)?;
            for event in events.iter() {
                let i = event.token().0;
                if let Err(e) = self.on_event(i, event.is_writable() || event.is_error()) {
                    return Err(io::Error::new(e.kind(), format!("connection {i}: {e}")));
                }
            }
            self.tick()?;
        }
        Ok(self.report(started))
    }

    /// Starts connecting more connections, up to `OPENING_AT_ONCE` at once.
    fn open_more(&mut self) -> io::Result<()> {
        let members = self.o.conns;
        while self.opening < OPENING_AT_ONCE && self.next_to_open < self.conns.len() {
            let i = self.next_to_open;
            // The fan-out driver connects after every member is in the room.
            if self.conns[i].role == Role::Driver && self.open < members {
                break;
            }
            self.connect(i)?;
            self.opening += 1;
            self.next_to_open += 1;
        }
        Ok(())
    }

    /// Starts connecting connection `i` (and its TLS client, whose hello
    /// goes out once the socket is connected).
    fn connect(&mut self, i: usize) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.o.addr)?;
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let c = &mut self.conns[i];
        c.stream = Some(stream);
        c.tls = match &self.client {
            Some(config) => Some(
                ClientConnection::new(config.clone(), wisp_bench::tls::server_name())
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        c.phase = Phase::Connecting;
        Ok(())
    }

    /// Handshake mode: connection `i` is answered; drop it and connect
    /// again, with the next request queued at once.
    fn reconnect(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let c = &mut self.conns[i];
        if let Some(mut stream) = c.stream.take() {
            self.poll.registry().deregister(&mut stream)?;
        }
        c.tls = None;
        c.input.clear();
        c.output.clear();
        c.written = 0;
        c.frames = 0;
        c.frame_at = 0;
        c.body_left = None;
        self.connect(i)?;
        self.send(i, now);
        Ok(())
    }

    fn on_event(&mut self, i: usize, writable: bool) -> io::Result<()> {
        if self.conns[i].phase == Phase::Connecting {
            if !writable {
                return Ok(());
            }
            let c = &mut self.conns[i];
            let stream = c.stream.as_ref().unwrap();
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
            stream.set_nodelay(true)?;
            if self.o.proto == Proto::Http {
                c.phase = Phase::Open;
                if self.o.mode != Mode::Handshake {
                    self.on_open(i, Instant::now());
                }
                self.read(i)?;
                return self.flush(i);
            }
            let path = match c.role {
                Role::Echo => self.o.path.as_str(),
                Role::Member => ROOM_PATH,
                Role::Driver => PUBLISH_PATH,
            };
            let extensions = match &self.pmd {
                Some(p) => format!("Sec-WebSocket-Extensions: {}\r\n", p.offer),
                None => String::new(),
            };
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n",
                self.o.addr
            );
            queue_bytes(c, &self.frame, request.as_bytes());
            c.phase = Phase::Upgrading;
        }
        if matches!(self.conns[i].phase, Phase::Waiting | Phase::Done) {
            return Ok(());
        }
        self.read(i)?;
        self.flush(i)
    }

    /// Reads until the socket would block, handling every complete frame.
    fn read(&mut self, i: usize) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.read_with(i, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn read_with(&mut self, i: usize, scratch: &mut [u8]) -> io::Result<()> {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return Ok(());
            };
            let got = match c.tls.as_mut() {
                Some(tls) => tls_read(stream, tls, scratch),
                None => stream.read(scratch),
            };
            let n = match got {
                Ok(0) => return self.on_eof(i),
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.conns[i].phase == Phase::Closing {
                        return self.finish(i);
                    }
                    return Err(e);
                }
            };
            let now = Instant::now();
            // Parse straight from the scratch buffer unless a tail is waiting.
            let mut input = std::mem::take(&mut self.conns[i].input);
            let consumed = if input.is_empty() {
                let used = self.consume(i, &scratch[..n], now)?;
                if used < n {
                    input.extend_from_slice(&scratch[used..n]);
                }
                None
            } else {
                input.extend_from_slice(&scratch[..n]);
                Some(self.consume(i, &input, now)?)
            };
            if let Some(used) = consumed {
                input.drain(..used);
            }
            let c = &mut self.conns[i];
            // Done, or (handshake mode) already a new connection.
            if matches!(c.phase, Phase::Done | Phase::Connecting) {
                return Ok(());
            }
            c.input = input;
        }
    }

    /// Handles what `buf` holds: the upgrade response, then frames. Returns
    /// the bytes used; the rest is an incomplete head or frame.
    fn consume(&mut self, i: usize, buf: &[u8], now: Instant) -> io::Result<usize> {
        if self.o.proto == Proto::Http {
            return self.consume_http(i, buf, now);
        }
        let mut at = 0;
        if self.conns[i].phase == Phase::Upgrading {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > 8192 {
                    return Err(io::Error::other("an upgrade response head over 8 KiB"));
                }
                return Ok(0);
            };
            let head = String::from_utf8_lossy(&buf[..end]);
            if !head.starts_with("HTTP/1.1 101") || !head.contains(ACCEPT) {
                let line = head.lines().next().unwrap_or("");
                return Err(io::Error::other(format!("upgrade refused: {line}")));
            }
            let extensions: Vec<&str> = head
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("sec-websocket-extensions")
                        .then_some(value.trim())
                })
                .collect();
            self.on_extensions(i, &extensions)?;
            at = end + 4;
            self.on_open(i, now);
        }
        while let Some((op, start, end)) = parse_frame(&buf[at..])? {
            let payload = &buf[at + start..at + end];
            at += end;
            if op & 0x0f == 0x8 {
                return self.on_close_frame(i).map(|()| at);
            }
            self.on_frame(i, op, payload, now)?;
        }
        Ok(at)
    }

    /// Handles HTTP answers in `buf`: heads, then bodies skipped by their
    /// `Content-Length`. Returns the bytes used; the rest is an incomplete head.
    fn consume_http(&mut self, i: usize, buf: &[u8], now: Instant) -> io::Result<usize> {
        let mut at = 0;
        loop {
            let c = &mut self.conns[i];
            if let Some(left) = c.body_left {
                let k = left.min(buf.len() - at);
                at += k;
                if left > k {
                    c.body_left = Some(left - k);
                    return Ok(at);
                }
                c.body_left = None;
                self.on_answer(i, now)?;
                if self.conns[i].phase != Phase::Open {
                    return Ok(at);
                }
                continue;
            }
            if at == buf.len() {
                return Ok(at);
            }
            let Some(end) = buf[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() - at > 8192 {
                    return Err(io::Error::other("an answer's head over 8 KiB"));
                }
                return Ok(at);
            };
            let head = String::from_utf8_lossy(&buf[at..at + end]);
            if !head.starts_with("HTTP/1.1 200") {
                let line = head.lines().next().unwrap_or("");
                return Err(io::Error::other(format!(
                    "GET {} answered {line}",
                    self.o.path
                )));
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| io::Error::other("an answer without Content-Length"))?;
            at += end + 4;
            self.conns[i].body_left = Some(length);
        }
    }

    /// A whole HTTP answer on connection `i`.
    fn on_answer(&mut self, i: usize, now: Instant) -> io::Result<()> {
        self.last_progress = now;
        self.note_tls(i);
        if self.o.mode != Mode::Handshake {
            return self.on_echo(i, now);
        }
        let c = &mut self.conns[i];
        let Some(sent) = c.in_flight.pop_front() else {
            return Err(io::Error::other("an answer to nothing"));
        };
        self.echoes += 1;
        if self.measuring {
            self.latency.record(now - sent);
            self.measured += 1;
            let kind = c.tls.as_ref().and_then(|t| t.handshake_kind());
            self.resumed += u64::from(kind == Some(HandshakeKind::Resumed));
        }
        if self.stage == Stage::Running {
            self.reconnect(i, now)
        } else {
            self.finish(i)
        }
    }

    /// Remembers what the first finished TLS handshake negotiated.
    fn note_tls(&mut self, i: usize) {
        if self.negotiated.is_some() {
            return;
        }
        let Some(tls) = self.conns[i].tls.as_ref() else {
            return;
        };
        if tls.is_handshaking() {
            return;
        }
        let version = tls
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let suite = tls
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("?");
        let group = tls
            .negotiated_key_exchange_group()
            .map_or("?".to_string(), |g| format!("{:?}", g.name()));
        self.negotiated = Some(format!("{version} {suite} {group}"));
    }

    fn on_open(&mut self, i: usize, now: Instant) {
        self.note_tls(i);
        self.conns[i].phase = Phase::Open;
        self.opening -= 1;
        self.open += 1;
        if self.open == self.conns.len() {
            self.opened_at = Some(now);
        }
    }

    fn on_frame(&mut self, i: usize, op: u8, payload: &[u8], now: Instant) -> io::Result<()> {
        match op {
            0x89 => {
                // A ping: answer it (no server here sends one unasked).
                let pong = masked_frame(0xA, payload);
                queue_bytes(&mut self.conns[i], &self.frame, &pong);
                return Ok(());
            }
            0x8A => return Ok(()),
            _ => {}
        }
        // RSV1: a compressed message (permessage-deflate).
        let compressed = op & 0x40 != 0;
        if op & !0x40 != 0x80 | self.opcode {
            return Err(io::Error::other(format!(
                "a wrong message: opcode {op:#x} where {:#x} was sent",
                0x80 | self.opcode
            )));
        }
        if compressed {
            self.check_compressed(i, payload)?;
        } else if payload.len() != self.payload.len() || payload != self.payload {
            return Err(io::Error::other(format!(
                "a wrong message: opcode {op:#x}, {} bytes where {} were sent",
                payload.len(),
                self.payload.len()
            )));
        } else if let Some(p) = self.pmd.as_mut() {
            p.plain_in += 1;
        }
        self.last_progress = now;
        match self.conns[i].role {
            Role::Echo => self.on_echo(i, now),
            Role::Member => self.on_delivery(i, now),
            Role::Driver => Err(io::Error::other("the publisher got a message")),
        }
    }

    fn on_echo(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let c = &mut self.conns[i];
        let Some(sent) = c.in_flight.pop_front() else {
            return Err(io::Error::other("an echo of nothing"));
        };
        c.received += 1;
        self.echoes += 1;
        if self.measuring {
            self.latency.record(now - sent);
            self.measured += 1;
        }
        let more = match self.stage {
            Stage::Running => match (self.o.mode, self.o.messages) {
                (Mode::Echo, Some(m)) => c.sent < m,
                (Mode::Echo, None) => true,
                _ => false,
            },
            _ => false,
        };
        if more {
            self.send(i, now);
        }
        Ok(())
    }

    fn on_delivery(&mut self, i: usize, now: Instant) -> io::Result<()> {
        self.conns[i].received += 1;
        self.delivered += 1;
        if self.delivered < self.o.conns {
            return Ok(());
        }
        let Some(at) = self.published_at.take() else {
            return Err(io::Error::other("a delivery of nothing"));
        };
        self.delivered = 0;
        self.publishes += 1;
        if self.measuring {
            self.latency.record(now - at);
            self.measured += 1;
        }
        if self.stage == Stage::Running {
            self.publish(now)?;
        }
        Ok(())
    }

    /// Queues one message on connection `i` (written by `flush`).
    fn send(&mut self, i: usize, now: Instant) {
        self.owe(i);
        let c = &mut self.conns[i];
        c.in_flight.push_back(now);
        c.sent += 1;
    }

    /// Connection `i` owes one more message: a copy of `frame`, or with
    /// client context takeover one compressed by its own compressor.
    fn owe(&mut self, i: usize) {
        let c = &mut self.conns[i];
        match c.pmd.as_mut().and_then(|p| p.deflater.as_mut()) {
            Some(deflater) => {
                let packed = deflater.message(&self.payload, false);
                let frame = masked_frame_with(0xC0 | self.opcode, packed);
                if let Some(p) = self.pmd.as_mut() {
                    p.deflated_out += 1;
                    p.deflated_out_bytes += packed.len() as u64;
                }
                queue_bytes(c, &self.frame, &frame);
            }
            None => c.frames += 1,
        }
    }

    /// The `Sec-WebSocket-Extensions` values of connection `i`'s 101:
    /// none unless permessage-deflate was offered, and then its agreement.
    fn on_extensions(&mut self, i: usize, values: &[&str]) -> io::Result<()> {
        let Some(p) = self.pmd.as_mut() else {
            if values.is_empty() {
                return Ok(());
            }
            return Err(io::Error::other(format!(
                "extensions nobody offered: {values:?}"
            )));
        };
        if values.is_empty() {
            return Err(io::Error::other(
                "the server declined permessage-deflate (no Sec-WebSocket-Extensions in its 101)",
            ));
        }
        let takeover = p.takeover == Takeover::Yes;
        let agreed = deflate::check_answer(values, takeover)
            .map_err(|e| io::Error::other(format!("permessage-deflate: {e} ({values:?})")))?;
        if p.answer.is_none() {
            p.answer = Some(values.join(", "));
            p.agreed = Some(agreed);
        }
        self.conns[i].pmd = Some(Box::new(ConnDeflate {
            deflater: (takeover && !agreed.client_no_context_takeover)
                .then(|| Deflater::new(p.level)),
            inflater: (!agreed.server_no_context_takeover).then(Inflater::new),
        }));
        Ok(())
    }

    /// A compressed message on connection `i`: it must inflate to the
    /// message sent.
    fn check_compressed(&mut self, i: usize, payload: &[u8]) -> io::Result<()> {
        let (Some(p), Some(c)) = (self.pmd.as_mut(), self.conns[i].pmd.as_mut()) else {
            return Err(io::Error::other("RSV1 set without permessage-deflate"));
        };
        p.compressed_in += 1;
        p.compressed_in_bytes += payload.len() as u64;
        let limit = self.payload.len();
        let same = match c.inflater.as_mut() {
            Some(inflater) => {
                p.inflated += 1;
                inflater.message(payload, false, limit)? == self.payload
            }
            None if !self.o.inflate_all && p.verified.as_deref() == Some(payload) => true,
            None => {
                p.inflated += 1;
                let same = p.inflater.message(payload, true, limit)? == self.payload;
                if same {
                    let verified = p.verified.get_or_insert_with(Vec::new);
                    verified.clear();
                    verified.extend_from_slice(payload);
                }
                same
            }
        };
        if !same {
            return Err(io::Error::other(format!(
                "a compressed message of {} bytes that does not inflate to the {limit} sent",
                payload.len()
            )));
        }
        Ok(())
    }

    /// The fan-out driver sends the next publish, at once (this runs while
    /// a member's delivery is being handled).
    fn publish(&mut self, now: Instant) -> io::Result<()> {
        let driver = self.conns.len() - 1;
        self.owe(driver);
        let c = &mut self.conns[driver];
        c.sent += 1;
        self.published_at = Some(now);
        self.flush(driver)
    }

    fn on_close_frame(&mut self, i: usize) -> io::Result<()> {
        if self.conns[i].phase == Phase::Closing {
            return self.finish(i);
        }
        Err(io::Error::other("the server closed the WebSocket"))
    }

    fn on_eof(&mut self, i: usize) -> io::Result<()> {
        if self.conns[i].phase == Phase::Closing {
            return self.finish(i);
        }
        Err(io::Error::other("the server closed the connection"))
    }

    /// Done with connection `i`: deregister and drop its socket.
    fn finish(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        if let Some(mut stream) = c.stream.take() {
            self.poll.registry().deregister(&mut stream)?;
        }
        c.phase = Phase::Done;
        c.input = Vec::new();
        c.output = Vec::new();
        c.frames = 0;
        self.done += 1;
        Ok(())
    }

    /// Writes what connection `i` has queued, until the socket would block:
    /// its own bytes, then the message frames it owes, up to `GATHER` pieces
    /// per write.
    fn flush(&mut self, i: usize) -> io::Result<()> {
        let frame = &self.frame[..];
        let c = &mut self.conns[i];
        let failed = loop {
            let Some(stream) = c.stream.as_mut() else {
                return Ok(());
            };
            if c.phase == Phase::Connecting {
                return Ok(());
            }
            // TLS: the records made before go out first.
            if let Some(tls) = c.tls.as_mut() {
                match push(stream, tls) {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(e) => break Some(e),
                }
            }
            let mut pieces = [IoSlice::new(&[]); GATHER];
            let mut n = 0;
            if c.written < c.output.len() {
                pieces[0] = IoSlice::new(&c.output[c.written..]);
                n = 1;
            }
            for k in 0..c.frames.min(GATHER - n) {
                let from = if k == 0 { c.frame_at } else { 0 };
                pieces[n] = IoSlice::new(&frame[from..]);
                n += 1;
            }
            if n == 0 {
                break None;
            }
            let wrote = match c.tls.as_mut() {
                // All of it becomes one record (or more, 16 KiB each);
                // 0 when rustls holds as much as it will before the socket
                // takes some (or the handshake ends).
                Some(tls) => match tls.writer().write_vectored(&pieces[..n]) {
                    Ok(0) => return Ok(()),
                    other => other,
                },
                None => stream.write_vectored(&pieces[..n]),
            };
            match wrote {
                Ok(k) => advance(c, frame.len(), k),
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = failed {
            if self.conns[i].phase == Phase::Closing {
                return self.finish(i);
            }
            return Err(e);
        }
        let c = &mut self.conns[i];
        c.output.clear();
        c.written = 0;
        Ok(())
    }

    /// Moves the run along: more connections, the start and end of the
    /// measured window, draining, closing.
    fn tick(&mut self) -> io::Result<()> {
        let now = Instant::now();
        match self.stage {
            Stage::Opening => {
                self.open_more()?;
                if self.open == self.conns.len() {
                    self.start(now)?;
                } else if now - self.stage_since > PHASE_LIMIT {
                    return Err(io::Error::other(format!(
                        "only {} of {} connections upgraded in {PHASE_LIMIT:?}",
                        self.open,
                        self.conns.len()
                    )));
                }
            }
            Stage::Running => {
                if let (Some(from), false) = (self.measure_from, self.measuring) {
                    if now >= from {
                        self.window.start = Some(sample(&self.o));
                        self.measuring = true;
                        self.measure_until = Some(now + self.o.duration);
                    }
                }
                let all_done = match (self.o.mode, self.o.messages) {
                    (Mode::Echo, Some(m)) => self.echoes >= m * self.o.conns as u64,
                    (Mode::Idle, _) => self.echoes >= self.idle_messages() * self.o.conns as u64,
                    _ => false,
                };
                let time_up = self.measure_until.is_some_and(|t| now >= t);
                if all_done || time_up {
                    self.measuring = false;
                    self.window.end = Some(sample(&self.o));
                    if self.o.mode == Mode::Idle {
                        self.set_stage(Stage::Holding, now);
                    } else {
                        self.set_stage(Stage::Draining, now);
                    }
                } else if now - self.last_progress > STALL_LIMIT {
                    return Err(io::Error::other(format!(
                        "no echo or delivery for {STALL_LIMIT:?} ({} echoes, {} publishes so far)",
                        self.echoes, self.publishes
                    )));
                }
            }
            Stage::Holding => {
                if now - self.stage_since >= self.o.hold {
                    // Every connection stays open until the process exits.
                    self.window.end = Some(sample(&self.o));
                    self.set_stage(Stage::Finished, now);
                }
            }
            Stage::Draining => {
                let in_flight: usize = self.conns.iter().map(|c| c.in_flight.len()).sum::<usize>()
                    + usize::from(self.published_at.is_some());
                if in_flight == 0 && self.o.proto == Proto::Http {
                    self.set_stage(Stage::Finished, now);
                } else if in_flight == 0 && self.o.mode == Mode::Fanout {
                    // Members only receive (fastwebsockets' do not even read),
                    // so the fan-out disconnects without closing handshakes.
                    self.set_stage(Stage::Finished, now);
                } else if in_flight == 0 {
                    self.close_all(now)?;
                } else if now - self.stage_since > PHASE_LIMIT {
                    return Err(io::Error::other(format!(
                        "{in_flight} echoes never came back"
                    )));
                }
            }
            Stage::Closing => {
                if self.done == self.conns.len() {
                    self.set_stage(Stage::Finished, now);
                } else if now - self.stage_since > PHASE_LIMIT {
                    return Err(io::Error::other(format!(
                        "{} connections did not finish the closing handshake",
                        self.conns.len() - self.done
                    )));
                }
            }
            Stage::Finished => {}
        }
        Ok(())
    }

    fn idle_messages(&self) -> u64 {
        self.o.messages.unwrap_or(1)
    }

    fn set_stage(&mut self, stage: Stage, now: Instant) {
        self.stage = stage;
        self.stage_since = now;
    }

    /// Every connection is open: start sending.
    fn start(&mut self, now: Instant) -> io::Result<()> {
        self.set_stage(Stage::Running, now);
        self.last_progress = now;
        match self.o.mode {
            Mode::Echo => {
                let first = match self.o.messages {
                    Some(m) => m.min(self.o.depth as u64) as usize,
                    None => self.o.depth,
                };
                if self.o.messages.is_none() || !self.o.warmup.is_zero() {
                    self.measure_from = Some(now + self.o.warmup);
                } else {
                    self.window.start = Some(sample(&self.o));
                    self.measuring = true;
                }
                for i in 0..self.conns.len() {
                    for _ in 0..first {
                        self.send(i, now);
                    }
                    self.flush(i)?;
                }
            }
            Mode::Idle => {
                self.window.start = Some(sample(&self.o));
                for i in 0..self.conns.len() {
                    if self.idle_messages() > 0 {
                        self.send(i, now);
                        self.flush(i)?;
                    }
                }
                // `on_echo` sends no more in idle mode: one message each.
                self.o.messages = Some(self.idle_messages().min(1));
            }
            Mode::Fanout => {
                self.measure_from = Some(now + self.o.warmup);
                self.publish(now)?;
            }
            Mode::Handshake => {
                self.measure_from = Some(now + self.o.warmup);
                for i in 0..self.conns.len() {
                    self.connect(i)?;
                    self.send(i, now);
                }
            }
        }
        Ok(())
    }

    /// Sends every connection a close frame (1000).
    fn close_all(&mut self, now: Instant) -> io::Result<()> {
        self.set_stage(Stage::Closing, now);
        for i in 0..self.conns.len() {
            if self.conns[i].phase != Phase::Open {
                continue;
            }
            let c = &mut self.conns[i];
            queue_bytes(c, &self.frame, &self.close_frame);
            c.phase = Phase::Closing;
            self.flush(i)?;
        }
        Ok(())
    }

    fn report(&self, started: Instant) -> String {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| fields.push((k.to_string(), v));
        let mode = match (self.o.mode, self.o.proto) {
            (Mode::Echo, Proto::WebSocket) => "echo",
            (Mode::Idle, Proto::WebSocket) => "idle",
            (Mode::Fanout, _) => "fanout",
            (Mode::Echo, Proto::Http) => "get",
            (Mode::Idle, Proto::Http) => "keepalive",
            (Mode::Handshake, _) => "handshake",
        };
        put("mode", format!("{mode:?}"));
        put("label", format!("{:?}", self.o.label));
        put("conns", self.o.conns.to_string());
        if self.o.proto == Proto::WebSocket {
            put("size", self.o.size.to_string());
        } else {
            put("path", format!("{:?}", self.o.path));
        }
        put("tls", (self.o.tls.is_some()).to_string());
        put("json", self.o.json.to_string());
        if let Some(p) = &self.pmd {
            let takeover = match p.takeover {
                Takeover::No => "no context takeover",
                Takeover::Yes => "context takeover",
            };
            put("deflate", format!("{takeover:?}"));
            put(
                "extension",
                p.answer
                    .as_ref()
                    .map_or("null".into(), |a| format!("{a:?}")),
            );
            put("deflate_level", p.level.to_string());
            put(
                "server_window_bits",
                opt(p.agreed.map(|a| u64::from(a.server_max_window_bits))),
            );
            // The message compressed afresh, as every connection without
            // client takeover sends it.
            put("packed_bytes", p.packed.to_string());
            put(
                "ratio",
                format!("{:.2}", self.payload.len() as f64 / p.packed.max(1) as f64),
            );
            put("compressed_in", p.compressed_in.to_string());
            put("uncompressed_in", p.plain_in.to_string());
            put("inflated", p.inflated.to_string());
            put(
                "compressed_in_bytes_avg",
                format!(
                    "{:.1}",
                    p.compressed_in_bytes as f64 / p.compressed_in.max(1) as f64
                ),
            );
            if p.deflated_out > 0 {
                put("deflated_out", p.deflated_out.to_string());
                put(
                    "deflated_out_bytes_avg",
                    format!("{:.1}", p.deflated_out_bytes as f64 / p.deflated_out as f64),
                );
            }
        }
        if self.o.tls.is_some() {
            put("resume", self.o.resume.to_string());
            put(
                "negotiated",
                self.negotiated
                    .as_ref()
                    .map_or("null".into(), |n| format!("{n:?}")),
            );
        }
        let (Some(start), Some(end)) = (&self.window.start, &self.window.end) else {
            put("error", "\"no measured window\"".into());
            return json(&fields);
        };
        let seconds = (end.at - start.at).as_secs_f64().max(1e-9);
        let pct = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!(
                "{:.1}",
                (b.saturating_sub(a)) as f64 / 1e9 / seconds * 100.0
            ),
            _ => "null".into(),
        };
        let us = |ns: u64| format!("{:.1}", ns as f64 / 1000.0);
        let pid = self.o.pid;
        match self.o.mode {
            Mode::Echo | Mode::Fanout | Mode::Handshake => {
                if self.o.mode == Mode::Handshake {
                    put("handshakes", self.measured.to_string());
                    put(
                        "handshakes_per_s",
                        format!("{:.0}", self.measured as f64 / seconds),
                    );
                    put("resumed", self.resumed.to_string());
                } else if self.o.proto == Proto::Http {
                    put("requests", self.measured.to_string());
                    put(
                        "requests_per_s",
                        format!("{:.0}", self.measured as f64 / seconds),
                    );
                } else if self.o.mode == Mode::Echo {
                    put("depth", self.o.depth.to_string());
                    put("messages", self.measured.to_string());
                    put(
                        "msgs_per_s",
                        format!("{:.0}", self.measured as f64 / seconds),
                    );
                    put(
                        "mib_per_s",
                        format!(
                            "{:.1}",
                            self.measured as f64 * self.o.size as f64 / seconds / 1048576.0
                        ),
                    );
                } else {
                    put("publishes", self.measured.to_string());
                    put(
                        "publishes_per_s",
                        format!("{:.1}", self.measured as f64 / seconds),
                    );
                    put(
                        "deliveries_per_s",
                        format!(
                            "{:.0}",
                            self.measured as f64 * self.o.conns as f64 / seconds
                        ),
                    );
                }
                put("seconds", format!("{seconds:.3}"));
                put("p50_us", us(self.latency.quantile_ns(0.5)));
                put("p99_us", us(self.latency.quantile_ns(0.99)));
                put("p999_us", us(self.latency.quantile_ns(0.999)));
                put("max_us", us(self.latency.max_ns()));
                put("server_cpu_pct", pct(start.server, end.server));
                put("load_cpu_pct", pct(start.load, end.load));
                if self.o.downstream_pid.is_some() {
                    put("downstream_cpu_pct", pct(start.downstream, end.downstream));
                }
            }
            Mode::Idle => {
                let after = pid.and_then(rss_kib);
                put(
                    "open_seconds",
                    format!(
                        "{:.3}",
                        self.opened_at.map_or(0.0, |t| (t - started).as_secs_f64())
                    ),
                );
                put("rss_before_kib", opt(self.rss_before));
                put("rss_after_kib", opt(after));
                let per = match (self.rss_before, after) {
                    (Some(b), Some(a)) => format!(
                        "{:.0}",
                        (a as f64 - b as f64) * 1024.0 / self.o.conns as f64
                    ),
                    _ => "null".into(),
                };
                put("bytes_per_conn", per);
            }
        }
        put("server_rss_kib", opt(pid.and_then(rss_kib)));
        put(
            "server_hwm_kib",
            opt(pid.and_then(|p| status_kib(p, "VmHWM"))),
        );
        json(&fields)
    }
}

impl Conn {
    fn new(role: Role) -> Conn {
        Conn {
            stream: None,
            tls: None,
            phase: Phase::Waiting,
            role,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            frames: 0,
            frame_at: 0,
            sent: 0,
            received: 0,
            in_flight: VecDeque::new(),
            body_left: None,
            pmd: None,
        }
    }
}

/// Reads plaintext from a TLS connection: what rustls has decrypted, else
/// records from the socket until some plaintext comes of them. `Ok(0)` is
/// the end (a `close_notify`, or the TCP connection closed); `WouldBlock`
/// when the socket is drained. Handshake records rustls answers with are
/// sent at once.
fn tls_read(
    stream: &mut TcpStream,
    tls: &mut ClientConnection,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if would_block(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        loop {
            match tls.read_tls(stream) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        push(stream, tls)?;
    }
}

/// Writes the records rustls holds; true when none is left.
fn push(stream: &mut TcpStream, tls: &mut ClientConnection) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// `{"k": v, …}` from values already written as JSON.
fn json(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}
