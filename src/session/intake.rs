//! Message intake: the bytes a peer sent decoded into messages, fragments
//! and control frames, counted, charged to the rate limiter and handed to
//! the handler — the per-message hot path, apart from the rest of the session.

use std::borrow::Cow;
use std::time::Instant;

use super::{control, Flow, Session, Step};
use crate::config::RateAction;
use crate::deadlines::At;
use crate::hub::Hub;
use crate::message::{Fragment, Message};
use crate::stats::ConnStats;
use crate::ws::close_code::CloseCode;
use crate::ws::error::WsError;
use crate::ws::opcode::OpCode;
use crate::ws::receiver::{self, Lent};
use crate::ws_api::{Event, Extra, LinkSide};

impl Session {
    /// Decodes `buf` and runs the callbacks; returns the bytes used.
    /// `idle_at` is the idle deadline of a peer that just sent something.
    pub fn receive(
        &mut self,
        mut step: Step<'_>,
        buf: &mut [u8],
        idle_at: Option<At>,
    ) -> (usize, Flow) {
        self.idle_at = idle_at;
        let mut pos = 0;
        // The common case on its own: whole short messages, no event to build.
        while pos < buf.len() && !self.finished {
            let Some(short) = self.receiver.short_message(&mut buf[pos..]) else {
                return self.receive_frames(&mut step, buf, pos);
            };
            match self.take_short(&mut step, buf, &mut pos, short) {
                Some(closed) => return closed,
                None => continue,
            }
        }
        (pos, self.flow())
    }

    /// Open, or Close once the session has finished.
    #[inline(always)]
    fn flow(&self) -> Flow {
        if self.finished {
            Flow::Close
        } else {
            Flow::Open
        }
    }

    /// Hands a short message (see `Receiver::short_message`) at `pos` to
    /// the handler and moves `pos` past it; `Some` ends the read there.
    #[inline(always)]
    fn take_short(
        &mut self,
        step: &mut Step<'_>,
        buf: &mut [u8],
        pos: &mut usize,
        short: Result<(bool, std::ops::Range<usize>), WsError>,
    ) -> Option<(usize, Flow)> {
        let (text, payload) = match short {
            Ok(short) => short,
            Err(e) => return Some((buf.len(), self.fail(step, e))),
        };
        let data = &buf[*pos + payload.start..*pos + payload.end];
        *pos += payload.end;
        let ok = match take_message(&mut self.side, step, text, data) {
            Taken::Delivered(ok) => ok,
            Taken::Dropped => return None,
            Taken::OverRate => return Some((buf.len(), self.over_rate(step))),
        };
        if self.after(step, ok) == Flow::Close {
            return Some((buf.len(), Flow::Close));
        }
        None
    }

    /// `receive` from the first frame that is not a short message on: every
    /// kind of frame, with the shared inflaters taken from the hub by the
    /// first frame that may need them (a compressed message's events borrow
    /// their output).
    #[inline(never)]
    fn receive_frames(&mut self, step: &mut Step<'_>, buf: &mut [u8], pos: usize) -> (usize, Flow) {
        let mut inflaters = None;
        let received = self.decode(step, buf, pos, &mut inflaters);
        if inflaters.is_some() {
            step.hub.deflate.inflaters = inflaters;
        }
        received
    }

