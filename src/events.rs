//! Server-Sent Events (the WHATWG HTML standard's `text/event-stream`): a
//! response that stays open and carries events, for a browser's
//! `EventSource`.
//!
//! An event stream is a member of the [`Hub`] like a WebSocket, with an id:
//! it joins rooms, and what is sent or published to it —
//! [`Hub::send`], [`Hub::publish`], [`ServerHandle::publish`](crate::ServerHandle::publish)
//! from another thread — goes out as an event whose `data` is the message's
//! text (one `data:` line per line). Inside the stream's callbacks,
//! [`EventStream::send_event`] also names the event and gives it an id. The
//! stream's output is bounded by `webSockets.maxBackpressure` like a
//! WebSocket's (what does not fit is dropped and counted, and
//! [`EventSource::on_drain`] says when there is room again); an idle stream
//! gets a comment line every `timeouts.keepalive`, so proxies keep it open.

use crate::http::request::Request;
use crate::http::response::Response;
use crate::hub::{Hub, RoomError};
use crate::message::ConnId;

/// One event, as [`EventStream::send_event`] writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    name: Option<String>,
    id: Option<String>,
    data: String,
}

impl Event {
    /// An unnamed event (`message` to an `EventSource`) carrying `data`.
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Names the event: the `EventSource` listener for that name gets it.
    pub fn name(mut self, name: impl Into<String>) -> Event {
        self.name = Some(name.into());
        self
    }

    /// Gives the event an id: a reconnecting `EventSource` sends the last
    /// one it saw as `Last-Event-ID`.
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.id = Some(id.into());
        self
    }

    /// Appends the event in the wire format. A line break in the name or id
    /// would end the field early, so they are cut at the first one.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let first_line = |s: &str| s.split(['\r', '\n']).next().unwrap_or("").to_string();
        if let Some(name) = &self.name {
            field(out, b"event", first_line(name).as_bytes());
        }
        if let Some(id) = &self.id {
            // An id with a NUL is ignored by the client (WHATWG): leave it out.
            let id = first_line(id);
            if !id.contains('\0') {
                field(out, b"id", id.as_bytes());
            }
        }
        write_data(self.data.as_bytes(), out);
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Appends `data` as one event's `data:` lines (a line break of any kind
/// starts a new one) and the blank line that ends the event.
pub(crate) fn write_data(data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        let (line, next) = match end {
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                (&rest[..i], Some(&rest[i + skip..]))
            }
            None => (rest, None),
        };
        field(out, b"data", line);
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    out.push(b'\n');
}

/// The comment an idle stream gets so that nothing on the way times it out.
pub(crate) const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The response head that opens a stream. No length and no chunking: the
/// stream ends when the connection does.
pub(crate) fn write_head(out: &mut Vec<u8>, date: &str, extra: &[(String, String)]) {
    let mut w = crate::http::response::HeadWriter::start(out, 200, date, extra);
    w.header("Content-Type", "text/event-stream");
    w.header("Cache-Control", "no-cache");
    // nginx and the like would otherwise buffer the stream.
    w.header("X-Accel-Buffering", "no");
    w.finish(None, false);
}

/// An open event stream, as its callbacks see it.
pub struct EventStream<'a> {
    pub(crate) id: ConnId,
    pub(crate) hub: &'a mut Hub,
    pub(crate) out: &'a mut Vec<u8>,
}

impl std::fmt::Debug for EventStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EventStream<'_> {
    /// The stream's id: what [`Hub::send`] and
    /// [`ServerHandle::send`](crate::ServerHandle::send) take.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Sends an event with `data` (an unnamed `message` event).
    pub fn send(&mut self, data: &str) {
        write_data(data.as_bytes(), self.out);
    }

    /// Sends `event`, with its name and id.
    pub fn send_event(&mut self, event: &Event) {
        event.write(self.out);
    }

    /// Tells the client how long to wait before reconnecting (`retry:`).
    pub fn retry(&mut self, after: std::time::Duration) {
        field(self.out, b"retry", after.as_millis().to_string().as_bytes());
        self.out.push(b'\n');
    }

    /// Joins `room`: what is published there reaches this stream.
    pub fn join(&mut self, room: &str) -> Result<(), RoomError> {
        self.hub.join(self.id, room)
    }

    /// Leaves `room`.
    pub fn leave(&mut self, room: &str) -> bool {
        self.hub.leave(self.id, room)
    }

    /// Every connection, room and timer.
    pub fn hub(&mut self) -> &mut Hub {
        self.hub
    }
}

/// A handler of event streams, registered with
/// [`Server::events`](crate::Server::events) on a path of an `action` route.
///
/// A closure `|req, stream| -> Result<(), Response>` is one: its `on_open`.
pub trait EventSource: 'static {
    /// A client asked for the stream (a `GET`; `req.header("last-event-id")`
    /// says where a reconnecting one left off). `Ok` opens it: the head goes
    /// out, then whatever was sent here. `Err` answers with that response
    /// instead (a 401, a 404, …).
    fn on_open(&mut self, req: &Request<'_>, stream: &mut EventStream<'_>) -> Result<(), Response>;

    /// The stream's output fell below half of `webSockets.maxBackpressure`
    /// after some events were dropped for it: a producer may resume.
    fn on_drain(&mut self, _stream: &mut EventStream<'_>) {}

    /// The stream ended: the client went away or the server is stopping.
    fn on_close(&mut self, _id: ConnId, _hub: &mut Hub) {}
}

impl<F> EventSource for F
where
    F: FnMut(&Request<'_>, &mut EventStream<'_>) -> Result<(), Response> + 'static,
{
    fn on_open(&mut self, req: &Request<'_>, stream: &mut EventStream<'_>) -> Result<(), Response> {
        self(req, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn data_is_one_line_per_line_then_a_blank_line() {
        assert_eq!(text(|o| write_data(b"hello", o)), "data: hello\n\n");
        assert_eq!(text(|o| write_data(b"", o)), "data: \n\n");
        assert_eq!(
            text(|o| write_data(b"a\nb\r\nc\rd\n", o)),
            "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
        );
    }

    #[test]
    fn a_named_event_with_an_id_and_no_field_injection() {
        let e = Event::new("{\"x\":1}").name("stats").id("7");
        assert_eq!(
            text(|o| e.write(o)),
            "event: stats\nid: 7\ndata: {\"x\":1}\n\n"
        );
        let sneaky = Event::new("x").name("a\ndata: forged").id("1\nevent: b");
        assert_eq!(text(|o| sneaky.write(o)), "event: a\nid: 1\ndata: x\n\n");
        assert_eq!(text(|o| Event::new("x").id("a\0b").write(o)), "data: x\n\n");
    }
}
