//! Altruist's portals over real sockets: portals declared under a transport
//! path, several portals on one path with their hooks run in declaration
//! order, a duplicate gate refused at start, `messageCode` carried into
//! replies, and the waiting room joined on open and left for another room.
//!
//! The client is `support::ws`. Tests wait for the server's bytes, never for
//! a clock; `IO_TIMEOUT` is only a safety net.

mod support;

use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::binary::{start_command, Running};

use serde::Deserialize;
use serde_json::{json, Value};
use support::ws::{Ws, BINARY};
use support::{TestServer, IO_TIMEOUT};
use wisp::{Codec, Portal, PortalError, Portals, Server, WebSocket};

const ROUTES: &str = "routes: [ { match: '/ws/', handler: 'action' } ]";

/// `{"event":"join","room":"…"}`.
#[derive(Deserialize)]
struct Join {
    room: String,
}

/// `{"event":"chat","text":"…"}`.
#[derive(Deserialize)]
struct Chat {
    text: String,
}

/// Altruist's handshake: the client's id, and the packet's messageCode (added by the portal).
fn handshake(ws: &mut WebSocket<'_, ()>, _: Value) -> Value {
    json!({ "event": "handshake", "clientId": ws.id().to_string() })
}

/// The rooms a connection is in, sorted.
fn rooms(ws: &mut WebSocket<'_, ()>, _: Value) -> Value {
    let mut rooms: Vec<String> = ws.rooms().map(str::to_string).collect();
    rooms.sort();
    json!({ "event": "rooms", "rooms": rooms })
}

/// Joins a room and says which rooms the connection is in now.
fn join(ws: &mut WebSocket<'_, ()>, m: Join) -> Result<Value, wisp::RoomError> {
    ws.join(&m.room)?;
    Ok(rooms(ws, Value::Null))
}

/// Sends the text to everyone in the sender's rooms, the sender included.
fn chat(ws: &mut WebSocket<'_, ()>, m: Chat) {
    let packet = json!({ "event": "chat", "text": m.text, "clientId": ws.id().to_string() });
    let rooms: Vec<String> = ws.rooms().map(str::to_string).collect();
    for room in rooms {
        ws.publish(&room, wisp::Message::Text(&packet.to_string()), None);
    }
}

/// `/ws/chat` and `/ws/game`, both with a handshake, and room gates on chat.
fn portals() -> Portals {
    Portals::new("/ws")
        .portal(
            Portal::new("/chat")
                .gate("handshake", handshake)
                .gate("chat", chat)
                .gate("join", join)
                .gate("rooms", rooms),
        )
        .portal(Portal::new("/game").gate("handshake", handshake))
}

/// A server with `webSockets: { web_sockets }` and the portals `make` returns.
fn serve(web_sockets: &str, make: impl FnOnce() -> Portals + Send + 'static) -> TestServer {
    TestServer::start(
        &format!("{ROUTES}, webSockets: {{ {web_sockets} }}"),
        |_| {},
        move |server| make().mount(server).unwrap_or_else(|e| panic!("{e}")),
    )
}

// ---------------------------------------------------------------------------
// Portals and gates

#[test]
fn portals_live_under_the_transport_path_and_answer_with_the_message_code() {
    let s = serve("", portals);
    for path in ["/ws/chat", "/ws/game"] {
        let mut ws = Ws::open(s.addr, path);
        let reply = ws.call(json!({ "messageCode": 4, "event": "handshake" }));
        assert_eq!(reply["event"], "handshake", "{path}");
        assert_eq!(
            reply["messageCode"], 4,
            "{path}: the packet's code comes back"
        );
        assert!(reply["clientId"]
            .as_str()
            .is_some_and(|id| id.starts_with('#')));
    }
    // A packet without a code gets a reply without one.
    let mut ws = Ws::open(s.addr, "/ws/game");
    let reply = ws.call(json!({ "event": "handshake" }));
    assert_eq!(reply.get("messageCode"), None);
    // The game portal has no chat gate: an error event with the packet's
    // code, and the socket stays open.
    ws.send_json(&json!({ "messageCode": 4, "event": "chat", "text": "hi" }));
    assert_eq!(
        ws.read_json(),
        json!({ "event": "error", "error": "unknown event \"chat\"", "messageCode": 4 })
    );
    // A packet that does not fit the gate's type names the gate.
    let mut chat = Ws::open(s.addr, "/ws/chat");
    chat.send_json(&json!({ "event": "chat" }));
    assert_eq!(
        chat.read_json()["error"],
        "chat: missing field `text`",
        "the gate's name and serde's reason"
    );
    assert_eq!(
        ws.call(json!({ "event": "handshake" }))["event"],
        "handshake"
    );
    // The transport path itself has no portal here.
    let request = support::ws::upgrade_request("/ws", "");
    let (resp, _) = Ws::handshake(s.addr, request.as_bytes());
    assert_eq!(resp.status, 404);
}

