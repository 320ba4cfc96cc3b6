//! A proxied plain HTTP request, sans-IO: the request on its way to a host
//! ([`Fetch`]), what the client's connection and the downstream leg share
//! while it is under way ([`Exchange`]), a body passed from one to the
//! other ([`Reframe`]), and the downstream's response head read and written
//! again for the client ([`read_response`]).
//!
//! Bodies are streamed, never gathered: each read's worth is re-framed and
//! relayed to the other connection, which stops reading while the other
//! holds [`MARK`] bytes or more (the [`Pair`] gauge WebSockets use).

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;

use super::forward::copy_response_headers;
use super::relay::{Pair, Side};
use super::Proxied;
use crate::http::body::{BodyDecoder, Progress};
use crate::http::error::HttpError;
use crate::http::fields::{find_header, parse_decimal, trim, Tokens};
use crate::http::head::Framing;
use crate::http::response::{bodiless, reason};

/// Bytes one side of an exchange may hold for the other before that
/// other stops reading: a read buffer's worth.
pub(crate) const MARK: usize = 64 * 1024;

/// The longest downstream response head accepted (then 502).
const ANSWER_LIMIT: usize = 16 * 1024;

/// Header lines a downstream response head may have (then 502).
const ANSWER_HEADERS: usize = 128;

/// A plain HTTP request on its way to a downstream: everything needed to
/// try a host, try the next, and answer the client.
#[derive(Debug)]
pub(crate) struct Fetch {
    pub req: Proxied,
    /// The client's connection closes after this response (it asked, its
    /// request limit is reached, or the server is stopping).
    pub close: bool,
    /// The request has a body (relayed after the head).
    pub has_body: bool,
    /// Retried once already on a fresh connection after a pooled one
    /// turned out closed.
    pub retried: bool,
    pub exchange: Rc<Exchange>,
}

impl Fetch {
    /// True for a `HEAD` request: its response has no body.
    pub fn head_only(&self) -> bool {
        &*self.req.method == "HEAD"
    }
}

/// What the client's connection and the downstream leg share during one
/// exchange: the bytes each holds for the other (and whether each stopped
/// reading for it), and how far the request and the response have come.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    pub gauge: Pair,
    request_done: Cell<bool>,
    response_started: Cell<bool>,
    client_close: Cell<bool>,
}

impl Exchange {
    /// A new exchange; `bodiless` when the request has no body to relay.
    pub fn new(bodiless: bool) -> Exchange {
        let x = Exchange::default();
        x.request_done.set(bodiless);
        x
    }

    /// The whole request body has been relayed to the leg.
    pub fn request_done(&self) -> bool {
        self.request_done.get()
    }

    pub fn set_request_done(&self) {
        self.request_done.set(true);
    }

    /// The client has been sent the response head: a failure now can only
    /// close its connection.
    pub fn response_started(&self) -> bool {
        self.response_started.get()
    }

    /// The response head went to the client, saying it closes (`close`) or not.
    pub fn set_response_started(&self, close: bool) {
        self.response_started.set(true);
        self.client_close.set(close);
    }

    /// The client's connection closes once the response is written.
    pub fn client_closes(&self) -> bool {
        self.client_close.get()
    }

    /// True while `side` must not read on: the other side holds `MARK` or
    /// more bytes it sent. Records the pause for the other side's flush.
    pub fn full_for(&self, side: Side) -> bool {
        let full = self.gauge.held(side.other()) >= MARK;
        self.gauge.set_paused(side, full);
        full
    }

    /// `side` flushed and holds `held` bytes: true when the other side
    /// stopped reading for it and may read on now.
    pub fn drained(&self, side: Side, held: usize) -> bool {
        self.gauge.set_held(side, held);
        let other = side.other();
        let wake = held < MARK && self.gauge.paused(other);
        if wake {
            self.gauge.set_paused(other, false);
        }
        wake
    }
}

