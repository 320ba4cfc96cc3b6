//! Timeouts and the connection limit, observed over real sockets. Timeouts are
//! configured short; the tests wait for the server's answer, never for a clock.

mod support;

use std::time::{Duration, Instant};
use support::{Client, TestServer};

/// A static server with one file and the given settings.
fn server(web: &str) -> TestServer {
    TestServer::start(
        web,
        |d| {
            d.write("a.txt", "A");
        },
        |_| {},
    )
}

#[test]
fn slowloris_head_gets_408_after_the_parse_timeout() {
    let s = server("timeouts: { parse: '300 ms', inactivity: '1 min', request: '1 min' }");
    let mut c = s.client();
    let start = Instant::now();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    let r = c.response();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "not before the timeout"
    );
    assert!(c.is_closed());
}

#[test]
fn stalled_body_gets_408_after_the_request_timeout() {
    let s = TestServer::start(
        "timeouts: { parse: '1 min', inactivity: '1 min', request: '300 ms' }, routes: [ { match: '/api/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.action("/api/", |_| wisp::Response::text("never"));
        },
    );
    let mut c = s.client();
    c.send(b"POST /api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(c.response().status, 408);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_inactivity() {
    let s = server("timeouts: { parse: '1 min', inactivity: '300 ms', request: '1 min' }");
    let mut c = s.client();
    // Read before the request, so surely before the server's idle timer starts
    // (at the earliest when it reads the request).
    let start = Instant::now();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "A");
    assert!(c.is_closed(), "idle connection is closed silently");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "not before the inactivity timeout"
    );
}

#[test]
fn connection_that_never_sends_is_closed_after_inactivity() {
    let s = server("timeouts: { parse: '1 min', inactivity: '200 ms', request: '1 min' }");
    let mut c = s.client();
    assert!(c.is_closed(), "closed without a response");
}

#[test]
fn over_the_connection_limit_clients_get_503_and_others_keep_working() {
    let s = server("limits: { connections: 3 }");
    let mut held: Vec<Client> = (0..3).map(|_| s.client()).collect();
    // Make sure the server has accepted the three (they answer).
    for c in held.iter_mut() {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().status, 200);
    }
    for _ in 0..5 {
        let mut extra = s.client();
        extra.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        extra.last_response(503, "a connection over the limit");
    }
    // The held connections still work.
    for c in held.iter_mut() {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().text(), "A");
    }
    // Closing one frees a slot.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get("/a.txt");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::yield_now();
    }
}
