//! The WebSocket callback API: Ioto's OPEN, MESSAGE, PARTIAL_MESSAGE, ERROR
//! and CLOSE events as the methods of a [`Handler`], and the [`WebSocket`]
//! each callback gets to answer through.
//!
//! Beside it: `link.rs`, what a callback borrows of its connection and how
//! its sends become frames; `served.rs`, a handler with its connections'
//! states, type-erased so that handlers of every kind sit in one list.

mod link;
mod served;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::http::request::Request;
use crate::http::response::Response;
use crate::hub::{Frames, Hub, RoomError, Targets};
use crate::message::{ConnId, Fragment, Message, PeerCert, SendStatus};
use crate::stats::{ConnStats, Stats};

use crate::user_timers::TimerId;
use crate::ws::close_code::CloseCode;
use crate::ws::deflate::Outgoing;
use crate::ws::error::WsError;
use crate::ws::frame::write_close;
use crate::ws::opcode::OpCode;

pub(crate) use self::link::{
    ConnInfo, Extra, Link, LinkSide, SendFlags, Target, Who, LIMITS, OVER,
};
pub(crate) use self::served::{AnyHandler, Event, Served, RELEASED};

/// The events of a WebSocket connection, Ioto-style. Every method has an
/// empty default; implement the ones you need.
///
/// Callbacks run on the server thread: keep them short and never block. A
/// callback that panics closes its own connection with 1011; the server and
/// every other connection carry on.
///
/// ```no_run
/// use wisp::{CloseCode, Config, Handler, Message, Server, WebSocket};
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
///     fn on_close(&mut self, ws: &mut WebSocket<'_, u64>, code: CloseCode, _reason: &str) {
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

    /// Return false to decline permessage-deflate on this handler's
    /// connections even when `webSockets.compression` is on: for data that is
    /// compressed already (images, firmware), where compressing again only
    /// costs CPU.
    fn compression(&self) -> bool {
        true
    }

    /// How long this handler's connections may stay silent before the
    /// server closes them with 1001 (Going Away, "idle"), in place of
    /// `timeouts.inactivity`: Ioto's `webSocketRun(…, timeout)`. `None`
    /// (the default) keeps `timeouts.inactivity`; `Duration::MAX` is never.
    /// It counts from the connection's last progress, a read or a write
    /// (what the peer sends, a pong included, and what reaches it), where
    /// `timeouts.inactivity` counts from what the peer last sent; kept to
    /// the millisecond, up to 49 days (longer is never).
    ///
    /// 1001 rather than 1008 (Policy Violation): a silent peer broke no
    /// rule, the server is leaving it, and it is the code
    /// `timeouts.inactivity` closes with, so a client handles both alike.
    fn timeout(&self) -> Option<Duration> {
        None
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
    fn on_close(&mut self, ws: &mut WebSocket<'_, Self::State>, code: CloseCode, reason: &str) {
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
            .field("id", &self.link.who.id)
            .field("peer", &self.link.who.peer)
            .field("path", &self.link.side.info.path())
            .finish_non_exhaustive()
    }
}

