//! Every example runs and does what its doc comment says, so none of them rots.
//! `cargo test` builds the examples; each is started on a free port (the
//! optional address argument) and driven over real sockets.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::binary::{start_command, Running};
use support::ws::Ws;
use support::Client;

/// Where cargo put the example binaries: beside the `deps` folder of this test.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join(name)
}

/// Starts an example on a free port and reads its address from the banner.
fn start(name: &str, extra: &[&str]) -> Running {
    let mut command = Command::new(example_path(name));
    command
        .arg("127.0.0.1:0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null());
    start_command(command, extra)
}

#[test]
fn hello_serves_the_site_and_greets() {
    let ex = start("hello", &[]);
    let mut c = Client::connect(ex.addr);
    c.send(b"GET /api/hello?name=device HTTP/1.1\r\nHost: t\r\n\r\n");
    let v: Value = serde_json::from_slice(&c.response().body).unwrap();
    assert_eq!(v, json!({ "hello": "device", "greeted": 1 }));
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.response().text().contains("<title>wisp</title>"));
}

#[test]
fn echo_greets_then_echoes() {
    let ex = start("echo", &[]);
    let mut ws = Ws::open(ex.addr, "/ws/echo");
    assert!(ws.read_text().starts_with("hello "), "the on_open greeting");
    ws.send_text("ping");
    assert_eq!(ws.read_text(), "ping");
}

#[test]
fn chat_rooms_publish_to_their_members() {
    let ex = start("chat", &[]);
    let mut ann = Ws::open(ex.addr, "/ws/room/kitchen");
    assert_eq!(ann.read_text(), "welcome to kitchen");
    let mut bob = Ws::open(ex.addr, "/ws/room/kitchen");
    assert_eq!(bob.read_text(), "welcome to kitchen");
    assert!(ann.read_text().contains("joined kitchen (2 here)"));
    bob.send_text("hi");
    assert!(ann.read_text().ends_with(": hi"));
    assert!(bob.read_text().ends_with(": hi"));
}

#[test]
fn router_answers_typed_events_with_their_id() {
    let ex = start("router", &[]);
    let mut ws = Ws::open(ex.addr, "/ws/api");
    ws.send_json(&json!({ "event": "add", "a": 1, "b": 2, "id": 7 }));
    assert_eq!(
        ws.read_json(),
        json!({ "event": "sum", "value": 3, "id": 7 })
    );
    ws.send_json(&json!({ "event": "nope" }));
    assert_eq!(ws.read_json()["event"], "error");
}

#[test]
fn telemetry_pushes_readings() {
    let ex = start("telemetry", &[]);
    let mut ws = Ws::open(ex.addr, "/ws/telemetry");
    let reading = ws.read_json();
    assert_eq!(reading["event"], "reading");
    assert_eq!(reading["seq"], 1);
    assert!(reading["temperature"].is_number());
}
