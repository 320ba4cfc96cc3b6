//! `/ws/chat`: rooms over a small JSON protocol (text frames).
//!
//! - `{"event":"join","room":"lobby","name":"ann"}` → the sender gets
//!   `{"event":"joined","room":"lobby","members":["ann",…]}`; the others in the
//!   room get `{"event":"presence","room":"lobby","name":"ann","joined":true}`.
//! - `{"event":"say","room":"lobby","text":"hi"}` → everyone in the room,
//!   sender included, gets `{"event":"said","room":"lobby","from":"ann","text":"hi"}`.
//! - `{"event":"leave","room":"lobby"}`, and disconnecting, → the others get
//!   `{"event":"presence","room":"lobby","name":"ann","joined":false}`.
//! - `{"event":"whoami"}` → `{"event":"you","id":"…"}`: the connection's id
//!   (with workers and a backplane it names the worker and node).
//! - `{"event":"tell","to":"<id>","text":"hi"}` → that connection, on any
//!   worker or node, gets `{"event":"told","from":"ann","text":"hi"}`.
//! - Anything else → `{"event":"error","error":"…"}`; the connection stays open.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use wisp::{CloseCode, ConnId, Handler, Message, WebSocket};

/// Longest room or member name, in characters.
const MAX_NAME: usize = 64;
/// Longest chat line, in characters.
const MAX_TEXT: usize = 4096;

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase", deny_unknown_fields)]
enum Request {
    Join { room: String, name: String },
    Say { room: String, text: String },
    Leave { room: String },
    Whoami,
    Tell { to: String, text: String },
}

/// The chat: one handler for every connection, so it knows everyone's name.
#[derive(Default)]
pub struct Chat {
    names: HashMap<ConnId, String>,
}

impl Handler for Chat {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            return error(ws, "send JSON in text messages");
        };
        let outcome = match serde_json::from_str::<Request>(text) {
            Ok(Request::Join { room, name }) => self.join(ws, &room, name),
            Ok(Request::Say { room, text }) => self.say(ws, &room, &text),
            Ok(Request::Leave { room }) => self.leave(ws, &room),
            Ok(Request::Whoami) => {
                let you = json!({ "event": "you", "id": ws.id().to_string() });
                ws.send_json(&you);
                Ok(())
            }
            Ok(Request::Tell { to, text }) => self.tell(ws, &to, &text),
            Err(e) => Err(format!("bad request: {e}")),
        };
        if let Err(e) = outcome {
            error(ws, &e);
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, ()>, _code: CloseCode, _reason: &str) {
        let rooms: Vec<String> = ws.rooms().map(str::to_string).collect();
        for room in rooms {
            self.presence(ws, &room, false);
        }
        self.names.remove(&ws.id());
    }
}

impl Chat {
    fn join(&mut self, ws: &mut WebSocket<'_, ()>, room: &str, name: String) -> Result<(), String> {
        check_name("room", room)?;
        check_name("name", &name)?;
        let already = ws.in_room(room);
        ws.join(room)
            .map_err(|e| format!("cannot join {room}: {e}"))?;
        self.names.insert(ws.id(), name);
        let mut members: Vec<&str> = ws
            .members(room)
            .filter_map(|id| self.names.get(&id).map(String::as_str))
            .collect();
        members.sort_unstable();
        let joined = json!({ "event": "joined", "room": room, "members": members });
        ws.send_json(&joined);
        if !already {
            self.presence(ws, room, true);
        }
        Ok(())
    }

    fn say(&mut self, ws: &mut WebSocket<'_, ()>, room: &str, text: &str) -> Result<(), String> {
        if !ws.in_room(room) {
            return Err(format!("you have not joined {room}"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!("text is longer than {MAX_TEXT} characters"));
        }
        let from = self.names.get(&ws.id()).map_or("", String::as_str);
        let said = json!({ "event": "said", "room": room, "from": from, "text": text }).to_string();
        ws.publish(room, Message::Text(&said), None);
        Ok(())
    }

    fn tell(&mut self, ws: &mut WebSocket<'_, ()>, to: &str, text: &str) -> Result<(), String> {
        let id: ConnId = to.parse().map_err(|e| format!("tell {to:?}: {e}"))?;
        if text.chars().count() > MAX_TEXT {
            return Err(format!("text is longer than {MAX_TEXT} characters"));
        }
        let from = self.names.get(&ws.id()).map_or("", String::as_str);
        let told = json!({ "event": "told", "from": from, "text": text }).to_string();
        match ws.send_to(id, Message::Text(&told)) {
            wisp::SendStatus::Queued => Ok(()),
            other => Err(format!("tell {to}: {other:?}")),
        }
    }

    fn leave(&mut self, ws: &mut WebSocket<'_, ()>, room: &str) -> Result<(), String> {
        if !ws.leave(room) {
            return Err(format!("you have not joined {room}"));
        }
        self.presence(ws, room, false);
        Ok(())
    }

    /// Tells the others in `room` that this connection came or went.
    fn presence(&self, ws: &mut WebSocket<'_, ()>, room: &str, joined: bool) {
        let name = self.names.get(&ws.id()).map_or("", String::as_str);
        let event = json!({ "event": "presence", "room": room, "name": name, "joined": joined })
            .to_string();
        let me = ws.id();
        ws.publish(room, Message::Text(&event), Some(me));
    }
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    match value.chars().count() {
        0 => Err(format!("{what} must not be empty")),
        n if n > MAX_NAME => Err(format!("{what} is longer than {MAX_NAME} characters")),
        _ => Ok(()),
    }
}

fn error(ws: &mut WebSocket<'_, ()>, message: &str) {
    ws.send_json(&json!({ "event": "error", "error": message }));
}
