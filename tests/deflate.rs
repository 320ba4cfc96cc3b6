//! permessage-deflate (RFC 7692) over real sockets: what the server answers to
//! an offer, compressed messages both ways, and hostile compressed input —
//! decompression bombs, compressed control frames, RSV1 where it does not
//! belong, deflate data that does not inflate, messages at the size limit,
//! messages cut at awkward points.
//!
//! The client is raw bytes (`support::ws`) with `flate2` for the deflate
//! streams: it compresses what it sends with a raw deflate stream and a sync
//! flush whose `00 00 ff ff` tail it removes (RFC 7692 §7.2.1), and inflates
//! what the server sends with that tail put back. A server message is read
//! with a fresh inflater whenever the answer said
//! `server_no_context_takeover`, so a server that kept its context anyway
//! fails the read.
//!
//! Every hostile case runs on its own connection while three bystanders
//! opened before it — a compressed WebSocket, a plain one and an HTTP
//! keep-alive connection — must still be served after it. Tests wait for the
//! server's bytes, never for a clock; `IO_TIMEOUT` is only a safety net.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde_json::json;
use support::binary::{start_command, wisp, Running};
use support::ws::{
    close_payload, masked_frame, upgrade_request, Ws, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT,
};
use support::{show, Client, Resp, TempDir, TestServer};
use wisp::{Fragment, Handler, Message, WebSocket};

/// The first-byte bit that marks a compressed message (on its first frame).
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
/// The end of a sync flush, removed by the sender and put back by the reader.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The header line of the plainest offer.
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
/// The default `threshold`: messages this long or longer are compressed.
const THRESHOLD: usize = 256;
const KIB: usize = 1024;

// ---------------------------------------------------------------------------
// Handlers and servers

/// Echoes every message with its opcode.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

/// What a streaming handler saw of the message in progress.
#[derive(Default)]
struct Seen {
    pieces: usize,
    bytes: usize,
    hash: u64,
    text: bool,
    firsts: usize,
    data: Vec<u8>,
}

/// A streaming handler: after each message's last piece it sends a JSON
/// summary (pieces, bytes, FNV-1a hash, kind, how many pieces were marked
/// first), then — for messages up to 64 KiB — the bytes themselves.
struct Streamer;

impl Handler for Streamer {
    type State = Seen;

    fn streaming(&self) -> bool {
        true
    }

    fn on_partial(&mut self, ws: &mut WebSocket<'_, Seen>, fragment: Fragment<'_>) {
        let seen = ws.state_mut();
        if fragment.first {
            seen.hash = FNV_OFFSET;
        }
        seen.pieces += 1;
        seen.bytes += fragment.data.len();
        seen.hash = fnv(seen.hash, fragment.data);
        seen.text = fragment.text;
        seen.firsts += usize::from(fragment.first);
        if seen.data.len() + fragment.data.len() <= 64 * KIB {
            seen.data.extend_from_slice(fragment.data);
        }
        if fragment.last {
            let seen = std::mem::take(ws.state_mut());
            ws.send_json(&json!({
                "pieces": seen.pieces,
                "bytes": seen.bytes,
                "hash": seen.hash.to_string(),
                "text": seen.text,
                "firsts": seen.firsts,
            }));
            if seen.bytes <= 64 * KIB {
                ws.send_binary(&seen.data);
            }
        }
    }
}

/// Relays every text message to others, by the way its first word names:
/// `publish` to the room every connection joins on open, `broadcast` to
/// every WebSocket, `route` to every WebSocket of this handler; the sender
/// gets its copy too.
struct Fanout;

impl Handler for Fanout {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        ws.join("room").expect("join");
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            return;
        };
        match text.split(' ').next() {
            Some("publish") => {
                ws.publish("room", msg, None);
            }
            Some("broadcast") => ws.broadcast(msg, None),
            Some("route") => ws.broadcast_route(msg, None),
            _ => {
                ws.send_text("unknown");
            }
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A server with `web` settings (the inside of `web: { … }`, without routes):
/// [`Echo`] on `/ws/echo`, [`Streamer`] on `/ws/stream`, [`Fanout`] on
/// `/ws/fanout`, `/a.txt` elsewhere.
fn server(web: &str) -> TestServer {
    let routes = "routes: [ { match: '/ws/', handler: 'action' }, { match: '' } ]";
    let body = if web.is_empty() {
        routes.to_string()
    } else {
        format!("{web}, {routes}")
    };
    TestServer::start(
        &body,
        |d| {
            d.write("a.txt", "A");
        },
        |srv| {
            srv.websocket("/ws/echo", Echo);
            srv.websocket("/ws/stream", Streamer);
            srv.websocket("/ws/fanout", Fanout);
        },
    )
}

/// A server with compression on in its default mode and `limits`.
fn deflate_server(limits: &str) -> TestServer {
    let web = "webSockets: { compression: true }";
    if limits.is_empty() {
        server(web)
    } else {
        server(&format!("{web}, limits: {{ {limits} }}"))
    }
}

// ---------------------------------------------------------------------------
// Deflate streams

/// Compresses `data` as one message with `c`: a sync flush, its tail removed.
fn compress_with(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let start = c.total_in();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(64));
        }
        let used = (c.total_in() - start) as usize;
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        let used = (c.total_in() - start) as usize;
        // Flushed when every byte is in and the output did not fill up.
        if used == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL), "a sync flush ends with 00 00 ff ff");
    out.truncate(out.len() - TAIL.len());
    out
}

/// `data` as one message from a fresh compressor (level 6, a 32 KiB window).
fn deflate(data: &[u8]) -> Vec<u8> {
    compress_with(&mut Compress::new(Compression::new(6), false), data)
}

/// `data` compressed with a final block (BFINAL set, RFC 7692 §7.2.3.4): no
/// sync flush, so no tail to remove.
fn deflate_final(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(64));
        }
        let used = c.total_in() as usize;
        match c.compress_vec(&data[used..], &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return out,
            Ok(_) => {}
            Err(e) => panic!("deflate: {e}"),
        }
    }
}

/// Inflates one message's payload (its tail put back) with `d`; an error
/// for data that does not inflate.
fn inflate_with(d: &mut Decompress, payload: &[u8]) -> Result<Vec<u8>, String> {
    let input = [payload, &TAIL].concat();
    let start = d.total_in();
    let mut out = Vec::with_capacity(payload.len() * 4 + 64);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(1024));
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        let used = (in0 - start) as usize;
        let status = d
            .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .map_err(|e| format!("inflate: {e} after {} bytes", out.len()))?;
        let used = (d.total_in() - start) as usize;
        // A final block (BFINAL) ends the stream: the tail after it is not read.
        if status == Status::StreamEnd || (used == input.len() && out.len() < out.capacity()) {
            return Ok(out);
        }
        if d.total_in() == in0 && d.total_out() == out0 {
            if used == input.len() {
                return Ok(out);
            }
            return Err(format!("inflate stuck at {used} of {} bytes", input.len()));
        }
    }
}

/// Inflates one byte of output at a time, so every back-reference must fall
/// inside the inflater's own window (zlib checks a distance against the
/// window only when the bytes it points at are not in the current output).
fn inflate_strictly(d: &mut Decompress, payload: &[u8]) -> Result<Vec<u8>, String> {
    let input = [payload, &TAIL].concat();
    let start_in = d.total_in();
    let mut out = Vec::new();
    let mut one = [0u8; 1];
    loop {
        let used = (d.total_in() - start_in) as usize;
        let before = d.total_out();
        let status = d
            .decompress(&input[used..], &mut one, FlushDecompress::Sync)
            .map_err(|e| format!("inflate: {e} after {} bytes", out.len()))?;
        let produced = (d.total_out() - before) as usize;
        out.extend_from_slice(&one[..produced]);
        let used = (d.total_in() - start_in) as usize;
        if status == Status::StreamEnd || (used == input.len() && produced == 0) {
            return Ok(out);
        }
        if produced == 0 && status == Status::BufError {
            return Err(format!("inflate stuck at {used} of {} bytes", input.len()));
        }
    }
}