/// How a body is delimited on one side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body at all.
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (a response only).
    Eof,
}

impl From<Framing> for BodyFraming {
    fn from(f: Framing) -> BodyFraming {
        match f {
            Framing::None => BodyFraming::None,
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked,
        }
    }
}

/// One body on its way through: its bytes found in successive reads and
/// written again for the other side — a length's bytes as they are,
/// chunks decoded and (with `chunked_out`) chunked again, one chunk per
/// read, extensions and trailers dropped.
#[derive(Debug)]
pub(crate) struct Reframe {
    body: Body,
    chunked_out: bool,
}

#[derive(Debug)]
enum Body {
    Length { remaining: u64 },
    Chunked(BodyDecoder),
    Eof,
    Done,
}

impl Reframe {
    /// A body framed as `framing`; `chunked_out`: chunks are written as
    /// chunks again (else as bare bytes, for a close-delimited answer).
    pub fn new(framing: BodyFraming, chunked_out: bool) -> Reframe {
        let body = match framing {
            BodyFraming::None | BodyFraming::Length(0) => Body::Done,
            BodyFraming::Length(n) => Body::Length { remaining: n },
            BodyFraming::Chunked => Body::Chunked(BodyDecoder::new(Framing::Chunked)),
            BodyFraming::Eof => Body::Eof,
        };
        Reframe { body, chunked_out }
    }

    /// True once the body ended (never for a close-delimited one).
    pub fn done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    /// True for a body that ends when its sender closes.
    pub fn until_eof(&self) -> bool {
        matches!(self.body, Body::Eof)
    }

    /// Writes the body bytes at the front of `input` into `out`, framed for
    /// the other side; `consumed` says how much of `input` was the body.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, HttpError> {
        let progress = match &mut self.body {
            Body::Done => Progress {
                consumed: 0,
                done: true,
            },
            Body::Eof => {
                out.extend_from_slice(input);
                Progress {
                    consumed: input.len(),
                    done: false,
                }
            }
            Body::Length { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Progress {
                    consumed: take,
                    done: *remaining == 0,
                }
            }
            Body::Chunked(decoder) => {
                let start = out.len();
                // Streamed: the gateway keeps no body, so no limit here.
                let p = decoder.decode(input, out, u64::MAX)?;
                let data = out.len() - start;
                if self.chunked_out {
                    if data > 0 {
                        let size = format!("{data:x}\r\n");
                        out.splice(start..start, size.bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    if p.done {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                p
            }
        };
        if progress.done {
            self.body = Body::Done;
        }
        Ok(progress)
    }
}

/// How the client's response head is written.
#[derive(Debug)]
pub(crate) struct Respond<'a> {
    pub date: &'a str,
    /// The configured headers every response gets (`headers`), unless the
    /// downstream set one of the same name.
    pub extra: &'a [(String, String)],
    pub request_id: &'a str,
    /// A `Set-Cookie` value to add (a new sticky session).
    pub cookie: Option<&'a str>,
    /// The request was a `HEAD`: no body follows, whatever the head says.
    pub head_request: bool,
    /// The client's HTTP minor version (1.0 gets no chunks).
    pub client_minor: u8,
    /// The client's connection closes after this response.
    pub close: bool,
}

/// A downstream's final response head, read and written again for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Bytes of input the head took.
    pub len: usize,
    pub status: u16,
    /// How the downstream delimits the body that follows.
    pub body: BodyFraming,
    /// The body goes to the client in chunks again.
    pub chunked_out: bool,
    /// The leg may carry another request once the body ended.
    pub reusable: bool,
    /// The client's connection closes after this response.
    pub close: bool,
}

/// What a downstream's bytes were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// No whole head yet; nothing used.
    Partial,
    /// An interim (1xx) response of this many bytes, skipped.
    Interim(usize),
    /// The final response head; the client's is written.
    Final(Answer),
}

