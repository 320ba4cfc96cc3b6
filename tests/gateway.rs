//! The gateway (`handler: 'proxy'`) over real sockets: a gateway server in
//! front of downstreams that are real wisp servers (in this process, on
//! threads of their own) or fake ones on raw TCP that misbehave on purpose
//! (`support::downstream`). The client is raw bytes (`support::ws`).
//!
//! What is checked: the client's 101 only after the downstream's, 502 for a
//! downstream that is down or refuses, 504 for one that never answers within
//! `timeouts.connect`; messages, close codes and reasons both ways; 1014 to the
//! client when the downstream vanishes or breaks the protocol, 1001 (or the
//! end of the connection) to the downstream when the client vanishes; the
//! balancers (RoundRobin, LeastConnection, CookieStickySessions), falling back
//! to the next host, the breaker and `/api/status`; the forwarded headers;
//! HTTP requests proxied (HEAD, pipelining, 10 MiB each way); memory bounded
//! when one side is slow.
//!
//! Tests wait for bytes or events, never for a clock; a few poll a condition
//! with a deadline (`wait_for`). `IO_TIMEOUT` is only a safety net.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::downstream::{
    breaker_is_open, dead_addr, find_host, rss_kib, server_frame, wait_for, Fake, Peer,
};
use support::ws::{masked_frame, upgrade_request, Ws, BINARY, CLOSE, CONTINUATION, TEXT};
use support::{Resp, TestServer, IO_TIMEOUT};
use wisp::{CloseCode, Handler, Message, Response, WebSocket};

// ---------------------------------------------------------------------------
// Downstreams: real wisp servers

/// What a downstream's WebSocket handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Open(&'static str),
    Close(&'static str, u16, String),
}

/// The headers a downstream records from each upgrade (the ones the gateway adds or removes).
const RECORDED: [&str; 8] = [
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "via",
    "x-gateway",
    "cookie",
    "x-hop",
];

/// A downstream's WebSocket handler: echoes every message; `who` answers the
/// downstream's name, `headers` the upgrade's [`RECORDED`] headers as JSON,
/// `close:CODE:REASON` closes with them. Opens and closes go to the test.
struct Echo {
    name: &'static str,
    events: Sender<Event>,
}

impl Handler for Echo {
    type State = BTreeMap<String, String>;

    fn on_open(&mut self, ws: &mut WebSocket<'_, Self::State>) {
        for name in RECORDED {
            if let Some(v) = ws.header(name) {
                let v = v.to_string();
                ws.state_mut().insert(name.to_string(), v);
            }
        }
        let _ = self.events.send(Event::Open(self.name));
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, Self::State>, msg: Message<'_>) {
        match msg {
            Message::Text("who") => {
                ws.send_text(self.name);
            }
            Message::Text("headers") => {
                let seen = json!(ws.state());
                ws.send_json(&seen);
            }
            Message::Text(t) if t.starts_with("close:") => {
                let mut parts = t.splitn(3, ':').skip(1);
                let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
                let reason = parts.next().unwrap_or("");
                ws.close(CloseCode::new(code).expect("a valid code"), reason);
            }
            other => {
                ws.send(other);
            }
        }
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, Self::State>, code: CloseCode, reason: &str) {
        let _ = self
            .events
            .send(Event::Close(self.name, code.as_u16(), reason.to_string()));
    }
}

/// The bytes `/http/download?n=N` sends: they differ from position to position.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + (i >> 10)) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A real wisp downstream called `name`: `/ws/…` is [`Echo`]; `/http/who`
/// answers the name, `/http/echo` what the request looked like (and the method
/// in `X-Method`), `/http/upload` the body's length and SHA-256,
/// `/http/download?n=N` N bytes of [`pattern`]. Anything else is 404.
fn downstream(name: &'static str) -> (TestServer, Receiver<Event>) {
    downstream_with(
        name,
        "connections: 1000, body: '20MB', maxFrame: '20MB', maxMessage: '20MB'",
    )
}

