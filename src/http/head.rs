//! The request head: httparse plus the RFC 9112 framing rules httparse
//! leaves to us. Resumable: an incomplete head consumes nothing. What the
//! head's header values mean is read with `fields.rs`; the request an
//! action sees is [`Request`](super::request::Request).

use std::mem::MaybeUninit;

use super::error::HttpError;
use super::fields::{find_header, parse_decimal, trim, Tokens};

/// The bounds a head is checked against (from `limits` in the config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub header: usize,
    pub headers: usize,
    pub uri: usize,
    pub body: u64,
}

/// How the body that follows a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed and validated request head, borrowing the input buffer.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    pub method: &'a str,
    /// The path part of the target (still percent-encoded), always starting with '/' or equal to "*".
    pub path: &'a str,
    /// The query without '?', or "".
    pub query: &'a str,
    pub minor: u8,
    pub headers: &'a [httparse::Header<'a>],
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Bytes of input the head occupied.
    pub len: usize,
}

impl<'a> Head<'a> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        find_header(self.headers, name)
    }
}

/// Header lines httparse may fill; `limits.headers` is capped to this.
pub(crate) const MAX_HEADERS: usize = 256;

/// Uninitialised room for `MAX_HEADERS` headers.
pub(crate) fn header_storage<'a>() -> [MaybeUninit<httparse::Header<'a>>; MAX_HEADERS] {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

pub(crate) const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// Parses a request head from the front of `buf`. `Ok(None)` means the head is
/// not complete yet and nothing was consumed.
///
/// `storage` need not be initialised, so a large array costs nothing per request.
pub(crate) fn parse_head<'a>(
    buf: &'a [u8],
    storage: &'a mut [MaybeUninit<httparse::Header<'a>>],
    limits: &HeadLimits,
) -> Result<Option<Head<'a>>, HttpError> {
    let slots = limits.headers.min(storage.len());
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut storage[..slots]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial_verdict(buf, limits).map(|()| None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        // Whether a bad version is another HTTP version (505) or garbage (400)
        // is decided on the whole request line, so the verdict does not
        // depend on where a read happened to end (found by property tests).
        Err(httparse::Error::Version) if !buf.contains(&b'\n') => {
            return partial_verdict(buf, limits).map(|()| None)
        }
        Err(httparse::Error::Version) if looks_like_other_version(buf) => {
            return Err(HttpError::UnsupportedVersion)
        }
        Err(_) => return Err(HttpError::Malformed),
    };
    if len > limits.header {
        return Err(HttpError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed);
    };
    let headers: &'a [httparse::Header<'a>] = req.headers;
    if target.len() > limits.uri {
        return Err(HttpError::UriTooLong);
    }
    if !METHODS.contains(&method) {
        return Err(HttpError::UnknownMethod);
    }
    let (path, query) = split_target(method, target)?;
    check_host(headers, minor)?;
    let framing = framing(headers, minor)?;
    if let Framing::Length(n) = framing {
        if n > limits.body {
            return Err(HttpError::BodyTooLarge);
        }
    }
    let conn = Tokens::of(headers, "connection");
    let keep_alive = if minor >= 1 {
        !conn.has("close")
    } else {
        conn.has("keep-alive") && !conn.has("close")
    };
    let expect_continue = match find_header(headers, "expect") {
        None => false,
        Some(v) if trim(v).eq_ignore_ascii_case(b"100-continue") => minor >= 1,
        Some(_) => return Err(HttpError::UnsupportedExpectation),
    };
    Ok(Some(Head {
        method,
        path,
        query,
        minor,
        headers,
        framing,
        keep_alive,
        expect_continue,
        len,
    }))
}

/// Rewrites a complete request line's `HTTP/1.2` … `HTTP/1.9` to `HTTP/1.1`
/// in place: a later minor version of HTTP/1 is served as the highest this
/// server speaks (RFC 9110 §2.5; 505 is for another major version).
pub(crate) fn serve_as_1_1(buf: &mut [u8]) {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return;
    };
    let line = &mut buf[..end];
    let line = match line {
        [rest @ .., b'\r'] => rest,
        line => line,
    };
    if let [.., b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ b'2'..=b'9'] = line {
        *minor = b'1';
    }
}

