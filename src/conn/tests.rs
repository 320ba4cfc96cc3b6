//! A connection driven through its phases without a socket: each test
//! pushes what a client sends into the in-memory transport, calls `ready`
//! (or `timeout`) as the reactor would, and reads what the server wrote.
//! The clock is the turn's: deadlines are reached by moving `turn.now`.

use super::COUNTED;
use std::io;
use std::time::{Duration, Instant};

use super::{Conn, Ctx, Next};
use crate::app::App;
use crate::deadlines::At;
use crate::testing::{
    self, close_frame, frames, masked, response, responses, upgrade_request, upgraded, Frame, Log,
    Reply, TempDir,
};
use crate::transport::memory::Memory;
use crate::transport::Transport;
use crate::turn::Turn;
use crate::ws::frame::write_frame;
use crate::ws::opcode::OpCode;

/// One connection, its app and its turn.
struct Bench {
    app: App,
    turn: Turn,
    conn: Conn,
    read_buf: Vec<u8>,
    log: Log,
    _docs: TempDir,
}

impl Bench {
    fn new() -> Bench {
        Bench::with(|_| {}, "")
    }

    /// A bench whose documents `fill` writes, with `extra` in the config.
    fn with(fill: impl FnOnce(&TempDir), extra: &str) -> Bench {
        let docs = TempDir::new("conn");
        docs.write("hello.txt", b"hello, file\n");
        fill(&docs);
        let (app, log) = testing::app(testing::config(&docs.path, extra));
        let now = Instant::now();
        let mut bench = Bench {
            app,
            turn: Turn::new(now),
            conn: Conn::new(
                Transport::Memory(Memory::default()),
                testing::peer(),
                1,
                now,
            ),
            read_buf: Vec::with_capacity(64 * 1024),
            log,
            _docs: docs,
        };
        bench.at(now);
        bench
    }

    /// Moves the clock, as the reactor does at the start of a turn.
    fn at(&mut self, now: Instant) {
        let inactivity = self.app.config.timeouts.inactivity;
        self.turn.set_now(now);
        self.turn.idle_at = inactivity.map(|d| At::new(now + d));
    }

    fn now(&self) -> Instant {
        self.turn.now
    }

    fn peer(&mut self) -> &mut Memory {
        self.conn.transport.memory()
    }

    /// A readiness event.
    fn ready(&mut self, readable: bool, read_closed: bool) -> io::Result<Next> {
        let mut ctx = Ctx {
            app: &mut self.app,
            turn: &mut self.turn,
            key: 0,
        };
        self.conn
            .ready(&mut ctx, &mut self.read_buf, readable, read_closed)
    }

    /// The client sends `bytes`; the connection reads them.
    fn send(&mut self, bytes: &[u8]) -> Next {
        self.peer().push(bytes);
        self.ready(true, false).expect("no I/O error")
    }

    /// The client closes its side.
    fn end(&mut self) -> Next {
        self.peer().end();
        self.ready(true, true).expect("no I/O error")
    }

    /// The socket has room for `n` more bytes: a writable event.
    fn drain(&mut self, n: usize) -> Next {
        self.peer().room = n;
        self.ready(false, false).expect("no I/O error")
    }

    /// A deadline passed.
    fn timeout(&mut self) -> Next {
        let mut ctx = Ctx {
            app: &mut self.app,
            turn: &mut self.turn,
            key: 0,
        };
        self.conn
            .timeout(&mut ctx, &mut self.read_buf)
            .expect("no I/O error")
    }

    fn due(&self) -> Option<Instant> {
        self.conn.due(&self.app.config.timeouts)
    }

    /// Takes what the server wrote.
    fn sent(&mut self) -> Vec<u8> {
        self.peer().take_sent()
    }

    /// The one response the server wrote since the last look.
    fn reply(&mut self) -> Reply {
        let mut replies = responses(&self.sent());
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.remove(0)
    }

    /// Upgrades the connection on `/ws/echo`; checks the 101.
    fn upgrade(&mut self) {
        assert_ne!(self.send(&upgrade_request("/ws/echo")), Next::Close);
        let (reply, frames) = upgraded(&self.sent());
        assert_eq!(reply.status, 101);
        assert!(frames.is_empty());
    }

    /// Replaces the connection with a new one, upgraded.
    fn upgrade_on_a_fresh_connection(&mut self) {
        let transport = Transport::Memory(Memory::default());
        self.conn = Conn::new(transport, testing::peer(), 2, self.now());
        self.upgrade();
    }

    fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")
}

