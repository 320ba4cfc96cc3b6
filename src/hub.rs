//! The hub: every WebSocket by id, rooms, fan-out, timers and counters.
//!
//! Handlers reach other connections through the hub while their own
//! connection is being served, so nothing is written to another socket
//! there and then: a send to others encodes its frame once into shared
//! bytes and leaves a [`Delivery`] in the outbox, which the reactor hands to
//! each recipient's output queue as soon as the callback returns.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use crate::cluster::{Cluster, Payload, Remote};
use crate::http::response::Response;
use crate::message::{ConnId, Message, SendStatus};
use crate::stats::Stats;
use crate::user_timers::{TimerId, TimerQueue};
use crate::ws::close_code::CloseCode;
use crate::ws::deflate::{self, Outgoing};
use crate::ws::frame::{frame_payload_len, write_header};
use crate::ws::opcode::OpCode;

/// Why a connection could not join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// The connection is in `limits.roomsPerConnection` rooms already.
    TooManyRooms,
    /// The room has `limits.roomMembers` members already.
    RoomFull,
    /// The id is not an open WebSocket.
    Closed,
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoomError::TooManyRooms => "too many rooms for one connection",
            RoomError::RoomFull => "the room is full",
            RoomError::Closed => "the connection is closed",
        })
    }
}

impl std::error::Error for RoomError {}

/// A global timer's work: runs with the hub.
pub(crate) type GlobalFn = Box<dyn FnMut(&mut Hub)>;

/// A predicate over a connection's state, for [`Hub::send_where`].
pub(crate) type StateFilter = Box<dyn Fn(ConnId, &dyn Any) -> bool>;

/// Who a shared frame goes to.
pub(crate) enum Targets {
    One(ConnId),
    All,
    /// Every WebSocket served by the handler at this index.
    Handler(usize),
    Room(Rc<str>),
    Where(StateFilter),
}

/// Work the reactor does for other connections once a callback returns.
pub(crate) enum Delivery {
    Frame {
        to: Targets,
        frame: Frames,
        except: [Option<ConnId>; 2],
    },
    Close {
        to: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// Frames one leg of a proxied WebSocket relays to the other, framed
    /// for it already.
    Relay { to: ConnId, frame: Vec<u8> },
    /// A later answer to a request an action answered `Response::later`.
    Answer { to: ConnId, part: AnswerPart },
}

/// A piece of a later answer.
#[derive(Debug)]
pub(crate) enum AnswerPart {
    /// The whole response.
    Whole(Response),
    /// The head of a response whose body follows in pieces.
    Head(Response),
    /// A piece of that body.
    Piece(Vec<u8>),
    /// The body's end.
    End,
}

/// A live WebSocket: which serial holds the slab slot and which handler serves it.
/// Sixteen bytes (`Option<Slot>` too, in the flag's spare values): every
/// open WebSocket has one, so the handler's index is a `u32` like
/// `ConnInfo::handler`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    serial: u64,
    handler: u32,
    /// A Server-Sent Events stream rather than a WebSocket.
    stream: bool,
}

/// Room bounds (from `limits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomLimits {
    pub per_connection: usize,
    pub members: usize,
}

/// `webSockets.waitingRoom`: the room every WebSocket joins as it opens.
#[derive(Debug, Clone)]
pub(crate) struct WaitingRoom {
    pub name: Rc<str>,
    /// Left when the connection joins its first other room (`leaveWaitingRoom`).
    pub leave_on_join: bool,
}

/// Every WebSocket connection, the rooms, the server's timers and counters.
///
/// Inside a callback the [`WebSocket`](crate::WebSocket) offers the same
/// operations with the current connection in mind; a `Hub` itself is what
/// global timers ([`Server::every`](crate::Server::every)) and
/// [`ServerHandle::run`](crate::ServerHandle::run) closures get.
pub struct Hub {
    /// Live WebSockets by slab key.
    sockets: Vec<Option<Slot>>,
    open: usize,
    rooms: HashMap<Rc<str>, HashSet<ConnId>>,
    joined: HashMap<ConnId, Vec<Rc<str>>>,
    limits: RoomLimits,
    waiting: Option<WaitingRoom>,
    pub(crate) outbox: Vec<Delivery>,
    pub(crate) timers: TimerQueue<GlobalFn>,
    pub(crate) stats: Stats,
    /// permessage-deflate's shared compressors and inflaters.
    pub(crate) deflate: deflate::Shared,
    /// The other workers and the backplane; `None` for a lone loop.
    pub(crate) cluster: Option<Cluster>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("sockets", &self.open)
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}

