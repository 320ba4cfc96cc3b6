//! The WebSocket callback API: Ioto's OPEN, MESSAGE, PARTIAL_MESSAGE, ERROR
//! and CLOSE events as the methods of a [`Handler`], and the [`WebSocket`]
//! each callback gets to answer through.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use slab::Slab;

use crate::http::request::Request;
use crate::http::response::Response;
use crate::hub::{encode, Hub, RoomError, Targets};
use crate::message::{ConnId, Fragment, Message, SendStatus};
use crate::stats::{ConnStats, Stats};
use crate::turn::Turn;
use crate::user_timers::TimerId;
use crate::ws::error::WsError;
use crate::ws::frame::{write_close, write_frame};
use crate::ws::opcode::OpCode;

/// The events of a WebSocket connection, Ioto-style. Every method has an
/// empty default; implement the ones you need.
///
/// Callbacks run on the server thread: keep them short and never block. A
/// callback that panics closes its own connection with 1011; the server and
/// every other connection carry on.
///
/// ```no_run
/// use wisp::{Config, Handler, Message, Server, WebSocket};
///
/// /// Echoes every message and counts them per connection.
/// struct Echo;
///
/// impl Handler for Echo {
///     type State = u64;
///     fn on_message(&mut self, ws: &mut WebSocket<'_, u64>, msg: Message<'_>) {
///         *ws.state_mut() += 1;
///         ws.send(msg);
///     }
///     fn on_close(&mut self, ws: &mut WebSocket<'_, u64>, code: u16, _reason: &str) {
///         println!("{} closed with {code} after {} messages", ws.id(), ws.state());
///     }
/// }
///
/// let config = Config::parse("{ web: { routes: [ { match: '/ws/', handler: 'action' } ] } }", ".".as_ref())?;
/// let mut server = Server::bind(config)?;
/// server.websocket("/ws/echo", Echo);
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Handler: 'static {
    /// Per-connection data (Ioto's SetData/GetData), created with `Default`
    /// before [`Handler::on_open`] and dropped after [`Handler::on_close`].
    type State: Default + 'static;

    /// Return true to receive messages piece by piece through
    /// [`Handler::on_partial`] instead of whole through
    /// [`Handler::on_message`], so a large upload flows through in bounded
    /// memory. `limits.maxMessage` does not apply then; `limits.maxFrame` does.
    fn streaming(&self) -> bool {
        false
    }

    /// The handshake is done. The upgrade request's headers are readable here
    /// ([`WebSocket::header`]) and only here: keep what you need in the state.
    fn on_open(&mut self, ws: &mut WebSocket<'_, Self::State>) {
        let _ = ws;
    }

    /// A whole message arrived.
    fn on_message(&mut self, ws: &mut WebSocket<'_, Self::State>, msg: Message<'_>) {
        let _ = (ws, msg);
    }

    /// A piece of a message arrived (streaming handlers only).
    fn on_partial(&mut self, ws: &mut WebSocket<'_, Self::State>, fragment: Fragment<'_>) {
        let _ = (ws, fragment);
    }

    /// The connection is over: `code` is the peer's close code (1005 if its
    /// close frame had none), the code the server closed with, or 1006 when
    /// the connection dropped without a close. Called exactly once.
    fn on_close(&mut self, ws: &mut WebSocket<'_, Self::State>, code: u16, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// The peer broke the protocol; the server is closing the connection
    /// with `err.close_code()`. [`Handler::on_close`] follows.
    fn on_error(&mut self, ws: &mut WebSocket<'_, Self::State>, err: &WsError) {
        let _ = (ws, err);
    }

    /// The connection's output, which was over `webSockets.maxBackpressure`,
    /// fell below half of it: a producer that saw [`SendStatus::Dropped`] can resume.
    fn on_drain(&mut self, ws: &mut WebSocket<'_, Self::State>) {
        let _ = ws;
    }

    /// A timer set with [`WebSocket::set_timer`] fired.
    fn on_timer(&mut self, ws: &mut WebSocket<'_, Self::State>, timer: TimerId) {
        let _ = (ws, timer);
    }

    /// Decides on an upgrade request before the 101 is sent: it sees the
    /// path, query, headers, cookies and peer address. Accept it with the
    /// connection's initial state, or refuse it with any response (401, 403, …),
    /// which is sent and the connection closed. The default accepts with
    /// `State::default()`. Authentication belongs here.
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<Self::State> {
        let _ = req;
        Upgrade::Accept(Self::State::default())
    }
}