/// `n` bytes of text that compress well but not to nothing: words from a
/// small vocabulary picked by a xorshift generator.
fn words(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "deflate ",
        "window ",
        "frame ",
        "server ",
        "client ",
        "message ",
        "bits ",
        "tail ",
        "inflate ",
        "wisp ",
        "{\"k\": ",
        "42, ",
        "\"héllo\" ",
        "✓ ",
        "context ",
        "takeover ",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
    }
    // Cut on a character boundary: the result is text.
    let mut end = n;
    while std::str::from_utf8(&out[..end]).is_err() {
        end -= 1;
    }
    out.truncate(end);
    out.resize(n, b'.');
    out
}

/// `n` bytes that do not compress (xorshift output).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A deflate stream (tail removed) that inflates to `mib` MiB of zeros: the
/// compressed form of 1 MiB of zeros (about 1 KiB), repeated. Each copy is
/// whole blocks ending in a sync flush and refers only to itself, so copies
/// join into one valid stream.
fn zeros_bomb(mib: usize) -> Vec<u8> {
    let one = deflate(&vec![0u8; 1 << 20]);
    let mut out = Vec::with_capacity(one.len() * mib + 4);
    for i in 0..mib {
        out.extend_from_slice(&one);
        if i + 1 < mib {
            out.extend_from_slice(&TAIL);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The answer's Sec-WebSocket-Extensions

/// The parameters of an accepted permessage-deflate answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Agreed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
}

/// Reads the answer's extension: `None` when the server declined (no
/// `Sec-WebSocket-Extensions`); panics on an answer a client must fail
/// (RFC 7692 §5: another extension, a parameter twice, an unknown one, a
/// value out of range).
fn agreed(resp: &Resp) -> Option<Agreed> {
    let values: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v.as_str())
        .collect();
    let value = match values[..] {
        [] => return None,
        [v] => v,
        _ => panic!("more than one Sec-WebSocket-Extensions: {values:?}"),
    };
    assert!(!value.contains(','), "more than one extension in {value:?}");
    let mut parts = value.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("permessage-deflate"), "answer {value:?}");
    let mut a = Agreed::default();
    let mut names = Vec::new();
    for p in parts {
        let (name, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        assert!(!names.contains(&name), "{name} twice in {value:?}");
        names.push(name);
        let bits = || -> u8 {
            let v = v.unwrap_or_else(|| panic!("{name} without a value in {value:?}"));
            let b: u8 = v
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v} in {value:?}"));
            assert!(
                (8..=15).contains(&b),
                "{name}={b} out of range in {value:?}"
            );
            b
        };
        match name {
            "server_no_context_takeover" => {
                assert_eq!(v, None, "{value:?}");
                a.server_no_context_takeover = true;
            }
            "client_no_context_takeover" => {
                assert_eq!(v, None, "{value:?}");
                a.client_no_context_takeover = true;
            }
            "server_max_window_bits" => a.server_max_window_bits = Some(bits()),
            "client_max_window_bits" => a.client_max_window_bits = Some(bits()),
            other => panic!("unknown parameter {other:?} in {value:?}"),
        }
    }
    Some(a)
}

/// The upgrade answer to `offers` (whole header lines, each ending in CRLF).
fn answer(addr: SocketAddr, offers: &str) -> (Resp, Option<Agreed>) {
    let (resp, mut ws) = Ws::open_with(addr, "/ws/echo", offers);
    let a = agreed(&resp);
    ws.send_close(1000, "");
    let (code, _) = read_frame(&mut ws).close_code();
    assert_eq!(code, 1000);
    (resp, a)
}

// ---------------------------------------------------------------------------
// Frames and messages

/// One server frame, RSV bits included.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn close_code(&self) -> (u16, String) {
        assert_eq!(
            (self.fin, self.rsv, self.opcode),
            (true, 0, CLOSE),
            "expected a close frame, got {} bytes {:?} (rsv {:#x}, opcode {})",
            self.payload.len(),
            show(&self.payload),
            self.rsv,
            self.opcode
        );
        assert!(self.payload.len() >= 2, "close frame without a code");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        (
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }
}

/// Reads one server frame: never masked, never RSV2 or RSV3.
fn read_frame(ws: &mut Ws) -> Frame {
    let h = ws.read_bytes(2);
    assert_eq!(h[1] & 0x80, 0, "the server masked a frame");
    assert_eq!(h[0] & (RSV2 | RSV3), 0, "the server set RSV2 or RSV3");
    let len = match h[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes(ws.read_bytes(2).try_into().unwrap())),
        127 => u64::from_be_bytes(ws.read_bytes(8).try_into().unwrap()),
        n => u64::from(n),
    };
    let payload = ws.read_bytes(usize::try_from(len).unwrap());
    Frame {
        fin: h[0] & 0x80 != 0,
        rsv: h[0] & 0x70,
        opcode: h[0] & 0x0f,
        payload,
    }
}

/// Sends hostile bytes: the server may refuse before it has read them all,
/// so a failed write is not the test's concern (what it reads back is).
fn send_hostile(ws: &mut Ws, bytes: &[u8]) {
    let _ = ws.stream.write_all(bytes);
}

/// Reads frames until a close; asserts its code and that the TCP connection then ends.
fn expect_close(ws: &mut Ws, code: u16) {
    let f = read_frame(ws);
    let (got, reason) = f.close_code();
    assert_eq!(got, code, "close reason {reason:?}");
    ws.expect_eof();
}

/// A server message, put together from its frames and inflated.
#[derive(Debug)]
struct Msg {
    opcode: u8,
    compressed: bool,
    data: Vec<u8>,
}

/// A WebSocket client that speaks permessage-deflate as the answer allows.
struct Peer {
    ws: Ws,
    agreed: Option<Agreed>,
    /// Our compressor; kept from message to message when `keep_context`.
    deflater: Compress,
    keep_context: bool,
    /// Our inflater; reset before each message when the server promised
    /// `server_no_context_takeover`.
    inflater: Decompress,
    /// Inflate one byte at a time, so a window over the agreed one fails.
    strict: bool,
}

impl Peer {
    /// Opens `/ws/echo` (or `target`) with `offers` (header lines); the
    /// client keeps no context unless told to with [`Peer::keeping_context`].
    fn open(addr: SocketAddr, target: &str, offers: &str) -> Peer {
        let (resp, ws) = Ws::open_with(addr, target, offers);
        let agreed = agreed(&resp);
        let window = agreed
            .as_ref()
            .and_then(|a| a.server_max_window_bits)
            .unwrap_or(15);
        Peer {
            ws,
            agreed,
            deflater: Compress::new(Compression::new(6), false),
            keep_context: false,
            inflater: Decompress::new_with_window_bits(false, window.max(9)),
            strict: window < 15,
        }
    }

    /// A connection to `/ws/echo` that offered plain permessage-deflate and
    /// had it accepted.
    fn deflating(addr: SocketAddr) -> Peer {
        let p = Peer::open(addr, "/ws/echo", OFFER);
        assert!(p.agreed.is_some(), "the server declined permessage-deflate");
        p
    }

