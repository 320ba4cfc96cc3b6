//! Process and resource faults (issue 22), over real sockets and real processes:
//!
//! - a WebSocket client in another process frozen with SIGSTOP while a room
//!   is published to: the server's output for it stays within
//!   `webSockets.maxBackpressure` (measured against the kernel's own queues),
//!   what does not fit is dropped and counted, everyone else is served, the
//!   server's peak memory hardly moves, and after SIGCONT the client reads a
//!   well-formed, ordered stream (or, with `closeOnBackpressure`, the 1008);
//! - 10,000 connections (idle TCP, HTTP keep-alive, WebSockets) opened and
//!   dropped in waves, half with a reset: the server's connection count and
//!   its descriptors come back to where they were;
//! - the server run with 64 descriptors (`ulimit -n 64`) and more clients
//!   than that: it backs off instead of spinning, serves what it accepted
//!   (a file, which needs a descriptor, is 503 on a connection that stays
//!   open), and takes the waiting clients once descriptors are free again;
//! - a gateway downstream that stalls forever mid-response (plain HTTP:
//!   head and half a body; WebSocket: half a frame): the client is closed
//!   after `timeouts.inactivity`, the downstream's connection released, and
//!   everyone else is served meanwhile.
//!
//! The servers under SIGSTOP, waves and EMFILE are the `wisp` binary as a
//! child process, so its memory (`/proc/PID/status`) and descriptors
//! (`/proc/PID/fd`) are its own; its counters come from `/api/status`.
//! Waits poll a condition with a deadline (`IO_TIMEOUT`, a safety net);
//! nothing sleeps to synchronise.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::binary::{start_command, wisp, Running};
use support::downstream::{find_host, server_frame, wait_for, ClientFrame, Fake, Peer};
use support::ws::{Ws, BINARY, CLOSE};
use support::{tcp_connect, Client, TempDir, TestServer, IO_TIMEOUT};
use wisp::{Handler, Message, Response, WebSocket};

// ---------------------------------------------------------------------------
// The binary as a child process, and what /proc says about a process

/// The `wisp` binary with its demo handlers (`/api/status`, `/ws/echo`,
/// `/ws/chat`) and `/files/hello.txt`, configured by `web` (keys inside
/// `web: { … }`), optionally under `ulimit -n`, logging warnings to `stderr`.
struct Child {
    running: Running,
    pid: u32,
    _dir: TempDir,
}

/// The routes every child serves.
const CHILD_ROUTES: &str = "routes: [ { match: '/api/', handler: 'action' }, \
                            { match: '/ws/', handler: 'action' }, \
                            { match: '/files/', handler: 'file' } ]";

