//! Request bodies that are not gathered: a `PUT` stored to a file, a
//! streaming action's body, a multipart upload (`BodySink`), and their answers.

use super::*;

/// Where a body that is not gathered goes as it arrives.
pub(crate) enum BodySink {
    /// A `PUT` to a file route: into its temporary file.
    File(Box<Upload>),
    /// A streaming action's [`BodyStream`].
    Stream(Box<dyn BodyStream>),
    /// A `multipart/form-data` upload: into files in `upload.dir`.
    Form(Box<FormReceiver>),
}

/// Why a streamed body was refused: an error status, or a streaming
/// action's own response.
#[derive(Debug)]
pub(crate) enum SinkRefusal {
    Error(HttpError),
    Response(Response),
}

impl std::fmt::Debug for BodySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodySink::File(u) => f.debug_tuple("File").field(u).finish(),
            BodySink::Stream(_) => f.write_str("Stream"),
            BodySink::Form(r) => f.debug_tuple("Form").field(r).finish(),
        }
    }
}

impl BodySink {
    /// Bytes the body may still bring, `received` having come so far.
    pub fn room(&self, received: u64, limit: u64) -> u64 {
        match self {
            BodySink::File(upload) => upload.room(),
            _ => limit.saturating_sub(received),
        }
    }

    /// Takes the next piece of the body.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), SinkRefusal> {
        match self {
            BodySink::File(upload) => upload.write(bytes).map_err(SinkRefusal::Error),
            BodySink::Form(form) => form.write(bytes).map_err(SinkRefusal::Error),
            BodySink::Stream(stream) => {
                match catch_unwind(AssertUnwindSafe(|| stream.on_body(bytes))) {
                    Ok(result) => result.map_err(SinkRefusal::Response),
                    Err(_) => {
                        log::error!("a streaming action panicked in on_body; answered 500");
                        Err(SinkRefusal::Error(HttpError::Internal))
                    }
                }
            }
        }
    }
}

/// What a `PUT` or `DELETE` on a file route came to.
pub(super) enum Storing {
    /// The body is still to come: the connection streams it into this.
    Body(Box<Upload>),
    /// Answered: 201/204 or a refusal, and whether the refusal left a body unread.
    Done(Result<u16, HttpError>, bool),
}

/// True when the request's body is `multipart/form-data`.
pub(super) fn is_multipart(head: &Head<'_>) -> bool {
    head.header("content-type")
        .is_some_and(|ct| ct.len() >= 19 && ct[..19].eq_ignore_ascii_case(b"multipart/form-data"))
}

impl App {
    /// `PUT` and `DELETE` on a file route that allows them (`files::store`).
    /// A `PUT` whose body is still to come gets its [`Upload`] for the
    /// connection to stream the body into; [`App::stored`] answers the rest.
    pub(super) fn store(
        &self,
        route: &Route,
        head: &Head<'_>,
        body: &[u8],
        (relative, trailing): (&str, bool),
    ) -> Storing {
        // A refusal before the body was read closes the connection: the
        // unread body cannot be told from the next request.
        let streams = head.framing != Framing::None && body.is_empty();
        let limit = self.config.limits.upload;
        let result = match (route.root.as_ref(), head.method, head.framing) {
            (None, ..) => Err(HttpError::Internal),
            _ if trailing => Err(HttpError::Conflict),
            (Some(docs), "DELETE", _) => files::store::delete(docs.root(), relative).map(|()| 204),
            (_, _, Framing::Length(n)) if n > limit => Err(HttpError::BodyTooLarge),
            (Some(docs), ..) => match Upload::begin(docs.root(), relative, limit) {
                Ok(upload) if streams => return Storing::Body(Box::new(upload)),
                Ok(mut upload) => upload.write(body).and_then(|()| upload.commit()),
                Err(e) => Err(e),
            }
            .map(Stored::status),
        };
        let refused = streams && result.is_err();
        Storing::Done(result, refused)
    }

