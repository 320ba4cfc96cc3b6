//! Server-Sent Events over real sockets: the stream's head, events sent in
//! `on_open` and published from another thread, `Last-Event-ID`, refusals,
//! keepalive comments, the end of a stream, and backpressure with `on_drain`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Client, TestServer};
use wisp::{ConnId, Event, EventSource, EventStream, Hub, Request, Response};

/// Counts what the source saw.
#[derive(Default)]
struct Seen {
    opened: AtomicUsize,
    drained: AtomicUsize,
    closed: AtomicUsize,
}

struct News(Arc<Seen>);

impl EventSource for News {
    fn on_open(&mut self, req: &Request<'_>, stream: &mut EventStream<'_>) -> Result<(), Response> {
        if req.query_param("token").as_deref() == Some("bad") {
            return Err(Response::text("no").with_status(401));
        }
        self.0.opened.fetch_add(1, Ordering::Relaxed);
        stream.join("news").map_err(|_| Response::new(503))?;
        let since = req.header("last-event-id").unwrap_or("none").to_string();
        stream.send_event(&Event::new(format!("since {since}")).name("hello").id("1"));
        Ok(())
    }

    fn on_drain(&mut self, _stream: &mut EventStream<'_>) {
        self.0.drained.fetch_add(1, Ordering::Relaxed);
    }

    fn on_close(&mut self, _id: ConnId, _hub: &mut Hub) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

fn server(web: &str) -> (TestServer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let source = News(Arc::clone(&seen));
    let routes = "routes: [ { match: '/events/', handler: 'action' }, { match: '' } ]";
    let s = TestServer::start(
        &format!("{web} {routes}"),
        |_| {},
        move |srv| {
            srv.events("/events/news", source);
        },
    );
    (s, seen)
}

/// Opens a stream and reads its head: 200 and the event-stream headers.
fn open(s: &TestServer, extra: &str) -> Client {
    let mut c = s.client();
    c.send(
        format!("GET /events/news HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n")
            .as_bytes(),
    );
    let head = c.read_head();
    assert_eq!(head.resp.status, 200);
    assert_eq!(head.resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.resp.header("cache-control"), Some("no-cache"));
    assert_eq!(head.resp.header("content-length"), None);
    c
}

/// Reads one event (up to its blank line) as its lines.
fn event(c: &mut Client) -> Vec<String> {
    loop {
        if let Some(end) = support::find(c.buffered(), b"\n\n") {
            let block = c.read_bytes(end + 2);
            let text = String::from_utf8(block).unwrap();
            return text.trim_end().lines().map(str::to_string).collect();
        }
        assert!(c.read_more(), "the stream ended inside an event");
    }
}

/// Polls `done` for at most 10 s (the server works on its own thread).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn a_stream_opens_gets_its_first_event_then_what_is_published() {
    let (s, seen) = server("");
    let mut c = open(&s, "");
    assert_eq!(event(&mut c), ["event: hello", "id: 1", "data: since none"]);
    assert!(s.handle.publish("news", "line one\nline two"));
    assert_eq!(event(&mut c), ["data: line one", "data: line two"]);
    let stats = s.handle.stats().unwrap();
    assert_eq!(
        (stats.events_open, stats.events_total, stats.websockets_open),
        (1, 1, 0)
    );
    // A reconnecting EventSource says where it left off.
    let mut again = open(&s, "Last-Event-ID: 41\r\n");
    assert_eq!(
        event(&mut again),
        ["event: hello", "id: 1", "data: since 41"]
    );
    assert_eq!(seen.opened.load(Ordering::Relaxed), 2);
    // The client goes: the stream leaves the hub and its source hears of it.
    drop(c);
    drop(again);
    eventually("both streams closed", || {
        seen.closed.load(Ordering::Relaxed) == 2
    });
    assert_eq!(s.handle.stats().unwrap().events_open, 0);
    // The server still serves.
    assert_eq!(s.get("/events/nothing").status, 404);
}

#[test]
fn a_refused_or_non_get_stream_is_an_ordinary_answer() {
    let (s, seen) = server("");
    let mut c = s.client();
    c.send(b"GET /events/news?token=bad HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (401, "no"));
    // The connection goes on as HTTP.
    c.send(b"POST /events/news HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(seen.opened.load(Ordering::Relaxed), 0);
    assert_eq!(s.handle.stats().unwrap().events_open, 0);
}

#[test]
fn an_idle_stream_gets_keepalive_comments() {
    let (s, _seen) = server("timeouts: { keepalive: '200 ms' },");
    let mut c = open(&s, "");
    event(&mut c);
    // Nothing is published: the next thing on the stream is a comment.
    assert_eq!(event(&mut c), [": keepalive"]);
    assert_eq!(event(&mut c), [": keepalive"]);
}

#[test]
fn a_stream_that_is_not_read_drops_what_does_not_fit_then_drains() {
    let (s, seen) = server("webSockets: { maxBackpressure: '64K' },");
    let mut c = open(&s, "");
    event(&mut c);
    // 4 MiB of events for a client that reads nothing for now.
    let data = "x".repeat(8 * 1024);
    for i in 0..512 {
        assert!(s.handle.publish("news", format!("{i:04} {data}")));
    }
    // The handle's commands run in order: once `stats` answers, every
    // publish was delivered or dropped.
    let dropped = s.handle.stats().unwrap().limits.backpressure;
    assert!(
        dropped > 0,
        "a client that does not read had every event queued"
    );
    // Now read: the events that were kept arrive whole and in order.
    let mut last = None;
    for _ in 0..512 - dropped {
        let lines = loop {
            let lines = event(&mut c);
            if lines != [": keepalive"] {
                break lines;
            }
        };
        assert_eq!(lines.len(), 1, "one data line: {lines:?}");
        let n: usize = lines[0]["data: ".len().."data: ".len() + 4]
            .parse()
            .unwrap();
        assert!(lines[0].ends_with(&data), "event {n} is whole");
        assert!(last.is_none_or(|l| n > l), "event {n} after {last:?}");
        last = Some(n);
    }
    // With room again, the source was told it may resume.
    eventually("on_drain", || seen.drained.load(Ordering::Relaxed) > 0);
    assert_eq!(s.handle.stats().unwrap().limits.backpressure, dropped);
}
