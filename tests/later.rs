//! Actions that answer later (`Response::later`): whole from another thread,
//! streamed in pieces (chunked, or to the connection's end for HTTP/1.0),
//! the next pipelined request held until then, and 503 when no answer comes
//! within `timeouts.request`.

mod support;

use std::sync::mpsc;

use support::TestServer;
use wisp::{ConnId, Response};

/// `/api/later/...` answers later; the id of each waiting request goes to the test.
fn server(web: &str) -> (TestServer, mpsc::Receiver<ConnId>) {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(
        &format!("{web} routes: [ {{ match: '/api/', handler: 'action' }} ]"),
        |_| {},
        move |srv| {
            srv.action("/api/later/", move |req| {
                let _ = tx.send(req.id());
                Response::later()
            });
            srv.action("/api/now", |_| Response::text("now"));
        },
    );
    (s, rx)
}

#[test]
fn an_answer_from_another_thread_and_the_next_request_waits_for_it() {
    let (s, ids) = server("");
    let mut c = s.client();
    // Pipelined: the second must not be answered before the first.
    c.send(b"GET /api/later/a HTTP/1.1\r\nHost: t\r\n\r\nGET /api/now HTTP/1.1\r\nHost: t\r\n\r\n");
    let id = ids.recv().unwrap();
    assert!(c.buffered().is_empty());
    assert!(s
        .handle
        .respond(id, Response::text("later").with_header("X-Late", "1")));
    let r = c.response();
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-late")),
        (200, "later", Some("1"))
    );
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "now"));
    // A second answer for the same request goes nowhere.
    assert!(s.handle.respond(id, Response::text("again")));
    c.send(b"GET /api/now HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "now");
}

#[test]
fn a_streamed_answer_is_chunked_then_the_connection_goes_on() {
    let (s, ids) = server("");
    let mut c = s.client();
    c.send(b"GET /api/later/stream HTTP/1.1\r\nHost: t\r\n\r\n");
    let id = ids.recv().unwrap();
    s.handle.respond_stream(
        id,
        Response::new(200).with_header("Content-Type", "text/plain"),
    );
    let head = c.read_head();
    assert_eq!(head.resp.status, 200);
    assert_eq!(head.resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(head.resp.header("content-length"), None);
    for piece in ["one ", "", "two ", "three"] {
        s.handle.respond_piece(id, piece);
    }
    s.handle.respond_end(id);
    let body =
        String::from_utf8(c.read_bytes(b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n".len()))
            .unwrap();
    assert_eq!(body, "4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n");
    c.send(b"GET /api/now HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "now");
}

#[test]
fn an_http10_stream_ends_with_the_connection_and_head_gets_no_body() {
    let (s, ids) = server("");
    let mut c = s.client();
    c.send(b"GET /api/later/old HTTP/1.0\r\n\r\n");
    let id = ids.recv().unwrap();
    s.handle.respond_stream(id, Response::new(200));
    s.handle.respond_piece(id, "all of it");
    s.handle.respond_end(id);
    let all = String::from_utf8(c.read_to_close()).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200 OK\r\n") && all.ends_with("\r\n\r\nall of it"),
        "{all:?}"
    );
    assert!(
        !all.contains("chunked") && all.contains("Connection: close"),
        "{all:?}"
    );
    let mut c = s.client();
    c.send(b"HEAD /api/later/head HTTP/1.1\r\nHost: t\r\n\r\n");
    let id = ids.recv().unwrap();
    s.handle.respond(id, Response::text("body"));
    let r = c.head_response();
    assert_eq!((r.status, r.header("content-length")), (200, Some("4")));
    c.send(b"GET /api/now HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "now");
}

#[test]
fn no_answer_within_timeouts_request_is_503_and_close() {
    let (s, ids) = server("timeouts: { request: '300 ms' },");
    let mut c = s.client();
    c.send(b"GET /api/later/never HTTP/1.1\r\nHost: t\r\n\r\n");
    ids.recv().unwrap();
    c.last_response(503, "an unanswered later response");
}
