//! The WebSocket opening handshake (RFC 6455 §4.2), the whole of it: is
//! this request a valid upgrade, which handler takes it, what does its
//! `on_upgrade` say — then the 101, the new session and its `on_open`, or
//! the refusal.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::config::Config;
use crate::http::error::HttpError;
use crate::http::fields::{find_header, trim, Tokens};
use crate::http::head::{Framing, Head};
use crate::http::request::Request;
use crate::http::response::{HeadWriter, Response};
use crate::hub::Hub;
use crate::message::{Origin, Peer, PeerCert};
use crate::session::{Flow, Session, SharedLimits, Step};
use crate::turn::Turn;
use crate::ws::deflate::compress::Compressor;
use crate::ws::deflate::negotiate::negotiate;
use crate::ws::deflate::{Agreed, Outgoing, Policy};
use crate::ws::handshake::{accept_key, select_protocol, valid_key, HandshakeError};
use crate::ws_api::{AnyHandler, ConnInfo, Extra, Target, Who};

/// A request the server will upgrade.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Accepted<'h> {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The subprotocol to echo, if one was negotiated.
    pub protocol: Option<&'h str>,
}

/// Why an upgrade was refused. Each prints as its one-line reason, said on
/// the refusal page after the status that [`Refused::error`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a GET (405, with `Allow: GET`).
    NotGet,
    /// No `Upgrade: websocket` or no `Connection: Upgrade` (426, with `Upgrade: websocket`).
    NotAnUpgrade,
    /// An `Origin` outside `webSockets.origins` (403).
    Origin,
    /// HTTP/1.0 (400).
    OldHttp,
    /// A request body (400).
    Body,
    /// No `Sec-WebSocket-Version` (400).
    NoVersion,
    /// A version other than 13 (426, with `Sec-WebSocket-Version: 13`).
    Version,
    /// No `Sec-WebSocket-Key`, more than one, or not 16 bytes of base64 (400).
    Key,
    /// A subprotocol offer the server cannot take (400).
    Protocol(HandshakeError),
    /// Only handlers for named subprotocols serve this path, and the client
    /// offered none of them (400).
    NoHandlerProtocol,
    /// The handler chose a subprotocol the client did not offer (500).
    HandlerProtocol,
    /// The handler's `on_upgrade` panicked (500).
    HandlerFailed,
}

impl Refused {
    /// The HTTP refusal this is, which gives the status.
    pub fn error(self) -> HttpError {
        match self {
            Refused::NotGet => HttpError::MethodNotAllowed,
            Refused::NotAnUpgrade | Refused::Version => HttpError::UpgradeRequired,
            Refused::Origin => HttpError::Forbidden,
            Refused::OldHttp
            | Refused::Body
            | Refused::NoVersion
            | Refused::Key
            | Refused::Protocol(_)
            | Refused::NoHandlerProtocol => HttpError::BadUpgrade,
            Refused::HandlerProtocol | Refused::HandlerFailed => HttpError::Internal,
        }
    }

    /// The header the refusal carries, if any: what the client should send instead.
    pub fn header(self) -> Option<(&'static str, &'static str)> {
        match self {
            Refused::NotGet => Some(("Allow", "GET")),
            Refused::NotAnUpgrade => Some(("Upgrade", "websocket")),
            Refused::Version => Some(("Sec-WebSocket-Version", "13")),
            _ => None,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::NotGet => "a WebSocket upgrade must be a GET",
            Refused::NotAnUpgrade => {
                "this resource is a WebSocket: send Upgrade: websocket and Connection: Upgrade"
            }
            Refused::Origin => "this Origin may not open a WebSocket here",
            Refused::OldHttp => "a WebSocket upgrade needs HTTP/1.1",
            Refused::Body => "a WebSocket upgrade must not have a body",
            Refused::NoVersion => "missing Sec-WebSocket-Version",
            Refused::Version => "only WebSocket version 13 is supported",
            Refused::Key => "missing or invalid Sec-WebSocket-Key",
            Refused::Protocol(e) => return e.fmt(f),
            Refused::NoHandlerProtocol => "a WebSocket subprotocol this path speaks is required",
            Refused::HandlerProtocol => "the handler chose a subprotocol the client did not offer",
            Refused::HandlerFailed => "the upgrade handler failed",
        })
    }
}

