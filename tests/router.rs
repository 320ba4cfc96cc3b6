//! `wisp::Router` over real sockets: typed dispatch, `id` correlation, every
//! error event with the connection staying open, the binary, open and close
//! fallbacks, a custom event key, and per-connection state.
//!
//! Tests wait for the server's bytes, never for a clock: "nothing was sent" is
//! checked by sending a later message and reading its answer first.
//! `IO_TIMEOUT` is only a safety net.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver};

use serde::Deserialize;
use serde_json::{json, Value};
use support::{find, TestServer, IO_TIMEOUT};
use wisp::Router;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;

// ---------------------------------------------------------------------------
// A small WebSocket client: masked frames out, unmasked frames in.

struct Ws {
    stream: TcpStream,
    /// Bytes read and not yet parsed (frames may come with the 101's head).
    buf: Vec<u8>,
    /// Makes each frame's masking key different.
    frames: u32,
}

impl Ws {
    /// Opens a WebSocket to `path`; panics unless the server answers 101.
    fn open(s: &TestServer, path: &str) -> Ws {
        let stream = TcpStream::connect(s.addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
            frames: 0,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.stream.write_all(request.as_bytes()).unwrap();
        let end = loop {
            if let Some(i) = find(&ws.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(ws.fill(), "connection closed before the 101");
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "bad accept: {head}"
        );
        ws.buf.drain(..end);
        ws
    }

    /// Reads more bytes; false at end of stream (EOF or reset).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    fn need(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(self.fill(), "connection closed inside a frame");
        }
    }

    /// Sends one whole masked frame.
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        self.frames += 1;
        let key = (0x9E37_79B9u32.wrapping_mul(self.frames) | 1).to_be_bytes();
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.stream.write_all(&out).unwrap();
    }

    fn send_text(&mut self, text: &str) {
        self.send_frame(TEXT, text.as_bytes());
    }

    fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    /// Reads one whole server frame: (opcode, payload).
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        self.need(2);
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b0 & 0xF0, 0x80, "not a whole, unextended frame");
        assert_eq!(b1 & 0x80, 0, "the server masked a frame");
        let (len, header) = match b1 & 0x7F {
            126 => {
                self.need(4);
                (
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                    4,
                )
            }
            127 => {
                self.need(10);
                let len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                (usize::try_from(len).unwrap(), 10)
            }
            short => (usize::from(short), 2),
        };
        self.need(header + len);
        let payload = self.buf[header..header + len].to_vec();
        self.buf.drain(..header + len);
        (b0 & 0x0F, payload)
    }

    /// Reads a text message holding JSON.
    fn read_json(&mut self) -> Value {
        let (opcode, payload) = self.read_frame();
        assert_eq!(
            opcode,
            TEXT,
            "expected text, got {opcode} {:?}",
            String::from_utf8_lossy(&payload)
        );
        serde_json::from_slice(&payload).expect("the server sent JSON")
    }

    /// Sends `request` and reads the answer.
    fn call(&mut self, request: Value) -> Value {
        self.send_json(&request);
        self.read_json()
    }

    /// Closes with 1000: waits for the server's close frame, then its EOF.
    fn close(mut self, reason: &str) {
        let payload = [&1000u16.to_be_bytes()[..], reason.as_bytes()].concat();
        self.send_frame(CLOSE, &payload);
        let (opcode, payload) = self.read_frame();
        assert_eq!(opcode, CLOSE);
        assert_eq!(payload[..2], 1000u16.to_be_bytes());
        while self.fill() {}
        assert!(self.buf.is_empty(), "bytes after the close frame");
    }
}

// ---------------------------------------------------------------------------
// Servers

const ROUTES: &str = "routes: [ { match: '/ws/', handler: 'action' } ]";

