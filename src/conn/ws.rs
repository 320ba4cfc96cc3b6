//! The upgraded connection: frames in through its session, the quiet
//! WebSocket's fast lane (one read, its frames, one write), frames
//! delivered from other connections, and the ways a WebSocket ends.

use super::{PROXIED, READ_CLOSED, READ_PAUSED};
use std::io;
use std::mem;
use std::time::Instant;

use super::{Conn, Ctx, Next, Phase, LINGER};
use crate::app::App;
use crate::config::Config;
use crate::deadlines::At;
use crate::hub::Frames;
use crate::message::ConnId;
use crate::session::{Flow, Session, Step};
use crate::turn::Turn;
use crate::user_timers::TimerId;
use crate::ws::close_code::CloseCode;
use crate::ws_api::Who;

/// What became of a frame delivered from another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    Queued,
    /// Not a WebSocket that can receive (closing, or gone).
    Refused,
    /// Mid-`send_block`: the frame must wait until that message is finished.
    Held,
    /// Over `webSockets.maxBackpressure`: dropped.
    Dropped,
    /// Over it, with `closeOnBackpressure`: the connection must be closed.
    Close,
}

impl Conn {
    /// For an open WebSocket with nothing held back (no unparsed input, no
    /// queued output, reading not paused, nothing owed to the handler):
    /// whether its closing handshake has begun.
    #[inline]
    pub(super) fn quiet_websocket(&self) -> Option<bool> {
        let Phase::WebSocket(s) = &self.phase else {
            return None;
        };
        // A TLS connection takes the general path: the lane's reads and
        // writes are a plain socket's.
        let quiet = !s.owes_drain()
            && self.output.is_empty()
            && !self.flag(READ_PAUSED | PROXIED)
            && self.transport.is_plain();
        quiet.then(|| s.is_closing())
    }

