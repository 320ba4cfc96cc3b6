//! A callback's link to its connection: what the session lends it for one
//! call, and the sends that become frames in the turn's output. Every
//! message a handler sends to its own connection passes `Link::data` or
//! `Link::block` — the point where a per-message extension would transform
//! outgoing payloads.

use std::rc::Rc;

use crate::hub::Hub;
use crate::message::{ConnId, Peer, PeerCert, SendStatus};
use crate::rate::RateLimiter;
use crate::stats::ConnStats;
use crate::turn::Turn;
use crate::ws::deflate::compress::Compressor;
use crate::ws::deflate::Outgoing;
use crate::ws::frame::write_frame;
use crate::ws::opcode::OpCode;

/// What a connection keeps about itself for its callbacks.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The handler serving it (its index in the app's action list).
    pub handler: u32,
    /// How the server may compress what it sends here (permessage-deflate):
    /// in the bytes the handler's index leaves free.
    pub deflate: Outgoing,
    /// The upgrade request's target: the path, and `?query` if there was one.
    /// Shared with the handler's previous connection when it is the same
    /// (see [`Targets`](crate::upgrade::Targets)).
    pub target: Target,
    /// What few connections have: the negotiated subprotocol, the upgrade's
    /// verified JWT claims (on a route with JWT auth) and the TLS client's
    /// certificate (mutual TLS), boxed together so the others pay one pointer.
    pub extra: Option<Box<Extra>>,
}

/// An upgrade's target as the session keeps it: a thin pointer (8 bytes,
/// where an `Rc<str>` takes 16), which brings the session to 120 bytes, a
/// 128-byte heap chunk instead of 144. The price is a second allocation
/// per distinct target; connections that share their handler's last
/// target (most) pay nothing for it.
pub(crate) type Target = Rc<Box<str>>;

/// The rarer facts of a connection, kept apart (see [`ConnInfo::extra`]).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// The negotiated subprotocol (`Sec-WebSocket-Protocol`).
    pub protocol: Option<Box<str>>,
    pub claims: Option<serde_json::Value>,
    pub peer_cert: Option<PeerCert>,
    /// The connection's own compressor, when it keeps its context
    /// (`contextTakeover`, [`Outgoing::Own`]). This and the rate limiter
    /// are boxed on their own: a connection that has only a subprotocol, or
    /// only a rate limit, should not pay for the others.
    pub compressor: Option<Box<Compressor>>,
    /// `limits.rate`, when configured (not on a gateway's downstream leg).
    pub rate: Option<Box<RateLimiter>>,
}

impl Extra {
    /// The box, if there is anything to keep.
    pub fn boxed(
        claims: Option<&serde_json::Value>,
        cert: Option<&PeerCert>,
        compressor: Option<Compressor>,
        protocol: Option<&str>,
    ) -> Option<Box<Extra>> {
        let extra = Extra {
            protocol: protocol.map(Into::into),
            claims: claims.cloned(),
            peer_cert: cert.cloned(),
            compressor: compressor.map(Box::new),
            rate: None,
        };
        (!extra.is_empty()).then(|| Box::new(extra))
    }

    /// Nothing to keep: the connection needs no box.
    pub fn is_empty(&self) -> bool {
        self.protocol.is_none()
            && self.claims.is_none()
            && self.peer_cert.is_none()
            && self.compressor.is_none()
            && self.rate.is_none()
    }
}

impl ConnInfo {
    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.extra.as_ref()?.protocol.as_deref()
    }

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
    /// What the session must see to after the callback, in one byte so
    /// that a callback that asked nothing costs one test: [`OVER`] (a send
    /// was dropped for backpressure; `on_drain` is owed) and [`LIMITS`]
    /// (`set_limits` was called; the limits wait in the turn).
    pub attention: u8,
}

/// [`SendFlags::attention`]: a send was dropped for backpressure.
pub(crate) const OVER: u8 = 1;
/// [`SendFlags::attention`]: the callback asked for lower limits.
pub(crate) const LIMITS: u8 = 2;

/// What a session lends each callback's [`Link`] of itself, in one piece.
#[derive(Debug)]
pub(crate) struct LinkSide {
    pub info: ConnInfo,
    /// The key of the connection's state in its handler's table
    /// ([`RELEASED`] once `on_close` has run).
    pub state: u32,
    pub flags: SendFlags,
    /// The connection is TLS (`wss`); it fits beside the flags for free.
    pub tls: bool,
    pub metrics: ConnStats,
}

/// Who a connection is: its id and its peer's address, lent to its
/// session for one step (in its `Step`) and to each callback's [`Link`] by
/// one reference.
///
/// The session keeps neither: the connection's slab slot has the peer and
/// the serial, and the reactor the slot's key, so keeping the id in every
/// session too would cost each idle WebSocket 16 bytes (a 128-byte heap
/// chunk where 112 do).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    pub id: ConnId,
    pub peer: &'a Peer,
}

/// A callback's view of its connection: where output goes and what it knows.
/// Built for every callback, so it is kept to a few words.
pub(crate) struct Link<'a> {
    /// The output buffer (`turn.scratch`) and the callback's send budget.
    pub turn: &'a mut Turn,
    pub side: &'a mut LinkSide,
    /// The connection's id and peer, one reference for both.
    pub who: &'a Who<'a>,
    pub hub: &'a mut Hub,
    pub headers: Option<&'a [httparse::Header<'a>]>,
}

impl Link<'_> {
    /// False (and the connection marked as over) if `frame` more bytes do not fit.
    /// The output may hold the limit plus one message: a send is refused
    /// only once the limit is reached, so a message larger than the limit
    /// still goes out when nothing waits before it.
    pub(super) fn room_for(&mut self) -> bool {
        let turn = &*self.turn;
        if turn.scratch.len().saturating_sub(turn.base) < turn.room {
            return true;
        }
        self.side.flags.attention |= OVER;
        self.hub.stats.limits.backpressure += 1;
        false
    }

    pub(super) fn data(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.side.flags.close_sent {
            return SendStatus::Closed;
        }
        if self.side.flags.block.is_some() {
            return SendStatus::Refused;
        }
        if !self.room_for() {
            return SendStatus::Dropped;
        }
        if self.side.info.deflate == Outgoing::Off || !self.compressed(opcode, payload) {
            write_frame(&mut self.turn.scratch, true, opcode, payload);
        }
        self.count_out(payload.len());
        SendStatus::Queued
    }

    /// `data` for a message that is never compressed.
    pub(super) fn plain_data(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        let deflate = std::mem::replace(&mut self.side.info.deflate, Outgoing::Off);
        let status = self.data(opcode, payload);
        self.side.info.deflate = deflate;
        status
    }

    /// Writes a message compressed (permessage-deflate) if it is worth it:
    /// afresh by the loop's shared compressor, or by the connection's own.
    /// False if it wrote nothing (the message is under the threshold).
    #[inline(never)]
    fn compressed(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        if !self.hub.deflate.worth(payload.len()) {
            return false;
        }
        let out = &mut self.turn.scratch;
        match self.side.info.deflate {
            Outgoing::Shared(bits) => {
                self.hub
                    .deflate
                    .compressor(bits)
                    .write_frame(out, opcode, payload);
                true
            }
            _ => match self
                .side
                .info
                .extra
                .as_mut()
                .and_then(|e| e.compressor.as_mut())
            {
                Some(own) => {
                    own.write_frame(out, opcode, payload);
                    true
                }
                None => false,
            },
        }
    }

    pub(super) fn block(&mut self, text: bool, payload: &[u8], more: bool) -> SendStatus {
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

    pub(super) fn control(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
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
