//! https and wss over real sockets: files, keep-alive, pipelining, ranges
//! and a large body through TLS; WebSocket messages and closes; mutual TLS;
//! and what the https port does with input that is not a proper handshake —
//! after each of which a well-behaved client is still served.
//!
//! The client is the shared raw client (`support::Client`, `support::ws::Ws`)
//! over a rustls stream (`support::tls`); certificates are made at test time.
//! Tests wait for the server's bytes, never for a clock; `IO_TIMEOUT` and
//! `CLOSE_WAIT` are only safety nets.
#![cfg(feature = "tls")]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use support::tls::{answer, try_get, Answer, Identity, Pki, TlsServer, CHECK_FILE, CLOSE_WAIT};
use support::ws::{Ws, BINARY, CONTINUATION, TEXT};
use support::{exchange, Client};
use wisp::{CloseCode, Handler, Message, Response, WebSocket};

// ---------------------------------------------------------------------------
// Servers

/// Routes `/api/` and `/ws/` to the handlers, everything else to files.
const ROUTES: &str = "routes: [
    { match: '/api/', handler: 'action' },
    { match: '/ws/', handler: 'action' },
    { match: '' },
]";

/// Echoes every message; `is-tls` answers `WebSocket::is_tls`, `close-4000`
/// makes the server close.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        match msg {
            Message::Text("is-tls") => {
                let tls = ws.is_tls().to_string();
                ws.send_text(&tls);
            }
            Message::Text("peer-cert") => {
                let cert = ws
                    .peer_cert()
                    .map(|c| format!("{} {:?}", c.subject, c.names));
                ws.send_text(&cert.unwrap_or_else(|| "none".into()));
            }
            Message::Text("close-4000") => {
                ws.close(CloseCode::new(4000).expect("an application code"), "done");
            }
            other => {
                ws.send(other);
            }
        }
    }
}

/// A server with `/api/tls` (the request's `is_tls`), `/ws/echo` and files,
/// and `web` (more keys) besides.
fn app_server(web: &str, fill: impl FnOnce(&support::TempDir)) -> TlsServer {
    TlsServer::start("", &format!("{ROUTES}, {web}"), fill, |server| {
        server.action("/api/tls", |req| Response::text(req.is_tls().to_string()));
        server.websocket("/ws/echo", Echo);
    })
}

/// A server that asks for client certificates signed by the test CA.
fn mutual_server() -> TlsServer {
    TlsServer::start(
        "authority: '{ca}', verify: { client: true }",
        ROUTES,
        |_| {},
        serve_peer_certs,
    )
}

/// `/api/cert` answers the request's verified client certificate, and
/// `/ws/echo` does for `peer-cert`.
fn serve_peer_certs(server: &mut wisp::Server) {
    server.action("/api/cert", |req| {
        let cert = req
            .peer_cert()
            .map(|c| format!("{} {:?}", c.subject, c.names));
        Response::text(cert.unwrap_or_else(|| "none".into()))
    });
    server.websocket("/ws/echo", Echo);
}

/// `n` bytes that are not all alike (a wrong offset shows).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// https

/// `a.txt` and `b.txt`, for two requests on one connection.
fn two_files(d: &support::TempDir) {
    d.write("a.txt", "first");
    d.write("b.txt", "second");
}

#[test]
fn https_get_serves_a_file() {
    let s = TlsServer::files(|d| {
        d.write("hello.txt", "hello over TLS\n");
    });
    let r = s.https_get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello over TLS\n");
    assert_eq!(r.header("content-length"), Some("15"));
}

#[test]
fn https_keeps_a_connection_alive_for_a_second_request() {
    let s = TlsServer::files(two_files);
    let mut c = s.https();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "first");
    c.send(b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "second");
}

#[test]
fn https_answers_pipelined_requests_in_order() {
    let s = TlsServer::files(two_files);
    let mut c = s.https();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "first");
    assert_eq!(c.response().text(), "second");
}

