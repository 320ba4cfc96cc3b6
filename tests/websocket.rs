//! WebSockets over real sockets: the opening handshake, frames both ways, every
//! close code the server fails a connection with, the closing handshake, pings,
//! and what a handler sees and sends.
//!
//! The client (`support::ws`) is raw bytes on a `TcpStream`: it masks what it
//! sends with a fresh key per frame and checks that the server never masks.
//! Tests wait for the server's bytes, never for a clock; `IO_TIMEOUT` is only a
//! safety net.

mod support;

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::ws::{
    close_payload, masked_frame, next_mask, upgrade_request, Ws, BINARY, CLOSE, CONTINUATION, PING,
    PONG, RFC_ACCEPT, RFC_KEY, TEXT,
};
use support::{Resp, TestServer, IO_TIMEOUT};
use wisp::{CloseCode, Fragment, Handler, Message, SendStatus, WebSocket, WsError};

// ---------------------------------------------------------------------------
// Handlers

/// What a handler saw, reported to the test as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Error(u16),
    Close(u16, String),
    /// What a send right after `ws.close` returned.
    SendAfterClose(SendStatus),
}

/// Echoes every message; a few text commands make it do something else.
/// Its state counts the `count` commands of its connection.
struct Probe {
    seen: Sender<Seen>,
}

impl Handler for Probe {
    type State = u64;

    fn on_message(&mut self, ws: &mut WebSocket<'_, u64>, msg: Message<'_>) {
        match msg {
            Message::Text("close-4000") => {
                ws.close(CloseCode::new(4000).expect("an application code"), "done");
                let status = ws.send_text("late");
                let _ = self.seen.send(Seen::SendAfterClose(status));
            }
            Message::Text("panic") => panic!("a handler bug, on purpose"),
            Message::Text("blocks") => {
                ws.send_block(true, b"a", true);
                ws.send_block(true, b"b", true);
                ws.send_block(true, b"c", false);
            }
            Message::Text("json") => {
                ws.send_json(&json!({ "answer": 42, "list": [1, "two"] }));
            }
            Message::Text("count") => {
                *ws.state_mut() += 1;
                let n = ws.state().to_string();
                ws.send_text(&n);
            }
            other => {
                ws.send(other);
            }
        }
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, u64>, code: CloseCode, reason: &str) {
        let _ = self
            .seen
            .send(Seen::Close(code.as_u16(), reason.to_string()));
    }

    fn on_error(&mut self, _ws: &mut WebSocket<'_, u64>, err: &WsError) {
        let _ = self.seen.send(Seen::Error(err.close_code().as_u16()));
    }
}

/// Tells the client, in JSON, what it knows about the upgrade request: on open,
/// and again (headers are gone by then) for every message.
struct Info;

impl Handler for Info {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        let v = json!({
            "path": ws.path(),
            "query": ws.query(),
            "x-test": ws.header("x-test"),
            "protocol": ws.protocol(),
        });
        ws.send_json(&v);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, _msg: Message<'_>) {
        let v = json!({ "x-test": ws.header("x-test"), "protocol": ws.protocol() });
        ws.send_json(&v);
    }
}

/// The pieces of the message in progress, as `on_partial` saw them.
#[derive(Default)]
struct Pieces {
    text: Vec<bool>,
    first: Vec<bool>,
    last: Vec<bool>,
    data: Vec<u8>,
}

/// A streaming handler: after each message's last piece it sends a JSON
/// summary of the pieces, then the bytes they added up to.
struct Streamer;

impl Handler for Streamer {
    type State = Pieces;

    fn streaming(&self) -> bool {
        true
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, Pieces>, _msg: Message<'_>) {
        ws.send_text("on_message was called on a streaming handler");
    }

    fn on_partial(&mut self, ws: &mut WebSocket<'_, Pieces>, fragment: Fragment<'_>) {
        let p = ws.state_mut();
        p.text.push(fragment.text);
        p.first.push(fragment.first);
        p.last.push(fragment.last);
        p.data.extend_from_slice(fragment.data);
        if fragment.last {
            let p = std::mem::take(ws.state_mut());
            ws.send_json(&json!({
                "text": p.text,
                "first": p.first,
                "last": p.last,
                "bytes": p.data.len(),
            }));
            ws.send_binary(&p.data);
        }
    }
}