#[test]
fn a_reply_keeps_its_own_message_code() {
    let s = serve("", || {
        Portals::new("/ws/api").portal(Portal::new("/").gate(
            "ask",
            |_ws, _: Value| json!({ "event": "answer", "messageCode": 5 }),
        ))
    });
    let mut ws = Ws::open(s.addr, "/ws/api");
    let reply = ws.call(json!({ "event": "ask", "messageCode": 4 }));
    assert_eq!(reply, json!({ "event": "answer", "messageCode": 5 }));
}

#[test]
fn several_portals_on_one_path_share_it_and_run_their_hooks_in_order() {
    let (tx, hooks): (Sender<String>, Receiver<String>) = mpsc::channel();
    let s = serve("", move || {
        let hook = |name: &'static str, tx: &Sender<String>| {
            let (opened, closed) = (tx.clone(), tx.clone());
            Portal::new("/game")
                .on_open(move |ws| {
                    let _ = opened.send(format!("open {name}"));
                    ws.send_text(&format!("hello from {name}"));
                })
                .on_close(move |_ws, code, _reason| {
                    let _ = closed.send(format!("close {name} {code}"));
                })
        };
        Portals::new("/ws")
            .portal(hook("a", &tx).gate("ping", |_ws, _: Value| json!({ "event": "pong" })))
            .portal(
                Portal::new("/chat").gate("ping", |_ws, _: Value| json!({ "event": "chat pong" })),
            )
            .portal(hook("b", &tx).gate(
                "score",
                |_ws, _: Value| json!({ "event": "score", "value": 3 }),
            ))
            .portal(hook("c", &tx))
    });
    let mut ws = Ws::open(s.addr, "/ws/game");
    for name in ["a", "b", "c"] {
        assert_eq!(ws.read_text(), format!("hello from {name}"));
    }
    // The gates of both portals answer on the shared path.
    assert_eq!(ws.call(json!({ "event": "ping" }))["event"], "pong");
    assert_eq!(ws.call(json!({ "event": "score" }))["value"], 3);
    let mut chat = Ws::open(s.addr, "/ws/chat");
    assert_eq!(chat.call(json!({ "event": "ping" }))["event"], "chat pong");
    ws.close(1000);
    let seen: Vec<String> = (0..6)
        .map(|_| hooks.recv_timeout(IO_TIMEOUT).expect("a hook ran"))
        .collect();
    assert_eq!(
        seen,
        [
            "open a",
            "open b",
            "open c",
            "close a 1000",
            "close b 1000",
            "close c 1000"
        ]
    );
}