/// Checks an upgrade request against RFC 6455 §4.2.1, refuses an `Origin`
/// not in `origins` (when that list is not empty), and picks a subprotocol
/// from `protocols` (the server's list).
pub(crate) fn check<'h>(
    head: &Head<'h>,
    protocols: &[String],
    origins: &[String],
) -> Result<Accepted<'h>, Refused> {
    let key = check_request(head, origins)?;
    let offered = Tokens::of(head.headers, "sec-websocket-protocol");
    let protocol = select_protocol(offered.iter(), protocols).map_err(Refused::Protocol)?;
    Ok(Accepted {
        accept: accept_key(key),
        protocol,
    })
}

/// RFC 6455 §4.2.1's checks and the `Origin` one, without choosing a
/// subprotocol (a gateway lets its downstream choose); returns the key.
pub(crate) fn check_request<'h>(head: &Head<'h>, origins: &[String]) -> Result<&'h [u8], Refused> {
    if head.method != "GET" {
        return Err(Refused::NotGet);
    }
    let upgrade = Tokens::of(head.headers, "upgrade").has("websocket");
    let connection = Tokens::of(head.headers, "connection").has("upgrade");
    if !upgrade || !connection {
        return Err(Refused::NotAnUpgrade);
    }
    if !origin_allowed(head, origins) {
        return Err(Refused::Origin);
    }
    if head.minor < 1 {
        return Err(Refused::OldHttp);
    }
    if head.framing != Framing::None {
        return Err(Refused::Body);
    }
    match find_header(head.headers, "sec-websocket-version").map(trim) {
        None => return Err(Refused::NoVersion),
        Some(b"13") => {}
        Some(_) => return Err(Refused::Version),
    }
    let mut keys = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"));
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) if valid_key(k.value) => k.value,
        _ => return Err(Refused::Key),
    };
    Ok(key)
}

/// The request being upgraded, and who sent it.
pub(crate) struct Upgrading<'r, 'h> {
    pub head: &'r Head<'h>,
    /// The verified JWT claims, on a route with JWT auth.
    pub claims: Option<&'r serde_json::Value>,
    pub origin: Origin,
    /// The TLS client's verified certificate.
    pub peer_cert: Option<&'r PeerCert>,
}

/// The last upgrade target of each WebSocket handler, shared by the
/// connections that ask for the same one: most clients of a handler upgrade
/// on its route's own path, and a target of its own would cost each idle
/// WebSocket a heap chunk (32 bytes for `/ws/echo`). One string per handler
/// is kept alive at most.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    /// By handler index.
    last: Vec<Option<Target>>,
}

impl Targets {
    /// `path` with `?query` when there is one, shared with the handler's
    /// previous connection when that asked for the same.
    fn get(&mut self, handler: usize, path: &str, query: &str) -> Target {
        if self.last.len() <= handler {
            self.last.resize(handler + 1, None);
        }
        let last = &mut self.last[handler];
        let same = |t: &str| match t.strip_prefix(path) {
            Some("") => query.is_empty(),
            Some(rest) => !query.is_empty() && rest.strip_prefix('?') == Some(query),
            None => false,
        };
        match last {
            Some(t) if same(t) => Rc::clone(t),
            _ => {
                let t: Target = Rc::new(if query.is_empty() {
                    path.into()
                } else {
                    format!("{path}?{query}").into()
                });
                *last = Some(Rc::clone(&t));
                t
            }
        }
    }
}

/// What the app lends the handshake.
pub(crate) struct Lent<'a> {
    /// Every WebSocket handler, by index.
    pub sockets: &'a mut [Box<dyn AnyHandler>],
    pub config: &'a Config,
    pub hub: &'a mut Hub,
    /// The `Date` header value.
    pub date: &'a str,
    /// The receivers' limits, by kind of connection.
    pub ws_limits: &'a mut SharedLimits,
    /// The targets the handlers' connections share.
    pub targets: &'a mut Targets,
}

/// How a handshake ended.
#[derive(Debug)]
pub(crate) enum Upgraded {
    /// The 101 is written and `on_open` has run (its sends follow the 101);
    /// `close` if the handler closed the connection already.
    Open { session: Box<Session>, close: bool },
    /// Refused by the checks or for the handler's failure: a status page follows.
    Refused(Refused),
    /// The handler's `on_upgrade` answered with its own response.
    Rejected(Response),
}