/// A server with `web` settings, `/ws/echo` (Probe), `/ws/info` (Info) and
/// `/ws/stream` (Streamer) on an action route, and files (`/a.txt`) elsewhere.
/// The receiver gets what Probe saw.
fn server_with(web: &str) -> (TestServer, Receiver<Seen>) {
    let routes = "routes: [ { match: '/ws/', handler: 'action' }, { match: '' } ]";
    let body = if web.is_empty() {
        routes.to_string()
    } else {
        format!("{web}, {routes}")
    };
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(
        &body,
        |d| {
            d.write("a.txt", "A");
        },
        move |srv| {
            srv.websocket("/ws/echo", Probe { seen: tx });
            srv.websocket("/ws/info", Info);
            srv.websocket("/ws/stream", Streamer);
        },
    );
    (s, rx)
}

fn server() -> (TestServer, Receiver<Seen>) {
    server_with("")
}

/// The next thing the Probe handler reports.
fn next_seen(seen: &Receiver<Seen>) -> Seen {
    seen.recv_timeout(IO_TIMEOUT)
        .expect("the handler reported nothing")
}

// ---------------------------------------------------------------------------
// Failures the tests expect

/// Sends `bytes` on a fresh `/ws/echo` connection and expects the server to
/// fail it with `code`: a close frame, the TCP connection closed, and the
/// handler told through `on_error` and then `on_close`.
fn fails_with(s: &TestServer, seen: &Receiver<Seen>, bytes: &[u8], code: u16) {
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_raw(bytes);
    ws.expect_close(code);
    assert_eq!(next_seen(seen), Seen::Error(code));
    match next_seen(seen) {
        Seen::Close(c, _) => assert_eq!(c, code),
        other => panic!("expected on_close, got {other:?}"),
    }
}

/// Sends `request`, expects `status`, no upgrade, and the connection closed.
fn refused(s: &TestServer, request: &str, status: u16) -> Resp {
    let mut c = s.client();
    c.send(request.as_bytes());
    let r = c.response();
    assert_eq!(r.status, status, "{request:?} -> {}", r.text());
    assert_eq!(r.header("sec-websocket-accept"), None);
    assert!(c.is_closed(), "a refused upgrade closes the connection");
    r
}

// ---------------------------------------------------------------------------
// The opening handshake

