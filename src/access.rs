//! The access log's line: Apache's common or combined log format, then how
//! long the request took and its request id, so a line reads the same in
//! any log tool that knows those formats and still says what wisp knows.
//!
//! ```text
//! 192.0.2.7 - - [03/Dec/2026:14:21:29 +0000] "GET /index.html HTTP/1.1" 200 1234 "-" "curl/8.5.0" 0.21ms
//! ```
//!
//! Everything a client sent is escaped (`"`, `\` and control bytes as `\xNN`),
//! so a request cannot forge a line or a field.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::config::AccessFormat;
use crate::http::date::format_clf_date;

/// One request as the access log tells it.
pub(crate) struct Entry<'a> {
    pub peer: IpAddr,
    pub method: &'a str,
    /// The path and the query (without its `?`) as the client sent them.
    pub target: (&'a str, &'a str),
    pub minor: u8,
    /// The status sent; 0 when none is yet (logged as `-`).
    pub status: u16,
    /// Bytes of the response's body; `None` when not known (a relayed one).
    pub bytes: Option<u64>,
    pub referer: Option<&'a [u8]>,
    pub agent: Option<&'a [u8]>,
    /// From the request's first byte to its answer being queued.
    pub took: Option<Duration>,
    /// The request id (`X-Request-Id`), when there is one.
    pub id: Option<&'a str>,
}

/// The line for `entry`, logged at `now`.
pub(crate) fn line(entry: &Entry<'_>, format: AccessFormat, now: SystemTime) -> String {
    let mut out = String::with_capacity(160);
    let (path, query) = entry.target;
    let _ = write!(
        out,
        "{} - - [{}] \"{} ",
        entry.peer,
        format_clf_date(now),
        entry.method
    );
    escape_into(&mut out, path.as_bytes());
    if !query.is_empty() {
        out.push('?');
        escape_into(&mut out, query.as_bytes());
    }
    let _ = write!(out, " HTTP/1.{}\" ", entry.minor);
    // 0: not answered yet (a body still streaming in, an answer to come).
    match entry.status {
        0 => out.push('-'),
        status => {
            let _ = write!(out, "{status}");
        }
    }
    out.push(' ');
    match entry.bytes {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push('-'),
    }
    if format == AccessFormat::Combined {
        for field in [entry.referer, entry.agent] {
            out.push_str(" \"");
            match field {
                Some(v) => escape_into(&mut out, v),
                None => out.push('-'),
            }
            out.push('"');
        }
    }
    if let Some(took) = entry.took {
        let _ = write!(out, " {:.2}ms", took.as_secs_f64() * 1000.0);
    }
    if let Some(id) = entry.id {
        let _ = write!(out, " id={id}");
    }
    out
}

/// Appends `bytes` as text a log line can hold: printable ASCII as itself,
/// `"` and `\` escaped, anything else as `\xNN`.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// The body length a response head written in `head` announces (0 for
/// a `HEAD` request and for statuses without a body).
pub(crate) fn body_length(head: &[u8], head_request: bool) -> Option<u64> {
    if head_request {
        return Some(0);
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&head[..end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    if crate::http::response::bodiless(status) {
        return Some(0);
    }
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry() -> Entry<'static> {
        Entry {
            peer: "192.0.2.7".parse().unwrap(),
            method: "GET",
            target: ("/a b\"c", "x=1"),
            minor: 1,
            status: 200,
            bytes: Some(1234),
            referer: None,
            agent: Some(b"curl/8 \"evil\"\n"),
            took: Some(Duration::from_micros(2100)),
            id: Some("abc"),
        }
    }

    #[test]
    fn combined_and_common_lines() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_307_689); // 2026-12-03 14:21:29 UTC
        assert_eq!(
            line(&entry(), AccessFormat::Combined, at),
            "192.0.2.7 - - [03/Dec/2026:14:21:29 +0000] \"GET /a b\\\"c?x=1 HTTP/1.1\" 200 1234 \
             \"-\" \"curl/8 \\\"evil\\\"\\x0a\" 2.10ms id=abc"
        );
        let e = Entry {
            bytes: None,
            took: None,
            id: None,
            ..entry()
        };
        assert_eq!(
            line(&e, AccessFormat::Common, at),
            "192.0.2.7 - - [03/Dec/2026:14:21:29 +0000] \"GET /a b\\\"c?x=1 HTTP/1.1\" 200 -"
        );
        let waiting = Entry {
            status: 0,
            bytes: None,
            took: None,
            id: None,
            ..entry()
        };
        assert!(line(&waiting, AccessFormat::Common, at).ends_with("HTTP/1.1\" - -"));
    }

    #[test]
    fn the_body_length_comes_from_the_head_written() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nbody";
        assert_eq!(body_length(head, false), Some(17));
        assert_eq!(body_length(head, true), Some(0));
        assert_eq!(
            body_length(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", false),
            Some(0)
        );
        assert_eq!(body_length(b"HTTP/1.1 200 OK\r\n", false), None);
    }
}