/// Runs the handshake for a request to the WebSocket handlers `candidates`
/// (index in `lent.sockets`, and the subprotocol each serves or `None` for
/// any), writing the 101 into `out` when it succeeds.
pub(crate) fn upgrade(
    request: Upgrading<'_, '_>,
    candidates: &[(usize, Option<&str>)],
    lent: Lent<'_>,
    out: &mut Vec<u8>,
) -> Upgraded {
    let Upgrading {
        head,
        claims,
        origin,
        peer_cert,
    } = request;
    let Lent {
        sockets,
        config,
        hub,
        date,
        ws_limits,
        targets,
    } = lent;
    let mut supported = config.web_sockets.protocols.clone();
    supported.extend(
        candidates
            .iter()
            .filter_map(|&(_, p)| p.map(str::to_string)),
    );
    let accepted = match check(head, &supported, &config.web_sockets.origins) {
        Ok(accepted) => accepted,
        Err(refused) => return Upgraded::Refused(refused),
    };
    let chosen = candidates
        .iter()
        .find(|(_, p)| p.is_some() && *p == accepted.protocol)
        .or_else(|| candidates.iter().find(|(_, p)| p.is_none()));
    let Some(&(socket, _)) = chosen else {
        return Upgraded::Refused(Refused::NoHandlerProtocol);
    };
    let Some(handler) = sockets.get_mut(socket) else {
        return Upgraded::Refused(Refused::HandlerFailed);
    };
    let handler = &mut **handler;
    let request = Request::new(head, &[], origin.peer, &hub.stats)
        .with_claims(claims)
        .with_tls(origin.tls)
        .with_peer_cert(peer_cert);
    let verdict = catch_unwind(AssertUnwindSafe(|| handler.upgrade(&request)));
    let (state, protocol) = match verdict {
        Ok(Ok((state, None))) => (state, accepted.protocol),
        Ok(Ok((state, Some(p)))) => match offered_token(head, &p) {
            Some(token) => (state, Some(token)),
            None => {
                handler.release(state);
                return Upgraded::Refused(Refused::HandlerProtocol);
            }
        },
        Err(_) => return Upgraded::Refused(Refused::HandlerFailed),
        Ok(Err(response)) => return Upgraded::Rejected(response),
    };
    let deflate = deflate_offer(head, config, handler.compression());
    let mut w = HeadWriter::start(out, 101, date, &config.headers);
    w.header("Upgrade", "websocket");
    w.header("Connection", "Upgrade");
    w.header("Sec-WebSocket-Accept", &accepted.accept);
    if let Some(protocol) = protocol {
        w.header("Sec-WebSocket-Protocol", protocol);
    }
    if let Some(agreed) = &deflate {
        w.header("Sec-WebSocket-Extensions", &agreed.header_value());
    }
    w.finish(None, false);
    let compression = &config.web_sockets.compression;
    let outgoing = deflate.map_or(Outgoing::Off, |a| a.outgoing(compression.context_takeover));
    let own = (outgoing == Outgoing::Own).then(|| {
        let bits = deflate.map_or(15, |a| a.server_max_window_bits);
        Compressor::new(compression.level, bits, false)
    });
    let target = targets.get(socket, head.path, head.query);
    let info = ConnInfo {
        handler: socket as u32,
        deflate: Outgoing::Off,
        target,
        extra: Extra::boxed(claims, peer_cert, own, protocol),
    };
    hub.add_socket(origin.id, socket);
    let limits = ws_limits.get(handler.streaming(), deflate);
    let mut session = Session::new(state, limits, info, config, origin.now);
    session.set_timeout(handler.timeout());
    session.set_tls(origin.tls);
    session.set_outgoing(outgoing);
    hub.deflate.count(outgoing, true);
    // The 101 is in `out`; on_open's sends go after it.
    let mut turn = Turn::lend(std::mem::take(out), origin.now);
    turn.room = config.web_sockets.max_backpressure;
    let peer = Peer::new(origin.peer);
    let flow = session.open(
        Step::new(
            handler,
            config,
            hub,
            &mut turn,
            Who {
                id: origin.id,
                peer: &peer,
            },
        ),
        head.headers,
    );
    *out = turn.scratch;
    Upgraded::Open {
        session: Box::new(session),
        close: flow == Flow::Close,
    }
}

/// The permessage-deflate parameters agreed for this upgrade, if
/// compression is on, the handler takes it, and the client offered it.
fn deflate_offer(head: &Head<'_>, config: &Config, handler_takes_it: bool) -> Option<Agreed> {
    let compression = &config.web_sockets.compression;
    if !compression.enable || !handler_takes_it {
        return None;
    }
    let offers = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| h.value);
    negotiate(offers, &Policy::of(compression))
}

/// The client's offered subprotocol equal to `protocol`, borrowed from the request.
fn offered_token<'h>(head: &Head<'h>, protocol: &str) -> Option<&'h str> {
    Tokens::of(head.headers, "sec-websocket-protocol")
        .iter()
        .find(|t| *t == protocol.as_bytes())
        .and_then(|t| std::str::from_utf8(t).ok())
}