/// A message framed once for all its recipients: as it is, and — when
/// compression is on and the message is worth it — compressed once, from a
/// fresh state, for every recipient that negotiated permessage-deflate.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    pub plain: Rc<[u8]>,
    /// Compressed by the shared compressor of `bits` window bits.
    deflated: Option<Rc<[u8]>>,
    bits: u8,
}

impl Frames {
    /// One frame for everyone.
    pub(crate) fn plain(frame: Rc<[u8]>) -> Frames {
        Frames {
            plain: frame,
            deflated: None,
            bits: 15,
        }
    }

    /// The frame for a recipient that compresses as `outgoing`: the
    /// compressed one if its window takes it (a connection that keeps its
    /// own context gets the plain one, which leaves that context alone).
    #[inline]
    pub(crate) fn to(&self, outgoing: Outgoing) -> &Rc<[u8]> {
        match (&self.deflated, outgoing) {
            (Some(deflated), Outgoing::Shared(bits)) if bits >= self.bits => deflated,
            _ => &self.plain,
        }
    }

    /// The message's length, as the counters count it.
    pub(crate) fn payload_len(&self) -> usize {
        frame_payload_len(&self.plain)
    }
}

/// The message a server frame (unmasked, whole) carries; `None` for a
/// control frame.
fn frame_message(frame: &[u8]) -> Option<Message<'_>> {
    let payload = frame.get(frame.len() - frame_payload_len(frame)..)?;
    match frame.first().map(|b| b & 0x0f) {
        Some(1) => Some(match std::str::from_utf8(payload) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(payload),
        }),
        Some(2) => Some(Message::Binary(payload)),
        _ => None,
    }
}

/// Encodes a message as one server frame.
pub(crate) fn encode(msg: Message<'_>) -> Rc<[u8]> {
    let (opcode, payload) = match msg {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
    };
    let mut frame = Vec::with_capacity(payload.len() + 10);
    write_header(&mut frame, true, opcode, payload.len());
    frame.extend_from_slice(payload);
    frame.into()
}

impl Hub {
    pub(crate) fn new(limits: RoomLimits) -> Hub {
        Hub {
            sockets: Vec::new(),
            open: 0,
            rooms: HashMap::new(),
            joined: HashMap::new(),
            limits,
            waiting: None,
            outbox: Vec::new(),
            timers: TimerQueue::default(),
            stats: Stats::default(),
            deflate: deflate::Shared::default(),
            cluster: None,
        }
    }

    /// The hub with permessage-deflate as `webSockets.compression` says.
    pub(crate) fn with_compression(mut self, settings: crate::config::Compression) -> Hub {
        self.deflate = deflate::Shared::new(settings);
        self
    }

    /// The hub with a waiting room every WebSocket joins as it opens.
    pub(crate) fn with_waiting_room(mut self, waiting: Option<WaitingRoom>) -> Hub {
        self.waiting = waiting;
        self
    }

    /// Frames a message for many recipients, compressing it once if that is
    /// worth it (see [`Frames`]).
    pub(crate) fn encode(&mut self, msg: Message<'_>) -> Frames {
        let mut frames = Frames::plain(encode(msg));
        let payload = msg.as_bytes();
        let anyone = self.deflate.sharing > 0;
        if anyone && self.deflate.settings.enable && self.deflate.worth(payload.len()) {
            let bits = self.deflate.settings.window_bits;
            let opcode = match msg {
                Message::Text(_) => OpCode::Text,
                Message::Binary(_) => OpCode::Binary,
            };
            let mut out = Vec::new();
            self.deflate
                .compressor(bits)
                .write_frame(&mut out, opcode, payload);
            frames.deflated = Some(out.into());
            frames.bits = bits;
        }
        frames
    }