/// [`downstream`] with `limits` (the inside of `limits: { … }`).
fn downstream_with(name: &'static str, limits: &str) -> (TestServer, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(
        &format!(
            "limits: {{ {limits} }},
             routes: [ {{ match: '/ws/', handler: 'action' }}, {{ match: '/http/', handler: 'action' }}, {{ match: '' }} ]"
        ),
        |_| {},
        move |srv| {
            srv.websocket("/ws/", Echo { name, events: tx });
            srv.action("/http/who", move |_| Response::text(name));
            srv.action("/http/echo", |req| {
                let headers: BTreeMap<String, String> = req
                    .headers()
                    .map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                Response::json(&json!({
                    "method": req.method(),
                    "path": req.path(),
                    "query": req.query(),
                    "headers": headers,
                    "body_bytes": req.body().len(),
                }))
                .with_header("X-Method", req.method())
            });
            srv.action("/http/upload", |req| {
                Response::json(&json!({
                    "bytes": req.body().len(),
                    "sha256": sha256_hex(req.body()),
                }))
            });
            srv.action("/http/download", |req| {
                let n = req.query_param("n").and_then(|n| n.parse().ok()).unwrap_or(0);
                Response::bytes("application/octet-stream", pattern(n))
            });
        },
    );
    (s, rx)
}

/// The next event a downstream reports.
fn next_event(events: &Receiver<Event>) -> Event {
    events
        .recv_timeout(IO_TIMEOUT)
        .expect("the downstream reported nothing")
}

// ---------------------------------------------------------------------------
// The gateway

/// A gateway whose `/gateway/` route proxies to `hosts` (`scheme: 'ws'`,
/// `/gateway/{catchAll}` to `/{catchAll}`) with `proxy_extra` added to its
/// `proxy` block, `timeouts.connect` of `connect`, and `/api/status` as the
/// binary serves it.
fn gateway_with(hosts: &[SocketAddr], proxy_extra: &str, connect: &str) -> TestServer {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
    let body = format!(
        "timeouts: {{ connect: '{connect}' }},
         limits: {{ connections: 1000, body: '20MB', maxFrame: '20MB', maxMessage: '20MB' }},
         routes: [
           {{ match: '/api/', handler: 'action' }},
           {{ match: '/gateway/', handler: 'proxy', proxy: {{
               upstream: '/gateway/{{catchAll}}', downstream: '/{{catchAll}}', scheme: 'ws',
               hosts: [{}], {proxy_extra}
           }} }},
           {{ match: '' }},
         ]",
        hosts.join(", ")
    );
    TestServer::start(
        &body,
        |_| {},
        |srv| {
            srv.action("/api/status", |req| {
                Response::json(&json!({ "server": "wisp", "stats": req.stats() }))
            });
        },
    )
}

/// A breaker that does not open within a test's few failures.
const NO_BREAKER: &str = "breaker: { failures: 1000, pause: '1 sec' }";

fn gateway(hosts: &[SocketAddr], proxy_extra: &str) -> TestServer {
    gateway_with(hosts, proxy_extra, "5 secs")
}

/// `/api/status` of a gateway.
fn status(gw: &TestServer) -> Value {
    let r = gw.get("/api/status");
    assert_eq!(r.status, 200, "/api/status: {}", r.text());
    serde_json::from_slice(&r.body).expect("/api/status is JSON")
}

/// What `/api/status` says about one downstream host.
fn host_status(gw: &TestServer, host: SocketAddr) -> Value {
    let s = status(gw);
    find_host(&s, &host.to_string())
        .unwrap_or_else(|| panic!("{host} is not in /api/status: {s}"))
        .clone()
}