#[test]
fn rfc_example_key_is_upgraded_with_the_rfc_accept_value() {
    let (s, _) = server();
    let (r, mut ws) = Ws::open_with(s.addr, "/ws/echo", "");
    assert_eq!(r.header("sec-websocket-accept"), Some(RFC_ACCEPT));
    assert!(r
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(r.header("sec-websocket-protocol"), None);
    ws.send_text("hello");
    ws.expect_text("hello");
}

#[test]
fn upgrade_and_connection_are_matched_as_token_lists_in_any_case() {
    let (s, _) = server();
    let request = upgrade_request("/ws/echo", "")
        .replace("Upgrade: websocket", "Upgrade: WebSocket")
        .replace("Connection: Upgrade", "Connection: keep-alive, Upgrade");
    let (r, mut ws) = Ws::handshake(s.addr, request.as_bytes());
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept"), Some(RFC_ACCEPT));
    ws.send_text("tokens");
    ws.expect_text("tokens");
}

#[test]
fn missing_or_malformed_key_is_400() {
    let (s, _) = server();
    let good = upgrade_request("/ws/echo", "");
    refused(
        &s,
        &good.replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
        400,
    );
    // 15 and 19 bytes, base64-encoded.
    for key in ["MDEyMzQ1Njc4OWFiY2Rl", "dGhlIHNhbXBsZSBub25jZXh4eA=="] {
        refused(&s, &good.replace(RFC_KEY, key), 400);
    }
}

#[test]
fn version_8_is_426_naming_13_and_a_missing_version_is_400() {
    let (s, _) = server();
    let good = upgrade_request("/ws/echo", "");
    let r = refused(&s, &good.replace("Version: 13", "Version: 8"), 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    refused(&s, &good.replace("Sec-WebSocket-Version: 13\r\n", ""), 400);
}

#[test]
fn plain_get_on_a_websocket_path_is_426() {
    let (s, _) = server();
    let r = refused(&s, "GET /ws/echo HTTP/1.1\r\nHost: t\r\n\r\n", 426);
    assert!(r
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
}

#[test]
fn post_upgrade_is_405_allowing_get() {
    let (s, _) = server();
    let request = upgrade_request("/ws/echo", "Content-Length: 0\r\n").replace("GET ", "POST ");
    let r = refused(&s, &request, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn upgrade_request_to_a_file_route_is_answered_as_http() {
    let (s, _) = server();
    let mut c = s.client();
    c.send(upgrade_request("/a.txt", "").as_bytes());
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "A"));
    assert_eq!(r.header("sec-websocket-accept"), None);
    c.send(upgrade_request("/missing.txt", "").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("sec-websocket-accept"), None);
}

// ---------------------------------------------------------------------------
// Subprotocols

fn protocol_server() -> TestServer {
    server_with("webSockets: { protocol: ['chat', 'json'] }").0
}

#[test]
fn offered_subprotocol_the_server_speaks_is_chosen_and_seen_by_the_handler() {
    let s = protocol_server();
    let (r, mut ws) = Ws::open_with(s.addr, "/ws/info", "Sec-WebSocket-Protocol: mqtt, json\r\n");
    assert_eq!(r.header("sec-websocket-protocol"), Some("json"));
    assert_eq!(ws.read_json()["protocol"], "json");
    ws.send_text("again");
    assert_eq!(ws.read_json()["protocol"], "json");
}

#[test]
fn no_subprotocol_offered_means_no_protocol_header() {
    let s = protocol_server();
    let (r, mut ws) = Ws::open_with(s.addr, "/ws/info", "");
    assert_eq!(r.header("sec-websocket-protocol"), None);
    assert_eq!(ws.read_json()["protocol"], Value::Null);
}

#[test]
fn only_unsupported_subprotocols_offered_is_400() {
    let s = protocol_server();
    let request = upgrade_request("/ws/info", "Sec-WebSocket-Protocol: mqtt, v2.chat\r\n");
    refused(&s, &request, 400);
}

#[test]
fn more_than_ten_subprotocols_offered_is_400() {
    let s = protocol_server();
    // Ten unknown ones and one the server speaks: the count alone refuses it.
    let many: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let offer = format!("Sec-WebSocket-Protocol: {}, json\r\n", many.join(", "));
    refused(&s, &upgrade_request("/ws/info", &offer), 400);
    // Ten, the one it speaks among them, is fine.
    let offer = format!("Sec-WebSocket-Protocol: {}, json\r\n", many[..9].join(", "));
    let (r, _ws) = Ws::open_with(s.addr, "/ws/info", &offer);
    assert_eq!(r.header("sec-websocket-protocol"), Some("json"));
}

// ---------------------------------------------------------------------------
// Frames and messages

#[test]
fn frames_in_the_same_write_as_the_upgrade_head_are_not_lost() {
    let (s, _) = server();
    let mut bytes = upgrade_request("/ws/echo", "").into_bytes();
    bytes.extend(masked_frame(0x81, b"early bird"));
    bytes.extend(masked_frame(0x82, &[1, 2, 3]));
    let (r, mut ws) = Ws::handshake(s.addr, &bytes);
    assert_eq!(r.status, 101);
    ws.expect_text("early bird");
    ws.expect_message(BINARY, &[1, 2, 3]);
}

#[test]
fn text_and_binary_messages_are_echoed() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("hello, κόσμε");
    ws.expect_text("hello, κόσμε");
    let bytes: Vec<u8> = (0..=255).collect();
    ws.send_frame(true, BINARY, &bytes);
    ws.expect_message(BINARY, &bytes);
}

#[test]
fn empty_messages_are_echoed() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_frame(true, TEXT, b"");
    ws.expect_message(TEXT, b"");
    ws.send_frame(true, BINARY, b"");
    ws.expect_message(BINARY, b"");
    // An empty message made of an empty fragment and an empty continuation.
    ws.send_frame(false, TEXT, b"");
    ws.send_frame(true, CONTINUATION, b"");
    ws.expect_message(TEXT, b"");
}

#[test]
fn payloads_of_every_length_encoding_are_echoed_in_the_shortest_form() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    for (len, header) in [(125, 2), (126, 4), (65535, 4), (65536, 10)] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        ws.send_frame(true, BINARY, &payload);
        ws.expect_message(BINARY, &payload);
        assert_eq!(ws.last_header_len, header, "header length for {len} bytes");
    }
}

#[test]
fn a_ping_between_fragments_is_answered_before_the_reassembled_message() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_frame(false, TEXT, b"Hel");
    ws.send_frame(true, PING, b"are you there?");
    ws.send_frame(false, CONTINUATION, b"lo, ");
    ws.send_frame(true, CONTINUATION, b"world");
    ws.expect_message(PONG, b"are you there?");
    ws.expect_text("Hello, world");
}

