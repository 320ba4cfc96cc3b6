//! The hub over real sockets: sending by id, broadcasts, state filters, rooms
//! and their limits, stale ids, closing another connection, the upgrade hook,
//! subprotocol-selected handlers, timers, the `ServerHandle` from another
//! thread, the counters, and the shipped binary's `/ws/chat` protocol.
//!
//! Clients are raw bytes on a `TcpStream` (`support::ws`). "Nothing else
//! arrived" is shown by a later round trip whose answer comes first; timers
//! are ordered against other timers of the same server, never against a
//! clock in the test. `IO_TIMEOUT` is only a safety net.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::binary::{start_command, Running};
use support::ws::{Ws, CONTINUATION, TEXT};
use support::{TestServer, IO_TIMEOUT};
use wisp::{
    CloseCode, ConnId, Handler, Message, Request, Response, ServerHandle, TimerId, Upgrade,
    WebSocket,
};

/// Every test server routes `/ws/` to the registered handlers.
const WS_ROUTES: &str = "routes: [ { match: '/ws/', handler: 'action' } ]";

/// A query parameter of a plain `a=1&b=2` query (no decoding).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

// ---------------------------------------------------------------------------
// Named: connections that know each other by the name in their query

/// Each connection is named by `?name=…`; text commands exercise the hub:
///
/// - `to:NAME:TEXT` sends `ME: TEXT` to NAME with `send_to` (the status is
///   answered unless it is `Queued`; `unknown NAME` if nobody had that name);
/// - `echo:TEXT` answers TEXT;
/// - `others:TEXT` / `all:TEXT` / `route:TEXT` broadcast TEXT excluding the
///   sender / to everyone / to this handler's connections;
/// - `join:R`, `leave:R`, `pub:R:TEXT` (publish, `except = None`),
///   `pubx:R:TEXT` (publish, `except` = the sender), `members:R`, `rooms`;
/// - `close:NAME:CODE:REASON` closes NAME through the hub.
///
/// On close it tells each of its rooms `NAME left ROOM`.
#[derive(Default)]
struct Named {
    ids: HashMap<String, ConnId>,
    names: HashMap<ConnId, String>,
    /// Told (name, id) of every connection that opens.
    opened: Option<Sender<(String, ConnId)>>,
}

impl Handler for Named {
    type State = String;

    fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
        let name = param(ws.query(), "name").unwrap_or("nobody").to_string();
        self.ids.insert(name.clone(), ws.id());
        self.names.insert(ws.id(), name.clone());
        if let Some(tx) = &self.opened {
            let _ = tx.send((name.clone(), ws.id()));
        }
        ws.send_text(&format!("hello {name}"));
        *ws.state_mut() = name;
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            ws.send_text("binary?");
            return;
        };
        let (command, rest) = text.split_once(':').unwrap_or((text, ""));
        let me = ws.id();
        let reply = match command {
            "to" => {
                let (to, body) = rest.split_once(':').unwrap_or((rest, ""));
                match self.ids.get(to) {
                    None => Some(format!("unknown {to}")),
                    Some(&id) => {
                        let line = format!("{}: {body}", ws.state());
                        match ws.send_to(id, Message::Text(&line)) {
                            wisp::SendStatus::Queued => None,
                            other => Some(format!("{other:?}")),
                        }
                    }
                }
            }
            "echo" => Some(rest.to_string()),
            "others" => {
                ws.broadcast(Message::Text(rest), Some(me));
                None
            }
            "all" => {
                ws.broadcast(Message::Text(rest), None);
                None
            }
            "route" => {
                ws.broadcast_route(Message::Text(rest), None);
                None
            }
            "join" => Some(match ws.join(rest) {
                Ok(()) => format!("joined {rest}"),
                Err(e) => format!("error: {e}"),
            }),
            "leave" => Some(format!("left {rest}: {}", ws.leave(rest))),
            "pub" | "pubx" => {
                let (room, body) = rest.split_once(':').unwrap_or((rest, ""));
                let except = (command == "pubx").then_some(me);
                let n = ws.publish(room, Message::Text(body), except);
                Some(format!("published to {n}"))
            }
            "members" => {
                let names: BTreeSet<&str> = ws
                    .members(rest)
                    .filter_map(|id| self.names.get(&id).map(String::as_str))
                    .collect();
                let names: Vec<&str> = names.into_iter().collect();
                Some(format!(
                    "{rest}: {} ({}) mine={}",
                    names.join(","),
                    ws.room_size(rest),
                    ws.in_room(rest)
                ))
            }
            "rooms" => {
                let mut rooms: Vec<&str> = ws.rooms().collect();
                rooms.sort_unstable();
                Some(rooms.join(","))
            }
            "close" => {
                let mut parts = rest.splitn(3, ':');
                let (to, code, reason) = (
                    parts.next().unwrap_or(""),
                    parts
                        .next()
                        .and_then(|c| c.parse().ok())
                        .and_then(CloseCode::new)
                        .unwrap_or(CloseCode::NORMAL),
                    parts.next().unwrap_or(""),
                );
                Some(match self.ids.get(to) {
                    Some(&id) => format!("{:?}", ws.hub().close(id, code, reason)),
                    None => format!("unknown {to}"),
                })
            }
            _ => Some(format!("unknown command {text:?}")),
        };
        if let Some(reply) = reply {
            ws.send_text(&reply);
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, String>, _code: CloseCode, _reason: &str) {
        let rooms: Vec<String> = ws.rooms().map(str::to_string).collect();
        for room in rooms {
            let notice = format!("{} left {room}", ws.state());
            ws.publish(&room, Message::Text(&notice), None);
        }
    }
}

/// A server with `Named` on `/ws/named` and a second `Named` on `/ws/other`,
/// with `extra` config keys.
fn named_server(extra: &str) -> TestServer {
    TestServer::start(
        &web(extra),
        |_| {},
        |srv| {
            srv.websocket("/ws/named", Named::default());
            srv.websocket("/ws/other", Named::default());
        },
    )
}

/// The inside of `web: { … }`: the WebSocket route plus `extra` keys.
fn web(extra: &str) -> String {
    if extra.is_empty() {
        WS_ROUTES.to_string()
    } else {
        format!("{extra}, {WS_ROUTES}")
    }
}