    /// A connection became a WebSocket served by `handler`.
    pub(crate) fn add_socket(&mut self, id: ConnId, handler: usize) {
        self.add_member(id, handler, false);
        self.stats.websockets_open += 1;
        self.stats.websockets_total += 1;
        if let Some(waiting) = &self.waiting {
            let room = Rc::clone(&waiting.name);
            // A full waiting room (`limits.roomMembers`) leaves the
            // connection outside it; it is served all the same.
            if let Err(e) = self.join(id, &room) {
                log::debug!("{id} stays out of the waiting room {room:?}: {e}");
            }
        }
    }

    /// A connection became a Server-Sent Events stream served by `handler`:
    /// a member like a WebSocket (sends, rooms, broadcasts reach it).
    pub(crate) fn add_stream(&mut self, id: ConnId, handler: usize) {
        self.add_member(id, handler, true);
        self.stats.events_open += 1;
        self.stats.events_total += 1;
    }

    fn add_member(&mut self, id: ConnId, handler: usize, stream: bool) {
        if self.sockets.len() <= id.key {
            self.sockets.resize(id.key + 1, None);
        }
        self.sockets[id.key] = Some(Slot {
            serial: id.serial,
            handler: handler as u32,
            stream,
        });
        self.open += 1;
    }

    /// A WebSocket or event stream is gone: it leaves every room, and its id goes stale.
    pub(crate) fn remove_socket(&mut self, id: ConnId) {
        let Some(Some(slot)) = self.sockets.get(id.key).copied() else {
            return;
        };
        if slot.serial != id.serial {
            return;
        }
        self.sockets[id.key] = None;
        self.open -= 1;
        if slot.stream {
            self.stats.events_open -= 1;
        } else {
            self.stats.websockets_open -= 1;
        }
        for room in self.joined.remove(&id).unwrap_or_default() {
            self.drop_member(&room, id);
        }
    }

    /// True while `id` is an open WebSocket.
    pub fn is_open(&self, id: ConnId) -> bool {
        matches!(self.sockets.get(id.key), Some(Some(s)) if s.serial == id.serial)
    }

    /// The number of open WebSockets and event streams.
    pub fn sockets(&self) -> usize {
        self.open
    }

