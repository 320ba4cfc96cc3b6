//! Responses: the builder handlers return, and the writer that serialises heads.

use std::io::Write;

/// A response from an action handler.
///
/// ```
/// use wisp::Response;
/// let r = Response::text("hello").with_header("Cache-Control", "no-store");
/// assert_eq!(r.status(), 200);
/// let missing = Response::text("no such sensor").with_status(404);
/// assert_eq!(missing.status(), 404);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Not an answer: the action answers later (`Response::later`).
    later: bool,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            later: false,
        }
    }

    /// What an action returns to answer later: the connection waits (its
    /// next requests too) until [`Hub::respond`](crate::Hub::respond) or
    /// [`ServerHandle::respond`](crate::ServerHandle::respond) — or their
    /// streaming forms — answer the request [`Request::id`](crate::Request::id)
    /// names, for at most `timeouts.request` (then 503).
    pub fn later() -> Response {
        Response {
            later: true,
            ..Response::new(503)
        }
    }

    /// True for [`Response::later`].
    pub fn is_later(&self) -> bool {
        self.later
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::bytes("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::bytes("text/html; charset=utf-8", body.into().into_bytes())
    }

    /// 200 with the value serialised as JSON (500 if it cannot be serialised).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::bytes("application/json", body),
            Err(e) => Response::text(format!("cannot serialise response: {e}")).with_status(500),
        }
    }

    /// 200 with a body of the given content type.
    pub fn bytes(content_type: &str, body: Vec<u8>) -> Response {
        Response::new(200)
            .with_header("Content-Type", content_type)
            .with_body(body)
    }

    /// Replaces the status code.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Adds a header. A name that is not an HTTP token, or a value with CR, LF
    /// or NUL, is dropped when the response is written (no header injection).
    /// `Content-Length`, `Transfer-Encoding`, `Connection` and `Date` are the
    /// server's to set and are dropped too.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// The reason phrase for a status code.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// True for statuses whose responses never carry a body (RFC 9110 §6.4.1).
pub(crate) fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// True when a header name is a token and the value has no CR, LF or NUL.
pub(crate) fn header_is_safe(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(is_token_byte)
        && !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Headers only the server may set.
fn reserved(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "date"]
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
}

/// Writes a response head straight into a connection's output buffer.
pub(crate) struct HeadWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> HeadWriter<'o> {
    /// Starts a head: status line, `Date`, `Server`, and the configured extra headers.
    pub fn start(
        out: &'o mut Vec<u8>,
        status: u16,
        date: &str,
        extra: &[(String, String)],
    ) -> Self {
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {status} {}\r\nDate: {date}\r\nServer: wisp\r\n",
            reason(status)
        );
        let mut w = HeadWriter { out };
        for (name, value) in extra {
            w.header(name, value);
        }
        w
    }

    /// Adds one header line.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds the headers a handler set, skipping unsafe and reserved ones.
    pub fn handler_headers(&mut self, headers: &[(String, String)]) -> &mut Self {
        for (name, value) in headers {
            if header_is_safe(name, value) && !reserved(name) {
                self.header(name, value);
            }
        }
        self
    }

    /// Ends the head with `Content-Length` (when given) and `Connection: close` (when closing).
    pub fn finish(self, content_length: Option<u64>, close: bool) {
        if let Some(n) = content_length {
            let _ = write!(self.out, "Content-Length: {n}\r\n");
        }
        if close {
            self.out.extend_from_slice(b"Connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Adds `Connection: keep-alive` to the response head that starts at
/// `start` in `out`: an HTTP/1.0 client keeps the connection only when told
/// (RFC 9112 §9.3; 1.1 keeps it by default, so it is not sent there).
pub(crate) fn announce_keep_alive(out: &mut Vec<u8>, start: usize) {
    let Some(end) = out[start..].windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let at = start + end + 2;
    out.splice(at..at, b"Connection: keep-alive\r\n".iter().copied());
}

/// What a plain-text status page says.
pub(crate) struct StatusPage<'a> {
    pub status: u16,
    /// One extra header (`Allow`, `WWW-Authenticate`, …).
    pub header: Option<(&'a str, &'a str)>,
    /// Said after the reason phrase, when not empty.
    pub detail: &'a str,
    /// A HEAD request: the head only.
    pub head_only: bool,
}

impl StatusPage<'_> {
    /// Writes the page: a plain-text body naming the status (and the
    /// detail), with the configured extra headers.
    pub fn write(self, out: &mut Vec<u8>, date: &str, extra: &[(String, String)], close: bool) {
        let StatusPage {
            status,
            header,
            detail,
            head_only,
        } = self;
        let body = if detail.is_empty() {
            format!("{status} {}\n", reason(status))
        } else {
            format!("{status} {}: {detail}\n", reason(status))
        };
        let mut w = HeadWriter::start(out, status, date, extra);
        w.header("Content-Type", "text/plain; charset=utf-8");
        if let Some((name, value)) = header {
            w.header(name, value);
        }
        w.finish(Some(body.len() as u64), close);
        if !head_only {
            out.extend_from_slice(body.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_status_line_date_and_length() {
        let mut out = Vec::new();
        let extra = vec![("X-A".to_string(), "1".to_string())];
        let mut w = HeadWriter::start(&mut out, 404, "Sun, 06 Nov 1994 08:49:37 GMT", &extra);
        w.header("Content-Type", "text/plain");
        w.finish(Some(3), true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: wisp\r\n\
             X-A: 1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn unsafe_and_reserved_handler_headers_are_dropped() {
        let mut out = Vec::new();
        let headers = vec![
            ("X-Ok".to_string(), "v".to_string()),
            ("X-Bad".to_string(), "v\r\nSet-Cookie: x".to_string()),
            ("Bad Name".to_string(), "v".to_string()),
            ("content-length".to_string(), "9".to_string()),
        ];
        let mut w = HeadWriter::start(&mut out, 200, "d", &[]);
        w.handler_headers(&headers);
        w.finish(None, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-Ok: v\r\n"));
        assert!(!text.contains("Set-Cookie"));
        assert!(!text.contains("Bad Name"));
        assert!(!text.contains("content-length"));
    }

    #[test]
    fn builders_set_type_and_status() {
        let r = Response::json(&serde_json::json!({"a": 1}));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body(), br#"{"a":1}"#);
        assert_eq!(Response::html("<p>").with_status(201).status(), 201);
        assert!(bodiless(304) && bodiless(204) && bodiless(101) && !bodiless(200));
    }

    #[test]
    fn keep_alive_is_announced_in_the_head_only() {
        let mut out = b"earlier".to_vec();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
        announce_keep_alive(&mut out, 7);
        assert_eq!(
            out,
            b"earlierHTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbody"
        );
    }
}