/// Reads the downstream's response head at the front of `buf` and, for a
/// final one, writes the client's into `out`: the downstream's status and
/// end-to-end headers, our `Date`, `Via` extended, the framing the client
/// gets, and `Connection: close` when its connection ends after it.
/// Interim responses (1xx) are skipped; a `101` to a plain request, a
/// malformed or over-long head, or a length that cannot be trusted is an
/// error (the client gets 502).
pub(crate) fn read_response(
    buf: &[u8],
    respond: &Respond<'_>,
    out: &mut Vec<u8>,
) -> Result<Reading, &'static str> {
    let mut storage = [httparse::EMPTY_HEADER; ANSWER_HEADERS];
    let mut r = httparse::Response::new(&mut storage);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > ANSWER_LIMIT => {
            return Err("a response head over 16 KiB")
        }
        Ok(httparse::Status::Partial) => return Ok(Reading::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response header lines"),
        Err(_) => return Err("a malformed response head"),
    };
    if len > ANSWER_LIMIT {
        return Err("a response head over 16 KiB");
    }
    let (Some(minor), Some(status)) = (r.version, r.code) else {
        return Err("a malformed response head");
    };
    if !(100..=999).contains(&status) {
        return Err("a status out of range");
    }
    if status == 101 {
        return Err("101 to a plain request");
    }
    if (100..200).contains(&status) {
        return Ok(Reading::Interim(len));
    }
    let headers: &[httparse::Header<'_>] = r.headers;
    let te = Tokens::of(headers, "transfer-encoding");
    let length = content_length(headers)?;
    let chunked = te.present
        && te
            .last()
            .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
    let body = if respond.head_request || bodiless(status) {
        BodyFraming::None
    } else if te.present {
        if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Eof
        }
    } else {
        match length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Eof,
        }
    };
    let reusable = minor == 1
        && !Tokens::of(headers, "connection").has("close")
        && body != BodyFraming::Eof
        && !(te.present && length.is_some())
        && (!te.present || chunked);
    let chunked_out = body == BodyFraming::Chunked && respond.client_minor >= 1;
    let until_close = body == BodyFraming::Eof || (body == BodyFraming::Chunked && !chunked_out);
    let close = respond.close || until_close;

    let why = r.reason.filter(|s| !s.is_empty()).unwrap_or(reason(status));
    let _ = write!(out, "HTTP/1.1 {status} {why}\r\nDate: {}\r\n", respond.date);
    copy_response_headers(out, headers);
    for (name, value) in respond.extra {
        if find_header(headers, name).is_none() {
            line(out, name, value.as_bytes());
        }
    }
    if find_header(headers, "x-request-id").is_none() {
        line(out, "X-Request-Id", respond.request_id.as_bytes());
    }
    if let Some(cookie) = respond.cookie {
        line(out, "Set-Cookie", cookie.as_bytes());
    }
    match body {
        BodyFraming::Length(n) => line(out, "Content-Length", n.to_string().as_bytes()),
        BodyFraming::Chunked if chunked_out => line(out, "Transfer-Encoding", b"chunked"),
        // What a GET would have had: the length of the body not sent.
        BodyFraming::None if respond.head_request || status == 304 => {
            if let Some(n) = length {
                line(out, "Content-Length", n.to_string().as_bytes());
            }
        }
        _ => {}
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Reading::Final(Answer {
        len,
        status,
        body,
        chunked_out,
        reusable,
        close,
    }))
}

