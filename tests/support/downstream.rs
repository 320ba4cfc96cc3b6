//! What the gateway tests put behind a gateway besides a real wisp: fake
//! downstreams on raw TCP that do exactly one thing (answer a handshake and
//! then misbehave, flood, stall or vanish), the server side of the WebSocket
//! handshake and frames, a response reader that also takes chunked bodies (a
//! proxied response may come either way), the gateway's entry in
//! `/api/status`, and the test process's resident memory.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

use super::{find, read_retrying, Client, Resp, IO_TIMEOUT};

/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// An address nothing listens on: bound by the OS, then let go.
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A server frame (`first` is the whole first byte), masked with `mask` when
/// one is given (which a server must never do).
pub fn server_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    let len = payload.len();
    match len {
        0..=125 => out.push(bit | len as u8),
        126..=0xFFFF => {
            out.push(bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame the gateway sent a downstream, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    pub opcode: u8,
    /// Whether it came masked, as a client's frames must.
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// One accepted connection of a fake downstream, seen from the downstream.
pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    pub fn new(stream: TcpStream) -> Peer {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes; false at the end of the stream.
    fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match read_retrying(&self.stream, &mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("downstream read failed: {e}"),
        }
    }

    /// Reads the request head (the gateway's upgrade or HTTP request); its
    /// header fields, names lower-cased. `None` if the gateway hung up first.
    pub fn read_request(&mut self) -> Option<(String, Vec<(String, String)>)> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            if !self.read_more() {
                return None;
            }
        };
        let text = String::from_utf8(self.buf.drain(..end).collect()).expect("a UTF-8 head");
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some((request_line, headers))
    }

    /// Reads an upgrade request and answers 101 with the right accept value.
    /// Returns the request's header fields; `None` if the gateway hung up first.
    pub fn accept_upgrade(&mut self) -> Option<Vec<(String, String)>> {
        let (_, headers) = self.read_request()?;
        let key = headers
            .iter()
            .find(|(n, _)| n == "sec-websocket-key")
            .map(|(_, v)| v.clone())
            .expect("the gateway sent a Sec-WebSocket-Key");
        self.send(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(&key)
            )
            .as_bytes(),
        );
        Some(headers)
    }

    /// Writes all of `bytes`; false if the gateway has gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("downstream write failed: {e}"));
    }

    /// Reads one frame from the gateway; `None` at the end of the stream.
    pub fn read_frame(&mut self) -> Option<ClientFrame> {
        let need = |peer: &mut Peer, n: usize| {
            while peer.buf.len() < n {
                if !peer.read_more() {
                    return false;
                }
            }
            true
        };
        if !need(self, 2) {
            return None;
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let (len, mut at) = match b1 & 0x7F {
            126 => {
                if !need(self, 4) {
                    return None;
                }
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                if !need(self, 10) {
                    return None;
                }
                let n = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                (usize::try_from(n).unwrap(), 10)
            }
            short => (usize::from(short), 2),
        };
        let masked = b1 & 0x80 != 0;
        let key = if masked {
            if !need(self, at + 4) {
                return None;
            }
            let key: [u8; 4] = self.buf[at..at + 4].try_into().unwrap();
            at += 4;
            key
        } else {
            [0; 4]
        };
        if !need(self, at + len) {
            return None;
        }
        let payload = self.buf[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        self.buf.drain(..at + len);
        Some(ClientFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0F,
            masked,
            payload,
        })
    }
}

impl Peer {
    /// Reads frames until the gateway's close frame, answers it with the same
    /// payload and ends the connection (or returns at the end of the stream).
    pub fn answer_close(&mut self) {
        while let Some(f) = self.read_frame() {
            if f.opcode == 0x8 {
                self.try_send(&server_frame(0x88, &f.payload, None));
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// A fake downstream: a listener on 127.0.0.1:0 whose every connection runs
/// `serve` on a thread of its own. Stopped on drop (connections already
/// handed to `serve` run on until it returns).
pub struct Fake {
    pub addr: SocketAddr,
    /// Every peer address accepted, in order.
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    /// The local addresses of our own probes (see [`Fake::connections_so_far`]).
    probes: Mutex<Vec<SocketAddr>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(peer) = stream.peer_addr() {
                        accepted.lock().unwrap().push(peer);
                    }
                    let serve = serve.clone();
                    std::thread::spawn(move || serve(stream));
                }
            })
        };
        Fake {
            addr,
            accepted,
            probes: Mutex::new(Vec::new()),
            stop,
            thread: Some(thread),
        }
    }

    /// How many connections the gateway had made to this downstream before
    /// now. A probe connection of ours is accepted after every connection
    /// made before it (the listen queue is in order), so once it is, the
    /// count is exact: no waiting for a clock. Probes are not counted.
    pub fn connections_so_far(&self) -> usize {
        let probe = TcpStream::connect(self.addr).unwrap();
        let mine = probe.local_addr().unwrap();
        self.probes.lock().unwrap().push(mine);
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            {
                let seen = self.accepted.lock().unwrap();
                if let Some(i) = seen.iter().position(|a| *a == mine) {
                    let probes = self.probes.lock().unwrap();
                    return seen[..i].iter().filter(|a| !probes.contains(a)).count();
                }
            }
            assert!(Instant::now() < deadline, "the probe was never accepted");
            std::thread::yield_now();
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `ready` until it says yes, or panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The test process's resident memory in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The object of a status JSON tree that describes `host` ("127.0.0.1:5001"):
/// the value under a key equal to it, or an object with a field equal to it.
pub fn find_host<'a>(tree: &'a serde_json::Value, host: &str) -> Option<&'a serde_json::Value> {
    use serde_json::Value;
    match tree {
        Value::Object(map) => {
            if let Some(v @ Value::Object(_)) = map.get(host) {
                return Some(v);
            }
            if map.values().any(|v| v.as_str() == Some(host)) {
                return Some(tree);
            }
            map.values().find_map(|v| find_host(v, host))
        }
        Value::Array(items) => items.iter().find_map(|v| find_host(v, host)),
        _ => None,
    }
}

/// Whether a host's `breaker` field says it is open (paused): `"open"`,
/// `true`, or an object whose `state` is `"open"` or whose `open` is true.
pub fn breaker_is_open(breaker: &serde_json::Value) -> bool {
    breaker == "open"
        || breaker == &serde_json::Value::Bool(true)
        || breaker.get("state").is_some_and(|s| s == "open")
        || breaker.get("open").is_some_and(|s| s == true)
}

impl<S: Read + Write> Client<S> {
    /// Reads one response whose body may be chunked, have a length, or run to
    /// the close (a proxied response may come any of these ways); the body is
    /// returned decoded. `head_only` for the answer to a HEAD.
    pub fn proxied_response(&mut self, head_only: bool) -> Resp {
        let mut resp = self.read_head().resp;
        let status = resp.status;
        if head_only || status == 304 || status == 204 || (100..200).contains(&status) {
            return resp;
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        resp.body = if chunked {
            self.read_chunked()
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().expect("numeric Content-Length");
            self.read_bytes(n)
        } else {
            self.read_to_close()
        };
        resp
    }

    /// Reads a chunked body (and its trailer section), decoded.
    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line();
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                while !self.read_line().is_empty() {}
                return body;
            }
            body.extend(self.read_bytes(size));
            let end = self.read_line();
            assert!(end.is_empty(), "chunk not followed by CRLF: {end:?}");
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.read_more(), "connection closed inside a chunked body");
        }
    }
}