    /// The answer to a `PUT` or `DELETE`: 201 (stored a new file), 204
    /// (replaced or deleted one), or the refusal's status.
    pub fn stored(
        &mut self,
        result: Result<u16, HttpError>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        self.date.refresh();
        match result {
            Ok(status) => {
                let w = HeadWriter::start(out, status, &self.date.text, &self.config.headers);
                w.finish((status != 204).then_some(0), close);
            }
            Err(e) => {
                log::debug!("{} {e}", e.status());
                if e == HttpError::BodyTooLarge {
                    self.hub.stats.limits.body += 1;
                }
                self.write_error(out, e, close);
            }
        }
        Handled::response(close)
    }

    /// True when request bodies may be streamed rather than gathered: to a
    /// gateway's downstream or into a stored file (`limits.body` is then
    /// checked per request, after routing).
    pub fn streams_bodies(&self) -> bool {
        self.gateway.is_some() || self.stores_files || self.streams_actions
    }

    /// True when `head` goes to a streaming action, or is a
    /// `multipart/form-data` body to an action that takes uploads: its body
    /// is streamed (`limits.upload` applies, not `limits.body`).
    pub fn streams_action(&self, head: &Head<'_>) -> bool {
        if !self.streams_actions {
            return false;
        }
        let Ok((relative, trailing)) = normalize(head.path) else {
            return false;
        };
        let routed = routing_path(&relative, trailing);
        let trim = match self.routes.decide(&routed) {
            Decision::Route(route) if route.config.handler == HandlerKind::Action => {
                route.config.trim.as_deref()
            }
            _ => return false,
        };
        // The action is found by the path it sees: without a `trim` prefix.
        let routed = match trim {
            Some(t) => super::trim_path(t, &routed),
            None => routed,
        };
        match self.actions.iter().find(|a| matches(&a.prefix, &routed)) {
            Some(Action {
                endpoint: Endpoint::Streaming(_),
                ..
            }) => true,
            Some(Action {
                endpoint: Endpoint::Uploads(_),
                ..
            }) => is_multipart(head),
            _ => false,
        }
    }

    /// Answers a request whose multipart body is complete: its action runs
    /// with the form, whose files are removed afterwards unless kept.
    pub fn finish_form(
        &mut self,
        head: &Head<'_>,
        form: Form,
        (origin, peer_cert): (Origin, Option<&PeerCert>),
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        self.date.refresh();
        let mark = out.len();
        self.finished_form = Some(form);
        let request = Incoming {
            head,
            body: &[],
            claims: None,
            origin,
            peer_cert,
        };
        let handled = self.answer(request, out, close);
        // Removes the files unless the handler kept them (or the route changed under it).
        self.finished_form = None;
        if self.config.log.access {
            self.log_access(head, &origin, &out[mark..]);
        }
        handled
    }

    /// Answers a streaming action's request once its body is complete.
    pub fn finish_stream(
        &mut self,
        head: &Head<'_>,
        stream: Box<dyn BodyStream>,
        origin: Origin,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        self.date.refresh();
        let mark = out.len();
        let handled = self.end_stream(head, stream, out, close);
        if self.config.log.access {
            self.log_access(head, &origin, &out[mark..]);
        }
        handled
    }

    /// A streaming action's `on_end` and its response.
    pub(super) fn end_stream(
        &mut self,
        head: &Head<'_>,
        mut stream: Box<dyn BodyStream>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        match catch_unwind(AssertUnwindSafe(|| stream.on_end())) {
            Ok(response) => self.write_response(&response, head.method == "HEAD", out, close),
            Err(_) => {
                log::error!(
                    "the streaming action for {} panicked; answered 500",
                    head.path
                );
                self.status_page(head, out, 500, true, None, "")
            }
        }
    }

    /// Writes a streaming action's refusal of its body; the connection
    /// closes after it (the rest of the body is unread).
    pub fn refuse_with(&mut self, response: &Response, out: &mut Vec<u8>) {
        self.date.refresh();
        self.write_response(response, false, out, true);
    }

    /// True when `head` is a `PUT` with a body to a file route that allows
    /// it: the body streams into the file (`limits.upload` applies, not
    /// `limits.body`).
    pub fn stores(&self, head: &Head<'_>) -> bool {
        if !self.stores_files || head.method != "PUT" {
            return false;
        }
        let Ok((relative, trailing)) = normalize(head.path) else {
            return false;
        };
        matches!(
            self.routes.decide(&routing_path(&relative, trailing)),
            Decision::Route(route) if route.config.handler == HandlerKind::File && route.allows("PUT")
        )
    }
}