/// The verdict of [`Handler::on_upgrade`].
#[derive(Debug)]
pub enum Upgrade<S> {
    /// Upgrade, with this initial state; the subprotocol is the one the server negotiated.
    Accept(S),
    /// Upgrade with this state and this subprotocol, which must be one the client offered.
    AcceptProtocol(S, String),
    /// Do not upgrade: send this response and close the connection.
    Reject(Response),
}

/// What a callback knows about its connection and how it answers.
///
/// Sends to this connection are queued in its output and written when the
/// callback returns, in one write. Sends to other connections (by id, to a
/// room, to everyone) encode the frame once and share its bytes among all
/// recipients; they are handed to each recipient as soon as the callback
/// returns. Sends to this connection keep the order they were made in.
pub struct WebSocket<'a, S> {
    state: &'a mut S,
    link: Link<'a>,
}

impl<S> fmt::Debug for WebSocket<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.link.side.info.id)
            .field("peer", &self.link.peer)
            .field("path", &self.link.side.info.path())
            .finish_non_exhaustive()
    }
}

impl<S> WebSocket<'_, S> {
    /// Sends a message.
    pub fn send(&mut self, msg: Message<'_>) -> SendStatus {
        match msg {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.link.data(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> SendStatus {
        self.link.data(OpCode::Binary, data)
    }

    /// Sends a value serialised as JSON in a text message.
    pub fn send_json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> SendStatus {
        match serde_json::to_string(value) {
            Ok(text) => self.send_text(&text),
            Err(_) => SendStatus::Refused,
        }
    }

    /// Sends one frame of a message that goes out in several (Ioto's
    /// SendBlock): `more` is true while frames are still to come. The first
    /// call's `text` sets the message's kind. Other messages are refused until
    /// the last block (`more == false`) is sent; pings and closes may interleave.
    /// What other connections send here meanwhile waits, and goes out after
    /// the last block (within `webSockets.maxBackpressure`).
    pub fn send_block(&mut self, text: bool, data: &[u8], more: bool) -> SendStatus {
        self.link.block(text, data, more)
    }

    /// Sends a ping; the payload must be at most 125 bytes.
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        self.link.control(OpCode::Ping, payload)
    }

    /// Starts the closing handshake with a code (1000 for a normal close) and
    /// a reason (cut to 123 bytes). Nothing more can be sent afterwards; the
    /// connection ends when the peer answers, or after `webSockets.closeTimeout`.
    pub fn close(&mut self, code: u16, reason: &str) -> SendStatus {
        if self.link.side.flags.close_sent {
            return SendStatus::Closed;
        }
        self.link.side.flags.close_sent = true;
        write_close(&mut self.link.turn.scratch, code, reason);
        SendStatus::Queued
    }

    /// True once a close frame has been sent; further sends return [`SendStatus::Closed`].
    pub fn is_closing(&self) -> bool {
        self.link.side.flags.close_sent
    }

    /// Sends a message to another connection (or this one) by id;
    /// [`SendStatus::Closed`] if it is not an open WebSocket.
    pub fn send_to(&mut self, to: ConnId, msg: Message<'_>) -> SendStatus {
        if to == self.link.side.info.id {
            return self.send(msg);
        }
        self.link.hub.send(to, msg)
    }

    /// Sends a message to every open WebSocket but `except` (this one included, unless excepted).
    pub fn broadcast(&mut self, msg: Message<'_>, except: Option<ConnId>) {
        let frame = encode(msg);
        self.echo_unless(&frame, msg.as_bytes().len(), except);
        self.link
            .hub
            .deliver(Targets::All, frame, [except, Some(self.link.side.info.id)]);
    }

    /// Sends a message to every WebSocket served by this connection's handler (its route) but `except`.
    pub fn broadcast_route(&mut self, msg: Message<'_>, except: Option<ConnId>) {
        let frame = encode(msg);
        self.echo_unless(&frame, msg.as_bytes().len(), except);
        let to = Targets::Handler(self.link.side.info.handler);
        self.link
            .hub
            .deliver(to, frame, [except, Some(self.link.side.info.id)]);
    }

    /// Sends a message to every other WebSocket whose state is an `S2` and passes `filter`.
    pub fn send_where<S2: 'static>(
        &mut self,
        msg: Message<'_>,
        filter: impl Fn(ConnId, &S2) -> bool + 'static,
    ) {
        let me = self.link.side.info.id;
        self.link
            .hub
            .send_where(msg, move |id, s| id != me && filter(id, s));
    }

    /// Joins a room; fails over `limits.roomsPerConnection` or `limits.roomMembers`.
    pub fn join(&mut self, room: &str) -> Result<(), RoomError> {
        self.link.hub.join(self.link.side.info.id, room)
    }

    /// Leaves a room; false if this connection was not in it.
    pub fn leave(&mut self, room: &str) -> bool {
        self.link.hub.leave(self.link.side.info.id, room)
    }

    /// Sends a message to every member of a room but `except` (this
    /// connection included if it is a member); returns how many it goes to.
    pub fn publish(&mut self, room: &str, msg: Message<'_>, except: Option<ConnId>) -> usize {
        let frame = encode(msg);
        let me = self.link.side.info.id;
        let mine = self.link.hub.in_room(me, room)
            && except != Some(me)
            && self.echo_here(&frame, msg.as_bytes().len());
        usize::from(mine) + self.link.hub.publish_frame(room, frame, [except, Some(me)])
    }

    /// True if this connection is in the room.
    pub fn in_room(&self, room: &str) -> bool {
        self.link.hub.in_room(self.link.side.info.id, room)
    }

    /// The rooms this connection is in.
    pub fn rooms(&self) -> impl Iterator<Item = &str> + '_ {
        self.link.hub.rooms_of(self.link.side.info.id)
    }

    /// The members of a room, in no particular order.
    pub fn members(&self, room: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.link.hub.members(room)
    }

    /// How many members a room has.
    pub fn room_size(&self, room: &str) -> usize {
        self.link.hub.room_size(room)
    }

    /// Starts a timer whose expiry calls [`Handler::on_timer`] for this
    /// connection: once after `after`, or repeatedly every `every`. It is
    /// cancelled when the connection closes.
    pub fn set_timer(&mut self, after: Duration, every: Option<Duration>) -> TimerId {
        self.link
            .hub
            .timers
            .add_conn(self.link.side.info.id, after, every)
    }

    /// Cancels one of this connection's timers; false if it is not pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.link.hub.timers.owned_by(timer, self.link.side.info.id)
            && self.link.hub.timers.cancel(timer)
    }

    /// The hub, for everything else: other connections by id, rooms, global timers.
    /// What it sends to this connection is queued after this callback's own sends.
    pub fn hub(&mut self) -> &mut Hub {
        self.link.hub
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        self.link.hub.stats()
    }

    /// This connection's counters.
    pub fn metrics(&self) -> ConnStats {
        self.link.side.metrics
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.link.side.info.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        *self.link.peer
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.link.side.info.protocol.as_deref()
    }

    /// The path of the upgrade request, as sent (percent-encoded).
    pub fn path(&self) -> &str {
        self.link.side.info.path()
    }

    /// The query of the upgrade request, without `?`.
    pub fn query(&self) -> &str {
        self.link.side.info.query()
    }

    /// The verified claims of the JSON Web Token the upgrade carried, on a
    /// route with `auth: { type: 'jwt', … }`.
    pub fn claims(&self) -> Option<&serde_json::Value> {
        self.link.side.info.claims.as_deref()
    }

    /// A header of the upgrade request (case-insensitive name). Only during
    /// [`Handler::on_open`]; `None` in the other callbacks.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.link.headers?;
        crate::http::request::find_header(headers, name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        self.state
    }

    /// The per-connection state, to change.
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }

    /// Writes a shared frame to this connection unless it is `except`.
    fn echo_unless(&mut self, frame: &[u8], payload: usize, except: Option<ConnId>) {
        if except != Some(self.link.side.info.id) {
            self.echo_here(frame, payload);
        }
    }

    /// Writes an encoded frame (of `payload` bytes) to this connection, in order with its other sends.
    fn echo_here(&mut self, frame: &[u8], payload: usize) -> bool {
        if self.link.side.flags.close_sent
            || self.link.side.flags.block.is_some()
            || !self.link.room_for()
        {
            return false;
        }
        self.link.turn.scratch.extend_from_slice(frame);
        self.link.count_out(payload);
        true
    }
}