/// Browsers always send `Origin` with a WebSocket upgrade; a page from a
/// site not in the list must not open one (cross-site WebSocket hijacking).
/// Clients that are not browsers send no `Origin` and are not affected.
fn origin_allowed(head: &Head<'_>, origins: &[String]) -> bool {
    if origins.is_empty() {
        return true;
    }
    find_header(head.headers, "origin").is_none_or(|origin| {
        let origin = trim(origin);
        origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{header_storage, parse_head, HeadLimits};

    #[test]
    fn targets_are_shared_only_when_equal() {
        let mut t = Targets::default();
        let a = t.get(1, "/ws/echo", "");
        let b = t.get(1, "/ws/echo", "");
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(&**a, "/ws/echo");
        let q = t.get(1, "/ws/echo", "room=1");
        assert_eq!(&**q, "/ws/echo?room=1");
        assert!(Rc::ptr_eq(&q, &t.get(1, "/ws/echo", "room=1")));
        assert_eq!(&**t.get(1, "/ws/echo", "room=2"), "/ws/echo?room=2");
        assert_eq!(&**t.get(1, "/ws/echo", ""), "/ws/echo");
        assert_eq!(&**t.get(1, "/ws/ech", ""), "/ws/ech");
        assert_eq!(&**t.get(1, "/ws/ech", "o"), "/ws/ech?o");
        assert_eq!(&**t.get(0, "/ws/ech", ""), "/ws/ech");
        // Another handler keeps its own.
        assert_eq!(&**t.get(1, "/ws/ech", "o"), "/ws/ech?o");
        assert_eq!(&**a, "/ws/echo");
    }

    const LIMITS: HeadLimits = HeadLimits {
        header: 4096,
        headers: 32,
        uri: 1024,
        body: 1024,
    };
    const GOOD: &str = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    /// (accept key, protocol) or (status, the refusal header's value).
    type Verdict = Result<(String, Option<String>), (u16, Option<&'static str>)>;

    fn verdict(extra: &str, protocols: &[&str]) -> Verdict {
        verdict_of(&format!("{GOOD}{extra}\r\n"), protocols)
    }

    #[test]
    fn deflate_is_agreed_only_when_on_and_the_handler_takes_it() {
        let text = format!(
            "{GOOD}Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        );
        let mut storage = header_storage();
        let head = parse_head(text.as_bytes(), &mut storage, &LIMITS)
            .unwrap()
            .unwrap();
        let mut config = Config::default();
        assert_eq!(deflate_offer(&head, &config, true), None, "off by default");
        config.web_sockets.compression.enable = true;
        let agreed = deflate_offer(&head, &config, true).expect("agreed");
        assert_eq!(
            agreed.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(agreed.outgoing(false), Outgoing::Shared(15));
        assert_eq!(
            deflate_offer(&head, &config, false),
            None,
            "the handler declines"
        );
        let plain = format!("{GOOD}\r\n");
        let mut storage = header_storage();
        let head = parse_head(plain.as_bytes(), &mut storage, &LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!(deflate_offer(&head, &config, true), None, "nothing offered");
    }

    fn verdict_of(text: &str, protocols: &[&str]) -> Verdict {
        let mut storage = header_storage();
        let head = parse_head(text.as_bytes(), &mut storage, &LIMITS)
            .unwrap()
            .unwrap();
        let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
        check(&head, &protocols, &[])
            .map(|a| (a.accept, a.protocol.map(str::to_string)))
            .map_err(|r| (r.error().status(), r.header().map(|h| h.1)))
    }

    #[test]
    fn the_rfc_example_is_accepted() {
        assert_eq!(
            verdict("", &[]),
            Ok(("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string(), None))
        );
    }

    #[test]
    fn token_lists_and_case_are_accepted() {
        let text = GOOD
            .replace("Upgrade: websocket", "Upgrade: WebSocket, foo")
            .replace("Connection: Upgrade", "Connection: keep-alive, upgrade");
        assert!(verdict_of(&format!("{text}\r\n"), &[]).is_ok());
    }

    #[test]
    fn refusals_have_their_statuses() {
        let cases: &[(&str, u16)] = &[
            ("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", 426),
            ("POST /ws HTTP/1.1\r\nHost: h\r\n\r\n", 405),
            (&GOOD.replace("Upgrade: websocket", "Upgrade: h2c"), 426),
            (
                &GOOD.replace("Connection: Upgrade", "Connection: keep-alive"),
                426,
            ),
            (&GOOD.replace("Version: 13", "Version: 8"), 426),
            (&GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), 400),
            (&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400),
            (
                &GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZXh4eA=="),
                400,
            ),
            (
                &GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (
                &format!("{GOOD}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
                400,
            ),
            (
                &GOOD.replace("HTTP/1.1\r\nHost: h", "HTTP/1.0\r\nHost: h"),
                400,
            ),
            (&format!("{GOOD}Content-Length: 2\r\n"), 400),
        ];
        for (text, status) in cases {
            let text = if text.ends_with("\r\n\r\n") {
                text.to_string()
            } else {
                format!("{text}\r\n")
            };
            assert_eq!(
                verdict_of(&text, &[]).map_err(|e| e.0),
                Err(*status),
                "{text:?}"
            );
        }
        assert_eq!(
            verdict_of(
                &format!("{}\r\n", GOOD.replace("Version: 13", "Version: 8")),
                &[]
            ),
            Err((426, Some("13")))
        );
    }

    #[test]
    fn refusals_keep_their_reasons_and_headers() {
        // The refusal, its status, its extra header and its reason.
        type Case = (
            Refused,
            u16,
            Option<(&'static str, &'static str)>,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                Refused::NotGet,
                405,
                Some(("Allow", "GET")),
                "a WebSocket upgrade must be a GET",
            ),
            (
                Refused::NotAnUpgrade,
                426,
                Some(("Upgrade", "websocket")),
                "this resource is a WebSocket: send Upgrade: websocket and Connection: Upgrade",
            ),
            (
                Refused::Origin,
                403,
                None,
                "this Origin may not open a WebSocket here",
            ),
            (
                Refused::OldHttp,
                400,
                None,
                "a WebSocket upgrade needs HTTP/1.1",
            ),
            (
                Refused::Body,
                400,
                None,
                "a WebSocket upgrade must not have a body",
            ),
            (
                Refused::NoVersion,
                400,
                None,
                "missing Sec-WebSocket-Version",
            ),
            (
                Refused::Version,
                426,
                Some(("Sec-WebSocket-Version", "13")),
                "only WebSocket version 13 is supported",
            ),
            (
                Refused::Key,
                400,
                None,
                "missing or invalid Sec-WebSocket-Key",
            ),
            (
                Refused::Protocol(HandshakeError::TooManyProtocols),
                400,
                None,
                "too many WebSocket subprotocols offered",
            ),
            (
                Refused::Protocol(HandshakeError::NoCommonProtocol),
                400,
                None,
                "no offered WebSocket subprotocol is supported",
            ),
        ];
        for &(refused, status, header, reason) in cases {
            assert_eq!(refused.error().status(), status, "{refused:?}");
            assert_eq!(refused.header(), header, "{refused:?}");
            assert_eq!(refused.to_string(), reason);
        }
    }

    #[test]
    fn origins_outside_the_list_are_403() {
        let origins = vec!["https://device.example".to_string()];
        let with = |origin: &str| {
            let text = format!("{GOOD}Origin: {origin}\r\n\r\n");
            let mut storage = header_storage();
            let head = parse_head(text.as_bytes(), &mut storage, &LIMITS)
                .unwrap()
                .unwrap();
            check(&head, &[], &origins)
                .map(|_| ())
                .map_err(|r| r.error().status())
        };
        assert_eq!(with("https://device.example"), Ok(()));
        assert_eq!(
            with("HTTPS://DEVICE.example"),
            Ok(()),
            "scheme and host are case-insensitive"
        );
        assert_eq!(with("https://evil.example"), Err(403));
        assert_eq!(with("null"), Err(403));
        let mut storage = header_storage();
        let text = format!("{GOOD}\r\n");
        let head = parse_head(text.as_bytes(), &mut storage, &LIMITS)
            .unwrap()
            .unwrap();
        assert!(
            check(&head, &[], &origins).is_ok(),
            "no Origin: not a browser"
        );
    }

    #[test]
    fn subprotocols_pick_the_first_offered_that_is_supported() {
        let offer = "Sec-WebSocket-Protocol: mqtt, chat\r\nSec-WebSocket-Protocol: json\r\n";
        assert_eq!(
            verdict(offer, &["json", "chat"]).unwrap().1.as_deref(),
            Some("chat")
        );
        assert_eq!(
            verdict(offer, &["json"]).unwrap().1.as_deref(),
            Some("json")
        );
        assert_eq!(verdict(offer, &["other"]).map_err(|e| e.0), Err(400));
        assert_eq!(verdict("", &["chat"]).unwrap().1, None);
        let many: String = (0..11).map(|i| format!("p{i}, ")).collect();
        let offer = format!("Sec-WebSocket-Protocol: {many}\r\n");
        assert_eq!(verdict(&offer, &["p0"]).map_err(|e| e.0), Err(400));
    }
}
