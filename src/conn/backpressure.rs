//! Backpressure: when queued output is too large to take more input, and
//! when a WebSocket that dropped sends is owed `on_drain`.

use super::PROXIED;
use super::{Conn, Ctx, Phase};
use crate::app::App;

/// Output queued beyond this stops parsing pipelined requests and reading the socket.
const HIGH_WATER: usize = 64 * 1024;

impl Conn {
    /// True while queued output is too large to take more input: a peer
    /// that sends but does not read cannot make this connection hold more
    /// than the limit plus one answer.
    ///
    /// HTTP stops at `HIGH_WATER`. A WebSocket stops at half of
    /// `webSockets.maxBackpressure`, so the answer to the last message read
    /// still fits under the limit (an echo loses nothing to a slow reader),
    /// and whenever a send did not fit, until `on_drain`.
    #[inline]
    pub(super) fn paused(&self, ctx: &Ctx<'_>) -> bool {
        if !self.output.is_idle() {
            return self.paused_with_backlog(ctx);
        }
        // The common case, nothing queued but the scratch, without walking the queue.
        self.over_mark(ctx, ctx.turn.scratch.len())
    }

    /// True when a WebSocket that dropped sends for backpressure has room again
    /// (its output is below half of `webSockets.maxBackpressure`).
    pub(super) fn owes_drain(&self, app: &App) -> bool {
        match &self.phase {
            Phase::WebSocket(s) => {
                s.owes_drain()
                    && self.output.backlog() <= app.config.web_sockets.max_backpressure / 2
            }
            Phase::Events(_) => self.stream_owes_drain(&app.config),
            _ => false,
        }
    }

    #[inline(never)]
    pub(super) fn paused_with_backlog(&self, ctx: &Ctx<'_>) -> bool {
        self.output.streaming()
            || self.over_mark(ctx, self.output.backlog() + ctx.turn.scratch.len())
    }

    /// True when `queued` bytes of output are enough to stop taking input.
    #[inline]
    pub(super) fn over_mark(&self, ctx: &Ctx<'_>, queued: usize) -> bool {
        match &self.phase {
            Phase::WebSocket(s) => {
                s.owes_drain()
                    || queued >= ctx.app.config.web_sockets.max_backpressure / 2
                    || (self.flag(PROXIED) && self.pair_full(ctx.app))
            }
            Phase::Awaiting | Phase::Dialing(_) => self.waits_on_gateway(),
            // The next request waits for this one's later answer.
            Phase::Later(_) => true,
            // Each side's own output is bounded by the other's pausing:
            // only what the other holds stops it.
            Phase::Forwarding(_) => self.forward_paused(),
            Phase::Fetching(leg) => leg.paused(),
            _ => queued > HIGH_WATER,
        }
    }
}
