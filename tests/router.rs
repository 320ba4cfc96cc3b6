//! `wisp::Router` over real sockets: typed dispatch in JSON and MessagePack,
//! a pinned codec, closing on unreadable input, `id` correlation, every
//! error event with the connection staying open, the binary, open and close
//! fallbacks, a custom event key, and per-connection state.
//!
//! The client is `support::ws`. Tests wait for the server's bytes, never for a
//! clock: "nothing was sent" is checked by sending a later message and reading
//! its answer first. `IO_TIMEOUT` is only a safety net.

mod support;

use std::sync::mpsc::{self, Receiver};

use serde::Deserialize;
use serde_json::{json, Value};
use support::ws::{Ws, BINARY};
use support::{TestServer, IO_TIMEOUT};
use wisp::{Codec, Router};

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
    let mut ws = Ws::open(s.addr, "/ws/api");
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
    ws.close_with(1000, "done");
}

#[test]
fn replies_carry_the_request_id() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
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
    ws.close_with(1000, "done");
}

#[test]
fn empty_replies_send_nothing() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
    for event in ["unit", "null", "none"] {
        ws.send_json(&json!({ "event": event, "id": 1 }));
    }
    // Had any of them sent something, it would come before this answer.
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 0, "b": 1 })),
        json!({ "event": "sum", "value": 1 })
    );
    ws.close_with(1000, "done");
}

#[test]
fn errors_are_answered_and_the_connection_stays_open() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
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
    ws.close_with(1000, "done");
}

/// `value` as MessagePack.
fn msgpack(value: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("encodes")
}

/// Reads a binary message holding MessagePack.
fn read_msgpack(ws: &mut Ws) -> Value {
    let f = ws.read_frame();
    assert_eq!(
        (f.fin, f.opcode),
        (true, BINARY),
        "got {f:?} ({:?})",
        f.text()
    );
    rmp_serde::from_slice(&f.payload).unwrap_or_else(|e| panic!("{e}: {:02x?}", f.payload))
}

/// Sends `request` as MessagePack and reads the MessagePack answer.
fn call_msgpack(ws: &mut Ws, request: Value) -> Value {
    ws.send_binary(&msgpack(&request));
    read_msgpack(ws)
}

#[test]
fn binary_messages_are_messagepack_and_answered_in_it() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
    // The same closures, the same typed events, answers in the request's codec.
    assert_eq!(
        call_msgpack(&mut ws, json!({ "event": "add", "a": 1, "b": 2, "id": 9 })),
        json!({ "event": "sum", "value": 3, "id": 9 })
    );
    let raw = json!({ "event": "raw", "n": null, "t": true, "i": -7, "u": u64::MAX,
        "f": 0.5, "s": "ß", "a": [1, [2, {}]], "o": { "k": "v" } });
    assert_eq!(call_msgpack(&mut ws, raw.clone()), raw);
    // Interleaved with JSON on the same connection: each gets its own codec.
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 2, "b": 2 })),
        json!({ "event": "sum", "value": 4 })
    );
    assert_eq!(
        call_msgpack(&mut ws, json!({ "event": "add", "a": 1 })),
        error("add: missing field `b`")
    );
    ws.close_with(1000, "done");
}

#[test]
fn bad_messagepack_gets_the_same_error_events_as_bad_json() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![0x00, 0x01, 0x02],
            "invalid MessagePack: bytes after the message",
        ),
        (vec![0x92, 0x01, 0x02], "message is not a MessagePack map"),
        (
            vec![0xa3, b'a', b'd', b'd'],
            "message is not a MessagePack map",
        ),
        // {1: "a"}: a key that is not a string.
        (
            vec![0x81, 0x01, 0xa1, b'a'],
            "invalid MessagePack: invalid type: integer `1`, expected a string key",
        ),
        // An array header claiming 2^32 - 1 elements, and one element.
        (
            vec![0x81, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            "invalid MessagePack: the message ends too soon",
        ),
        (vec![0xc1], "invalid MessagePack: "),
    ];
    for (request, expected) in cases {
        ws.send_binary(&request);
        let answer = read_msgpack(&mut ws);
        assert_eq!(answer["event"], json!("error"), "for {request:02x?}");
        let text = answer["error"].as_str().unwrap_or_default();
        assert!(text.starts_with(expected), "{text:?} for {request:02x?}");
        assert_eq!(answer.as_object().map(|o| o.len()), Some(2), "{answer}");
        // Still open, and still dispatching in both codecs.
        assert_eq!(
            call_msgpack(&mut ws, json!({ "event": "add", "a": 1, "b": 1 })),
            json!({ "event": "sum", "value": 2 })
        );
        assert_eq!(
            ws.call(json!({ "event": "add", "a": 1, "b": 2 })),
            json!({ "event": "sum", "value": 3 })
        );
    }
    // Read but not dispatchable: the id comes back as in JSON.
    assert_eq!(
        call_msgpack(&mut ws, json!({ "event": "nope", "id": "x" })),
        error_with_id("unknown event \"nope\"", json!("x"))
    );
    ws.close_with(1000, "done");
}