#[test]
fn a_get_is_answered_and_the_connection_kept() {
    let mut b = Bench::new();
    assert_eq!(b.send(get("/api/x?q=1").as_bytes()), Next::Keep);
    let reply = b.reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body_text(), "GET /api/x ");
    assert!(!reply.closes());
    assert!(!b.peer().shut);
}

#[test]
fn pipelined_requests_in_one_chunk_are_answered_in_order() {
    let mut b = Bench::new();
    let chunk = format!("{}{}{}", get("/api/a"), get("/hello.txt"), get("/api/b"));
    assert_eq!(b.send(chunk.as_bytes()), Next::Keep);
    let replies = responses(&b.sent());
    let bodies: Vec<&str> = replies.iter().map(|r| r.body_text()).collect();
    assert_eq!(bodies, ["GET /api/a ", "hello, file\n", "GET /api/b "]);
    assert!(replies.iter().all(|r| r.status == 200 && !r.closes()));
}

#[test]
fn a_head_split_byte_by_byte_is_answered_once_whole() {
    let mut b = Bench::new();
    let request = get("/api/slow");
    let (last, bytes) = request.as_bytes().split_last().unwrap();
    for byte in bytes {
        assert_eq!(b.send(&[*byte]), Next::Keep);
        assert!(b.sent().is_empty(), "answered before the head was whole");
    }
    b.send(&[*last]);
    let reply = b.reply();
    assert_eq!(reply.body_text(), "GET /api/slow ");
}

/// A body by Content-Length and a chunked one, each in three reads that
/// cut through the framing: answered once whole, and the connection goes on.
#[test]
fn a_body_arriving_in_pieces_is_answered_once_whole() {
    let cases: [(&str, [&[u8]; 3]); 2] = [
        ("Content-Length: 11", [b"hel", b"lo", b" world"]),
        (
            "Transfer-Encoding: chunked",
            [b"5\r\nhel", b"lo\r\n6\r\n world\r\n", b"0\r\n\r\n"],
        ),
    ];
    for (framing, pieces) in cases {
        let mut b = Bench::new();
        let head = format!("POST /api/p HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n");
        b.send(&[head.as_bytes(), pieces[0]].concat());
        b.send(pieces[1]);
        assert!(
            b.sent().is_empty(),
            "{framing}: answered before the body was whole"
        );
        b.send(pieces[2]);
        assert_eq!(
            b.reply().body_text(),
            "POST /api/p hello world",
            "{framing}"
        );
        b.send(get("/api/next").as_bytes());
        assert_eq!(b.reply().body_text(), "GET /api/next ", "{framing}");
    }
}

#[test]
fn a_malformed_request_gets_400_then_lingers_until_the_peer_closes() {
    let mut b = Bench::new();
    let next = b.send(b"GET / HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\n");
    assert_eq!(next, Next::Keep, "lingering, not closed at once");
    let reply = b.reply();
    assert_eq!(reply.status, 400);
    assert!(reply.closes());
    assert!(b.peer().shut, "our side is shut once the answer is out");
    // What the client still sends is read and dropped.
    assert_eq!(b.send(get("/api/ignored").as_bytes()), Next::Keep);
    assert!(b.sent().is_empty());
    assert_eq!(b.end(), Next::Close);
}

#[test]
fn a_large_file_is_copied_in_order_when_sendfile_is_refused() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut b = Bench::with(|docs| docs.write("big.bin", &data), "");
    b.peer().room = 1000;
    let chunk = format!("{}{}", get("/big.bin"), get("/api/after"));
    assert_eq!(b.send(chunk.as_bytes()), Next::Keep);
    let mut turns = 0;
    while b.peer().sent.len() < data.len() + 200 && turns < 1000 {
        b.drain(30_000);
        turns += 1;
    }
    b.drain(usize::MAX);
    let out = b.sent();
    let (file, used) = response(&out, false);
    assert_eq!(file.status, 200);
    assert!(file.body == data, "the file body differs");
    let after = responses(&out[used..]);
    assert_eq!(after.len(), 1, "the pipelined request waited for the file");
    assert_eq!(after[0].body_text(), "GET /api/after ");
}

#[test]
fn a_slow_socket_gets_every_response_in_order() {
    let mut b = Bench::new();
    b.peer().room = 7;
    let chunk: String = (0..5).map(|i| get(&format!("/api/{i}"))).collect();
    assert_eq!(b.send(chunk.as_bytes()), Next::Keep);
    assert_eq!(b.peer().sent.len(), 7);
    // More requests arrive while the answers are queued.
    b.send(get("/api/5").as_bytes());
    for _ in 0..200 {
        b.drain(7);
    }
    let replies = responses(&b.sent());
    let bodies: Vec<String> = replies.iter().map(|r| r.body_text().to_string()).collect();
    let want: Vec<String> = (0..6).map(|i| format!("GET /api/{i} ")).collect();
    assert_eq!(bodies, want);
    assert_eq!(b.conn.backlog(), 0);
}

