//! A WebSocket client that half-closes (a TCP FIN after its last message,
//! no close frame, still reading): what `scripts/soak --faults` found.
//!
//! Straight to the server, every echo of what the client sent still comes
//! back, then the server closes. Through the gateway (`handler: 'proxy'`)
//! the FIN is taken for a client gone (README "Gateway": "the client
//! vanishes → the downstream gets 1001"): the client's connection ends once
//! what the gateway holds for it is written, so echoes still on their way
//! back from the downstream may be lost — but what does arrive is whole
//! and in order.

mod support;

use std::time::Duration;

use support::ws::Ws;
use support::{read_until_close, TestServer};
use wisp::{Handler, Message, WebSocket};

/// Sends every text message back.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            ws.send_text(text);
        }
    }
}

const MESSAGES: usize = 50;

fn echo_server() -> TestServer {
    TestServer::start(
        "routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket("/ws/echo", Echo);
        },
    )
}

/// Sends `MESSAGES` texts, half-closes, and reads to the end: returns how
/// many echoes came back, checking each is whole and in order.
fn half_close(addr: std::net::SocketAddr, target: &str) -> usize {
    let mut ws = Ws::open(addr, target);
    for i in 0..MESSAGES {
        ws.send_text(&format!("message {i} {}", "x".repeat(i * 37)));
    }
    ws.shutdown_write();
    let reply = read_until_close(&ws.stream, Duration::from_secs(10));
    assert!(!reply.hung, "{target}: the server never closed");
    // Each echo is an unmasked text frame: 0x81, a length, the text.
    let mut rest = &reply.bytes[..];
    let mut echoes = 0;
    while !rest.is_empty() {
        let (len, at) = match rest.get(1) {
            Some(126) => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            Some(&n) if n < 126 => (n as usize, 2),
            _ => panic!("{target}: not a text frame after {echoes} echoes: {rest:?}"),
        };
        if rest[0] == 0x88 {
            // A close frame ends what the gateway passes on.
            break;
        }
        let want = format!("message {echoes} {}", "x".repeat(echoes * 37));
        assert_eq!(rest[0], 0x81, "{target}: echo {echoes}");
        assert_eq!(
            &rest[at..at + len],
            want.as_bytes(),
            "{target}: echo {echoes}"
        );
        rest = &rest[at + len..];
        echoes += 1;
    }
    assert!(echoes <= MESSAGES);
    echoes
}

#[test]
fn a_half_closed_websocket_still_gets_every_echo() {
    let s = echo_server();
    assert_eq!(half_close(s.addr, "/ws/echo"), MESSAGES);
}

#[test]
fn a_half_closed_websocket_through_the_gateway_gets_an_intact_prefix_then_the_end() {
    let down = echo_server();
    let gw = TestServer::start(
        &format!(
            "routes: [ {{ match: '/gateway/', handler: 'proxy', proxy: {{
                 downstream: '/ws/{{catchAll}}', scheme: 'ws', hosts: ['{}'] }} }} ]",
            down.addr
        ),
        |_| {},
        |_| {},
    );
    half_close(gw.addr, "/gateway/echo");
    // The downstream was told the client is gone, and let go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while down.handle.stats().unwrap().websockets_open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the downstream leg stayed open"
        );
        std::thread::yield_now();
    }
}