/// Opens `path?name=NAME` and reads its greeting.
fn named(addr: SocketAddr, path: &str, name: &str) -> Ws {
    let mut ws = Ws::open(addr, &format!("{path}?name={name}"));
    ws.expect_text(&format!("hello {name}"));
    ws
}

/// Sends a command and expects one answer.
fn ask(ws: &mut Ws, command: &str, answer: &str) {
    ws.send_text(command);
    ws.expect_text(answer);
}

/// Shows that nothing is waiting for `ws`: an echo comes back as the very next frame.
fn nothing_pending(ws: &mut Ws) {
    ask(ws, "echo:nothing before this", "nothing before this");
}

// ---------------------------------------------------------------------------
// 1. Send to one connection by id

#[test]
fn send_to_delivers_to_that_connection_only() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");
    ann.send_text("to:bob:hi");
    bob.expect_text("ann: hi");
    nothing_pending(&mut ann);
    nothing_pending(&mut cat);
    // To itself by id works like a plain send.
    ask(&mut ann, "to:ann:me", "ann: me");
    ask(&mut ann, "to:zed:hi", "unknown zed");
    nothing_pending(&mut bob);
}

// ---------------------------------------------------------------------------
// 2. Broadcasts

#[test]
fn broadcast_except_sender_reaches_everyone_else_and_none_reaches_the_sender_too() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");
    let mut dan = named(s.addr, "/ws/other", "dan");

    ann.send_text("others:one");
    for ws in [&mut bob, &mut cat, &mut dan] {
        ws.expect_text("one");
    }
    nothing_pending(&mut ann);

    ann.send_text("all:two");
    for ws in [&mut ann, &mut bob, &mut cat, &mut dan] {
        ws.expect_text("two");
    }
    for ws in [&mut ann, &mut bob, &mut cat, &mut dan] {
        nothing_pending(ws);
    }
}

#[test]
fn broadcast_route_reaches_only_the_connections_of_the_same_handler() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut dan = named(s.addr, "/ws/other", "dan");
    let mut eve = named(s.addr, "/ws/other", "eve");

    ann.send_text("route:named only");
    ann.expect_text("named only");
    bob.expect_text("named only");
    nothing_pending(&mut dan);
    nothing_pending(&mut eve);

    dan.send_text("route:other only");
    dan.expect_text("other only");
    eve.expect_text("other only");
    nothing_pending(&mut ann);
    nothing_pending(&mut bob);
}

// ---------------------------------------------------------------------------
// 3. send_where

/// State: the level from `?level=N`, set by the upgrade hook.
///
/// - `where:MIN:TEXT` sends TEXT with `WebSocket::send_where` to the others of level ≥ MIN;
/// - `hub-where:MIN:TEXT` the same through `Hub::send_where` (the sender included);
/// - `echo:TEXT`.
struct Level;

impl Handler for Level {
    type State = u32;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<u32> {
        let level = req
            .query_param("level")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        Upgrade::Accept(level)
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, u32>) {
        let text = format!("level {}", ws.state());
        ws.send_text(&text);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, u32>, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let mut parts = text.splitn(3, ':');
        let (command, a, b) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let min: u32 = a.parse().unwrap_or(0);
        match command {
            "where" => ws.send_where::<u32>(Message::Text(b), move |_, &level| level >= min),
            "hub-where" => ws
                .hub()
                .send_where::<u32>(Message::Text(b), move |_, &level| level >= min),
            "echo" => {
                ws.send_text(a);
            }
            _ => {
                ws.send_text("unknown command");
            }
        }
    }
}

fn level(addr: SocketAddr, n: u32) -> Ws {
    let mut ws = Ws::open(addr, &format!("/ws/level?level={n}"));
    ws.expect_text(&format!("level {n}"));
    ws
}

#[test]
fn send_where_reaches_only_connections_whose_state_passes_the_filter() {
    let s = TestServer::start(
        &web(""),
        |_| {},
        |srv| {
            srv.websocket("/ws/level", Level);
            srv.websocket("/ws/named", Named::default());
        },
    );
    let mut l1 = level(s.addr, 1);
    let mut l5 = level(s.addr, 5);
    let mut l9 = level(s.addr, 9);
    let mut l7 = level(s.addr, 7);
    // Another handler's state is a String: it never passes a u32 filter.
    let mut ann = named(s.addr, "/ws/named", "ann");

    l7.send_text("where:5:high");
    l5.expect_text("high");
    l9.expect_text("high");
    for ws in [&mut l1, &mut l7] {
        nothing_pending(ws);
    }
    nothing_pending(&mut ann);

    // Through the hub the sender is a candidate like any other.
    l7.send_text("hub-where:7:top");
    l7.expect_text("top");
    l9.expect_text("top");
    for ws in [&mut l1, &mut l5, &mut l7, &mut l9] {
        nothing_pending(ws);
    }
    nothing_pending(&mut ann);
}

// ---------------------------------------------------------------------------
// 4. Rooms

#[test]
fn rooms_join_publish_members_and_leave() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");
    let mut dan = named(s.addr, "/ws/named", "dan");
    for ws in [&mut ann, &mut bob, &mut cat] {
        ask(ws, "join:lobby", "joined lobby");
    }
    ask(&mut ann, "join:lobby", "joined lobby"); // twice is fine
    ask(
        &mut ann,
        "members:lobby",
        "lobby: ann,bob,cat (3) mine=true",
    );
    ask(
        &mut dan,
        "members:lobby",
        "lobby: ann,bob,cat (3) mine=false",
    );
    ask(&mut ann, "rooms", "lobby");

    // A member publishes: it gets its own message, in order before the count.
    ann.send_text("pub:lobby:hi all");
    ann.expect_text("hi all");
    ann.expect_text("published to 3");
    bob.expect_text("hi all");
    cat.expect_text("hi all");

    // A non-member may publish too; it gets nothing itself.
    ask(&mut dan, "pub:lobby:from outside", "published to 3");
    for ws in [&mut ann, &mut bob, &mut cat] {
        ws.expect_text("from outside");
    }
    nothing_pending(&mut dan);

    ask(&mut cat, "leave:lobby", "left lobby: true");
    ask(&mut cat, "leave:lobby", "left lobby: false");
    ask(&mut cat, "rooms", "");
    ann.send_text("pub:lobby:without cat");
    ann.expect_text("without cat");
    ann.expect_text("published to 2");
    bob.expect_text("without cat");
    nothing_pending(&mut cat);
    ask(&mut bob, "members:lobby", "lobby: ann,bob (2) mine=true");
    ask(&mut bob, "pub:nowhere:x", "published to 0");
}