/// A number field of a host's status entry.
fn count(entry: &Value, field: &str) -> u64 {
    entry[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {field:?} in {entry}"))
}

/// One request on a fresh connection to the gateway; the body decoded whatever its framing.
fn request(gw: &TestServer, head: &str) -> Resp {
    let mut c = gw.client();
    c.send(head.as_bytes());
    c.proxied_response(head.starts_with("HEAD "))
}

fn get(gw: &TestServer, target: &str) -> Resp {
    request(gw, &format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"))
}

/// The status of an upgrade to `target` that must not succeed.
fn refused_upgrade(gw: &TestServer, target: &str) -> u16 {
    let (resp, _) = Ws::handshake(gw.addr, upgrade_request(target, "").as_bytes());
    assert_ne!(resp.status, 101, "{target}: upgraded");
    resp.status
}

/// Asks the downstream behind `ws` its name.
fn who(ws: &mut Ws) -> String {
    ws.send_text("who");
    ws.read_text()
}

/// Reads a close frame that must have `code`; answers it (the peer may have
/// hung up already) and expects the end of the connection. Returns the reason.
fn expect_close_then_eof(ws: &mut Ws, code: u16) -> String {
    let (got, reason) = ws.read_close();
    assert_eq!(got, code, "close reason {reason:?}");
    let _ = ws
        .stream
        .write_all(&masked_frame(0x80 | CLOSE, &got.to_be_bytes()));
    ws.expect_eof();
    reason
}

/// The memory tests measure the whole process's resident memory, so they
/// run alone, and so does the test that moves 10 MiB each way: each of
/// those holds this lock exclusively ([`alone`]), every other test holds it
/// shared ([`shared`]). (A test that fails beside a memory test would
/// otherwise add the ~80 MB its backtrace costs to the measure.)
static ALONE: RwLock<()> = RwLock::new(());

fn alone() -> RwLockWriteGuard<'static, ()> {
    ALONE.write().unwrap_or_else(|e| e.into_inner())
}

fn shared() -> RwLockReadGuard<'static, ()> {
    ALONE.read().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Downstreams that are down, refuse or never answer

#[test]
fn no_downstream_listening_is_502() {
    let _shared = shared();
    let gw = gateway(&[dead_addr()], NO_BREAKER);
    assert_eq!(refused_upgrade(&gw, "/gateway/ws/echo"), 502);
    assert_eq!(get(&gw, "/gateway/http/who").status, 502);
    // The gateway itself is fine.
    assert_eq!(status(&gw)["server"], "wisp");
}

#[test]
fn a_downstream_that_never_answers_is_504_after_timeouts_connect() {
    let _shared = shared();
    // Connections complete in the listen queue, and nothing ever reads them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = gateway_with(&[silent.local_addr().unwrap()], NO_BREAKER, "300 ms");
    let t0 = Instant::now();
    assert_eq!(refused_upgrade(&gw, "/gateway/ws/echo"), 504);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "504 after only {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "504 after {waited:?}");
    assert_eq!(get(&gw, "/gateway/http/who").status, 504);
}

#[test]
fn the_first_host_down_the_second_serves() {
    let _shared = shared();
    let (b, _events) = downstream("b");
    let gw = gateway(&[dead_addr(), b.addr], "loadBalancer: 'RoundRobin'");
    for i in 0..4 {
        let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
        assert_eq!(who(&mut ws), "b", "connection {i}");
        ws.close(1000);
        let r = get(&gw, "/gateway/http/who");
        assert_eq!((r.status, r.text().as_str()), (200, "b"), "request {i}");
    }
}

#[test]
fn the_breaker_opens_after_consecutive_failures_and_status_shows_it() {
    let _shared = shared();
    // A downstream that accepts and hangs up at once: every attempt fails.
    let refusing = Fake::start(drop);
    let gw = gateway(
        &[refusing.addr],
        "breaker: { failures: 3, pause: '30 secs' }",
    );
    for i in 0..3 {
        assert_eq!(refused_upgrade(&gw, "/gateway/ws/echo"), 502, "attempt {i}");
    }
    assert_eq!(refusing.connections_so_far(), 3);
    let entry = host_status(&gw, refusing.addr);
    assert!(count(&entry, "failures") >= 3, "{entry}");
    assert!(
        breaker_is_open(&entry["breaker"]),
        "breaker not open: {entry}"
    );
    assert_eq!(count(&entry, "open"), 0, "{entry}");
    // Paused: refused without another attempt.
    assert_eq!(refused_upgrade(&gw, "/gateway/ws/echo"), 502);
    assert_eq!(get(&gw, "/gateway/http/who").status, 502);
    assert_eq!(
        refusing.connections_so_far(),
        3,
        "the gateway tried a paused host"
    );
}

// ---------------------------------------------------------------------------
// Messages and closing

#[test]
fn messages_pass_both_ways_and_the_101_follows_the_downstreams() {
    let _shared = shared();
    let (a, events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    // The downstream had opened before the client got its 101.
    assert_eq!(events.try_recv(), Ok(Event::Open("a")));
    ws.send_text("héllo");
    ws.expect_text("héllo");
    ws.send_binary(&[0, 1, 2, 255]);
    ws.expect_message(BINARY, &[0, 1, 2, 255]);
    let big = pattern(1 << 20);
    ws.send_binary(&big);
    let mut got = Vec::new();
    loop {
        let f = ws.read_frame();
        assert!(matches!(f.opcode, BINARY | CONTINUATION), "{f:?}");
        got.extend_from_slice(&f.payload);
        if f.fin {
            break;
        }
    }
    assert!(got == big, "the 1 MiB message came back different");
    ws.close(1000);
}

#[test]
fn a_message_in_fragments_that_fit_the_downstreams_max_frame_gets_through() {
    let _shared = shared();
    // A downstream with a maxFrame of 100K; a browser sends a
    // large message in fragments of about that size (Chromium: 131,000 bytes).
    let (a, _events) = downstream_with("a", "maxFrame: '100K', maxMessage: '1MB'");
    let gw = gateway(&[a.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    let part = pattern(100 * 1024);
    ws.send_frame(false, BINARY, &part);
    ws.send_frame(false, CONTINUATION, &part);
    ws.send_frame(true, CONTINUATION, &part);
    let mut got = Vec::new();
    loop {
        let f = ws.read_frame();
        if f.opcode == CLOSE {
            panic!("closed {:?} after {} bytes", f.code_and_reason(), got.len());
        }
        got.extend_from_slice(&f.payload);
        if f.fin {
            break;
        }
    }
    assert!(
        got == part.repeat(3),
        "the echo differs ({} bytes)",
        got.len()
    );
    ws.close(1000);
}

#[test]
fn the_downstreams_close_code_and_reason_reach_the_client() {
    let _shared = shared();
    let (a, events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    assert_eq!(next_event(&events), Event::Open("a"));
    ws.send_text("close:4001:bye from downstream");
    let reason = expect_close_then_eof(&mut ws, 4001);
    assert_eq!(reason, "bye from downstream");
    // The downstream's on_close has the code of the answer to its close.
    match next_event(&events) {
        Event::Close("a", code, _) => assert_eq!(code, 4001),
        other => panic!("expected the downstream's on_close, got {other:?}"),
    }
}

#[test]
fn the_clients_close_code_and_reason_reach_the_downstream() {
    let _shared = shared();
    let (a, events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    assert_eq!(next_event(&events), Event::Open("a"));
    ws.send_close(4002, "later from client");
    assert_eq!(
        next_event(&events),
        Event::Close("a", 4002, "later from client".to_string())
    );
    let (code, _) = ws.read_close();
    assert_eq!(code, 4002);
    ws.expect_eof();
}

#[test]
fn a_downstream_that_vanishes_closes_the_client_with_1014() {
    let _shared = shared();
    // Answers the handshake, echoes one message, then drops the connection
    // without a close frame.
    let vanishing = Fake::start(|stream| {
        let mut peer = Peer::new(stream);
        if peer.accept_upgrade().is_none() {
            return;
        }
        if let Some(f) = peer.read_frame() {
            peer.try_send(&server_frame(0x80 | f.opcode, &f.payload, None));
        }
        let _ = peer.stream.shutdown(Shutdown::Both);
    });
    let gw = gateway(&[vanishing.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    ws.send_text("one");
    ws.expect_text("one");
    expect_close_then_eof(&mut ws, 1014);
    assert_eq!(status(&gw)["server"], "wisp");
}

#[test]
fn a_client_that_vanishes_closes_the_downstream_with_1001() {
    let _shared = shared();
    let (a, events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
    assert_eq!(next_event(&events), Event::Open("a"));
    ws.send_text("still here");
    ws.expect_text("still here");
    ws.stream.shutdown(Shutdown::Both).unwrap();
    drop(ws);
    match next_event(&events) {
        // 1001 from the gateway, or 1006 if it just ended the connection.
        Event::Close("a", code, _) => assert!(matches!(code, 1001 | 1006), "closed with {code}"),
        other => panic!("expected the downstream's on_close, got {other:?}"),
    }
}

#[test]
fn a_downstream_that_breaks_the_protocol_fails_its_leg_with_1014() {
    let _shared = shared();
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "a masked frame",
            server_frame(0x80 | TEXT, b"masked", Some([1, 2, 3, 4])),
        ),
        ("opcode 3", server_frame(0x83, b"", None)),
        (
            "invalid UTF-8",
            server_frame(0x80 | TEXT, b"ok \xff\xfe", None),
        ),
    ];
    for (what, bad) in cases {
        let bad = Arc::new(bad);
        let fake = Fake::start(move |stream| {
            let mut peer = Peer::new(stream);
            if peer.accept_upgrade().is_some() {
                peer.try_send(&bad);
                // Read what the gateway says until it hangs up.
                while peer.read_frame().is_some() {}
            }
        });
        let gw = gateway(&[fake.addr], "");
        let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
        let (code, reason) = ws.read_close();
        assert_eq!(code, 1014, "{what}: close reason {reason:?}");
        // The gateway lives on.
        assert_eq!(status(&gw)["server"], "wisp", "{what}");
    }
}

// ---------------------------------------------------------------------------
// Balancing

#[test]
fn round_robin_spreads_100_connections_50_50() {
    let _shared = shared();
    let (a, _ea) = downstream("a");
    let (b, _eb) = downstream("b");
    let gw = gateway(&[a.addr, b.addr], "loadBalancer: 'RoundRobin'");
    let mut served = BTreeMap::new();
    for _ in 0..100 {
        let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
        *served.entry(who(&mut ws)).or_insert(0) += 1;
        ws.close(1000);
    }
    assert_eq!(
        served,
        BTreeMap::from([("a".to_string(), 50), ("b".to_string(), 50)])
    );
}

#[test]
fn least_connection_balances_held_connections() {
    let _shared = shared();
    let (a, ea) = downstream("a");
    let (b, _eb) = downstream("b");
    let gw = gateway(&[a.addr, b.addr], "loadBalancer: 'LeastConnection'");
    let mut held: Vec<(String, Ws)> = Vec::new();
    for _ in 0..10 {
        let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
        held.push((who(&mut ws), ws));
    }
    let on = |held: &[(String, Ws)], name: &str| held.iter().filter(|(n, _)| n == name).count();
    assert_eq!((on(&held, "a"), on(&held, "b")), (5, 5));
    // Four of a's connections end: a holds 1, b 5.
    for _ in 0..4 {
        let i = held.iter().position(|(n, _)| n == "a").unwrap();
        held.remove(i).1.close(1000);
    }
    let mut closed = 0;
    while closed < 4 {
        if let Event::Close("a", ..) = next_event(&ea) {
            closed += 1;
        }
    }
    wait_for("a's open count to fall to 1", IO_TIMEOUT, || {
        count(&host_status(&gw, a.addr), "open") == 1
    });
    for i in 0..4 {
        let mut ws = Ws::open(gw.addr, "/gateway/ws/echo");
        assert_eq!(who(&mut ws), "a", "new connection {i}");
        held.push(("a".to_string(), ws));
    }
    assert_eq!(count(&host_status(&gw, b.addr), "open"), 5);
}

/// The value of the `wisp-sticky` cookie a response sets, if it sets one.
fn sticky_cookie(r: &Resp) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.strip_prefix("wisp-sticky="))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// Sessions of a sticky gateway: for each of 8 cookie values, the first
/// answer's host (and the cookie to send from then on: the client's own
/// value, or the one the gateway sets in its place), then 10 more that must
/// come from that host. `ask(cookie)` is one answer with its `Set-Cookie`
/// and the host that gave it. Returns the hosts the sessions went to.
fn sticky_sessions(
    what: &str,
    ask: impl Fn(&str) -> (Resp, String),
) -> BTreeMap<String, Vec<String>> {
    let mut hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for session in 0..8 {
        let own = format!("{what}-session-{session}");
        let (first, host) = ask(&own);
        let cookie = sticky_cookie(&first).unwrap_or(own);
        for i in 0..10 {
            assert_eq!(
                ask(&cookie).1,
                host,
                "{what}: session {session}, request {i}"
            );
        }
        hosts.entry(host).or_default().push(cookie);
    }
    hosts
}

#[test]
fn cookie_sticky_sessions_keep_a_cookies_host() {
    let _shared = shared();
    let (a, _ea) = downstream("a");
    let (b, _eb) = downstream("b");
    let gw = gateway(
        &[a.addr, b.addr],
        "loadBalancer: 'CookieStickySessions', sticky: { cookie: 'wisp-sticky', expiry: '1 hr' }",
    );
    let hosts = sticky_sessions("ws", |cookie| {
        let extra = format!("Cookie: wisp-sticky={cookie}\r\n");
        let (resp, mut ws) = Ws::open_with(gw.addr, "/gateway/ws/echo", &extra);
        let host = who(&mut ws);
        ws.close(1000);
        (resp, host)
    });
    assert_eq!(
        hosts.len(),
        2,
        "8 WebSocket sessions all on one host: {hosts:?}"
    );
    let hosts = sticky_sessions("http", |cookie| {
        let r = request(
            &gw,
            &format!(
                "GET /gateway/http/who HTTP/1.1\r\nHost: t\r\nCookie: wisp-sticky={cookie}\r\n\r\n"
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let host = r.text();
        (r, host)
    });
    assert_eq!(hosts.len(), 2, "8 HTTP sessions all on one host: {hosts:?}");
}

// ---------------------------------------------------------------------------
// Headers

#[test]
fn the_downstream_sees_the_forwarded_headers_and_the_request_id() {
    let _shared = shared();
    let (a, _events) = downstream("a");
    let gw = gateway(
        &[a.addr],
        "headers: { add: { 'X-Gateway': 'wisp' }, remove: ['Cookie'] }",
    );
    let id = "3f2a8c1e-9b7d-4e6f-a1b2-c3d4e5f60718";
    let headers_seen = |extra: &str| {
        let (_, mut ws) = Ws::open_with(gw.addr, "/gateway/ws/echo", extra);
        ws.send_text("headers");
        let seen = ws.read_json();
        ws.close(1000);
        seen
    };
    let seen = headers_seen(&format!("X-Request-Id: {id}\r\nCookie: secret=1\r\n"));
    assert_eq!(seen["x-request-id"], id, "{seen}");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-host"], "t", "{seen}");
    let proto = seen["x-forwarded-proto"].as_str().unwrap_or("");
    assert!(matches!(proto, "http" | "ws"), "{seen}");
    assert!(!seen["via"].as_str().unwrap_or("").is_empty(), "{seen}");
    assert_eq!(seen["x-gateway"], "wisp", "{seen}");
    assert!(seen.get("cookie").is_none(), "{seen}");
    // Without one, the gateway makes one up, a new one each time.
    let one = headers_seen("")["x-request-id"].clone();
    let two = headers_seen("")["x-request-id"].clone();
    assert!(one.as_str().is_some_and(|s| !s.is_empty()), "{one}");
    assert_ne!(one, two);

    // The same over plain HTTP, where the response carries Via back.
    let r = request(
        &gw,
        &format!("GET /gateway/http/echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("via").is_some_and(|v| !v.is_empty()),
        "{:?}",
        r.headers
    );
    let seen: Value = serde_json::from_slice(&r.body).unwrap();
    let h = &seen["headers"];
    assert_eq!(h["x-request-id"], id, "{seen}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(h["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(h["x-forwarded-host"], "t", "{seen}");
    assert_eq!(h["x-gateway"], "wisp", "{seen}");
    assert!(!h["via"].as_str().unwrap_or("").is_empty(), "{seen}");
}

// ---------------------------------------------------------------------------
// Plain HTTP through a ws route

#[test]
fn http_requests_are_forwarded_head_stays_head_and_pipelining_keeps_order() {
    let _shared = shared();
    let (a, _events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let r = request(
        &gw,
        "GET /gateway/http/echo?x=1 HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Hop\r\n\
         X-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/http/echo");
    assert_eq!(seen["query"], "x=1");
    let h = &seen["headers"];
    assert_eq!(h["x-kept"], "yes", "{seen}");
    assert!(h.get("x-hop").is_none(), "{seen}");
    assert!(h.get("keep-alive").is_none(), "{seen}");

    let r = request(&gw, "HEAD /gateway/http/echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-method"), Some("HEAD"));

    assert_eq!(get(&gw, "/gateway/no/such/thing").status, 404);

    let mut c = gw.client();
    c.send(
        b"GET /gateway/http/echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /gateway/http/echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          GET /gateway/http/echo?n=3 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    for n in 1..=3 {
        let r = c.proxied_response(false);
        assert_eq!(r.status, 200, "response {n}: {}", r.text());
        let seen: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(seen["query"], format!("n={n}"), "response {n}");
    }
}

#[test]
fn ten_mib_go_up_and_down_through_the_gateway() {
    let _alone = alone();
    let (a, _events) = downstream("a");
    let gw = gateway(&[a.addr], "");
    let n = 10 << 20;
    let body = pattern(n);

    let mut c = gw.client();
    c.send(
        format!("POST /gateway/http/upload HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\n\r\n")
            .as_bytes(),
    );
    c.send(&body);
    let r = c.proxied_response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got, json!({ "bytes": n, "sha256": sha256_hex(&body) }));

    let r = get(&gw, &format!("/gateway/http/download?n={n}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r.body == body, "the download came back different");
}

// ---------------------------------------------------------------------------
// Backpressure: memory stays bounded when one side is slow

/// A fifth of the memory a gateway that buffered everything would need.
const BOUND_KIB: u64 = 64 * 1024;
const FRAME: usize = 64 * 1024;

/// Polls `progress` until it stops moving (backpressure reached the writer;
/// true) or reaches `total` (nothing held it back; false). Samples the
/// process's resident memory into `peak` as it goes.
fn until_stalled(progress: &AtomicU64, total: u64, peak: &mut u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (progress.load(Ordering::Relaxed), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        *peak = (*peak).max(rss_kib());
        let now = progress.load(Ordering::Relaxed);
        if now >= total {
            return false;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(1) {
            return true;
        }
        assert!(Instant::now() < deadline, "still moving after 60 s");
    }
}

#[test]
fn a_slow_client_with_a_fast_downstream_keeps_memory_bounded() {
    let _alone = alone();
    let total: u64 = 160 << 20;
    let written = Arc::new(AtomicU64::new(0));
    let flood = {
        let written = written.clone();
        Fake::start(move |stream| {
            let mut peer = Peer::new(stream);
            if peer.accept_upgrade().is_none() {
                return;
            }
            peer.stream
                .set_write_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let frame = server_frame(0x80 | BINARY, &pattern(FRAME), None);
            while written.load(Ordering::Relaxed) < total {
                if !peer.try_send(&frame) {
                    return;
                }
                written.fetch_add(FRAME as u64, Ordering::Relaxed);
            }
            peer.answer_close();
        })
    };
    let gw = gateway(&[flood.addr], "");
    let base = rss_kib();
    let mut peak = base;
    let mut ws = Ws::open(gw.addr, "/gateway/ws/flood");
    // The client reads nothing: the downstream must be held back.
    let stalled = until_stalled(&written, total, &mut peak);
    assert!(
        stalled,
        "the downstream wrote all {total} bytes while the client read none"
    );
    assert!(
        peak - base < BOUND_KIB,
        "resident memory grew by {} KiB with the client not reading",
        peak - base
    );
    // Now the client reads everything; none of it was dropped.
    let mut got = 0u64;
    while got < total {
        let f = ws.read_frame();
        if f.opcode == CLOSE {
            panic!(
                "closed {:?} after {got} of {total} bytes",
                f.code_and_reason()
            );
        }
        assert!(
            matches!(f.opcode, BINARY | CONTINUATION),
            "{f:?} after {got} bytes"
        );
        got += f.payload.len() as u64;
        if got % (16 << 20) == 0 {
            peak = peak.max(rss_kib());
        }
    }
    assert_eq!(got, total);
    peak = peak.max(rss_kib());
    assert!(
        peak - base < BOUND_KIB,
        "resident memory grew by {} KiB",
        peak - base
    );
    ws.close(1000);
}

#[test]
fn a_fast_client_with_a_slow_downstream_keeps_memory_bounded() {
    let _alone = alone();
    let total: u64 = 96 << 20;
    let release = Arc::new(AtomicBool::new(false));
    let (got_tx, got_rx) = mpsc::channel();
    let slow = {
        let release = release.clone();
        Fake::start(move |stream| {
            let mut peer = Peer::new(stream);
            if peer.accept_upgrade().is_none() {
                return;
            }
            // Reads nothing until the test says so (polling a flag: this is the slow side).
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut got = 0u64;
            let mut unmasked = 0;
            while got < total {
                let Some(f) = peer.read_frame() else { break };
                if !f.masked {
                    unmasked += 1;
                }
                if matches!(f.opcode, BINARY | CONTINUATION) {
                    got += f.payload.len() as u64;
                }
            }
            let _ = got_tx.send((got, unmasked));
        })
    };
    let gw = gateway(&[slow.addr], "");
    let base = rss_kib();
    let mut peak = base;
    let ws = Ws::open(gw.addr, "/gateway/ws/slow");
    let mut writer = ws.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let sending = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let frame = masked_frame(0x80 | BINARY, &pattern(FRAME));
            while sent.load(Ordering::Relaxed) < total {
                writer
                    .write_all(&frame)
                    .expect("the gateway stopped reading for good");
                sent.fetch_add(FRAME as u64, Ordering::Relaxed);
            }
        })
    };
    let stalled = until_stalled(&sent, total, &mut peak);
    assert!(
        stalled,
        "the client wrote all {total} bytes while the downstream read none"
    );
    assert!(
        peak - base < BOUND_KIB,
        "resident memory grew by {} KiB with the downstream not reading ({} bytes sent)",
        peak - base,
        sent.load(Ordering::Relaxed)
    );
    release.store(true, Ordering::Release);
    let (got, unmasked) = got_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the downstream did not get everything");
    sending.join().unwrap();
    assert_eq!(got, total);
    assert_eq!(
        unmasked, 0,
        "the gateway sent the downstream unmasked frames"
    );
    peak = peak.max(rss_kib());
    assert!(
        peak - base < BOUND_KIB,
        "resident memory grew by {} KiB",
        peak - base
    );
    drop(ws);
}