#[test]
fn a_pinned_codec_refuses_the_other_kind() {
    let s = serve(|| api().codec(Codec::MessagePack));
    let mut ws = Ws::open(s.addr, "/ws/api");
    assert_eq!(
        call_msgpack(&mut ws, json!({ "event": "add", "a": 5, "b": 5 })),
        json!({ "event": "sum", "value": 10 })
    );
    // JSON is refused, and the refusal is in MessagePack.
    ws.send_json(&json!({ "event": "add", "a": 1, "b": 1 }));
    assert_eq!(
        read_msgpack(&mut ws),
        error("text messages are not supported: this router speaks MessagePack")
    );
    ws.close_with(1000, "done");

    let s = serve(|| api().codec(Codec::Json));
    let mut ws = Ws::open(s.addr, "/ws/api");
    ws.send_binary(&msgpack(&json!({ "event": "add", "a": 1, "b": 1 })));
    assert_eq!(
        ws.read_json(),
        error("binary messages are not supported: this router speaks JSON")
    );
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 4, "b": 4 })),
        json!({ "event": "sum", "value": 8 })
    );
    ws.close_with(1000, "done");
}

#[test]
fn close_on_unreadable_closes_with_1007_or_1003() {
    let strict = || api().close_on_unreadable(true);
    let s = serve(strict);
    // Read but not dispatchable: still an error event.
    let mut ws = Ws::open(s.addr, "/ws/api");
    assert_eq!(
        ws.call(json!({ "event": "nope" })),
        error("unknown event \"nope\"")
    );
    ws.send_text("{\"event\":");
    let (code, reason) = ws.read_close();
    assert_eq!(code, 1007);
    assert!(reason.starts_with("invalid JSON"), "{reason:?}");

    let mut ws = Ws::open(s.addr, "/ws/api");
    ws.send_binary(&[0x92, 0x01, 0x02]);
    assert_eq!(
        ws.read_close(),
        (1007, "message is not a MessagePack map".into())
    );

    let s = serve(move || strict().codec(Codec::Json));
    let mut ws = Ws::open(s.addr, "/ws/api");
    ws.send_binary(&msgpack(&json!({ "event": "add", "a": 1, "b": 1 })));
    assert_eq!(
        ws.read_close(),
        (
            1003,
            "binary messages are not supported: this router speaks JSON".into()
        )
    );
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
    let mut ws = Ws::open(s.addr, "/ws/api");
    ws.send_binary(b"abc");
    ws.expect_message(BINARY, b"cba");
    let big = vec![7u8; 70_000];
    ws.send_binary(&big);
    ws.expect_message(BINARY, &big);
    assert_eq!(
        ws.call(json!({ "event": "bytes" })),
        json!({ "event": "bytes", "total": 70_003 })
    );
    ws.close_with(1000, "done");
}

#[test]
fn the_event_key_can_be_changed() {
    let s = serve(|| {
        Router::new()
            .key("type")
            .on("ping", |_, _: Value| json!({ "type": "pong" }))
    });
    let mut ws = Ws::open(s.addr, "/ws/api");
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
    // 'x' is the MessagePack integer 120: not a map, answered in MessagePack.
    ws.send_binary(b"x");
    assert_eq!(
        read_msgpack(&mut ws),
        json!({ "type": "error", "error": "message is not a MessagePack map" })
    );
    ws.close_with(1000, "done");
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
                let _ = tx.send((code.as_u16(), reason.to_string(), *ws.state()));
            })
    });
    let mut ws = Ws::open(s.addr, "/ws/api");
    assert_eq!(ws.read_json(), json!({ "event": "welcome", "host": "t" }));
    ws.send_json(&json!({ "event": "tick" }));
    ws.send_json(&json!({ "event": "tick" }));
    ws.close_with(1000, "bye");
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
    let mut first = Ws::open(s.addr, "/ws/api");
    let mut second = Ws::open(s.addr, "/ws/api");
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
    first.close_with(1000, "done");
    second.close_with(1000, "done");
    // A new connection starts over.
    let mut third = Ws::open(s.addr, "/ws/api");
    assert_eq!(third.call(json!({ "event": "count", "name": "c" }))["n"], 1);
    third.close_with(1000, "done");
}

#[test]
fn debug_lists_the_events() {
    let router = api().on_binary(|_, _| {});
    let text = format!("{router:?}");
    assert!(
        text.starts_with(
            r#"Router { key: "event", events: ["add", "greet", "none", "null", "own-id", "raw", "scalar", "unit", "whole"], codec: None, close_on_unreadable: false, binary: true"#
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
    let mut ws = Ws::open(s.addr, "/ws/api");
    assert_eq!(
        ws.call(json!({ "event": "ping", "id": "x" })),
        json!({ "event": "pong", "id": "x" })
    );
    ws.close_with(1000, "done");
}