#[test]
fn a_closed_connection_leaves_its_rooms() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");
    for ws in [&mut ann, &mut bob, &mut cat] {
        ask(ws, "join:lobby", "joined lobby");
        ask(ws, "join:den", "joined den");
    }

    // bob drops the TCP connection without a close frame.
    bob.shutdown_write();
    bob.expect_eof();
    let mut got = [ann.read_text(), ann.read_text()];
    got.sort();
    assert_eq!(got, ["bob left den", "bob left lobby"]);
    let mut got = [cat.read_text(), cat.read_text()];
    got.sort();
    assert_eq!(got, ["bob left den", "bob left lobby"]);
    ask(&mut ann, "members:lobby", "lobby: ann,cat (2) mine=true");
    ask(&mut ann, "members:den", "den: ann,cat (2) mine=true");

    // cat closes with a close frame.
    cat.send_text("leave:den");
    cat.expect_text("left den: true");
    cat.close(1000);
    ann.expect_text("cat left lobby");
    ask(&mut ann, "members:lobby", "lobby: ann (1) mine=true");
    ask(&mut ann, "members:den", "den: ann (1) mine=true");
    ask(&mut ann, "pub:lobby:alone", "alone");
    ann.expect_text("published to 1");
}

#[test]
fn room_limits_are_errors_the_handler_sees() {
    let s = named_server("limits: { roomsPerConnection: 2, roomMembers: 2 }");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");

    ask(&mut ann, "join:r1", "joined r1");
    ask(&mut ann, "join:r2", "joined r2");
    ask(
        &mut ann,
        "join:r3",
        "error: too many rooms for one connection",
    );
    ask(&mut ann, "join:r1", "joined r1"); // already in it: not a third room
    ask(&mut ann, "rooms", "r1,r2");

    ask(&mut bob, "join:r1", "joined r1");
    ask(&mut cat, "join:r1", "error: the room is full");
    ask(&mut cat, "members:r1", "r1: ann,bob (2) mine=false");
    ask(&mut cat, "join:r2", "joined r2");
    ask(&mut bob, "join:r2", "error: the room is full");

    // Room is made by leaving.
    ask(&mut bob, "leave:r1", "left r1: true");
    ask(&mut cat, "join:r1", "joined r1");
    ask(&mut cat, "members:r1", "r1: ann,cat (2) mine=true");
    ask(
        &mut cat,
        "join:r3",
        "error: too many rooms for one connection",
    );
}

#[test]
fn publish_except_the_sender_reaches_and_counts_the_other_members() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let mut cat = named(s.addr, "/ws/named", "cat");
    ask(&mut ann, "join:lobby", "joined lobby");
    ask(&mut bob, "join:lobby", "joined lobby");

    ask(&mut ann, "pubx:lobby:psst", "published to 1");
    bob.expect_text("psst");
    nothing_pending(&mut ann);

    ask(&mut cat, "join:lobby", "joined lobby");
    ask(&mut ann, "pubx:lobby:all but me", "published to 2");
    bob.expect_text("all but me");
    cat.expect_text("all but me");
    nothing_pending(&mut ann);
}

#[test]
fn publish_except_the_sender_in_a_room_of_one_goes_to_nobody() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    ask(&mut ann, "join:solo", "joined solo");
    ask(&mut ann, "pubx:solo:to nobody", "published to 0");
    nothing_pending(&mut ann);
}

// ---------------------------------------------------------------------------
// 5. Stale ids

/// Remembers the first connection's id. Every connection is told its id's
/// `Debug` form on open; `send-first` reports what sending to, and closing,
/// the first connection returned.
#[derive(Default)]
struct Remember {
    first: Option<ConnId>,
}

impl Handler for Remember {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        self.first.get_or_insert(ws.id());
        let id = format!("{:?}", ws.id());
        ws.send_text(&id);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        match (msg, self.first) {
            (Message::Text("send-first"), Some(first)) => {
                let to = ws.send_to(first, Message::Text("for the first"));
                let hub = ws.hub().send(first, Message::Text("for the first"));
                let close = ws.hub().close(
                    first,
                    CloseCode::new(4000).expect("an application code"),
                    "stale",
                );
                let open = ws.hub().is_open(first);
                ws.send_text(&format!("{to:?} {hub:?} {close:?} open={open}"));
            }
            (other, _) => {
                ws.send(other);
            }
        }
    }
}

