//! The request head a gateway sends downstream, and the response headers it
//! passes back: hop-by-hop headers dropped (RFC 9110 §7.6.1), the
//! forwarding headers added (`X-Forwarded-*`, `X-Request-Id`, `Via`), the
//! route's `headers` rules applied. Sans-IO: heads are written into a `Vec`.
//!
//! No header the client sent can smuggle a line: every value copied was
//! parsed as one header line by httparse, the route's own values were
//! checked at start-up, and the target comes from a template (no spaces or
//! control characters) filled from the parsed path and query.

use std::net::SocketAddr;

use crate::config::HeaderRules;
use crate::http::fields::{trim, Tokens};
use crate::http::head::{Framing, Head};

/// Who the request came from and how to send it on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forward<'a> {
    /// The client's address: appended to `X-Forwarded-For`.
    pub peer: SocketAddr,
    /// The client spoke TLS (https/wss): `X-Forwarded-Proto: https`.
    pub tls: bool,
    /// The client's valid `X-Request-Id` ([`client_request_id`]), else a new one.
    pub request_id: &'a str,
    /// The route's `headers` rules.
    pub rules: &'a HeaderRules,
    /// The downstream `host:port`, for `Host`.
    pub host: &'a str,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, with the obsolete `Keep-Alive`
/// and `Proxy-Connection`): they concern one connection, not the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The client's headers the gateway writes itself (or, for `Expect`,
/// has already answered).
const REWRITTEN: &[&str] = &[
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "via",
];

/// What the gateway adds to `Via` (RFC 9110 §7.6.3).
const VIA: &[u8] = b"1.1 wisp";

/// True for a hop-by-hop header: one of RFC 9110's, or one the message's
/// `Connection` header names.
pub(crate) fn is_hop_by_hop(name: &str, connection: &Tokens<'_, '_>) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) || connection.has(name)
}

/// The client's `X-Request-Id` if it is one worth keeping: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -`. Anything else is replaced, so a log line or a
/// downstream header never carries what a client chose to inject.
pub(crate) fn client_request_id<'a>(head: &Head<'a>) -> Option<&'a str> {
    let value = trim(head.header("x-request-id")?);
    if !valid_request_id(value) {
        return None;
    }
    std::str::from_utf8(value).ok()
}

