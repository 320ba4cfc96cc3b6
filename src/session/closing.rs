//! The end of a session: the closing handshake (ours, the peer's, a
//! protocol failure) and `finish`, which runs `on_close` once.

use std::time::Instant;

use super::{Flow, Role, Session, Step};
use crate::config::Config;
use crate::deadlines::At;
use crate::ws::close_code::CloseCode;
use crate::ws::error::WsError;
use crate::ws::frame::{write_close, write_masked_close};
use crate::ws_api::{Event, RELEASED};

impl Session {
    /// The peer's close frame: answer it (unless we started the close), report it, end.
    pub(super) fn peer_closed(
        &mut self,
        step: &mut Step<'_>,
        code: Option<u16>,
        reason: &str,
    ) -> Flow {
        // The receiver let through only codes a close frame may carry.
        let reported = code
            .and_then(CloseCode::new)
            .unwrap_or(CloseCode::NO_STATUS);
        if !self.side.flags.close_sent {
            self.side.flags.close_sent = true;
            // Echo the peer's code (RFC 6455 §5.5.1); none is echoed as none.
            close_frame(step.out(), self.role.masked(), code.unwrap_or(0), "");
        }
        self.finish(step, reported, reason);
        Flow::Close
    }

    /// A protocol violation: tell the handler, send the close code, end.
    pub(super) fn fail(&mut self, step: &mut Step<'_>, err: WsError) -> Flow {
        let hits = &mut step.hub.stats.limits;
        match err {
            WsError::FrameTooLarge => hits.frame += 1,
            WsError::MessageTooLarge => hits.message += 1,
            _ => hits.protocol += 1,
        }
        log::debug!(
            "{}: {err}; closing with {}",
            step.who.peer,
            err.close_code()
        );
        step.call(&mut self.side, None, Event::Error(&err));
        // The connection is failing: a set_limits here has nothing left to limit.
        step.turn.limits = None;
        if matches!(self.role, Role::Relay | Role::Failing) {
            // The gateway closes the downstream first (`Gateway::dispatch`);
            // what it still sends back reaches the client before our close.
            self.role = Role::Failing;
            return Flow::Open;
        }
        self.close_now(step, err.close_code(), &err.to_string())
    }

    /// Sends a close (if none was sent), reports it, and ends without waiting for the peer.
    pub fn close_now(&mut self, step: &mut Step<'_>, code: CloseCode, reason: &str) -> Flow {
        if !self.side.flags.close_sent {
            self.side.flags.close_sent = true;
            close_frame(step.out(), self.role.masked(), code.into(), reason);
        }
        self.finish(step, code, reason);
        Flow::Close
    }

    /// Starts the closing handshake from the server's side (another
    /// connection's handler asked for it, or the server is stopping): the
    /// peer gets `closeTimeout` to answer.
    pub fn close_by_server(&mut self, mut step: Step<'_>, code: CloseCode, reason: &str) -> Flow {
        if self.role == Role::Failing {
            // A client that broke the protocol gets its close, and no more.
            return self.close_now(&mut step, code, reason);
        }
        if self.side.flags.close_sent || self.finished {
            return Flow::Open;
        }
        self.side.flags.close_sent = true;
        close_frame(step.out(), self.role.masked(), code.into(), reason);
        self.note_close_sent(step.config, step.now());
        Flow::Open
    }

    /// Once a close frame is out, the peer gets `closeTimeout` to answer.
    /// Checked after every callback: the test stays inline, the rest is out
    /// of the way.
    #[inline(always)]
    pub(super) fn note_close_sent(&mut self, config: &Config, now: Instant) {
        if self.side.flags.close_sent && !self.closing {
            self.start_closing(config, now);
        }
    }

    #[cold]
    #[inline(never)]
    fn start_closing(&mut self, config: &Config, now: Instant) {
        self.closing = true;
        self.wake = now
            .checked_add(config.web_sockets.close_timeout)
            .map(At::new);
    }

    /// Runs `on_close` once, then takes the connection out of the hub.
    pub(super) fn finish(&mut self, step: &mut Step<'_>, code: CloseCode, reason: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        step.call(&mut self.side, None, Event::Close(code, reason));
        step.turn.limits = None;
        step.hub.remove_socket(step.who.id);
        step.hub.deflate.count(self.side.info.deflate, false);
        // No callback runs after on_close, and the key may go to another connection.
        step.handler.release(self.side.state);
        self.side.state = RELEASED;
    }

    /// The connection is going away without a close handshake (reset, server stop).
    pub fn abandon(&mut self, mut step: Step<'_>) {
        self.finish(&mut step, CloseCode::ABNORMAL, "");
    }
}

/// Appends a close frame, masked when our side is the client.
fn close_frame(out: &mut Vec<u8>, masked: bool, code: u16, reason: &str) {
    if masked {
        write_masked_close(out, code, reason, crate::entropy::mask());
    } else {
        write_close(out, code, reason);
    }
}
