//! What crosses between connections and handlers: a connection's id, a
//! message, a streamed piece of one, and what became of a send.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

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
/// ([`Handler::streaming`](crate::Handler::streaming)).
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
    /// bytes, or a message begun while a [`WebSocket::send_block`](crate::WebSocket::send_block) message is
    /// unfinished.
    Refused,
    /// Not sent: the connection's output is over `webSockets.maxBackpressure`
    /// (a slow reader). [`Handler::on_drain`](crate::Handler::on_drain) tells when it has room again.
    Dropped,
}

/// Who a request came from, for handlers that want to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub now: Instant,
    /// When the request's first byte arrived (for the access log's duration).
    pub started: Instant,
    /// The connection is TLS.
    pub tls: bool,
    /// The listener it was accepted on: its index in the server's listeners
    /// (`listen`, then `listen_tls`), for the listener-wide redirects.
    pub listener: u16,
}

/// The certificate a TLS client presented and the server verified (mutual
/// TLS, `tls.authority`): what a handler may want to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject, as `CN=…, O=…` (common name, organisation, unit,
    /// country, locality, state; other attributes are left out).
    pub subject: String,
    /// The subject alternative names: DNS names and IP addresses, as text.
    pub names: Vec<String>,
}
