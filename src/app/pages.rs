//! Error answers: status pages (or the `errors` pages), refusals, and the access log's line.

use super::*;

/// A page of `errors`, kept in memory: an error answer never waits for the disk.
pub(super) struct ErrorPage {
    status: u16,
    content_type: String,
    body: Box<[u8]>,
}

/// The largest `errors` page: an error answer is small.
pub(super) const ERROR_PAGE_LIMIT: u64 = 64 * 1024;

/// Reads the `errors` pages from under `documents`.
pub(super) fn error_pages(config: &Config, mime: &MimeTable) -> Result<Vec<ErrorPage>, StartError> {
    config
        .errors
        .iter()
        .map(|(status, page)| {
            let fail = |message: String| {
                StartError::Config(ConfigError::Invalid {
                    path: None,
                    key: format!("web.errors.{status}"),
                    message,
                })
            };
            let file = config.documents.join(page.trim_start_matches('/'));
            let size = std::fs::metadata(&file)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?
                .len();
            if size > ERROR_PAGE_LIMIT {
                return Err(fail(format!("{} is over 64 KiB", file.display())));
            }
            let body = std::fs::read(&file)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
            Ok(ErrorPage {
                status: *status,
                content_type: mime.for_path(page).to_string(),
                body: body.into(),
            })
        })
        .collect()
}

impl App {
    /// The access log's line for a request answered by `response` (its head
    /// says the body's length, a file's sent later included).
    pub(super) fn log_access(&self, head: &Head<'_>, origin: &Origin, response: &[u8]) {
        // The status is in our own status line: "HTTP/1.1 200 ...".
        let status = response
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let entry = access::Entry {
            peer: origin.peer.ip(),
            method: head.method,
            target: (head.path, head.query),
            minor: head.minor,
            status,
            bytes: access::body_length(response, head.method == "HEAD"),
            referer: head.header("referer"),
            agent: head.header("user-agent"),
            took: Some(origin.now.saturating_duration_since(origin.started)),
            // A gateway's request id (X-Request-Id), so both sides' lines match up.
            id: gateway::forward::client_request_id(head),
        };
        let line = access::line(&entry, self.config.log.format, SystemTime::now());
        log::info!(target: "wisp::access", "{line}");
    }

    /// The refusal page for an upgrade that failed its checks; it closes.
    pub(super) fn refused_upgrade(
        &mut self,
        refused: upgrade::Refused,
        out: &mut Vec<u8>,
    ) -> Handled {
        log::debug!(
            "{}: {} for a WebSocket upgrade: {refused}",
            self.peer,
            refused.error().status()
        );
        self.hub.stats.upgrades_rejected += 1;
        if refused.error() == HttpError::Forbidden {
            self.hub.stats.limits.auth += 1;
        }
        let reason = refused.to_string();
        let page = StatusPage {
            status: refused.error().status(),
            header: refused.header(),
            detail: &reason,
            head_only: false,
        };
        self.write_status_page(out, page, true);
        Handled::response(true)
    }

    /// [`App::refuse`] for the request being answered, saying why at `debug`.
    pub(super) fn refuse_request(&mut self, err: HttpError, out: &mut Vec<u8>) {
        log::debug!("{}: {} {err}", self.peer, err.status());
        self.refuse(err, out);
    }

    /// Writes the answer to a refused request; the connection closes after it.
    pub fn refuse(&mut self, err: HttpError, out: &mut Vec<u8>) {
        let hits = &mut self.hub.stats.limits;
        match err {
            HttpError::HeadTooLarge => hits.header += 1,
            HttpError::UriTooLong => hits.uri += 1,
            HttpError::BodyTooLarge => hits.body += 1,
            HttpError::Timeout => hits.timeouts += 1,
            HttpError::Busy => hits.connections += 1,
            _ => {}
        }
        self.date.refresh();
        self.write_error(out, err, true);
    }

    /// The status page of `err`, saying what it is.
    pub(super) fn write_error(&self, out: &mut Vec<u8>, err: HttpError, close: bool) {
        let detail = err.to_string();
        let page = StatusPage {
            status: err.status(),
            header: None,
            detail: &detail,
            head_only: false,
        };
        self.write_status_page(out, page, close);
    }

    /// A short text page for an error status.
    /// A short plain-text page for `status`, without its body for HEAD (RFC
    /// 9110 §9.3.2: a body there would be read as the next response).
    pub(super) fn status_page(
        &self,
        head: &Head<'_>,
        out: &mut Vec<u8>,
        status: u16,
        close: bool,
        header: Option<(&str, &str)>,
        why: &str,
    ) -> Handled {
        if !why.is_empty() {
            // `--log debug` says why each request was refused.
            log::debug!(
                "{}: {status} for {} {}: {why}",
                self.peer,
                head.method,
                head.path
            );
        }
        let page = StatusPage {
            status,
            header,
            detail: "",
            // Content-Length stays: it is what a GET would have received.
            head_only: head.method == "HEAD",
        };
        self.write_status_page(out, page, close);
        Handled::response(close)
    }

    /// An error status's answer: its `errors` page if there is one, else a
    /// short plain-text page.
    pub(super) fn write_status_page(&self, out: &mut Vec<u8>, page: StatusPage<'_>, close: bool) {
        let Some(custom) = self.error_pages.iter().find(|p| p.status == page.status) else {
            return page.write(out, &self.date.text, &self.config.headers, close);
        };
        let mut w = HeadWriter::start(out, page.status, &self.date.text, &self.config.headers);
        w.header("Content-Type", &custom.content_type);
        if let Some((name, value)) = page.header {
            w.header(name, value);
        }
        w.finish(Some(custom.body.len() as u64), close);
        if !page.head_only {
            out.extend_from_slice(&custom.body);
        }
    }
}