    fn keeping_context(mut self) -> Peer {
        self.keep_context = true;
        self
    }

    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if !self.keep_context {
            self.deflater.reset();
        }
        compress_with(&mut self.deflater, data)
    }

    /// Sends `data` as one compressed frame.
    fn send_compressed(&mut self, opcode: u8, data: &[u8]) {
        let payload = self.compress(data);
        self.ws
            .send_raw(&masked_frame(0x80 | RSV1 | opcode, &payload));
    }

    /// Reads one message (control frames are messages of their own).
    fn read_message(&mut self) -> Msg {
        let first = read_frame(&mut self.ws);
        if first.opcode >= 8 {
            assert_eq!(
                first.rsv, 0,
                "RSV1 on a control frame (opcode {})",
                first.opcode
            );
            return Msg {
                opcode: first.opcode,
                compressed: false,
                data: first.payload,
            };
        }
        assert!(
            first.opcode == TEXT || first.opcode == BINARY,
            "a message starts with opcode {}",
            first.opcode
        );
        let compressed = first.rsv == RSV1;
        assert!(
            !compressed || self.agreed.is_some(),
            "RSV1 on a connection that did not agree to permessage-deflate"
        );
        let mut wire = first.payload;
        let mut fin = first.fin;
        while !fin {
            let f = read_frame(&mut self.ws);
            assert!(f.opcode < 8, "a control frame inside a message: {f:?}");
            assert_eq!(f.opcode, CONTINUATION, "a new message inside a message");
            assert_eq!(f.rsv, 0, "RSV1 on a continuation frame");
            wire.extend_from_slice(&f.payload);
            fin = f.fin;
        }
        let data = if compressed {
            assert!(
                !wire.ends_with(&TAIL),
                "the server left the 00 00 ff ff tail on its message (RFC 7692 §7.2.1)"
            );
            if self
                .agreed
                .as_ref()
                .is_some_and(|a| a.server_no_context_takeover)
            {
                self.inflater.reset(false);
            }
            let got = if self.strict {
                inflate_strictly(&mut self.inflater, &wire)
            } else {
                inflate_with(&mut self.inflater, &wire)
            };
            got.unwrap_or_else(|e| {
                panic!(
                    "the server's compressed message does not inflate ({e}): {}",
                    show(&wire)
                )
            })
        } else {
            wire.clone()
        };
        Msg {
            opcode: first.opcode,
            compressed,
            data,
        }
    }

    /// Reads one message that must be `data` with `opcode`; returns whether it came compressed.
    fn expect_message(&mut self, opcode: u8, data: &[u8]) -> bool {
        let m = self.read_message();
        assert_eq!(
            (m.opcode, m.data.len()),
            (opcode, data.len()),
            "got {:?}",
            show(&m.data)
        );
        assert!(m.data == data, "the message differs: {:?}", show(&m.data));
        m.compressed
    }

    /// Sends `data` compressed and expects it back, compressed exactly when
    /// it is at least the threshold long.
    fn echo_compressed(&mut self, opcode: u8, data: &[u8]) {
        self.send_compressed(opcode, data);
        let compressed = self.expect_message(opcode, data);
        assert_eq!(
            compressed,
            data.len() >= THRESHOLD,
            "the echo of {} bytes came back compressed: {compressed}",
            data.len()
        );
    }

    fn read_json(&mut self) -> serde_json::Value {
        let m = self.read_message();
        assert_eq!(m.opcode, TEXT, "{:?}", show(&m.data));
        serde_json::from_slice(&m.data).unwrap_or_else(|e| panic!("{e}: {:?}", show(&m.data)))
    }

    /// Sends a ping and reads the pong: everything before it was read.
    fn sync(&mut self) {
        self.ws.send_frame(true, PING, b"sync");
        let m = self.read_message();
        assert_eq!((m.opcode, &m.data[..]), (PONG, &b"sync"[..]));
    }

    fn close(mut self) {
        self.ws.send_close(1000, "");
        expect_close(&mut self.ws, 1000);
    }
}

// ---------------------------------------------------------------------------
// Bystanders

/// Connections opened before an attack that must still be served after it.
struct Bystanders {
    deflate: Peer,
    plain: Ws,
    http: Client,
    n: usize,
}

impl Bystanders {
    fn open(s: &TestServer) -> Bystanders {
        let mut b = Bystanders {
            deflate: Peer::deflating(s.addr),
            plain: Ws::open(s.addr, "/ws/echo"),
            http: s.client(),
            n: 0,
        };
        b.check(s);
        b
    }

    /// Each bystander is served: a compressed echo (over the threshold, and
    /// under it), a plain echo, a GET on the keep-alive connection, and a
    /// fresh compressed connection.
    fn check(&mut self, s: &TestServer) {
        self.n += 1;
        let n = self.n as u64;
        self.deflate.echo_compressed(TEXT, &words(2 * KIB, n));
        self.deflate
            .echo_compressed(BINARY, format!("small {n}").as_bytes());
        let text = format!("plain bystander {n}");
        self.plain.send_text(&text);
        self.plain.expect_text(&text);
        self.http.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = self.http.response();
        assert_eq!((r.status, r.text().as_str()), (200, "A"), "bystander GET");
        let mut fresh = Peer::deflating(s.addr);
        fresh.echo_compressed(TEXT, &words(600, n + 1000));
        fresh.close();
    }
}

// ---------------------------------------------------------------------------
// The opening handshake

#[test]
fn the_default_mode_answers_no_context_takeover_both_ways() {
    let s = deflate_server("");
    let (_, a) = answer(s.addr, OFFER);
    let a = a.expect("permessage-deflate accepted");
    assert!(a.server_no_context_takeover, "{a:?}");
    assert!(a.client_no_context_takeover, "{a:?}");
    assert_eq!(a.server_max_window_bits, None, "not offered: {a:?}");
    assert_eq!(a.client_max_window_bits, None, "not offered: {a:?}");

    // The parameters a client may offer are all accepted.
    let (_, a) = answer(
        s.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
         server_no_context_takeover; client_no_context_takeover\r\n",
    );
    let a = a.expect("permessage-deflate accepted");
    assert!(
        a.server_no_context_takeover && a.client_no_context_takeover,
        "{a:?}"
    );
    // With windowBits 15 the server need not ask the client for a smaller window.
    assert!(matches!(a.client_max_window_bits, None | Some(15)), "{a:?}");
}

#[test]
fn a_server_max_window_bits_offer_is_answered_with_no_more_bits() {
    let s = deflate_server("");
    for bits in [15u8, 12, 10, 9] {
        let offer = format!(
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}\r\n"
        );
        let (_, a) = answer(s.addr, &offer);
        let a = a.unwrap_or_else(|| panic!("server_max_window_bits={bits} declined"));
        let got = a
            .server_max_window_bits
            .unwrap_or_else(|| panic!("no server_max_window_bits in the answer to {bits}: {a:?}"));
        assert!(got <= bits, "asked for at most {bits}, got {got}");
        assert!(
            a.server_no_context_takeover && a.client_no_context_takeover,
            "{a:?}"
        );
    }
}

#[test]
fn offers_the_server_cannot_accept_are_declined_and_the_next_one_is_taken() {
    let s = deflate_server("");
    for (what, offers) in [
        ("another extension", "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"),
        ("an unknown parameter", "Sec-WebSocket-Extensions: permessage-deflate; foo=1\r\n"),
        (
            "a parameter twice",
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n",
        ),
        (
            "server_max_window_bits=7",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n",
        ),
        (
            "server_max_window_bits=16",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n",
        ),
        (
            "server_max_window_bits without a value",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n",
        ),
        (
            "client_max_window_bits=abc",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=abc\r\n",
        ),
        (
            "a value on server_no_context_takeover",
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1\r\n",
        ),
    ] {
        println!("case: {what}");
        let (resp, a) = answer(s.addr, offers);
        assert_eq!(a, None, "{what}: accepted as {:?}", resp.header("sec-websocket-extensions"));
    }
    // A bad offer first, a good one after it: the good one is taken, with its own parameters.
    for offers in [
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits\r\n",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        "Sec-WebSocket-Extensions: foo, permessage-deflate; client_max_window_bits, permessage-deflate\r\n",
    ] {
        println!("case: {offers:?}");
        let (_, a) = answer(s.addr, offers);
        let a = a.unwrap_or_else(|| panic!("{offers:?}: declined"));
        assert_eq!(a.server_max_window_bits, None, "{offers:?}: {a:?}");
        let mut p = Peer::open(s.addr, "/ws/echo", offers);
        p.echo_compressed(TEXT, &words(KIB, 1));
    }
}