/// A server with `router` on `/ws/api`. The router is made on the server
/// thread (it need not be `Send`).
fn serve<S: Default + 'static>(make: impl FnOnce() -> Router<S> + Send + 'static) -> TestServer {
    TestServer::start(
        ROUTES,
        |_| {},
        move |server| {
            server.websocket("/ws/api", make());
        },
    )
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// A type that declares the event key and the id too.
#[derive(Deserialize)]
struct Whole {
    event: String,
    id: Option<Value>,
    text: String,
}

#[derive(Deserialize)]
struct Greet {
    name: String,
}

/// The router most tests use.
fn api() -> Router {
    Router::new()
        .on(
            "add",
            |_, m: Add| json!({ "event": "sum", "value": m.a + m.b }),
        )
        .on(
            "whole",
            |_, m: Whole| json!({ "event": "whole", "saw": [m.event, m.id, m.text] }),
        )
        .on("greet", |_, m: Greet| -> Result<Value, String> {
            if m.name.is_empty() {
                return Err("a name cannot be empty".to_string());
            }
            Ok(json!({ "event": "greeting", "text": format!("hello {}", m.name) }))
        })
        .on(
            "own-id",
            |_, _: Value| json!({ "event": "own", "id": "mine" }),
        )
        .on("scalar", |_, _: Value| json!([1, 2]))
        .on("unit", |_, _: Value| {})
        .on("null", |_, _: Value| Value::Null)
        .on("none", |_, _: Value| None::<Value>)
        .on("raw", |_, v: Value| v)
}

fn error(text: &str) -> Value {
    json!({ "event": "error", "error": text })
}

fn error_with_id(text: &str, id: Value) -> Value {
    json!({ "event": "error", "error": text, "id": id })
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn dispatches_typed_messages() {
    let s = serve(api);
    let mut ws = Ws::open(&s, "/ws/api");
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 1, "b": 2 })),
        json!({ "event": "sum", "value": 3 })
    );
    // Fields the type does not declare are ignored.
    assert_eq!(
        ws.call(json!({ "event": "greet", "name": "ann", "extra": [1] })),
        json!({ "event": "greeting", "text": "hello ann" })
    );
    // The type sees every field, the event name and the id included.
    assert_eq!(
        ws.call(json!({ "event": "whole", "text": "t" })),
        json!({ "event": "whole", "saw": ["whole", null, "t"] })
    );
    assert_eq!(
        ws.call(json!({ "event": "whole", "text": "t", "id": 5 })),
        json!({ "event": "whole", "saw": ["whole", 5, "t"], "id": 5 })
    );
    // A Value closure gets the message as it came.
    let raw = json!({ "event": "raw", "nested": { "deep": [true, null, 1.5] } });
    assert_eq!(ws.call(raw.clone()), raw);
    ws.close("done");
}

#[test]
fn replies_carry_the_request_id() {
    let s = serve(api);
    let mut ws = Ws::open(&s, "/ws/api");
    for id in [json!(7), json!("abc"), json!({ "n": [1] }), json!(null)] {
        assert_eq!(
            ws.call(json!({ "event": "add", "a": 2, "b": 3, "id": id })),
            json!({ "event": "sum", "value": 5, "id": id })
        );
    }
    // A reply that set its own id keeps it; a reply that is not an object is sent as it is.
    assert_eq!(
        ws.call(json!({ "event": "own-id", "id": 1 })),
        json!({ "event": "own", "id": "mine" })
    );
    assert_eq!(
        ws.call(json!({ "event": "scalar", "id": 1 })),
        json!([1, 2])
    );
    ws.close("done");
}

#[test]
fn empty_replies_send_nothing() {
    let s = serve(api);
    let mut ws = Ws::open(&s, "/ws/api");
    for event in ["unit", "null", "none"] {
        ws.send_json(&json!({ "event": event, "id": 1 }));
    }
    // Had any of them sent something, it would come before this answer.
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 0, "b": 1 })),
        json!({ "event": "sum", "value": 1 })
    );
    ws.close("done");
}

#[test]
fn errors_are_answered_and_the_connection_stays_open() {
    let s = serve(api);
    let mut ws = Ws::open(&s, "/ws/api");
    let cases: Vec<(&str, Value)> = vec![
        (
            "{\"event\":",
            error("invalid JSON: EOF while parsing a value at line 1 column 9"),
        ),
        (
            "",
            error("invalid JSON: EOF while parsing a value at line 1 column 0"),
        ),
        ("[1,2]", error("message is not a JSON object")),
        ("\"add\"", error("message is not a JSON object")),
        (
            r#"{"a":1,"id":3}"#,
            error_with_id("missing \"event\"", json!(3)),
        ),
        (r#"{"event":7}"#, error("\"event\" is not a string")),
        (
            r#"{"event":null,"id":"q"}"#,
            error_with_id("\"event\" is not a string", json!("q")),
        ),
        (r#"{"event":"nope"}"#, error("unknown event \"nope\"")),
        (
            r#"{"event":"nope","id":[9]}"#,
            error_with_id("unknown event \"nope\"", json!([9])),
        ),
        (r#"{"event":"add","a":1}"#, error("add: missing field `b`")),
        (
            r#"{"event":"add","a":"one","b":2,"id":4}"#,
            error_with_id("add: invalid type: string \"one\", expected i64", json!(4)),
        ),
        (
            r#"{"event":"greet","name":""}"#,
            error("a name cannot be empty"),
        ),
        (
            r#"{"event":"greet","name":"","id":11}"#,
            error_with_id("a name cannot be empty", json!(11)),
        ),
    ];
    for (request, expected) in cases {
        ws.send_text(request);
        assert_eq!(ws.read_json(), expected, "for {request:?}");
        // Still open, and still dispatching.
        assert_eq!(
            ws.call(json!({ "event": "add", "a": 1, "b": 1, "id": request })),
            json!({ "event": "sum", "value": 2, "id": request })
        );
    }
    ws.close("done");
}

#[test]
fn binary_messages_without_a_fallback_are_an_error() {
    let s = serve(api);
    let mut ws = Ws::open(&s, "/ws/api");
    ws.send_frame(BINARY, b"\x00\x01\x02");
    assert_eq!(ws.read_json(), error("binary messages are not supported"));
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 4, "b": 4 })),
        json!({ "event": "sum", "value": 8 })
    );
    ws.close("done");
}