#[test]
fn a_gate_declared_twice_on_one_path_stops_the_start() {
    let (tx, result) = mpsc::channel();
    let _s = TestServer::start(
        ROUTES,
        |_| {},
        move |server: &mut Server| {
            let twice = Portals::new("/ws")
                .portal(Portal::new("/game").gate("handshake", handshake))
                .portal(Portal::new("/chat").gate("handshake", handshake))
                .portal(Portal::new("/game/").gate("handshake", handshake))
                .mount(server);
            tx.send(twice).unwrap();
        },
    );
    let err = result.recv_timeout(IO_TIMEOUT).unwrap().unwrap_err();
    assert_eq!(
        err,
        PortalError::DuplicateGate {
            path: "/ws/game".into(),
            gate: "handshake".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "two portals on /ws/game declare the gate \"handshake\""
    );
}

// ---------------------------------------------------------------------------
// The waiting room

#[test]
fn every_connection_waits_in_the_lobby_until_it_joins_a_room() {
    let s = serve("waitingRoom: 'lobby'", portals);
    let mut ann = Ws::open(s.addr, "/ws/chat");
    let mut bob = Ws::open(s.addr, "/ws/chat");
    assert_eq!(
        ann.call(json!({ "event": "rooms" }))["rooms"],
        json!(["lobby"])
    );
    // A chat goes to everyone in the sender's room: the waiting room too.
    ann.send_json(&json!({ "messageCode": 4, "event": "chat", "text": "Hello server!" }));
    for ws in [&mut ann, &mut bob] {
        let packet = ws.read_json();
        assert_eq!(packet["event"], "chat");
        assert_eq!(packet["text"], "Hello server!");
    }
    // Joining another room leaves the lobby.
    let joined = bob.call(json!({ "event": "join", "room": "game" }));
    assert_eq!(joined["rooms"], json!(["game"]));
    ann.send_json(&json!({ "event": "chat", "text": "anyone?" }));
    assert_eq!(ann.read_json()["text"], "anyone?");
    // bob is not in the lobby any more: his next packet is the answer to his own question.
    assert_eq!(
        bob.call(json!({ "event": "rooms" }))["rooms"],
        json!(["game"])
    );
    // A connection on another portal waits in the same lobby.
    let mut cid = Ws::open(s.addr, "/ws/game");
    ann.send_json(&json!({ "event": "chat", "text": "hi all" }));
    let own = ann.read_json();
    assert_eq!(own["text"], "hi all");
    assert_eq!(cid.read_json(), own);
}

#[test]
fn the_lobby_can_be_kept_after_joining_a_room() {
    let s = serve("waitingRoom: 'lobby', leaveWaitingRoom: false", portals);
    let mut ann = Ws::open(s.addr, "/ws/chat");
    let joined = ann.call(json!({ "event": "join", "room": "game" }));
    assert_eq!(joined["rooms"], json!(["game", "lobby"]));
}

#[test]
fn without_a_waiting_room_a_connection_is_in_no_room() {
    let s = serve("", portals);
    let mut ann = Ws::open(s.addr, "/ws/chat");
    assert_eq!(ann.call(json!({ "event": "rooms" }))["rooms"], json!([]));
}

// ---------------------------------------------------------------------------
// The altruist_portal example (built by `cargo test`, or `cargo build --examples`)

/// The example's JWT secret, passed in `ALTRUIST_JWT_SECRET`.
const EXAMPLE_SECRET: &str = "altruist-portal-test-secret-0123456789";

/// Starts the example on a free port, from the crate's folder (for `site/`).
fn start_example() -> Running {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let mut command = Command::new(profile.join("examples").join("altruist_portal"));
    command
        .arg("127.0.0.1:0")
        .env("ALTRUIST_JWT_SECRET", EXAMPLE_SECRET)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null());
    start_command(command, &[])
}

