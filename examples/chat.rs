//! Rooms: every path under `/ws/room/` is a room; each text message is
//! published to everyone in it.
//!
//! ```text
//! cargo run --example chat                  # ws://127.0.0.1:8080/ws/room/NAME
//! cargo run --example chat -- 127.0.0.1:0   # any free port; the banner says which
//! ```

use wisp::{CloseCode, Config, Handler, Message, Server, WebSocket};

/// Per connection: the room it is in.
#[derive(Default)]
struct Member {
    room: String,
}

struct Rooms;

impl Handler for Rooms {
    type State = Member;

    fn on_open(&mut self, ws: &mut WebSocket<'_, Member>) {
        let room = ws.path().trim_start_matches("/ws/room/").to_string();
        if room.is_empty() || ws.join(&room).is_err() {
            ws.close(CloseCode::POLICY, "no such room, or it is full");
            return;
        }
        let hello = format!("{} joined {room} ({} here)", ws.id(), ws.room_size(&room));
        let me = ws.id();
        ws.publish(&room, Message::Text(&hello), Some(me)); // everyone else
        ws.send_text(&format!("welcome to {room}"));
        ws.state_mut().room = room;
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, Member>, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            let line = format!("{}: {text}", ws.id());
            let room = ws.state().room.clone();
            // One encode, shared by every member's output queue.
            ws.publish(&room, Message::Text(&line), None);
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, Member>, _code: CloseCode, _reason: &str) {
        // The connection leaves its rooms by itself; tell the others.
        let room = ws.state().room.clone();
        let bye = format!("{} left", ws.id());
        let me = ws.id();
        ws.publish(&room, Message::Text(&bye), Some(me));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::parse(
        "{ web: { routes: [ { match: '/ws/', handler: 'action', methods: ['GET'] } ] } }",
        ".".as_ref(),
    )?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }
    let mut server = Server::bind(config)?;
    server.websocket("/ws/room/", Rooms);
    for addr in server.local_addrs() {
        println!("chat: ws://{addr}/ws/room/NAME");
    }
    server.run()?;
    Ok(())
}