#[test]
fn binary_messages_go_to_the_fallback() {
    let s = serve(|| {
        Router::<u64>::default()
            .on_binary(|ws, bytes| {
                *ws.state_mut() += bytes.len() as u64;
                let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
                ws.send_binary(&reversed);
            })
            .on(
                "bytes",
                |ws, _: Value| json!({ "event": "bytes", "total": *ws.state() }),
            )
    });
    let mut ws = Ws::open(&s, "/ws/api");
    ws.send_frame(BINARY, b"abc");
    assert_eq!(ws.read_frame(), (BINARY, b"cba".to_vec()));
    let big = vec![7u8; 70_000];
    ws.send_frame(BINARY, &big);
    assert_eq!(ws.read_frame(), (BINARY, big));
    assert_eq!(
        ws.call(json!({ "event": "bytes" })),
        json!({ "event": "bytes", "total": 70_003 })
    );
    ws.close("done");
}

#[test]
fn the_event_key_can_be_changed() {
    let s = serve(|| {
        Router::new()
            .key("type")
            .on("ping", |_, _: Value| json!({ "type": "pong" }))
    });
    let mut ws = Ws::open(&s, "/ws/api");
    assert_eq!(
        ws.call(json!({ "type": "ping", "id": 1 })),
        json!({ "type": "pong", "id": 1 })
    );
    // The old key means nothing now, and errors come under the new key.
    assert_eq!(
        ws.call(json!({ "event": "ping", "id": 2 })),
        json!({ "type": "error", "error": "missing \"type\"", "id": 2 })
    );
    assert_eq!(
        ws.call(json!({ "type": "pang" })),
        json!({ "type": "error", "error": "unknown event \"pang\"" })
    );
    ws.send_frame(BINARY, b"x");
    assert_eq!(
        ws.read_json(),
        json!({ "type": "error", "error": "binary messages are not supported" })
    );
    ws.close("done");
}

#[test]
fn open_and_close_fallbacks() {
    let (tx, closed): (_, Receiver<(u16, String, u64)>) = mpsc::channel();
    let s = serve(move || {
        Router::<u64>::default()
            .on_open(|ws| {
                let agent = ws.header("host").unwrap_or("?").to_string();
                ws.send_json(&json!({ "event": "welcome", "host": agent }));
            })
            .on("tick", |ws, _: Value| *ws.state_mut() += 1)
            .on_close(move |ws, code, reason| {
                let _ = tx.send((code, reason.to_string(), *ws.state()));
            })
    });
    let mut ws = Ws::open(&s, "/ws/api");
    assert_eq!(ws.read_json(), json!({ "event": "welcome", "host": "t" }));
    ws.send_json(&json!({ "event": "tick" }));
    ws.send_json(&json!({ "event": "tick" }));
    ws.close("bye");
    let seen = closed
        .recv_timeout(IO_TIMEOUT)
        .expect("on_close was called");
    assert_eq!(seen, (1000, "bye".to_string(), 2));
}

#[test]
fn state_is_per_connection_and_starts_from_default() {
    #[derive(Default)]
    struct Counter {
        n: u32,
        names: Vec<String>,
    }
    let s = serve(|| {
        Router::<Counter>::default().on("count", |ws, m: Greet| {
            let state = ws.state_mut();
            state.n += 1;
            state.names.push(m.name);
            json!({ "event": "count", "n": state.n, "names": state.names })
        })
    });
    let mut first = Ws::open(&s, "/ws/api");
    let mut second = Ws::open(&s, "/ws/api");
    for n in 1..=3 {
        assert_eq!(
            first.call(json!({ "event": "count", "name": format!("a{n}") }))["n"],
            n
        );
    }
    assert_eq!(
        second.call(json!({ "event": "count", "name": "b" })),
        json!({ "event": "count", "n": 1, "names": ["b"] })
    );
    assert_eq!(
        first.call(json!({ "event": "count", "name": "a4" })),
        json!({ "event": "count", "n": 4, "names": ["a1", "a2", "a3", "a4"] })
    );
    first.close("done");
    second.close("done");
    // A new connection starts over.
    let mut third = Ws::open(&s, "/ws/api");
    assert_eq!(third.call(json!({ "event": "count", "name": "c" }))["n"], 1);
    third.close("done");
}

#[test]
fn debug_lists_the_events() {
    let router = api().on_binary(|_, _| {});
    let text = format!("{router:?}");
    assert!(
        text.starts_with(
            r#"Router { key: "event", events: ["add", "greet", "none", "null", "own-id", "raw", "scalar", "unit", "whole"], binary: true"#
        ),
        "{text}"
    );
}

#[test]
fn the_issue_example_compiles_and_answers() {
    let s = TestServer::start(
        ROUTES,
        |_| {},
        |server| {
            server.websocket(
                "/ws/api",
                Router::new().on(
                    "ping",
                    |_, _: serde_json::Value| serde_json::json!({"event": "pong"}),
                ),
            );
        },
    );
    let mut ws = Ws::open(&s, "/ws/api");
    assert_eq!(
        ws.call(json!({ "event": "ping", "id": "x" })),
        json!({ "event": "pong", "id": "x" })
    );
    ws.close("done");
}
