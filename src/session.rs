//! One upgraded connection: frames in through the receiver, events out to the
//! handler, the closing handshake, pings and idle timeouts.

use std::any::Any;
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::handler::{AnyHandler, ConnInfo, Event, Fragment, Link, Message, SendFlags};
use crate::ws::error::WsError;
use crate::ws::frame::{write_close, write_frame};
use crate::ws::opcode::OpCode;
use crate::ws::receiver::{self, Limits, Receiver};

/// Whether the WebSocket goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Open,
    /// Over: flush what is queued, then close the TCP connection.
    Close,
}

/// Close code for a handler that panicked.
const INTERNAL_ERROR: u16 = 1011;
/// Close code for an idle or dead peer.
const GOING_AWAY: u16 = 1001;
/// Reported to `on_close` when the connection ended without a close frame.
const ABNORMAL: u16 = 1006;
/// Reported to `on_close` for a close frame without a code.
const NO_STATUS: u16 = 1005;

/// The state of one WebSocket connection.
pub(crate) struct Session {
    receiver: Receiver,
    /// Index of the handler in the app's action list.
    pub handler: usize,
    state: Box<dyn Any>,
    info: ConnInfo,
    flags: SendFlags,
    /// `on_close` has run.
    finished: bool,
    last_read: Instant,
    next_ping: Option<Instant>,
    /// Set once we sent a close frame: when to stop waiting for the peer's.
    close_deadline: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

/// Everything a session borrows from its connection and the app for one step.
pub(crate) struct Step<'a> {
    pub handler: &'a mut dyn AnyHandler,
    pub config: &'a Config,
    pub out: &'a mut Vec<u8>,
    pub now: Instant,
}

impl Session {
    pub fn new(
        handler: usize,
        any: &dyn AnyHandler,
        info: ConnInfo,
        config: &Config,
        now: Instant,
    ) -> Session {
        let limits = Limits {
            max_frame: config.limits.max_frame,
            max_message: config.limits.max_message,
            validate_utf8: config.web_sockets.validate_utf8,
            streaming: any.streaming(),
        };
        Session {
            receiver: Receiver::new(limits),
            handler,
            state: any.new_state(),
            info,
            flags: SendFlags::default(),
            finished: false,
            last_read: now,
            next_ping: config.web_sockets.ping.and_then(|p| now.checked_add(p)),
            close_deadline: None,
        }
    }