#[test]
fn without_compression_in_the_config_every_offer_is_declined() {
    for web in [
        "",
        "webSockets: { compression: false }",
        "webSockets: { compression: { enable: false } }",
    ] {
        println!("case: {web:?}");
        let s = server(web);
        let (_, a) = answer(s.addr, OFFER);
        assert_eq!(a, None, "{web:?}");
        // And a compressed frame there is a protocol error.
        let mut ws = Ws::open(s.addr, "/ws/echo");
        ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &deflate(b"hello")));
        expect_close(&mut ws, 1002);
    }
    // An object without `enable` means enabled.
    let s = server("webSockets: { compression: { threshold: 100 } }");
    assert!(
        answer(s.addr, OFFER).1.is_some(),
        "compression: {{ threshold: 100 }} declined"
    );
}

#[test]
fn the_whole_compression_object_is_accepted() {
    // Every key of webSockets.compression. (zlib's memLevel is not one: flate2
    // does not expose it; the README's Compression section says so.)
    let s = server(
        "webSockets: { compression: { enable: true, threshold: 256, level: 6, contextTakeover: false, \
         windowBits: 15, clientWindowBits: 15 } }",
    );
    let (_, a) = answer(s.addr, OFFER);
    let a = a.expect("permessage-deflate accepted");
    assert!(
        a.server_no_context_takeover && a.client_no_context_takeover,
        "{a:?}"
    );
    let mut p = Peer::deflating(s.addr);
    p.echo_compressed(TEXT, &words(5 * KIB, 1));
    p.close();
}

#[test]
fn compression_values_out_of_range_stop_the_start_with_the_key_named() {
    for (key, value) in [
        ("windowBits", "8"),
        ("windowBits", "16"),
        ("clientWindowBits", "7"),
        ("level", "10"),
        ("level", "-1"),
        ("contextTakeover", "'yes'"),
        ("threshold", "'lots'"),
        ("enable", "1"),
    ] {
        let text = format!("{{ web: {{ webSockets: {{ compression: {{ {key}: {value} }} }} }} }}");
        match wisp::Config::parse(&text, std::path::Path::new("/")) {
            Ok(_) => panic!("{key}: {value} was accepted"),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("compression.{key}")),
                    "{key}: {value}: the error does not name the key: {e}"
                );
            }
        }
    }
    assert!(wisp::Config::parse(
        "{ web: { webSockets: { compression: 'yes' } } }",
        std::path::Path::new("/")
    )
    .is_err());
}

#[test]
fn with_context_takeover_the_server_forces_neither_no_context_takeover() {
    let s = server("webSockets: { compression: { contextTakeover: true } }");
    let (_, a) = answer(s.addr, OFFER);
    let a = a.expect("permessage-deflate accepted");
    assert!(!a.server_no_context_takeover, "{a:?}");
    assert!(!a.client_no_context_takeover, "{a:?}");
    // Asked for, server_no_context_takeover is granted.
    let (_, a) = answer(
        s.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    );
    let a = a.expect("permessage-deflate accepted");
    assert!(a.server_no_context_takeover, "{a:?}");
    assert!(!a.client_no_context_takeover, "{a:?}");
}

#[test]
fn a_compressed_frame_in_the_same_write_as_the_upgrade_is_echoed() {
    let s = deflate_server("");
    let data = words(3 * KIB, 7);
    let request = upgrade_request("/ws/echo", OFFER);
    let frame = masked_frame(0x80 | RSV1 | TEXT, &deflate(&data));
    let (resp, ws) = Ws::handshake(s.addr, &[request.as_bytes(), &frame].concat());
    assert_eq!(resp.status, 101);
    let agreed = agreed(&resp);
    assert!(agreed.is_some(), "permessage-deflate declined");
    let mut p = Peer {
        ws,
        agreed,
        deflater: Compress::new(Compression::new(6), false),
        keep_context: false,
        inflater: Decompress::new(false),
        strict: false,
    };
    assert!(p.expect_message(TEXT, &data), "the echo was not compressed");
}

// ---------------------------------------------------------------------------
// Compressed messages, both ways

#[test]
fn compressed_messages_are_echoed_and_the_echo_is_compressed_from_the_threshold() {
    let s = deflate_server("");
    let mut p = Peer::deflating(s.addr);
    for n in [
        0,
        1,
        100,
        THRESHOLD - 1,
        THRESHOLD,
        THRESHOLD + 1,
        4 * KIB,
        200 * KIB,
    ] {
        println!("case: {n} bytes of text");
        p.echo_compressed(TEXT, &words(n, n as u64));
        println!("case: {n} bytes of binary");
        p.echo_compressed(BINARY, &words(n, n as u64 + 1));
    }
    // Uncompressed messages on the same connection are fine too; the echo
    // follows the threshold, not how the message came.
    let data = words(KIB, 99);
    p.ws.send_frame(true, TEXT, &data);
    assert!(
        p.expect_message(TEXT, &data),
        "a 1 KiB echo came back uncompressed"
    );
    p.ws.send_frame(true, BINARY, b"short");
    assert!(!p.expect_message(BINARY, b"short"));
    // Data that does not compress still comes back intact.
    let data = noise(64 * KIB, 5);
    p.send_compressed(BINARY, &data);
    p.expect_message(BINARY, &data);
    // The same message twice: with server_no_context_takeover each echo
    // inflates on its own (Peer resets its inflater).
    let data = words(8 * KIB, 3);
    p.echo_compressed(TEXT, &data);
    p.echo_compressed(TEXT, &data);
    p.close();
}

#[test]
fn with_threshold_0_every_message_is_sent_compressed_even_one_that_does_not_shrink() {
    // RFC 7692 lets a server send any message uncompressed, but the contract
    // is "compressed when at least the threshold", and the Autobahn runner
    // (kosoku 0.1.0, scripts/autobahn) errors on an uncompressed message on a
    // connection with permessage-deflate: examples/autobahn.rs sets
    // threshold 0 so that every message goes compressed.
    let s = server("webSockets: { compression: { threshold: 0 } }");
    let mut p = Peer::deflating(s.addr);
    for (what, data) in [
        ("empty", Vec::new()),
        ("one byte", b"x".to_vec()),
        ("16 bytes", b"{\"a\": [1, 2, 3]}".to_vec()),
        ("4 KiB of noise", noise(4 * KIB, 1)),
        ("64 KiB of noise", noise(64 * KIB, 2)),
    ] {
        println!("case: {what}");
        p.send_compressed(BINARY, &data);
        let m = p.read_message();
        assert_eq!((m.opcode, &m.data[..]), (BINARY, &data[..]), "{what}");
        assert!(
            m.compressed,
            "{what}: the echo came back uncompressed (RSV1 clear)"
        );
    }
    p.close();
}

#[test]
fn the_empty_message_and_a_final_block_are_accepted() {
    let s = deflate_server("");
    let mut p = Peer::deflating(s.addr);
    // RFC 7692 §7.2.3.6: an empty message compresses to the single byte 00.
    let empty = deflate(b"");
    assert_eq!(empty, [0x00]);
    p.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &empty));
    p.expect_message(TEXT, b"");
    // §7.2.3.4: a message may end with a block whose BFINAL bit is set (and no tail).
    for n in [10, 3 * KIB] {
        let data = words(n, 11);
        p.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &deflate_final(&data)));
        p.expect_message(TEXT, &data);
        // The next message starts a new stream.
        p.echo_compressed(TEXT, &words(KIB, 12));
    }
    p.close();
}