    /// The ids of every open WebSocket and event stream.
    pub fn socket_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.sockets.iter().enumerate().filter_map(|(key, slot)| {
            slot.map(|s| ConnId {
                key,
                serial: s.serial,
            })
        })
    }

    /// The handler serving an open WebSocket.
    pub(crate) fn handler_of(&self, id: ConnId) -> Option<usize> {
        match self.sockets.get(id.key) {
            Some(Some(s)) if s.serial == id.serial => Some(s.handler as usize),
            _ => None,
        }
    }

    /// Sends a message to one connection. [`SendStatus::Closed`] if it is not an open WebSocket.
    ///
    /// With several workers or a backplane, a connection of another worker
    /// or node is reached through its queue: [`SendStatus::Queued`] once it
    /// is queued there (whether it is still open is known only there),
    /// [`SendStatus::Dropped`] when that queue is full or the node is out of
    /// reach.
    pub fn send(&mut self, to: ConnId, msg: Message<'_>) -> SendStatus {
        if let Some(cluster) = &self.cluster {
            if cluster.is_remote(to) {
                if cluster.send(to, msg) {
                    return SendStatus::Queued;
                }
                self.stats.cluster_dropped += 1;
                return SendStatus::Dropped;
            }
        }
        let Some(to) = self.found(to) else {
            return SendStatus::Closed;
        };
        let frames = self.encode(msg);
        self.deliver(Targets::One(to), frames, [None, None]);
        SendStatus::Queued
    }

    /// The open connection `id` names, with its slot (an id read from text
    /// has none yet).
    fn found(&self, id: ConnId) -> Option<ConnId> {
        if id.key != usize::MAX {
            return self.is_open(id).then_some(id);
        }
        self.socket_ids().find(|open| open.serial == id.serial)
    }

    /// Sends a message to every open WebSocket but `except` (with several
    /// workers or a backplane, on every worker and node).
    pub fn broadcast(&mut self, msg: Message<'_>, except: Option<ConnId>) {
        let frames = self.encode(msg);
        self.deliver(Targets::All, frames, [except, None]);
    }

    /// Hands a room publish or a broadcast to the other workers and the
    /// backplane, as the message its frame carries.
    #[cold]
    fn spread(&mut self, room: Option<&str>, frame: &Frames, except: Option<ConnId>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Some(msg) = frame_message(&frame.plain) else {
            return;
        };
        let msg = Payload::of(msg);
        let remote = match room {
            Some(room) => Remote::Publish {
                room: room.into(),
                msg,
                except,
            },
            None => Remote::Broadcast { msg, except },
        };
        self.stats.cluster_dropped += cluster.spread(&remote);
    }

    /// This loop is gone (it panicked): its members leave the room counts
    /// the other workers read.
    pub(crate) fn leave_cluster(&mut self) {
        if let Some(cluster) = &self.cluster {
            for (room, members) in &self.rooms {
                for _ in members {
                    cluster.count(room, false);
                }
            }
        }
        self.cluster = None;
    }

    /// Does what another worker or node asked, for this loop's connections only.
    pub(crate) fn apply(&mut self, remote: Remote) {
        match remote {
            Remote::Publish { room, msg, except } => {
                let frames = self.encode(msg.message());
                self.publish_here(&room, frames, [except, None]);
            }
            Remote::Broadcast { msg, except } => {
                let frames = self.encode(msg.message());
                self.deliver_here(Targets::All, frames, [except, None]);
            }
            Remote::Send { to, msg } => {
                if let Some(to) = self.found(to) {
                    let frames = self.encode(msg.message());
                    self.deliver(Targets::One(to), frames, [None, None]);
                }
            }
        }
    }

    /// Sends a message to every WebSocket whose state is an `S` and passes `filter`.
    pub fn send_where<S: 'static>(
        &mut self,
        msg: Message<'_>,
        filter: impl Fn(ConnId, &S) -> bool + 'static,
    ) {
        let filter: StateFilter =
            Box::new(move |id, state| state.downcast_ref::<S>().is_some_and(|s| filter(id, s)));
        let frames = self.encode(msg);
        self.deliver(Targets::Where(filter), frames, [None, None]);
    }

    /// Answers the request of connection `to` that its action answered
    /// [`Response::later`]. Nothing happens if that connection is gone or
    /// is not waiting for an answer.
    pub fn respond(&mut self, to: ConnId, response: Response) {
        self.answer(to, AnswerPart::Whole(response));
    }

    /// Starts a streamed answer to the request of connection `to` that its
    /// action answered [`Response::later`]: `head`'s status and headers go
    /// out (its body is ignored), the body follows with
    /// [`Hub::respond_piece`] (`Transfer-Encoding: chunked`) and ends with
    /// [`Hub::respond_end`]. A piece that would pass
    /// `webSockets.maxBackpressure` of unsent output closes the connection,
    /// the body cut short.
    pub fn respond_stream(&mut self, to: ConnId, head: Response) {
        self.answer(to, AnswerPart::Head(head));
    }

    /// The next piece of a streamed answer (see [`Hub::respond_stream`]).
    pub fn respond_piece(&mut self, to: ConnId, piece: impl Into<Vec<u8>>) {
        self.answer(to, AnswerPart::Piece(piece.into()));
    }

    /// Ends a streamed answer; the connection takes its next request.
    pub fn respond_end(&mut self, to: ConnId) {
        self.answer(to, AnswerPart::End);
    }

    fn answer(&mut self, to: ConnId, part: AnswerPart) {
        self.outbox.push(Delivery::Answer { to, part });
    }

    /// Starts the closing handshake of another connection.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> SendStatus {
        if !self.is_open(id) {
            return SendStatus::Closed;
        }
        self.outbox.push(Delivery::Close {
            to: id,
            code,
            reason: reason.to_string(),
        });
        SendStatus::Queued
    }

    /// Puts a connection in a room (creating the room). Joining a room twice is fine.
    pub fn join(&mut self, id: ConnId, room: &str) -> Result<(), RoomError> {
        if !self.is_open(id) {
            return Err(RoomError::Closed);
        }
        let mut rooms = self.joined.get(&id).map_or(0, Vec::len);
        if self.rooms.get(room).is_some_and(|m| m.contains(&id)) {
            return Ok(());
        }
        let leaving = self.leaves_waiting_room(id, room);
        if leaving.is_some() {
            // Its seat in the waiting room is given up for this one.
            rooms = rooms.saturating_sub(1);
        }
        if rooms >= self.limits.per_connection {
            return Err(RoomError::TooManyRooms);
        }
        if self.rooms.get(room).map_or(0, HashSet::len) >= self.limits.members {
            return Err(RoomError::RoomFull);
        }
        let name: Rc<str> = match self.rooms.get_key_value(room) {
            Some((name, _)) => Rc::clone(name),
            None => room.into(),
        };
        self.rooms.entry(Rc::clone(&name)).or_default().insert(id);
        self.joined.entry(id).or_default().push(name);
        if let Some(cluster) = &self.cluster {
            cluster.count(room, true);
        }
        if let Some(waiting) = leaving {
            self.leave(id, &waiting);
        }
        Ok(())
    }

    /// The waiting room, when joining `room` takes `id` out of it.
    fn leaves_waiting_room(&self, id: ConnId, room: &str) -> Option<Rc<str>> {
        let waiting = self.waiting.as_ref().filter(|w| w.leave_on_join)?;
        let other = &*waiting.name != room && self.in_room(id, &waiting.name);
        other.then(|| Rc::clone(&waiting.name))
    }

    /// Takes a connection out of a room; false if it was not in it.
    pub fn leave(&mut self, id: ConnId, room: &str) -> bool {
        let Some(list) = self.joined.get_mut(&id) else {
            return false;
        };
        let Some(i) = list.iter().position(|r| &**r == room) else {
            return false;
        };
        list.swap_remove(i);
        if list.is_empty() {
            self.joined.remove(&id);
        }
        self.drop_member(room, id);
        true
    }

    fn drop_member(&mut self, room: &str, id: ConnId) {
        if let Some(members) = self.rooms.get_mut(room) {
            if members.remove(&id) {
                if let Some(cluster) = &self.cluster {
                    cluster.count(room, false);
                }
            }
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Sends a message to every member of a room but `except`; returns how
    /// many it goes to. The frame is encoded once and shared by all of them.
    ///
    /// With several workers or a backplane the room spans them all: the
    /// message goes to the members everywhere, and the count is of this
    /// worker's members (the others count theirs as it arrives).
    pub fn publish(&mut self, room: &str, msg: Message<'_>, except: Option<ConnId>) -> usize {
        let frames = self.encode(msg);
        self.publish_frame(room, frames, [except, None])
    }

    /// Publishes a frame to a room: here, and with several workers or a
    /// backplane everywhere else (`except[1]`, the sender, is of this loop).
    pub(crate) fn publish_frame(
        &mut self,
        room: &str,
        frame: Frames,
        except: [Option<ConnId>; 2],
    ) -> usize {
        if self.cluster.is_some() {
            self.spread(Some(room), &frame, except[0]);
        }
        self.publish_here(room, frame, except)
    }

    /// Publishes a frame to this loop's members of a room.
    fn publish_here(&mut self, room: &str, frame: Frames, except: [Option<ConnId>; 2]) -> usize {
        let Some((name, members)) = self.rooms.get_key_value(room) else {
            return 0;
        };
        // The same id may be excluded twice (the sender, and an explicit except).
        let [a, b] = except;
        let excluded = [a, b.filter(|b| Some(*b) != a)];
        let count = members.len()
            - excluded
                .iter()
                .flatten()
                .filter(|e| members.contains(e))
                .count();
        if count > 0 {
            let to = Targets::Room(Rc::clone(name));
            self.deliver_here(to, frame, except);
        }
        count
    }

    /// The members of a room, in no particular order (on this worker: with
    /// several, [`Hub::room_size`] counts them all).
    pub fn members(&self, room: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.rooms.get(room).into_iter().flatten().copied()
    }

    /// How many members a room has (0 for a room nobody is in), on every
    /// worker of this process.
    pub fn room_size(&self, room: &str) -> usize {
        match &self.cluster {
            Some(cluster) => cluster.room_size(room),
            None => self.rooms.get(room).map_or(0, HashSet::len),
        }
    }

    /// True if the connection is in the room.
    pub fn in_room(&self, id: ConnId, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|m| m.contains(&id))
    }

    /// The rooms a connection is in.
    pub fn rooms_of(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.joined.get(&id).into_iter().flatten().map(|r| &**r)
    }

    /// Runs `f` on the loop every `period`, first after one period.
    pub fn every(
        &mut self,
        period: std::time::Duration,
        f: impl FnMut(&mut Hub) + 'static,
    ) -> TimerId {
        self.timers.add_global(period, Some(period), Box::new(f))
    }

    /// Runs `f` on the loop once, after `delay`.
    pub fn after(
        &mut self,
        delay: std::time::Duration,
        f: impl FnMut(&mut Hub) + 'static,
    ) -> TimerId {
        self.timers.add_global(delay, None, Box::new(f))
    }

    /// Cancels a timer; false if it had fired (one-shot) or was cancelled already.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer)
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn deliver(&mut self, to: Targets, frame: Frames, except: [Option<ConnId>; 2]) {
        if self.cluster.is_some() && matches!(to, Targets::All) {
            self.spread(None, &frame, except[0]);
        }
        self.deliver_here(to, frame, except);
    }

    /// Queues a frame for this loop's connections.
    fn deliver_here(&mut self, to: Targets, frame: Frames, except: [Option<ConnId>; 2]) {
        self.outbox.push(Delivery::Frame { to, frame, except });
    }

    /// The keys of the connections a frame goes to, with the expected serial.
    pub(crate) fn resolve<'a>(&'a self, to: &'a Targets) -> Box<dyn Iterator<Item = ConnId> + 'a> {
        match to {
            Targets::One(id) => Box::new(std::iter::once(*id)),
            Targets::All | Targets::Where(_) => Box::new(self.socket_ids()),
            Targets::Handler(h) => Box::new(
                self.socket_ids()
                    .filter(move |id| self.handler_of(*id) == Some(*h)),
            ),
            Targets::Room(name) => Box::new(self.members(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: usize, serial: u64) -> ConnId {
        ConnId { key, serial }
    }

    fn hub() -> Hub {
        Hub::new(RoomLimits {
            per_connection: 2,
            members: 3,
        })
    }

    #[test]
    fn rooms_join_leave_and_auto_leave() {
        let mut h = hub();
        let (a, b) = (id(0, 1), id(1, 2));
        h.add_socket(a, 0);
        h.add_socket(b, 0);
        assert_eq!(h.join(a, "lobby"), Ok(()));
        assert_eq!(h.join(a, "lobby"), Ok(()), "joining twice is fine");
        assert_eq!(h.join(b, "lobby"), Ok(()));
        assert_eq!(h.room_size("lobby"), 2);
        assert!(h.in_room(a, "lobby"));
        assert_eq!(h.rooms_of(a).collect::<Vec<_>>(), ["lobby"]);
        assert!(h.leave(a, "lobby"));
        assert!(!h.leave(a, "lobby"));
        assert_eq!(h.members("lobby").collect::<Vec<_>>(), [b]);
        h.remove_socket(b);
        assert_eq!(
            h.room_size("lobby"),
            0,
            "a closed connection leaves its rooms"
        );
        assert_eq!(h.rooms.len(), 0, "an empty room is dropped");
    }

    #[test]
    fn the_waiting_room_is_joined_on_open_and_left_for_another() {
        let waiting = |leave_on_join| {
            hub().with_waiting_room(Some(WaitingRoom {
                name: "lobby".into(),
                leave_on_join,
            }))
        };
        let mut h = waiting(true);
        let (a, b) = (id(0, 1), id(1, 2));
        h.add_socket(a, 0);
        h.add_socket(b, 0);
        h.add_stream(id(2, 3), 0);
        assert_eq!(h.room_size("lobby"), 2, "WebSockets only");
        assert_eq!(
            h.join(a, "lobby"),
            Ok(()),
            "joining it again leaves nothing"
        );
        assert!(h.in_room(a, "lobby"));
        assert_eq!(h.join(a, "r1"), Ok(()));
        assert_eq!(h.join(a, "r2"), Ok(()), "the lobby's seat was given up");
        assert_eq!(h.rooms_of(a).collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(h.members("lobby").collect::<Vec<_>>(), [b]);
        assert_eq!(h.join(a, "lobby"), Err(RoomError::TooManyRooms));

        let mut h = waiting(false);
        h.add_socket(a, 0);
        assert_eq!(h.join(a, "r1"), Ok(()));
        assert!(h.in_room(a, "lobby"), "kept when not configured to leave");
        assert_eq!(h.join(a, "r2"), Err(RoomError::TooManyRooms));
    }

    #[test]
    fn room_limits() {
        let mut h = hub();
        let ids: Vec<ConnId> = (0..4).map(|k| id(k, k as u64 + 10)).collect();
        for &i in &ids {
            h.add_socket(i, 0);
        }
        assert_eq!(h.join(ids[0], "r1"), Ok(()));
        assert_eq!(h.join(ids[0], "r2"), Ok(()));
        assert_eq!(h.join(ids[0], "r3"), Err(RoomError::TooManyRooms));
        for &i in &ids[1..3] {
            assert_eq!(h.join(i, "r1"), Ok(()));
        }
        assert_eq!(h.join(ids[3], "r1"), Err(RoomError::RoomFull));
        assert_eq!(h.join(id(9, 99), "r1"), Err(RoomError::Closed));
    }

    #[test]
    fn stale_ids_are_not_open() {
        let mut h = hub();
        h.add_socket(id(0, 1), 0);
        h.remove_socket(id(0, 1));
        h.add_socket(id(0, 2), 0);
        assert!(!h.is_open(id(0, 1)));
        assert!(h.is_open(id(0, 2)));
        assert_eq!(h.send(id(0, 1), Message::Text("x")), SendStatus::Closed);
        assert_eq!(h.send(id(0, 2), Message::Text("x")), SendStatus::Queued);
        assert_eq!(h.sockets(), 1);
    }

    #[test]
    fn a_message_for_many_is_compressed_once_and_only_for_someone() {
        let mut h = hub().with_compression(crate::config::Compression {
            enable: true,
            threshold: 10,
            ..Default::default()
        });
        let long = "telemetry ".repeat(20);
        assert!(
            h.encode(Message::Text(&long)).deflated.is_none(),
            "nobody takes it"
        );
        h.deflate.count(Outgoing::Shared(15), true);
        let frames = h.encode(Message::Text(&long));
        let deflated = frames.deflated.clone().expect("compressed once");
        assert!(deflated.len() < frames.plain.len());
        assert!(Rc::ptr_eq(frames.to(Outgoing::Shared(15)), &deflated));
        for plain in [Outgoing::Off, Outgoing::Own, Outgoing::Shared(9)] {
            assert!(Rc::ptr_eq(frames.to(plain), &frames.plain), "{plain:?}");
        }
        assert!(
            h.encode(Message::Text("short")).deflated.is_none(),
            "under the threshold"
        );
        h.deflate.count(Outgoing::Shared(15), false);
        assert!(h.encode(Message::Text(&long)).deflated.is_none());
    }

    #[test]
    fn publish_counts_recipients_and_encodes_once() {
        let mut h = hub();
        let (a, b, c) = (id(0, 1), id(1, 2), id(2, 3));
        for i in [a, b, c] {
            h.add_socket(i, 0);
            h.join(i, "r").unwrap();
        }
        assert_eq!(h.publish("r", Message::Text("hi"), Some(a)), 2);
        let frames = h.encode(Message::Text("hi"));
        let twice = h.publish_frame("r", frames, [Some(a), Some(a)]);
        assert_eq!(twice, 2, "one id excluded twice counts once");
        h.outbox.pop();
        assert_eq!(h.publish("nobody", Message::Text("hi"), None), 0);
        assert_eq!(h.outbox.len(), 1);
        let Delivery::Frame { frame, to, .. } = &h.outbox[0] else {
            panic!("a frame delivery")
        };
        assert_eq!(&frame.plain[..], b"\x81\x02hi");
        let mut got: Vec<ConnId> = h.resolve(to).collect();
        got.sort();
        assert_eq!(got, [a, b, c], "exclusion is applied when delivering");
    }
}