/// What a connection keeps about itself for its callbacks.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub id: ConnId,
    /// The handler serving it (its index in the app's action list).
    pub handler: usize,
    /// The upgrade request's target: the path, and `?query` if there was one.
    pub target: Box<str>,
    pub protocol: Option<Box<str>>,
    /// The verified JWT claims of the upgrade, on a route with JWT auth.
    pub claims: Option<Box<serde_json::Value>>,
}

impl ConnInfo {
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// The sending side's state that outlives one callback.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SendFlags {
    pub close_sent: bool,
    /// A `send_block` message is unfinished; true if it is text.
    pub block: Option<bool>,
    /// A send was dropped for backpressure; `on_drain` is owed.
    pub over: bool,
}

/// What a session lends each callback's [`Link`] of itself, in one piece.
#[derive(Debug)]
pub(crate) struct LinkSide {
    pub info: ConnInfo,
    /// The key of the connection's state in its handler's table
    /// ([`RELEASED`] once `on_close` has run).
    pub state: u32,
    pub flags: SendFlags,
    pub metrics: ConnStats,
}

/// A callback's view of its connection: where output goes and what it knows.
/// Built for every callback, so it is kept to a few words.
pub(crate) struct Link<'a> {
    /// The output buffer (`turn.scratch`) and the callback's send budget.
    pub turn: &'a mut Turn,
    pub side: &'a mut LinkSide,
    pub peer: &'a SocketAddr,
    pub hub: &'a mut Hub,
    pub headers: Option<&'a [httparse::Header<'a>]>,
}

