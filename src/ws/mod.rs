//! WebSocket (RFC 6455), sans-IO: bytes in, events and bytes out.
//!
//! Nothing here touches a socket; the reactor owns those. Data flows so:
//!
//! - Upgrade: the HTTP layer hands the request's headers to [`handshake`],
//!   which checks `Sec-WebSocket-Key`, computes `Sec-WebSocket-Accept` and
//!   picks a subprotocol.
//! - Incoming: the connection's unconsumed bytes go to a
//!   [`receiver::Receiver`], which parses each [`frame`] header, unmasks the
//!   payload in place ([`mask`]), checks text as it arrives ([`utf8`]) and
//!   close payloads ([`close`]), and returns one event at a time: a message
//!   (or, streaming, a piece of one), a Ping, a Pong or a Close.
//! - Outgoing: replies and messages are written as unmasked frames by
//!   [`frame::write_frame`] and [`frame::write_close`] into the caller's
//!   output buffer.
//! - Client side (the gateway's downstream connections): [`client`] judges
//!   the server's answer to an upgrade, [`frame::write_masked_frame`] writes
//!   masked frames, and a receiver with `Limits::from_server` refuses masked
//!   ones.
//! - Failure: every protocol violation is a [`error::WsError`], whose close
//!   code the server sends before it closes.

pub(crate) mod client;
pub(crate) mod close;
pub(crate) mod close_code;
pub(crate) mod deflate;
pub(crate) mod error;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod mask;
pub(crate) mod opcode;
#[cfg(test)]
mod properties;
pub(crate) mod receiver;
pub(crate) mod utf8;