#[test]
fn https_range_request_gets_206_with_the_slice() {
    let s = TlsServer::files(|d| {
        d.write("digits.txt", "0123456789abcdefghij");
    });
    let mut c = s.https();
    c.send(b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-5\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 2-5/20"));
    assert_eq!(r.text(), "2345");
}

#[test]
fn https_sends_a_5_mib_file_byte_for_byte() {
    let body = pattern(5 * 1024 * 1024);
    let s = TlsServer::files(|d| {
        d.write("big.bin", &body);
    });
    let r = s.https_get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the body differs");
}

#[test]
fn https_queues_pipelined_large_files_in_order() {
    let body = pattern(5 * 1024 * 1024);
    let s = TlsServer::files(|d| {
        d.write("big.bin", &body);
        d.write("small.txt", "small");
    });
    let mut c = s.https();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(
        [get("/big.bin"), get("/small.txt"), get("/big.bin")]
            .concat()
            .as_bytes(),
    );
    assert!(c.response().body == body, "the first body differs");
    assert_eq!(c.response().text(), "small");
    assert!(c.response().body == body, "the second body differs");
}

#[test]
fn request_is_tls_over_https_and_not_over_http() {
    let s = app_server("", |_| {});
    assert_eq!(s.https_get("/api/tls").text(), "true");
    assert_eq!(s.get("/api/tls").text(), "false");
}

// ---------------------------------------------------------------------------
// wss

#[test]
fn wss_echoes_text_and_binary() {
    let s = app_server("", |_| {});
    let mut ws = s.wss("/ws/echo");
    ws.send_text("hello");
    ws.expect_message(TEXT, b"hello");
    let data = pattern(100_000);
    ws.send_binary(&data);
    ws.expect_message(BINARY, &data);
    ws.close(1000);
}

#[test]
fn wss_reassembles_a_fragmented_message() {
    let s = app_server("", |_| {});
    let mut ws = s.wss("/ws/echo");
    ws.send_frame(false, TEXT, b"frag");
    ws.send_frame(false, CONTINUATION, b"men");
    ws.send_frame(true, CONTINUATION, b"ted");
    ws.expect_text("fragmented");
    ws.close(1000);
}

#[test]
fn wss_echoes_a_client_close_and_ends_the_connection() {
    let s = app_server("", |_| {});
    let ws = s.wss("/ws/echo");
    ws.close_with(4321, "bye");
    s.still_serves();
}

#[test]
fn wss_server_close_sends_its_code() {
    let s = app_server("", |_| {});
    let mut ws = s.wss("/ws/echo");
    ws.send_text("close-4000");
    assert_eq!(ws.read_close(), (4000, "done".to_string()));
    ws.send_close(4000, "");
    ws.expect_eof();
}

#[test]
fn websocket_is_tls_over_wss_and_not_over_ws() {
    let s = app_server("", |_| {});
    let mut wss = s.wss("/ws/echo");
    wss.send_text("is-tls");
    wss.expect_text("true");
    wss.close(1000);
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("is-tls");
    ws.expect_text("false");
    ws.close(1000);
}

// ---------------------------------------------------------------------------
// Mutual TLS

#[test]
fn mutual_tls_serves_a_client_with_a_ca_signed_certificate() {
    let s = mutual_server();
    let r = s.https_get(CHECK_FILE);
    assert_eq!(r.status, 200);
}

#[test]
fn handlers_read_the_verified_client_certificate() {
    let s = mutual_server();
    let want = r#"CN=client ["client.test"]"#;
    assert_eq!(s.https_get("/api/cert").text(), want);
    let mut ws = s.wss("/ws/echo");
    ws.send_text("peer-cert");
    ws.expect_text(want);
    ws.close(1000);
}

#[test]
fn without_a_client_certificate_handlers_see_none() {
    let s = app_server("", |_| {});
    let mut ws = s.wss("/ws/echo");
    ws.send_text("peer-cert");
    ws.expect_text("none");
    ws.close(1000);
}

/// A client presenting `pick`'s certificate (none for `None`) to a server
/// that requires one is refused with the fatal alert `alert`, in the
/// handshake or at the first read after it (in TLS 1.3 the server judges
/// the client's certificate after the client has finished); it never sees
/// a response. A well-behaved client is served afterwards.
fn assert_refused(pick: impl FnOnce(&Pki) -> Option<&Identity>, alert: &str) {
    let s = mutual_server();
    let config = s.pki.client_config(pick(&s.pki));
    match try_get(s.tls_addr(), config, CHECK_FILE) {
        Ok(bytes) => panic!(
            "served without a good certificate: {}",
            support::show(&bytes)
        ),
        Err(e) => assert!(e.to_string().contains(alert), "{e}"),
    }
    s.still_serves();
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    assert_refused(|_| None, "fatal alert: CertificateRequired");
}

#[test]
fn mutual_tls_refuses_a_certificate_from_another_ca() {
    assert_refused(|pki| Some(&pki.stranger), "fatal alert: UnknownCA");
}

#[test]
fn mutual_tls_refuses_an_expired_client_certificate() {
    assert_refused(
        |pki| Some(&pki.expired_client),
        "fatal alert: CertificateExpired",
    );
}

// ---------------------------------------------------------------------------
// Bad input on the https port

/// A real ClientHello, as rustls' client sends it first.
fn client_hello(config: Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A handshake record (or several, each at most 16 KiB) around one
/// ClientHello with this version, these cipher suites and extensions.
fn hand_made_hello(version: u16, suites: &[u16], extensions: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    if !extensions.is_empty() {
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
    }
    let mut message = vec![1]; // client_hello
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    let record_version = version.min(0x0301);
    let mut out = Vec::new();
    for piece in message.chunks(16 * 1024) {
        out.push(22);
        out.extend_from_slice(&record_version.to_be_bytes());
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
    [
        &kind.to_be_bytes()[..],
        &(data.len() as u16).to_be_bytes(),
        data,
    ]
    .concat()
}

/// Writes `bytes` to the https port (then half-closes, if asked) and says
/// what came back.
fn send_to_tls_port(s: &TlsServer, bytes: &[u8], half_close: bool) -> Answer {
    let stream = s.raw_tls_port();
    let _ = (&stream).write_all(bytes);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    answer(&stream, CLOSE_WAIT)
}

#[test]
fn plain_http_on_the_https_port_gets_400_and_close() {
    let s = TlsServer::files(|_| {});
    let reply = exchange(
        s.tls_addr(),
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        false,
        CLOSE_WAIT,
    );
    assert!(!reply.hung, "the connection stayed open");
    let responses = reply.responses().expect("an HTTP response");
    assert_eq!(responses.len(), 1);
    assert_eq!((responses[0].status, responses[0].close), (400, true));
    assert!(String::from_utf8_lossy(&responses[0].body).contains("HTTPS"));
    s.still_serves();
}

#[test]
fn garbage_on_the_https_port_is_closed() {
    let s = TlsServer::files(|_| {});
    let mut x = 0x2545_f491_u32;
    let mut garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    garbage[0] = 0x8f; // not a letter: not taken for plain HTTP
    let got = send_to_tls_port(&s, &garbage, false);
    assert!(
        matches!(got, Answer::Alert(2, _) | Answer::Closed),
        "{got:?}"
    );
    s.still_serves();
}

#[test]
fn a_truncated_client_hello_then_eof_is_closed() {
    let s = TlsServer::files(|_| {});
    let hello = client_hello(s.normal.clone());
    let got = send_to_tls_port(&s, &hello[..hello.len() / 2], true);
    assert!(matches!(got, Answer::Closed | Answer::Alert(..)), "{got:?}");
    s.still_serves();
}

#[test]
fn ssl3_and_tls10_only_client_hellos_get_a_fatal_alert_and_close() {
    let s = TlsServer::files(|_| {});
    // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA, TLS_RSA_WITH_3DES_EDE_CBC_SHA
    let suites = [0x002f, 0x0035, 0x000a];
    // rustls refuses both as a handshake failure: fatal (2),
    // handshake_failure (40); then the server closes.
    for version in [0x0300, 0x0301] {
        let got = send_to_tls_port(&s, &hand_made_hello(version, &suites, &[]), false);
        assert_eq!(got, Answer::Alert(2, 40), "version {version:#06x}");
    }
    s.still_serves();
}

#[test]
fn a_client_hello_with_16_kib_of_extensions_neither_hangs_nor_crashes() {
    let s = TlsServer::start("", "timeouts: { handshake: '1 secs' }", |_| {}, |_| {});
    let mut extensions = Vec::new();
    extensions.extend(extension(43, &[2, 3, 4])); // supported_versions: TLS 1.3
    extensions.extend(extension(10, &[0, 2, 0, 0x1d])); // supported_groups: x25519
    extensions.extend(extension(13, &[0, 4, 4, 3, 8, 4])); // ECDSA P-256, RSA-PSS
    let mut share = vec![0, 0x24, 0, 0x1d, 0, 32, 9]; // key_share: the x25519 base point
    share.resize(share.len() + 31, 0);
    extensions.extend(extension(51, &share));
    for i in 0..256u16 {
        // Unknown, distinct extension types of 60 bytes each.
        extensions.extend(extension(0x7a00 + i, &[i as u8; 60]));
    }
    assert!(extensions.len() > 16 * 1024);
    let hello = hand_made_hello(0x0303, &[0x1301, 0x1302, 0x1303], &extensions);
    let got = send_to_tls_port(&s, &hello, false);
    match &got {
        // Served: a ServerHello (a handshake record), then the close at
        // timeouts.handshake, since this client goes no further.
        Answer::Bytes(bytes) => assert_eq!(bytes[..3], [22, 3, 3], "{got:?}"),
        Answer::Alert(2, _) | Answer::Closed => {}
        Answer::Alert(..) | Answer::Hung => panic!("{got:?}"),
    }
    s.still_serves();
}

#[test]
fn a_client_that_stops_mid_handshake_is_closed_at_the_handshake_timeout() {
    let s = TlsServer::start("", "timeouts: { handshake: '1 secs' }", |_| {}, |_| {});
    let hello = client_hello(s.normal.clone());
    let start = Instant::now();
    let stream = s.raw_tls_port();
    (&stream).write_all(&hello[..hello.len() / 2]).unwrap();
    let got = answer(&stream, CLOSE_WAIT);
    let took = start.elapsed();
    assert!(matches!(got, Answer::Closed | Answer::Alert(..)), "{got:?}");
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");
    // A client that finished its handshake is not bound by it.
    let mut c = s.https();
    c.send(format!("GET {CHECK_FILE} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(c.response().status, 200);
}

#[test]
fn many_half_open_handshakes_do_not_lock_out_a_later_client() {
    let s = TlsServer::start(
        "",
        "limits: { connections: 20 }, timeouts: { handshake: '1 secs' }",
        |_| {},
        |_| {},
    );
    let hello = client_hello(s.normal.clone());
    let half_open: Vec<TcpStream> = (0..50)
        .map(|_| {
            let stream = s.raw_tls_port();
            (&stream).write_all(&hello[..hello.len() / 2]).unwrap();
            stream
        })
        .collect();
    // Every one of them is closed: those past the limit when their 503 has
    // waited for a handshake that never comes (the closing deadline), the
    // others at timeouts.handshake.
    for (i, c) in half_open.iter().enumerate() {
        let got = answer(c, CLOSE_WAIT);
        assert!(
            matches!(got, Answer::Closed | Answer::Alert(1, 0)),
            "connection {i}: {got:?}"
        );
    }
    s.still_serves();
}

#[test]
fn a_tls_client_over_the_connection_limit_gets_a_503_over_tls() {
    let s = TlsServer::start("", "limits: { connections: 1 }", |_| {}, |_| {});
    // The one connection the limit allows, held open.
    let held = s.https();
    let bytes = try_get(s.tls_addr(), s.normal.clone(), CHECK_FILE)
        .expect("the handshake completes and the answer arrives before the close");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    drop(held);
}

#[test]
fn plain_http_clients_are_unaffected_by_tls_ones() {
    let s = TlsServer::files(|_| {});
    let mut plain = Client::connect(s.addr);
    let mut tls = s.https();
    plain.send(format!("GET {CHECK_FILE} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    tls.send(format!("GET {CHECK_FILE} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(plain.response().status, 200);
    assert_eq!(tls.response().status, 200);
}
