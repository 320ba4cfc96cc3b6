//! Action handlers over real sockets: what they see, what they return, and what a panic costs.

mod support;

use support::TestServer;
use wisp::Response;

fn server() -> TestServer {
    TestServer::start(
        "routes: [ { match: '/api/', handler: 'action' }, { match: '' } ]",
        |d| {
            d.write("a.txt", "A");
        },
        |s| {
            s.action("/api/", |req| {
                Response::text(format!("general {}", req.path()))
            });
            s.action("/api/deep/", |_| Response::text("deeper"));
            s.action("/api/inspect", |req| {
                Response::json(&serde_json::json!({
                    "method": req.method(),
                    "path": req.path(),
                    "query": req.query(),
                    "name": req.query_param("name"),
                    "agent": req.header("user-agent"),
                    "headers": req.headers().count(),
                    "body": String::from_utf8_lossy(req.body()),
                    "loopback": req.peer_addr().ip().is_loopback(),
                }))
            });
            s.action("/api/status418", |_| {
                Response::text("short and stout")
                    .with_status(418)
                    .with_header("X-Pot", "tea")
                    .with_header("X-Evil", "a\r\nSet-Cookie: pwned=1")
            });
            s.action("/api/panic", |_| panic!("handler bug"));
        },
    )
}

#[test]
fn handler_sees_method_path_query_headers_body_and_peer() {
    let s = server();
    let r = s.raw(b"POST /api/inspect?name=J%C3%B6rg&x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: probe\r\nContent-Length: 4\r\n\r\ndata");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/api/inspect");
    assert_eq!(v["query"], "name=J%C3%B6rg&x=1");
    assert_eq!(v["name"], "J\u{f6}rg");
    assert_eq!(v["agent"], "probe");
    assert_eq!(v["headers"], 3);
    assert_eq!(v["body"], "data");
    assert_eq!(v["loopback"], true);
}

#[test]
fn longest_prefix_wins() {
    let s = server();
    assert_eq!(s.get("/api/deep/x").text(), "deeper");
    assert_eq!(s.get("/api/other").text(), "general /api/other");
}

#[test]
fn status_and_safe_headers_pass_through_injection_does_not() {
    let s = server();
    let r = s.get("/api/status418");
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-pot"), Some("tea"));
    assert_eq!(r.header("x-evil"), None);
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(r.text(), "short and stout");
}

#[test]
fn head_on_an_action_has_no_body() {
    let s = server();
    let mut c = s.client();
    c.send(b"HEAD /api/status418 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_response();
    assert_eq!(r.header("content-length"), Some("15"));
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "A");
}

#[test]
fn a_panicking_handler_costs_only_its_request() {
    let s = server();
    let mut other = s.client();
    other.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(other.response().text(), "A");
    let mut c = s.client();
    c.send(b"GET /api/panic HTTP/1.1\r\nHost: t\r\n\r\n");
    c.last_response(500, "a panicking handler");
    other.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(other.response().text(), "A");
    assert_eq!(s.get("/api/other").status, 200);
}

#[test]
fn action_route_without_a_handler_is_404() {
    let s = TestServer::start(
        "routes: [ { match: '/api/', handler: 'action' } ]",
        |_| {},
        |_| {},
    );
    assert_eq!(s.get("/api/none").status, 404);
    assert_eq!(s.get("/elsewhere").status, 404);
}
