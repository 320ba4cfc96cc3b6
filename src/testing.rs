//! What the unit tests of several modules share: a client's masked frames,
//! readers for the server's responses and frames, a temporary documents
//! folder, a recording WebSocket handler, and an app with a route of each
//! kind. Test-only.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::app::App;
use crate::config::Config;
use crate::http::head::{header_storage, parse_head, Head, HeadLimits};
use crate::http::response::Response;
use crate::message::{Fragment, Message};
use crate::ws::close_code::CloseCode;
use crate::ws::error::WsError;
use crate::ws::frame::{parse_header, write_header};
use crate::ws::mask::apply_mask;
use crate::ws::opcode::OpCode;
use crate::ws_api::{Handler, Served, WebSocket};

/// Appends a frame as a client sends it: masked with `key`.
pub(crate) fn client_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    key: [u8; 4],
) {
    let start = out.len();
    write_header(out, fin, opcode, payload.len());
    out[start + 1] |= 0x80;
    out.extend_from_slice(&key);
    let body = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[body..], key, 0);
}

/// One masked client frame.
pub(crate) fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    client_frame(&mut out, fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d]);
    out
}

/// A client's close frame with a code and a reason.
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    masked(true, OpCode::Close, &payload)
}

/// A frame the server sent (servers never mask).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code a close frame carries, if any.
    pub fn close_code(&self) -> Option<u16> {
        let code = self.payload.get(..2)?;
        (self.opcode == OpCode::Close).then(|| u16::from_be_bytes([code[0], code[1]]))
    }

    /// A whole text frame with this payload.
    pub fn text(payload: &str) -> Frame {
        Frame {
            fin: true,
            opcode: OpCode::Text,
            payload: payload.as_bytes().to_vec(),
        }
    }
}

/// Decodes every whole server frame in `bytes`; panics on a masked or
/// incomplete one.
pub(crate) fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = parse_header(bytes, 0x70)
            .expect("a valid server frame")
            .expect("a whole frame header");
        assert!(header.mask.is_none(), "a server frame is never masked");
        let end = header.header_len + header.len as usize;
        assert!(end <= bytes.len(), "a whole frame payload");
        out.push(Frame {
            fin: header.fin,
            opcode: header.opcode,
            payload: bytes[header.header_len..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    out
}

/// A response the server wrote.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True if the response says the connection closes after it.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// The response at the front of `bytes` and the bytes it took; `head_only`
/// for the answer to a HEAD (a Content-Length but no body). Panics unless
/// the response is whole.
pub(crate) fn response(bytes: &[u8], head_only: bool) -> (Reply, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(bytes).expect("a valid response head") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("an incomplete response head: {bytes:?}"),
    };
    let status = parsed.code.expect("a status");
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_string(), value)
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let length = match reply.header("Content-Length") {
        _ if head_only || status == 101 || status == 204 || status == 304 => 0,
        Some(n) => n.parse().expect("a numeric Content-Length"),
        None => 0,
    };
    let end = head_len + length;
    assert!(end <= bytes.len(), "an incomplete response body");
    reply.body = bytes[head_len..end].to_vec();
    (reply, end)
}

/// Every response in `bytes`, one after another (none of them to a HEAD).
pub(crate) fn responses(mut bytes: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (reply, used) = response(bytes, false);
        out.push(reply);
        bytes = &bytes[used..];
    }
    out
}

/// The response at the front of `bytes` and the server frames after it.
pub(crate) fn upgraded(bytes: &[u8]) -> (Reply, Vec<Frame>) {
    let (reply, used) = response(bytes, false);
    (reply, frames(&bytes[used..]))
}