/// The `key` and `serial` of a `ConnId`'s `Debug` form, e.g. `ConnId { key: 0, serial: 1 }`.
fn key_and_serial(debug: &str) -> (u64, u64) {
    let field = |name: &str| -> u64 {
        let start = debug
            .find(&format!("{name}: "))
            .unwrap_or_else(|| panic!("no {name} in {debug:?}"))
            + name.len()
            + 2;
        let digits: String = debug[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    (field("key"), field("serial"))
}

#[test]
fn a_stale_id_is_closed_after_its_slot_is_reused() {
    let s = TestServer::start(
        &web(""),
        |_| {},
        |srv| {
            srv.websocket("/ws/remember", Remember::default());
        },
    );
    let mut first = Ws::open(s.addr, "/ws/remember");
    let (first_key, first_serial) = key_and_serial(&first.read_text());
    // A TCP close without a close frame: the server drops the connection
    // (freeing its slot) before it closes its side, so our EOF comes after.
    first.shutdown_write();
    first.expect_eof();

    let mut second = Ws::open(s.addr, "/ws/remember");
    let (key, serial) = key_and_serial(&second.read_text());
    assert_eq!(key, first_key, "the freed slab slot is reused");
    assert_ne!(serial, first_serial, "a reused slot gets a new id");

    ask(&mut second, "send-first", "Closed Closed Closed open=false");
    ask(&mut second, "still here", "still here");
}

// ---------------------------------------------------------------------------
// 6. Hub::close

#[test]
fn hub_close_starts_the_closing_handshake_of_another_connection() {
    let s = named_server("");
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");

    ask(&mut ann, "close:bob:4001:bye", "Queued");
    assert_eq!(bob.read_close(), (4001, "bye".to_string()));
    // The server waits for bob's answer, then ends the TCP connection.
    bob.send_close(4001, "");
    bob.expect_eof();

    ask(&mut ann, "to:bob:too late", "Closed");
    ask(&mut ann, "close:bob:4001:again", "Closed");
}

// ---------------------------------------------------------------------------
// 7. The upgrade hook

/// Accepts only `?token=secret`; the state is built from the query and the
/// `session` cookie and sent back on open.
struct Gate;

impl Handler for Gate {
    type State = String;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<String> {
        if req.query_param("token").as_deref() != Some("secret") {
            return Upgrade::Reject(
                Response::text("no")
                    .with_status(401)
                    .with_header("WWW-Authenticate", "Bearer"),
            );
        }
        Upgrade::Accept(format!(
            "user={} session={}",
            req.query_param("user").unwrap_or_default(),
            req.cookie("session").unwrap_or("none")
        ))
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
        let state = ws.state().clone();
        ws.send_text(&state);
    }
}

/// Always accepts with subprotocol `b`, whatever the server would have picked.
struct PicksB;

impl Handler for PicksB {
    type State = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::AcceptProtocol((), "b".to_string())
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        let p = format!("protocol {}", ws.protocol().unwrap_or("none"));
        ws.send_text(&p);
    }
}

fn gate_server() -> TestServer {
    TestServer::start(
        &web("webSockets: { protocol: ['a', 'b'] }"),
        |_| {},
        |srv| {
            srv.websocket("/ws/gate", Gate);
            srv.websocket("/ws/pick", PicksB);
        },
    )
}

#[test]
fn upgrade_hook_rejection_sends_its_response_and_closes() {
    let s = gate_server();
    for target in ["/ws/gate?user=ann", "/ws/gate?user=ann&token=wrong"] {
        let mut c = s.client();
        c.send(support::ws::upgrade_request(target, "").as_bytes());
        let r = c.response();
        assert_eq!(r.status, 401, "{target}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.text(), "no");
        assert_eq!(r.header("sec-websocket-accept"), None);
        assert!(c.is_closed(), "a refused upgrade closes the connection");
    }
}

#[test]
fn upgrade_hook_state_with_query_and_cookie_is_seen_in_on_open() {
    let s = gate_server();
    let (r, mut ws) = Ws::open_with(
        s.addr,
        "/ws/gate?user=ann&token=secret",
        "Cookie: theme=dark; session=abc123\r\n",
    );
    assert_eq!(r.header("sec-websocket-protocol"), None);
    ws.expect_text("user=ann session=abc123");

    let mut ws = Ws::open(s.addr, "/ws/gate?token=secret&user=bob");
    ws.expect_text("user=bob session=none");
}

#[test]
fn upgrade_hook_accept_protocol_answers_with_the_handlers_choice() {
    let s = gate_server();
    // The server alone would pick "a", the client's first choice.
    let (r, mut ws) = Ws::open_with(s.addr, "/ws/pick", "Sec-WebSocket-Protocol: a, b\r\n");
    assert_eq!(r.header("sec-websocket-protocol"), Some("b"));
    ws.expect_text("protocol b");

    // A choice the client did not offer cannot be honoured.
    let mut c = s.client();
    c.send(support::ws::upgrade_request("/ws/pick", "Sec-WebSocket-Protocol: a\r\n").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("sec-websocket-protocol"), None);
    assert!(c.is_closed());
}

// ---------------------------------------------------------------------------
// 8. Handlers selected by subprotocol

/// Answers its name on open and to every message.
struct Says(&'static str);

impl Handler for Says {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        let text = format!("{} {}", self.0, ws.protocol().unwrap_or("-"));
        ws.send_text(&text);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, _msg: Message<'_>) {
        ws.send_text(self.0);
    }
}

#[test]
fn the_negotiated_subprotocol_selects_the_handler() {
    let s = TestServer::start(
        &web(""),
        |_| {},
        |srv| {
            srv.websocket_protocol("/ws/multi", "json", Says("json handler"));
            srv.websocket_protocol("/ws/multi", "text", Says("text handler"));
            srv.websocket("/ws/multi", Says("default handler"));
        },
    );
    let cases = [
        (
            "Sec-WebSocket-Protocol: json\r\n",
            Some("json"),
            "json handler",
        ),
        (
            "Sec-WebSocket-Protocol: text\r\n",
            Some("text"),
            "text handler",
        ),
        (
            "Sec-WebSocket-Protocol: xml, text, json\r\n",
            Some("text"),
            "text handler",
        ),
        ("", None, "default handler"),
    ];
    for (offer, protocol, name) in cases {
        let (r, mut ws) = Ws::open_with(s.addr, "/ws/multi", offer);
        assert_eq!(r.header("sec-websocket-protocol"), protocol, "{offer:?}");
        ws.expect_text(&format!("{name} {}", protocol.unwrap_or("-")));
        ask(&mut ws, "who?", name);
    }
    let mut c = s.client();
    c.send(support::ws::upgrade_request("/ws/multi", "Sec-WebSocket-Protocol: xml\r\n").as_bytes());
    assert_eq!(c.response().status, 400, "no handler speaks xml");
}

// ---------------------------------------------------------------------------
// 9. Timers

/// Timer ids of one connection and the repeating timer's count.
#[derive(Default)]
struct Ticks {
    repeat: Option<TimerId>,
    count: u32,
    once: Option<TimerId>,
    later: Option<TimerId>,
}

/// `repeat` starts a 10 ms repeating timer that sends `tick N` and cancels
/// itself on the third tick (`stopped <cancel> <cancel again>`); `once` a
/// 10 ms one-shot (`once`); `later` a 50 ms one-shot (`later`); else echo.
struct Ticker;

impl Handler for Ticker {
    type State = Ticks;

    fn on_message(&mut self, ws: &mut WebSocket<'_, Ticks>, msg: Message<'_>) {
        let ms = Duration::from_millis;
        match msg {
            Message::Text("repeat") => {
                let id = ws.set_timer(ms(10), Some(ms(10)));
                ws.state_mut().repeat = Some(id);
            }
            Message::Text("once") => {
                let id = ws.set_timer(ms(10), None);
                ws.state_mut().once = Some(id);
            }
            Message::Text("later") => {
                let id = ws.set_timer(ms(50), None);
                ws.state_mut().later = Some(id);
            }
            other => {
                ws.send(other);
            }
        }
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, Ticks>, timer: TimerId) {
        let t = ws.state_mut();
        if t.repeat == Some(timer) {
            t.count += 1;
            let n = t.count;
            ws.send_text(&format!("tick {n}"));
            if n == 3 {
                let first = ws.cancel_timer(timer);
                let again = ws.cancel_timer(timer);
                ws.send_text(&format!("stopped {first} {again}"));
            }
        } else if t.once == Some(timer) {
            ws.send_text("once");
        } else if t.later == Some(timer) {
            ws.send_text("later");
        } else {
            ws.send_text("an unknown timer fired");
        }
    }
}

fn ticker_server() -> TestServer {
    TestServer::start(
        &web(""),
        |_| {},
        |srv| {
            srv.websocket("/ws/tick", Ticker);
        },
    )
}

#[test]
fn a_repeating_timer_ticks_until_cancelled() {
    let s = ticker_server();
    let mut ws = Ws::open(s.addr, "/ws/tick");
    ws.send_text("repeat");
    for n in 1..=3 {
        ws.expect_text(&format!("tick {n}"));
    }
    ws.expect_text("stopped true false");
    // A 50 ms one-shot set after the cancel: a fourth tick would have been
    // due 10 ms after the third, so it would arrive first.
    ws.send_text("later");
    ws.expect_text("later");
    ask(&mut ws, "end", "end");
}

#[test]
fn a_one_shot_timer_fires_once() {
    let s = ticker_server();
    let mut ws = Ws::open(s.addr, "/ws/tick");
    ws.send_text("once");
    ws.expect_text("once");
    ws.send_text("later");
    ws.expect_text("later");
    ask(&mut ws, "end", "end");
}

/// Logs `NAME tick` for every firing of a 5 ms repeating timer each
/// connection starts on open, and `NAME closed CODE` on close; tells the
/// client `tick N`, and answers `mark`.
struct Logged {
    log: Arc<Mutex<Vec<String>>>,
}

impl Handler for Logged {
    type State = (String, u32);

    fn on_open(&mut self, ws: &mut WebSocket<'_, (String, u32)>) {
        ws.state_mut().0 = param(ws.query(), "name").unwrap_or("").to_string();
        let ms = Duration::from_millis(5);
        ws.set_timer(ms, Some(ms));
        ws.send_text("open");
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, (String, u32)>, msg: Message<'_>) {
        ws.send(msg);
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, (String, u32)>, _timer: TimerId) {
        let (name, n) = ws.state_mut();
        *n += 1;
        let line = format!("tick {n}");
        self.log.lock().unwrap().push(format!("{name} tick"));
        ws.send_text(&line);
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, (String, u32)>, code: CloseCode, _reason: &str) {
        let name = &ws.state().0;
        self.log
            .lock()
            .unwrap()
            .push(format!("{name} closed {code}"));
    }
}

/// Reads frames, skipping `tick N` messages, until one that is not a tick.
fn skip_ticks(ws: &mut Ws) -> support::ws::Frame {
    loop {
        let f = ws.read_frame();
        if !(f.opcode == TEXT && f.text().starts_with("tick ")) {
            return f;
        }
    }
}

#[test]
fn a_connections_timers_do_not_fire_after_it_closed() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler_log = Arc::clone(&log);
    let s = TestServer::start(
        &web(""),
        |_| {},
        move |srv| {
            srv.websocket("/ws/logged", Logged { log: handler_log });
        },
    );
    let mut a = Ws::open(s.addr, "/ws/logged?name=a");
    a.expect_text("open");
    a.expect_text("tick 1");
    a.send_close(1000, "");
    let f = skip_ticks(&mut a);
    assert_eq!(
        (f.opcode, &f.payload[..]),
        (support::ws::CLOSE, &1000u16.to_be_bytes()[..])
    );
    a.expect_eof();

    // b's timer runs on the same loop with the same period: three of its
    // ticks after a mark sent once a was gone span more than a's period.
    let mut b = Ws::open(s.addr, "/ws/logged?name=b");
    b.expect_text("open");
    b.send_text("mark");
    assert_eq!(skip_ticks(&mut b).text(), "mark");
    for _ in 0..3 {
        assert!(b.read_text().starts_with("tick "));
    }

    let log = log.lock().unwrap().clone();
    let closed = log
        .iter()
        .position(|l| l == "a closed 1000")
        .unwrap_or_else(|| panic!("a's on_close was not called: {log:?}"));
    assert!(log[..closed].contains(&"a tick".to_string()));
    assert!(
        !log[closed..].contains(&"a tick".to_string()),
        "a's timer fired after a closed: {log:?}"
    );
    assert!(log[closed..].iter().filter(|l| *l == "b tick").count() >= 3);
}

#[test]
fn a_global_timer_publishes_to_a_room() {
    let s = TestServer::start(
        &web(""),
        |_| {},
        |srv| {
            srv.websocket("/ws/named", Named::default());
            srv.every(Duration::from_millis(10), |hub| {
                hub.publish("news", Message::Text("news"), None);
            });
        },
    );
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    ask(&mut ann, "join:news", "joined news");
    ann.expect_text("news");
    ann.expect_text("news");
    // bob is not in the room: its echo is the next thing it gets.
    nothing_pending(&mut bob);
    // Publications queued before the leave come first; none come after it.
    ann.send_text("leave:news");
    let mut next = ann.read_text();
    while next == "news" {
        next = ann.read_text();
    }
    assert_eq!(next, "left news: true");
    nothing_pending(&mut ann);
    ask(&mut bob, "join:news", "joined news");
    bob.expect_text("news");
}

// ---------------------------------------------------------------------------
// 10. ServerHandle from another thread

/// A `Named` server on `/ws/named` that reports each connection's id, with its handle.
fn handle_server() -> (TestServer, ServerHandle, Receiver<(String, ConnId)>) {
    let (ids_tx, ids) = mpsc::channel();
    let (handle_tx, handle_rx) = mpsc::channel();
    let s = TestServer::start(
        &web(""),
        |_| {},
        move |srv| {
            srv.websocket(
                "/ws/named",
                Named {
                    opened: Some(ids_tx),
                    ..Named::default()
                },
            );
            handle_tx.send(srv.handle()).unwrap();
        },
    );
    let handle = handle_rx.recv().unwrap();
    (s, handle, ids)
}

/// The id of the next connection that opened, which must be `name`.
fn opened(ids: &Receiver<(String, ConnId)>, name: &str) -> ConnId {
    let (got, id) = ids.recv_timeout(IO_TIMEOUT).expect("a connection opened");
    assert_eq!(got, name);
    id
}

#[test]
fn server_handle_publishes_broadcasts_and_sends_from_another_thread() {
    let (s, handle, ids) = handle_server();
    let mut ann = named(s.addr, "/ws/named", "ann");
    let _ann_id = opened(&ids, "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let bob_id = opened(&ids, "bob");
    ask(&mut ann, "join:lobby", "joined lobby");

    assert!(handle.publish("lobby", "hello"));
    ann.expect_text("hello");

    assert!(handle.broadcast("to all"));
    ann.expect_text("to all");
    bob.expect_text("to all"); // first: the publication did not reach bob

    assert!(handle.send(bob_id, "just bob"));
    bob.expect_text("just bob");
    nothing_pending(&mut ann);

    assert!(handle.send(bob_id, vec![1u8, 2, 3]));
    let f = bob.read_frame();
    assert_eq!((f.opcode, f.payload), (support::ws::BINARY, vec![1, 2, 3]));
    nothing_pending(&mut bob);
}

#[test]
fn server_handle_run_and_stats_see_the_hub() {
    let (s, handle, ids) = handle_server();
    let mut ann = named(s.addr, "/ws/named", "ann");
    let ann_id = opened(&ids, "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    let bob_id = opened(&ids, "bob");
    ask(&mut ann, "join:lobby", "joined lobby");

    let (tx, rx) = mpsc::channel();
    assert!(handle.run(move |hub| {
        let mut members: Vec<ConnId> = hub.members("lobby").collect();
        members.sort();
        let answer = (
            hub.sockets(),
            hub.is_open(ann_id),
            hub.room_size("lobby"),
            members,
        );
        hub.send(bob_id, Message::Text("from run"));
        tx.send(answer).unwrap();
    }));
    let (sockets, open, size, members) = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!((sockets, open, size), (2, true, 1));
    assert_eq!(members, [ann_id]);
    bob.expect_text("from run");

    // A panicking closure costs only itself.
    assert!(handle.run(|_| panic!("on purpose")));
    nothing_pending(&mut bob);

    // In: "join:lobby" and bob's echo; out: two greetings, "joined lobby",
    // "from run" and the echo.
    let stats = handle.stats().expect("the server is running");
    assert_eq!(stats.websockets_open, 2);
    assert_eq!(stats.websockets_total, 2);
    assert_eq!(stats.messages_in, 2);
    assert_eq!(stats.messages_out, 5);
    nothing_pending(&mut ann);
    let stats = handle.stats().unwrap();
    assert_eq!((stats.messages_in, stats.messages_out), (3, 6));
}

#[test]
fn server_handle_stop_closes_every_websocket_with_1001_and_run_returns() {
    let s = TestServer::start(
        WS_ROUTES,
        |_| {},
        |srv| {
            srv.websocket("/ws/named", Named::default());
        },
    );
    let mut ann = named(s.addr, "/ws/named", "ann");
    let mut bob = named(s.addr, "/ws/named", "bob");
    ask(&mut ann, "join:lobby", "joined lobby");

    s.handle.stop();
    for ws in [&mut ann, &mut bob] {
        let (code, _reason) = ws.read_close();
        assert_eq!(code, 1001);
        // Answered, the closing handshake ends at once (an unanswered one
        // waits for `closeTimeout`, which tests/websocket.rs covers).
        ws.send_close(1001, "");
        ws.expect_eof();
    }
    // Closing our side too ends the server's linger, so `run` returns now.
    drop((ann, bob));
    let result = s
        .done
        .recv_timeout(IO_TIMEOUT)
        .expect("Server::run returned");
    assert!(result.is_ok(), "{result:?}");
    assert!(!s.handle.publish("lobby", "anyone?"), "the server is gone");
    assert!(s.handle.stats().is_none());
}

// ---------------------------------------------------------------------------
// 11. Counters

/// `stats` answers the server's counters as JSON, `metrics` this
/// connection's; `all:TEXT` broadcasts TEXT to everyone; anything else is
/// echoed. Upgrades with `deny` in the query are refused with 403.
struct Counter;

impl Handler for Counter {
    type State = ();

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<()> {
        if req.query().contains("deny") {
            return Upgrade::Reject(Response::text("denied").with_status(403));
        }
        Upgrade::Accept(())
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        match msg {
            Message::Text("stats") => {
                let stats = ws.stats().clone();
                ws.send_json(&stats);
            }
            Message::Text("metrics") => {
                let metrics = ws.metrics();
                ws.send_json(&metrics);
            }
            Message::Text(t) if t.starts_with("all:") => ws.broadcast(Message::Text(&t[4..]), None),
            other => {
                ws.send(other);
            }
        }
    }
}

/// Checks `fields` of a JSON object (other keys may exist).
fn assert_fields(v: &Value, fields: &[(&str, u64)]) {
    for &(name, want) in fields {
        let got = name
            .split('.')
            .try_fold(v, |v, key| v.get(key))
            .and_then(Value::as_u64);
        assert_eq!(got, Some(want), "{name} in {v}");
    }
}

#[test]
fn stats_and_metrics_count_exactly_what_was_sent() {
    let (handle_tx, handle_rx) = mpsc::channel();
    let s = TestServer::start(
        "limits: { maxFrame: '1K' }, routes: [ { match: '/ws/', handler: 'action' }, \
         { match: '/api/', handler: 'action' } ]",
        |_| {},
        move |srv| {
            srv.websocket("/ws/count", Counter);
            srv.action("/api/stats", |req| Response::json(req.stats()));
            handle_tx.send(srv.handle()).unwrap();
        },
    );
    let handle: ServerHandle = handle_rx.recv().unwrap();

    let mut a = Ws::open(s.addr, "/ws/count");
    ask(&mut a, "a", "a");
    ask(&mut a, "bb", "bb");
    a.send_text("stats");
    let stats_text = a.read_text();
    let v: Value = serde_json::from_str(&stats_text).unwrap();
    assert_fields(
        &v,
        &[
            ("connections_open", 1),
            ("connections_total", 1),
            ("requests", 1),
            ("websockets_open", 1),
            ("websockets_total", 1),
            ("messages_in", 3),
            ("messages_out", 2),
            ("bytes_in", 1 + 2 + 5),
            ("bytes_out", 1 + 2),
            ("upgrades_rejected", 0),
            ("limits.frame", 0),
        ],
    );
    let st = handle.stats().unwrap();
    assert_eq!(st.messages_out, 3, "the stats answer itself counts");
    assert_eq!(st.bytes_out, 3 + stats_text.len() as u64);

    // A broadcast counts once per recipient, in the server's and in each connection's counters.
    let mut b = Ws::open(s.addr, "/ws/count");
    a.send_text("all:hey");
    a.expect_text("hey");
    b.expect_text("hey");
    b.send_text("metrics");
    let m: Value = b.read_json();
    assert_eq!(
        m,
        json!({ "messages_in": 1, "messages_out": 1, "bytes_in": 7, "bytes_out": 3 })
    );
    a.send_text("metrics");
    let m: Value = a.read_json();
    let a_out = 3 + stats_text.len() as u64 + 3;
    assert_eq!(
        m,
        json!({ "messages_in": 5, "messages_out": 4, "bytes_in": 1 + 2 + 5 + 7 + 7, "bytes_out": a_out })
    );

    // An HTTP action reads the same counters; its own request is counted already.
    let r = s.get("/api/stats");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_fields(
        &v,
        &[
            ("connections_open", 3),
            ("connections_total", 3),
            ("requests", 3),
            ("websockets_open", 2),
            ("websockets_total", 2),
            ("messages_in", 6),
        ],
    );

    // A refused upgrade.
    let mut c = s.client();
    c.send(support::ws::upgrade_request("/ws/count?deny", "").as_bytes());
    assert_eq!(c.response().status, 403);
    assert!(c.is_closed());
    assert_eq!(handle.stats().unwrap().upgrades_rejected, 1);

    // A frame over maxFrame (1K) closes with 1009 and counts as a frame limit hit.
    let mut big = Ws::open(s.addr, "/ws/count");
    big.send_text(&"x".repeat(2000));
    big.expect_close(1009);
    let st = handle.stats().unwrap();
    assert_eq!(st.limits.frame, 1);
    assert_eq!(st.limits.message, 0);
    assert_eq!(st.limits.protocol, 0);
    assert_eq!(st.websockets_total, 3);
    assert_eq!(st.websockets_open, 2);
    assert_eq!(st.messages_in, 6, "the oversized frame is no message");
    assert_eq!(st.upgrades_rejected, 1);
}

// ---------------------------------------------------------------------------
// 12. The shipped binary's /ws/chat

/// Starts the binary with the shipped config on a free port.
fn start_binary() -> Running {
    let mut command = support::binary::wisp();
    command.stderr(Stdio::null());
    start_command(
        command,
        &["--config", "web.json5", "--listen", "http://127.0.0.1:0"],
    )
}

fn chat(w: &Running) -> Ws {
    Ws::open(w.addr, "/ws/chat")
}

fn expect_event(ws: &mut Ws, want: Value) {
    assert_eq!(ws.read_json(), want);
}

/// An error event: exactly `event` and a non-empty `error` text.
fn expect_error(ws: &mut Ws, after: &str) {
    let v = ws.read_json();
    let keys: BTreeSet<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["event", "error"]),
        "after {after}: {v}"
    );
    assert_eq!(v["event"], "error", "after {after}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "after {after}: {v}"
    );
}

fn join_event(room: &str, name: &str) -> Value {
    json!({ "event": "join", "room": room, "name": name })
}

fn joined(room: &str, members: &[&str]) -> Value {
    json!({ "event": "joined", "room": room, "members": members })
}

fn presence(room: &str, name: &str, joined: bool) -> Value {
    json!({ "event": "presence", "room": room, "name": name, "joined": joined })
}

fn said(room: &str, from: &str, text: &str) -> Value {
    json!({ "event": "said", "room": room, "from": from, "text": text })
}

/// ann, bob and cat join the lobby in turn, each checked as it happens.
fn three_in_the_lobby(w: &Running) -> [Ws; 3] {
    let mut ann = chat(w);
    ann.send_json(&join_event("lobby", "ann"));
    expect_event(&mut ann, joined("lobby", &["ann"]));

    let mut bob = chat(w);
    bob.send_json(&join_event("lobby", "bob"));
    expect_event(&mut bob, joined("lobby", &["ann", "bob"]));
    expect_event(&mut ann, presence("lobby", "bob", true));

    let mut cat = chat(w);
    cat.send_json(&join_event("lobby", "cat"));
    expect_event(&mut cat, joined("lobby", &["ann", "bob", "cat"]));
    expect_event(&mut ann, presence("lobby", "cat", true));
    expect_event(&mut bob, presence("lobby", "cat", true));
    [ann, bob, cat]
}

#[test]
fn chat_join_answers_sorted_members_and_tells_the_others() {
    let w = start_binary();
    let [mut ann, mut bob, mut cat] = three_in_the_lobby(&w);
    // A name that sorts first, joining last: members are sorted, not in join order.
    let mut al = chat(&w);
    al.send_json(&join_event("lobby", "al"));
    expect_event(&mut al, joined("lobby", &["al", "ann", "bob", "cat"]));
    for ws in [&mut ann, &mut bob, &mut cat] {
        expect_event(ws, presence("lobby", "al", true));
    }
    // Joining again answers the members but tells nobody: the next thing
    // everyone gets is ann's line.
    ann.send_json(&join_event("lobby", "ann"));
    expect_event(&mut ann, joined("lobby", &["al", "ann", "bob", "cat"]));
    ann.send_json(&json!({ "event": "say", "room": "lobby", "text": "sync" }));
    for ws in [&mut ann, &mut bob, &mut cat, &mut al] {
        expect_event(ws, said("lobby", "ann", "sync"));
    }
}

#[test]
fn chat_say_reaches_every_member_including_the_sender() {
    let w = start_binary();
    let [mut ann, mut bob, mut cat] = three_in_the_lobby(&w);
    bob.send_json(&json!({ "event": "say", "room": "lobby", "text": "hi" }));
    for ws in [&mut ann, &mut bob, &mut cat] {
        expect_event(ws, said("lobby", "bob", "hi"));
    }
}

#[test]
fn chat_saying_into_a_room_not_joined_is_an_error_and_the_connection_stays() {
    let w = start_binary();
    let mut ann = chat(&w);
    ann.send_json(&json!({ "event": "say", "room": "lobby", "text": "hi" }));
    expect_error(&mut ann, "say without join");
    ann.send_json(&json!({ "event": "leave", "room": "lobby" }));
    expect_error(&mut ann, "leave without join");
    ann.send_json(&join_event("lobby", "ann"));
    expect_event(&mut ann, joined("lobby", &["ann"]));
}

#[test]
fn chat_malformed_input_is_an_error_and_the_connection_stays() {
    let w = start_binary();
    let mut ann = chat(&w);
    let bad = [
        "not json",
        r#"{"event":"dance","room":"lobby"}"#,
        r#"{"event":"join","room":"lobby"}"#,
        r#"{"event":"say","text":"hi"}"#,
        r#"{"room":"lobby","name":"ann"}"#,
        r#"{"event":"join","room":"","name":"ann"}"#,
        &format!(
            r#"{{"event":"join","room":"lobby","name":"{}"}}"#,
            "n".repeat(65)
        ),
        r#"{"event":"join","room":"lobby","name":"ann","extra":1}"#,
        "[1,2]",
    ];
    for text in bad {
        ann.send_text(text);
        expect_error(&mut ann, text);
    }
    ann.send_binary(br#"{"event":"join","room":"lobby","name":"ann"}"#);
    expect_error(&mut ann, "a binary frame");
    // Still open: a valid event is answered.
    ann.send_json(&join_event("lobby", "ann"));
    expect_event(&mut ann, joined("lobby", &["ann"]));
}

#[test]
fn chat_leave_tells_the_others() {
    let w = start_binary();
    let [mut ann, mut bob, mut cat] = three_in_the_lobby(&w);
    cat.send_json(&json!({ "event": "leave", "room": "lobby" }));
    expect_event(&mut ann, presence("lobby", "cat", false));
    expect_event(&mut bob, presence("lobby", "cat", false));
    // cat is out: saying there is an error now, and nothing else came first.
    cat.send_json(&json!({ "event": "say", "room": "lobby", "text": "hi" }));
    expect_error(&mut cat, "say after leave");
    ann.send_json(&json!({ "event": "say", "room": "lobby", "text": "two left" }));
    expect_event(&mut ann, said("lobby", "ann", "two left"));
    expect_event(&mut bob, said("lobby", "ann", "two left"));
}

/// ann and bob in the lobby after cat left; bob then disconnects with `how`.
fn bob_disconnects(how: impl FnOnce(Ws)) {
    let w = start_binary();
    let [mut ann, mut bob, mut cat] = three_in_the_lobby(&w);
    cat.send_json(&json!({ "event": "leave", "room": "lobby" }));
    expect_event(&mut ann, presence("lobby", "cat", false));
    expect_event(&mut bob, presence("lobby", "cat", false));
    how(bob);
    expect_event(&mut ann, presence("lobby", "bob", false));
    ann.send_json(&json!({ "event": "say", "room": "lobby", "text": "alone" }));
    expect_event(&mut ann, said("lobby", "ann", "alone"));
}

#[test]
fn chat_disconnect_without_a_close_frame_tells_the_others() {
    bob_disconnects(|mut bob| {
        bob.shutdown_write();
        bob.expect_eof();
    });
}

#[test]
fn chat_disconnect_with_a_close_frame_tells_the_others() {
    bob_disconnects(|bob| bob.close(1000));
}

/// Asks its own server for the counters through a `ServerHandle`, from a handler.
struct AsksItsOwnServer {
    handle: ServerHandle,
}

impl Handler for AsksItsOwnServer {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, _msg: Message<'_>) {
        let answer = match self.handle.stats() {
            Some(_) => "some",
            None => "none",
        };
        ws.send_text(answer);
    }
}

#[test]
fn server_handle_stats_from_the_server_thread_answers_none_without_waiting() {
    let s = TestServer::start(
        WS_ROUTES,
        |_| {},
        |srv| {
            let handle = srv.handle();
            srv.websocket("/ws/self", AsksItsOwnServer { handle });
        },
    );
    let mut ws = Ws::open(s.addr, "/ws/self");
    // Waiting for itself, the loop would stall five seconds before giving up:
    // a read timeout well under that tells the two apart.
    ws.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    ws.send_text("stats?");
    assert_eq!(ws.read_text(), "none");
    ws.send_text("again");
    assert_eq!(ws.read_text(), "none");
}

/// `?name=N` names the connection. `begin` starts a `send_block` message
/// ("part1"), `end` finishes it ("part2"), and `to:NAME:TEXT` sends TEXT to
/// NAME through the hub, answering the send's status.
#[derive(Default)]
struct Blocks {
    ids: HashMap<String, ConnId>,
}

impl Handler for Blocks {
    type State = String;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<String> {
        Upgrade::Accept(req.query_param("name").unwrap_or_default().to_string())
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
        let name = ws.state().clone();
        self.ids.insert(name, ws.id());
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        match text {
            "begin" => drop(ws.send_block(true, b"part1", true)),
            "end" => drop(ws.send_block(true, b"part2", false)),
            _ => {
                let Some((name, what)) = text.strip_prefix("to:").and_then(|t| t.split_once(':'))
                else {
                    return;
                };
                let status = match self.ids.get(name) {
                    Some(&to) => format!("{:?}", ws.send_to(to, Message::Text(what))),
                    None => "unknown".to_string(),
                };
                ws.send_text(&status);
            }
        }
    }
}

#[test]
fn a_message_sent_to_a_connection_mid_send_block_waits_for_the_block_to_end() {
    let s = TestServer::start(
        WS_ROUTES,
        |_| {},
        |srv| {
            srv.websocket("/ws/blocks", Blocks::default());
        },
    );
    let mut a = Ws::open(s.addr, "/ws/blocks?name=a");
    let mut b = Ws::open(s.addr, "/ws/blocks?name=b");
    a.send_text("begin");
    a.expect_frame(false, TEXT, b"part1");
    // Sent while a's message is unfinished: queued, not lost.
    b.send_text("to:a:hello");
    assert_eq!(b.read_text(), "Queued");
    b.send_text("to:a:again");
    assert_eq!(b.read_text(), "Queued");
    a.send_text("end");
    a.expect_frame(true, CONTINUATION, b"part2");
    assert_eq!(a.read_text(), "hello");
    assert_eq!(a.read_text(), "again");
    // And afterwards deliveries go straight through.
    b.send_text("to:a:later");
    assert_eq!(b.read_text(), "Queued");
    assert_eq!(a.read_text(), "later");
}
