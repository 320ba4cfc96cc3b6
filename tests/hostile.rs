//! Hostile input, thrown in bulk at one running server per test: malformed
//! HTTP, traversal spellings, oversized everything, slowloris, connection
//! floods, slow readers, vanishing peers and WebSocket protocol violations.
//!
//! Every hostile input goes on its own connection, and the test reads what the
//! server answers: a refusal with the right status and `Connection: close`, or
//! a WebSocket close code, then the end of the connection. After each input
//! the server must still answer a normal request on a fresh connection, on a
//! keep-alive "bystander" connection and on a bystander WebSocket that were
//! opened before the attack began. A crash or a stuck loop shows up as a
//! bystander that is no longer answered.
//!
//! Each case prints its name before it runs, so a failure names its input.

mod support;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::ws::{
    close_payload, masked_frame, upgrade_request, Ws, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT,
};
use support::{read_retrying, read_until_close, show, Client, Parsed, Reply, TempDir, TestServer};
use wisp::{Handler, Message, Response, WebSocket};

/// How long a hostile connection may wait for its answer. Every refusal here is
/// immediate (timeouts are configured far shorter); this only bounds a hang,
/// generously, for a loaded machine.
const ANSWER_TIMEOUT: Duration = support::IO_TIMEOUT;

/// A safety net for an attack the server never ends (its timeouts are far
/// shorter); never a measure of how fast it ends.
const ATTACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The size of `/big.bin` in the tests that serve it.
const BIG: usize = 4 << 20;

// ---------------------------------------------------------------------------
// The server and its bystanders

/// Echoes every message with its opcode.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

/// A server with `web` settings: files (`/a.txt`, `/sub/b.txt`, whatever
/// `fill` adds) on the catch-all route, `/api/echo` on an action route, and the
/// [`Echo`] WebSocket on every path under `/ws/`.
fn server_with(web: &str, fill: impl FnOnce(&TempDir)) -> TestServer {
    let routes = "routes: [ { match: '/api/', handler: 'action' }, \
                  { match: '/ws/', handler: 'action' }, { match: '' } ]";
    let body = if web.is_empty() {
        format!("limits: {{ requests: 100000 }}, {routes}")
    } else {
        format!("{web}, {routes}")
    };
    TestServer::start(
        &body,
        |d| {
            d.write("a.txt", "A");
            d.write("index.html", "home");
            d.write("sub/b.txt", "B");
            fill(d);
        },
        |srv| {
            srv.action("/api/echo", |req| {
                Response::text(format!(
                    "{} {}",
                    req.method(),
                    String::from_utf8_lossy(req.body())
                ))
            });
            srv.websocket("/ws/", Echo);
        },
    )
}

fn server(web: &str) -> TestServer {
    server_with(web, |_| {})
}

/// The contents of `/big.bin`: a pattern that shows a missing or repeated chunk.
fn big_contents() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

/// A keep-alive connection and a WebSocket, opened before any attack.
fn bystanders(s: &TestServer) -> (Client, Ws) {
    let mut http = s.client();
    http.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(http.response().text(), "A");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("hello");
    ws.expect_text("hello");
    (http, ws)
}

/// The server answers a normal request on a fresh connection, on the bystander
/// keep-alive connection, and an echo on the bystander WebSocket.
fn assert_healthy(s: &TestServer, http: &mut Client, ws: &mut Ws) {
    let r = s.get("/a.txt");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "A"),
        "fresh connection"
    );
    assert_bystanders(http, ws);
}

/// The two bystanders are still served (on their own, for when a fresh
/// connection is expected to be turned away): a GET and a POST on the
/// keep-alive connection, an echo on the WebSocket.
fn assert_bystanders(http: &mut Client, ws: &mut Ws) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    http.send(b"GET /sub/b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = http.response();
    assert_eq!((r.status, r.text().as_str()), (200, "B"), "bystander GET");
    http.send(
        format!(
            "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n{:04}",
            n % 10_000
        )
        .as_bytes(),
    );
    let r = http.response();
    assert_eq!(
        r.text(),
        format!("POST {:04}", n % 10_000),
        "bystander HTTP"
    );
    assert_eq!(r.header("connection"), None, "bystander HTTP kept alive");
    let text = format!("bystander {n}");
    ws.send_text(&text);
    ws.expect_text(&text);
}

// ---------------------------------------------------------------------------
// Hostile connections

/// Sends `input` on a fresh connection and reads until the server closes
/// (or `ANSWER_TIMEOUT` passes with nothing).
fn exchange(addr: SocketAddr, input: &[u8], half_close: bool) -> Reply {
    support::exchange(addr, input, half_close, ANSWER_TIMEOUT)
}

