//! A raw WebSocket client for tests: the opening handshake as bytes, masked
//! client frames (a fresh key per frame), and server frames checked to be
//! unmasked with no RSV bits.
//!
//! It waits for the server's bytes, never for a clock; [`super::IO_TIMEOUT`] is only
//! a safety net so a broken server fails a test instead of hanging it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Client, Resp};

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The key of RFC 6455 §1.3.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The accept value for [`RFC_KEY`].
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A masking key that differs from frame to frame (and is never all zeros, so
/// an unmasking bug cannot hide).
pub fn next_mask() -> [u8; 4] {
    static SEED: AtomicU32 = AtomicU32::new(0x9E37_79B9);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = SEED.fetch_add(0x6D2B_79F5, Ordering::Relaxed) ^ nanos;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    if x == 0 {
        x = 0xA15B_07E3;
    }
    x.to_be_bytes()
}

/// A client frame: `first` is the whole first header byte (FIN, RSV, opcode);
/// the length is in its shortest form and the payload masked with a fresh key.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = next_mask();
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A close frame payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

/// An upgrade request for `target` with the RFC's key, plus `extra` header
/// lines (each ending in CRLF).
pub fn upgrade_request(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// One server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The code and reason of a frame that must be a close frame.
    pub fn code_and_reason(&self) -> (u16, String) {
        assert_eq!(
            (self.fin, self.opcode),
            (true, CLOSE),
            "expected a close frame, got {self:?} ({:?})",
            self.text()
        );
        assert!(self.payload.len() >= 2, "close frame without a code");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        let reason = String::from_utf8(self.payload[2..].to_vec()).expect("close reason is UTF-8");
        (code, reason)
    }
}

/// A raw WebSocket client connection: the HTTP [`Client`] it was opened on
/// (its buffer keeps frames that arrived with the 101), plus frames. Over a
/// plain `TcpStream` unless said otherwise ([`Ws::handshake_over`]).
pub struct Ws<S = TcpStream> {
    http: Client<S>,
    /// The header length of the last frame read: 2, 4 or 10.
    pub last_header_len: usize,
}

/// The connection's bytes, for what is not a frame: `stream`, `read_bytes`,
/// `read_to_close`, `shutdown_write`, `await_unread`.
impl<S> Deref for Ws<S> {
    type Target = Client<S>;

    fn deref(&self) -> &Client<S> {
        &self.http
    }
}

impl<S> DerefMut for Ws<S> {
    fn deref_mut(&mut self) -> &mut Client<S> {
        &mut self.http
    }
}

impl Ws {
    /// Opens a WebSocket to `target` (path and query); panics unless the server answers 101.
    pub fn open(addr: SocketAddr, target: &str) -> Ws {
        Ws::open_with(addr, target, "").1
    }

    /// Opens a WebSocket with `extra` request header lines; returns the 101 response too.
    pub fn open_with(addr: SocketAddr, target: &str, extra: &str) -> (Resp, Ws) {
        Ws::open_over(Client::connect(addr), target, extra)
    }

    /// Sends `bytes` in one write and reads the response head (no body);
    /// bytes after the head are kept for [`Ws::read_frame`].
    pub fn handshake(addr: SocketAddr, bytes: &[u8]) -> (Resp, Ws) {
        Ws::handshake_over(Client::connect(addr), bytes)
    }
}

impl<S: Read + Write> Ws<S> {
    /// [`Ws::open_with`] on a client already connected (over TLS, say).
    pub fn open_over(http: Client<S>, target: &str, extra: &str) -> (Resp, Ws<S>) {
        let (resp, ws) = Ws::handshake_over(http, upgrade_request(target, extra).as_bytes());
        assert_eq!(resp.status, 101, "upgrade refused: {resp:?}");
        assert_eq!(resp.header("sec-websocket-accept"), Some(RFC_ACCEPT));
        (resp, ws)
    }

    /// [`Ws::handshake`] on a client already connected.
    pub fn handshake_over(mut http: Client<S>, bytes: &[u8]) -> (Resp, Ws<S>) {
        http.send(bytes);
        let head = http.read_head();
        assert!(
            head.status_line.starts_with("HTTP/1.1 "),
            "not an HTTP/1.1 response: {:?}",
            head.status_line
        );
        let ws = Ws {
            http,
            last_header_len: 0,
        };
        (head.resp, ws)
    }

    /// Sends bytes as they are (frames made by hand, or not frames at all).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.http.send(bytes);
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let first = if fin { 0x80 | opcode } else { opcode };
        self.send_raw(&masked_frame(first, payload));
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, TEXT, text.as_bytes());
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(true, BINARY, data);
    }

    pub fn send_json(&mut self, value: &serde_json::Value) {
        self.send_text(&value.to_string());
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        self.send_frame(true, CLOSE, &close_payload(code, reason.as_bytes()));
    }

    /// Reads one server frame. Server frames are never masked.
    pub fn read_frame(&mut self) -> Frame {
        let http = &mut self.http;
        http.need(2);
        let (b0, b1) = (http.buf[0], http.buf[1]);
        assert_eq!(b1 & 0x80, 0, "the server masked a frame");
        assert_eq!(b0 & 0x70, 0, "the server set RSV bits");
        let (len, header_len) = match b1 & 0x7F {
            126 => {
                http.need(4);
                (u64::from(u16::from_be_bytes([http.buf[2], http.buf[3]])), 4)
            }
            127 => {
                http.need(10);
                (u64::from_be_bytes(http.buf[2..10].try_into().unwrap()), 10)
            }
            short => (u64::from(short), 2),
        };
        let end = header_len + usize::try_from(len).unwrap();
        http.need(end);
        let payload = http.buf[header_len..end].to_vec();
        http.buf.drain(..end);
        self.last_header_len = header_len;
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0F,
            payload,
        }
    }

    /// Reads one frame that must have this FIN bit, opcode and payload. A
    /// payload that differs is not printed whole: it may be large.
    pub fn expect_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = self.read_frame();
        assert_eq!(
            (f.fin, f.opcode, f.payload.len()),
            (fin, opcode, payload.len()),
            "got {:?}",
            String::from_utf8_lossy(&f.payload[..f.payload.len().min(80)])
        );
        assert!(f.payload == payload, "payload differs");
    }

    /// Reads one frame that must be a whole message of this kind and content.
    pub fn expect_message(&mut self, opcode: u8, payload: &[u8]) {
        self.expect_frame(true, opcode, payload);
    }

    /// Reads one frame that must be a whole text message; returns its text.
    pub fn read_text(&mut self) -> String {
        let f = self.read_frame();
        assert_eq!(
            (f.fin, f.opcode),
            (true, TEXT),
            "expected a whole text message, got {f:?} ({:?})",
            f.text()
        );
        String::from_utf8(f.payload).expect("text is UTF-8")
    }

    /// Reads one frame that must be the text message `text`.
    pub fn expect_text(&mut self, text: &str) {
        assert_eq!(self.read_text(), text);
    }

    /// Reads a text message holding JSON.
    pub fn read_json(&mut self) -> serde_json::Value {
        let text = self.read_text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    }

    /// Sends `request` as a JSON text message and reads the JSON answer.
    pub fn call(&mut self, request: serde_json::Value) -> serde_json::Value {
        self.send_json(&request);
        self.read_json()
    }

    /// Reads a close frame; returns its code and reason.
    pub fn read_close(&mut self) -> (u16, String) {
        self.read_frame().code_and_reason()
    }

    /// Reads a close frame with `code`, then checks the server closed the TCP
    /// connection with nothing after it.
    pub fn expect_close(&mut self, code: u16) {
        let (got, reason) = self.read_close();
        assert_eq!(got, code, "close reason {reason:?}");
        self.expect_eof();
    }

    /// The closing handshake from our side: send a close with `code`, read the
    /// server's answer (the same code), then the end of the TCP connection.
    pub fn close(self, code: u16) {
        self.close_with(code, "");
    }

    /// [`Ws::close`] with a reason in our close frame.
    pub fn close_with(mut self, code: u16, reason: &str) {
        self.send_close(code, reason);
        self.expect_close(code);
    }

    /// The server has closed the TCP connection (EOF or reset), with nothing more to say.
    pub fn expect_eof(&mut self) {
        assert!(
            self.http.is_closed(),
            "expected the connection to close; got {:?}",
            String::from_utf8_lossy(self.http.buffered())
        );
    }
}