#[test]
fn control_frames_from_the_server_are_never_compressed() {
    let s = deflate_server("");
    let mut p = Peer::deflating(s.addr);
    let big = [b'p'; 125];
    p.ws.send_frame(true, PING, &big);
    let m = p.read_message();
    assert_eq!(
        (m.opcode, m.compressed, &m.data[..]),
        (PONG, false, &big[..])
    );
    // The close frame, with a long reason, is not compressed either (read_frame asserts RSV).
    p.ws.send_close(4000, &"r".repeat(120));
    let f = read_frame(&mut p.ws);
    assert_eq!(f.close_code().0, 4000);
}

#[test]
fn a_fragmented_compressed_message_is_echoed_whole() {
    let s = deflate_server("");
    let mut by = Bystanders::open(&s);
    let data = words(20 * KIB, 21);
    let z = deflate(&data);
    assert!(z.len() > 100, "{} compressed bytes", z.len());
    // RSV1 on the first frame only; cut points inside the deflate stream,
    // including an empty first frame and an empty continuation.
    let cuts: Vec<Vec<usize>> = vec![
        vec![1],
        vec![0, z.len() / 2],
        vec![3, 4, 5, z.len() - 1],
        vec![z.len() / 3, z.len() / 3, 2 * z.len() / 3],
        (1..z.len()).step_by(7).collect(),
        vec![z.len()],
    ];
    for (i, cut) in cuts.iter().enumerate() {
        println!("case: cut at {:?}", &cut[..cut.len().min(8)]);
        let mut p = Peer::deflating(s.addr);
        let mut bounds = vec![0];
        bounds.extend(cut);
        bounds.push(z.len());
        let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &z[w[0]..w[1]]).collect();
        let mut bytes = Vec::new();
        for (k, piece) in pieces.iter().enumerate() {
            let fin = if k + 1 == pieces.len() { 0x80 } else { 0 };
            let first = if k == 0 { RSV1 | TEXT } else { CONTINUATION };
            bytes.extend(masked_frame(fin | first, piece));
        }
        p.ws.send_raw(&bytes);
        assert!(p.expect_message(TEXT, &data), "the echo was not compressed");
        // A ping between fragments is answered, and the message still comes back whole.
        let (a, b) = z.split_at(z.len() / 2 + i);
        p.ws.send_raw(&masked_frame(RSV1 | BINARY, a));
        p.sync();
        p.ws.send_raw(&masked_frame(0x80 | CONTINUATION, b));
        p.expect_message(BINARY, &data);
        p.close();
    }
    by.check(&s);
}

#[test]
fn a_compressed_message_cut_into_many_writes_is_echoed_intact() {
    let s = deflate_server("");
    let mut by = Bystanders::open(&s);
    let data = words(40 * KIB, 31);
    let z = deflate(&data);
    // One frame with a 2-byte length (z is under 64 KiB), and a fragmented message.
    let frame = masked_frame(0x80 | RSV1 | TEXT, &z);
    assert_eq!(frame[1] & 0x7f, 126, "a 16-bit length");
    let half = z.len() / 2;
    let fragmented = [
        masked_frame(RSV1 | TEXT, &z[..half]),
        masked_frame(0x80 | CONTINUATION, &z[half..]),
    ]
    .concat();
    for (what, bytes) in [("one frame", &frame), ("two frames", &fragmented)] {
        for (how, cuts) in [
            ("inside the header", vec![1, 2, 3, 5, 7]),
            (
                "header, then the stream byte by byte at first",
                (1..40).collect(),
            ),
            (
                "inside the deflate stream",
                vec![8, 9, 100, 101, half, half + 3],
            ),
            ("every 1000 bytes", (1..bytes.len()).step_by(1000).collect()),
        ] {
            println!("case: {what}, cut {how}");
            let mut p = Peer::deflating(s.addr);
            p.ws.stream.set_nodelay(true).unwrap();
            let mut last = 0;
            for c in cuts.into_iter().filter(|&c| c < bytes.len()) {
                p.ws.stream.write_all(&bytes[last..c]).unwrap();
                last = c;
            }
            p.ws.stream.write_all(&bytes[last..]).unwrap();
            assert!(p.expect_message(TEXT, &data), "the echo was not compressed");
            p.close();
        }
    }
    by.check(&s);
}

#[test]
fn a_message_that_inflates_past_max_frame_but_within_max_message_is_delivered() {
    // limits.maxFrame bounds what is on the wire; limits.maxMessage what it inflates to.
    let s = deflate_server("maxFrame: '8K', maxMessage: '256K'");
    let mut p = Peer::deflating(s.addr);
    let data = words(2 * KIB, 41).repeat(100);
    let z = deflate(&data);
    assert!(z.len() < 8 * KIB, "{} compressed bytes", z.len());
    p.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &z));
    assert!(p.expect_message(TEXT, &data));
    p.close();
}

#[test]
fn a_streaming_handler_gets_the_inflated_pieces() {
    let s = deflate_server("");
    let mut p = Peer::open(s.addr, "/ws/stream", OFFER);
    assert!(p.agreed.is_some());
    let data = words(50 * KIB, 51);
    let z = deflate(&data);
    let (a, b) = z.split_at(z.len() / 3);
    p.ws.send_raw(&masked_frame(RSV1 | TEXT, a));
    p.ws.send_raw(&masked_frame(0x80 | CONTINUATION, b));
    let summary = p.read_json();
    assert_eq!(summary["bytes"], data.len(), "{summary}");
    assert_eq!(
        summary["hash"],
        fnv(FNV_OFFSET, &data).to_string(),
        "{summary}"
    );
    assert_eq!(summary["text"], true, "{summary}");
    assert_eq!(summary["firsts"], 1, "{summary}");
    p.expect_message(BINARY, &data);
    p.close();
}

#[test]
fn a_streaming_handler_is_not_bound_by_max_message_on_the_inflated_size() {
    // A streaming handler gets pieces in bounded memory, so limits.maxMessage
    // does not apply to it (README "Write a WebSocket handler"), inflated or not.
    let s = deflate_server("maxFrame: '64K', maxMessage: '64K'");
    let mut p = Peer::open(s.addr, "/ws/stream", OFFER);
    assert!(p.agreed.is_some());
    // 8 MiB of zeros, then a few bytes of text: the stream ends off any buffer boundary.
    let bomb = [&zeros_bomb(8)[..], &TAIL, &deflate(b"the end")].concat();
    let mut data = vec![0u8; 8 << 20];
    data.extend_from_slice(b"the end");
    assert!(bomb.len() < 64 * KIB, "{} bytes", bomb.len());
    p.ws.send_raw(&masked_frame(0x80 | RSV1 | BINARY, &bomb));
    let summary = p.read_json();
    assert_eq!(summary["bytes"], data.len(), "{summary}");
    assert_eq!(
        summary["hash"],
        fnv(FNV_OFFSET, &data).to_string(),
        "{summary}"
    );
    assert_eq!(summary["firsts"], 1, "{summary}");
    let pieces = summary["pieces"].as_u64().unwrap();
    println!(
        "8 MiB inflated from {} bytes came in {pieces} pieces",
        bomb.len()
    );
    p.close();
}