    /// `receive_frames`' work; `inflaters` holds the shared inflaters once taken.
    fn decode(
        &mut self,
        step: &mut Step<'_>,
        buf: &mut [u8],
        mut pos: usize,
        inflaters: &mut Lent,
    ) -> (usize, Flow) {
        // A streamed compressed message may have inflated output due with
        // every byte read: the receiver is called until it has handed it out.
        while (pos < buf.len() || self.receiver.draining()) && !self.finished {
            if let Some(short) = self.receiver.short_message(&mut buf[pos..]) {
                match self.take_short(step, buf, &mut pos, short) {
                    Some(closed) => return closed,
                    None => continue,
                }
            }
            if inflaters.is_none() && self.receiver.inflates() {
                *inflaters = step.hub.deflate.inflaters.take();
            }
            let (used, event) = match self.receiver.decode(&mut buf[pos..], inflaters) {
                Ok(decoded) => decoded,
                Err(e) => return (buf.len(), self.fail(step, e)),
            };
            pos += used;
            let Some(event) = event else {
                if used == 0 {
                    break;
                }
                continue;
            };
            let ok = match event {
                receiver::Event::Message { text, data } => {
                    match take_message(&mut self.side, step, text, data) {
                        Taken::Delivered(ok) => ok,
                        Taken::Dropped => continue,
                        Taken::OverRate => return (buf.len(), self.over_rate(step)),
                    }
                }
                receiver::Event::Fragment {
                    text,
                    data,
                    first,
                    last,
                } => {
                    count_in(&mut self.side.metrics, step.hub, data.len(), last);
                    // Half a message cannot be dropped cleanly: a streamed one over the rate closes.
                    if rate_check(
                        &mut self.side,
                        step.hub,
                        step.now(),
                        u32::from(first),
                        data.len(),
                    )
                    .is_some()
                    {
                        return (buf.len(), self.over_rate(step));
                    }
                    let fragment = Fragment {
                        text,
                        data,
                        first,
                        last,
                    };
                    step.call(&mut self.side, None, Event::Partial(fragment))
                }
                receiver::Event::Ping(payload) => {
                    if !self.side.flags.close_sent {
                        control(step.out(), self.role.masked(), OpCode::Pong, payload);
                    }
                    true
                }
                receiver::Event::Pong(_) => true,
                receiver::Event::Close { code, reason } => {
                    let reason = reason.to_string();
                    return (pos, self.peer_closed(step, code, &reason));
                }
            };
            if self.after(step, ok) == Flow::Close {
                return (buf.len(), Flow::Close);
            }
        }
        // A message handed out of the receiver's buffer is over: free it now,
        // not when the next one comes.
        self.receiver.settle();
        (pos, self.flow())
    }

    /// A message over `limits.rate` with the `close` action ends the session.
    fn over_rate(&mut self, step: &mut Step<'_>) -> Flow {
        self.close_now(step, CloseCode::POLICY, "rate limit")
    }
}

/// What became of a whole message.
enum Taken {
    /// Handed to the handler; false if the callback panicked.
    Delivered(bool),
    /// Over `limits.rate` with the `drop` action.
    Dropped,
    /// Over `limits.rate` with the `close` action.
    OverRate,
}

/// Counts a whole message, charges it to the rate limiter and, within the
/// rate, hands it to `on_message`.
#[inline(always)]
fn take_message(side: &mut LinkSide, step: &mut Step<'_>, text: bool, data: &[u8]) -> Taken {
    count_in(&mut side.metrics, step.hub, data.len(), true);
    match rate_check(side, step.hub, step.now(), 1, data.len()) {
        Some(RateAction::Drop) => Taken::Dropped,
        Some(RateAction::Close) => Taken::OverRate,
        None => Taken::Delivered(deliver(step, side, text, data)),
    }
}

/// Charges a message (or a piece) to the rate limiter; `Some(action)` if it is over.
/// Most connections have no `Extra`: that test stays inline, the rest is out
/// of the way.
#[inline(always)]
fn rate_check(
    side: &mut LinkSide,
    hub: &mut Hub,
    now: Instant,
    messages: u32,
    bytes: usize,
) -> Option<RateAction> {
    let extra = side.info.extra.as_mut()?;
    charge(extra, hub, now, messages, bytes)
}

#[cold]
#[inline(never)]
fn charge(
    extra: &mut Extra,
    hub: &mut Hub,
    now: Instant,
    messages: u32,
    bytes: usize,
) -> Option<RateAction> {
    let limiter = extra.rate.as_mut()?;
    if limiter.allow(now, messages, bytes) {
        return None;
    }
    hub.stats.limits.rate += 1;
    Some(limiter.action)
}

/// Counts received payload; a message counts once, at its end.
#[inline]
fn count_in(metrics: &mut ConnStats, hub: &mut Hub, bytes: usize, ends_message: bool) {
    let bytes = bytes as u64;
    let messages = u64::from(ends_message);
    metrics.bytes_in += bytes;
    metrics.messages_in += messages;
    hub.stats.bytes_in += bytes;
    hub.stats.messages_in += messages;
}

/// Hands a whole message to `on_message`, as text or binary.
///
/// Every whole message a peer sends passes here, once its frames are
/// reassembled and before the handler sees it: the point where a
/// per-message extension (permessage-deflate) will inflate payloads. Its
/// outgoing twin is `ws_api::Link::data`.
#[inline(always)]
fn deliver(step: &mut Step<'_>, side: &mut LinkSide, text: bool, data: &[u8]) -> bool {
    if !text {
        return step.call(side, None, Event::Message(Message::Binary(data)));
    }
    // Validated already unless webSockets.validateUTF is off; then repair.
    let text = match std::str::from_utf8(data) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(data),
    };
    step.call(side, None, Event::Message(Message::Text(&text)))
}