impl<S> WebSocket<'_, S> {
    /// Lowers the largest frame payload and message this connection accepts
    /// from its peer (Ioto's `webSocketSetLimits()`), from the next frame
    /// on: a frame over `max_frame` closes it with 1009, and so does a
    /// message over `max_message` (a streaming handler's messages have no
    /// whole to limit). Each value applies only where it is below what the
    /// connection accepts already (`limits.maxFrame`, `limits.maxMessage`,
    /// or an earlier call): the server's buffers and its permessage-deflate
    /// inflater are bounded by those, so a connection can tighten them,
    /// never widen them. Asked in `on_close` or `on_error`, it does nothing.
    ///
    /// ```no_run
    /// use wisp::{Handler, WebSocket};
    ///
    /// struct Sensors;
    ///
    /// impl Handler for Sensors {
    ///     type State = ();
    ///     fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
    ///         // Readings are small: anything over 4K is a broken sensor.
    ///         ws.set_limits(4096, 4096);
    ///     }
    /// }
    /// ```
    pub fn set_limits(&mut self, max_frame: u64, max_message: u64) {
        self.link.turn.limits = Some((max_frame, max_message));
        self.link.side.flags.attention |= LIMITS;
    }

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

    /// Sends a message uncompressed even where permessage-deflate is
    /// negotiated: for a payload that is compressed already.
    pub fn send_uncompressed(&mut self, msg: Message<'_>) -> SendStatus {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        self.link.plain_data(opcode, payload)
    }

    /// True when permessage-deflate was negotiated on this connection and
    /// the server compresses what it sends here (messages of at least
    /// `webSockets.compression.threshold` bytes).
    pub fn compresses(&self) -> bool {
        self.link.side.info.deflate != Outgoing::Off
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
    pub fn close(&mut self, code: CloseCode, reason: &str) -> SendStatus {
        if self.link.side.flags.close_sent {
            return SendStatus::Closed;
        }
        self.link.side.flags.close_sent = true;
        write_close(&mut self.link.turn.scratch, code.into(), reason);
        SendStatus::Queued
    }

    /// True once a close frame has been sent; further sends return [`SendStatus::Closed`].
    pub fn is_closing(&self) -> bool {
        self.link.side.flags.close_sent
    }

    /// Sends a message to another connection (or this one) by id;
    /// [`SendStatus::Closed`] if it is not an open WebSocket.
    pub fn send_to(&mut self, to: ConnId, msg: Message<'_>) -> SendStatus {
        if to == self.link.who.id {
            return self.send(msg);
        }
        self.link.hub.send(to, msg)
    }

    /// Sends a message to every open WebSocket but `except` (this one included, unless excepted).
    pub fn broadcast(&mut self, msg: Message<'_>, except: Option<ConnId>) {
        let frame = self.link.hub.encode(msg);
        self.echo_unless(&frame, except);
        self.link
            .hub
            .deliver(Targets::All, frame, [except, Some(self.link.who.id)]);
    }

    /// Sends a message to every WebSocket served by this connection's handler (its route) but `except`.
    pub fn broadcast_route(&mut self, msg: Message<'_>, except: Option<ConnId>) {
        let frame = self.link.hub.encode(msg);
        self.echo_unless(&frame, except);
        let to = Targets::Handler(self.link.side.info.handler as usize);
        self.link
            .hub
            .deliver(to, frame, [except, Some(self.link.who.id)]);
    }

    /// Sends a message to every other WebSocket whose state is an `S2` and passes `filter`.
    pub fn send_where<S2: 'static>(
        &mut self,
        msg: Message<'_>,
        filter: impl Fn(ConnId, &S2) -> bool + 'static,
    ) {
        let me = self.link.who.id;
        self.link
            .hub
            .send_where(msg, move |id, s| id != me && filter(id, s));
    }

    /// Joins a room; fails over `limits.roomsPerConnection` or `limits.roomMembers`.
    pub fn join(&mut self, room: &str) -> Result<(), RoomError> {
        self.link.hub.join(self.link.who.id, room)
    }

    /// Leaves a room; false if this connection was not in it.
    pub fn leave(&mut self, room: &str) -> bool {
        self.link.hub.leave(self.link.who.id, room)
    }

    /// Sends a message to every member of a room but `except` (this
    /// connection included if it is a member); returns how many it goes to.
    pub fn publish(&mut self, room: &str, msg: Message<'_>, except: Option<ConnId>) -> usize {
        let frame = self.link.hub.encode(msg);
        let me = self.link.who.id;
        let mine = self.link.hub.in_room(me, room) && except != Some(me) && self.echo_here(&frame);
        usize::from(mine) + self.link.hub.publish_frame(room, frame, [except, Some(me)])
    }

    /// True if this connection is in the room.
    pub fn in_room(&self, room: &str) -> bool {
        self.link.hub.in_room(self.link.who.id, room)
    }

    /// The rooms this connection is in.
    pub fn rooms(&self) -> impl Iterator<Item = &str> + '_ {
        self.link.hub.rooms_of(self.link.who.id)
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
            .add_conn(self.link.who.id, after, every)
    }

    /// Cancels one of this connection's timers; false if it is not pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.link.hub.timers.owned_by(timer, self.link.who.id) && self.link.hub.timers.cancel(timer)
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
        self.link.who.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.link.who.peer.addr()
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.link.side.info.protocol()
    }

    /// The path of the upgrade request, as sent (percent-encoded).
    pub fn path(&self) -> &str {
        self.link.side.info.path()
    }

    /// The query of the upgrade request, without `?`.
    pub fn query(&self) -> &str {
        self.link.side.info.query()
    }

    /// The certificate the TLS client presented with the upgrade, verified
    /// against `tls.authority` (mutual TLS): its subject and names.
    pub fn peer_cert(&self) -> Option<&PeerCert> {
        self.link.side.info.extra.as_ref()?.peer_cert.as_ref()
    }

    /// True for a `wss` connection (an upgrade on an `https://` listener).
    pub fn is_tls(&self) -> bool {
        self.link.side.tls
    }

    /// The verified claims of the JSON Web Token the upgrade carried, on a
    /// route with `auth: { type: 'jwt', … }`.
    pub fn claims(&self) -> Option<&serde_json::Value> {
        self.link.side.info.extra.as_ref()?.claims.as_ref()
    }

    /// A header of the upgrade request (case-insensitive name). Only during
    /// [`Handler::on_open`]; `None` in the other callbacks.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.link.headers?;
        crate::http::fields::find_header(headers, name).and_then(|v| std::str::from_utf8(v).ok())
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
    fn echo_unless(&mut self, frame: &Frames, except: Option<ConnId>) {
        if except != Some(self.link.who.id) {
            self.echo_here(frame);
        }
    }

    /// Writes an encoded message to this connection, in order with its other sends.
    fn echo_here(&mut self, frames: &Frames) -> bool {
        if self.link.side.flags.close_sent
            || self.link.side.flags.block.is_some()
            || !self.link.room_for()
        {
            return false;
        }
        let frame = frames.to(self.link.side.info.deflate);
        self.link.turn.scratch.extend_from_slice(frame);
        self.link.count_out(frames.payload_len());
        true
    }
}