#[test]
fn an_upgrade_and_a_frame_in_one_chunk_are_answered_together() {
    let mut b = Bench::new();
    let mut chunk = upgrade_request("/ws/echo");
    chunk.extend(masked(true, OpCode::Text, b"hi"));
    assert_ne!(b.send(&chunk), Next::Close);
    let (reply, frames) = upgraded(&b.sent());
    assert_eq!(reply.status, 101);
    assert_eq!(
        reply.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(frames, [Frame::text("hi")]);
    assert_eq!(b.log(), ["open", "text hi"]);
}

#[test]
fn frames_after_the_upgrade_are_echoed_unmasked() {
    let mut b = Bench::new();
    b.upgrade();
    assert_ne!(b.send(&masked(true, OpCode::Text, b"one")), Next::Close);
    assert_eq!(frames(&b.sent()), [Frame::text("one")]);
    // A frame split over two reads, then two frames in one.
    let frame = masked(true, OpCode::Text, b"split");
    b.send(&frame[..3]);
    assert!(b.sent().is_empty());
    b.send(&frame[3..]);
    let mut two = masked(true, OpCode::Text, b"a");
    two.extend(masked(true, OpCode::Text, b"b"));
    b.send(&two);
    assert_eq!(
        frames(&b.sent()),
        [Frame::text("split"), Frame::text("a"), Frame::text("b")]
    );
}

#[test]
fn a_ping_is_answered_with_a_pong() {
    let mut b = Bench::new();
    b.upgrade();
    b.send(&masked(true, OpCode::Ping, b"p1"));
    let pong = Frame {
        fin: true,
        opcode: OpCode::Pong,
        payload: b"p1".to_vec(),
    };
    assert_eq!(frames(&b.sent()), [pong]);
}

#[test]
fn a_close_frame_is_echoed_and_the_connection_closes() {
    let mut b = Bench::new();
    b.upgrade();
    assert_eq!(b.send(&close_frame(1000, "done")), Next::Keep);
    let out = frames(&b.sent());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].close_code(), Some(1000));
    assert!(b.peer().shut, "the server closes the TCP connection first");
    assert_eq!(b.end(), Next::Close);
    assert_eq!(b.log(), ["open", "close 1000 done"]);
    // Releasing the finished connection reports nothing more.
    b.conn.release(&mut b.app, &mut b.turn, 0);
    assert_eq!(b.log().len(), 2);
}

#[test]
fn an_unmasked_frame_closes_with_1002() {
    let mut b = Bench::new();
    b.upgrade();
    let mut unmasked = Vec::new();
    write_frame(&mut unmasked, true, OpCode::Text, b"bare");
    b.send(&unmasked);
    let out = frames(&b.sent());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].close_code(), Some(1002));
    let log = b.log();
    assert_eq!(log[..2], ["open", "error 1002"]);
    assert!(log[2].starts_with("close 1002"), "{log:?}");
    assert_eq!(b.end(), Next::Close);
}

#[test]
fn a_slow_websocket_reader_gets_every_frame_in_order() {
    let mut b = Bench::new();
    b.upgrade();
    b.peer().room = 3;
    for i in 0..10 {
        b.send(&masked(true, OpCode::Text, format!("m{i}").as_bytes()));
    }
    assert!(b.conn.backlog() > 0, "output queued behind the slow socket");
    for _ in 0..100 {
        b.drain(3);
    }
    let want: Vec<Frame> = (0..10).map(|i| Frame::text(&format!("m{i}"))).collect();
    assert_eq!(frames(&b.sent()), want);
    assert_eq!(b.conn.backlog(), 0);
}

#[test]
fn a_slow_head_gets_408_and_the_connection_then_closes() {
    let mut b = Bench::new();
    let t0 = b.now();
    let parse = b.app.config.timeouts.parse.expect("a parse timeout");
    assert_eq!(
        b.due(),
        b.app.config.timeouts.inactivity.map(|d| t0 + d),
        "an idle connection waits for inactivity"
    );
    b.send(b"GET /api/x HTTP/1.1\r\n");
    assert_eq!(
        b.due(),
        Some(t0 + parse),
        "a started head has `parse` to finish"
    );
    b.at(t0 + parse);
    assert_eq!(b.timeout(), Next::Keep);
    let reply = b.reply();
    assert_eq!(reply.status, 408);
    assert!(reply.closes());
    // Lingering for a while, then dropped.
    let linger = b.due().expect("a lingering deadline");
    assert!(linger > t0 + parse);
    b.at(linger);
    assert_eq!(b.timeout(), Next::Close);
}