/// A token for `sub` signed with HS256 under `secret`, good for an hour.
fn token(secret: &str, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(json!({ "sub": sub, "exp": now + 3600 }).to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[test]
fn the_example_answers_altruists_snippet_in_the_lobby_and_on_both_portals() {
    let ex = start_example();
    // Altruist's client: ws://host/ws, a handshake then a chat, both with messageCode 4.
    let mut snippet = Ws::open(ex.addr, "/ws");
    let mut peer = Ws::open(ex.addr, "/ws/chat");
    let hello = snippet.call(json!({ "messageCode": 4, "event": "handshake" }));
    assert_eq!(hello["event"], "handshake");
    assert_eq!(hello["messageCode"], 4);
    let client_id = hello["clientId"].clone();
    assert!(client_id.is_string());
    snippet.send_json(&json!({ "messageCode": 4, "event": "chat", "text": "Hello server!" }));
    let want = json!({ "event": "chat", "text": "Hello server!", "clientId": client_id, "messageCode": 4 });
    assert_eq!(snippet.read_json(), want, "the sender is in the room");
    assert_eq!(peer.read_json(), want, "so is everyone in the waiting room");
    // The game portal shakes hands too; joining a room on /ws/chat leaves the lobby.
    let mut game = Ws::open(ex.addr, "/ws/game");
    let shake = game.call(json!({ "messageCode": 9, "event": "handshake" }));
    assert_eq!(
        (&shake["event"], &shake["messageCode"]),
        (&json!("handshake"), &json!(9))
    );
    let joined = peer.call(json!({ "event": "join", "room": "red" }));
    assert_eq!(joined, json!({ "event": "joined", "room": "red" }));
    snippet.send_json(&json!({ "event": "chat", "text": "still here?" }));
    assert_eq!(snippet.read_json()["text"], "still here?");
    assert_eq!(
        game.read_json()["text"],
        "still here?",
        "the game portal's connection waits in the lobby"
    );
    let own = peer.call(json!({ "event": "chat", "text": "in red" }));
    assert_eq!(
        own["text"], "in red",
        "peer heard nothing from the lobby since it left"
    );
    // The site is served beside the sockets.
    let mut http = support::Client::connect(ex.addr);
    http.send(b"GET /altruist.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(http
        .response()
        .text()
        .contains("<title>wisp · Altruist portals</title>"));
}

#[test]
fn the_examples_shielded_portal_takes_a_jwt() {
    let ex = start_example();
    let request = support::ws::upgrade_request("/ws/secure", "");
    let (resp, _) = Ws::handshake(ex.addr, request.as_bytes());
    assert_eq!(resp.status, 401, "no token");
    let forged = token("another-secret-of-enough-length-000", "eve");
    let request =
        support::ws::upgrade_request("/ws/secure", &format!("Authorization: Bearer {forged}\r\n"));
    assert_eq!(
        Ws::handshake(ex.addr, request.as_bytes()).0.status,
        401,
        "a forged token"
    );
    let good = token(EXAMPLE_SECRET, "ann");
    let mut ws = Ws::open_with(
        ex.addr,
        "/ws/secure",
        &format!("Authorization: Bearer {good}\r\n"),
    )
    .1;
    assert_eq!(ws.call(json!({ "event": "whoami" }))["sub"], "ann");
    let mut ws = Ws::open(ex.addr, &format!("/ws/secure?access_token={good}"));
    assert_eq!(
        ws.call(json!({ "event": "whoami", "messageCode": 2 })),
        json!({ "event": "whoami", "sub": "ann", "messageCode": 2 })
    );
}

// ---------------------------------------------------------------------------
// MessagePack

/// Sends `packet` as MessagePack in a binary message.
fn send_msgpack(ws: &mut Ws, packet: &Value) {
    ws.send_binary(&rmp_serde::to_vec_named(packet).unwrap());
}

/// Reads a binary message and decodes it from MessagePack.
fn read_msgpack(ws: &mut Ws) -> Value {
    let frame = ws.read_frame();
    assert_eq!(frame.opcode, BINARY, "a binary message: {frame:?}");
    rmp_serde::from_slice(&frame.payload).unwrap()
}

#[test]
fn a_messagepack_packet_is_answered_in_messagepack_with_its_code() {
    let (tx, codecs) = mpsc::channel();
    let s = serve("", move || {
        Portals::new("/ws").portal(
            Portal::new("/game")
                .gate("handshake", handshake)
                .on_packet(move |_ws, codec| tx.send(codec).unwrap()),
        )
    });
    let mut ws = Ws::open(s.addr, "/ws/game");
    send_msgpack(&mut ws, &json!({ "messageCode": 4, "event": "handshake" }));
    let reply = read_msgpack(&mut ws);
    assert_eq!(
        (&reply["event"], &reply["messageCode"]),
        (&json!("handshake"), &json!(4))
    );
    assert_eq!(
        ws.call(json!({ "messageCode": 5, "event": "handshake" }))["messageCode"],
        5
    );
    let seen: Vec<Codec> = (0..2)
        .map(|_| codecs.recv_timeout(IO_TIMEOUT).unwrap())
        .collect();
    assert_eq!(
        seen,
        [Codec::MessagePack, Codec::Json],
        "the packet hook saw each codec"
    );
}

#[test]
fn portals_pinned_to_messagepack_refuse_json() {
    let s = serve("", || portals().codec(Codec::MessagePack));
    let mut ws = Ws::open(s.addr, "/ws/game");
    ws.send_json(&json!({ "messageCode": 4, "event": "handshake" }));
    let error = read_msgpack(&mut ws);
    assert_eq!(error["event"], "error");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("text messages are not supported"),
        "{error}"
    );
    send_msgpack(&mut ws, &json!({ "messageCode": 4, "event": "handshake" }));
    assert_eq!(read_msgpack(&mut ws)["messageCode"], 4);
}

#[test]
fn the_examples_chat_reaches_each_member_in_its_own_codec() {
    let ex = start_example();
    let mut packer = Ws::open(ex.addr, "/ws/chat");
    let mut texter = Ws::open(ex.addr, "/ws/game");
    let mut silent = Ws::open(ex.addr, "/ws");
    send_msgpack(
        &mut packer,
        &json!({ "messageCode": 4, "event": "handshake" }),
    );
    let id = read_msgpack(&mut packer)["clientId"].clone();
    assert_eq!(
        texter.call(json!({ "event": "handshake" }))["event"],
        "handshake"
    );
    send_msgpack(
        &mut packer,
        &json!({ "messageCode": 4, "event": "chat", "text": "Hello server!" }),
    );
    let want =
        json!({ "event": "chat", "text": "Hello server!", "clientId": id, "messageCode": 4 });
    assert_eq!(
        read_msgpack(&mut packer),
        want,
        "the sender, in MessagePack"
    );
    assert_eq!(texter.read_json(), want, "a JSON client, in JSON");
    assert_eq!(
        silent.read_json(),
        want,
        "one that has not spoken yet, in JSON"
    );
}
