//! A request an action answered `Response::later`: the connection waits
//! (holding its next requests) until the hub delivers the answer — whole, or
//! a head and its body in pieces — or `timeouts.request` passes.

use super::READ_PAUSED;
use std::time::Instant;

use super::{Conn, Phase, LINGER};
use crate::app::App;
use crate::deadlines::At;
use crate::http::error::HttpError;
use crate::hub::AnswerPart;

/// A request waiting for its answer.
#[derive(Debug)]
pub(crate) struct Later {
    /// When the request's first byte arrived (`timeouts.request` counts from it).
    pub started: Instant,
    /// The answer closes the connection.
    close: bool,
    /// A `HEAD` request: the answer's head only.
    head_only: bool,
    /// HTTP/1.0: a streamed body is not chunked; the connection's end ends it.
    http10: bool,
    /// A streamed answer's head went out.
    streaming: bool,
}

impl Conn {
    /// The action answered `Response::later`: wait, reading nothing more.
    pub(super) fn answer_later(
        &mut self,
        started: Instant,
        close: bool,
        head_only: bool,
        http10: bool,
    ) {
        self.phase = Phase::Later(Box::new(Later {
            started,
            close: close || http10,
            head_only,
            http10,
            streaming: false,
        }));
        self.set_flag(READ_PAUSED, true);
    }

    /// A piece of the answer, from the hub.
    pub fn answer_part(&mut self, app: &mut App, part: AnswerPart) {
        let backlog = self.output.backlog();
        let Phase::Later(later) = &mut self.phase else {
            return;
        };
        let (close, head_only) = (later.close, later.head_only);
        let chunked = !later.http10 && !head_only;
        // The queue's tail is taken only for a part that writes something.
        let out = &mut self.output;
        match part {
            AnswerPart::Whole(response) if !later.streaming => {
                app.write_response(&response, head_only, out.tail(), close);
                self.answered(close);
            }
            AnswerPart::Head(response) if !later.streaming => {
                app.write_stream_head(&response, chunked, out.tail(), close);
                later.streaming = true;
                if head_only {
                    self.answered(close);
                }
            }
            AnswerPart::Piece(piece) if later.streaming && !piece.is_empty() => {
                if backlog + piece.len() > app.config.web_sockets.max_backpressure {
                    // The body cannot be whole any more: end the connection.
                    log::debug!("{}: a streamed answer outran its reader; closed", self.peer);
                    self.phase = Phase::Closing { until: None };
                    return;
                }
                let out = out.tail();
                if chunked {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(&piece);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(&piece);
                }
            }
            AnswerPart::End if later.streaming => {
                if chunked {
                    out.tail().extend_from_slice(b"0\r\n\r\n");
                }
                self.answered(close);
            }
            // Out of order (a piece before the head, a second answer): ignored.
            _ => {}
        }
    }

    /// The answer is complete: the next request, or the end.
    fn answered(&mut self, close: bool) {
        self.phase = if close {
            Phase::Closing { until: None }
        } else {
            Phase::Head { started: None }
        };
    }

    /// `timeouts.request` passed without a (complete) answer: 503 if none
    /// began, else the connection ends with the body cut short.
    pub(super) fn later_timed_out(&mut self, app: &mut App, now: Instant) {
        let Phase::Later(later) = &self.phase else {
            return;
        };
        if later.streaming {
            self.phase = Phase::Closing { until: None };
            return;
        }
        log::debug!(
            "{}: 503: the action did not answer within timeouts.request",
            self.peer
        );
        app.refuse(HttpError::Unavailable, self.output.tail());
        self.phase = Phase::Closing {
            until: Some(At::new(now + LINGER)),
        };
    }
}
