//! [`Request`]: a request as an action handler sees it (head, body, peer,
//! and who sent it), and [`BodyStream`], a body taken piece by piece. The
//! head is parsed in `head.rs`.

use std::net::SocketAddr;

use super::head::Head;
use super::response::Response;
use crate::message::ConnId;
use crate::message::PeerCert;
use crate::stats::Stats;
use crate::upload_api::UploadedFile;

/// A request as an action handler sees it: head, body and peer, all borrowed.
///
/// ```no_run
/// use wisp::{Config, Response, Server};
/// let mut server = Server::bind(Config::default()).unwrap();
/// server.action("/api/hello", |req| {
///     let name = req.query_param("name").unwrap_or_else(|| "world".into());
///     Response::text(format!("hello, {name}, from {}", req.peer_addr()))
/// });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    id: ConnId,
    head: &'a Head<'a>,
    body: &'a [u8],
    peer: SocketAddr,
    stats: &'a Stats,
    claims: Option<&'a serde_json::Value>,
    tls: bool,
    peer_cert: Option<&'a PeerCert>,
    uploads: &'a [UploadedFile],
    fields: &'a [(String, String)],
}

/// A request body taken piece by piece, for an action registered with
/// `Server::action_streaming`: the body is never gathered, so it may be as
/// large as `limits.upload` (not `limits.body`) with memory that does not
/// grow with it. A stream whose body never completes — the client
/// vanished, timed out or sent a broken chunk — is dropped without
/// `on_end`: clean up in its `Drop`.
///
/// ```
/// use wisp::{BodyStream, Response};
///
/// /// Counts the bytes of a body.
/// struct Count(u64);
///
/// impl BodyStream for Count {
///     fn on_body(&mut self, chunk: &[u8]) -> Result<(), Response> {
///         self.0 += chunk.len() as u64;
///         Ok(())
///     }
///     fn on_end(&mut self) -> Response {
///         Response::text(self.0.to_string())
///     }
/// }
/// ```
pub trait BodyStream {
    /// The next piece of the body, as it was read (any size, never empty).
    /// An `Err` answers with that response at once and closes the
    /// connection: the rest of the body is not read.
    fn on_body(&mut self, chunk: &[u8]) -> Result<(), Response>;

    /// The whole body arrived: the response.
    fn on_end(&mut self) -> Response;
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        head: &'a Head<'a>,
        body: &'a [u8],
        peer: SocketAddr,
        stats: &'a Stats,
    ) -> Self {
        Request {
            id: ConnId { key: 0, serial: 0 },
            head,
            body,
            peer,
            stats,
            claims: None,
            tls: false,
            peer_cert: None,
            uploads: &[],
            fields: &[],
        }
    }

    /// Names the connection the request came on.
    pub(crate) fn with_id(mut self, id: ConnId) -> Self {
        self.id = id;
        self
    }

    /// The connection the request came on: what answers a request
    /// answered [`Response::later`](crate::Response::later).
    pub fn id(&self) -> ConnId {
        self.id
    }

    pub(crate) fn with_form(
        mut self,
        uploads: &'a [UploadedFile],
        fields: &'a [(String, String)],
    ) -> Self {
        self.uploads = uploads;
        self.fields = fields;
        self
    }

    /// The files of a `multipart/form-data` upload (an action registered
    /// with `Server::action_with_uploads`), in the order sent; each is
    /// removed when the handler returns unless kept.
    pub fn uploads(&self) -> &'a [UploadedFile] {
        self.uploads
    }

    /// Keeps upload `index` by moving it to `dest` (a rename, so on the same
    /// file system as `upload.dir`); `NotFound` if there is no such upload.
    pub fn keep_upload(&self, index: usize, dest: &std::path::Path) -> std::io::Result<()> {
        match self.uploads.get(index) {
            Some(file) => file.keep_as(dest),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no upload with that index",
            )),
        }
    }

    /// The plain fields of a `multipart/form-data` upload (parts without a
    /// file name), as (name, value), in the order sent.
    pub fn form_fields(&self) -> &'a [(String, String)] {
        self.fields
    }

    /// The first plain field of a `multipart/form-data` upload with this name.
    pub fn form_field(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn with_claims(mut self, claims: Option<&'a serde_json::Value>) -> Self {
        self.claims = claims;
        self
    }

    pub(crate) fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// True when the request came over TLS (an `https://` listener; a
    /// WebSocket upgrade there is `wss`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn with_peer_cert(mut self, cert: Option<&'a PeerCert>) -> Self {
        self.peer_cert = cert;
        self
    }

    /// The certificate the TLS client presented, verified against
    /// `tls.authority` (mutual TLS): its subject and names.
    pub fn peer_cert(&self) -> Option<&'a PeerCert> {
        self.peer_cert
    }

    /// The claims of the JSON Web Token that let this request in, on a route
    /// with `auth: { type: 'jwt', … }`.
    pub fn claims(&self) -> Option<&'a serde_json::Value> {
        self.claims
    }

    /// The server's counters (what `/api/status` shows in the shipped binary).
    pub fn stats(&self) -> &'a Stats {
        self.stats
    }

    /// The value of a cookie sent with the request (`Cookie: a=1; b=2`), as sent.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.head
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"'))
            })
    }

    /// The method, e.g. `"GET"`.
    pub fn method(&self) -> &'a str {
        self.head.method
    }

    /// The path as sent (still percent-encoded), without the query.
    pub fn path(&self) -> &'a str {
        self.head.path
    }

    /// The query string without `?` (empty when there is none).
    pub fn query(&self) -> &'a str {
        self.head.query
    }

    /// The first query parameter with this name, percent- and `+`-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.head.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k)? == name).then(|| decode_component(v))?
        })
    }

    /// The first header with this name (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.head
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every header as (name, raw value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.head.headers.iter().map(|h| (h.name, h.value))
    }

    /// The body (empty when none was sent).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The address of the client.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn http_minor_version(&self) -> u8 {
        self.head.minor
    }
}

/// Decodes one `application/x-www-form-urlencoded` component; None if malformed or not UTF-8.
pub(crate) fn decode_component(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                (hi * 16 + lo) as u8
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{header_storage, parse_head, HeadLimits, TEST_LIMITS};

    const LIMITS: HeadLimits = TEST_LIMITS;

    #[test]
    fn query_params_are_decoded() {
        let req = b"GET /p?a=1&name=J%C3%B6rg+K&bad=%zz&e HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut storage = header_storage();
        let head = parse_head(req, &mut storage, &LIMITS).unwrap().unwrap();
        let stats = Stats::default();
        let r = Request::new(&head, b"", "127.0.0.1:1".parse().unwrap(), &stats);
        assert_eq!(r.query_param("name").as_deref(), Some("J\u{f6}rg K"));
        assert_eq!(r.query_param("a").as_deref(), Some("1"));
        assert_eq!(r.query_param("e").as_deref(), Some(""));
        assert_eq!(r.query_param("bad"), None);
        assert_eq!(r.query_param("zzz"), None);
        assert_eq!(r.header("HOST"), Some("h"));
    }
}
