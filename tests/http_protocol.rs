//! HTTP/1.1 over real sockets: keep-alive, pipelining, framing, and every refusal status.

mod support;

use support::{Client, TestServer};
use wisp::Response;

fn server() -> TestServer {
    TestServer::start(
        "limits: { header: '2K', headers: 16, uri: '512', body: '1K', requests: 3 }, \
         routes: [ { match: '/api/', handler: 'action' }, \
                   { match: '/ro/', handler: 'action', methods: ['GET', 'HEAD'] }, \
                   { match: '', handler: 'file' } ]",
        |d| {
            d.write("a.txt", "A");
            d.write("b.txt", "BB");
        },
        |s| {
            s.action("/api/echo", |req| {
                Response::text(format!(
                    "{} {} {} {}",
                    req.method(),
                    req.path(),
                    req.query(),
                    String::from_utf8_lossy(req.body())
                ))
            });
            s.action("/ro/", |_| Response::text("ro"));
        },
    )
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = server();
    let mut c = s.client();
    for path in ["/a.txt", "/b.txt"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = server();
    let mut c = s.client();
    c.send(
        b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz",
    );
    assert_eq!(c.response().text(), "BB");
    assert_eq!(c.response().status, 404);
    let r = c.response();
    assert_eq!(r.text(), "POST /api/echo  xyz");
    assert_eq!(r.header("connection"), Some("close"), "limits.requests = 3");
    assert!(c.is_closed());
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let s = server();
    let mut c = s.client();
    c.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("close"));
    assert!(c.is_closed());
    let mut c = s.client();
    c.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    // A 1.0 client keeps the connection only when the answer says so.
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("keep-alive"))
    );
    c.send(b"GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(
        (r.status, r.header("connection")),
        (404, Some("keep-alive"))
    );
    c.send(b"GET /b.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.text(), "BB");
    assert_eq!(r.header("connection"), Some("close"), "limits.requests = 3");
}

#[test]
fn a_later_http_1_minor_version_is_served_as_1_1() {
    let s = server();
    let mut c = s.client();
    for version in ["1.2", "1.9"] {
        c.send(format!("GET /a.txt HTTP/{version}\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, "A"), "HTTP/{version}");
    }
}

#[test]
fn connection_close_is_honoured() {
    let s = server();
    let mut c = s.client();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.is_closed(), "the request after close is not answered");
}

#[test]
fn bodies_by_length_and_chunked_reach_the_handler() {
    let s = server();
    let r = s.raw(b"POST /api/echo?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.text(), "POST /api/echo q=1 hello");
    let r = s.raw(b"PUT /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
    assert_eq!(r.text(), "PUT /api/echo  abcde");
}

#[test]
fn body_split_across_writes_is_reassembled() {
    let s = server();
    let mut c = s.client();
    c.send(b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    c.stream.set_nodelay(true).unwrap();
    std::thread::yield_now();
    c.send(b"56789");
    assert_eq!(c.response().text(), "POST /api/echo  0123456789");
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let s = server();
    let mut c = s.client();
    c.send(
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.response();
    assert_eq!(interim.status, 100);
    c.send(b"ok");
    assert_eq!(c.response().text(), "POST /api/echo  ok");
}

/// Sends `raw`, expects `status`, and expects the connection to be closed after it.
fn refused(s: &TestServer, raw: &[u8], status: u16) {
    let mut c = s.client();
    c.send(raw);
    let what = String::from_utf8_lossy(&raw[..raw.len().min(80)]);
    c.last_response(status, &format!("{what:?}"));
}

#[test]
fn malformed_requests_are_400_and_close() {
    let s = server();
    refused(&s, b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400);
    refused(&s, b"GET\x01 / HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    refused(&s, b"GET / HTTP/1.1\r\n\r\n", 400); // no Host
    refused(&s, b"GET nope HTTP/1.1\r\nHost: t\r\n\r\n", 400);
}

#[test]
fn ambiguous_or_bad_lengths_are_400() {
    let s = server();
    refused(&s, b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    refused(
        &s,
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        400,
    );
    refused(
        &s,
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
    refused(
        &s,
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    );
}

#[test]
fn oversized_heads_are_431_and_long_targets_414() {
    let s = server();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "x".repeat(4000)
    );
    refused(&s, big.as_bytes(), 431);
    let many: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
    refused(
        &s,
        format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
        431,
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(600));
    refused(&s, long.as_bytes(), 414);
}

#[test]
fn body_over_the_limit_is_413_before_it_is_read() {
    let s = server();
    // Declared length decides; the body is never sent.
    refused(
        &s,
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
        413,
    );
    // Chunked bodies are cut off as soon as a chunk would cross the limit.
    let chunk = format!(
        "POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}",
        "z".repeat(100)
    );
    refused(&s, chunk.as_bytes(), 413);
}

#[test]
fn oversized_body_that_is_sent_anyway_still_gets_its_413() {
    // The client keeps sending after the 413; lingering close must not reset the answer away.
    let s = server();
    let mut c = s.client();
    let mut req = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'q', 200_000));
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stream.write_all(&req);
        })
    };
    let r = c.response();
    assert_eq!(r.status, 413);
    writer.join().unwrap();
}

#[test]
fn wrong_method_is_405_with_allow_and_unknown_method_501() {
    let s = server();
    let r = s.raw(b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = s.raw(b"DELETE /ro/x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    refused(&s, b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501);
}

#[test]
fn other_refusals_have_their_statuses() {
    let s = server();
    refused(&s, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    refused(&s, b"GET / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n", 417);
    refused(
        &s,
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    );
}

#[test]
fn a_refused_request_does_not_disturb_other_clients() {
    let s = server();
    let mut good = s.client();
    good.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(good.response().text(), "A");
    refused(
        &s,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
        400,
    );
    good.send(b"GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(good.response().text(), "BB");
}

#[test]
fn half_closed_client_still_gets_its_answers() {
    let s = server();
    let mut c = s.client();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    c.shutdown_write();
    assert_eq!(c.response().text(), "A");
    assert_eq!(c.response().text(), "BB");
    assert!(c.is_closed());
}

#[test]
fn redirects_and_absolute_form_targets() {
    let s = TestServer::start(
        "redirect: [ { status: 308, from: '/old', to: '/a.txt' } ], \
         routes: [ { match: '/gone', redirect: { status: 301, to: 'https://example.com/' } }, { match: '' } ]",
        |d| {
            d.write("a.txt", "A");
        },
        |_| {},
    );
    let r = s.get("/old");
    assert_eq!((r.status, r.header("location")), (308, Some("/a.txt")));
    let r = s.get("/gone");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("https://example.com/"))
    );
    let r = s.raw(b"GET http://t/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.text(), "A");
}

#[test]
fn fresh_connection_per_request_many_times() {
    let s = server();
    for _ in 0..200 {
        let mut c = Client::connect(s.addr);
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(c.response().text(), "A");
    }
}
