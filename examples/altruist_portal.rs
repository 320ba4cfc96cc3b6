//! Altruist's portals, gates, waiting room and JWT shield, with `wisp::Portals`.
//!
//! ```text
//! cargo run --example altruist_portal                  # http://127.0.0.1:8080/altruist.html
//! cargo run --example altruist_portal -- 127.0.0.1:0   # any free port; the banner says which
//! ```
//!
//! The WebSocket transport is at `/ws` (Altruist's `websocket.path`); the
//! portals `/chat` and `/game` live under it at `/ws/chat` and `/ws/game`,
//! and a lobby portal at `/ws` itself answers Altruist's own client snippet.
//! Every connection waits in the room `lobby` until it joins another.
//!
//! ```text
//! > {"messageCode":4,"event":"handshake"}
//! < {"event":"handshake","clientId":"#1","messageCode":4}
//! > {"messageCode":4,"event":"chat","text":"Hello server!"}
//! < {"event":"chat","text":"Hello server!","clientId":"#1","messageCode":4}   (to everyone in the room)
//! > {"event":"join","room":"red"}                                  (on /ws/chat: leaves the lobby)
//! < {"event":"joined","room":"red"}
//! ```
//!
//! The shielded portal `/ws/secure` (Altruist's `[Shield(typeof(JwtAuth))]`)
//! takes a JSON Web Token signed with HS256 under `ALTRUIST_JWT_SECRET` (a
//! random secret when unset), as `Authorization: Bearer …` or
//! `?access_token=…`; the banner prints a token that is good for an hour.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use wisp::{Codec, Config, ConnId, Message, Portal, Portals, Server, WebSocket};

/// Per connection: the room it talks in, and the codec it last spoke.
struct Client {
    room: String,
    codec: Codec,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            room: LOBBY.to_string(),
            codec: Codec::Json,
        }
    }
}

/// `{"event":"chat","text":"…"}`.
#[derive(Deserialize)]
struct Chat {
    text: String,
    #[serde(rename = "messageCode")]
    message_code: Option<Value>,
}

/// `{"event":"join","room":"…"}`.
#[derive(Deserialize)]
struct Join {
    room: String,
}

/// The transport path's room for a new connection.
const LOBBY: &str = "lobby";

/// `{event:'handshake', clientId, messageCode}` (the portal adds the code).
fn handshake(ws: &mut WebSocket<'_, Client>, _: Value) -> Value {
    json!({ "event": "handshake", "clientId": ws.id().to_string() })
}

/// `{event:'chat', text, clientId}` to everyone in the sender's room, the
/// sender and the waiting room included, each in the codec it speaks.
fn chat(ws: &mut WebSocket<'_, Client>, m: Chat) -> Result<(), rmp_serde::encode::Error> {
    let mut packet = json!({ "event": "chat", "text": m.text, "clientId": ws.id().to_string() });
    if let Some(code) = m.message_code {
        packet[wisp::MESSAGE_CODE] = code;
    }
    let room = ws.state().room.clone();
    // Encoded once per codec, not once per member.
    let json = packet.to_string();
    let msgpack = rmp_serde::to_vec_named(&packet)?;
    let encoded = |codec| match codec {
        Codec::Json => Message::Text(&json),
        Codec::MessagePack => Message::Binary(&msgpack),
    };
    if ws.in_room(&room) {
        ws.send(encoded(ws.state().codec));
    }
    let members: HashSet<ConnId> = ws.members(&room).collect();
    for codec in [Codec::Json, Codec::MessagePack] {
        let members = members.clone();
        ws.send_where(encoded(codec), move |id, c: &Client| {
            c.codec == codec && members.contains(&id)
        });
    }
    Ok(())
}

/// Moves the connection to another room; the first move leaves the lobby.
fn join(ws: &mut WebSocket<'_, Client>, m: Join) -> Result<Value, wisp::RoomError> {
    ws.join(&m.room)?;
    let old = std::mem::replace(&mut ws.state_mut().room, m.room.clone());
    if old != m.room && old != LOBBY {
        ws.leave(&old);
    }
    Ok(json!({ "event": "joined", "room": m.room }))
}

/// The shielded portal's gate: who the token says you are.
fn whoami(ws: &mut WebSocket<'_, Client>, _: Value) -> Value {
    let claims = ws.claims().cloned().unwrap_or(Value::Null);
    json!({ "event": "whoami", "sub": claims["sub"] })
}

/// A portal whose connections are sent packets in the codec they last
/// spoke (JSON until they speak).
fn portal(path: &str) -> Portal<Client> {
    Portal::<Client>::new(path).on_packet(|ws, codec| ws.state_mut().codec = codec)
}

fn portals() -> Portals<Client> {
    Portals::new("/ws")
        .portal(portal("/").gate("handshake", handshake).gate("chat", chat))
        .portal(
            portal("/chat")
                .gate("handshake", handshake)
                .gate("chat", chat)
                .gate("join", join),
        )
        .portal(portal("/game").gate("handshake", handshake))
        .portal(portal("/secure").gate("whoami", whoami))
}

/// The shield's HMAC key: `ALTRUIST_JWT_SECRET`, or 32 random bytes in hex.
fn secret() -> Result<String, Box<dyn std::error::Error>> {
    if let Ok(secret) = std::env::var("ALTRUIST_JWT_SECRET") {
        return Ok(secret);
    }
    let mut bytes = [0u8; 32];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token for `sub` signed with HS256 under `secret`, good for an hour.
fn token(secret: &str, sub: &str) -> Result<String, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
    let claims = json!({ "sub": sub, "iat": now, "exp": now + 3600 });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{header}.{payload}.{signature}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = secret()?;
    // The secret goes in as a JSON string: any character is safe there.
    let config = format!(
        "{{ web: {{
            routes: [
                {{ match: '/ws/secure', handler: 'action', auth: {{ type: 'jwt', secret: {} }} }},
                {{ match: '/ws', handler: 'action' }},
                {{ match: '/ws/', handler: 'action' }},
                {{ match: '' }},   // the site, from `documents`
            ],
            webSockets: {{ waitingRoom: '{LOBBY}' }},
        }} }}",
        serde_json::to_string(&secret)?
    );
    let mut config = Config::parse(&config, ".".as_ref())?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }
    let mut server = Server::bind(config)?;
    portals().mount(&mut server)?;
    let demo = token(&secret, "demo")?;
    // One write: a reader of the first line may stop reading after it.
    let mut banner = String::new();
    for addr in server.local_addrs() {
        banner += &format!("altruist_portal: http://{addr}/altruist.html, portals ws://{addr}/ws/chat and ws://{addr}/ws/game\n");
        banner += &format!("  shielded: ws://{addr}/ws/secure?access_token={demo}\n");
    }
    print!("{banner}");
    server.run()?;
    Ok(())
}