/// Decides whether an incomplete head has already broken a limit.
fn partial_verdict(buf: &[u8], limits: &HeadLimits) -> Result<(), HttpError> {
    // The request line is method SP target SP version; allow a generous margin
    // for the method and version before calling the target too long.
    let line_done = buf.contains(&b'\n');
    if !line_done && buf.len() > limits.uri.saturating_add(64) {
        return Err(HttpError::UriTooLong);
    }
    if buf.len() > limits.header {
        return Err(HttpError::HeadTooLarge);
    }
    Ok(())
}

/// True when the request line ends in a well-formed `HTTP/x.y` that is not 1.0/1.1.
fn looks_like_other_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(pos) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    match &line[pos + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

/// Splits the request target into path and query (RFC 9112 §3.2).
fn split_target<'a>(method: &str, target: &'a str) -> Result<(&'a str, &'a str), HttpError> {
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(("*", ""))
        } else {
            Err(HttpError::BadTarget)
        };
    }
    let origin = if target.starts_with('/') {
        target
    } else {
        absolute_form_path(target).ok_or(HttpError::BadTarget)?
    };
    if origin.contains('#') {
        return Err(HttpError::BadTarget);
    }
    Ok(match origin.split_once('?') {
        Some((path, query)) => (path, query),
        None => (origin, ""),
    })
}