    /// Runs `on_open`, with the upgrade request's headers readable.
    pub fn open(&mut self, step: Step<'_>, headers: &[httparse::Header<'_>]) -> Flow {
        let Step {
            handler,
            config,
            out,
            now,
        } = step;
        let ok = call(
            handler,
            &mut *self.state,
            Link {
                out,
                info: &self.info,
                flags: &mut self.flags,
                headers: Some(headers),
            },
            Event::Open,
        );
        let flow = self.after_callback(handler, out, ok);
        self.note_close_sent(config, now);
        flow
    }

    /// Decodes `buf` and runs the callbacks; returns the bytes used.
    pub fn receive(&mut self, step: Step<'_>, buf: &mut [u8]) -> (usize, Flow) {
        let Step {
            handler,
            config,
            out,
            now,
        } = step;
        self.last_read = now;
        let mut pos = 0;
        while pos < buf.len() && !self.finished {
            let (used, event) = match self.receiver.decode(&mut buf[pos..]) {
                Ok(decoded) => decoded,
                Err(e) => return (buf.len(), self.fail(handler, out, e)),
            };
            pos += used;
            let Some(event) = event else {
                if used == 0 {
                    break;
                }
                continue;
            };
            let link = Link {
                out: &mut *out,
                info: &self.info,
                flags: &mut self.flags,
                headers: None,
            };
            let ok = match event {
                receiver::Event::Message { text, data } => {
                    deliver(handler, &mut *self.state, link, text, data)
                }
                receiver::Event::Fragment {
                    text,
                    data,
                    first,
                    last,
                } => call(
                    handler,
                    &mut *self.state,
                    link,
                    Event::Partial(Fragment {
                        text,
                        data,
                        first,
                        last,
                    }),
                ),
                receiver::Event::Ping(payload) => {
                    if !self.flags.close_sent {
                        write_frame(out, true, OpCode::Pong, payload);
                    }
                    true
                }
                receiver::Event::Pong(_) => true,
                receiver::Event::Close { code, reason } => {
                    let reason = reason.to_string();
                    return (pos, self.peer_closed(handler, out, code, &reason));
                }
            };
            if self.after_callback(handler, out, ok) == Flow::Close {
                return (buf.len(), Flow::Close);
            }
        }
        self.note_close_sent(config, now);
        (
            pos,
            if self.finished {
                Flow::Close
            } else {
                Flow::Open
            },
        )
    }

    /// The peer's close frame: answer it (unless we started the close), report it, end.
    fn peer_closed(
        &mut self,
        handler: &mut dyn AnyHandler,
        out: &mut Vec<u8>,
        code: Option<u16>,
        reason: &str,
    ) -> Flow {
        if !self.flags.close_sent {
            self.flags.close_sent = true;
            // Echo the peer's code (RFC 6455 §5.5.1); none is echoed as none.
            write_close(out, code.unwrap_or(0), "");
        }
        self.finish(handler, out, code.unwrap_or(NO_STATUS), reason);
        Flow::Close
    }

    /// A protocol violation: tell the handler, send the close code, end.
    fn fail(&mut self, handler: &mut dyn AnyHandler, out: &mut Vec<u8>, err: WsError) -> Flow {
        let link = Link {
            out: &mut *out,
            info: &self.info,
            flags: &mut self.flags,
            headers: None,
        };
        call(handler, &mut *self.state, link, Event::Error(&err));
        self.close_now(handler, out, err.close_code(), &err.to_string())
    }

    /// Sends a close (if none was sent), reports it, and ends without waiting for the peer.
    fn close_now(
        &mut self,
        handler: &mut dyn AnyHandler,
        out: &mut Vec<u8>,
        code: u16,
        reason: &str,
    ) -> Flow {
        if !self.flags.close_sent {
            self.flags.close_sent = true;
            write_close(out, code, reason);
        }
        self.finish(handler, out, code, reason);
        Flow::Close
    }

    /// After a callback: a panic closes with 1011.
    fn after_callback(
        &mut self,
        handler: &mut dyn AnyHandler,
        out: &mut Vec<u8>,
        ok: bool,
    ) -> Flow {
        if ok {
            Flow::Open
        } else {
            self.close_now(handler, out, INTERNAL_ERROR, "handler failed")
        }
    }

    /// Once a close frame is out, the peer gets `closeTimeout` to answer.
    fn note_close_sent(&mut self, config: &Config, now: Instant) {
        if self.flags.close_sent && self.close_deadline.is_none() {
            self.close_deadline = now.checked_add(config.web_sockets.close_timeout);
        }
    }

    /// Runs `on_close` once.
    pub fn finish(
        &mut self,
        handler: &mut dyn AnyHandler,
        out: &mut Vec<u8>,
        code: u16,
        reason: &str,
    ) {
        if self.finished {
            return;
        }
        self.finished = true;
        let link = Link {
            out,
            info: &self.info,
            flags: &mut self.flags,
            headers: None,
        };
        call(handler, &mut *self.state, link, Event::Close(code, reason));
    }

    /// The connection is going away without a close handshake (reset, server stop).
    pub fn abandon(&mut self, handler: &mut dyn AnyHandler) {
        let mut sink = Vec::new();
        self.finish(handler, &mut sink, ABNORMAL, "");
    }

    /// When the session next needs attention.
    pub fn due(&self, inactivity: Option<Duration>) -> Option<Instant> {
        let idle = inactivity.and_then(|d| self.last_read.checked_add(d));
        [idle, self.next_ping, self.close_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Acts on a passed deadline: the close wait, a dead peer, or a ping.
    pub fn timeout(&mut self, step: Step<'_>) -> Flow {
        let Step {
            handler,
            config,
            out,
            now,
        } = step;
        if self.close_deadline.is_some_and(|d| d <= now) {
            self.finish(
                handler,
                out,
                ABNORMAL,
                "no close frame from the peer in time",
            );
            return Flow::Close;
        }
        let idle = config
            .timeouts
            .inactivity
            .and_then(|d| self.last_read.checked_add(d));
        if idle.is_some_and(|d| d <= now) {
            return self.close_now(handler, out, GOING_AWAY, "idle");
        }
        if let (Some(at), Some(every)) = (self.next_ping, config.web_sockets.ping) {
            if at <= now {
                if !self.flags.close_sent {
                    write_frame(out, true, OpCode::Ping, b"");
                }
                self.next_ping = now.checked_add(every);
            }
        }
        Flow::Open
    }
}

/// Hands a whole message to `on_message`, as text or binary.
fn deliver(
    handler: &mut dyn AnyHandler,
    state: &mut dyn Any,
    link: Link<'_>,
    text: bool,
    data: &[u8],
) -> bool {
    if !text {
        return call(handler, state, link, Event::Message(Message::Binary(data)));
    }
    // Validated already unless webSockets.validateUTF is off; then repair.
    let text = match std::str::from_utf8(data) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(data),
    };
    call(handler, state, link, Event::Message(Message::Text(&text)))
}

/// Runs one callback; false if it panicked.
fn call(
    handler: &mut dyn AnyHandler,
    state: &mut dyn Any,
    link: Link<'_>,
    event: Event<'_>,
) -> bool {
    catch_unwind(AssertUnwindSafe(|| handler.dispatch(state, link, event))).is_ok()
}