/// Asserts that `reply` is exactly one final response (after any interim
/// `100 Continue`) with a status in `allowed` and `Connection: close`, and
/// that the server then closed the connection. With `may_drop`, a connection
/// closed without a word also passes (a client that half-closed mid-request
/// has nothing to be answered).
fn assert_refused(label: &str, reply: &Reply, allowed: &[u16], may_drop: bool) {
    assert!(
        !reply.hung,
        "{label}: no answer and no close within {ANSWER_TIMEOUT:?}; got {:?}",
        show(&reply.bytes)
    );
    if may_drop && reply.bytes.is_empty() {
        return;
    }
    let responses = reply
        .responses()
        .unwrap_or_else(|e| panic!("{label}: {e}; got {:?}", show(&reply.bytes)));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    let finals: Vec<&Parsed> = responses.iter().filter(|r| r.status >= 200).collect();
    assert_eq!(
        finals.len(),
        1,
        "{label}: expected one final response, got {statuses:?}"
    );
    let r = finals[0];
    println!("  -> {statuses:?}");
    assert!(
        allowed.contains(&r.status),
        "{label}: status {} ({:?}), expected one of {allowed:?}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.close, "{label}: {} without Connection: close", r.status);
}

/// A fixed-seed xorshift64 generator: the same "random" bytes on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A plausible TLS 1.2/1.3 ClientHello record (what a browser sends to https://).
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let host = b"localhost";
    let mut sni = vec![0x00, 0x00];
    let list = host.len() + 3;
    sni.extend(((list + 2) as u16).to_be_bytes());
    sni.extend((list as u16).to_be_bytes());
    sni.push(0);
    sni.extend((host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host);
    hello.extend((sni.len() as u16).to_be_bytes());
    hello.extend(sni);
    let mut handshake = vec![0x01];
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

// ---------------------------------------------------------------------------
// 1. Malformed HTTP

const R400: &[u16] = &[400];
const R400_501: &[u16] = &[400, 501];
const R400_505: &[u16] = &[400, 505];
const R200_400: &[u16] = &[200, 400];

/// A request head that is fine apart from `line`, one extra header line.
fn with_header(line: &str) -> Vec<u8> {
    format!("POST /api/echo HTTP/1.1\r\nHost: t\r\n{line}\r\n\r\n").into_bytes()
}

/// A chunked POST whose body is `body`.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut v =
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    v.extend_from_slice(body);
    v
}

/// The malformed requests: name, bytes, the statuses that are right, and
/// whether the client half-closes after sending (a truncated request).
fn malformed_cases() -> Vec<(String, Vec<u8>, &'static [u16], bool)> {
    let mut cases: Vec<(String, Vec<u8>, &'static [u16], bool)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>, want: &'static [u16]| {
        cases.push((name.to_string(), bytes, want, false));
    };
    let b = |s: &[u8]| s.to_vec();

    // Not HTTP at all.
    add("garbage", b(b"hello there\r\n\r\n"), R400_501);
    add("TLS ClientHello", tls_client_hello(), R400);
    add(
        "SSLv2 hello",
        b(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"),
        R400,
    );
    add(
        "HTTP/2 preface",
        b(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        &[400, 501, 505],
    );
    add("SSH banner", b(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), R400_501);
    // NUL and other control bytes.
    add(
        "NUL in method",
        b(b"G\0ET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400_501,
    );
    add(
        "NUL in target",
        b(b"GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "NUL in version",
        b(b"GET / HTTP/1.1\0\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "NUL in header name",
        b(b"GET / HTTP/1.1\r\nHo\0st: t\r\n\r\n"),
        R400,
    );
    add("NUL in header value", with_header("X-A: a\0b"), R400);
    add("DEL in header name", with_header("X\x7fA: b"), R400);
    add(
        "control byte in header name",
        with_header("X\x01Y: z"),
        R400,
    );
    add(
        "vertical tab in header value",
        with_header("X-A: a\x0bb"),
        R400,
    );
    // Line endings.
    add("CR without LF", b(b"GET / HTTP/1.1\rHost: t\r\r"), R400);
    add(
        "CR inside the request line",
        b(b"GET /\r HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add("CR inside a header value", with_header("X-A: a\rb"), R400);
    add("CR CR LF", b(b"GET / HTTP/1.1\r\r\nHost: t\r\n\r\n"), R400);
    // The request line.
    add(
        "space before the method",
        b(b" GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "tab before the method",
        b(b"\tGET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "over-long method",
        format!("{} / HTTP/1.1\r\nHost: t\r\n\r\n", "G".repeat(1000)).into_bytes(),
        &[501],
    );
    add(
        "lowercase method",
        b(b"get / HTTP/1.1\r\nHost: t\r\n\r\n"),
        &[501],
    );
    add(
        "unknown method",
        b(b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n"),
        &[501],
    );
    add(
        "lowercase version",
        b(b"GET / http/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add("HTTP/3.0", b(b"GET / HTTP/3.0\r\nHost: t\r\n\r\n"), &[505]);
    // HTTP/1.2 is not refused: it is served as 1.1 (tests/http_protocol.rs).
    add("HTTP/0.9", b(b"GET /\r\n\r\n"), R400_505);
    add(
        "version 1.1.1",
        b(b"GET / HTTP/1.1.1\r\nHost: t\r\n\r\n"),
        R400_505,
    );
    add(
        "version 11.1",
        b(b"GET / HTTP/11.1\r\nHost: t\r\n\r\n"),
        R400_505,
    );
    add(
        "missing target",
        b(b"GET HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add("missing version", b(b"GET / \r\nHost: t\r\n\r\n"), R400);
    add("method only", b(b"GET\r\nHost: t\r\n\r\n"), R400);
    add("two spaces", b(b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n"), R400);
    add(
        "tabs as separators",
        b(b"GET\t/\tHTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "space after the version",
        b(b"GET / HTTP/1.1 \r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "relative target",
        b(b"GET a.txt HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "asterisk on GET",
        b(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "fragment in target",
        b(b"GET /a.txt#x HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "ftp scheme",
        b(b"GET ftp://t/a.txt HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "absolute form without a path",
        b(b"GET http://t?x HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "absolute form without a host",
        b(b"GET http:///a.txt HTTP/1.1\r\nHost: t\r\n\r\n"),
        R400,
    );
    add(
        "CONNECT authority",
        b(b"CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n"),
        &[400, 405, 501],
    );
    // Header lines.
    add("header without a colon", with_header("Bad Header"), R400);
    add("header name with a space", with_header("Bad Name: x"), R400);
    add(
        "space before the colon",
        b(b"GET / HTTP/1.1\r\nHost : t\r\n\r\n"),
        R400,
    );
    add("empty header name", with_header(": v"), R400);
    add(
        "obs-fold with spaces",
        with_header("X-A: 1\r\n  continued"),
        R400,
    );
    add(
        "obs-fold with a tab",
        with_header("X-A: 1\r\n\tcontinued"),
        R400,
    );
    add(
        "obs-fold hiding Content-Length",
        with_header("X-A: 1\r\n Content-Length: 5"),
        R400,
    );
    add(
        "duplicate Host",
        b(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        R400,
    );
    add(
        "duplicate Host, other case",
        b(b"GET / HTTP/1.1\r\nHost: t\r\nhOST: t\r\n\r\n"),
        R400,
    );
    add("no Host", b(b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"), R400);
    add(
        "Expect that is not 100-continue",
        b(b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\n\r\n"),
        &[417],
    );
    // Content-Length.
    for (name, value) in [
        ("conflicting", "5\r\nContent-Length: 6"),
        ("list of two values", "5, 6"),
        ("with a plus sign", "+5"),
        ("negative", "-1"),
        ("hex", "0x10"),
        ("exponent", "1e3"),
        ("empty", ""),
        ("two numbers", "5 5"),
        ("overflowing", "99999999999999999999"),
        ("u64::MAX + 1", "18446744073709551616"),
        ("letters", "five"),
    ] {
        add(
            &format!("Content-Length {name}"),
            with_header(&format!("Content-Length: {value}")),
            R400,
        );
    }
    add(
        "Content-Length of 19 nines",
        with_header("Content-Length: 9999999999999999999"),
        &[413],
    );
    // Transfer-Encoding.
    for (name, lines, want) in [
        (
            "chunked, chunked",
            "Transfer-Encoding: chunked, chunked",
            R400_501,
        ),
        (
            "two chunked headers",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            R400_501,
        ),
        ("xchunked", "Transfer-Encoding: xchunked", R400_501),
        (
            "chunked with a parameter",
            "Transfer-Encoding: chunked;q=1",
            R400_501,
        ),
        ("identity", "Transfer-Encoding: identity", R400_501),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity",
            R400_501,
        ),
        ("empty", "Transfer-Encoding: ", R400_501),
        (
            "chunked then Content-Length",
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
            R400,
        ),
        (
            "Content-Length then chunked",
            "Content-Length: 3\r\nTransfer-Encoding: chunked",
            R400,
        ),
    ] {
        add(
            &format!("Transfer-Encoding {name}"),
            with_header(lines),
            want,
        );
    }
    add(
        "chunked on HTTP/1.0",
        b(b"POST /api/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        R400,
    );
    // Chunked framing.
    add(
        "chunk size not hex",
        chunked(b"zz\r\nab\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "negative chunk size",
        chunked(b"-1\r\nab\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "chunk size 0x5",
        chunked(b"0x5\r\nabcde\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "space before the chunk size",
        chunked(b" 5\r\nabcde\r\n0\r\n\r\n"),
        R400,
    );
    add("empty chunk size", chunked(b"\r\nabcde\r\n0\r\n\r\n"), R400);
    add(
        "chunk size line with bare LF",
        chunked(b"5\nabcde\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "chunk data too long",
        chunked(b"5\r\nabcdeXY\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "chunk data without CRLF",
        chunked(b"5\r\nabcde0\r\n\r\n"),
        R400,
    );
    add("17 hex digits", chunked(b"10000000000000000\r\n"), R400);
    add(
        "chunk size of 2^64-1",
        chunked(b"ffffffffffffffff\r\n"),
        &[413],
    );
    add(
        "NUL in a chunk extension",
        chunked(b"5;a\0b\r\nabcde\r\n0\r\n\r\n"),
        R400,
    );
    add(
        "chunk extension of 5000 bytes",
        chunked(format!("5;{}\r\nabcde\r\n0\r\n\r\n", "e".repeat(5000)).as_bytes()),
        R400,
    );
    add("NUL in a trailer", chunked(b"0\r\nX-T\0: 1\r\n\r\n"), R400);
    add(
        "100-continue, then a bad chunk",
        b(
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
            Expect: 100-continue\r\n\r\nzz\r\n",
        ),
        R400,
    );
    add(
        "12,000 bytes of trailers",
        chunked(format!("0\r\n{}\r\n", "X-T: 1\r\n".repeat(2000)).as_bytes()),
        &[431],
    );

    // Truncated requests, then the client half-closes: nothing to answer, or a 400.
    let mut truncated = |name: &str, bytes: &[u8]| {
        cases.push((format!("truncated {name}"), bytes.to_vec(), R400, true));
    };
    truncated("request line", b"GET /a.t");
    truncated("head", b"GET /a.txt HTTP/1.1\r\nHost: t\r\n");
    truncated("final CRLF", b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r");
    truncated("empty lines only", b"\r\n\r\n\r\n");
    truncated(
        "Content-Length body",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
    );
    truncated(
        "chunk",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    );
    truncated(
        "chunked body before the last chunk",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    );
    truncated(
        "trailers",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
    );

    // Lenient but unambiguous: may be served (the request asks to close) or refused.
    let served = |name: &str, bytes: Vec<u8>| (name.to_string(), bytes, R200_400, false);
    cases.push(served(
        "bare LF line endings",
        b(b"GET /a.txt HTTP/1.1\nHost: t\nConnection: close\n\n"),
    ));
    cases.push(served(
        "mixed line endings",
        b(b"GET /a.txt HTTP/1.1\r\nHost: t\nConnection: close\r\n\n"),
    ));
    cases.push((
        "10,000 empty lines before the request".to_string(),
        format!(
            "{}GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            "\r\n".repeat(10_000)
        )
        .into_bytes(),
        &[200, 400, 431],
        false,
    ));
    cases
}

#[test]
fn malformed_requests_are_refused_and_nobody_else_notices() {
    let s = server("");
    let (mut http, mut ws) = bystanders(&s);
    let cases = malformed_cases();
    assert!(cases.len() >= 40);
    for (name, bytes, want, half_close) in &cases {
        println!("case: {name}: {:?}", show(bytes));
        let reply = exchange(s.addr, bytes, *half_close);
        assert_refused(name, &reply, want, *half_close);
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Binary noise, and printable noise, from a fixed seed; each ends in an
    // empty line so the head is complete and must be judged.
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for i in 0..24 {
        let len = 1 + (rng.next() % 300) as usize;
        let mut bytes = rng.bytes(len);
        if i % 2 == 1 {
            bytes.iter_mut().for_each(|b| *b = b' ' + *b % 95);
        }
        bytes.extend_from_slice(b"\r\n\r\n");
        let name = format!("noise #{i}");
        println!("case: {name}: {:?}", show(&bytes));
        let reply = exchange(s.addr, &bytes, false);
        assert_refused(&name, &reply, &[400, 414, 431, 501, 505], false);
        assert_healthy(&s, &mut http, &mut ws);
    }
}

// ---------------------------------------------------------------------------
// 2. Traversal

#[test]
fn no_spelling_of_a_path_reaches_outside_the_documents() {
    const SECRET: &str = "TOP-SECRET-d41d8cd98f00";
    // A folder beside the documents folder (both live in the temp dir).
    let outside = TempDir::new("secret");
    outside.write("secret.txt", SECRET);
    let out_name = outside.name();
    let outside_path = outside.path.clone();
    let s = server_with("", move |d| {
        d.write(".hidden", SECRET);
        std::os::unix::fs::symlink(&outside_path, d.path.join("link")).unwrap();
    });
    let (mut http, mut ws) = bystanders(&s);
    let o = out_name.as_str();

    let deep = "../".repeat(100);
    let deep_encoded = "%2e%2e/".repeat(100);
    let mixed = "..%2f".repeat(60);
    let targets: Vec<String> = vec![
        format!("/../{o}/secret.txt"),
        format!("/../../../../../../../../..{}", outside.path.display()),
        format!("/%2e%2e/{o}/secret.txt"),
        format!("/%2E%2E%2F{o}%2Fsecret.txt"),
        format!("/..%2f{o}%2fsecret.txt"),
        format!("/..%2F{o}/secret.txt"),
        format!("/.%2e/{o}/secret.txt"),
        format!("/%2e./{o}/secret.txt"),
        format!("/./../{o}/secret.txt"),
        format!("/sub/../../{o}/secret.txt"),
        format!("/sub/./../../{o}/secret.txt"),
        format!("/sub/%2e%2e/%2e%2e/{o}/secret.txt"),
        format!("/sub/..%2f..%2f{o}/secret.txt"),
        format!("/a.txt/../../{o}/secret.txt"),
        format!("/..\\{o}\\secret.txt"),
        format!("/..%5c{o}%5csecret.txt"),
        format!("/..%5C{o}%5Csecret.txt"),
        format!("/%c0%ae%c0%ae/{o}/secret.txt"),
        format!("/%c0%ae%c0%ae%c0%af{o}%c0%afsecret.txt"),
        format!("/..%c0%af{o}%c0%afsecret.txt"),
        format!("/%e0%80%ae%e0%80%ae/{o}/secret.txt"),
        format!("/%c1%9c{o}"),
        format!("/%u002e%u002e/{o}/secret.txt"),
        format!("/../{o}/secret.txt%00"),
        format!("/.%00./{o}/secret.txt"),
        "/a.txt%00.html".to_string(),
        "/%00".to_string(),
        "/..".to_string(),
        "/%2e%2e".to_string(),
        "/%2e%2e/".to_string(),
        format!("/{deep}etc/passwd"),
        format!("/{deep_encoded}etc/passwd"),
        format!("/{mixed}etc/passwd"),
        format!("/{}etc/passwd", "../".repeat(2000)),
        format!("/{}{}etc/passwd", "a/".repeat(500), "../".repeat(501)),
        "//etc/passwd".to_string(),
        "///etc/passwd".to_string(),
        "/etc/passwd".to_string(),
        format!("http://t/../{o}/secret.txt"),
        format!("http://t/%2e%2e/{o}/secret.txt"),
        format!("http://t/{deep}etc/passwd"),
        format!("/..;/{o}/secret.txt"),
        format!("/....//{o}/secret.txt"),
        format!("/%ef%bc%8e%ef%bc%8e/{o}/secret.txt"),
        "/link/secret.txt".to_string(),
        "/link/".to_string(),
        "/.hidden".to_string(),
        "/%2ehidden".to_string(),
        "/sub/%2e%2e/.hidden".to_string(),
    ];
    for target in &targets {
        println!("case: {}", show(target.as_bytes()));
        let mut c = s.client();
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        let r = c.response();
        println!("  -> {}", r.status);
        assert!(
            [400, 403, 404, 414].contains(&r.status),
            "{target}: {} {:?}",
            r.status,
            r.text()
        );
        let body = r.text();
        assert!(
            !body.contains(SECRET) && !body.contains("root:"),
            "{target} leaked {body:?}"
        );
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Decoded exactly once: a double-encoded `..` is the literal name `%2e%2e`.
    for target in [
        format!("/%252e%252e/{o}/secret.txt"),
        format!("/%252e%252e%252f{o}%252fsecret.txt"),
        format!("/..%252f{o}%252fsecret.txt"),
        "/%252E%252E/%252E%252E/etc/passwd".to_string(),
        "/..%255c..%255cetc/passwd".to_string(),
    ] {
        println!("case: {target}");
        let r = s.raw(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 404, "{target}: {:?}", r.text());
        assert_healthy(&s, &mut http, &mut ws);
    }
    // A folder asked for without its slash is redirected, never to another host.
    for target in [
        "//sub",
        "///sub",
        "/.//sub",
        "/%2f/sub",
        "/%2f%2fsub",
        "/%2F%2F%2Fsub",
        "/x/..//sub",
        "/sub/../sub",
        "/%2e/sub",
        "//sub?x=//evil.example",
        "/%2f%2fevil.example/../sub",
        "/%09/sub",
        "/%5c%5cevil.example/../sub",
    ] {
        println!("case: {target}");
        let r = s.raw(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        println!("  -> {} {:?}", r.status, r.header("location"));
        match r.status {
            301 => {
                let location = r.header("location").unwrap_or("");
                assert!(
                    location.starts_with('/')
                        && !location.starts_with("//")
                        && !location.starts_with("/\\")
                        && !location.contains(|c: char| c.is_ascii_control()),
                    "{target} redirects to {location:?}"
                );
            }
            status => assert!([400, 404].contains(&status), "{target}: {status}"),
        }
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Climbing that stays inside the documents is fine.
    for (target, want) in [
        ("/sub/../a.txt", "A"),
        ("/sub/%2e%2e/a.txt", "A"),
        ("/sub%2fb.txt", "B"),
        ("/./a.txt", "A"),
        ("/a.txt?../../etc/passwd", "A"),
        ("/a.txt?x=%00", "A"),
        ("http://t/sub/../a.txt", "A"),
    ] {
        println!("case: {target}");
        let r = s.raw(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!((r.status, r.text().as_str()), (200, want), "{target}");
    }
    assert_healthy(&s, &mut http, &mut ws);
}

// ---------------------------------------------------------------------------
// 3. Oversized everything

#[test]
fn oversized_requests_and_frames_are_refused_without_taking_the_server_down() {
    let s = server("limits: { requests: 100000 }");
    let (mut http, mut ws) = bystanders(&s);
    let mb = 1 << 20;
    let http_cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "1 MB request line",
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(mb)).into_bytes(),
            &[414],
        ),
        (
            "1 MB method",
            format!("{} / HTTP/1.1\r\nHost: t\r\n\r\n", "G".repeat(mb)).into_bytes(),
            &[414, 431, 501],
        ),
        (
            "10,000 headers",
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
                (0..10_000).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            &[431],
        ),
        (
            "1 MB header",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "x".repeat(mb)).into_bytes(),
            &[431],
        ),
        (
            "1 MB header name",
            format!("GET / HTTP/1.1\r\nHost: t\r\n{}: x\r\n\r\n", "X".repeat(mb)).into_bytes(),
            &[431],
        ),
        (
            "1 MB of empty lines",
            "\r\n".repeat(mb / 2).into_bytes(),
            &[400, 431],
        ),
        (
            "Content-Length of 1 TB",
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1099511627776\r\n\r\n".to_vec(),
            &[413],
        ),
        (
            "Content-Length one over the limit",
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 102401\r\n\r\n".to_vec(),
            &[413],
        ),
        (
            "100-continue with a huge body",
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1099511627776\r\nExpect: 100-continue\r\n\r\n".to_vec(),
            &[413],
        ),
        (
            "chunked body over the limit in small chunks",
            chunked(format!("3e8\r\n{}\r\n", "c".repeat(1000)).repeat(200).as_bytes()),
            &[413],
        ),
        ("one huge chunk", chunked(b"ffffffffff\r\nabc"), &[413]),
        (
            "1 MB chunk extension",
            chunked(format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(mb)).as_bytes()),
            &[400],
        ),
        (
            "1 MB of trailers",
            chunked(format!("0\r\n{}", "X-T: 1\r\n".repeat(mb / 8)).as_bytes()),
            &[431],
        ),
        (
            "a body sent despite its 413",
            {
                let mut v = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n".to_vec();
                v.resize(v.len() + 2_000_000, b'q');
                v
            },
            &[413],
        ),
    ];
    for (name, bytes, want) in &http_cases {
        println!("case: {name}");
        let reply = exchange(s.addr, bytes, false);
        assert_refused(name, &reply, want, false);
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Right at the limit is still served.
    let mut exact = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 102400\r\nConnection: close\r\n\r\n".to_vec();
    exact.resize(exact.len() + 102_400, b'z');
    let reply = exchange(s.addr, &exact, false);
    let r = reply.responses().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].status, r[0].body.len()), (200, 5 + 102_400));
    assert_healthy(&s, &mut http, &mut ws);

    // WebSocket frames whose header alone is over maxFrame.
    let huge = |first: u8, len: u64| {
        let mut v = vec![first, 0x80 | 127];
        v.extend(len.to_be_bytes());
        v.extend([1, 2, 3, 4]);
        v
    };
    for (name, bytes, code) in [
        (
            "text frame of 2^63-1 bytes",
            huge(0x80 | TEXT, (1 << 63) - 1),
            1009,
        ),
        (
            "binary frame of 2^63-1 bytes",
            huge(0x80 | BINARY, (1 << 63) - 1),
            1009,
        ),
        (
            "frame of 2^64-1 bytes (top bit set)",
            huge(0x80 | BINARY, u64::MAX),
            1002,
        ),
        (
            "frame one over maxFrame (= maxMessage, 1MB)",
            huge(0x80 | BINARY, (1 << 20) + 1),
            1009,
        ),
        (
            "first fragment of 2^63-1 bytes",
            huge(TEXT, (1 << 63) - 1),
            1009,
        ),
        (
            "continuation of 2^63-1 bytes",
            {
                let mut v = masked_frame(BINARY, b"start");
                v.extend(huge(0x80 | CONTINUATION, (1 << 63) - 1));
                v
            },
            1009,
        ),
    ] {
        println!("case: {name}");
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_raw(&bytes);
        w.expect_close(code);
        assert_healthy(&s, &mut http, &mut ws);
    }

    // A 16 MB message in 64 KiB fragments, over maxMessage (1 MB): cut off
    // with 1009 while the client is still sending.
    println!("case: 16 MB continuation chain");
    let mut w = Ws::open(s.addr, "/ws/echo");
    let piece = vec![0x5Au8; 64 * 1024];
    let first = masked_frame(BINARY, &piece);
    let next = masked_frame(CONTINUATION, &piece);
    let mut writer = w.stream.try_clone().unwrap();
    writer.set_write_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    std::thread::scope(|scope| {
        let sender = scope.spawn(move || {
            let mut sent = 0;
            if writer.write_all(&first).is_err() {
                return sent;
            }
            for _ in 1..256 {
                if writer.write_all(&next).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        w.expect_close(1009);
        let sent = sender.join().unwrap();
        println!("continuations written before the server closed: {sent}");
    });
    assert_healthy(&s, &mut http, &mut ws);

    // Many tiny fragments that stay under maxMessage still make one message.
    let mut chain = masked_frame(BINARY, b"x");
    for _ in 0..19_998 {
        chain.extend(masked_frame(CONTINUATION, b"x"));
    }
    chain.extend(masked_frame(0x80 | CONTINUATION, b"x"));
    let mut w = Ws::open(s.addr, "/ws/echo");
    w.send_raw(&chain);
    let f = w.read_frame();
    assert_eq!((f.fin, f.opcode, f.payload.len()), (true, BINARY, 20_000));
    w.close(1000);
    assert_healthy(&s, &mut http, &mut ws);
}

// ---------------------------------------------------------------------------
// 4. Slowloris and stalls

#[test]
fn slowloris_and_stalled_uploads_get_408_while_bystanders_are_served() {
    let s = server(
        "timeouts: { parse: '300 ms', request: '500 ms', inactivity: '500 ms' }, \
         limits: { requests: 100000 }",
    );
    let (mut http, mut ws) = bystanders(&s);

    /// One attacking connection: what it still trickles, and what it got.
    struct Attacker {
        stream: TcpStream,
        trickle: Vec<u8>,
        sent: usize,
        got: Vec<u8>,
        done: bool,
        kind: &'static str,
    }
    let head = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: 1\r\n\r\n";
    let upload = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789";
    let mut attackers: Vec<Attacker> = (0..50)
        .map(|i| {
            let mut stream = TcpStream::connect(s.addr).unwrap();
            let (kind, trickle): (&'static str, &[u8]) = match i % 10 {
                0..=3 => ("head", head),
                4..=6 => {
                    stream.write_all(upload).unwrap();
                    ("body", b"abcdefgh")
                }
                _ => ("silent", b""),
            };
            stream.set_nonblocking(true).unwrap();
            Attacker {
                stream,
                trickle: trickle.to_vec(),
                sent: 0,
                got: Vec::new(),
                done: false,
                kind,
            }
        })
        .collect();

    // The attackers are polled between checks of the bystanders, which keep
    // those busy (so they never sit idle for `inactivity`) and pace the
    // rounds. No round and no attacker is timed: `ATTACK_TIMEOUT` only bounds
    // a server that never closes them.
    let give_up = Instant::now() + ATTACK_TIMEOUT;
    let mut round = 0;
    while attackers.iter().any(|a| !a.done) {
        let open = attackers.iter().filter(|a| !a.done).count();
        assert!(
            Instant::now() < give_up,
            "{open} attackers still open after {ATTACK_TIMEOUT:?}"
        );
        for a in attackers.iter_mut().filter(|a| !a.done) {
            // A byte every other round for the first rounds, then nothing: bounded.
            if round < 8
                && round % 2 == 0
                && a.sent < a.trickle.len()
                && a.got.is_empty()
                && a.stream.write_all(&a.trickle[a.sent..=a.sent]).is_ok()
            {
                a.sent += 1;
            }
            let mut chunk = [0u8; 4096];
            loop {
                match read_retrying(&a.stream, &mut chunk) {
                    Ok(0) => {
                        a.done = true;
                        break;
                    }
                    Ok(n) => a.got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        a.done = true;
                        break;
                    }
                }
            }
        }
        // Every round, however long the attack lasts, the bystanders are served.
        assert_healthy(&s, &mut http, &mut ws);
        round += 1;
    }
    println!("attack over after {round} rounds");
    let mut told_408 = 0;
    for (i, a) in attackers.iter().enumerate() {
        let reply = Reply {
            bytes: a.got.clone(),
            hung: false,
        };
        let label = format!("attacker {i} ({})", a.kind);
        // A connection that never sent a byte is closed silently (or told 408).
        assert_refused(&label, &reply, &[408], a.kind == "silent");
        if !reply.bytes.is_empty() {
            told_408 += 1;
        }
    }
    // 35 of the 50 sent something and must have been told 408; the server
    // counted exactly the 408s the attackers received, and nothing else.
    assert!(told_408 >= 35, "only {told_408} attackers were told 408");
    let stats = s.handle.stats().expect("the server is running");
    assert_eq!(
        stats.limits.timeouts, told_408,
        "408s counted by the server"
    );
    assert_healthy(&s, &mut http, &mut ws);
}

// ---------------------------------------------------------------------------
// 5. Floods over the connection limit

#[test]
fn a_flood_over_the_connection_limit_is_turned_away_and_then_forgotten() {
    let s = server("limits: { connections: 20, requests: 100000 }");
    let (mut http, mut ws) = bystanders(&s);
    for wave in 0..2 {
        println!("wave {wave}");
        let mut flood: Vec<TcpStream> = (0..200)
            .map(|_| {
                let c = TcpStream::connect(s.addr).unwrap();
                c.set_write_timeout(Some(ANSWER_TIMEOUT)).unwrap();
                c
            })
            .collect();
        for c in &mut flood {
            // A dropped connection may refuse the write; that is an answer too.
            let _ = c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        }
        // The bystanders hold two of the twenty slots and keep them.
        assert_bystanders(&mut http, &mut ws);
        let (mut served, mut busy, mut dropped) = (0, 0, 0);
        for (i, c) in flood.iter_mut().enumerate() {
            let reply = read_until_close(c, ANSWER_TIMEOUT);
            let label = format!("wave {wave} connection {i}");
            assert!(!reply.hung, "{label} hung");
            if reply.bytes.is_empty() {
                dropped += 1;
                continue;
            }
            assert_refused(&label, &reply, &[200, 503], false);
            match reply.responses().unwrap()[0].status {
                200 => served += 1,
                _ => busy += 1,
            }
        }
        println!("served {served}, 503 {busy}, dropped {dropped}");
        assert!(
            served <= 18,
            "{served} served over a limit of 20 with 2 held"
        );
        assert!(busy > 0, "nobody was told 503");
        assert_bystanders(&mut http, &mut ws);
        drop(flood);
        assert_healthy(&s, &mut http, &mut ws);
    }
}

// ---------------------------------------------------------------------------
// 6. Slow readers

#[test]
fn clients_that_do_not_read_cost_only_themselves() {
    let s = server_with("limits: { requests: 100000 }", |d| {
        d.write("big.bin", big_contents());
    });
    let (mut http, mut ws) = bystanders(&s);
    let mut readers: Vec<Client> = (0..20)
        .map(|_| {
            let mut c = s.client();
            c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    for r in &readers {
        r.await_unread();
    }
    for _ in 0..5 {
        assert_healthy(&s, &mut http, &mut ws);
    }

    // A WebSocket peer that sends 64 KiB messages to echo and reads none of
    // them (12.8 MB at most); whatever the server does with it, the others
    // are served meanwhile.
    let flooder = Ws::open(s.addr, "/ws/echo");
    let message = masked_frame(0x80 | BINARY, &vec![7u8; 64 * 1024]);
    let mut writer = flooder.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut sent = 0;
            while sent < 200 && writer.write_all(&message).is_ok() {
                sent += 1;
            }
        });
        for _ in 0..5 {
            assert_healthy(&s, &mut http, &mut ws);
        }
    });
    assert_healthy(&s, &mut http, &mut ws);

    // A slow reader that finally reads gets its whole file.
    let r = readers[0].response();
    assert_eq!(r.status, 200);
    assert!(r.body == big_contents(), "the file arrived damaged");
    // The rest vanish with a reset (their unread data makes the kernel send RST).
    drop(readers);
    drop(flooder);
    for _ in 0..3 {
        assert_healthy(&s, &mut http, &mut ws);
    }
}

#[test]
fn websocket_echo_client_that_never_reads_stops_being_read() {
    // README, "Slow readers": once maxBackpressure (1 MB by default) of frames
    // wait for the socket, the server reads nothing more from that peer until
    // it drains. Sends are refused before the output can pass the limit, and
    // reading pauses only once it is passed, so with messages that arrive one
    // per read the pause never comes.
    let s = server("limits: { requests: 100000 }");
    let (mut http, mut ws) = bystanders(&s);
    let mut flooder = Ws::open(s.addr, "/ws/echo");
    let message = masked_frame(0x80 | BINARY, &vec![7u8; 64 * 1024]);
    let mut writer = flooder.stream.try_clone().unwrap();
    writer.set_nonblocking(true).unwrap();
    let client = writer.local_addr().unwrap();
    // Writes until the socket takes no more, then checks the server: bytes
    // wait unread in its socket, and for PAUSED_TURNS turns of its loop in a
    // row (each `stats` call is one) neither they nor `messages_in` move.
    // 128 MB at most: far more than every buffer on the way can hold.
    const PAUSED_TURNS: u32 = 20;
    let give_up = Instant::now() + ANSWER_TIMEOUT;
    let (mut sent, mut offset) = (0, 0);
    let mut last = None;
    let mut still = 0;
    let read_in = loop {
        loop {
            assert!(
                sent < 2000,
                "the server kept reading a peer that never reads"
            );
            match writer.write(&message[offset..]) {
                Ok(n) => {
                    offset += n;
                    if offset == message.len() {
                        (sent, offset) = (sent + 1, 0);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("the flooder's write failed after {sent} messages: {e}"),
            }
        }
        let stats = s.handle.stats().expect("the server is running");
        let unread =
            support::unread_by_server(s.addr, client).expect("the connection is in /proc/net/tcp");
        let now = (stats.messages_in, unread);
        if unread > 0 && last == Some(now) {
            still += 1;
            if still == PAUSED_TURNS {
                break stats.messages_in;
            }
        } else {
            (last, still) = (Some(now), 0);
        }
        assert!(
            Instant::now() < give_up,
            "the server never stopped reading the flooder: {now:?} (messages in, unread bytes)"
        );
    };
    println!(
        "messages written before the server stopped reading: {sent}; server read {read_in} in all"
    );
    assert_healthy(&s, &mut http, &mut ws);
    // Once the client reads, every echo it was allowed to send comes back.
    // (The clone shares the socket's non-blocking flag: back to blocking.)
    writer.set_nonblocking(false).unwrap();
    drop(writer);
    for i in 0..sent {
        let f = flooder.read_frame();
        assert_eq!((f.opcode, f.payload.len()), (BINARY, 64 * 1024), "echo {i}");
    }
}

// ---------------------------------------------------------------------------
// 7. Vanishing peers

#[test]
fn peers_that_vanish_at_any_moment_cost_only_their_own_connection() {
    let s = server_with("limits: { requests: 100000 }", |d| {
        d.write("big.bin", big_contents());
    });
    let (mut http, mut ws) = bystanders(&s);
    let get = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let post_head = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
    let chunked_head = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let text_frame = masked_frame(0x80 | TEXT, b"half a frame, never finished");
    let half_frame = &text_frame[..text_frame.len() / 2];

    // A FIN mid-way: the client just closes its socket with nothing unread.
    let fin_cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing sent", Vec::new()),
        ("mid request line", b"GET /a.t".to_vec()),
        ("mid head", b"GET /a.txt HTTP/1.1\r\nHo".to_vec()),
        ("mid body", [&post_head[..], b"0123456789"].concat()),
        ("mid chunk", [&chunked_head[..], b"10\r\nabc"].concat()),
        ("mid chunk size line", [&chunked_head[..], b"1"].concat()),
    ];
    for (name, bytes) in &fin_cases {
        println!("case: FIN {name}");
        let mut c = s.client();
        c.send(bytes);
        drop(c);
        assert_healthy(&s, &mut http, &mut ws);
    }
    let ws_fin: Vec<(&str, Vec<u8>)> = vec![
        ("mid frame header", text_frame[..1].to_vec()),
        ("mid mask", text_frame[..4].to_vec()),
        ("mid frame payload", half_frame.to_vec()),
        (
            "mid fragmented message",
            masked_frame(TEXT, b"first of many"),
        ),
        (
            "after a close frame",
            masked_frame(0x80 | CLOSE, &close_payload(1000, b"")),
        ),
    ];
    for (name, bytes) in &ws_fin {
        println!("case: WebSocket FIN {name}");
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_raw(bytes);
        drop(w);
        assert_healthy(&s, &mut http, &mut ws);
    }
    println!("case: FIN before reading the 101");
    let mut c = s.client();
    c.send(upgrade_request("/ws/echo", "").as_bytes());
    drop(c);
    assert_healthy(&s, &mut http, &mut ws);

    // A reset mid-way: an answer waits unread in the client's socket when it
    // closes, so the kernel sends RST.
    for (name, tail) in [
        ("mid head", b"GET /a.txt HTTP/1.1\r\nHo".to_vec()),
        ("mid body", [&post_head[..], b"0123456789"].concat()),
        ("mid chunk", [&chunked_head[..], b"10\r\nabc"].concat()),
    ] {
        println!("case: RST {name}");
        let mut c = s.client();
        c.send(&[&get[..], &tail[..]].concat());
        c.await_unread();
        drop(c);
        assert_healthy(&s, &mut http, &mut ws);
    }
    println!("case: RST mid 100-continue upload");
    let mut c = s.client();
    c.send(b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50000\r\nExpect: 100-continue\r\n\r\n");
    c.await_unread();
    c.send(&[b'u'; 1000]);
    drop(c);
    assert_healthy(&s, &mut http, &mut ws);
    for pipelined in [1, 3] {
        println!("case: RST mid response ({pipelined} pipelined)");
        let mut c = s.client();
        c.send(&b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n".repeat(pipelined));
        c.read_bytes(10_000);
        drop(c);
        assert_healthy(&s, &mut http, &mut ws);
    }
    for (name, bytes) in [
        ("mid frame", half_frame.to_vec()),
        (
            "mid fragmented message",
            masked_frame(TEXT, b"first of many"),
        ),
        (
            "after a close frame",
            masked_frame(0x80 | CLOSE, &close_payload(1001, b"bye")),
        ),
    ] {
        println!("case: WebSocket RST {name}");
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_text("unread echo");
        w.await_unread();
        w.send_raw(&bytes);
        drop(w);
        assert_healthy(&s, &mut http, &mut ws);
    }

    // A half-close: the client stops sending but still listens. The server
    // closes once it has nothing more to say.
    for (name, bytes) in &fin_cases {
        println!("case: half-close {name}");
        let reply = exchange(s.addr, bytes, true);
        assert_refused(&format!("half-close {name}"), &reply, &[400], true);
        assert_healthy(&s, &mut http, &mut ws);
    }
    println!("case: half-close after a complete request for a large file");
    let reply = exchange(s.addr, b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", true);
    assert!(!reply.hung, "no close after the response");
    let r = reply.responses().unwrap();
    assert_eq!(r.len(), 1);
    assert!(
        r[0].status == 200 && r[0].body == big_contents(),
        "the file arrived damaged"
    );
    assert_healthy(&s, &mut http, &mut ws);
    for (name, bytes) in &ws_fin {
        println!("case: WebSocket half-close {name}");
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_raw(bytes);
        w.shutdown_write();
        let reply = read_until_close(&w.stream, ANSWER_TIMEOUT);
        assert!(
            !reply.hung,
            "WebSocket half-closed {name}: the server never closed"
        );
        assert_healthy(&s, &mut http, &mut ws);
    }
    println!("case: WebSocket half-close after a close frame is answered");
    let mut w = Ws::open(s.addr, "/ws/echo");
    w.send_close(1000, "bye");
    w.shutdown_write();
    w.expect_close(1000);
    assert_healthy(&s, &mut http, &mut ws);
}

// ---------------------------------------------------------------------------
// 8. WebSocket protocol violations

/// The violations: name, bytes sent after the handshake, the close code expected.
fn ws_violations() -> Vec<(String, Vec<u8>, u16)> {
    let mut cases: Vec<(String, Vec<u8>, u16)> = Vec::new();
    let mut add =
        |name: &str, bytes: Vec<u8>, code: u16| cases.push((name.to_string(), bytes, code));
    let unmasked = |first: u8, payload: &[u8]| {
        let mut v = vec![first, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    };
    add("unmasked text", unmasked(0x80 | TEXT, b"hi"), 1002);
    add("unmasked empty binary", unmasked(0x80 | BINARY, b""), 1002);
    add("unmasked ping", unmasked(0x80 | PING, b"p"), 1002);
    add(
        "unmasked close",
        unmasked(0x80 | CLOSE, &close_payload(1000, b"")),
        1002,
    );
    for (bit, rsv) in [
        (0x40, "RSV1"),
        (0x20, "RSV2"),
        (0x10, "RSV3"),
        (0x70, "all RSV"),
    ] {
        add(
            &format!("{rsv} on text"),
            masked_frame(0x80 | bit | TEXT, b"hi"),
            1002,
        );
        add(
            &format!("{rsv} on ping"),
            masked_frame(0x80 | bit | PING, b""),
            1002,
        );
    }
    add(
        "RSV1 on a continuation",
        [
            masked_frame(TEXT, b"a"),
            masked_frame(0x80 | 0x40 | CONTINUATION, b"b"),
        ]
        .concat(),
        1002,
    );
    for opcode in (3..=7).chain(0xB..=0xF) {
        add(
            &format!("opcode {opcode:#x}"),
            masked_frame(0x80 | opcode, b"x"),
            1002,
        );
    }
    add("opcode 3 unfinished", masked_frame(3, b"x"), 1002);
    add(
        "ping of 126 bytes",
        masked_frame(0x80 | PING, &[b'p'; 126]),
        1002,
    );
    add(
        "pong of 126 bytes",
        masked_frame(0x80 | PONG, &[b'p'; 126]),
        1002,
    );
    add(
        "close of 126 bytes",
        masked_frame(0x80 | CLOSE, &close_payload(1000, &[b'r'; 124])),
        1002,
    );
    add(
        "ping of 1000 bytes",
        masked_frame(0x80 | PING, &[b'p'; 1000]),
        1002,
    );
    add("fragmented ping", masked_frame(PING, b"p"), 1002);
    add("fragmented pong", masked_frame(PONG, b"p"), 1002);
    add(
        "fragmented close",
        masked_frame(CLOSE, &close_payload(1000, b"")),
        1002,
    );
    add(
        "continuation with no message",
        masked_frame(0x80 | CONTINUATION, b"x"),
        1002,
    );
    add(
        "unfinished continuation with no message",
        masked_frame(CONTINUATION, b"x"),
        1002,
    );
    add(
        "text inside a fragmented text",
        [masked_frame(TEXT, b"a"), masked_frame(0x80 | TEXT, b"b")].concat(),
        1002,
    );
    add(
        "binary inside a fragmented binary",
        [masked_frame(BINARY, b"a"), masked_frame(BINARY, b"b")].concat(),
        1002,
    );
    // Bad UTF-8, one class at a time, in one frame.
    let utf8: &[(&str, &[u8])] = &[
        ("lone continuation byte", b"\x80"),
        ("lone 0xbf", b"a\xbfb"),
        ("overlong '/' in 2 bytes", b"\xc0\xaf"),
        ("overlong '.' in 2 bytes", b"\xc0\xae"),
        ("overlong in 2 bytes, 0xc1", b"\xc1\xbf"),
        ("overlong in 3 bytes", b"\xe0\x80\xaf"),
        ("overlong U+07FF in 3 bytes", b"\xe0\x9f\xbf"),
        ("overlong in 4 bytes", b"\xf0\x80\x80\xaf"),
        ("overlong U+FFFF in 4 bytes", b"\xf0\x8f\xbf\xbf"),
        ("high surrogate", b"\xed\xa0\x80"),
        ("low surrogate", b"\xed\xbf\xbf"),
        ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("lead byte 0xf5", b"\xf5\x80\x80\x80"),
        ("five-byte form", b"\xf8\x88\x80\x80\x80"),
        ("six-byte form", b"\xfc\x84\x80\x80\x80\x80"),
        ("0xfe", b"\xfe"),
        ("0xff", b"\xff"),
        ("BOM-like 0xfe 0xff", b"\xfe\xff"),
        ("truncated 2-byte at the end", b"ok\xc2"),
        ("truncated 3-byte at the end", b"ab\xe2\x82"),
        ("truncated 4-byte at the end", b"\xf0\x9f\x98"),
        ("truncated 3-byte mid-text", b"\xe2\x82a"),
        ("2-byte lead then ASCII", b"\xc3a"),
        (
            "valid text then a surrogate",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ),
        ("NULs then 0xff", b"\0\0\xff"),
    ];
    for (name, bytes) in utf8 {
        add(
            &format!("text with {name}"),
            masked_frame(0x80 | TEXT, bytes),
            1007,
        );
    }
    add(
        "character cut by the end of a fragmented message",
        [
            masked_frame(TEXT, b"\xce"),
            masked_frame(0x80 | CONTINUATION, b""),
        ]
        .concat(),
        1007,
    );
    add(
        "bad byte in the last fragment",
        [
            masked_frame(TEXT, b"ok"),
            masked_frame(0x80 | CONTINUATION, b"\xff"),
        ]
        .concat(),
        1007,
    );
    add(
        "surrogate split across fragments",
        [
            masked_frame(TEXT, b"\xed"),
            masked_frame(0x80 | CONTINUATION, b"\xa0\x80"),
        ]
        .concat(),
        1007,
    );
    add(
        "4-byte character cut over three fragments",
        [
            masked_frame(TEXT, b"\xf0\x9f"),
            masked_frame(CONTINUATION, b"\x98"),
            masked_frame(0x80 | CONTINUATION, b""),
        ]
        .concat(),
        1007,
    );
    add(
        "close reason 0xff",
        masked_frame(0x80 | CLOSE, &close_payload(1000, b"\xff")),
        1007,
    );
    add(
        "close reason with an overlong '/'",
        masked_frame(0x80 | CLOSE, &close_payload(1000, b"ok\xc0\xaf")),
        1007,
    );
    // Close payloads.
    add(
        "close payload of one byte",
        masked_frame(0x80 | CLOSE, &[0x03]),
        1002,
    );
    for code in [
        0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        add(
            &format!("close code {code}"),
            masked_frame(0x80 | CLOSE, &close_payload(code, b"")),
            1002,
        );
    }
    // Valid codes at the edges are echoed.
    for code in [1000, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
        add(
            &format!("valid close code {code}"),
            masked_frame(0x80 | CLOSE, &close_payload(code, b"edge")),
            code,
        );
    }
    cases
}

#[test]
fn websocket_protocol_violations_each_get_their_close_code() {
    let s = server("limits: { requests: 100000 }");
    let (mut http, mut ws) = bystanders(&s);
    for (name, bytes, code) in ws_violations() {
        println!("case: {name}: {:?}", show(&bytes));
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_raw(&bytes);
        w.expect_close(code);
        assert_healthy(&s, &mut http, &mut ws);
    }
    // A valid message first, then the violation: the message is echoed, then the close.
    for (name, bytes, code) in ws_violations().into_iter().step_by(7) {
        println!("case: echo then {name}");
        let mut w = Ws::open(s.addr, "/ws/echo");
        w.send_raw(&[masked_frame(0x80 | TEXT, b"fine"), bytes].concat());
        w.expect_text("fine");
        w.expect_close(code);
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Hostile frames in the same packet as the upgrade request.
    for (name, bytes, code) in ws_violations().into_iter().step_by(5) {
        println!("case: upgrade and {name} in one write");
        let request = upgrade_request("/ws/echo", "");
        let (resp, mut w) = Ws::handshake(s.addr, &[request.as_bytes(), &bytes].concat());
        assert_eq!(resp.status, 101, "{name}");
        w.expect_close(code);
        assert_healthy(&s, &mut http, &mut ws);
    }
    // Hostile upgrade requests are refused over HTTP, and the connection closed.
    let key = support::ws::RFC_KEY;
    for (name, request, want) in [
        (
            "key that is not base64",
            "GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!!!\r\nSec-WebSocket-Version: 13\r\n\r\n".to_string(),
            &[400][..],
        ),
        (
            "key of 2000 bytes",
            format!("GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n", "A".repeat(2000)),
            &[400],
        ),
        (
            "version 99",
            format!("GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 99\r\n\r\n"),
            &[426],
        ),
        (
            "upgrade over HTTP/1.0",
            format!("GET /ws/echo HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            &[400, 426],
        ),
        (
            "upgrade with a body",
            format!("POST /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc"),
            &[405],
        ),
    ] {
        println!("case: {name}");
        let reply = exchange(s.addr, request.as_bytes(), false);
        assert_refused(name, &reply, want, false);
        assert_healthy(&s, &mut http, &mut ws);
    }
}

// ---------------------------------------------------------------------------
// 9. Hostile values in otherwise valid requests

#[test]
fn hostile_header_values_on_valid_requests_get_sensible_answers() {
    let s = server_with("limits: { requests: 100000 }", |d| {
        d.write("r.txt", vec![b'r'; 1000]);
    });
    let (mut http, mut ws) = bystanders(&s);
    let disjoint: Vec<String> = (0..500).map(|i| format!("{0}-{0}", i * 2)).collect();
    let cases: Vec<(&str, String, &[u16])> = vec![
        (
            "500 disjoint ranges",
            // 500 ranges after merging, over the cap of 16: the whole file.
            format!("Range: bytes={}", disjoint.join(",")),
            &[200],
        ),
        (
            "1000 overlapping ranges",
            // Merged into one range: 206.
            format!("Range: bytes={}", ["0-999"; 1000].join(",")),
            &[206],
        ),
        (
            "range start of 20 digits",
            // Over 19 digits: not the grammar, ignored.
            "Range: bytes=99999999999999999999-".into(),
            &[200],
        ),
        (
            "range at u64::MAX",
            "Range: bytes=18446744073709551615-18446744073709551615".into(),
            &[200],
        ),
        (
            "suffix of u64::MAX",
            "Range: bytes=-18446744073709551615".into(),
            &[200],
        ),
        ("backwards range", "Range: bytes=5-1".into(), &[200]),
        ("empty range set", "Range: bytes=".into(), &[200]),
        ("double minus", "Range: bytes=--1".into(), &[200]),
        (
            "range of zero suffix",
            // A zero suffix selects nothing: unsatisfiable.
            "Range: bytes=-0".into(),
            &[416],
        ),
        ("other unit", "Range: pages=1-2".into(), &[200]),
        (
            "two Range headers",
            "Range: bytes=0-1\r\nRange: bytes=2-3".into(),
            &[206],
        ),
        (
            "If-Range garbage",
            // An If-Range that matches nothing: the whole file.
            "Range: bytes=0-0\r\nIf-Range: \"nope".into(),
            &[200],
        ),
        (
            "1000 entity tags",
            format!("If-None-Match: {}", ["\"x\""; 1000].join(", ")),
            &[200],
        ),
        (
            "broken entity tags",
            "If-None-Match: W/, \", \"\"\"".into(),
            &[200],
        ),
        (
            "If-Modified-Since garbage",
            "If-Modified-Since: yesterday".into(),
            &[200],
        ),
        (
            "If-Modified-Since out of range",
            "If-Modified-Since: Sun, 99 Foo 99999 99:99:99 GMT".into(),
            &[200],
        ),
        (
            "If-Modified-Since far future",
            "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT".into(),
            &[304],
        ),
        (
            "If-Unmodified-Since in 1970",
            "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT".into(),
            &[412],
        ),
        (
            "Accept-Encoding garbage",
            "Accept-Encoding: br;q=NaN, gzip;q=-1, *;q=2, ;;;".into(),
            &[200],
        ),
        (
            "8 KB cookie",
            format!("Cookie: a={}", "c".repeat(8000)),
            &[200],
        ),
        (
            "contradictory Connection",
            "Connection: close, keep-alive, upgrade".into(),
            &[200],
        ),
        (
            "h2c upgrade",
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA".into(),
            &[200],
        ),
        (
            "WebSocket upgrade to a file",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13".into(),
            &[200],
        ),
        (
            "4000-byte Host",
            format!("Host2: x\r\nX-Host: {}", "h".repeat(4000)),
            &[200],
        ),
        (
            "obs-text in a value",
            "X-Text: caf\u{e9} \u{fffd}".into(),
            &[200],
        ),
        (
            "Expect: 100-continue without a body",
            "Expect: 100-continue".into(),
            &[200],
        ),
        ("Max-Forwards: -1", "Max-Forwards: -1".into(), &[200]),
    ];
    for (name, header, want) in &cases {
        println!("case: {name}");
        let request =
            format!("GET /r.txt HTTP/1.1\r\nHost: t\r\n{header}\r\nConnection: close\r\n\r\n");
        let reply = exchange(s.addr, request.as_bytes(), false);
        assert_refused(name, &reply, want, false);
        assert_healthy(&s, &mut http, &mut ws);
    }
}

// ---------------------------------------------------------------------------
// 10. Pipelined junk

/// Name, valid requests, the bodies they are answered with, the junk after
/// them, and the statuses the junk may be refused with.
type JunkCase = (
    &'static str,
    Vec<u8>,
    Vec<&'static str>,
    Vec<u8>,
    &'static [u16],
);

#[test]
fn junk_pipelined_after_valid_requests_is_refused_after_they_are_answered() {
    let s = server("limits: { requests: 100000 }");
    let (mut http, mut ws) = bystanders(&s);
    let get = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut noise = rng.bytes(200);
    noise.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<JunkCase> = vec![
        ("garbage", get.clone(), vec!["A"], b"garbage\r\n\r\n".to_vec(), &[400, 501]),
        ("binary noise", get.clone(), vec!["A"], noise, &[400, 501]),
        ("NUL bytes", get.clone(), vec!["A"], b"\0\0\0\0\r\n\r\n".to_vec(), &[400]),
        ("TLS ClientHello", get.clone(), vec!["A"], tls_client_hello(), &[400]),
        (
            "an HTTP response",
            get.clone(),
            vec!["A"],
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            &[400, 501, 505],
        ),
        (
            "HTTP/9.9",
            get.clone(),
            vec!["A"],
            b"GET / HTTP/9.9\r\nHost: t\r\n\r\n".to_vec(),
            &[505],
        ),
        (
            "unknown method",
            get.clone(),
            vec!["A"],
            b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            &[501],
        ),
        (
            "no Host",
            get.clone(),
            vec!["A"],
            b"GET /a.txt HTTP/1.1\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "conflicting lengths",
            get.clone(),
            vec!["A"],
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            &[400],
        ),
        (
            "smuggling shape",
            get.clone(),
            vec!["A"],
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "too many headers",
            get.clone(),
            vec!["A"],
            format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X: y\r\n".repeat(100)).into_bytes(),
            &[431],
        ),
        (
            "1 MB without a newline",
            get.clone(),
            vec!["A"],
            vec![b'A'; 1 << 20],
            &[414],
        ),
        (
            "two valid requests first",
            [get.clone(), b"GET /sub/b.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()].concat(),
            vec!["A", "B"],
            b"\x16\x03\x01garbage\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "junk right after a body",
            b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            vec!["POST abc"],
            b"JUNK JUNK\r\n\r\n".to_vec(),
            &[400, 501],
        ),
        (
            "junk right after a chunked body",
            chunked(b"3\r\nabc\r\n0\r\n\r\n"),
            vec!["POST abc"],
            b"\x01\x02\x03\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a valid request after the junk is not answered",
            get.clone(),
            vec!["A"],
            [b"@@@@ / HTTP/1.1\r\n\r\n".to_vec(), get.clone()].concat(),
            &[400, 501],
        ),
    ];
    for (name, valid, bodies, junk, want) in &cases {
        println!("case: {name}");
        let reply = exchange(s.addr, &[valid.clone(), junk.clone()].concat(), false);
        assert!(!reply.hung, "{name}: no close");
        let responses = reply
            .responses()
            .unwrap_or_else(|e| panic!("{name}: {e}: {:?}", show(&reply.bytes)));
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses.len(), bodies.len() + 1, "{name}: got {statuses:?}");
        for (r, body) in responses.iter().zip(bodies) {
            assert_eq!(
                (r.status, String::from_utf8_lossy(&r.body).as_ref()),
                (200, *body),
                "{name}"
            );
            assert!(
                !r.close,
                "{name}: the valid request was answered with close"
            );
        }
        let last = responses.last().unwrap();
        assert!(
            want.contains(&last.status),
            "{name}: junk got {}",
            last.status
        );
        assert!(last.close, "{name}: refusal without Connection: close");
        assert_healthy(&s, &mut http, &mut ws);
    }
}
