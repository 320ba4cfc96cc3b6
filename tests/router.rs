//! `wisp::Router` over real sockets: typed dispatch, `id` correlation, every
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
use wisp::Router;

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

#[test]
fn binary_messages_without_a_fallback_are_an_error() {
    let s = serve(api);
    let mut ws = Ws::open(s.addr, "/ws/api");
    ws.send_binary(b"\x00\x01\x02");
    assert_eq!(ws.read_json(), error("binary messages are not supported"));
    assert_eq!(
        ws.call(json!({ "event": "add", "a": 4, "b": 4 })),
        json!({ "event": "sum", "value": 8 })
    );
    ws.close_with(1000, "done");
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
    ws.send_binary(b"x");
    assert_eq!(
        ws.read_json(),
        json!({ "type": "error", "error": "binary messages are not supported" })
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
    let mut ws = Ws::open(s.addr, "/ws/api");
    assert_eq!(
        ws.call(json!({ "event": "ping", "id": "x" })),
        json!({ "event": "pong", "id": "x" })
    );
    ws.close_with(1000, "done");
}