impl Child {
    fn start(web: &str, max_fds: Option<u32>, stderr: Stdio) -> Child {
        let dir = TempDir::new("faults");
        dir.write("files/hello.txt", "hello");
        let config = dir.write(
            "web.json5",
            format!(
                "{{ web: {{ listen: ['http://127.0.0.1:0'], documents: '.', log: 'warn', \
                 {CHILD_ROUTES}, {web} }} }}"
            ),
        );
        let exe = wisp().get_program().to_owned();
        let mut command = match max_fds {
            // The shell lowers its own limit, then becomes the server (same pid).
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        command.current_dir(&dir.path).stderr(stderr);
        let running = start_command(command, &["--config", &config.display().to_string()]);
        let pid = running.child.id();
        Child {
            running,
            pid,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Still running (not exited, not killed by a signal).
    fn alive(&mut self) -> bool {
        self.running.child.try_wait().expect("waitpid").is_none()
    }

    fn stderr(&mut self) -> std::process::ChildStderr {
        self.running.child.stderr.take().expect("stderr is piped")
    }
}

/// A keep-alive connection that asks a child for its counters.
struct Status(Client, SocketAddr);

impl Status {
    fn connect(addr: SocketAddr) -> Status {
        Status(Client::connect(addr), addr)
    }

    /// `stats` of `/api/status`. A test that polls long outlives one
    /// keep-alive connection (`limits.requests`, 1000 by default): like any
    /// HTTP client it opens another once the server said `Connection: close`.
    fn get(&mut self) -> Value {
        self.0.send(b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = self.0.response();
        if r.header("connection") == Some("close") {
            self.0 = Client::connect(self.1);
        }
        assert_eq!(r.status, 200, "/api/status: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("/api/status is JSON");
        v["stats"].clone()
    }

    /// Polls until `ready` holds of the counters; returns them.
    fn until(&mut self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let s = self.get();
            if ready(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {IO_TIMEOUT:?}; {s}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A number among a child's counters (`limits.backpressure` and the like).
fn stat(stats: &Value, path: &str) -> u64 {
    path.split('.')
        .fold(stats, |v, k| &v[k])
        .as_u64()
        .unwrap_or_else(|| panic!("no number {path} in {stats}"))
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The descriptors a process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// The fields of `/proc/PID/stat` after the command name: `[0]` is the
/// state (`T` when stopped), `[11]` and `[12]` utime and stime in ticks.
fn proc_stat(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("(comm)") + 1..];
    after.split_whitespace().map(str::to_string).collect()
}

/// CPU time a process has used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let f = proc_stat(pid);
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The send and receive queues (`tx_queue`, `rx_queue` of `/proc/net/tcp`)
/// of the socket `local` → `remote`: bytes written and not yet acknowledged
/// by the peer, and bytes received and not yet read by its process.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> (u64, u64) {
    fn hex(addr: SocketAddr) -> String {
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only: {addr}")
        };
        let ip = u32::from_ne_bytes(v4.ip().octets());
        format!("{ip:08X}:{:04X}", v4.port())
    }
    let (l, r) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1) != Some(&l.as_str()) || f.get(2) != Some(&r.as_str()) {
                return None;
            }
            let (tx, rx) = f.get(4)?.split_once(':')?;
            Some((
                u64::from_str_radix(tx, 16).ok()?,
                u64::from_str_radix(rx, 16).ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("{local} → {remote} is not in /proc/net/tcp"))
}

/// Sends a signal with the shell's `kill` (a builtin: no procps needed).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .expect("sh")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// One GET on a fresh connection; the response's status and body.
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut c = Client::connect(addr);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let r = c.response();
    (r.status, r.text())
}

/// A fresh WebSocket to `target` echoes a message.
fn echoes(addr: SocketAddr, target: &str) {
    let mut ws = Ws::open(addr, target);
    ws.send_binary(b"still here");
    ws.expect_message(BINARY, b"still here");
    ws.close(1000);
}

// ---------------------------------------------------------------------------
// A client frozen with SIGSTOP while it is sent to

/// A chat client in Python (stdlib only): opens `/ws/chat`, joins the room
/// `flood`, prints `ready HOST:PORT` (its end of the connection), then reads
/// every frame, checking each is a whole, unmasked text frame without RSV
/// bits, and that the `said` messages (`mNNNNNN:…`) come in increasing
/// order; it prints `got N` for the first `warm` of them. At the message
/// `end`, or at the server's close, it does its half of the closing
/// handshake and waits for the end of the connection, then prints a JSON
/// summary. Any deviation prints `{"error": …}` and exits 1.
const FROZEN_CLIENT: &str = r#"
import base64, json, os, socket, struct, sys
host, port, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# A fixed receive buffer: the kernel's share of what waits for us stays small.
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect((host, port))
buf = bytearray()
def fail(why):
    print(json.dumps({"error": why}), flush=True)
    sys.exit(1)
def fill():
    d = s.recv(1 << 16)
    if not d:
        fail("end of stream inside a frame (%d bytes buffered)" % len(buf))
    buf.extend(d)
def take(n):
    while len(buf) < n:
        fill()
    out = bytes(buf[:n])
    del buf[:n]
    return out
def send(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
def frame():
    b0, b1 = take(2)
    if b1 & 0x80: fail("a masked frame from the server")
    if b0 & 0x70: fail("RSV bits set")
    if not b0 & 0x80: fail("a fragment")
    n = b1 & 0x7F
    if n == 126: n = struct.unpack("!H", take(2))[0]
    elif n == 127: n = struct.unpack("!Q", take(8))[0]
    return b0 & 0x0F, take(n)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws/chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
while b"\r\n\r\n" not in buf:
    fill()
end = buf.index(b"\r\n\r\n") + 4
head = bytes(buf[:end]); del buf[:end]
if not head.startswith(b"HTTP/1.1 101 "): fail("no 101: %r" % head)
send(1, json.dumps({"event": "join", "room": "flood", "name": "frozen"}).encode())
op, payload = frame()
if op != 1 or json.loads(payload).get("event") != "joined": fail("not joined: %r" % payload)
print("ready %s:%d" % s.getsockname(), flush=True)
last, said, others, close = -1, 0, 0, None
while True:
    op, payload = frame()
    if op == 8:
        close = [struct.unpack("!H", payload[:2])[0], payload[2:].decode()]
        send(8, payload[:2])
        break
    if op != 1: fail("opcode %d" % op)
    msg = json.loads(payload)
    if msg.get("event") != "said":
        others += 1
        continue
    text = msg["text"]
    if text == "end":
        send(8, struct.pack("!H", 1000))
        op, payload = frame()
        if op != 8 or struct.unpack("!H", payload[:2])[0] != 1000: fail("no close 1000 back")
        break
    n = int(text[1:7])
    if n <= last: fail("message %d after %d" % (n, last))
    last, said = n, said + 1
    if n < warm: print("got %d" % n, flush=True)
if s.recv(1) != b"": fail("bytes after the close")
print(json.dumps({"said": said, "last": last, "others": others, "close": close}), flush=True)
"#;

/// Messages published before the client is frozen (it reads them all).
const WARM: usize = 16;
/// Messages published in all: about 33 MiB of frames for the frozen client.
const TOTAL: usize = 8192;
/// The server's `webSockets.maxBackpressure`, in bytes.
const MAX_BACKPRESSURE: u64 = 256 * 1024;
/// How many `say`s the publisher sends before reading its own copies: 64 KiB
/// of output to itself, well under the limit, so none of its own is dropped.
const BATCH: usize = 16;

/// The text of message `i`: 4,000 characters, its number first.
fn said_text(i: usize) -> String {
    let mut t = format!("m{i:06}:");
    t.extend(std::iter::repeat_n('x', 4000 - t.len()));
    t
}

/// A child process that is killed (stopped or not) and reaped on drop, so
/// a failing test leaves no frozen client behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a child prints, as they come.
fn lines(out: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(IO_TIMEOUT)
        .unwrap_or_else(|_| panic!("the frozen client did not print {what}"))
}

/// Publishes messages `from..to` to the room as `publisher`, reading its
/// own copy of each (it is in the room too) in batches of [`BATCH`];
/// returns the length of one message's frame on the wire.
fn publish(publisher: &mut Ws, from: usize, to: usize) -> u64 {
    let mut frame = 0;
    let mut i = from;
    while i < to {
        let n = BATCH.min(to - i);
        for k in i..i + n {
            publisher.send_json(&json!({ "event": "say", "room": "flood", "text": said_text(k) }));
        }
        for k in i..i + n {
            let f = publisher.read_frame();
            let msg: Value = serde_json::from_slice(&f.payload).expect("JSON");
            assert_eq!(
                (msg["event"].as_str(), msg["text"].as_str().map(|t| &t[..7])),
                (Some("said"), Some(&said_text(k)[..7])),
                "the publisher gets its own messages, in order, none dropped"
            );
            frame = (publisher.last_header_len + f.payload.len()) as u64;
        }
        i += n;
    }
    frame
}

/// Freezes a real client process while a room it is in gets `TOTAL` × 4 KiB.
/// Returns the client's summary after SIGCONT and the counters.
fn frozen_client_run(close_on_backpressure: bool) -> Option<(Value, FrozenFacts)> {
    let Ok(python) = Command::new("python3").arg("--version").output() else {
        eprintln!("SKIP: no python3 for the frozen client");
        return None;
    };
    assert!(python.status.success());
    let mut srv = Child::start(
        &format!(
            "webSockets: {{ maxBackpressure: {MAX_BACKPRESSURE}, \
             closeOnBackpressure: {close_on_backpressure}, closeTimeout: '1 min' }}"
        ),
        None,
        Stdio::null(),
    );
    let addr = srv.addr();
    let mut status = Status::connect(addr);
    let mut client = Reaped(
        Command::new("python3")
            .args([
                "-c",
                FROZEN_CLIENT,
                &addr.ip().to_string(),
                &addr.port().to_string(),
                &WARM.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let pid = client.0.id();
    let out = lines(client.0.stdout.take().unwrap());
    let ready = next_line(&out, "ready");
    let client_addr: SocketAddr = ready
        .strip_prefix("ready ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{ready:?}"));

    let mut publisher = Ws::open(addr, "/ws/chat");
    publisher.send_json(&json!({ "event": "join", "room": "flood", "name": "pub" }));
    assert_eq!(publisher.read_json()["event"], "joined");
    // The frozen client reads the warm-up while it still runs.
    publish(&mut publisher, 0, WARM);
    for i in 0..WARM {
        assert_eq!(next_line(&out, "got N"), format!("got {i}"));
    }
    let hwm_before = proc_kib(srv.pid, "VmHWM");

    signal(pid, "STOP");
    wait_for("the client is stopped", IO_TIMEOUT, || {
        proc_stat(pid)[0] == "T"
    });
    let frame = publish(&mut publisher, WARM, TOTAL);
    // Everyone else is served while it is frozen.
    assert_eq!(get(addr, "/api/status").0, 200);
    echoes(addr, "/ws/echo");
    let stats = status.get();
    // Both joins, every `say` and the echo: the server took in everything.
    assert_eq!(stat(&stats, "messages_in"), TOTAL as u64 + 3);
    let dropped = stat(&stats, "limits.backpressure");
    // What waits for the frozen client in the kernel: the server socket's
    // unacknowledged bytes and the client socket's unread ones. Nothing
    // moves while it is stopped.
    let (server_tx, _) = tcp_queues(addr, client_addr);
    let (_, client_rx) = tcp_queues(client_addr, addr);
    let hwm_after = proc_kib(srv.pid, "VmHWM");
    assert_eq!(proc_stat(pid)[0], "T", "the client stayed frozen");

    signal(pid, "CONT");
    let summary = if close_on_backpressure {
        next_line(&out, "its summary")
    } else {
        // The client reads what waited for it; `end` is said again while
        // the server drops it (the drop counter moves), until it fits.
        let mut drops = dropped;
        for _ in 0..10_000 {
            publisher.send_json(&json!({ "event": "say", "room": "flood", "text": "end" }));
            assert_eq!(publisher.read_json()["text"], "end");
            let now = stat(&status.get(), "limits.backpressure");
            if now == drops {
                break;
            }
            drops = now;
        }
        next_line(&out, "its summary")
    };
    let exit = client.0.wait().expect("wait for python3");
    let summary: Value =
        serde_json::from_str(&summary).unwrap_or_else(|e| panic!("{e}: {summary}"));
    assert!(exit.success(), "the client saw a broken stream: {summary}");
    // The server still serves, and is still the same process.
    echoes(addr, "/ws/echo");
    assert!(srv.alive());
    // The publisher may have been told the frozen client left.
    publisher.send_close(1000, "");
    while publisher.read_frame().opcode != CLOSE {}
    publisher.expect_eof();
    Some((
        summary,
        FrozenFacts {
            frame,
            dropped,
            server_tx,
            client_rx,
            hwm_growth: hwm_after.saturating_sub(hwm_before),
        },
    ))
}

/// What was measured while the client was frozen.
#[derive(Debug)]
struct FrozenFacts {
    /// One message's frame on the wire, in bytes.
    frame: u64,
    /// `limits.backpressure` once the flood was handled.
    dropped: u64,
    /// Bytes in the kernel's queues towards the client then.
    server_tx: u64,
    client_rx: u64,
    /// How much the server's peak resident memory grew meanwhile, in KiB.
    hwm_growth: u64,
}

impl FrozenFacts {
    /// The bytes that waited in the server's own output buffer for the
    /// frozen client: every message it went on to receive was pending
    /// while it was frozen, minus what the kernel held.
    fn held_by_server(&self, received_while_frozen: u64) -> i64 {
        (received_while_frozen * self.frame) as i64 - (self.server_tx + self.client_rx) as i64
    }

    /// The assertions both variants share.
    fn check_bounded(&self, received_while_frozen: u64) {
        let held = self.held_by_server(received_while_frozen);
        println!("{self:?}; held by the server: {held} bytes");
        assert!(self.dropped > 0, "some messages did not fit");
        assert!(
            held >= 0 && held as u64 <= MAX_BACKPRESSURE + self.frame,
            "the server held {held} bytes for the frozen client (limit {MAX_BACKPRESSURE})"
        );
        assert!(
            held as u64 + self.frame > MAX_BACKPRESSURE,
            "drops began only once the buffer was full ({held} bytes held)"
        );
        let sent_mib = (TOTAL as u64 * self.frame) >> 20;
        assert!(
            self.hwm_growth < 8 * 1024,
            "peak memory grew {} KiB while {sent_mib} MiB were published",
            self.hwm_growth
        );
    }
}

/// How many messages the client read: they must be the first ones
/// published, all of them, in order (it was frozen throughout the flood,
/// so once one did not fit, none after it did).
fn prefix_read(summary: &Value) -> u64 {
    let said = summary["said"].as_u64().expect("a count");
    assert!(said > WARM as u64, "{summary}");
    assert_eq!(summary["last"], said - 1, "no gap: {summary}");
    said
}

#[test]
fn a_client_frozen_by_sigstop_costs_at_most_max_backpressure_and_reads_an_ordered_stream() {
    let Some((summary, facts)) = frozen_client_run(false) else {
        return;
    };
    let said = prefix_read(&summary);
    // Every message reached the frozen client or was counted as dropped for it.
    assert_eq!(said + facts.dropped, TOTAL as u64, "{summary} {facts:?}");
    assert_eq!(summary["close"], Value::Null, "no close from the server");
    facts.check_bounded(said - WARM as u64);
}

#[test]
fn a_client_frozen_by_sigstop_with_close_on_backpressure_reads_what_fitted_then_1008() {
    let Some((summary, facts)) = frozen_client_run(true) else {
        return;
    };
    let said = prefix_read(&summary);
    assert_eq!(summary["close"], json!([1008, "backpressure"]), "{summary}");
    // Counted: the message that did not fit, and those of the same turn
    // (at most the publisher's batch in flight) before the connection left
    // the room; nothing after.
    assert!(
        (1..=BATCH as u64).contains(&facts.dropped),
        "{summary} {facts:?}"
    );
    facts.check_bounded(said - WARM as u64);
}

// ---------------------------------------------------------------------------
// 10,000 connections opened and dropped in waves

const WAVES: usize = 10;
const PER_WAVE: usize = 1000;

/// One connection of a wave.
enum Held {
    /// Connected, never a byte sent.
    Idle(TcpStream),
    /// One request answered, kept alive.
    Http(Client),
    /// Upgraded, one message echoed.
    WebSocket(Ws),
}

impl Held {
    fn open(addr: SocketAddr, i: usize) -> Held {
        match i % 3 {
            0 => Held::Idle(tcp_connect(addr).expect("connect")),
            1 => {
                let mut c = Client::connect(addr);
                c.send(b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n");
                assert_eq!(c.response().status, 200);
                Held::Http(c)
            }
            _ => {
                let mut ws = Ws::open(addr, "/ws/echo");
                ws.send_binary(&i.to_be_bytes());
                ws.expect_message(BINARY, &i.to_be_bytes());
                Held::WebSocket(ws)
            }
        }
    }

    fn stream(&self) -> &TcpStream {
        match self {
            Held::Idle(s) => s,
            Held::Http(c) => &c.stream,
            Held::WebSocket(ws) => &ws.stream,
        }
    }

    /// Ends the connection with a reset: `SO_LINGER` 0, then close.
    fn reset(self) {
        rustix::net::sockopt::set_socket_linger(self.stream(), Some(Duration::ZERO))
            .expect("SO_LINGER");
        drop(self);
    }

    /// Ends the connection cleanly: a WebSocket's closing handshake and the
    /// end of the TCP connection; a FIN for the others.
    fn close(self) {
        match self {
            Held::WebSocket(ws) => ws.close(1000),
            other => drop(other),
        }
    }
}

#[test]
fn ten_thousand_connections_opened_and_dropped_in_waves_leave_nothing_behind() {
    let srv = Child::start("limits: { connections: 2000 }", None, Stdio::null());
    let addr = srv.addr();
    let mut status = Status::connect(addr);
    // The status connection is the only one.
    let base = status.until("the server is idle", |s| stat(s, "connections_open") == 1);
    let fds = open_fds(srv.pid);
    let rss = proc_kib(srv.pid, "VmRSS");
    let websockets = (0..PER_WAVE).filter(|i| i % 3 == 2).count() as u64;
    for wave in 0..WAVES {
        let held: Vec<Held> = (0..PER_WAVE).map(|i| Held::open(addr, i)).collect();
        status.until(&format!("wave {wave}: every connection is open"), |s| {
            stat(s, "connections_open") == PER_WAVE as u64 + 1
                && stat(s, "websockets_open") == websockets
        });
        assert!(open_fds(srv.pid) >= fds + PER_WAVE, "one descriptor each");
        // Every other one reset: each kind (i % 3) gets both ends.
        for (i, h) in held.into_iter().enumerate() {
            if i % 2 == 0 {
                h.reset();
            } else {
                h.close();
            }
        }
        status.until(&format!("wave {wave}: every connection is gone"), |s| {
            stat(s, "connections_open") == 1 && stat(s, "websockets_open") == 0
        });
    }
    // The server still serves, holds no more descriptors than before, and
    // counted every connection.
    assert_eq!(get(addr, "/api/status").0, 200);
    echoes(addr, "/ws/echo");
    wait_for("the descriptors are back to before", IO_TIMEOUT, || {
        open_fds(srv.pid) == fds
    });
    let after = status.until("the probes are gone", |s| stat(s, "connections_open") == 1);
    assert_eq!(
        stat(&after, "connections_total") - stat(&base, "connections_total"),
        (WAVES * PER_WAVE + 2) as u64
    );
    let grown = proc_kib(srv.pid, "VmRSS").saturating_sub(rss);
    println!("RSS grew {grown} KiB over {} connections", WAVES * PER_WAVE);
    assert!(
        grown < 16 * 1024,
        "resident memory grew {grown} KiB: what the connections held was not given back"
    );
}

// ---------------------------------------------------------------------------
// Out of descriptors (EMFILE)

/// The server's descriptor limit in the EMFILE test.
const MAX_FDS: usize = 64;
/// Clients beyond what the server can accept.
const WAITING: usize = 20;

/// The descriptors a process has open numbered below `limit` (one it
/// inherited above its limit takes none of the numbers it may use).
fn fds_below(pid: u32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

/// Counts the lines of a child's stderr that say it ran out of descriptors.
fn count_emfile(stderr: std::process::ChildStderr) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line.contains("out of file descriptors") {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    count
}

/// Sends one request, to be answered later.
fn ask(c: &mut Client) {
    c.send(b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n");
}

#[test]
fn out_of_descriptors_the_server_backs_off_serves_what_it_has_and_recovers() {
    let mut srv = Child::start(
        "limits: { connections: 1000 }",
        Some(MAX_FDS as u32),
        Stdio::piped(),
    );
    let emfile = count_emfile(srv.stderr());
    let addr = srv.addr();
    let mut status = Status::connect(addr);
    status.get();
    // Every descriptor left, taken by a served keep-alive connection.
    let room = MAX_FDS - fds_below(srv.pid, MAX_FDS);
    let mut held: Vec<Client> = (0..room)
        .map(|_| {
            let mut c = Client::connect(addr);
            ask(&mut c);
            assert_eq!(c.response().status, 200);
            c
        })
        .collect();
    assert_eq!(fds_below(srv.pid, MAX_FDS), MAX_FDS);
    // More clients: the kernel completes their connections (the listen
    // backlog), the server cannot accept them.
    let mut waiting: Vec<Client> = (0..WAITING)
        .map(|_| {
            let mut c = Client::connect(addr);
            ask(&mut c);
            c
        })
        .collect();
    wait_for("the server hits EMFILE", IO_TIMEOUT, || {
        emfile.load(Ordering::SeqCst) > 0
    });
    assert_eq!(
        fds_below(srv.pid, MAX_FDS),
        MAX_FDS,
        "every descriptor in use"
    );
    let accepted = stat(&status.get(), "connections_open");
    assert!(
        accepted > room as u64,
        "the status connection and {room} more"
    );
    // Ten more tries to accept, each after the documented 100 ms pause:
    // not a loop retrying at once, and next to no CPU while it waits.
    let (tries, cpu, started) = (
        emfile.load(Ordering::SeqCst),
        cpu_ticks(srv.pid),
        Instant::now(),
    );
    wait_for("ten more accept attempts", IO_TIMEOUT, || {
        emfile.load(Ordering::SeqCst) >= tries + 10
    });
    let (elapsed, used) = (started.elapsed(), cpu_ticks(srv.pid) - cpu);
    let used_ms = used * 10; // USER_HZ is 100 on Linux
    println!("10 accept attempts in {elapsed:?} using {used_ms} ms of CPU");
    assert!(
        elapsed >= Duration::from_millis(900),
        "ten attempts in {elapsed:?}: the server does not pause between them"
    );
    assert!(
        u128::from(used_ms) * 4 < elapsed.as_millis(),
        "{used_ms} ms of CPU in {elapsed:?}: the server spins"
    );
    // It has accepted nothing more, and still serves what it accepted.
    let s = status.get();
    assert_eq!(stat(&s, "connections_open"), accepted, "{s}");
    for c in &mut held {
        ask(c);
        assert_eq!(c.response().status, 200);
    }
    // A file needs a descriptor too: 503, and the connection stays open.
    let c = &mut held[0];
    c.send(b"GET /files/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 503, "no descriptor to open the file");
    ask(c);
    assert_eq!(c.response().status, 200);
    assert!(srv.alive());
    // Descriptors free again: the waiting clients are taken and answered,
    // and new ones too.
    held.clear();
    for c in &mut waiting {
        assert_eq!(c.response().status, 200, "a waiting client is served");
    }
    for _ in 0..WAITING {
        assert_eq!(get(addr, "/api/status").0, 200);
    }
    echoes(addr, "/ws/echo");
    assert_eq!(get(addr, "/files/hello.txt"), (200, "hello".to_string()));
    assert!(srv.alive());
}

// ---------------------------------------------------------------------------
// A gateway downstream that stalls forever mid-response

/// `timeouts.inactivity` of the gateway: how long a stalled exchange lasts.
const INACTIVITY: Duration = Duration::from_secs(3);

/// A real wisp downstream: `/api/hello` answers `hello`, `/ws/echo` echoes.
fn good_downstream() -> TestServer {
    struct Echo;
    impl Handler for Echo {
        type State = ();
        fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
            ws.send(msg);
        }
    }
    TestServer::start(
        "routes: [ { match: '/api/', handler: 'action' }, { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.action("/api/hello", |_| Response::text("hello"));
            srv.websocket("/ws/echo", Echo);
        },
    )
}

/// A gateway: `/stall/` proxies to `stalled`, `/good/` to `good`; both
/// `/{catchAll}`; `/api/status` is served by the gateway itself.
fn stall_gateway(stalled: SocketAddr, good: SocketAddr) -> TestServer {
    let secs = INACTIVITY.as_secs();
    TestServer::start(
        &format!(
            "timeouts: {{ connect: '5 secs', inactivity: '{secs} secs' }},
             routes: [
               {{ match: '/api/', handler: 'action' }},
               {{ match: '/stall/', handler: 'proxy', proxy: {{ hosts: ['{stalled}'] }} }},
               {{ match: '/good/', handler: 'proxy', proxy: {{ hosts: ['{good}'] }} }},
             ]"
        ),
        |_| {},
        |srv| {
            srv.action("/api/status", |req| {
                Response::json(&json!({ "stats": req.stats() }))
            });
        },
    )
}

/// Connections the gateway has open to `host` now.
fn open_to(gw: &TestServer, host: SocketAddr) -> u64 {
    let (code, body) = get(gw.addr, "/api/status");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    find_host(&v, &host.to_string()).unwrap_or_else(|| panic!("{host} in {v}"))["open"]
        .as_u64()
        .expect("open")
}

/// Everyone else is served while an exchange through `gw` is stalled.
fn others_are_served(gw: &TestServer, stalled: SocketAddr) {
    assert_eq!(get(gw.addr, "/api/status").0, 200, "direct");
    assert_eq!(
        get(gw.addr, "/good/api/hello"),
        (200, "hello".to_string()),
        "through the gateway"
    );
    echoes(gw.addr, "/good/ws/echo");
    assert_eq!(open_to(gw, stalled), 1, "the stalled exchange is still on");
}

/// A fake downstream whose connections run `stall` (which sends what it
/// sends and returns), then read until the gateway ends the connection.
/// Reports what it read after `stall` on the returned channel.
fn stalling(
    stall: impl Fn(&mut Peer) + Send + Sync + 'static,
) -> (Fake, Receiver<Vec<ClientFrame>>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let fake = Fake::start(move |s| {
        let mut peer = Peer::new(s);
        stall(&mut peer);
        let mut frames = Vec::new();
        while let Some(f) = peer.read_frame() {
            frames.push(f);
        }
        let _ = tx.lock().unwrap().send(frames);
    });
    (fake, rx)
}

#[test]
fn a_downstream_that_stalls_mid_body_costs_only_its_client_closed_after_inactivity() {
    let half = vec![b'a'; 50];
    let sent = half.clone();
    let (stalled, ended) = stalling(move |peer| {
        peer.read_request().expect("a request");
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        peer.send(&sent);
    });
    let good = good_downstream();
    let gw = stall_gateway(stalled.addr, good.addr);
    let mut c = gw.client();
    let asked = Instant::now();
    c.send(b"GET /stall/x HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_head().resp;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(c.read_bytes(50), half);
    others_are_served(&gw, stalled.addr);
    // The client's connection ends with the body cut short: nothing more came.
    assert_eq!(c.read_to_close(), b"", "no byte after the half body");
    assert!(
        asked.elapsed() >= INACTIVITY,
        "not before timeouts.inactivity"
    );
    // The downstream's connection is ended too (nothing was sent on it).
    let frames = ended
        .recv_timeout(IO_TIMEOUT)
        .expect("the downstream was let go");
    assert!(frames.is_empty(), "{frames:?}");
    wait_for("the leg is gone", IO_TIMEOUT, || {
        open_to(&gw, stalled.addr) == 0
    });
    // The gateway still serves.
    assert_eq!(get(gw.addr, "/good/api/hello").0, 200);
}

#[test]
fn a_websocket_downstream_that_stalls_mid_frame_gets_1001_idle_and_so_does_its_client() {
    let (stalled, ended) = stalling(|peer| {
        peer.accept_upgrade().expect("an upgrade");
        let frame = server_frame(0x81, &[b'x'; 100], None);
        peer.send(&frame[..50]);
    });
    let good = good_downstream();
    let gw = stall_gateway(stalled.addr, good.addr);
    let opened = Instant::now();
    let mut ws = Ws::open(gw.addr, "/stall/x");
    others_are_served(&gw, stalled.addr);
    // Neither the client nor the downstream sent anything for
    // `timeouts.inactivity`: both are closed as idle.
    let (code, reason) = ws.read_close();
    assert_eq!((code, reason.as_str()), (1001, "idle"));
    assert!(
        opened.elapsed() >= INACTIVITY,
        "not before timeouts.inactivity"
    );
    ws.expect_eof();
    let frames = ended
        .recv_timeout(IO_TIMEOUT)
        .expect("the downstream was let go");
    let closes: Vec<_> = frames.iter().filter(|f| f.opcode == CLOSE).collect();
    assert_eq!(
        closes.len(),
        1,
        "one close frame for the downstream: {frames:?}"
    );
    assert!(closes[0].masked, "masked, as a client's");
    assert_eq!(
        u16::from_be_bytes([closes[0].payload[0], closes[0].payload[1]]),
        1001,
        "{frames:?}"
    );
    wait_for("the leg is gone", IO_TIMEOUT, || {
        open_to(&gw, stalled.addr) == 0
    });
    echoes(gw.addr, "/good/ws/echo");
}