/// The response's `Content-Length`: all values must agree and be numbers.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, &'static str> {
    let mut found = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for item in h.value.split(|&b| b == b',') {
            let n = parse_decimal(trim(item)).ok_or("a bad Content-Length")?;
            if found.is_some_and(|f| f != n) {
                return Err("Content-Length values that differ");
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(head_request: bool, client_minor: u8, close: bool) -> Respond<'static> {
        Respond {
            date: "Thu, 01 Jan 2026 00:00:00 GMT",
            extra: &[],
            request_id: "rid-1",
            cookie: None,
            head_request,
            client_minor,
            close,
        }
    }

    fn read(buf: &[u8], how: &Respond<'_>) -> (Result<Reading, &'static str>, String) {
        let mut out = Vec::new();
        let r = read_response(buf, how, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn answer(buf: &[u8], how: &Respond<'_>) -> (Answer, String) {
        match read(buf, how) {
            (Ok(Reading::Final(a)), text) => (a, text),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    /// Feeds `input` to a reframer split at `cut`: the output and where the body ended.
    fn reframe_split(
        framing: BodyFraming,
        chunked_out: bool,
        input: &[u8],
        cut: usize,
    ) -> (Vec<u8>, Option<usize>) {
        let mut r = Reframe::new(framing, chunked_out);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut end = None;
        for piece in [&input[..cut], &input[cut..]] {
            let mut at = 0;
            while at < piece.len() && end.is_none() {
                let p = r.feed(&piece[at..], &mut out).unwrap();
                at += p.consumed;
                if p.done {
                    end = Some(pos + at);
                }
                if p.consumed == 0 {
                    break;
                }
            }
            pos += piece.len();
        }
        (out, end)
    }

    #[test]
    fn a_length_passes_as_it_is_and_ends_where_it_says_split_anywhere() {
        let input = b"hello worldGET /next";
        for cut in 0..=input.len() {
            let (out, end) = reframe_split(BodyFraming::Length(11), false, input, cut);
            assert_eq!(out, b"hello world", "cut {cut}");
            assert_eq!(end, Some(11), "cut {cut}");
        }
    }

    #[test]
    fn chunks_are_chunked_again_or_unwrapped_split_anywhere() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let body_end = input.len() - 4;
        for cut in 0..=input.len() {
            let (out, end) = reframe_split(BodyFraming::Chunked, false, input, cut);
            assert_eq!(out, b"hello world", "cut {cut}");
            assert_eq!(end, Some(body_end), "cut {cut}");
            let (out, end) = reframe_split(BodyFraming::Chunked, true, input, cut);
            assert_eq!(end, Some(body_end), "cut {cut}");
            // Whatever the pieces, the chunks decode to the same bytes.
            let mut decoder = BodyDecoder::new(Framing::Chunked);
            let mut plain = Vec::new();
            let p = decoder.decode(&out, &mut plain, u64::MAX).unwrap();
            assert!(p.done && p.consumed == out.len(), "cut {cut}: {out:?}");
            assert_eq!(plain, b"hello world", "cut {cut}");
            assert!(out.ends_with(b"0\r\n\r\n") && !out.windows(9).any(|w| w == b"X-Trailer"));
        }
    }

    #[test]
    fn a_bad_chunk_is_an_error_and_eof_bodies_never_end() {
        let mut r = Reframe::new(BodyFraming::Chunked, true);
        assert!(r.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut r = Reframe::new(BodyFraming::Eof, false);
        let mut out = Vec::new();
        let p = r.feed(b"all of it", &mut out).unwrap();
        assert_eq!(
            (p.consumed, p.done, out.as_slice()),
            (9, false, &b"all of it"[..])
        );
        assert!(r.until_eof());
        assert!(Reframe::new(BodyFraming::Length(0), false).done());
    }

    #[test]
    fn a_response_head_is_rewritten_for_the_client() {
        let buf =
            b"HTTP/1.1 200 Fine\r\nServer: down\r\nDate: old\r\nConnection: keep-alive, X-Hop\r\n\
            X-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\nVia: 1.0 inner\r\n\
            Content-Type: text/plain\r\n\r\nhello";
        let extra = [
            ("X-Frame-Options".to_string(), "DENY".to_string()),
            ("Server".to_string(), "wisp".to_string()),
        ];
        let how = Respond {
            extra: &extra,
            cookie: Some("wisp-sticky=abc; Path=/"),
            ..respond(false, 1, false)
        };
        let (a, text) = answer(buf, &how);
        assert_eq!(a.len, buf.len() - 5);
        assert_eq!((a.status, a.body), (200, BodyFraming::Length(5)));
        assert!(a.reusable && !a.close && !a.chunked_out);
        assert_eq!(
            text,
            "HTTP/1.1 200 Fine\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: down\r\n\
             Content-Type: text/plain\r\nVia: 1.0 inner, 1.1 wisp\r\nX-Frame-Options: DENY\r\n\
             X-Request-Id: rid-1\r\nSet-Cookie: wisp-sticky=abc; Path=/\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn the_framing_decides_the_body_and_whether_the_leg_is_kept() {
        /// (head, HEAD request, client minor, body, reusable, client closes)
        type Case = (&'static [u8], bool, u8, BodyFraming, bool, bool);
        let cases: [Case; 9] = [
            // (head, HEAD request, client minor, body, reusable, client closes)
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                1,
                BodyFraming::Length(3),
                true,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                1,
                BodyFraming::Chunked,
                true,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                0,
                BodyFraming::Chunked,
                true,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                1,
                BodyFraming::Eof,
                false,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                1,
                BodyFraming::None,
                true,
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                1,
                BodyFraming::None,
                true,
                false,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                1,
                BodyFraming::None,
                true,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
                false,
                1,
                BodyFraming::Length(3),
                false,
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                1,
                BodyFraming::Length(3),
                false,
                false,
            ),
        ];
        for (head, head_request, minor, body, reusable, close) in cases {
            let (a, text) = answer(head, &respond(head_request, minor, false));
            let what = String::from_utf8_lossy(head);
            assert_eq!(a.body, body, "{what}");
            assert_eq!(a.reusable, reusable, "{what}");
            assert_eq!(a.close, close, "{what}");
            assert_eq!(text.contains("Connection: close\r\n"), close, "{what}");
            assert_eq!(
                text.contains("Transfer-Encoding: chunked"),
                a.chunked_out,
                "{what}"
            );
        }
        // HEAD and 304 keep the length a GET would have had.
        let (_, text) = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            &respond(true, 1, false),
        );
        assert!(text.contains("Content-Length: 3\r\n"));
        let (_, text) = answer(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            &respond(false, 1, false),
        );
        assert!(text.contains("Content-Length: 9\r\n"));
        // The client's own close is said.
        let (a, text) = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            &respond(false, 1, true),
        );
        assert!(a.close && a.reusable && text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn interim_responses_are_skipped_and_bad_heads_refused() {
        let how = respond(false, 1, false);
        assert_eq!(
            read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", &how).0,
            Ok(Reading::Interim(25))
        );
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Le", &how).0,
            Ok(Reading::Partial)
        );
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            assert!(
                read(bad, &how).0.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(ANSWER_LIMIT));
        assert!(read(long.as_bytes(), &how).0.is_err());
    }

    #[test]
    fn a_head_split_at_every_byte_is_read_once_whole() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n";
        let how = respond(false, 1, false);
        for cut in 0..buf.len() {
            assert_eq!(read(&buf[..cut], &how).0, Ok(Reading::Partial), "cut {cut}");
        }
        let (a, _) = answer(buf, &how);
        assert_eq!((a.len, a.body), (buf.len(), BodyFraming::Chunked));
    }

    #[test]
    fn a_side_stops_reading_while_the_other_holds_the_mark_and_is_woken_below_it() {
        let x = Exchange::new(false);
        assert!(!x.full_for(Side::Downstream));
        x.gauge.add_held(Side::Client, MARK);
        assert!(x.full_for(Side::Downstream), "the client holds the mark");
        assert!(!x.drained(Side::Client, MARK), "still full");
        assert!(x.drained(Side::Client, 10), "room again: the leg reads on");
        assert!(!x.drained(Side::Client, 0), "woken once");
        assert!(!x.full_for(Side::Downstream));
    }
}