/// A GET that upgrades `path` to a WebSocket (the RFC 6455 example key).
pub(crate) fn upgrade_request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Runs `f` on the parsed head of `text` (a whole, valid request head).
pub(crate) fn with_head<R>(text: &str, f: impl FnOnce(&Head<'_>) -> R) -> R {
    let limits = HeadLimits {
        header: 8192,
        headers: 64,
        uri: 4096,
        body: 1 << 20,
    };
    let mut storage = header_storage();
    let head = parse_head(text.as_bytes(), &mut storage, &limits)
        .expect("a valid head")
        .expect("a whole head");
    f(&head)
}

/// The client's address in every test.
pub(crate) fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000))
}

/// A folder under the system's temp folder, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wisp-unit-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a temp folder");
        TempDir { path }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path.join(name), bytes).expect("a temp file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a [`Probe`] saw, one line per callback.
pub(crate) type Log = Rc<RefCell<Vec<String>>>;

/// A WebSocket handler that logs its callbacks and echoes messages; the
/// text `panic` makes it panic, `close` makes it close with 1000, `big:N`
/// answers with N bytes.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub log: Log,
}

impl Probe {
    fn note(&self, line: String) {
        self.log.borrow_mut().push(line);
    }
}

impl Handler for Probe {
    type State = ();

    fn on_open(&mut self, _: &mut WebSocket<'_, ()>) {
        self.note("open".into());
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        match msg {
            Message::Text(t) => self.note(format!("text {t}")),
            Message::Binary(b) => self.note(format!("binary {}", b.len())),
        }
        match msg {
            Message::Text("panic") => panic!("the probe was asked to panic"),
            Message::Text("close") => {
                ws.close(CloseCode::NORMAL, "bye");
            }
            Message::Text(t) if t.starts_with("big:") => {
                let n = t[4..].parse().expect("big:N");
                ws.send_binary(&vec![b'x'; n]);
            }
            _ => {
                ws.send(msg);
            }
        }
    }

    fn on_partial(&mut self, _: &mut WebSocket<'_, ()>, f: Fragment<'_>) {
        self.note(format!("partial {} {} {}", f.data.len(), f.first, f.last));
    }

    fn on_error(&mut self, _: &mut WebSocket<'_, ()>, err: &WsError) {
        self.note(format!("error {}", err.close_code()));
    }

    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, reason: &str) {
        self.note(format!("close {code} {reason}"));
    }
}

/// The configuration of [`app`]: WebSockets on `/ws/`, actions on `/api/`,
/// a redirect from `/old`, GET-only actions on `/ro/`, files for the rest
/// from `docs`; `extra` goes inside `web: { … }`.
pub(crate) fn config(docs: &Path, extra: &str) -> Config {
    let text = format!(
        "{{ web: {{ documents: '{}', routes: [ \
           {{ match: '/ws/', handler: 'action' }}, \
           {{ match: '/api/', handler: 'action' }}, \
           {{ match: '/old', redirect: {{ status: 301, to: '/new' }} }}, \
           {{ match: '/ro/', handler: 'action', methods: ['GET'] }}, \
           {{ match: '' }} ], {extra} }} }}",
        docs.display()
    );
    Config::parse(&text, Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
}

/// An app over `config`: a [`Probe`] on `/ws/`, and actions on `/api/`
/// (answers `METHOD path body`; `/api/panic` panics) and `/ro/`.
pub(crate) fn app(config: Config) -> (App, Log) {
    let mut app = App::new(config).expect("an app");
    let echo = |r: &crate::http::request::Request<'_>| {
        let body = String::from_utf8_lossy(r.body());
        Response::text(format!("{} {} {body}", r.method(), r.path()))
    };
    app.add_action("/api/", Box::new(echo));
    app.add_action("/ro/", Box::new(echo));
    app.add_action(
        "/api/panic",
        Box::new(|_| panic!("the action was asked to panic")),
    );
    let probe = Probe::default();
    let log = Rc::clone(&probe.log);
    app.add_websocket("/ws/", None, Box::new(Served::new(probe)));
    (app, log)
}

/// `len` bytes with nothing for a compressor to find (xorshift from `seed`).
pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