fn valid_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A WebSocket upgrade to the downstream host, for `target` (path and
/// query) with the gateway's own `key`. The client's subprotocol offers go
/// on; its extensions do not (the gateway relays frames as they are, so it
/// cannot let the two ends agree on a compression it does not speak).
pub(crate) fn write_upgrade(
    out: &mut Vec<u8>,
    head: &Head<'_>,
    target: &str,
    key: &str,
    fwd: &Forward<'_>,
) {
    request_line(out, "GET", target, fwd.host);
    line(out, "Upgrade", b"websocket");
    line(out, "Connection", b"Upgrade");
    line(out, "Sec-WebSocket-Version", b"13");
    line(out, "Sec-WebSocket-Key", key.as_bytes());
    for h in head.headers {
        if h.name.eq_ignore_ascii_case("sec-websocket-protocol") && !removed(fwd.rules, h.name) {
            line(out, h.name, h.value);
        }
    }
    end_to_end(out, head, fwd, |name| {
        name.get(..14)
            .is_some_and(|p| p.eq_ignore_ascii_case("sec-websocket-"))
    });
    forwarding(out, head, fwd);
    out.extend_from_slice(b"\r\n");
}

/// A plain HTTP request to the downstream host, for `target` (path and
/// query): the method kept (HEAD stays HEAD), the body framed as the
/// client's was (`Content-Length`, or `Transfer-Encoding: chunked` for the
/// caller to pass the chunks on as they are), and the connection kept alive.
#[allow(dead_code)] // HTTP proxying is next
pub(crate) fn write_request(out: &mut Vec<u8>, head: &Head<'_>, target: &str, fwd: &Forward<'_>) {
    request_line(out, head.method, target, fwd.host);
    match head.framing {
        Framing::Length(n) => line(out, "Content-Length", n.to_string().as_bytes()),
        Framing::Chunked => line(out, "Transfer-Encoding", b"chunked"),
        Framing::None if head.header("content-length").is_some() => {
            line(out, "Content-Length", b"0")
        }
        Framing::None => {}
    }
    end_to_end(out, head, fwd, |_| false);
    forwarding(out, head, fwd);
    out.extend_from_slice(b"\r\n");
}

/// A downstream response's end-to-end headers for the client, `Via`
/// extended. Left out for the caller to write: the status line, the
/// framing (`Content-Length`, and `Transfer-Encoding` as hop-by-hop) and
/// `Date` (a `HeadWriter` writes its own; `Server` is passed on).
#[allow(dead_code)] // HTTP proxying is next
pub(crate) fn copy_response_headers(out: &mut Vec<u8>, headers: &[httparse::Header<'_>]) {
    let connection = Tokens::of(headers, "connection");
    for h in headers {
        let skip = is_hop_by_hop(h.name, &connection)
            || ["content-length", "date", "via"]
                .iter()
                .any(|n| h.name.eq_ignore_ascii_case(n));
        if !skip {
            line(out, h.name, h.value);
        }
    }
    via(out, headers, false);
}

fn request_line(out: &mut Vec<u8>, method: &str, target: &str, host: &str) {
    for part in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    line(out, "Host", host.as_bytes());
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// True when the route's `headers.remove` names this header.
fn removed(rules: &HeaderRules, name: &str) -> bool {
    rules.remove.iter().any(|r| name.eq_ignore_ascii_case(r))
}

/// The client's headers that go on as they are: not hop-by-hop, not
/// rewritten by the gateway, not `skip`ped by the caller, not removed or
/// replaced by the route's rules.
fn end_to_end(out: &mut Vec<u8>, head: &Head<'_>, fwd: &Forward<'_>, skip: impl Fn(&str) -> bool) {
    let connection = Tokens::of(head.headers, "connection");
    for h in head.headers {
        let dropped = is_hop_by_hop(h.name, &connection)
            || REWRITTEN.iter().any(|n| h.name.eq_ignore_ascii_case(n))
            || skip(h.name)
            || removed(fwd.rules, h.name)
            || fwd
                .rules
                .add
                .iter()
                .any(|(n, _)| h.name.eq_ignore_ascii_case(n));
        if !dropped {
            line(out, h.name, h.value);
        }
    }
}

/// `X-Forwarded-For` (the client's list, then its address),
/// `X-Forwarded-Proto`, `X-Forwarded-Host` (the client's `Host`),
/// `X-Request-Id`, `Via`, then the route's `headers.add`.
fn forwarding(out: &mut Vec<u8>, head: &Head<'_>, fwd: &Forward<'_>) {
    let mut chain = Vec::new();
    if !removed(fwd.rules, "x-forwarded-for") {
        append_values(&mut chain, head.headers, "x-forwarded-for");
    }
    if !chain.is_empty() {
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(fwd.peer.ip().to_string().as_bytes());
    line(out, "X-Forwarded-For", &chain);
    let proto: &[u8] = if fwd.tls { b"https" } else { b"http" };
    line(out, "X-Forwarded-Proto", proto);
    if let Some(host) = head.header("host") {
        line(out, "X-Forwarded-Host", trim(host));
    }
    if valid_request_id(fwd.request_id.as_bytes()) {
        line(out, "X-Request-Id", fwd.request_id.as_bytes());
    }
    via(out, head.headers, removed(fwd.rules, "via"));
    for (name, value) in &fwd.rules.add {
        line(out, name, value.as_bytes());
    }
}

/// `Via`: the message's own values (unless `drop_theirs`), then ours.
fn via(out: &mut Vec<u8>, headers: &[httparse::Header<'_>], drop_theirs: bool) {
    let mut value = Vec::new();
    if !drop_theirs {
        append_values(&mut value, headers, "via");
    }
    if !value.is_empty() {
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(VIA);
    line(out, "Via", &value);
}

/// Every value of the headers called `name`, trimmed, joined with ", ".
fn append_values(into: &mut Vec<u8>, headers: &[httparse::Header<'_>], name: &str) {
    let values = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| trim(h.value))
        .filter(|v| !v.is_empty());
    for v in values {
        if !into.is_empty() {
            into.extend_from_slice(b", ");
        }
        into.extend_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{header_storage, parse_head, HeadLimits};

    const LIMITS: HeadLimits = HeadLimits {
        header: 8192,
        headers: 64,
        uri: 4096,
        body: u64::MAX,
    };

    /// Runs `f` on the parsed head of `req`.
    fn with_head<T>(req: &str, f: impl FnOnce(&Head<'_>) -> T) -> T {
        let mut storage = header_storage();
        let head = parse_head(req.as_bytes(), &mut storage, &LIMITS)
            .unwrap()
            .unwrap();
        f(&head)
    }

    fn rules(add: &[(&str, &str)], remove: &[&str]) -> HeaderRules {
        HeaderRules {
            add: add
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn fwd<'a>(rules: &'a HeaderRules, tls: bool) -> Forward<'a> {
        Forward {
            peer: "192.0.2.7:40000".parse().unwrap(),
            tls,
            request_id: "req-1",
            rules,
            host: "127.0.0.1:5001",
        }
    }

    fn request(req: &str, rules: &HeaderRules) -> String {
        with_head(req, |head| {
            let mut out = Vec::new();
            write_request(&mut out, head, "/down?q=1", &fwd(rules, false));
            String::from_utf8(out).unwrap()
        })
    }

    #[test]
    fn an_upgrade_keeps_end_to_end_headers_and_adds_the_forwarding_ones() {
        let req = "GET /gateway/chat?x=1 HTTP/1.1\r\n\
            Host: front.example\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade, X-Secret\r\n\
            X-Secret: s\r\n\
            Keep-Alive: 5\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Extensions: permessage-deflate\r\n\
            Sec-WebSocket-Protocol: chat, json\r\n\
            Origin: https://front.example\r\n\
            Cookie: a=1\r\n\
            Authorization: Bearer t\r\n\
            X-Forwarded-For: 203.0.113.9\r\n\
            Via: 1.0 edge\r\n\
            X-Request-Id: abc-123\r\n\
            X-Drop: 1\r\n\
            X-Api-Key: client\r\n\r\n";
        let rules = rules(&[("X-Api-Key", "gw")], &["x-drop"]);
        let got = with_head(req, |head| {
            let mut out = Vec::new();
            write_upgrade(&mut out, head, "/chat?x=1", "S3Y=", &fwd(&rules, true));
            String::from_utf8(out).unwrap()
        });
        let want = "GET /chat?x=1 HTTP/1.1\r\n\
            Host: 127.0.0.1:5001\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Key: S3Y=\r\n\
            Sec-WebSocket-Protocol: chat, json\r\n\
            Origin: https://front.example\r\n\
            Cookie: a=1\r\n\
            Authorization: Bearer t\r\n\
            X-Forwarded-For: 203.0.113.9, 192.0.2.7\r\n\
            X-Forwarded-Proto: https\r\n\
            X-Forwarded-Host: front.example\r\n\
            X-Request-Id: req-1\r\n\
            Via: 1.0 edge, 1.1 wisp\r\n\
            X-Api-Key: gw\r\n\r\n";
        assert_eq!(got, want);
    }

    #[test]
    fn a_request_keeps_its_method_and_framing() {
        let r = rules(&[], &[]);
        let got = request(
            "HEAD /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
            &r,
        );
        assert_eq!(
            got,
            "HEAD /down?q=1 HTTP/1.1\r\nHost: 127.0.0.1:5001\r\nAccept: */*\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\
             X-Request-Id: req-1\r\nVia: 1.1 wisp\r\n\r\n"
        );
        let chunked = request(
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: X-Sum\r\n\r\n",
            &r,
        );
        assert!(chunked.starts_with(
            "POST /down?q=1 HTTP/1.1\r\nHost: 127.0.0.1:5001\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For"
        ), "{chunked}");
        let sized = request(
            "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            &r,
        );
        assert!(
            sized.contains("\r\nContent-Length: 5\r\nX-Forwarded-For"),
            "{sized}"
        );
        assert!(!sized.contains("Expect"), "{sized}");
        let empty = request(
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            &r,
        );
        assert!(empty.contains("\r\nContent-Length: 0\r\n"), "{empty}");
        let none = request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &r);
        assert!(!none.contains("Content-Length") && !none.contains("Connection"));
    }

    #[test]
    fn hop_by_hop_includes_what_connection_names() {
        with_head(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\n\r\n",
            |head| {
                let c = Tokens::of(head.headers, "connection");
                for hop in [
                    "X-Hop",
                    "connection",
                    "Keep-Alive",
                    "TE",
                    "Proxy-Authorization",
                    "upgrade",
                ] {
                    assert!(is_hop_by_hop(hop, &c), "{hop}");
                }
                assert!(!is_hop_by_hop("X-End", &c));
                assert!(!is_hop_by_hop("Authorization", &c));
            },
        );
        let r = rules(&[], &[]);
        let got = request(
            "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nProxy-Connection: keep-alive\r\nX-End: 2\r\n\r\n",
            &r,
        );
        assert!(got.contains("\r\nX-End: 2\r\n"), "{got}");
        for gone in ["X-Hop", "Connection", "close"] {
            assert!(!got.contains(gone), "{gone} in {got}");
        }
    }

    #[test]
    fn forwarded_for_appends_to_every_list_the_client_sent() {
        let r = rules(&[], &[]);
        let got = request(
            "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1, 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n\r\n",
            &r,
        );
        assert!(
            got.contains("\r\nX-Forwarded-For: 203.0.113.1, 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"),
            "{got}"
        );
        assert!(
            got.contains("\r\nX-Forwarded-Proto: http\r\n"),
            "the client's proto is not trusted"
        );
        assert_eq!(got.matches("X-Forwarded-").count(), 3, "{got}");
        let distrust = rules(&[], &["x-forwarded-for", "via"]);
        let got = request(
            "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1\r\nVia: 1.0 edge\r\n\r\n",
            &distrust,
        );
        assert!(got.contains("\r\nX-Forwarded-For: 192.0.2.7\r\n"), "{got}");
        assert!(got.contains("\r\nVia: 1.1 wisp\r\n"), "{got}");
        let v6 = with_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n", |head| {
            let mut out = Vec::new();
            let f = Forward {
                peer: "[2001:db8::1]:5".parse().unwrap(),
                ..fwd(&r, false)
            };
            write_request(&mut out, head, "/", &f);
            String::from_utf8(out).unwrap()
        });
        assert!(v6.contains("\r\nX-Forwarded-For: 2001:db8::1\r\n"), "{v6}");
    }

    #[test]
    fn add_replaces_and_remove_drops() {
        let r = rules(
            &[("X-Api-Key", "secret"), ("X-Env", "prod")],
            &["cookie", "authorization"],
        );
        let got = request(
            "GET /x HTTP/1.1\r\nHost: h\r\nx-api-key: forged\r\nCookie: a=1\r\nAuthorization: Bearer t\r\nOrigin: o\r\n\r\n",
            &r,
        );
        assert!(
            got.ends_with("\r\nVia: 1.1 wisp\r\nX-Api-Key: secret\r\nX-Env: prod\r\n\r\n"),
            "{got}"
        );
        for gone in ["forged", "Cookie", "Authorization"] {
            assert!(!got.contains(gone), "{gone} in {got}");
        }
        assert!(got.contains("\r\nOrigin: o\r\n"));
    }

    #[test]
    fn request_ids_are_kept_only_when_valid() {
        let id = |req: &str| with_head(req, |h| client_request_id(h).map(str::to_string));
        let long = "a".repeat(129);
        assert_eq!(
            id("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id:  a.b_c:d-1 \r\n\r\n").as_deref(),
            Some("a.b_c:d-1")
        );
        assert_eq!(id("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), None);
        assert_eq!(
            id("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: \r\n\r\n"),
            None
        );
        assert_eq!(
            id("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: a b\r\n\r\n"),
            None
        );
        assert_eq!(
            id("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: a/b\r\n\r\n"),
            None
        );
        assert_eq!(
            id(&format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: {long}\r\n\r\n"
            )),
            None
        );
        assert_eq!(
            id(&format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: {}\r\n\r\n",
                &long[1..]
            ))
            .map(|s| s.len()),
            Some(128)
        );
        let r = rules(&[], &[]);
        let got = with_head(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: old\r\n\r\n",
            |head| {
                let mut out = Vec::new();
                let f = Forward {
                    request_id: "new-1",
                    ..fwd(&r, false)
                };
                write_request(&mut out, head, "/", &f);
                String::from_utf8(out).unwrap()
            },
        );
        assert!(
            got.contains("\r\nX-Request-Id: new-1\r\n") && !got.contains("old"),
            "{got}"
        );
        let bad = with_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n", |head| {
            let mut out = Vec::new();
            let f = Forward {
                request_id: "x\r\nEvil: 1",
                ..fwd(&r, false)
            };
            write_request(&mut out, head, "/", &f);
            String::from_utf8(out).unwrap()
        });
        assert!(!bad.contains("Evil"), "{bad}");
    }

    #[test]
    fn response_headers_lose_hop_by_hop_and_gain_via() {
        let mut storage = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut storage);
        let raw = b"HTTP/1.1 200 OK\r\nDate: x\r\nServer: up\r\nContent-Length: 3\r\n\
            Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
            Set-Cookie: s=1\r\nVia: 1.1 inner\r\nContent-Type: text/plain\r\n\r\n";
        resp.parse(raw).unwrap();
        let mut out = Vec::new();
        copy_response_headers(&mut out, resp.headers);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Server: up\r\nSet-Cookie: s=1\r\nContent-Type: text/plain\r\nVia: 1.1 inner, 1.1 wisp\r\n"
        );
        let mut storage = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut storage);
        resp.parse(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        copy_response_headers(&mut out, resp.headers);
        assert_eq!(out, b"Via: 1.1 wisp\r\n");
    }
}