#[test]
fn frames_dribbled_one_byte_per_write_are_reassembled() {
    let (s, seen) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.stream.set_nodelay(true).unwrap();
    let long: Vec<u8> = (0..300).map(|i| (i % 256) as u8).collect();
    let bytes = [
        masked_frame(0x80 | TEXT, "slow κόσμε".as_bytes()),
        masked_frame(0x80 | PING, b"p"),
        masked_frame(0x80 | BINARY, &long),
    ]
    .concat();
    for b in bytes {
        ws.send_raw(&[b]);
    }
    ws.expect_text("slow κόσμε");
    ws.expect_message(PONG, b"p");
    ws.expect_message(BINARY, &long);
    for b in masked_frame(0x80 | CLOSE, &close_payload(1000, b"slow bye")) {
        ws.send_raw(&[b]);
    }
    ws.expect_close(1000);
    assert_eq!(next_seen(&seen), Seen::Close(1000, "slow bye".to_string()));
}

#[test]
fn with_validate_utf_off_invalid_text_reaches_the_handler_repaired() {
    let (s, seen) = server_with("webSockets: { validateUTF: false }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_frame(true, TEXT, b"bad \xff byte");
    ws.expect_text("bad \u{fffd} byte");
    // Close reasons are still checked.
    let frame = masked_frame(0x80 | CLOSE, &close_payload(1000, b"\xff"));
    ws.send_raw(&frame);
    ws.expect_close(1007);
    assert_eq!(next_seen(&seen), Seen::Error(1007));
}

#[test]
fn a_character_split_across_fragments_is_valid_text() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    // κ is CE BA.
    ws.send_frame(false, TEXT, b"\xce");
    ws.send_frame(true, CONTINUATION, b"\xba");
    ws.expect_text("κ");
}

// ---------------------------------------------------------------------------
// Protocol violations and their close codes

#[test]
fn unmasked_frame_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &[0x81, 0x02, b'h', b'i'], 1002);
}

#[test]
fn reserved_bit_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &masked_frame(0x80 | 0x40 | TEXT, b"rsv1"), 1002);
}

#[test]
fn unknown_opcode_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &masked_frame(0x80 | 0x3, b"three"), 1002);
}

#[test]
fn control_frame_of_126_bytes_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &masked_frame(0x80 | PING, &[b'p'; 126]), 1002);
}

#[test]
fn fragmented_ping_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &masked_frame(PING, b"half"), 1002);
}

#[test]
fn continuation_with_no_message_started_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(
        &s,
        &seen,
        &masked_frame(0x80 | CONTINUATION, b"orphan"),
        1002,
    );
}

#[test]
fn new_data_frame_inside_a_fragmented_message_is_failed_with_1002() {
    let (s, seen) = server();
    let bytes = [
        masked_frame(TEXT, b"start"),
        masked_frame(0x80 | TEXT, b"again"),
    ]
    .concat();
    fails_with(&s, &seen, &bytes, 1002);
}