#[test]
fn every_length_around_a_power_of_two_inflates_whole_for_both_kinds_of_handler() {
    // An inflater writes into buffers of some size: a message that ends
    // exactly where a buffer fills up must still end.
    let s = deflate_server("maxFrame: '1MB', maxMessage: '1MB'");
    let mut stream = Peer::open(s.addr, "/ws/stream", OFFER);
    let mut echo = Peer::deflating(s.addr);
    for bits in 8..=19 {
        for n in [(1usize << bits) - 1, 1 << bits, (1 << bits) + 1] {
            // A read that times out below means the message never ended.
            println!("case: {n} bytes");
            let data = words(n, n as u64);
            let z = deflate(&data);
            echo.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &z));
            echo.expect_message(TEXT, &data);
            stream.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &z));
            let summary = stream.read_json();
            assert_eq!(summary["bytes"], n, "{n} bytes: {summary}");
            assert_eq!(
                summary["hash"],
                fnv(FNV_OFFSET, &data).to_string(),
                "{n} bytes: {summary}"
            );
            if n <= 64 * KIB {
                stream.expect_message(BINARY, &data);
            }
            // And in two frames, cut in the middle of the stream.
            let (a, b) = z.split_at(z.len() / 2);
            stream.ws.send_raw(
                &[
                    masked_frame(RSV1 | BINARY, a),
                    masked_frame(0x80 | CONTINUATION, b),
                ]
                .concat(),
            );
            let summary = stream.read_json();
            assert_eq!(summary["bytes"], n, "{n} bytes in two frames: {summary}");
            if n <= 64 * KIB {
                stream.expect_message(BINARY, &data);
            }
        }
    }
    stream.close();
    echo.close();
}

// ---------------------------------------------------------------------------
// Window bits and context takeover

#[test]
fn the_server_keeps_to_the_window_it_agreed_to() {
    // The inflater this relies on is strict: a 32 KiB-window stream with a
    // far back-reference does not inflate in a 1 KiB window, one byte at a time.
    let far = [noise(1500, 1), noise(3000, 2), noise(1500, 1)].concat();
    let z = deflate(&far);
    assert!(z.len() < far.len() - 1000, "the repeat was not found");
    assert!(inflate_strictly(&mut Decompress::new_with_window_bits(false, 10), &z).is_err());
    assert_eq!(
        inflate_strictly(&mut Decompress::new(false), &z).unwrap(),
        far
    );
    // Nor does text of 20 KiB compressed with a 32 KiB window.
    let text = words(20 * KIB, 61);
    let z = deflate(&text);
    assert!(inflate_strictly(&mut Decompress::new_with_window_bits(false, 10), &z).is_err());

    let s = deflate_server("");
    for bits in [10u8, 12] {
        let offer = format!(
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}\r\n"
        );
        let mut p = Peer::open(s.addr, "/ws/echo", &offer);
        assert!(p.strict, "the answer did not name server_max_window_bits");
        p.echo_compressed(TEXT, &text);
        // A repeat 4,500 bytes back, beyond either window (this echo may come
        // back uncompressed: without the repeat it is noise).
        p.send_compressed(BINARY, &far);
        p.expect_message(BINARY, &far);
        p.echo_compressed(TEXT, &text);
        p.close();
    }
    // windowBits in the config: the server keeps to it unasked.
    let s = server("webSockets: { compression: { windowBits: 10 } }");
    let mut p = Peer::deflating(s.addr);
    p.inflater = Decompress::new_with_window_bits(false, 10);
    p.strict = true;
    p.echo_compressed(TEXT, &text);
    p.send_compressed(BINARY, &far);
    p.expect_message(BINARY, &far);
    p.close();
}

#[test]
fn client_window_bits_in_the_config_is_asked_of_a_client_that_can_keep_to_it() {
    let s = server("webSockets: { compression: { clientWindowBits: 10 } }");
    let (_, a) = answer(
        s.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    let a = a.expect("permessage-deflate accepted");
    assert_eq!(a.client_max_window_bits, Some(10), "{a:?}");
}

#[test]
fn with_context_takeover_both_sides_may_keep_their_context() {
    let s = server("webSockets: { compression: { contextTakeover: true } }");
    let mut p = Peer::deflating(s.addr).keeping_context();
    assert!(!p.agreed.as_ref().unwrap().client_no_context_takeover);
    let data = words(4 * KIB, 71);
    // The second and third copies refer back into the first.
    let first = p.compress(&data);
    let second = p.compress(&data);
    assert!(
        second.len() * 4 < first.len(),
        "{} then {}",
        first.len(),
        second.len()
    );
    p.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &first));
    p.expect_message(TEXT, &data);
    p.ws.send_raw(&masked_frame(0x80 | RSV1 | TEXT, &second));
    p.expect_message(TEXT, &data);
    p.echo_compressed(TEXT, &data);
    p.echo_compressed(BINARY, &words(300, 72));
    p.close();

    // A client that asks for server_no_context_takeover can inflate each
    // message on its own (Peer resets its inflater for it).
    let mut p = Peer::open(
        s.addr,
        "/ws/echo",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    )
    .keeping_context();
    for _ in 0..3 {
        p.echo_compressed(TEXT, &data);
    }
    p.close();
}

/// Relays messages through [`Fanout`] among connections that agreed to
/// different things (`offers`, one connection each): every one must get each
/// message intact and inflatable with its own agreement (window, context),
/// never compressed without one, and — when `plain_offer_compressed` —
/// compressed over the threshold on a connection that made the plain offer.
fn fan_out_to_everyone(s: &TestServer, offers: &[&str], plain_offer_compressed: bool) {
    let mut peers: Vec<Peer> = offers
        .iter()
        .map(|offer| Peer::open(s.addr, "/ws/fanout", offer))
        .collect();
    let mut k = 0;
    for how in ["publish", "broadcast", "route"] {
        for (size, copies) in [(100, 1), (20 * KIB, 3), (300, 2)] {
            for copy in 0..copies {
                let text = [
                    format!("{how} ").as_bytes(),
                    &words(size, (size + k) as u64),
                ]
                .concat();
                let from = k % peers.len();
                k += 1;
                println!(
                    "case: {how} of {} bytes from {:?}, copy {copy}",
                    text.len(),
                    offers[from]
                );
                if peers[from].agreed.is_some() {
                    peers[from].send_compressed(TEXT, &text);
                } else {
                    peers[from].ws.send_frame(true, TEXT, &text);
                }
                for (p, offer) in peers.iter_mut().zip(offers) {
                    let m = p.read_message();
                    assert_eq!((m.opcode, m.data.len()), (TEXT, text.len()), "{offer:?}");
                    assert!(m.data == text, "{offer:?}: the message differs");
                    // Read_message fails RSV1 without an agreement; a plain
                    // offer (what browsers send) gets the message compressed
                    // over the threshold. Other agreements may get it as it
                    // is (RFC 7692 allows any message uncompressed).
                    if *offer == OFFER && plain_offer_compressed {
                        assert_eq!(
                            m.compressed,
                            text.len() >= THRESHOLD,
                            "{offer:?}: compressed"
                        );
                    } else if p.agreed.is_some() && text.len() >= THRESHOLD && !m.compressed {
                        println!("  {offer:?} got it uncompressed");
                    }
                }
            }
        }
    }
    for p in peers {
        p.close();
    }
}

#[test]
fn one_message_to_many_reaches_each_as_its_connection_agreed() {
    let offers = [
        "",
        OFFER,
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits\r\n",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
    ];
    println!("the default mode");
    fan_out_to_everyone(&deflate_server(""), &offers, true);
    // With context takeover each connection's compressor has a history of
    // its own, so a message for many may go to each uncompressed.
    println!("contextTakeover");
    let s = server("webSockets: { compression: { contextTakeover: true } }");
    fan_out_to_everyone(
        &s,
        &[
            offers[0],
            offers[1],
            offers[1],
            offers[2],
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=12\r\n",
        ],
        false,
    );
}

// ---------------------------------------------------------------------------
// Hostile compressed input

/// A frame sequence that refers back into a message that was never sent:
/// the second of two messages from one compressor, sent first.
fn dangling_reference() -> Vec<u8> {
    let data = words(2 * KIB, 81);
    let mut c = Compress::new(Compression::new(6), false);
    let _ = compress_with(&mut c, &data);
    let second = compress_with(&mut c, &data);
    assert!(
        inflate_with(&mut Decompress::new(false), &second).is_err(),
        "the second message inflates on its own"
    );
    second
}

