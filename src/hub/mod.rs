//! The hub: every WebSocket by id, rooms, fan-out, timers and counters.
//!
//! This file holds the connections, the sends to one, some or all of them
//! and their way across workers, and the timers and counters; rooms and the
//! waiting room are `rooms.rs`, the outbox's types and the frames shared by
//! many recipients `outbox.rs` (each an `impl Hub` where it needs the hub).
//!
//! Handlers reach other connections through the hub while their own
//! connection is being served, so nothing is written to another socket
//! there and then: a send to others encodes its frame once into shared
//! bytes and leaves a [`Delivery`] in the outbox, which the reactor hands to
//! each recipient's output queue as soon as the callback returns.

mod outbox;
mod rooms;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use crate::cluster::{Cluster, Payload, Remote};
use crate::http::response::Response;
use crate::message::{ConnId, Message, SendStatus};
use crate::stats::Stats;
use crate::user_timers::{TimerId, TimerQueue};
use crate::ws::close_code::CloseCode;
use crate::ws::deflate;

use outbox::frame_message;
pub(crate) use outbox::{AnswerPart, Delivery, Frames, StateFilter, Targets};
pub use rooms::RoomError;
pub(crate) use rooms::{RoomLimits, WaitingRoom};

/// A global timer's work: runs with the hub.
pub(crate) type GlobalFn = Box<dyn FnMut(&mut Hub)>;

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

    pub(super) fn id(key: usize, serial: u64) -> ConnId {
        ConnId { key, serial }
    }

    pub(super) fn hub() -> Hub {
        Hub::new(RoomLimits {
            per_connection: 2,
            members: 3,
        })
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
}
