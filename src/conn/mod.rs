//! One client connection: its phase machine (request head, body, closing,
//! lingering, WebSocket), its read path and its write path.
//!
//! A connection owns no buffer while it is idle: input is parsed straight out
//! of the reactor's shared read buffer and only an incomplete tail is kept;
//! output is written from the shared scratch buffer and only what the socket
//! refuses is kept (see `output.rs`). Every byte in or out goes through the
//! connection's [`Transport`].
//!
//! The phases' work lives beside this file: `http.rs` (requests and their
//! answers), `ws.rs` (the upgraded connection and its quiet fast lane),
//! `backpressure.rs` (when to stop reading), `deadline.rs` (timeouts).

mod backpressure;
mod deadline;
mod events;
mod fetch;
mod http;
mod later;
mod proxy;
#[cfg(test)]
mod tests;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::app::App;
use crate::deadlines::{At, Deadline};
use crate::http::error::HttpError;
use crate::message::{ConnId, Peer};
use crate::output::{Flushed, Output};
use crate::session::Session;
use crate::transport::{Transport, Wire};
use crate::turn::Turn;

use self::fetch::{FetchLeg, Forwarding};
use self::http::PendingBody;
pub(crate) use self::proxy::log_proxied;
pub(crate) use self::proxy::{Dial, Relayed};
pub(crate) use self::ws::Delivered;

/// The shared, per-loop state a connection works with.
pub(crate) struct Ctx<'a> {
    pub app: &'a mut App,
    pub turn: &'a mut Turn,
    /// The connection's slab key.
    pub key: usize,
}

/// How long a refused connection may take to read our answer before we drop it.
const LINGER: Duration = Duration::from_secs(2);

/// Whether the reactor keeps the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Keep,
    /// Kept, and its deadline can only have moved later: the wake-up
    /// already armed comes first, and `Conn::due` is read again when it fires.
    KeepLater,
    Close,
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Phase {
    /// Waiting for a request head; `started` is when its first byte arrived.
    /// (The phases' times are `At`s: 8 bytes, where an `Instant` would make
    /// every connection's slot 8 bytes larger.)
    Head { started: Option<At> },
    /// Receiving a request body.
    Body(Box<PendingBody>),
    /// The last response is queued: discard input, close once it is written.
    /// `until` bounds how long a refused client gets to read it.
    Closing { until: Option<At> },
    /// Our side is shut; read and discard until the client closes too, so
    /// unread input does not turn into a reset that destroys our answer.
    Lingering { until: At },
    /// Upgraded: every byte is WebSocket frames.
    WebSocket(Box<Session>),
    /// An action answered `Response::later`: waiting for the hub to deliver
    /// the answer; nothing more is read meanwhile.
    Later(Box<later::Later>),
    /// Answered with a Server-Sent Events stream: the client's bytes are
    /// discarded, the hub's messages go out as events.
    Events(Box<events::Streaming>),
    /// A proxied upgrade waits for its downstream's answer; nothing is read.
    Awaiting,
    /// A gateway's downstream leg: connecting, then reading the downstream's 101.
    Dialing(Box<Dial>),
    /// A plain request on a proxy route: its body relayed to the downstream
    /// leg as it arrives, until the leg relayed the whole response back.
    Forwarding(Box<Forwarding>),
    /// A gateway's downstream leg for a plain request: connecting, the
    /// request relayed, the response read and relayed to the client.
    Fetching(Box<FetchLeg>),
    /// A downstream leg between plain requests, kept for the next to its
    /// host (indexes of the proxy route and of its host).
    Pooled { route: u32, host: u32 },
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub transport: Transport,
    pub peer: Peer,
    /// Unique for the life of the process; tells a reused slab slot apart.
    pub serial: u64,
    pub deadline: Deadline,
    /// The listener it was accepted on (see `Origin::listener`).
    pub listener: u16,
    /// Output not yet written, and input read but not yet used (an
    /// incomplete request or frame): one pointer for both.
    output: Output,
    phase: Phase,
    /// Last read or write progress: an `At`, written from the turn's
    /// clock (`Turn::at`) on every message, read only for deadlines.
    since: At,
    /// Requests answered on this connection (it packs beside the flags).
    served: u32,
    /// [`COUNTED`], [`READ_CLOSED`], [`READ_PAUSED`] and [`PROXIED`] in one
    /// byte: with four `bool`s the slot would be 8 bytes larger.
    flags: u8,
}

/// [`Conn::flag`]: false for a connection accepted over the limit only to be
/// answered 503.
pub(crate) const COUNTED: u8 = 1;
/// [`Conn::flag`]: the peer closed its side (end of stream).
pub(crate) const READ_CLOSED: u8 = 2;
/// [`Conn::flag`]: reading stopped until the output drains (or a proxied
/// leg's pair has room, or the gateway has dialed).
pub(crate) const READ_PAUSED: u8 = 4;
/// [`Conn::flag`]: one leg of a proxied WebSocket (see `proxy.rs`), or a
/// side of a proxied plain request under way (`fetch.rs`).
pub(crate) const PROXIED: u8 = 8;