/// The hostile inputs on a connection that agreed to permessage-deflate:
/// name, bytes after the handshake, the close code expected.
fn deflate_violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    let hello = deflate(b"hello");
    let text = deflate(&words(3 * KIB, 91));
    let (a, b) = text.split_at(text.len() / 2);
    let mut bad_utf8 = words(KIB, 92);
    bad_utf8[700] = 0xff;
    let mut cut_utf8 = "é".repeat(400).into_bytes();
    cut_utf8.pop();
    vec![
        (
            "RSV1 on an empty ping",
            masked_frame(0x80 | RSV1 | PING, b""),
            1002,
        ),
        (
            "RSV1 on a ping with a deflated payload",
            masked_frame(0x80 | RSV1 | PING, &hello),
            1002,
        ),
        (
            "RSV1 on a pong",
            masked_frame(0x80 | RSV1 | PONG, &hello),
            1002,
        ),
        (
            "RSV1 on a close",
            masked_frame(0x80 | RSV1 | CLOSE, &close_payload(1000, b"")),
            1002,
        ),
        (
            "RSV1 on a ping between compressed fragments",
            [
                masked_frame(RSV1 | TEXT, a),
                masked_frame(0x80 | RSV1 | PING, b""),
            ]
            .concat(),
            1002,
        ),
        (
            "RSV1 on the continuation of a compressed message",
            [
                masked_frame(RSV1 | TEXT, a),
                masked_frame(0x80 | RSV1 | CONTINUATION, b),
            ]
            .concat(),
            1002,
        ),
        (
            "RSV1 on the continuation of a plain message",
            [
                masked_frame(TEXT, b"plain "),
                masked_frame(0x80 | RSV1 | CONTINUATION, &hello),
            ]
            .concat(),
            1002,
        ),
        (
            "RSV2 on a compressed text",
            masked_frame(0x80 | RSV1 | RSV2 | TEXT, &hello),
            1002,
        ),
        (
            "RSV3 on a compressed binary",
            masked_frame(0x80 | RSV1 | RSV3 | BINARY, &hello),
            1002,
        ),
        (
            "RSV2 alone",
            masked_frame(0x80 | RSV2 | TEXT, b"hello"),
            1002,
        ),
        (
            "a new compressed message inside a compressed one",
            [
                masked_frame(RSV1 | TEXT, a),
                masked_frame(0x80 | RSV1 | TEXT, b),
            ]
            .concat(),
            1002,
        ),
        (
            "deflate block type 3 (reserved)",
            masked_frame(0x80 | RSV1 | BINARY, &[0x07, 0x00, 0x00]),
            1007,
        ),
        (
            "0xff bytes",
            masked_frame(0x80 | RSV1 | TEXT, &[0xff; 32]),
            1007,
        ),
        (
            "a stored block whose length check fails",
            masked_frame(
                0x80 | RSV1 | BINARY,
                &[0x00, 0x05, 0x00, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o'],
            ),
            1007,
        ),
        (
            "a back-reference to a message never sent",
            masked_frame(0x80 | RSV1 | TEXT, &dangling_reference()),
            1007,
        ),
        (
            // The first fragment ends on a block boundary, so the second starts a block of type 3.
            "bad deflate data in the last fragment",
            [
                masked_frame(RSV1 | BINARY, &[&text[..], &TAIL].concat()),
                masked_frame(0x80 | CONTINUATION, &[0xff; 16]),
            ]
            .concat(),
            1007,
        ),
        (
            "compressed text that inflates to invalid UTF-8",
            masked_frame(0x80 | RSV1 | TEXT, &deflate(&bad_utf8)),
            1007,
        ),
        (
            "compressed text that ends inside a character",
            masked_frame(0x80 | RSV1 | TEXT, &deflate(&cut_utf8)),
            1007,
        ),
        (
            "a fragmented compressed text with invalid UTF-8 across the cut",
            {
                let z = deflate(
                    &[&words(500, 93)[..], b"\xe2\x82", b"(", &words(500, 94)[..]].concat(),
                );
                let (x, y) = z.split_at(z.len() / 2);
                [
                    masked_frame(RSV1 | TEXT, x),
                    masked_frame(0x80 | CONTINUATION, y),
                ]
                .concat()
            },
            1007,
        ),
    ]
}

#[test]
fn hostile_compressed_frames_each_get_their_close_code_and_nobody_else_notices() {
    let s = deflate_server("");
    let mut by = Bystanders::open(&s);
    for (name, bytes, code) in deflate_violations() {
        println!("case: {name}: {}", show(&bytes));
        let mut p = Peer::deflating(s.addr);
        send_hostile(&mut p.ws, &bytes);
        expect_close(&mut p.ws, code);
        by.check(&s);
    }
    // A good compressed message first, then the violation: the echo, then the close.
    for (name, bytes, code) in deflate_violations() {
        println!("case: echo then {name}");
        let mut p = Peer::deflating(s.addr);
        let good = words(KIB, 95);
        let z = p.compress(&good);
        p.ws.send_raw(&[masked_frame(0x80 | RSV1 | TEXT, &z), bytes].concat());
        assert!(p.expect_message(TEXT, &good));
        expect_close(&mut p.ws, code);
    }
    by.check(&s);
    // In the same write as the upgrade.
    for (name, bytes, code) in deflate_violations().into_iter().step_by(3) {
        println!("case: upgrade and {name} in one write");
        let request = upgrade_request("/ws/echo", OFFER);
        let (resp, mut ws) = Ws::handshake(s.addr, &[request.as_bytes(), &bytes].concat());
        assert_eq!(resp.status, 101, "{name}");
        assert!(agreed(&resp).is_some(), "{name}: declined");
        expect_close(&mut ws, code);
    }
    by.check(&s);
}

#[test]
fn rsv1_without_an_agreement_is_a_protocol_error() {
    let s = deflate_server("");
    let mut by = Bystanders::open(&s);
    for (what, offers) in [
        ("no offer", ""),
        (
            "an offer the server declined",
            "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n",
        ),
        (
            "another extension only",
            "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
        ),
    ] {
        for (how, bytes) in [
            (
                "a compressed text",
                masked_frame(0x80 | RSV1 | TEXT, &deflate(b"hello")),
            ),
            (
                "RSV1 on plain text",
                masked_frame(0x80 | RSV1 | TEXT, b"hello"),
            ),
            (
                "RSV1 on a first fragment",
                [
                    masked_frame(RSV1 | BINARY, &deflate(b"hel")),
                    masked_frame(0x80 | CONTINUATION, b""),
                ]
                .concat(),
            ),
        ] {
            println!("case: {what}, {how}");
            let (resp, mut ws) = Ws::open_with(s.addr, "/ws/echo", offers);
            assert_eq!(agreed(&resp), None, "{what}: accepted");
            ws.send_raw(&bytes);
            expect_close(&mut ws, 1002);
            by.check(&s);
        }
    }
}

#[test]
fn a_bystander_mid_message_is_not_disturbed_by_other_connections() {
    // With no context takeover, one inflater may serve every connection
    // between messages; a connection in the middle of a compressed message
    // must keep its own stream whatever the others do meanwhile.
    let s = deflate_server("maxMessage: '64K'");
    let mut by = Bystanders::open(&s);
    let data = words(30 * KIB, 101);
    let z = deflate(&data);
    let (a, b) = z.split_at(z.len() / 2);
    let mut slow = Peer::deflating(s.addr);
    slow.ws.send_raw(&masked_frame(RSV1 | TEXT, a));
    slow.sync();
    // Others: a good message, a bomb, bad deflate data, a message cut off by a vanished peer.
    let mut other = Peer::deflating(s.addr);
    other.echo_compressed(TEXT, &words(20 * KIB, 102));
    other
        .ws
        .send_raw(&masked_frame(0x80 | RSV1 | BINARY, &zeros_bomb(2)));
    expect_close(&mut other.ws, 1009);
    let mut other = Peer::deflating(s.addr);
    other
        .ws
        .send_raw(&masked_frame(0x80 | RSV1 | BINARY, &[0xff; 64]));
    expect_close(&mut other.ws, 1007);
    let mut gone = Peer::deflating(s.addr);
    let z2 = deflate(&words(30 * KIB, 103));
    gone.ws
        .send_raw(&masked_frame(RSV1 | TEXT, &z2[..z2.len() / 2]));
    gone.sync();
    drop(gone);
    by.check(&s);
    slow.sync();
    slow.ws.send_raw(&masked_frame(0x80 | CONTINUATION, b));
    assert!(slow.expect_message(TEXT, &data));
    slow.echo_compressed(TEXT, &data);
    slow.close();
    by.check(&s);
}