impl Link<'_> {
    /// False (and the connection marked as over) if `frame` more bytes do not fit.
    /// The output may hold the limit plus one message: a send is refused
    /// only once the limit is reached, so a message larger than the limit
    /// still goes out when nothing waits before it.
    fn room_for(&mut self) -> bool {
        let turn = &*self.turn;
        if turn.scratch.len().saturating_sub(turn.base) < turn.room {
            return true;
        }
        self.side.flags.over = true;
        self.hub.stats.limits.backpressure += 1;
        false
    }

    fn data(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.side.flags.close_sent {
            return SendStatus::Closed;
        }
        if self.side.flags.block.is_some() {
            return SendStatus::Refused;
        }
        if !self.room_for() {
            return SendStatus::Dropped;
        }
        write_frame(&mut self.turn.scratch, true, opcode, payload);
        self.count_out(payload.len());
        SendStatus::Queued
    }

    fn block(&mut self, text: bool, payload: &[u8], more: bool) -> SendStatus {
        if self.side.flags.close_sent {
            return SendStatus::Closed;
        }
        if !self.room_for() {
            return SendStatus::Dropped;
        }
        let opcode = match self.side.flags.block {
            Some(_) => OpCode::Continuation,
            None if text => OpCode::Text,
            None => OpCode::Binary,
        };
        write_frame(&mut self.turn.scratch, !more, opcode, payload);
        self.side.metrics.bytes_out += payload.len() as u64;
        self.hub.stats.bytes_out += payload.len() as u64;
        if !more {
            self.side.metrics.messages_out += 1;
            self.hub.stats.messages_out += 1;
        }
        self.side.flags.block = if more {
            Some(self.side.flags.block.unwrap_or(text))
        } else {
            None
        };
        SendStatus::Queued
    }

    fn control(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.side.flags.close_sent {
            return SendStatus::Closed;
        }
        if payload.len() > 125 {
            return SendStatus::Refused;
        }
        write_frame(&mut self.turn.scratch, true, opcode, payload);
        SendStatus::Queued
    }

    /// Counts one message of `bytes` payload sent to this connection.
    pub fn count_out(&mut self, bytes: usize) {
        self.side.metrics.messages_out += 1;
        self.side.metrics.bytes_out += bytes as u64;
        self.hub.stats.messages_out += 1;
        self.hub.stats.bytes_out += bytes as u64;
    }
}