/// The path of an absolute-form target (`http://host/path`), which servers must accept.
fn absolute_form_path(target: &str) -> Option<&str> {
    let scheme_len = ["http://", "https://"]
        .iter()
        .find(|s| {
            target
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        })?
        .len();
    let rest = &target[scheme_len..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_start == 0 {
        return None;
    }
    match &rest[path_start..] {
        "" => Some("/"),
        p if p.starts_with('/') => Some(p),
        _ => None, // "http://host?x" has no path; treat as malformed rather than guess
    }
}

fn check_host(headers: &[httparse::Header<'_>], minor: u8) -> Result<(), HttpError> {
    let hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    match (minor, hosts) {
        (_, 0) if minor >= 1 => Err(HttpError::BadHost),
        (_, 0 | 1) => Ok(()),
        _ => Err(HttpError::BadHost),
    }
}

/// Decides how the body is delimited, refusing every ambiguous combination.
fn framing(headers: &[httparse::Header<'_>], minor: u8) -> Result<Framing, HttpError> {
    let te = Tokens::of(headers, "transfer-encoding");
    let length = content_length(headers)?;
    if te.present {
        if length.is_some() {
            return Err(HttpError::AmbiguousLength);
        }
        if minor == 0 {
            // RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding has faulty framing.
            return Err(HttpError::Malformed);
        }
        return match te.last() {
            Some(last) if last.eq_ignore_ascii_case(b"chunked") => {
                if te.count() == 1 {
                    Ok(Framing::Chunked)
                } else {
                    Err(HttpError::UnsupportedTransferEncoding)
                }
            }
            // chunked not last: the body length cannot be determined at all.
            _ => Err(HttpError::Malformed),
        };
    }
    Ok(match length {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// All Content-Length values must agree (RFC 9112 §6.3).
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HttpError> {
    let mut found: Option<u64> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for item in h.value.split(|&b| b == b',') {
            let n = parse_decimal(trim(item)).ok_or(HttpError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(HttpError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Small limits for the parser's tests and `request.rs`'.
#[cfg(test)]
pub(crate) const TEST_LIMITS: HeadLimits = HeadLimits {
    header: 1024,
    headers: 8,
    uri: 64,
    body: 1000,
};

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = TEST_LIMITS;

    /// (path, query, framing, keep_alive, head length) of a parsed head.
    type Parsed = (String, String, Framing, bool, usize);

    fn parse(input: &[u8]) -> Result<Option<Parsed>, HttpError> {
        let mut storage = header_storage();
        parse_head(input, &mut storage, &LIMITS).map(|h| {
            h.map(|h| {
                (
                    h.path.to_string(),
                    h.query.to_string(),
                    h.framing,
                    h.keep_alive,
                    h.len,
                )
            })
        })
    }

    #[test]
    fn simple_get_is_complete_and_keeps_alive() {
        let req = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let (path, query, framing, keep, len) = parse(req).unwrap().unwrap();
        assert_eq!((path.as_str(), query.as_str()), ("/a/b", "x=1"));
        assert_eq!(framing, Framing::None);
        assert!(keep);
        assert_eq!(len, req.len());
    }

    #[test]
    fn every_split_point_is_partial_then_complete() {
        let req = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let head_len = req.len() - 5;
        for cut in 0..head_len {
            assert_eq!(parse(&req[..cut]).unwrap(), None, "cut at {cut}");
        }
        for cut in head_len..=req.len() {
            let (_, _, framing, _, len) = parse(&req[..cut]).unwrap().unwrap();
            assert_eq!((framing, len), (Framing::Length(5), head_len));
        }
    }

    #[test]
    fn statuses_for_bad_heads() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::Malformed),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", HttpError::Malformed),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", HttpError::UnsupportedVersion),
            (b"GET / FOO\r\nHost: h\r\n\r\n", HttpError::Malformed),
            (b"GET / HTTP/1.1\r\n\r\n", HttpError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HttpError::BadHost),
            (b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::UnknownMethod),
            (b"GET x HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget),
            (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget),
            (b"GET /#f HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::AmbiguousLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                HttpError::UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                HttpError::Malformed,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n",
                HttpError::BodyTooLarge,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n",
                HttpError::UnsupportedExpectation,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\ni: 1\r\n\r\n",
                HttpError::HeadTooLarge,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_bad_version_gets_the_same_answer_however_the_line_arrives() {
        let cases: &[(&[u8], HttpError)] = &[
            (
                b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
                HttpError::UnsupportedVersion,
            ),
            (b"GET / HTTP/2.0\x0e\nHost: h\r\n\r\n", HttpError::Malformed),
        ];
        for (input, want) in cases {
            let line_end = input.iter().position(|&b| b == b'\n').unwrap();
            for cut in 0..=line_end {
                assert_eq!(
                    parse(&input[..cut]),
                    Ok(None),
                    "cut {cut} of {:?}",
                    String::from_utf8_lossy(input)
                );
            }
            assert_eq!(parse(input), Err(*want));
        }
    }

    #[test]
    fn a_later_http_1_minor_is_served_as_1_1_and_other_majors_are_505() {
        for (line, want) in [
            (&b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"[..], Some(b'1')),
            (b"GET / HTTP/1.9\nHost: h\n\n", Some(b'1')),
            (b"GET / HTTP/1.0\r\n\r\n", Some(b'0')),
            (b"GET / HTTP/2.1\r\nHost: h\r\n\r\n", None),
        ] {
            let mut buf = line.to_vec();
            serve_as_1_1(&mut buf);
            let got = parse(&buf);
            match want {
                Some(minor) => {
                    assert!(matches!(got, Ok(Some(_))), "{line:?}: {got:?}");
                    assert_eq!(buf[13], minor, "{line:?}");
                }
                None => assert_eq!(got, Err(HttpError::UnsupportedVersion)),
            }
        }
        // An incomplete line is left as it is.
        let mut partial = b"GET / HTTP/1.2".to_vec();
        serve_as_1_1(&mut partial);
        assert_eq!(partial, b"GET / HTTP/1.2");
    }

    #[test]
    fn long_target_is_414_complete_or_not() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(100));
        assert_eq!(parse(long.as_bytes()), Err(HttpError::UriTooLong));
        let partial = format!("GET /{}", "a".repeat(200));
        assert_eq!(parse(partial.as_bytes()), Err(HttpError::UriTooLong));
    }

    #[test]
    fn oversized_partial_head_is_431() {
        let head = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "v".repeat(2000));
        assert_eq!(parse(head.as_bytes()), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn equal_repeated_lengths_and_chunked_are_accepted() {
        let req =
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(parse(req).unwrap().unwrap().2, Framing::Length(7));
        let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(parse(req).unwrap().unwrap().2, Framing::Chunked);
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap().unwrap().3, *want);
        }
    }

    #[test]
    fn absolute_form_and_asterisk() {
        let (path, query, ..) = parse(b"GET http://h:80/x?q HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((path.as_str(), query.as_str()), ("/x", "q"));
        let (path, ..) = parse(b"GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(path, "/");
        let (path, ..) = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(path, "*");
    }
}