// ---------------------------------------------------------------------------
// The size limit applies to what a message inflates to

#[test]
fn a_message_inflating_to_exactly_max_message_is_delivered_and_one_byte_more_is_1009() {
    let s = deflate_server("maxFrame: '64K', maxMessage: '64K'");
    let mut by = Bystanders::open(&s);
    let limit = 64 * KIB;
    for (opcode, data) in [(BINARY, words(limit, 111)), (TEXT, words(limit, 112))] {
        println!("case: {limit} bytes, opcode {opcode}, one frame");
        let mut p = Peer::deflating(s.addr);
        p.echo_compressed(opcode, &data);
        println!("case: {limit} bytes, opcode {opcode}, in 5 frames");
        let z = p.compress(&data);
        let step = z.len() / 5 + 1;
        let pieces: Vec<&[u8]> = z.chunks(step).collect();
        for (k, piece) in pieces.iter().enumerate() {
            let fin = if k + 1 == pieces.len() { 0x80 } else { 0 };
            let first = if k == 0 { RSV1 | opcode } else { CONTINUATION };
            p.ws.send_raw(&masked_frame(fin | first, piece));
        }
        assert!(p.expect_message(opcode, &data));
        p.close();
        by.check(&s);

        let over = words(limit + 1, 113);
        println!("case: {} bytes, opcode {opcode}, one frame", over.len());
        let mut p = Peer::deflating(s.addr);
        p.send_compressed(opcode, &over);
        expect_close(&mut p.ws, 1009);
        by.check(&s);
        println!(
            "case: {} bytes, opcode {opcode}, the last byte in its own frame",
            over.len()
        );
        let mut p = Peer::deflating(s.addr);
        let z = p.compress(&over);
        // Two fragments of the stream: the limit is crossed in the second.
        let inflated_by = |cut: usize| {
            let mut d = Decompress::new(false);
            let mut out = vec![0u8; limit + 16];
            d.decompress(&z[..cut], &mut out, FlushDecompress::Sync)
                .unwrap();
            d.total_out() as usize
        };
        // The longest prefix that inflates to at most limit - 1000 bytes.
        let (mut lo, mut hi) = (1, z.len());
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if inflated_by(mid) <= limit - 1000 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let cut = lo;
        assert!(inflated_by(cut) > limit / 2, "cut at {cut} of {}", z.len());
        p.ws.send_raw(&masked_frame(RSV1 | opcode, &z[..cut]));
        p.sync();
        p.ws.send_raw(&masked_frame(0x80 | CONTINUATION, &z[cut..]));
        expect_close(&mut p.ws, 1009);
        by.check(&s);
    }
}

#[test]
fn decompression_bombs_are_closed_with_1009() {
    let s = deflate_server("maxFrame: '256K', maxMessage: '64K'");
    let mut by = Bystanders::open(&s);
    let small = zeros_bomb(1);
    assert!(
        small.len() < 1100,
        "the 1 MiB bomb is {} bytes",
        small.len()
    );
    let big = zeros_bomb(200);
    assert!(
        big.len() < 256 * KIB,
        "the 200 MiB bomb is {} bytes",
        big.len()
    );
    for (what, bytes) in [
        (
            "a 1 KiB frame inflating to 1 MiB",
            masked_frame(0x80 | RSV1 | BINARY, &small),
        ),
        (
            "a text frame inflating to 1 MiB",
            masked_frame(0x80 | RSV1 | TEXT, &small),
        ),
        (
            "a frame inflating to 200 MiB",
            masked_frame(0x80 | RSV1 | BINARY, &big),
        ),
        ("1 MiB bombs in 64 fragments", {
            let mut v = masked_frame(RSV1 | BINARY, &small);
            for k in 1..64 {
                let fin = if k == 63 { 0x80 } else { 0 };
                v.extend(masked_frame(
                    fin | CONTINUATION,
                    &[&TAIL[..], &small].concat(),
                ));
            }
            v
        }),
    ] {
        println!("case: {what} ({} bytes)", bytes.len());
        let mut p = Peer::deflating(s.addr);
        send_hostile(&mut p.ws, &bytes);
        expect_close(&mut p.ws, 1009);
        by.check(&s);
    }
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The binary on a config with compression on and `limits`, in its own
/// process so its memory is its own.
fn binary_with(docs: &TempDir, limits: &str) -> Running {
    let config = docs.write(
        "web.json5",
        format!(
            "{{ web: {{ listen: ['http://127.0.0.1:0'], documents: '{}', log: 'error',
                limits: {{ {limits} }},
                webSockets: {{ compression: true }},
                routes: [ {{ match: '/api/', handler: 'action' }}, {{ match: '/ws/', handler: 'action' }}, {{ match: '' }} ] }} }}",
            docs.path.display()
        ),
    );
    let mut command = wisp();
    command.stderr(Stdio::null());
    start_command(command, &["--config", config.to_str().unwrap()])
}

#[test]
fn a_decompression_bomb_costs_the_server_no_more_than_the_limit() {
    let docs = TempDir::new("deflate-bomb");
    docs.write("index.html", "home");
    let w = binary_with(&docs, "maxFrame: '256K', maxMessage: '64K'");
    let pid = w.child.id();
    let bomb = zeros_bomb(200);
    // Warm up: messages near the limit both ways, and a refused bomb, so the
    // buffers and the inflater a bomb may use exist before the baseline.
    for k in 0..3 {
        let mut p = Peer::deflating(w.addr);
        p.echo_compressed(BINARY, &words(60 * KIB, k));
        p.ws.send_raw(&masked_frame(0x80 | RSV1 | BINARY, &zeros_bomb(1)));
        expect_close(&mut p.ws, 1009);
    }
    let base = peak_rss_kib(pid);
    // 20 bombs of 200 MiB one after another, then 10 at once.
    for _ in 0..20 {
        let mut p = Peer::deflating(w.addr);
        send_hostile(&mut p.ws, &masked_frame(0x80 | RSV1 | BINARY, &bomb));
        expect_close(&mut p.ws, 1009);
    }
    let mut many: Vec<Peer> = (0..10).map(|_| Peer::deflating(w.addr)).collect();
    for p in &mut many {
        send_hostile(&mut p.ws, &masked_frame(0x80 | RSV1 | BINARY, &bomb));
    }
    for p in &mut many {
        expect_close(&mut p.ws, 1009);
    }
    let mut p = Peer::deflating(w.addr);
    p.echo_compressed(TEXT, &words(60 * KIB, 9));
    p.close();
    let after = peak_rss_kib(pid);
    println!(
        "peak RSS {base} KiB before, {after} KiB after 30 bombs of {} bytes inflating to 200 MiB",
        bomb.len()
    );
    // Ten connections at once may each hold a frame (200 KiB) and a message
    // up to the limit (64 KiB) with an inflater: about 3 MiB. 8 MiB is well
    // above that and far below one bomb inflated.
    assert!(
        after <= base + 8 * 1024,
        "the server's peak RSS grew from {base} KiB to {after} KiB"
    );
}
