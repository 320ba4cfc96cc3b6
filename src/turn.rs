//! One turn of the event loop: what every connection works with between
//! two polls — the shared output buffer, the clock, and the send budget of
//! the running WebSocket callback.

use std::time::Instant;

use crate::deadlines::At;

/// What connections work with during one turn of the loop, besides the app:
/// the shared output buffer, the clock, and the send budget of the running
/// WebSocket callback. It borrows nothing, so a callback reaches all of it
/// through one pointer.
#[derive(Debug)]
pub(crate) struct Turn {
    /// Responses and frames are composed here and written from here.
    pub scratch: Vec<u8>,
    /// The clock (set with [`Turn::set_now`], which keeps `at` with it).
    pub now: Instant,
    /// `now` as an `At`, reckoned once per turn: what connections write as
    /// their last progress on every message, where converting `now` each
    /// time would cost the message.
    pub at: At,
    /// `at` plus `timeouts.inactivity`: the idle deadline of a connection active now.
    pub idle_at: Option<At>,
    /// What `scratch` held when the running callback started.
    pub base: usize,
    /// How many bytes the running callback's sends may add to `scratch`:
    /// `webSockets.maxBackpressure` minus what its connection had queued besides.
    pub room: usize,
    /// The frame and message limits the running callback asked for
    /// (`WebSocket::set_limits`), for its session to apply when it returns.
    pub limits: Option<(u64, u64)>,
}

impl Turn {
    pub fn new(now: Instant) -> Turn {
        Turn::lend(Vec::new(), now)
    }

    /// A turn whose output goes to `buf` (taken for the while, and given back
    /// from `scratch`): a connection's own queue, when the shared buffer
    /// cannot be used.
    pub fn lend(buf: Vec<u8>, now: Instant) -> Turn {
        Turn {
            scratch: buf,
            now,
            at: At::new(now),
            idle_at: None,
            base: 0,
            room: 0,
            limits: None,
        }
    }

    /// Sets the clock: `now`, and `at` from it.
    #[inline]
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.at = At::new(now);
    }
}
