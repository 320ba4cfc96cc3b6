//! A Server-Sent Events stream (`events.rs` has the format): what the hub
//! delivers goes out as events, an idle stream gets keepalive comments, and
//! its source hears when the output has room again after drops.

use std::rc::Rc;
use std::time::Instant;

use super::ws::Delivered;
use super::{Conn, Ctx, Phase};
use crate::app::App;
use crate::config::Config;
use crate::events::{write_data, KEEPALIVE};
use crate::hub::Frames;
use crate::message::ConnId;
use crate::ws::opcode::OpCode;

/// An open event stream.
#[derive(Debug)]
pub(crate) struct Streaming {
    /// Its source, by index in `App::streams`.
    pub source: usize,
    /// Its id in the hub.
    pub id: ConnId,
    /// Events were dropped for backpressure: `on_drain` is owed.
    pub owes_drain: bool,
    /// The last time anything was queued for it (for the keepalive).
    pub last_sent: Instant,
}

impl Conn {
    /// The request was answered with an event stream's head.
    pub(super) fn start_stream(&mut self, source: usize, id: ConnId, now: Instant) {
        self.phase = Phase::Events(Box::new(Streaming {
            source,
            id,
            owes_drain: false,
            last_sent: now,
        }));
    }

    /// True for an event stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.phase, Phase::Events(_))
    }

    /// A message for this stream: its text as one event's data. `event` is
    /// the message as an event once a first stream made it, shared by every
    /// other (one copy per message, not per recipient).
    pub fn deliver_event(
        &mut self,
        config: &Config,
        frames: &Frames,
        event: &mut Option<Rc<[u8]>>,
    ) -> Delivered {
        let backlog = self.output.backlog();
        let Phase::Events(stream) = &mut self.phase else {
            return Delivered::Refused;
        };
        if backlog >= config.web_sockets.max_backpressure {
            stream.owes_drain = true;
            return if config.web_sockets.close_on_backpressure {
                Delivered::Close
            } else {
                Delivered::Dropped
            };
        }
        // The frame as encoded for WebSockets: its payload is the message.
        let plain = &frames.plain;
        let text = plain
            .first()
            .is_some_and(|b| b & 0x0f == OpCode::Text as u8);
        if !text {
            // An event is text: binary messages are not for event streams.
            return Delivered::Refused;
        }
        let event = event.get_or_insert_with(|| {
            let mut out = Vec::with_capacity(frames.payload_len() + 16);
            write_data(&plain[plain.len() - frames.payload_len()..], &mut out);
            out.into()
        });
        self.output.push_shared(event);
        Delivered::Queued
    }

    /// The keepalive is due: a comment, if nothing else is waiting.
    pub(super) fn stream_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        let idle = self.output.is_idle();
        let Phase::Events(stream) = &mut self.phase else {
            return;
        };
        stream.last_sent = ctx.turn.now;
        if idle {
            ctx.turn.scratch.extend_from_slice(KEEPALIVE);
        }
    }

    /// After a flush: the source is owed `on_drain` and the output is below half the limit.
    pub(super) fn stream_owes_drain(&self, config: &Config) -> bool {
        matches!(&self.phase, Phase::Events(s) if s.owes_drain)
            && self.output.backlog() <= config.web_sockets.max_backpressure / 2
    }

    /// Runs the source's `on_drain`.
    pub(super) fn stream_drained(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Events(stream) = &mut self.phase else {
            return;
        };
        stream.owes_drain = false;
        let (source, id) = (stream.source, stream.id);
        let out = self.output.target(&mut ctx.turn.scratch);
        ctx.app
            .on_stream(source, id, out, |s, stream| s.on_drain(stream));
    }

    /// The hub closed the stream (`Hub::close`, or `closeOnBackpressure`):
    /// what is queued goes out, then the connection closes.
    pub(super) fn end_stream(&mut self, app: &mut App) {
        self.stream_released(app);
        self.phase = Phase::Closing { until: None };
    }

    /// The stream is over (the client left, the hub closed it, the server
    /// stops): it leaves the hub and its source hears of it, once.
    pub(super) fn stream_released(&mut self, app: &mut App) {
        if let Phase::Events(stream) = &self.phase {
            app.stream_closed(stream.source, stream.id);
        }
    }
}