#[test]
fn length_with_its_top_bit_set_is_failed_with_1002() {
    let (s, seen) = server();
    let mut header = vec![0x80 | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    header.extend_from_slice(&next_mask());
    fails_with(&s, &seen, &header, 1002);
}

#[test]
fn frame_over_max_frame_is_failed_with_1009_from_its_header_alone() {
    let (s, seen) = server_with("limits: { maxFrame: '1K' }");
    let frame = masked_frame(0x80 | BINARY, &[0; 1025]);
    // Header only: 2 bytes, a 16-bit length and the key. The payload never comes.
    fails_with(&s, &seen, &frame[..8], 1009);
}

#[test]
fn message_over_max_message_is_failed_with_1009() {
    let (s, seen) = server_with("limits: { maxFrame: '1K', maxMessage: '2K' }");
    let k = vec![b'k'; 1024];
    // Exactly 2K in two frames is fine.
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_frame(false, BINARY, &k);
    ws.send_frame(true, CONTINUATION, &k);
    ws.expect_message(BINARY, &[k.clone(), k.clone()].concat());
    drop(ws);
    assert!(matches!(next_seen(&seen), Seen::Close(1006, _)));
    // A third frame's header makes it 3K.
    let bytes = [
        masked_frame(BINARY, &k),
        masked_frame(CONTINUATION, &k),
        masked_frame(0x80 | CONTINUATION, &k),
    ]
    .concat();
    fails_with(&s, &seen, &bytes, 1009);
}

#[test]
fn invalid_utf8_text_is_failed_with_1007() {
    let (s, seen) = server();
    fails_with(
        &s,
        &seen,
        &masked_frame(0x80 | TEXT, b"bad \xff byte"),
        1007,
    );
}

#[test]
fn invalid_utf8_split_across_fragments_is_failed_with_1007() {
    let (s, seen) = server();
    // F4 starts a valid four-byte sequence; F4 90 would be above U+10FFFF.
    let bytes = [
        masked_frame(TEXT, b"ok \xf4"),
        masked_frame(0x80 | CONTINUATION, b"\x90\x80\x80"),
    ]
    .concat();
    fails_with(&s, &seen, &bytes, 1007);
}

#[test]
fn invalid_utf8_fails_as_soon_as_the_bad_byte_arrives() {
    let (s, seen) = server();
    let mut payload = b"123456789\xff".to_vec();
    payload.resize(100, b'x');
    let frame = masked_frame(0x80 | TEXT, &payload);
    // The 6-byte header declares 100 bytes; only the first 10 are sent.
    fails_with(&s, &seen, &frame[..6 + 10], 1007);
}

#[test]
fn one_byte_close_payload_is_failed_with_1002() {
    let (s, seen) = server();
    fails_with(&s, &seen, &masked_frame(0x80 | CLOSE, &[0x03]), 1002);
}

#[test]
fn close_codes_a_peer_may_not_send_are_failed_with_1002() {
    let (s, seen) = server();
    for code in [1005, 999, 2000] {
        let frame = masked_frame(0x80 | CLOSE, &close_payload(code, b""));
        fails_with(&s, &seen, &frame, 1002);
    }
}

#[test]
fn close_reason_that_is_not_utf8_is_failed_with_1007() {
    let (s, seen) = server();
    let frame = masked_frame(0x80 | CLOSE, &close_payload(1000, b"bye \xff"));
    fails_with(&s, &seen, &frame, 1007);
}

// ---------------------------------------------------------------------------
// The closing handshake

#[test]
fn client_close_is_echoed_then_tcp_closes_and_on_close_sees_code_and_reason() {
    let (s, seen) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_close(1000, "bye");
    ws.expect_close(1000);
    assert_eq!(next_seen(&seen), Seen::Close(1000, "bye".to_string()));
}

#[test]
fn client_close_without_a_code_is_echoed_without_one_and_reported_as_1005() {
    let (s, seen) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_frame(true, CLOSE, b"");
    ws.expect_frame(true, CLOSE, b"");
    ws.expect_eof();
    assert_eq!(next_seen(&seen), Seen::Close(1005, String::new()));
}

#[test]
fn handler_close_is_the_last_frame_and_the_server_waits_for_the_client_close() {
    let (s, seen) = server_with("webSockets: { closeTimeout: '1 min' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("close-4000");
    assert_eq!(ws.read_close(), (4000, "done".to_string()));
    assert_eq!(next_seen(&seen), Seen::SendAfterClose(SendStatus::Closed));
    // Keep talking: no echo, no pong, no second close comes back.
    ws.send_text("still there?");
    ws.send_frame(true, PING, b"ping");
    ws.send_close(1000, "ok");
    ws.expect_eof();
    // on_close got the client's close: the server did wait for it.
    assert_eq!(next_seen(&seen), Seen::Close(1000, "ok".to_string()));
}

#[test]
fn handler_close_unanswered_is_dropped_after_close_timeout_with_1006() {
    let (s, seen) = server_with("webSockets: { closeTimeout: '300 ms' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let start = Instant::now();
    ws.send_text("close-4000");
    assert_eq!(ws.read_close().0, 4000);
    ws.expect_eof();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "not before closeTimeout"
    );
    assert_eq!(next_seen(&seen), Seen::SendAfterClose(SendStatus::Closed));
    assert!(matches!(next_seen(&seen), Seen::Close(1006, _)));
}

#[test]
fn dropping_tcp_without_a_close_frame_reports_1006() {
    let (s, seen) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("hi");
    ws.expect_text("hi");
    drop(ws);
    assert!(matches!(next_seen(&seen), Seen::Close(1006, _)));
}

#[test]
fn stopping_the_server_closes_open_websockets_with_1001_and_calls_on_close_once() {
    let (s, seen) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("hi");
    ws.expect_text("hi");
    // Stops the server and joins its thread (in the background: the server
    // waits for this client's answer to its close before it returns).
    let stopping = std::thread::spawn(move || drop(s));
    let (code, _) = ws.read_close();
    assert_eq!(code, 1001);
    ws.send_close(1001, "");
    ws.expect_eof();
    stopping.join().unwrap();
    match seen.recv_timeout(IO_TIMEOUT) {
        Ok(Seen::Close(code, _)) => assert_eq!(code, 1001),
        other => panic!("on_close was not called when the server stopped: {other:?}"),
    }
    assert!(seen.try_recv().is_err(), "on_close is called once");
}

#[test]
fn stopping_the_server_drops_a_peer_that_never_answers_its_close_with_1006() {
    let (s, seen) = server_with("timeouts: { shutdown: '300 ms' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("hi");
    ws.expect_text("hi");
    let start = Instant::now();
    drop(s);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "it waited for the peer"
    );
    ws.expect_close(1001);
    match seen.recv_timeout(IO_TIMEOUT) {
        Ok(Seen::Close(code, _)) => assert_eq!(code, 1006),
        other => panic!("on_close was not called when the server stopped: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Pings from the server and idle connections

#[test]
fn server_pings_a_client_that_sends_nothing() {
    let (s, _) = server_with("webSockets: { ping: '200 ms' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let f = ws.read_frame();
    assert_eq!((f.fin, f.opcode), (true, PING));
    assert!(f.payload.len() <= 125);
}

#[test]
fn client_that_answers_pings_stays_open_past_the_inactivity_timeout() {
    let (s, _) = server_with("timeouts: { inactivity: '500 ms' }, webSockets: { ping: '100 ms' }");
    let start = Instant::now();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    for _ in 0..8 {
        let f = ws.read_frame();
        assert_eq!((f.fin, f.opcode), (true, PING), "only pings while idle");
        ws.send_frame(true, PONG, &f.payload);
    }
    assert!(
        start.elapsed() > Duration::from_millis(500),
        "past inactivity"
    );
    ws.send_text("still here");
    loop {
        let f = ws.read_frame();
        if f.opcode == PING {
            ws.send_frame(true, PONG, &f.payload);
            continue;
        }
        assert_eq!(
            (f.fin, f.opcode, f.payload.as_slice()),
            (true, TEXT, &b"still here"[..])
        );
        break;
    }
}

/// Every message moves the idle deadline later (without pings to re-arm it);
/// the armed wake-up, when it comes early, finds the later one.
#[test]
fn messages_keep_a_websocket_open_past_the_inactivity_timeout_then_quiet_closes_it() {
    let (s, seen) = server_with("timeouts: { inactivity: '1 sec' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let start = Instant::now();
    // Read before each send, so surely before the server reads the message and
    // moves its idle deadline (it reads its clock after its poll returns).
    let mut last_sent = start;
    // Pacing, not synchronisation: each echo is awaited before the next.
    while start.elapsed() < Duration::from_millis(2500) {
        last_sent = Instant::now();
        ws.send_text("tick");
        ws.expect_text("tick");
        std::thread::sleep(Duration::from_millis(100));
    }
    let f = ws.read_frame();
    assert_eq!(
        (f.opcode, f.code_and_reason().0),
        (CLOSE, 1001),
        "closed as idle"
    );
    assert!(
        last_sent.elapsed() >= Duration::from_secs(1),
        "not before a whole quiet second after the last message"
    );
    assert!(matches!(next_seen(&seen), Seen::Close(1001, _)));
}

#[test]
fn client_that_never_answers_pings_is_closed_with_1001() {
    let (s, seen) =
        server_with("timeouts: { inactivity: '400 ms' }, webSockets: { ping: '100 ms' }");
    let start = Instant::now();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let mut pings = 0;
    let (code, _) = loop {
        let f = ws.read_frame();
        if f.opcode == PING {
            assert!(f.fin);
            pings += 1;
            continue;
        }
        break f.code_and_reason();
    };
    assert_eq!(code, 1001);
    ws.expect_eof();
    assert!(pings >= 1, "pinged before giving up");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "not before inactivity"
    );
    assert!(matches!(next_seen(&seen), Seen::Close(1001, _)));
}

// ---------------------------------------------------------------------------
// Streaming handlers

#[test]
fn streaming_handler_gets_pieces_with_first_and_last_marked() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/stream");
    let parts: [&[u8]; 3] = [b"one-", b"two-", b"three"];
    let bytes = [
        masked_frame(BINARY, parts[0]),
        masked_frame(CONTINUATION, parts[1]),
        masked_frame(0x80 | CONTINUATION, parts[2]),
    ]
    .concat();
    ws.send_raw(&bytes);
    let summary = ws.read_json();
    let first: Vec<bool> = serde_json::from_value(summary["first"].clone()).unwrap();
    let last: Vec<bool> = serde_json::from_value(summary["last"].clone()).unwrap();
    let text: Vec<bool> = serde_json::from_value(summary["text"].clone()).unwrap();
    // Every frame gives at least one piece; a read may split a frame into more.
    let n = first.len();
    assert!(n >= 3, "{summary}");
    assert!(first[0] && !first[1..].iter().any(|&f| f), "{summary}");
    assert!(
        last[n - 1] && !last[..n - 1].iter().any(|&l| l),
        "{summary}"
    );
    assert!(text.iter().all(|&t| !t), "binary pieces: {summary}");
    ws.expect_message(BINARY, &parts.concat());
}

#[test]
fn streamed_messages_are_not_bound_by_max_message() {
    let (s, _) = server_with("limits: { maxFrame: '1K', maxMessage: '1K' }");
    let mut ws = Ws::open(s.addr, "/ws/stream");
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 1024]).collect();
    for (i, f) in frames.iter().enumerate() {
        let opcode = if i == 0 { BINARY } else { CONTINUATION };
        ws.send_frame(i == 4, opcode, f);
    }
    let summary = ws.read_json();
    assert_eq!(summary["bytes"], 5 * 1024, "{summary}");
    ws.expect_message(BINARY, &frames.concat());
}

// ---------------------------------------------------------------------------
// Handler failures and the rest of the API

#[test]
fn a_panicking_handler_closes_only_its_connection_with_1011() {
    let (s, seen) = server();
    let mut other = Ws::open(s.addr, "/ws/echo");
    other.send_text("before");
    other.expect_text("before");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("panic");
    ws.expect_close(1011);
    assert!(matches!(next_seen(&seen), Seen::Close(1011, _)));
    other.send_text("after");
    other.expect_text("after");
    assert_eq!(s.get("/a.txt").text(), "A");
    let mut fresh = Ws::open(s.addr, "/ws/echo");
    fresh.send_text("new");
    fresh.expect_text("new");
}

#[test]
fn send_block_spreads_one_message_over_text_and_continuation_frames() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("blocks");
    ws.expect_frame(false, TEXT, b"a");
    ws.expect_frame(false, CONTINUATION, b"b");
    ws.expect_frame(true, CONTINUATION, b"c");
    // The block message is finished: whole messages go out again.
    ws.send_text("after");
    ws.expect_text("after");
}

#[test]
fn send_json_sends_a_text_frame_with_the_json() {
    let (s, _) = server();
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("json");
    assert_eq!(ws.read_json(), json!({ "answer": 42, "list": [1, "two"] }));
}

#[test]
fn on_open_sees_the_path_query_and_headers_of_the_upgrade_request() {
    let (s, _) = server();
    let (_, mut ws) = Ws::open_with(
        s.addr,
        "/ws/info?a=1&b=two%20words",
        "X-Test: hello there\r\n",
    );
    let v = ws.read_json();
    assert_eq!(v["path"], "/ws/info");
    assert_eq!(v["query"], "a=1&b=two%20words");
    assert_eq!(v["x-test"], "hello there");
    assert_eq!(v["protocol"], Value::Null);
    // Headers are readable in on_open only.
    ws.send_text("later");
    assert_eq!(ws.read_json()["x-test"], Value::Null);
}

#[test]
fn many_sequential_connections_leave_the_server_healthy_with_fresh_state_each() {
    let (s, seen) = server();
    for _ in 0..200 {
        let mut ws = Ws::open(s.addr, "/ws/echo");
        ws.send_text("count");
        ws.expect_text("1");
        ws.send_text("count");
        ws.expect_text("2");
        ws.send_close(1000, "");
        ws.expect_close(1000);
        assert_eq!(next_seen(&seen), Seen::Close(1000, String::new()));
    }
    assert_eq!(s.get("/a.txt").text(), "A");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("count");
    ws.expect_text("1");
}