    /// The hot path of a busy WebSocket: one read, its frames, one write,
    /// without the general path's loops. A full read buffer, an incomplete
    /// frame or a socket that refuses part of the answer continue on the
    /// general path.
    #[inline]
    pub(super) fn websocket_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        closing: bool,
    ) -> io::Result<Next> {
        let n = match self.transport.read_plain(read_buf) {
            Ok(0) => {
                self.set_flag(READ_CLOSED, true);
                return self.flush(ctx, read_buf);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::KeepLater),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.read_all(ctx, read_buf, false)?;
                return self.flush(ctx, read_buf);
            }
            Err(e) => return Err(e),
        };
        self.since = ctx.turn.at;
        // The read leaves exactly its bytes in the buffer (`len() == n`).
        self.take_bytes(ctx, read_buf.as_mut_slice());
        if n == read_buf.capacity() || !self.output.unread_is_empty() {
            return self.websocket_more(ctx, read_buf, n);
        }
        // Still open, nothing owed, and no close frame went out in this
        // event: the answers go out in one write, and the deadline can only
        // have moved later (the idle one).
        let unchanged = matches!(&self.phase, Phase::WebSocket(s) if !s.owes_drain() && s.is_closing() == closing);
        if !unchanged {
            return self.flush(ctx, read_buf);
        }
        // The answers in one write, which the socket nearly always takes whole.
        if self.write_scratch(ctx, true)? {
            return Ok(Next::KeepLater);
        }
        // The rest is queued, or retried after an interrupt.
        self.flush_queued(ctx, read_buf)
    }

    /// The lane's read of `n` bytes left more to do: the socket may hold
    /// more (the read filled the buffer), or a frame is incomplete.
    #[inline(never)]
    pub(super) fn websocket_more(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        n: usize,
    ) -> io::Result<Next> {
        if n == read_buf.capacity() {
            self.read_all(ctx, read_buf, false)?;
        } else if self.paused(ctx) {
            self.set_flag(READ_PAUSED, true);
        }
        self.flush(ctx, read_buf)
    }

    /// Runs `f` on the WebSocket session with its handler, config, hub, the
    /// turn and who the connection is (`key` is its slab key). Its sends go
    /// to the turn's scratch buffer when that holds this connection's output
    /// of this event (`shared`) and nothing is queued before it; else the
    /// connection's queue is lent to the turn for the while. Ends the
    /// WebSocket when `f` says so.
    #[inline(always)]
    pub(super) fn on_session(
        &mut self,
        app: &mut App,
        turn: &mut Turn,
        key: usize,
        shared: bool,
        f: impl FnOnce(&mut Session, Step<'_>) -> Flow,
    ) -> Option<Flow> {
        let Phase::WebSocket(session) = &mut self.phase else {
            return None;
        };
        let max = app.config.web_sockets.max_backpressure;
        let mut lent = None;
        if shared && !self.output.has_queue() {
            turn.room = max;
        } else {
            turn.room = max.saturating_sub(self.output.backlog());
            let tail = self.output.tail();
            mem::swap(&mut turn.scratch, tail);
            lent = Some(tail);
        }
        let Some((handler, config, hub)) = app.socket(session.handler()) else {
            if let Some(tail) = lent {
                mem::swap(&mut turn.scratch, tail);
            }
            return None;
        };
        let who = Who {
            id: ConnId {
                key,
                serial: self.serial,
            },
            peer: &self.peer,
        };
        let flow = f(session, Step::new(handler, config, hub, turn, who));
        if let Some(tail) = lent {
            mem::swap(&mut turn.scratch, tail);
        }
        if flow == Flow::Close {
            self.end_websocket(turn.now);
        }
        Some(flow)
    }

    /// Runs WebSocket frames through the session; returns the bytes used.
    pub(super) fn on_frames(&mut self, ctx: &mut Ctx<'_>, buf: &mut [u8]) -> usize {
        let mut used = buf.len();
        let idle_at = ctx.turn.idle_at;
        let flow = self.on_session(ctx.app, ctx.turn, ctx.key, true, |session, step| {
            let (n, flow) = session.receive(step, buf, idle_at);
            used = n;
            flow
        });
        match flow {
            Some(Flow::Open) => used,
            _ => buf.len(),
        }
    }

    /// Queues a frame another connection's handler sent here.
    pub fn deliver(&mut self, config: &Config, frames: &Frames) -> Delivered {
        let session = match &mut self.phase {
            Phase::WebSocket(session) => session,
            Phase::Events(_) => return self.deliver_event(config, frames, &mut None),
            _ => return Delivered::Refused,
        };
        if session.in_block() {
            return Delivered::Held;
        }
        if !session.can_send() {
            return Delivered::Refused;
        }
        // The limit plus one message: a frame is refused only once the limit is reached.
        if self.output.backlog() >= config.web_sockets.max_backpressure {
            return if session.dropped(config) {
                Delivered::Close
            } else {
                Delivered::Dropped
            };
        }
        session.count_delivery(frames.payload_len());
        self.output.push_shared(frames.to(session.outgoing()));
        Delivered::Queued
    }

    /// True while a WebSocket is in the middle of a `send_block` message.
    pub fn in_block(&self) -> bool {
        matches!(&self.phase, Phase::WebSocket(s) if s.in_block())
    }

    /// The hub asked to close this WebSocket.
    pub fn close_socket(
        &mut self,
        app: &mut App,
        turn: &mut Turn,
        key: usize,
        code: CloseCode,
        reason: &str,
    ) {
        if matches!(self.phase, Phase::Events(_)) {
            return self.end_stream(app);
        }
        self.on_session(app, turn, key, false, |session, step| {
            session.close_by_server(step, code, reason)
        });
    }

    /// Runs the handler's `on_timer` for one of this connection's timers.
    pub fn user_timer(&mut self, ctx: &mut Ctx<'_>, timer: TimerId) {
        self.on_session(ctx.app, ctx.turn, ctx.key, true, |session, step| {
            session.timer(step, timer)
        });
    }

    /// The server is stopping: close the WebSocket with 1001 and report it.
    /// The server is stopping: a WebSocket starts its closing handshake with
    /// 1001; returns true for an idle HTTP connection, which can simply be closed.
    pub fn wind_down(&mut self, app: &mut App, turn: &mut Turn, key: usize) -> bool {
        match self.phase {
            Phase::WebSocket(_) => {
                self.on_session(app, turn, key, false, |session, step| {
                    session.close_by_server(step, CloseCode::GOING_AWAY, "server shutting down")
                });
                false
            }
            Phase::Head { started: None } => self.output.is_idle(),
            // An event stream has no end of its own: it is closed (`release` tells its source).
            Phase::Pooled { .. } | Phase::Events(_) => true,
            _ => false,
        }
    }

    /// The WebSocket's state, for the hub's filters.
    pub fn socket_state<'a>(&self, app: &'a App) -> Option<&'a dyn std::any::Any> {
        match &self.phase {
            Phase::WebSocket(session) => app.socket_state(session.handler(), session.state()),
            _ => None,
        }
    }

    /// The WebSocket is over: flush, then close the TCP connection (the server closes first, RFC 6455 §7.1.1).
    pub(super) fn end_websocket(&mut self, now: Instant) {
        self.phase = Phase::Closing {
            until: Some(At::new(now + LINGER)),
        };
    }

    /// Called before the connection is dropped: a WebSocket that did not
    /// finish its closing handshake reports 1006 to its handler.
    pub fn release(&mut self, app: &mut App, turn: &mut Turn, key: usize) {
        self.stream_released(app);
        self.dial_failed(app);
        self.exchange_released(app, turn.now);
        // Whatever the handler sends from on_close here goes nowhere: the socket is going.
        self.on_session(app, turn, key, false, |session, step| {
            session.abandon(step);
            Flow::Open
        });
    }
}
