//! The HTTP phases: a request head, maybe a body, then the answer — or a
//! refusal that closes the connection.

use std::mem;
use std::time::Instant;

use super::{Conn, Ctx, Phase, LINGER};
use crate::app::{BodySink, SinkRefusal};
use crate::deadlines::At;
use crate::files::store::Stored;
use crate::http::body::BodyDecoder;
use crate::http::error::HttpError;
use crate::http::head::{header_storage, parse_head, serve_as_1_1, Framing, Head, HeadLimits};
use crate::http::response::announce_keep_alive;
use crate::message::Origin;

/// A request whose body is still arriving.
#[derive(Debug)]
pub(super) struct PendingBody {
    head: Vec<u8>,
    decoder: BodyDecoder,
    /// The body gathered for a handler; for a sink, one read's worth on its way to it.
    body: Vec<u8>,
    pub(super) started: Instant,
    /// Where a body that is not gathered goes as it arrives: a `PUT`'s
    /// file, a streaming action, a multipart upload.
    sink: Option<BodySink>,
    /// Body bytes handed to the sink so far.
    received: u64,
    /// The answer closes the connection (known when the head was answered).
    close: bool,
}

impl Conn {
    // Out of line: its header array would otherwise swell the stack frame of
    // `process`, which every WebSocket read goes through.
    #[inline(never)]
    pub(super) fn on_head_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &mut [u8]) -> usize {
        if let Phase::Head {
            started: started @ None,
        } = &mut self.phase
        {
            *started = Some(At::new(ctx.turn.now));
        }
        let mut limits = ctx.app.limits;
        if ctx.app.streams_bodies() {
            // Proxy routes and stored files stream their bodies: the limit is checked below.
            limits.body = u64::MAX;
        }
        serve_as_1_1(buf);
        let buf = &*buf;
        let mut storage = header_storage();
        let head = match parse_head(buf, &mut storage, &limits) {
            Ok(Some(head)) => head,
            Ok(None) => return 0,
            Err(e) => {
                self.refuse(ctx, e);
                return buf.len();
            }
        };
        if limits.body == u64::MAX && head.framing != Framing::None {
            if ctx.app.proxies(&head) || ctx.app.stores(&head) || ctx.app.streams_action(&head) {
                return self.forward_head(ctx, &head, buf);
            }
            if matches!(head.framing, Framing::Length(n) if n > ctx.app.limits.body) {
                self.refuse(ctx, HttpError::BodyTooLarge);
                return buf.len();
            }
        }
        let started = match self.phase {
            Phase::Head { started } => started.map_or(ctx.turn.now, At::instant),
            _ => ctx.turn.now,
        };
        match head.framing {
            Framing::None => {
                self.respond(ctx, &head, &[]);
                head.len
            }
            // The whole body is here already: answer from the read buffer, no copy.
            Framing::Length(n) if (buf.len() - head.len) as u64 >= n => {
                let end = head.len + n as usize;
                self.respond(ctx, &head, &buf[head.len..end]);
                end
            }
            framing => {
                if head.expect_continue {
                    self.output
                        .target(&mut ctx.turn.scratch)
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                self.phase = Phase::Body(Box::new(PendingBody {
                    head: buf[..head.len].to_vec(),
                    decoder: BodyDecoder::new(framing),
                    body: Vec::new(),
                    started,
                    sink: None,
                    received: 0,
                    close: false,
                }));
                head.len
            }
        }
    }

    /// A request with a body on a proxy route, a `PUT` to a file route or
    /// a body to a streaming or uploads action: answered (filed for the
    /// gateway, its file opened, its stream or form started) at once, its
    /// body relayed, stored or streamed as it arrives. A refusal (401, 405,
    /// 413, …) leaves the body unread, so the connection closes after it.
    #[cold]
    fn forward_head(&mut self, ctx: &mut Ctx<'_>, head: &Head<'_>, buf: &[u8]) -> usize {
        self.respond(ctx, head, &[]);
        if let Phase::Body(pending) = &mut self.phase {
            if matches!(pending.sink, Some(BodySink::Stream(_) | BodySink::Form(_))) {
                // Answered once the body is in: the head is parsed again then.
                pending.head = buf[..head.len].to_vec();
            }
        }
        match self.phase {
            Phase::Forwarding(_) | Phase::Body(_) => {
                if head.expect_continue {
                    // The downstream is not asked (`Expect` is not passed on).
                    self.output
                        .target(&mut ctx.turn.scratch)
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
            }
            Phase::Closing { .. } => {}
            _ => {
                self.phase = Phase::Closing {
                    until: Some(At::new(ctx.turn.now + LINGER)),
                }
            }
        }
        head.len
    }

    #[inline(never)]
    pub(super) fn on_body_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        let Phase::Body(pending) = &mut self.phase else {
            return 0;
        };
        let limit = match &pending.sink {
            Some(sink) => sink.room(pending.received, ctx.app.config.limits.upload),
            None => ctx.app.limits.body,
        };
        let stored = pending
            .decoder
            .decode(buf, &mut pending.body, limit)
            .map_err(SinkRefusal::Error)
            .and_then(|progress| {
                if let Some(sink) = &mut pending.sink {
                    if !pending.body.is_empty() {
                        sink.write(&pending.body)?;
                        pending.received += pending.body.len() as u64;
                        pending.body.clear();
                    }
                }
                Ok(progress)
            });
        let progress = match stored {
            Ok(p) => p,
            Err(SinkRefusal::Error(e)) => {
                if e == HttpError::BodyTooLarge && pending.sink.is_some() {
                    // Counted with the refusal below.
                    log::debug!("{}: a streamed body went over limits.upload", self.peer);
                }
                self.refuse(ctx, e);
                return buf.len();
            }
            Err(SinkRefusal::Response(response)) => {
                log::debug!("{}: a streaming action refused its body", self.peer);
                ctx.app
                    .refuse_with(&response, self.output.target(&mut ctx.turn.scratch));
                self.phase = Phase::Closing {
                    until: Some(At::new(ctx.turn.now + LINGER)),
                };
                return buf.len();
            }
        };
        if progress.done && pending.sink.is_some() {
            self.finish_sink(ctx);
        } else if progress.done {
            let started = Some(At::new(pending.started));
            let Phase::Body(pending) = mem::replace(&mut self.phase, Phase::Head { started })
            else {
                return progress.consumed;
            };
            let limits = ctx.app.limits;
            let mut storage = header_storage();
            // The head parsed before; parsing it again from its copy is cheaper than owning it.
            match parse_head(&pending.head, &mut storage, &limits) {
                Ok(Some(head)) => self.respond(ctx, &head, &pending.body),
                _ => self.refuse(ctx, HttpError::Malformed),
            }
        }
        progress.consumed
    }

    /// A streamed body is complete: a `PUT`'s file takes its place (201 or
    /// 204, or 507 if the file system could not keep it), a streaming
    /// action answers, or an uploads action runs with its form.
    fn finish_sink(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::Body(pending) = mem::replace(&mut self.phase, Phase::Head { started: None })
        else {
            return;
        };
        let PendingBody {
            sink,
            close,
            head,
            started,
            ..
        } = *pending;
        let close = close || ctx.app.stopping;
        let Some(sink) = sink else {
            return;
        };
        // The head was accepted with its body streamed: `limits.body` does not apply.
        let streamed = HeadLimits {
            body: u64::MAX,
            ..ctx.app.limits
        };
        let handled = match sink {
            BodySink::File(upload) => {
                let result = upload.commit().map(Stored::status);
                ctx.app
                    .stored(result, self.output.target(&mut ctx.turn.scratch), close)
            }
            BodySink::Stream(stream) => {
                let mut storage = header_storage();
                let Ok(Some(head)) = parse_head(&head, &mut storage, &streamed) else {
                    return self.refuse(ctx, HttpError::Malformed);
                };
                let origin = self.origin(ctx, started);
                let out = self.output.target(&mut ctx.turn.scratch);
                let mark = out.len();
                let handled = ctx.app.finish_stream(&head, stream, origin, out, close);
                if head.minor == 0 && !handled.close {
                    announce_keep_alive(out, mark);
                }
                handled
            }
            BodySink::Form(receiver) => {
                let form = match receiver.finish() {
                    Ok(form) => form,
                    Err(e) => return self.refuse(ctx, e),
                };
                let mut storage = header_storage();
                let Ok(Some(head)) = parse_head(&head, &mut storage, &streamed) else {
                    return self.refuse(ctx, HttpError::Malformed);
                };
                let origin = self.origin(ctx, started);
                let cert = self.transport.peer_cert();
                let out = self.output.target(&mut ctx.turn.scratch);
                let mark = out.len();
                let handled = ctx.app.finish_form(&head, form, (origin, cert), out, close);
                if head.minor == 0 && !handled.close {
                    announce_keep_alive(out, mark);
                }
                handled
            }
        };
        if handled.close {
            self.phase = Phase::Closing { until: None };
        }
    }

    /// Who sent the request being answered, for the app.
    fn origin(&self, ctx: &Ctx<'_>, started: Instant) -> Origin {
        Origin {
            id: self.id(ctx),
            peer: self.peer.addr(),
            now: ctx.turn.now,
            started,
            tls: self.transport.is_tls(),
            listener: self.listener,
        }
    }

    /// Answers a complete request and moves to the next phase.
    pub(super) fn respond(&mut self, ctx: &mut Ctx<'_>, head: &Head<'_>, body: &[u8]) {
        self.served = self.served.saturating_add(1);
        let served = u64::from(self.served);
        let close =
            !head.keep_alive || served >= ctx.app.config.limits.requests || ctx.app.stopping;
        let started = match self.phase {
            Phase::Head { started: Some(s) } => s.instant(),
            _ => ctx.turn.now,
        };
        let origin = Origin {
            id: self.id(ctx),
            peer: self.peer.addr(),
            now: ctx.turn.now,
            started,
            tls: self.transport.is_tls(),
            listener: self.listener,
        };
        let out = self.output.target(&mut ctx.turn.scratch);
        let mark = out.len();
        let cert = self.transport.peer_cert();
        let handled = ctx.app.handle(head, body, (origin, cert), out, close);
        let answered = handled.upgrade.is_none()
            && !handled.proxied
            && handled.sink.is_none()
            && handled.events.is_none()
            && !handled.later;
        if head.minor == 0 && !handled.close && answered {
            announce_keep_alive(out, mark);
        }
        if let Some(file) = handled.file {
            self.output.set_file(file);
        }
        if let (false, Some(exchange)) = (handled.close, handled.exchange) {
            self.forwarding(exchange, head.framing);
            return;
        }
        if handled.later {
            self.answer_later(
                started,
                handled.close,
                head.method == "HEAD",
                head.minor == 0,
            );
            return;
        }
        if let Some(source) = handled.events {
            self.start_stream(source, origin.id, ctx.turn.now);
            return;
        }
        if let Some(sink) = handled.sink {
            let started = match self.phase {
                Phase::Head { started: Some(s) } => s.instant(),
                _ => ctx.turn.now,
            };
            self.phase = Phase::Body(Box::new(PendingBody {
                head: Vec::new(),
                decoder: BodyDecoder::new(head.framing),
                body: Vec::new(),
                started,
                sink: Some(sink),
                received: 0,
                close: handled.close,
            }));
            return;
        }
        self.phase = match handled.upgrade {
            _ if handled.close => Phase::Closing { until: None },
            _ if handled.proxied => Phase::Awaiting,
            Some(session) => Phase::WebSocket(session),
            None => Phase::Head { started: None },
        };
    }

    /// Queues an error answer and stops reading requests.
    pub(super) fn refuse(&mut self, ctx: &mut Ctx<'_>, err: HttpError) {
        log::debug!("{}: {} {err}", self.peer, err.status());
        ctx.app
            .refuse(err, self.output.target(&mut ctx.turn.scratch));
        self.phase = Phase::Closing {
            until: Some(At::new(ctx.turn.now + LINGER)),
        };
    }
}
