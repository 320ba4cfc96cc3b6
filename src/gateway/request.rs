//! A client's request on its way to a downstream — what an upgrade and a
//! plain request share, and what an upgrade adds — and the pieces of the
//! client's request head the gateway keeps or answers with.

use std::net::SocketAddr;
use std::time::Instant;

use super::forward;
use crate::http::error::HttpError;
use crate::http::fields::{find_header, Tokens};
use crate::http::head::Head;
use crate::http::response::HeadWriter;
use crate::message::{ConnId, Origin};

/// A client's request on its way to a downstream, upgrade or plain:
/// everything needed to try a host, try the next, and finally answer the
/// client and log it.
#[derive(Debug)]
pub(crate) struct Proxied {
    pub route: usize,
    pub client: ConnId,
    pub peer: SocketAddr,
    /// The client's connection is TLS.
    pub tls: bool,
    /// The client's request head, as it arrived (each host gets its own
    /// rendering of it: its `Host`).
    pub head: Vec<u8>,
    /// The downstream request target: path and query.
    pub target: String,
    /// The method and the client's own target and HTTP minor version (the
    /// access log; a 1.0 client gets no chunks).
    pub method: Box<str>,
    pub client_target: Box<str>,
    pub minor: u8,
    pub request_id: String,
    /// The sticky cookie's value, and whether the answer must set it.
    pub sticky: Option<(String, bool)>,
    /// Hosts tried already, and the one being tried.
    pub tried: Vec<usize>,
    pub host: usize,
    /// What the client is told if no host is left: the last failure's status.
    pub status: HttpError,
    pub started: Instant,
}

impl Proxied {
    /// The request `head` on `route`, to `target` downstream, from
    /// `origin`, with its sticky-session key (`Gateway::sticky`).
    pub fn new(
        (route, target): (usize, String),
        head: &Head<'_>,
        origin: &Origin,
        sticky: Option<(String, bool)>,
    ) -> Proxied {
        Proxied {
            route,
            client: origin.id,
            peer: origin.peer,
            tls: origin.tls,
            head: head_bytes(head),
            target,
            method: head.method.into(),
            client_target: client_target(head),
            minor: head.minor,
            request_id: forward::client_request_id(head)
                .map_or_else(crate::entropy::token, str::to_string),
            sticky,
            tried: Vec::new(),
            host: 0,
            status: HttpError::BadGateway,
            started: origin.now,
        }
    }
}

/// A WebSocket upgrade on its way to a downstream.
#[derive(Debug)]
pub(crate) struct Upgrade {
    pub req: Proxied,
    /// Our `Sec-WebSocket-Accept` for the client's key.
    pub accept: String,
    /// The subprotocols the client offered, passed on as they are.
    pub offered: Vec<String>,
}

/// A request head as bytes again, for rendering once per host tried.
fn head_bytes(head: &Head<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(client_target(head).as_bytes());
    out.extend_from_slice(format!(" HTTP/1.{}\r\n", head.minor).as_bytes());
    for h in head.headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The request's target as the client sent it: path and query.
fn client_target(head: &Head<'_>) -> Box<str> {
    if head.query.is_empty() {
        head.path.into()
    } else {
        format!("{}?{}", head.path, head.query).into()
    }
}

/// The client's subprotocol offers, in order.
pub(crate) fn offered_protocols(head: &Head<'_>) -> Vec<String> {
    Tokens::of(head.headers, "sec-websocket-protocol")
        .iter()
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(str::to_string)
        .collect()
}

/// The value of cookie `name` in the request, if it has one.
pub(crate) fn cookie<'h>(head: &Head<'h>, name: &str) -> Option<&'h str> {
    head.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Our 101 to the client, once the downstream's came.
pub(crate) fn write_switching(
    out: &mut Vec<u8>,
    (date, extra): (&str, &[(String, String)]),
    upgrade: &Upgrade,
    protocol: Option<&str>,
    sticky: Option<(&str, std::time::Duration, bool)>,
) {
    let mut w = HeadWriter::start(out, 101, date, extra);
    w.header("Upgrade", "websocket");
    w.header("Connection", "Upgrade");
    w.header("Sec-WebSocket-Accept", &upgrade.accept);
    if let Some(p) = protocol {
        w.header("Sec-WebSocket-Protocol", p);
    }
    w.header("X-Request-Id", &upgrade.req.request_id);
    if let (Some((cookie, expiry, secure)), Some((value, true))) = (sticky, &upgrade.req.sticky) {
        let secure = if secure { "; Secure" } else { "" };
        let cookie = format!(
            "{cookie}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            expiry.as_secs()
        );
        w.header("Set-Cookie", &cookie);
    }
    w.finish(None, false);
}

/// True when a request asks to upgrade to a WebSocket (whether or not it
/// does so correctly: the checks say that).
pub(crate) fn wants_websocket(head: &Head<'_>) -> bool {
    find_header(head.headers, "upgrade").is_some()
        && Tokens::of(head.headers, "upgrade").has("websocket")
}