impl Conn {
    pub fn new(transport: Transport, peer: SocketAddr, serial: u64, now: Instant) -> Conn {
        Conn {
            transport,
            peer: Peer::new(peer),
            serial,
            deadline: Deadline::default(),
            listener: 0,
            output: Output::default(),
            phase: Phase::Head { started: None },
            since: At::new(now),
            served: 0,
            flags: COUNTED,
        }
    }

    /// Whether `flag` ([`COUNTED`], [`READ_CLOSED`], …; or any of several) is set.
    #[inline(always)]
    pub fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    #[inline(always)]
    pub fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// A connection over `limits.connections`: it gets a 503 and nothing else.
    pub fn turned_away(
        transport: Transport,
        peer: SocketAddr,
        serial: u64,
        ctx: &mut Ctx<'_>,
    ) -> Conn {
        let mut conn = Conn::new(transport, peer, serial, ctx.turn.now);
        conn.set_flag(COUNTED, false);
        conn.refuse(ctx, HttpError::Busy);
        conn
    }

    /// Handles a readiness event.
    pub fn ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        readable: bool,
        read_closed: bool,
    ) -> io::Result<Next> {
        if readable && !read_closed {
            if let Some(closing) = self.quiet_websocket() {
                return self.websocket_read(ctx, read_buf, closing);
            }
        }
        if readable || read_closed || self.flag(READ_PAUSED) {
            self.read_all(ctx, read_buf, read_closed)?;
        }
        let next = self.flush(ctx, read_buf)?;
        if next != Next::Close && matches!(self.phase, Phase::Fetching(_)) {
            self.fetch_progress(ctx);
        }
        Ok(next)
    }

    /// Writes what is queued; when it all went out, resumes paused input and
    /// decides whether the connection is finished.
    #[inline(always)]
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_>, read_buf: &mut Vec<u8>) -> io::Result<Next> {
        // The common case: all this event's output is in the scratch buffer
        // and nothing else is owed.
        if self.output.is_idle()
            && !self.flag(READ_PAUSED)
            && !self.owes_drain(ctx.app)
            && self.write_scratch(ctx, false)?
        {
            return self.after_output(ctx.turn.now);
        }
        self.flush_queued(ctx, read_buf)
    }

    /// The general flush: a queue, a file body, paused input or `on_drain`.
    #[inline(never)]
    pub(super) fn flush_queued(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
    ) -> io::Result<Next> {
        let mut drained = false;
        loop {
            let mut progressed = false;
            let flushed = self.output.flush_noting(
                &mut self.transport,
                &mut ctx.turn.scratch,
                &mut progressed,
            )?;
            if progressed {
                self.since = ctx.turn.at;
            }
            // Once per flush, so a handler that overflows again in on_drain cannot loop.
            if !drained && self.owes_drain(ctx.app) {
                drained = true;
                if matches!(self.phase, Phase::Events(_)) {
                    self.stream_drained(ctx);
                } else {
                    self.on_session(ctx.app, ctx.turn, ctx.key, true, |s, step| s.drained(step));
                }
                continue;
            }
            if flushed == Flushed::Blocked {
                return Ok(Next::Keep);
            }
            // Still paused for another reason than our output (a proxied
            // leg's pair is full, the gateway is dialing): stay paused.
            if !self.flag(READ_PAUSED) || self.paused(ctx) {
                break;
            }
            // Output drained below the mark: parse what was held back, then read on.
            self.set_flag(READ_PAUSED, false);
            self.process_held(ctx);
            self.read_all(ctx, read_buf, false)?;
        }
        self.after_output(ctx.turn.now)
    }

    /// The turn's output in one write, which the socket nearly always takes
    /// whole; true when it did (or there was none). What the socket refused
    /// stays in the scratch buffer for `flush_queued` to retry or queue.
    ///
    /// `lane`: called from the quiet WebSocket's fast lane, which only a
    /// plain socket takes and which has marked the progress (`since`) at its
    /// read already.
    #[inline(always)]
    pub(super) fn write_scratch(&mut self, ctx: &mut Ctx<'_>, lane: bool) -> io::Result<bool> {
        let scratch = &mut ctx.turn.scratch;
        if scratch.is_empty() {
            return Ok(!self.transport.holds_output());
        }
        let written = if lane {
            self.transport.write_plain(scratch)
        } else {
            self.transport.write(scratch)
        };
        match written {
            // TLS records the socket did not take stay with the transport;
            // the writable event that follows sends them (`drain`).
            Ok(n) if n == scratch.len() => {
                scratch.clear();
                if !lane {
                    self.since = ctx.turn.at;
                }
                Ok(true)
            }
            Ok(n) => {
                scratch.drain(..n);
                Ok(false)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Decides what an idle output means in each phase.
    #[inline(always)]
    pub(super) fn after_output(&mut self, now: Instant) -> io::Result<Next> {
        match self.phase {
            Phase::Closing { .. } => Ok(self.last_answer_written(now)),
            _ if self.flag(READ_CLOSED) => Ok(Next::Close),
            _ => Ok(Next::Keep),
        }
    }

    /// The last answer is written: shut our side and linger, or close.
    #[cold]
    #[inline(never)]
    fn last_answer_written(&mut self, now: Instant) -> Next {
        // The answer's last TLS records first; and an answer given before
        // the handshake (a 503 to a connection over the limit) waits in
        // rustls until the handshake is done (the closing deadline bounds
        // the wait).
        if self.transport.holds_output() || self.transport.handshake_from().is_some() {
            return Next::Keep;
        }
        if self.flag(READ_CLOSED) {
            return Next::Close;
        }
        self.transport.shutdown_write();
        self.output.clear_unread();
        self.phase = Phase::Lingering {
            until: At::new(now + LINGER),
        };
        Next::Keep
    }

    /// Reads until the socket is drained, output backs up, or the peer closed.
    pub(super) fn read_all(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        hint_closed: bool,
    ) -> io::Result<()> {
        loop {
            if self.paused(ctx) {
                self.set_flag(READ_PAUSED, true);
                return Ok(());
            }
            match self.transport.read_spare(read_buf) {
                Ok(0) => {
                    self.set_flag(READ_CLOSED, true);
                    return Ok(());
                }
                Ok(n) => {
                    self.since = ctx.turn.at;
                    self.take_bytes(ctx, read_buf.as_mut_slice());
                    if !self.output.unread_is_empty() && self.paused(ctx) {
                        // Input may be held unprocessed: resume it once the output drains.
                        self.set_flag(READ_PAUSED, true);
                        return Ok(());
                    }
                    // A short read means the socket is drained: edge-triggered
                    // polling reports the next arrival, so skip the extra read
                    // that would only say WouldBlock. A pending EOF was flagged
                    // in the event, so keep reading then to see it.
                    if n < read_buf.capacity() && !hint_closed {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Processes freshly read bytes, keeping only an unprocessed tail.
    #[inline(always)]
    pub(super) fn take_bytes(&mut self, ctx: &mut Ctx<'_>, fresh: &mut [u8]) {
        if self.output.unread_is_empty() {
            let used = match self.phase {
                // One session call takes every whole frame there is.
                Phase::WebSocket(_) => self.on_frames(ctx, fresh),
                _ => self.process(ctx, fresh),
            };
            if used < fresh.len() {
                self.output.keep_unread(&fresh[used..]);
            }
        } else {
            self.output.keep_unread(fresh);
            self.process_held(ctx);
        }
    }

    /// Processes the bytes held from earlier reads.
    pub(super) fn process_held(&mut self, ctx: &mut Ctx<'_>) {
        if self.output.unread_is_empty() {
            return;
        }
        let mut held = self.output.take_unread();
        let used = self.process(ctx, &mut held);
        held.drain(..used);
        self.output.put_unread(held);
    }

    /// Runs the protocol over `data`; returns how many bytes were used.
    pub(super) fn process(&mut self, ctx: &mut Ctx<'_>, data: &mut [u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() && !self.paused(ctx) {
            let rest = &mut data[pos..];
            let used = match self.phase {
                Phase::Head { .. } => self.on_head_bytes(ctx, rest),
                Phase::Body(_) => self.on_body_bytes(ctx, rest),
                Phase::WebSocket(_) => self.on_frames(ctx, rest),
                Phase::Dialing(_) => self.on_answer_bytes(ctx, rest),
                Phase::Forwarding(_) => self.on_forward_bytes(ctx, rest),
                Phase::Fetching(_) => self.on_response_bytes(ctx, rest),
                // An idle downstream that speaks is out of step: closed.
                Phase::Pooled { .. } => {
                    self.set_flag(READ_CLOSED, true);
                    rest.len()
                }
                Phase::Awaiting | Phase::Later(_) => 0,
                Phase::Closing { .. } | Phase::Lingering { .. } | Phase::Events(_) => rest.len(),
            };
            if used == 0 {
                break;
            }
            pos += used;
        }
        pos
    }

    pub(super) fn id(&self, ctx: &Ctx<'_>) -> ConnId {
        ConnId {
            key: ctx.key,
            serial: self.serial,
        }
    }

    /// Bytes queued beyond what the socket took.
    pub fn backlog(&self) -> usize {
        self.output.backlog()
    }
}

/// The connection with this id, if it is still the one in its slot.
#[inline]
pub(crate) fn live(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns.get_mut(id.key).filter(|c| c.serial == id.serial)
}