/// One event for a handler, whatever its state type.
pub(crate) enum Event<'a> {
    Open,
    Message(Message<'a>),
    Partial(Fragment<'a>),
    Error(&'a WsError),
    Close(u16, &'a str),
    Timer(TimerId),
    Drain,
}

/// An upgrade the handler accepted: its state's key and, if it chose one, the subprotocol.
pub(crate) type Accepted = (u32, Option<String>);

/// The state key of a connection whose `on_close` has run: no state has it.
pub(crate) const RELEASED: u32 = u32::MAX;

/// A [`Handler`] with its state type erased, so handlers of every kind sit in one list.
pub(crate) trait AnyHandler {
    /// Runs `on_upgrade`; an accepted connection's state goes into the table.
    fn upgrade(&mut self, req: &Request<'_>) -> Result<Accepted, Response>;
    fn streaming(&self) -> bool;
    /// Runs the callback for `event` with the state `link.side.state`.
    fn dispatch(&mut self, link: Link<'_>, event: Event<'_>);
    /// The state with this key, for the hub's filters.
    fn state(&self, key: u32) -> Option<&dyn Any>;
    /// Drops the state with this key: its connection is over.
    fn release(&mut self, key: u32);
}

/// A handler and the states of its connections, by key: a callback finds
/// its state by index, with no type check on the way.
pub(crate) struct Served<H: Handler> {
    handler: H,
    states: Slab<H::State>,
}

impl<H: Handler> Served<H> {
    pub fn new(handler: H) -> Served<H> {
        Served {
            handler,
            states: Slab::new(),
        }
    }

    /// Files a new connection's state; 503 in the unlikely case that its key
    /// does not fit a `u32`.
    fn keep(&mut self, state: H::State) -> Result<u32, Response> {
        let key = self.states.insert(state);
        match u32::try_from(key) {
            Ok(k) if k != RELEASED => Ok(k),
            _ => {
                self.states.remove(key);
                Err(Response::new(503))
            }
        }
    }
}

impl<H: Handler> AnyHandler for Served<H> {
    fn upgrade(&mut self, req: &Request<'_>) -> Result<Accepted, Response> {
        match self.handler.on_upgrade(req) {
            Upgrade::Accept(state) => Ok((self.keep(state)?, None)),
            Upgrade::AcceptProtocol(state, protocol) => Ok((self.keep(state)?, Some(protocol))),
            Upgrade::Reject(response) => Err(response),
        }
    }

    fn streaming(&self) -> bool {
        self.handler.streaming()
    }

    fn dispatch(&mut self, link: Link<'_>, event: Event<'_>) {
        let Some(state) = self.states.get_mut(link.side.state as usize) else {
            return;
        };
        let mut ws = WebSocket { state, link };
        let handler = &mut self.handler;
        match event {
            Event::Open => handler.on_open(&mut ws),
            Event::Message(m) => handler.on_message(&mut ws, m),
            Event::Partial(f) => handler.on_partial(&mut ws, f),
            Event::Error(e) => handler.on_error(&mut ws, e),
            Event::Close(code, reason) => handler.on_close(&mut ws, code, reason),
            Event::Timer(t) => handler.on_timer(&mut ws, t),
            Event::Drain => handler.on_drain(&mut ws),
        }
    }

    fn state(&self, key: u32) -> Option<&dyn Any> {
        self.states.get(key as usize).map(|s| s as &dyn Any)
    }

    fn release(&mut self, key: u32) {
        self.states.try_remove(key as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter;

    impl Handler for Counter {
        type State = u32;
    }

    /// A handler files its connections' states by key: each key finds its
    /// own state until released, a released key (or `RELEASED`) finds none,
    /// and keys are reused, so nothing is left behind once all are released.
    #[test]
    fn states_are_filed_by_key_until_released() {
        let mut served = Served::new(Counter);
        let a = served.keep(7).unwrap();
        let b = served.keep(9).unwrap();
        assert_ne!(a, b);
        let value =
            |served: &Served<Counter>, key| served.state(key)?.downcast_ref::<u32>().copied();
        assert_eq!(value(&served, a), Some(7));
        assert_eq!(value(&served, b), Some(9));
        served.release(a);
        assert_eq!(value(&served, a), None);
        assert_eq!(value(&served, RELEASED), None);
        served.release(a);
        assert_eq!(
            value(&served, b),
            Some(9),
            "releasing twice touches no other state"
        );
        let c = served.keep(11).unwrap();
        assert_eq!(c, a, "a released key is used again");
        served.release(b);
        served.release(c);
        assert!(served.states.is_empty());
    }
}
