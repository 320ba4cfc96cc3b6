//! When a connection next needs attention, and what a passed deadline means
//! in each phase: a slow request is answered 408, a stalled reader is
//! dropped, a WebSocket's session pings, gives up on a silent peer or on
//! an unanswered close.

use std::io;
use std::time::{Duration, Instant};

use super::{Conn, Ctx, Next, Phase};
use crate::config::Timeouts;
use crate::http::error::HttpError;

impl Conn {
    /// When this connection next needs attention.
    #[inline(always)]
    pub fn due(&self, t: &Timeouts) -> Option<Instant> {
        match &self.phase {
            // The busiest case first, and without a call.
            Phase::WebSocket(session) if self.output.is_idle() => session.due(self.since.instant()),
            _ => self.due_otherwise(t),
        }
    }

    /// `due` for everything but an idle WebSocket.
    #[inline(never)]
    pub(super) fn due_otherwise(&self, t: &Timeouts) -> Option<Instant> {
        let stall = || add(self.since.instant(), t.inactivity);
        match &self.phase {
            Phase::Lingering { until } | Phase::Closing { until: Some(until) } => {
                Some(until.instant())
            }
            Phase::WebSocket(session) => earliest(session.due(self.since.instant()), stall()),
            Phase::Later(later) => add(later.started, t.request),
            Phase::Events(stream) => {
                let stalled = (!self.output.is_idle()).then(stall).flatten();
                earliest(add(stream.last_sent, t.keepalive), stalled)
            }
            Phase::Dialing(_) => self.dial_deadline().flatten(),
            Phase::Forwarding(_) | Phase::Fetching(_) | Phase::Pooled { .. } => {
                self.fetch_due(t).flatten()
            }
            _ if !self.output.is_idle() => stall(),
            // A TLS handshake has its own bound, from the accept.
            Phase::Head { started: None } => match self.transport.handshake_from() {
                Some(from) => earliest(stall(), add(from, t.handshake)),
                None => stall(),
            },
            Phase::Closing { until: None } | Phase::Awaiting => stall(),
            Phase::Head { started: Some(s) } => {
                let s = s.instant();
                earliest(add(s, t.parse), add(s, t.request))
            }
            Phase::Body(p) => add(p.started, t.request),
        }
    }

    /// Acts on a passed deadline.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>, read_buf: &mut Vec<u8>) -> io::Result<Next> {
        if matches!(self.phase, Phase::WebSocket(_)) {
            let inactivity = ctx.app.config.timeouts.inactivity;
            let now = ctx.turn.now;
            let stalled = |c: &Conn| {
                !c.output.is_idle() && add(c.since.instant(), inactivity).is_some_and(|d| d <= now)
            };
            if stalled(self) {
                // What was queued this very turn has not been offered to the
                // socket yet: the close a proxied leg's pair relayed when its
                // own deadline fell in the same turn. Offer it first; a peer
                // that stopped reading takes none of it.
                if self.flush(ctx, read_buf)? == Next::Close {
                    return Ok(Next::Close);
                }
            }
            if stalled(self) {
                // The peer stopped reading: nothing can reach it any more.
                self.release(ctx.app, ctx.turn, ctx.key);
                return Ok(Next::Close);
            }
            let since = self.since.instant();
            self.on_session(ctx.app, ctx.turn, ctx.key, true, |session, step| {
                session.timeout(step, since)
            });
            return self.flush(ctx, read_buf);
        }
        if matches!(self.phase, Phase::Later(_)) {
            self.later_timed_out(ctx.app, ctx.turn.now);
            return self.flush(ctx, read_buf);
        }
        if matches!(self.phase, Phase::Events(_)) {
            let stalled = !self.output.is_idle()
                && add(self.since.instant(), ctx.app.config.timeouts.inactivity)
                    .is_some_and(|d| d <= ctx.turn.now);
            if stalled {
                // The client stopped reading: nothing can reach it any more.
                self.release(ctx.app, ctx.turn, ctx.key);
                return Ok(Next::Close);
            }
            self.stream_keepalive(ctx);
            return self.flush(ctx, read_buf);
        }
        if matches!(self.phase, Phase::Dialing(_)) {
            return Ok(self.dial_timed_out());
        }
        if matches!(self.phase, Phase::Fetching(_)) {
            return Ok(self.fetch_timed_out());
        }
        let receiving = matches!(
            self.phase,
            Phase::Head { started: Some(_) } | Phase::Body(_)
        );
        if receiving && self.output.is_idle() {
            // Slowloris or a stalled upload: say so, then close.
            self.refuse(ctx, HttpError::Timeout);
            return self.flush(ctx, read_buf);
        }
        Ok(Next::Close)
    }
}

fn add(t: Instant, d: Option<Duration>) -> Option<Instant> {
    d.and_then(|d| t.checked_add(d))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