#[test]
fn an_idle_websocket_is_pinged_then_closed_with_1001() {
    let mut b = Bench::with(
        |_| {},
        "webSockets: { ping: '10 secs' }, timeouts: { inactivity: '30 secs' }",
    );
    let t0 = b.now();
    b.upgrade();
    assert_eq!(b.due(), Some(t0 + Duration::from_secs(10)));
    b.at(t0 + Duration::from_secs(10));
    assert_ne!(b.timeout(), Next::Close);
    let ping = frames(&b.sent());
    assert_eq!(ping.len(), 1);
    assert_eq!(ping[0].opcode, OpCode::Ping);
    b.at(t0 + Duration::from_secs(30));
    b.timeout();
    let close = frames(&b.sent());
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].close_code(), Some(1001));
    assert!(b.log().last().unwrap().starts_with("close 1001"));
}

#[test]
fn reads_larger_than_the_read_buffer_are_taken_whole() {
    let mut b = Bench::new();
    let body = vec![b'b'; 90_000];
    let head = format!(
        "POST /api/big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    b.send(&[head.as_bytes(), &body].concat());
    let reply = b.reply();
    assert_eq!(reply.body.len(), "POST /api/big ".len() + body.len());
    b.upgrade_on_a_fresh_connection();
    let message = vec![b'w'; 100_000];
    b.send(&masked(true, OpCode::Binary, &message));
    let out = frames(&b.sent());
    assert_eq!(out.len(), 1);
    assert!(out[0].payload == message, "the echo differs");
}

#[test]
fn a_websocket_whose_peer_does_not_read_stops_reading_and_loses_nothing() {
    let mut b = Bench::with(|_| {}, "webSockets: { maxBackpressure: '1K' }");
    b.upgrade();
    b.peer().room = 0;
    for _ in 0..5 {
        b.send(&masked(true, OpCode::Text, b"big:600"));
    }
    let read = b.log().iter().filter(|l| l.starts_with("text")).count();
    assert_eq!(read, 1, "reading stops once half the limit is queued");
    assert_eq!(b.drain(usize::MAX), Next::Keep);
    let out = frames(&b.sent());
    assert_eq!(out.len(), 5, "every answer went out");
    assert!(out.iter().all(|f| f.payload.len() == 600));
    assert_eq!(b.log().len(), 6);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mut b = Bench::new();
    b.send(b"PUT /api/e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(b.reply().status, 100);
    b.send(b"ok");
    assert_eq!(b.reply().body_text(), "PUT /api/e ok");
}

#[test]
fn a_connection_over_the_limit_gets_503_and_closes() {
    let mut b = Bench::new();
    let mut ctx = Ctx {
        app: &mut b.app,
        turn: &mut b.turn,
        key: 1,
    };
    let transport = Transport::Memory(Memory::default());
    b.conn = Conn::turned_away(transport, testing::peer(), 2, &mut ctx);
    assert!(!b.conn.flag(COUNTED));
    assert_eq!(b.ready(false, false).unwrap(), Next::Keep);
    let reply = b.reply();
    assert_eq!(reply.status, 503);
    assert!(reply.closes());
    assert_eq!(b.end(), Next::Close);
}

#[test]
fn a_peer_that_ends_mid_request_is_closed_without_an_answer() {
    let mut b = Bench::new();
    b.send(b"GET /api/x HTTP/1.1\r\nHo");
    assert_eq!(b.end(), Next::Close);
    assert!(b.sent().is_empty());
}

#[test]
fn a_websocket_dropped_without_a_close_reports_1006() {
    let mut b = Bench::new();
    b.upgrade();
    assert_eq!(b.end(), Next::Close);
    assert!(b.sent().is_empty());
    b.conn.release(&mut b.app, &mut b.turn, 0);
    assert_eq!(b.log(), ["open", "close 1006 "]);
    assert_eq!(b.app.hub.stats.websockets_open, 0);
}

/// A layout guard, not a speed test: every connection pays for its slab slot
/// and every idle WebSocket for its session, so growing either raises the
/// memory per idle WebSocket (issue 18, measured by `scripts/bench`'s idle
/// row). If a change needs more, measure that row and update these figures
/// and BENCHMARKS.md with it. The slot is counted with a plain build's
/// 16-byte transport: tests add a larger in-memory one.
#[test]
fn connection_and_session_stay_small() {
    use std::mem::size_of;
    let slot = size_of::<Conn>() - size_of::<Transport>() + 16;
    let session = size_of::<crate::session::Session>();
    assert!(slot <= 88, "the connection's slot is {slot} bytes");
    assert!(session <= 104, "the session is {session} bytes");
}
