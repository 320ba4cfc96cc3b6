//! The WebSocket callback API: Ioto's OPEN, MESSAGE, PARTIAL_MESSAGE, ERROR
//! and CLOSE events as the methods of a [`Handler`], and the [`WebSocket`]
//! each callback gets to answer through.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;

use crate::ws::error::WsError;
use crate::ws::frame::{write_close, write_frame};
use crate::ws::opcode::OpCode;

/// A whole message, borrowed: no copy is made to hand it to you.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8 unless `webSockets.validateUTF` is off,
    /// in which case invalid sequences were replaced with U+FFFD).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }
}

/// A piece of a message as it arrived, for handlers that stream
/// ([`Handler::streaming`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The message is text (the bytes so far are valid UTF-8, but a piece may
    /// end inside a character).
    pub text: bool,
    /// The bytes of this piece.
    pub data: &'a [u8],
    /// The first piece of its message.
    pub first: bool,
    /// The last piece of its message.
    pub last: bool,
}

/// Identifies one connection for the life of the process: a reused slot gets
/// a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: usize,
    pub(crate) serial: u64,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.serial)
    }
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendStatus {
    /// Queued; it goes out when the callback returns, in one write with
    /// everything else sent in it.
    Queued,
    /// Not sent: a close frame has been sent or received already.
    Closed,
    /// Not sent, because the call was invalid: a control payload over 125
    /// bytes, or a message begun while a [`WebSocket::send_block`] message is
    /// unfinished.
    Refused,
}

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
}

/// What a callback knows about its connection and how it answers.
///
/// Sends are queued in the connection's output and written when the
/// callback returns.
pub struct WebSocket<'a, S> {
    state: &'a mut S,
    link: Link<'a>,
}

impl<S> fmt::Debug for WebSocket<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.link.info.id)
            .field("peer", &self.link.info.peer)
            .field("path", &self.link.info.path)
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
        if self.link.flags.close_sent {
            return SendStatus::Closed;
        }
        self.link.flags.close_sent = true;
        write_close(self.link.out, code, reason);
        SendStatus::Queued
    }

    /// True once a close frame has been sent; further sends return [`SendStatus::Closed`].
    pub fn is_closing(&self) -> bool {
        self.link.flags.close_sent
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.link.info.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.link.info.peer
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.link.info.protocol.as_deref()
    }

    /// The path of the upgrade request, as sent (percent-encoded).
    pub fn path(&self) -> &str {
        &self.link.info.path
    }

    /// The query of the upgrade request, without `?`.
    pub fn query(&self) -> &str {
        &self.link.info.query
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
}

/// What a connection keeps about itself for its callbacks.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub path: Box<str>,
    pub query: Box<str>,
    pub protocol: Option<Box<str>>,
}

/// The sending side's state that outlives one callback.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SendFlags {
    pub close_sent: bool,
    /// A `send_block` message is unfinished; true if it is text.
    pub block: Option<bool>,
}

/// A callback's view of its connection: where output goes and what it knows.
pub(crate) struct Link<'a> {
    pub out: &'a mut Vec<u8>,
    pub info: &'a ConnInfo,
    pub flags: &'a mut SendFlags,
    pub headers: Option<&'a [httparse::Header<'a>]>,
}

impl Link<'_> {
    fn data(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.flags.close_sent {
            return SendStatus::Closed;
        }
        if self.flags.block.is_some() {
            return SendStatus::Refused;
        }
        write_frame(self.out, true, opcode, payload);
        SendStatus::Queued
    }

    fn block(&mut self, text: bool, payload: &[u8], more: bool) -> SendStatus {
        if self.flags.close_sent {
            return SendStatus::Closed;
        }
        let opcode = match self.flags.block {
            Some(_) => OpCode::Continuation,
            None if text => OpCode::Text,
            None => OpCode::Binary,
        };
        write_frame(self.out, !more, opcode, payload);
        self.flags.block = if more {
            Some(self.flags.block.unwrap_or(text))
        } else {
            None
        };
        SendStatus::Queued
    }

    fn control(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.flags.close_sent {
            return SendStatus::Closed;
        }
        if payload.len() > 125 {
            return SendStatus::Refused;
        }
        write_frame(self.out, true, opcode, payload);
        SendStatus::Queued
    }
}

/// One event for a handler, whatever its state type.
pub(crate) enum Event<'a> {
    Open,
    Message(Message<'a>),
    Partial(Fragment<'a>),
    Error(&'a WsError),
    Close(u16, &'a str),
}

/// A [`Handler`] with its state type erased, so handlers of every kind sit in one list.
pub(crate) trait AnyHandler {
    fn new_state(&self) -> Box<dyn Any>;
    fn streaming(&self) -> bool;
    fn dispatch(&mut self, state: &mut dyn Any, link: Link<'_>, event: Event<'_>);
}

impl<H: Handler> AnyHandler for H {
    fn new_state(&self) -> Box<dyn Any> {
        Box::new(H::State::default())
    }

    fn streaming(&self) -> bool {
        Handler::streaming(self)
    }

    fn dispatch(&mut self, state: &mut dyn Any, link: Link<'_>, event: Event<'_>) {
        // The state was made by new_state of this very handler, so the type matches.
        let Some(state) = state.downcast_mut::<H::State>() else {
            return;
        };
        let mut ws = WebSocket { state, link };
        match event {
            Event::Open => self.on_open(&mut ws),
            Event::Message(m) => self.on_message(&mut ws, m),
            Event::Partial(f) => self.on_partial(&mut ws, f),
            Event::Error(e) => self.on_error(&mut ws, e),
            Event::Close(code, reason) => self.on_close(&mut ws, code, reason),
        }
    }
}
