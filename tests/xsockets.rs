//! XSockets mode over real sockets: `{t, c, d}` dispatched on `(c, t)`, `d`
//! bound to a string or a complex type, the catch-all, per-connection
//! controller instances, open and close hooks, `InvokeToAll` in each
//! recipient's format, translators selected by subprotocol, MessagePack,
//! and closing with 1007/1003 on what is not an IMessage. The last tests
//! drive `examples/xsockets_controllers` with the documentation's messages.
//!
//! The client is `support::ws`; tests wait for the server's bytes, never for
//! a clock. "Nothing was sent" is checked by a later answer arriving first.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde::Deserialize;
use serde_json::{json, Value};
use support::binary::{start_command, Running};
use support::ws::{Ws, BINARY};
use support::TestServer;
use wisp::{Controller, IMessage, Message, Translator, XSockets};

const ROUTES: &str = "routes: [ { match: '/xs', handler: 'action' } ]";

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Person {
    name: String,
    Age: u32,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Foo {
    Text(String),
    Person(Person),
}

/// A `{M, J}` translator for the controller `demo`, JSON both ways.
fn mj() -> Translator {
    Translator::new(
        |frame| {
            let Message::Text(text) = frame else {
                return Err("text only".to_string());
            };
            let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let (Some(m), Some(j)) = (v["M"].as_str(), v["J"].as_str()) else {
                return Err("expected {M, J}".to_string());
            };
            let d = serde_json::from_str(j).map_err(|e| format!("J: {e}"))?;
            Ok(IMessage::new(m, "demo", d))
        },
        |m| json!({ "M": m.t, "J": m.d.to_string() }).to_string(),
    )
}

/// The handler most tests use: `bar` binds `foo`'s `d`; `count` keeps
/// an instance per connection, greets on open and reports closes; `demo`
/// sums and broadcasts.
fn handler(closed: mpsc::Sender<(String, u64)>) -> XSockets {
    let bar = Controller::new()
        .on("foo", |_, d: Foo| match d {
            Foo::Text(m) => json!({ "string": m }),
            Foo::Person(p) => json!({ "person": [p.name, p.Age] }),
        })
        .on("fail", |_, _: Value| Err::<(), _>("refused"));
    let count = Controller::<u64>::default()
        .on_open(|call| {
            call.invoke("open", &"hello");
        })
        .on("next", |call, _: Value| {
            *call.state() += 1;
            json!(*call.state())
        })
        .on_message(|call, m: IMessage| {
            let echo = json!({ "caught": m.t, "d": m.d });
            call.invoke("echo", &echo);
        })
        .on_close(move |call| {
            let _ = closed.send((call.id().to_string(), *call.state()));
        });
    #[derive(Deserialize)]
    struct Sum {
        a: i64,
        b: i64,
    }
    let demo = Controller::new().on("sum", |call, d: Sum| {
        call.invoke_to_all("sum", &(d.a + d.b));
    });
    XSockets::new()
        .controller("bar", bar)
        .controller("count", count)
        .controller("demo", demo)
        .translator("MJ", mj())
}

/// A server with the handler on `/xs` for `XSocketsNET`, `MJ` and clients
/// that offer no subprotocol; the receiver gets each close hook's report.
fn serve() -> (TestServer, mpsc::Receiver<(String, u64)>) {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(
        ROUTES,
        |_| {},
        move |server| {
            let xs = handler(tx);
            server.websocket_protocol("/xs", "XSocketsNET", xs.clone());
            server.websocket_protocol("/xs", "MJ", xs.clone());
            server.websocket("/xs", xs);
        },
    );
    (s, rx)
}

fn open(s: &TestServer, protocol: &str) -> Ws {
    let extra = format!("Sec-WebSocket-Protocol: {protocol}\r\n");
    let (resp, ws) = Ws::open_with(s.addr, "/xs", &extra);
    assert_eq!(resp.header("sec-websocket-protocol"), Some(protocol));
    ws
}

fn call(ws: &mut Ws, message: Value) -> Value {
    ws.call(message)
}

#[test]
fn d_binds_to_a_string_or_a_complex_type() {
    let (s, _) = serve();
    let mut ws = open(&s, "XSocketsNET");
    assert_eq!(
        call(
            &mut ws,
            json!({ "t": "foo", "c": "bar", "d": "some message" })
        ),
        json!({ "t": "foo", "c": "bar", "d": { "string": "some message" } })
    );
    assert_eq!(
        call(
            &mut ws,
            json!({ "t": "foo", "c": "bar", "d": { "name": "Steve", "Age": 42 } })
        ),
        json!({ "t": "foo", "c": "bar", "d": { "person": ["Steve", 42] } })
    );
    // Controller and topic names match without regard to case, as C# methods do.
    assert_eq!(
        call(&mut ws, json!({ "t": "Foo", "c": "Bar", "d": "x" })),
        json!({ "t": "Foo", "c": "bar", "d": { "string": "x" } })
    );
    ws.close_with(1000, "done");
}

#[test]
fn errors_that_keep_the_connection_open() {
    let (s, _) = serve();
    let mut ws = open(&s, "XSocketsNET");
    let cases = [
        (
            json!({ "t": "foo", "c": "nope" }),
            json!({ "t": "error", "c": "nope", "d": "unknown controller \"nope\"" }),
        ),
        (
            json!({ "t": "nope", "c": "bar" }),
            json!({ "t": "error", "c": "bar", "d": "unknown topic \"nope\"" }),
        ),
        (
            json!({ "t": "foo", "c": "bar", "d": 7 }),
            json!({ "t": "error", "c": "bar", "d": "foo: data did not match any variant of untagged enum Foo" }),
        ),
        (
            json!({ "t": "fail", "c": "bar" }),
            json!({ "t": "error", "c": "bar", "d": "refused" }),
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(call(&mut ws, request.clone()), expected, "for {request}");
    }
    assert_eq!(
        call(
            &mut ws,
            json!({ "t": "foo", "c": "bar", "d": "still open" })
        )["d"],
        json!({ "string": "still open" })
    );
    ws.close_with(1000, "done");
}

#[test]
fn what_is_not_an_imessage_closes_with_1007() {
    let (s, _) = serve();
    for bad in [
        "{\"t\":",
        "[1,2]",
        "{\"t\":\"foo\"}",
        "{\"t\":1,\"c\":\"bar\"}",
    ] {
        let mut ws = open(&s, "XSocketsNET");
        ws.send_text(bad);
        let (code, reason) = ws.read_close();
        assert_eq!(code, 1007, "{bad}: {reason}");
    }
    // Through a translator too.
    let mut ws = open(&s, "MJ");
    ws.send_text(r#"{"t":"foo","c":"bar"}"#);
    assert_eq!(ws.read_close(), (1007, "expected {M, J}".to_string()));
}

#[test]
fn closing_on_unreadable_input_can_be_turned_off() {
    let s = TestServer::start(
        ROUTES,
        |_| {},
        |server| {
            let (tx, _) = mpsc::channel();
            server.websocket("/xs", handler(tx).close_on_unreadable(false));
        },
    );
    let mut ws = Ws::open(s.addr, "/xs");
    ws.send_text("{\"t\":\"foo\"}");
    assert_eq!(
        ws.read_json(),
        json!({ "t": "error", "c": "", "d": "not an IMessage: missing field `c`" })
    );
    assert_eq!(
        call(&mut ws, json!({ "t": "foo", "c": "bar", "d": "ok" }))["d"],
        json!({ "string": "ok" })
    );
    ws.close_with(1000, "done");
}

#[test]
fn each_connection_has_its_own_controller_instance() {
    let (s, closed) = serve();
    let mut a = open(&s, "XSocketsNET");
    let mut b = Ws::open(s.addr, "/xs");
    // The first message to a controller opens it: the greeting comes first.
    a.send_json(&json!({ "t": "next", "c": "count" }));
    assert_eq!(
        a.read_json(),
        json!({ "t": "open", "c": "count", "d": "hello" })
    );
    assert_eq!(a.read_json(), json!({ "t": "next", "c": "count", "d": 1 }));
    assert_eq!(call(&mut a, json!({ "t": "next", "c": "count" }))["d"], 2);
    b.send_json(&json!({ "t": "next", "c": "count" }));
    assert_eq!(b.read_json()["t"], "open");
    assert_eq!(b.read_json()["d"], 1, "b's own instance");
    // The catch-all gets the whole message.
    assert_eq!(
        call(&mut a, json!({ "t": "anything", "c": "count", "d": [1] })),
        json!({ "t": "echo", "c": "count", "d": { "caught": "anything", "d": [1] } })
    );
    assert_eq!(call(&mut a, json!({ "t": "next", "c": "count" }))["d"], 3);
    a.close_with(1000, "done");
    let (_, count) = closed
        .recv_timeout(support::IO_TIMEOUT)
        .expect("the close hook ran");
    assert_eq!(count, 3);
    b.close_with(1000, "done");
    assert_eq!(
        closed.recv_timeout(support::IO_TIMEOUT).map(|(_, n)| n),
        Ok(1)
    );
}

#[test]
fn invoke_to_all_reaches_every_format() {
    let (s, _) = serve();
    let mut plain = open(&s, "XSocketsNET");
    let mut packed = Ws::open(s.addr, "/xs");
    let mut mj = open(&s, "MJ");
    let mut outsider = open(&s, "XSocketsNET");
    // Each opens `demo` in its own format (the MessagePack one in binary).
    plain.send_json(&json!({ "t": "sum", "c": "demo", "d": { "a": 1, "b": 1 } }));
    assert_eq!(
        plain.read_json(),
        json!({ "t": "sum", "c": "demo", "d": 2 })
    );
    let bytes =
        rmp_serde::to_vec_named(&json!({ "t": "sum", "c": "demo", "d": { "a": 2, "b": 2 } }))
            .expect("encodes");
    packed.send_binary(&bytes);
    assert_eq!(plain.read_json()["d"], 4);
    let f = packed.read_frame();
    assert_eq!(f.opcode, BINARY);
    let got: Value = rmp_serde::from_slice(&f.payload).expect("MessagePack");
    assert_eq!(got, json!({ "t": "sum", "c": "demo", "d": 4 }));
    mj.send_text(r#"{"M":"sum","J":"{\"a\":3,\"b\":4}"}"#);
    assert_eq!(mj.read_text(), r#"{"J":"7","M":"sum"}"#);
    assert_eq!(plain.read_json()["d"], 7);
    let f = packed.read_frame();
    assert_eq!(
        rmp_serde::from_slice::<Value>(&f.payload).expect("MessagePack")["d"],
        7
    );
    // A connection that never opened `demo` got nothing: its own answer comes first.
    assert_eq!(
        call(&mut outsider, json!({ "t": "foo", "c": "bar", "d": "me" }))["d"],
        json!({ "string": "me" })
    );
    // A closed member is no longer reached.
    mj.close_with(1000, "done");
    plain.send_json(&json!({ "t": "sum", "c": "demo", "d": { "a": 0, "b": 9 } }));
    assert_eq!(plain.read_json()["d"], 9);
    let f = packed.read_frame();
    assert_eq!(
        rmp_serde::from_slice::<Value>(&f.payload).expect("MessagePack")["d"],
        9
    );
    plain.close_with(1000, "done");
    packed.close_with(1000, "done");
    outsider.close_with(1000, "done");
}

// ---------------------------------------------------------------------------
// The example, with the XSockets documentation's messages

/// Where cargo put the example binaries: beside the `deps` folder of this test.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    profile.join("examples").join(name)
}

fn example() -> Running {
    let mut command = Command::new(example_path("xsockets_controllers"));
    command
        .arg("127.0.0.1:0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null());
    start_command(command, &[])
}

fn open_example(ex: &Running, protocol: &str) -> Ws {
    let extra = format!("Sec-WebSocket-Protocol: {protocol}\r\n");
    let (resp, ws) = Ws::open_with(ex.addr, "/xsockets", &extra);
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("sec-websocket-protocol"), Some(protocol));
    ws
}

#[test]
fn example_bar_foo_binds_a_string_and_a_person() {
    let ex = example();
    let mut ws = open_example(&ex, "XSocketsNET");
    // {t: 'foo', c:'bar', d:'some message'}
    ws.send_text(r#"{"t":"foo","c":"bar","d":"some message"}"#);
    assert_eq!(
        ws.read_json(),
        json!({ "t": "foo", "c": "bar", "d": { "bound": "Foo(string)", "m": "some message" } })
    );
    // {t: 'foo', c:'bar', d:{name:'Steve', Age:42}}
    ws.send_text(r#"{"t":"foo","c":"bar","d":{"name":"Steve","Age":42}}"#);
    assert_eq!(
        ws.read_json(),
        json!({ "t": "foo", "c": "bar", "d": { "bound": "Foo(Person)", "name": "Steve", "Age": 42 } })
    );
    ws.close_with(1000, "done");
}

#[test]
fn example_demo_protocol_generic_opens_and_echoes_and_mj_reaches_demo() {
    let ex = example();
    let mut ws = open_example(&ex, "DemoProtocol");
    // var json = {t:'foo',c:'generic',d:'hi'}; conn.send(JSON.stringify(json))
    ws.send_text(r#"{"t":"foo","c":"generic","d":"hi"}"#);
    let open = ws.read_json();
    assert_eq!(
        (&open["t"], &open["c"]),
        (&json!("open"), &json!("generic"))
    );
    assert_eq!(
        ws.read_json(),
        json!({ "t": "foo", "c": "generic", "d": "hi" })
    );
    // var json = {M:'foo',J:'{s:\'bar\',i:42}'}
    ws.send_text(r#"{"M":"foo","J":"{s:'bar',i:42}"}"#);
    let answer: Value = serde_json::from_str(&ws.read_text()).expect("JSON");
    assert_eq!(answer["M"], "foo");
    let j: Value =
        serde_json::from_str(answer["J"].as_str().expect("J is a string")).expect("J is JSON");
    assert_eq!(j, json!({ "stringValue": "bar", "intValue": 42 }));
    // Anything that is neither closes the connection, as XSockets does.
    ws.send_text("hello?");
    assert_eq!(ws.read_close().0, 1007);
}
