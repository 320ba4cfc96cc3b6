//! The hardening features over real sockets: backpressure (dropped sends,
//! `on_drain`, `closeOnBackpressure`, connections that are not read while
//! their output is backed up), WebSocket rate limits, `connectionsPerIp`,
//! allowed `Origin`s, route authentication with bearer tokens and HS256 JSON
//! Web Tokens, and a graceful stop with a request in flight.
//!
//! Clients are raw bytes on a `TcpStream`. "Nothing else arrived" is shown by
//! a later message or close whose answer comes first. The tests that
//! watch a client's writes block poll a progress counter a bounded number of
//! times; `IO_TIMEOUT` is only a safety net.

mod support;

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::ws::{masked_frame, upgrade_request, Ws, BINARY, TEXT};
use support::{unread_by_server, Client, TempDir, TestServer, IO_TIMEOUT};
use wisp::{
    CloseCode, Handler, Message, Request, Response, SendStatus, Server, ServerHandle, Stats,
    Upgrade, WebSocket,
};

/// Every WebSocket test server routes `/ws/` to the registered handlers.
const WS_ROUTES: &str = "routes: [ { match: '/ws/', handler: 'action' } ]";

/// Starts a server and returns a `ServerHandle` to it too (for `stats()` and `stop()`).
fn start(
    web: &str,
    fill: impl FnOnce(&TempDir),
    setup: impl FnOnce(&mut Server) + Send + 'static,
) -> (TestServer, ServerHandle) {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(web, fill, move |srv| {
        setup(srv);
        tx.send(srv.handle()).unwrap();
    });
    let handle = rx.recv().expect("the setup ran");
    (server, handle)
}

/// The server's counters, read on its thread.
fn stats(handle: &ServerHandle) -> Stats {
    handle.stats().expect("the server is running")
}

// ---------------------------------------------------------------------------
// Handlers

/// Echoes every message and counts the echoes that were `Dropped`.
#[derive(Default)]
struct Echo {
    dropped: Arc<AtomicUsize>,
}

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        if ws.send(msg) == SendStatus::Dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A server with [`Echo`] on `/ws/echo` and the given keys before the routes;
/// also returns the count of dropped echoes.
fn echo_server(web: &str) -> (TestServer, ServerHandle, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let echo = Echo {
        dropped: Arc::clone(&dropped),
    };
    let (s, handle) = start(
        &format!("{web}, {WS_ROUTES}"),
        |_| {},
        move |srv| {
            srv.websocket("/ws/echo", echo);
        },
    );
    (s, handle, dropped)
}

/// The size of every message [`Flood`] sends.
const BIG: usize = 16 * 1024;

/// A 16 KiB binary message whose first four bytes are `i`.
fn big(i: u32) -> Vec<u8> {
    let mut data = vec![b'x'; BIG];
    data[..4].copy_from_slice(&i.to_be_bytes());
    data
}

/// Reads a message that must be `big(i)`.
fn expect_big(ws: &mut Ws, i: u32) {
    let f = ws.read_frame();
    assert_eq!((f.fin, f.opcode), (true, BINARY), "message {i}");
    assert_eq!(f.payload.len(), BIG, "message {i}");
    assert_eq!(
        u32::from_be_bytes(f.payload[..4].try_into().unwrap()),
        i,
        "messages arrive in order, none skipped"
    );
}

/// What [`Flood`] tells the test.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// `flood N` ran: the statuses of its sends, in order.
    Flood(Vec<SendStatus>),
    /// `on_drain` ran; the status of the message it sent.
    Drained(SendStatus),
    Closed(u16),
}

/// Sends big messages on command, to itself or to the connections that
/// opened with the query `slow` (they join the room `slow`):
///
/// - `flood N`: N × 16 KiB to this connection in one callback;
/// - `publish N`: N × 16 KiB to the room `slow`;
/// - `say TEXT`: TEXT to the room `slow`.
///
/// `on_drain` sends `drained`. The statuses, drains and closes are told to the test.
struct Flood {
    seen: Sender<Seen>,
}

impl Handler for Flood {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        if ws.query() == "slow" {
            ws.join("slow").unwrap();
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let (command, arg) = text.split_once(' ').unwrap_or((text, ""));
        match command {
            "flood" => {
                let n: u32 = arg.parse().unwrap();
                let statuses = (0..n).map(|i| ws.send_binary(&big(i))).collect();
                self.seen.send(Seen::Flood(statuses)).unwrap();
            }
            "publish" => {
                let n: u32 = arg.parse().unwrap();
                for i in 0..n {
                    ws.publish("slow", Message::Binary(&big(i)), None);
                }
            }
            "say" => {
                ws.publish("slow", Message::Text(arg), None);
            }
            _ => panic!("unknown command {text:?}"),
        }
    }

    fn on_drain(&mut self, ws: &mut WebSocket<'_, ()>) {
        let status = ws.send_text("drained");
        self.seen.send(Seen::Drained(status)).unwrap();
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, ()>, code: CloseCode, _reason: &str) {
        let _ = self.seen.send(Seen::Closed(code.as_u16()));
    }
}

/// A server with [`Flood`] on `/ws/flood` and `webSockets` set to `ws_keys`.
fn flood_server(ws_keys: &str) -> (TestServer, ServerHandle, Receiver<Seen>) {
    let (tx, seen) = mpsc::channel();
    let web = format!("webSockets: {{ {ws_keys} }}, {WS_ROUTES}");
    let (s, handle) = start(
        &web,
        |_| {},
        move |srv| {
            srv.websocket("/ws/flood", Flood { seen: tx });
        },
    );
    (s, handle, seen)
}

fn next_seen(seen: &Receiver<Seen>) -> Seen {
    seen.recv_timeout(IO_TIMEOUT).expect("the handler reported")
}

/// Reads reports up to the next `on_close`; returns what came before and the close code.
fn until_closed(seen: &Receiver<Seen>) -> (Vec<Seen>, u16) {
    let mut before = Vec::new();
    loop {
        match next_seen(seen) {
            Seen::Closed(code) => return (before, code),
            other => before.push(other),
        }
    }
}

/// How many of a flood's sends were queued; checks that every send after
/// the first `Dropped` was dropped too.
fn queued_then_dropped(statuses: &[SendStatus]) -> usize {
    let queued = statuses
        .iter()
        .take_while(|s| **s == SendStatus::Queued)
        .count();
    assert!(
        statuses[queued..].iter().all(|s| *s == SendStatus::Dropped),
        "once over the limit every send is dropped: {statuses:?}"
    );
    queued
}

// ---------------------------------------------------------------------------
// Backpressure: sends from the connection's own callbacks

#[test]
fn flood_over_max_backpressure_is_dropped_and_on_drain_follows_what_was_queued() {
    let (s, handle, seen) = flood_server("maxBackpressure: '64K'");
    let mut ws = Ws::open(s.addr, "/ws/flood");
    ws.send_text("flood 20");
    let Seen::Flood(statuses) = next_seen(&seen) else {
        panic!("expected the flood's statuses")
    };
    let queued = queued_then_dropped(&statuses);
    // Sends are refused once 64 KiB is reached: three 16 KiB frames (with
    // their headers) stay under it, so a fourth still goes, then no more.
    assert_eq!(queued, 4, "{statuses:?}");
    assert_eq!(stats(&handle).limits.backpressure, 16);
    // The client reads only now: everything queued, then the drain's message.
    for i in 0..4 {
        expect_big(&mut ws, i);
    }
    ws.expect_text("drained");
    assert_eq!(next_seen(&seen), Seen::Drained(SendStatus::Queued));
    // The connection is fine and can flood again.
    ws.send_text("flood 2");
    assert_eq!(
        next_seen(&seen),
        Seen::Flood(vec![SendStatus::Queued, SendStatus::Queued])
    );
    expect_big(&mut ws, 0);
    expect_big(&mut ws, 1);
    ws.close(1000);
    assert_eq!(next_seen(&seen), Seen::Closed(1000));
}

#[test]
fn flood_with_close_on_backpressure_gets_1008_after_what_was_queued() {
    let (s, handle, seen) = flood_server("maxBackpressure: '64K', closeOnBackpressure: true");
    let mut ws = Ws::open(s.addr, "/ws/flood");
    ws.send_text("flood 20");
    let Seen::Flood(statuses) = next_seen(&seen) else {
        panic!("expected the flood's statuses")
    };
    assert_eq!(queued_then_dropped(&statuses), 4, "{statuses:?}");
    assert_eq!(next_seen(&seen), Seen::Closed(1008));
    for i in 0..4 {
        expect_big(&mut ws, i);
    }
    ws.expect_close(1008);
    assert_eq!(stats(&handle).limits.backpressure, 16);
}

// ---------------------------------------------------------------------------
// Backpressure: deliveries from other connections

#[test]
fn deliveries_to_a_slow_connection_over_max_backpressure_are_dropped_and_counted() {
    let (s, handle, seen) = flood_server("maxBackpressure: '64K'");
    let mut slow = Ws::open(s.addr, "/ws/flood?slow");
    let mut producer = Ws::open(s.addr, "/ws/flood");
    // Twenty 16 KiB messages for a connection that reads nothing meanwhile.
    producer.send_text("publish 20");
    for i in 0..4 {
        expect_big(&mut slow, i);
    }
    // The slow connection's handler learns it may send again.
    slow.expect_text("drained");
    assert_eq!(next_seen(&seen), Seen::Drained(SendStatus::Queued));
    // Nothing else was queued: the next message is the one sent after.
    producer.send_text("say end");
    slow.expect_text("end");
    assert_eq!(stats(&handle).limits.backpressure, 16);
    // It was a slow reader, not a bad one: later deliveries arrive again.
    producer.send_text("publish 1");
    expect_big(&mut slow, 0);
    slow.close(1000);
    producer.close(1000);
}

#[test]
fn deliveries_to_a_slow_connection_close_it_with_1008_when_close_on_backpressure() {
    let (s, handle, seen) = flood_server("maxBackpressure: '64K', closeOnBackpressure: true");
    let mut slow = Ws::open(s.addr, "/ws/flood?slow");
    let mut producer = Ws::open(s.addr, "/ws/flood");
    producer.send_text("publish 20");
    for i in 0..4 {
        expect_big(&mut slow, i);
    }
    let (code, reason) = slow.read_close();
    assert_eq!((code, reason.as_str()), (1008, "backpressure"));
    // The server waits for our answer to its close, then ends the connection.
    slow.send_close(1008, "");
    slow.expect_eof();
    assert_eq!(until_closed(&seen).1, 1008);
    assert_eq!(stats(&handle).limits.backpressure, 16);
    // The producer was not affected.
    producer.send_text("say anyone?");
    producer.close(1000);
    assert_eq!(until_closed(&seen).1, 1000);
}

#[test]

fn a_slow_connection_closed_for_backpressure_gets_no_on_drain() {
    let (s, _handle, seen) = flood_server("maxBackpressure: '64K', closeOnBackpressure: true");
    let mut slow = Ws::open(s.addr, "/ws/flood?slow");
    let mut producer = Ws::open(s.addr, "/ws/flood");
    producer.send_text("publish 20");
    for i in 0..4 {
        expect_big(&mut slow, i);
    }
    assert_eq!(slow.read_close().0, 1008);
    slow.send_close(1008, "");
    slow.expect_eof();
    let (before, code) = until_closed(&seen);
    assert_eq!(code, 1008);
    assert_eq!(before, vec![], "nothing but on_close after the 1008");
}

// ---------------------------------------------------------------------------
// Backpressure: a client that writes without reading stops being read

/// How many turns of the server's loop in a row must pass without it reading
/// a byte of what waits in its socket before it counts as no longer reading.
/// Turns, not time: a server that reads would do so in the first of them.
const STILL_TURNS: u32 = 20;

/// A thread writing `count` pieces (made by `piece(i)`) to a stream until
/// told to stop, reporting how many it wrote.
struct Writer {
    written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    /// A write failed (the test, or the server, ended the connection).
    failed: Arc<AtomicBool>,
    /// The server's end and the client's end of the connection.
    server: SocketAddr,
    client: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(
        mut stream: TcpStream,
        count: usize,
        piece: impl Fn(usize) -> Vec<u8> + Send + 'static,
    ) -> Writer {
        let server = stream.peer_addr().unwrap();
        let client = stream.local_addr().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let (w, st, d, f) = (
            Arc::clone(&written),
            Arc::clone(&stop),
            Arc::clone(&done),
            Arc::clone(&failed),
        );
        let thread = std::thread::spawn(move || {
            for i in 0..count {
                if st.load(Ordering::Acquire) {
                    break;
                }
                if stream.write_all(&piece(i)).is_err() {
                    f.store(true, Ordering::Release);
                    break;
                }
                w.store(i + 1, Ordering::Release);
            }
            d.store(true, Ordering::Release);
        });
        Writer {
            written,
            stop,
            done,
            failed,
            server,
            client,
            thread: Some(thread),
        }
    }

    /// Waits until the server has stopped reading this connection, and
    /// returns how many pieces were written and the server's `read` counter
    /// (what it has taken in from the connection: messages, requests) then.
    /// Proved without a clock: bytes wait unread in the server's socket, and
    /// for `STILL_TURNS` turns of its loop in a row (each `stats` call is one)
    /// neither they, nor `read`, nor the writer's count move. Panics if the
    /// writer finished or failed instead.
    fn wait_until_paused(
        &self,
        handle: &ServerHandle,
        read: impl Fn(&Stats) -> u64,
    ) -> (usize, u64) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut last = None;
        let mut still = 0;
        loop {
            assert!(
                !self.failed.load(Ordering::Acquire),
                "a write failed: the server ended the connection"
            );
            assert!(
                !self.done.load(Ordering::Acquire),
                "the writer wrote all it had: the server kept reading a client that does not read"
            );
            let unread = unread_by_server(self.server, self.client)
                .expect("the connection is in /proc/net/tcp");
            let now = (
                self.written.load(Ordering::Acquire),
                read(&stats(handle)),
                unread,
            );
            if unread > 0 && last == Some(now) {
                still += 1;
                if still == STILL_TURNS {
                    println!("paused: {now:?} (written, read, unread bytes)");
                    return (now.0, now.1);
                }
            } else {
                (last, still) = (Some(now), 0);
            }
            assert!(
                Instant::now() < deadline,
                "the server never stopped reading: {now:?} (written, read, unread)"
            );
            // Lets the writer run if it can; not a measure of anything.
            std::thread::yield_now();
        }
    }

    /// Asks the writer to stop after its current piece.
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// The final count once the writer has stopped; `None` while it runs.
    fn finished(&self) -> Option<usize> {
        self.done
            .load(Ordering::Acquire)
            .then(|| self.written.load(Ordering::Acquire))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if !std::thread::panicking() {
                result.expect("the writer thread panicked");
            }
        }
    }
}

/// The 8 KiB message number `i` of the echo flood: its number, then filler.
fn numbered(i: usize) -> Vec<u8> {
    let mut data = format!("{i:08}:").into_bytes();
    data.resize(8 * 1024, b'.');
    data
}

#[test]
fn websocket_that_sends_without_reading_is_not_read_until_it_reads_then_gets_every_echo() {
    // Up to 256 MiB of echo requests: far more than the socket buffers on the way hold.
    const MESSAGES: usize = 32 * 1024;
    let (s, handle, dropped) = echo_server("webSockets: { maxBackpressure: '64K' }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let writer = Writer::start(ws.stream.try_clone().unwrap(), MESSAGES, |i| {
        masked_frame(0x80 | BINARY, &numbered(i))
    });
    let (blocked_at, read_in) = writer.wait_until_paused(&handle, |st| st.messages_in);
    assert!(
        blocked_at < MESSAGES / 4,
        "the client's writes block once the server stops reading ({blocked_at} messages written)"
    );
    assert!(
        read_in <= blocked_at as u64,
        "the server read {read_in} messages of {blocked_at}"
    );
    // Now read: every echo comes back, in order, and the writes resume.
    writer.stop();
    let mut read = 0;
    loop {
        if writer.finished() == Some(read) {
            break;
        }
        let f = ws.read_frame();
        assert_eq!((f.fin, f.opcode), (true, BINARY));
        assert!(
            f.payload == numbered(read),
            "echo {read} is next; got {:?}",
            String::from_utf8_lossy(&f.payload[..9])
        );
        read += 1;
    }
    assert!(read > blocked_at, "the writes resumed once the client read");
    assert_eq!(dropped.load(Ordering::Relaxed), 0, "no echo was dropped");
    assert_eq!(stats(&handle).limits.backpressure, 0);
    ws.close(1000);
}

/// The pipelining tests serve `f0.txt` … `f15.txt`, 1 KiB each, each its own letter.
fn file_body(k: usize) -> Vec<u8> {
    vec![b'a' + k as u8; 1024]
}

fn pipelining_server() -> TestServer {
    TestServer::start(
        "limits: { requests: 'unlimited' }",
        |d| {
            for k in 0..16 {
                d.write(&format!("f{k}.txt"), file_body(k));
            }
        },
        |_| {},
    )
}

/// Up to 256 Ki requests of 1 KiB each (a padding header makes the request
/// side fill up in reasonable time): far more than the socket buffers hold.
const REQUESTS: usize = 256 * 1024;

/// Starts writing pipelined GETs for `f{i % 16}.txt` on `c`'s connection.
fn pipeliner(c: &Client) -> Writer {
    let pad = "p".repeat(1024);
    Writer::start(c.stream.try_clone().unwrap(), REQUESTS, move |i| {
        let head = format!(
            "GET /f{}.txt HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n",
            i % 16
        );
        head.into_bytes()
    })
}

#[test]
fn http_pipeliner_that_does_not_read_stops_being_read_and_delays_nobody() {
    let s = pipelining_server();
    let c = s.client();
    let writer = pipeliner(&c);
    let (blocked_at, answered) = writer.wait_until_paused(&s.handle, |st| st.requests);
    assert!(
        blocked_at < REQUESTS / 4,
        "the client's writes block once the server stops reading ({blocked_at} requests written)"
    );
    assert!(answered <= blocked_at as u64);
    // Meanwhile everyone else is served, and the pipeliner is still not read.
    assert_eq!(s.get("/f3.txt").body, file_body(3));
    // The pipeliner's own count may still grow (its kernel's send buffer can
    // grow while the server's receive queue stays full); what must not move is
    // what the server took in from it.
    let (_, still_answered) = writer.wait_until_paused(&s.handle, |st| st.requests);
    assert_eq!(
        still_answered,
        answered + 1,
        "only the other client was answered"
    );
    // Ending the connection ends the blocked write too.
    c.stream.shutdown(Shutdown::Both).unwrap();
    drop(writer);
}

#[test]

fn http_pipeliner_that_does_not_read_gets_every_response_in_order_once_it_reads() {
    let s = pipelining_server();
    let mut c = s.client();
    let writer = pipeliner(&c);
    let (blocked_at, answered) = writer.wait_until_paused(&s.handle, |st| st.requests);
    assert!(blocked_at < REQUESTS / 4, "{blocked_at} requests written");
    assert!(answered <= blocked_at as u64);
    // Now read: every response comes back in order, and the writes resume.
    writer.stop();
    let mut read = 0;
    loop {
        if writer.finished() == Some(read) {
            break;
        }
        let r = c.response();
        assert_eq!(r.status, 200, "response {read}");
        assert!(
            r.body == file_body(read % 16),
            "response {read} answers request {read}"
        );
        read += 1;
    }
    assert!(read > blocked_at, "the writes resumed once the client read");
    // The connection is still good.
    c.send(b"GET /f1.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().body, file_body(1));
    assert!(c.is_closed());
}

#[test]

fn pipelined_requests_whose_answers_pass_64k_are_all_answered() {
    let s = pipelining_server();
    let mut c = s.client();
    // 200 small requests arrive in one read; their answers (about 250 KiB) do
    // not fit under the 64 KiB mark at which the server stops parsing.
    let requests: Vec<u8> = (0..200)
        .flat_map(|i| format!("GET /f{}.txt HTTP/1.1\r\nHost: t\r\n\r\n", i % 16).into_bytes())
        .collect();
    c.send(&requests);
    for i in 0..200 {
        let r = c.response();
        assert_eq!(
            (r.status, r.body == file_body(i % 16)),
            (200, true),
            "response {i}"
        );
    }
}

// ---------------------------------------------------------------------------
// Rate limits

/// Sends `messages` and then a close frame in one write.
fn send_all_then_close(ws: &mut Ws, messages: &[Vec<u8>]) {
    let mut bytes: Vec<u8> = messages
        .iter()
        .flat_map(|m| masked_frame(0x80 | TEXT, m))
        .collect();
    bytes.extend(masked_frame(0x88, &1000u16.to_be_bytes()));
    ws.send_raw(&bytes);
}

fn texts(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

#[test]
fn message_rate_drops_what_is_over_the_burst_and_counts_it() {
    let (s, handle, _) =
        echo_server("limits: { rate: { messages: '5/sec', burst: 5, action: 'drop' } }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    send_all_then_close(&mut ws, &texts("m", 20));
    for i in 0..5 {
        ws.expect_text(&format!("m{i}"));
    }
    // Close frames are not rate limited; the close comes right after the fifth echo.
    ws.expect_close(1000);
    let st = stats(&handle);
    assert_eq!(st.limits.rate, 15);
    assert_eq!(st.messages_in, 20, "dropped messages were received");
}

#[test]
fn message_rate_with_action_close_closes_with_1008_at_the_first_message_over() {
    let (s, handle, _) =
        echo_server("limits: { rate: { messages: '5/sec', burst: 5, action: 'close' } }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let mut bytes = Vec::new();
    for m in texts("m", 10) {
        bytes.extend(masked_frame(0x80 | TEXT, &m));
    }
    ws.send_raw(&bytes);
    for i in 0..5 {
        ws.expect_text(&format!("m{i}"));
    }
    let (code, reason) = ws.read_close();
    assert_eq!((code, reason.as_str()), (1008, "rate limit"));
    ws.expect_eof();
    assert_eq!(stats(&handle).limits.rate, 1);
}

#[test]
fn byte_rate_drops_a_message_larger_than_a_second_of_bytes() {
    let (s, handle, _) = echo_server("limits: { rate: { bytes: '1K/sec' } }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    let large = vec![b'L'; 2048];
    send_all_then_close(&mut ws, &[large, b"small".to_vec()]);
    // The 2 KiB message never fits a 1 KiB bucket; the small one after it does.
    ws.expect_text("small");
    ws.expect_close(1000);
    assert_eq!(stats(&handle).limits.rate, 1);
}

#[test]
fn byte_rate_with_action_close_closes_with_1008() {
    let (s, handle, _) = echo_server("limits: { rate: { bytes: '1K/sec', action: 'close' } }");
    let mut ws = Ws::open(s.addr, "/ws/echo");
    ws.send_text("fits");
    ws.expect_text("fits");
    ws.send_binary(&[0u8; 2048]);
    let (code, _) = ws.read_close();
    assert_eq!(code, 1008);
    ws.expect_eof();
    assert_eq!(stats(&handle).limits.rate, 1);
}

// ---------------------------------------------------------------------------
// Connections per IP

#[test]
fn fourth_connection_from_one_ip_gets_503_until_one_of_the_three_closes() {
    let (s, handle) = start(
        "limits: { connectionsPerIp: 3 }",
        |d| {
            d.write("a.txt", "A");
        },
        |_| {},
    );
    let mut held: Vec<Client> = (0..3).map(|_| s.client()).collect();
    // They are accepted (they answer) before the fourth connects.
    for c in held.iter_mut() {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().status, 200);
    }
    let mut fourth = s.client();
    fourth.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    fourth.last_response(503, "a fourth connection");
    let st = stats(&handle);
    assert_eq!(st.limits.connections_per_ip, 1);
    assert_eq!(st.limits.connections, 1, "counted among all 503s too");
    assert_eq!(st.connections_open, 3);
    // The three keep working.
    for c in held.iter_mut() {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().text(), "A");
    }
    // One closes: a new connection is served once the server has seen it go.
    drop(held.pop());
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let r = s.get("/a.txt");
        if r.status == 200 {
            assert_eq!(r.text(), "A");
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------
// Origins

fn origin_server() -> (TestServer, ServerHandle) {
    let web = format!("webSockets: {{ origins: ['https://device.example'] }}, {WS_ROUTES}");
    start(
        &web,
        |_| {},
        |srv| {
            srv.websocket("/ws/echo", Echo::default());
        },
    )
}

#[test]
fn websocket_from_an_unlisted_origin_gets_403_listed_or_no_origin_gets_101() {
    let (s, handle) = origin_server();
    let request = upgrade_request("/ws/echo", "Origin: https://evil.example\r\n");
    let (resp, mut ws) = Ws::handshake(s.addr, request.as_bytes());
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(resp.header("sec-websocket-accept").is_none());
    let body = String::from_utf8(ws.read_to_close()).unwrap();
    assert!(body.starts_with("403 Forbidden"), "{body:?}");
    assert_eq!(stats(&handle).upgrades_rejected, 1);

    let (_, mut listed) = Ws::open_with(s.addr, "/ws/echo", "Origin: https://device.example\r\n");
    listed.send_text("hi");
    listed.expect_text("hi");
    listed.close(1000);

    let mut no_origin = Ws::open(s.addr, "/ws/echo");
    no_origin.send_text("hi");
    no_origin.expect_text("hi");
    no_origin.close(1000);
}

#[test]

fn origin_refusals_are_counted_in_limits_auth() {
    let (s, handle) = origin_server();
    let request = upgrade_request("/ws/echo", "Origin: https://evil.example\r\n");
    let (resp, _ws) = Ws::handshake(s.addr, request.as_bytes());
    assert_eq!(resp.status, 403);
    assert_eq!(stats(&handle).limits.auth, 1);
}

// ---------------------------------------------------------------------------
// Route authentication

/// What a protected resource answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    /// The file, the action's JSON, or the WebSocket's first message.
    body: String,
}

/// The three kinds of route `auth` protects.
#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Action,
    Socket,
}

const KINDS: [Kind; 3] = [Kind::File, Kind::Action, Kind::Socket];

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::File => "/files/secret.txt",
            Kind::Action => "/api/claims",
            Kind::Socket => "/ws/claims",
        }
    }

    /// The status of a request that is let in.
    fn ok(self) -> u16 {
        match self {
            Kind::Socket => 101,
            _ => 200,
        }
    }

    /// Requests this kind's resource with `query` (if not empty) and `headers`
    /// (lines ending in CRLF) on a fresh connection.
    fn ask(self, addr: SocketAddr, query: &str, headers: &str) -> Answer {
        let target = if query.is_empty() {
            self.path().to_string()
        } else {
            format!("{}?{query}", self.path())
        };
        let (resp, body) = match self {
            Kind::File | Kind::Action => {
                let mut c = Client::connect(addr);
                c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes());
                let r = c.response();
                let body = r.text();
                (r, body)
            }
            Kind::Socket => {
                let (r, mut ws) = Ws::handshake(addr, upgrade_request(&target, headers).as_bytes());
                let body = if r.status == 101 {
                    let first = ws.read_text();
                    ws.close(1000);
                    first
                } else {
                    let length = r.header("content-length").map_or(0, |v| v.parse().unwrap());
                    String::from_utf8_lossy(&ws.read_bytes(length)).into_owned()
                };
                (r, body)
            }
        };
        Answer {
            status: resp.status,
            challenge: resp.header("www-authenticate").map(str::to_string),
            body,
        }
    }
}

/// On `/ws/claims`: the claims as `on_upgrade` saw them (kept in the state)
/// and as `on_open` sees them, in the first message.
struct Claims;

impl Handler for Claims {
    type State = Value;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<Value> {
        Upgrade::Accept(req.claims().cloned().unwrap_or(Value::Null))
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, Value>) {
        let open = ws.claims().cloned().unwrap_or(Value::Null);
        let upgrade = ws.state().clone();
        ws.send_json(&json!({ "upgrade": upgrade, "open": open }));
    }
}

/// A server whose `/files/`, `/api/` and `/ws/` routes all have `auth`
/// (a JSON5 object), and an open file route for everything else.
fn auth_server(auth: &str) -> (TestServer, ServerHandle) {
    let web = format!(
        "routes: [
            {{ match: '/files/', auth: {auth} }},
            {{ match: '/api/', handler: 'action', auth: {auth} }},
            {{ match: '/ws/', handler: 'action', auth: {auth} }},
            {{ match: '' }},
        ]"
    );
    start(
        &web,
        |d| {
            d.write("files/secret.txt", "the secret file");
            d.write("open.txt", "open to all");
        },
        |srv| {
            srv.action("/api/claims", |req| {
                Response::json(&json!({ "claims": req.claims() }))
            });
            srv.websocket("/ws/claims", Claims);
        },
    )
}

/// Checks that `answer` let the request in, and returns the claims it saw.
fn admitted(kind: Kind, answer: &Answer) -> Value {
    assert_eq!(answer.status, kind.ok(), "{kind:?}: {answer:?}");
    match kind {
        Kind::File => {
            assert_eq!(answer.body, "the secret file");
            Value::Null
        }
        Kind::Action => {
            let v: Value = serde_json::from_str(&answer.body).unwrap();
            v["claims"].clone()
        }
        Kind::Socket => {
            let v: Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(
                v["upgrade"], v["open"],
                "on_upgrade and on_open see the same claims"
            );
            v["open"].clone()
        }
    }
}

/// Checks that `answer` is a 401 with this challenge.
fn refused(kind: Kind, answer: &Answer, challenge: &str, why: &str) {
    assert_eq!(answer.status, 401, "{kind:?}, {why}: {answer:?}");
    assert_eq!(
        answer.challenge.as_deref(),
        Some(challenge),
        "{kind:?}, {why}"
    );
    assert!(
        !answer.body.contains("the secret file"),
        "{kind:?}, {why}: nothing of the resource leaks"
    );
}

const MISSING: &str = "Bearer";
const INVALID: &str = "Bearer error=\"invalid_token\"";

/// Two accepted tokens; the second needs percent-encoding in a query.
const BEARER: &str = "{ type: 'bearer', tokens: ['s3cret-token', 'tok/en+x=='] }";

#[test]
fn bearer_token_in_the_authorization_header_lets_in_and_a_wrong_or_missing_one_is_401() {
    let (s, handle) = auth_server(BEARER);
    for kind in KINDS {
        let ok = kind.ask(s.addr, "", "Authorization: Bearer s3cret-token\r\n");
        assert_eq!(
            admitted(kind, &ok),
            Value::Null,
            "bearer tokens carry no claims"
        );
        let ok = kind.ask(s.addr, "", "authorization: bearer tok/en+x==\r\n");
        admitted(kind, &ok);
        let missing = kind.ask(s.addr, "", "");
        refused(kind, &missing, MISSING, "no token");
        let wrong = kind.ask(s.addr, "", "Authorization: Bearer s3cret-tokeN\r\n");
        refused(kind, &wrong, INVALID, "a wrong token");
        let prefix = kind.ask(s.addr, "", "Authorization: Bearer s3cret\r\n");
        refused(kind, &prefix, INVALID, "a prefix of a token");
    }
    assert_eq!(stats(&handle).limits.auth, 9);
    // Routes without auth are open.
    assert_eq!(s.get("/open.txt").text(), "open to all");
}

#[test]
fn bearer_token_in_the_access_token_query_parameter_is_percent_decoded() {
    let (s, _handle) = auth_server(BEARER);
    for kind in KINDS {
        admitted(kind, &kind.ask(s.addr, "access_token=s3cret-token", ""));
        admitted(
            kind,
            &kind.ask(s.addr, "x=1&access_token=tok%2Fen%2Bx%3D%3D", ""),
        );
        // In a query a raw '+' is a space, so this is another token.
        let plus = kind.ask(s.addr, "access_token=tok/en+x==", "");
        refused(kind, &plus, INVALID, "an unencoded '+'");
        let wrong = kind.ask(s.addr, "access_token=nope", "");
        refused(kind, &wrong, INVALID, "a wrong token in the query");
        let other = kind.ask(s.addr, "token=s3cret-token", "");
        refused(kind, &other, MISSING, "another parameter name");
    }
}

/// The JWT secret, read by the server from `WISP_TEST_SECRET`.
const JWT_SECRET: &str = "hardening-test-secret-0123456789";
const JWT_AUTH: &str =
    "{ type: 'jwt', secret: 'env:WISP_TEST_SECRET', issuer: 'wisp-tests', audience: 'device' }";

/// A server with JWT auth; the secret comes from the environment, set before
/// the config is parsed (`TestServer` parses it on this thread).
fn jwt_server() -> (TestServer, ServerHandle) {
    std::env::set_var("WISP_TEST_SECRET", JWT_SECRET);
    auth_server(JWT_AUTH)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT with this header and these claims, signed with HS256 under `secret`.
fn jwt(header: &Value, claims: &Value, secret: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

fn hs256() -> Value {
    json!({ "alg": "HS256", "typ": "JWT" })
}

/// Claims this server accepts.
fn good_claims() -> Value {
    let now = now_secs();
    json!({
        "sub": "ann",
        "role": "admin",
        "iss": "wisp-tests",
        "aud": "device",
        "iat": now,
        "nbf": now - 60,
        "exp": now + 3600,
    })
}

/// `good_claims` with one claim replaced.
fn claims_with(key: &str, value: Value) -> Value {
    let mut c = good_claims();
    c[key] = value;
    c
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

#[test]
fn jwt_signed_with_the_secret_from_the_environment_lets_in_and_its_claims_are_visible() {
    let (s, _handle) = jwt_server();
    let claims = good_claims();
    let token = jwt(&hs256(), &claims, JWT_SECRET);
    for kind in KINDS {
        let seen = admitted(kind, &kind.ask(s.addr, "", &bearer(&token)));
        if !matches!(kind, Kind::File) {
            assert_eq!(seen, claims, "{kind:?} sees the verified claims");
        }
        // The query works too (base64url and dots need no encoding).
        let seen = admitted(
            kind,
            &kind.ask(s.addr, &format!("access_token={token}"), ""),
        );
        if !matches!(kind, Kind::File) {
            assert_eq!(seen, claims);
        }
        // An audience list that contains ours is accepted.
        let list = claims_with("aud", json!(["tv", "device"]));
        let seen = admitted(
            kind,
            &kind.ask(s.addr, "", &bearer(&jwt(&hs256(), &list, JWT_SECRET))),
        );
        if !matches!(kind, Kind::File) {
            assert_eq!(seen, list);
        }
        // The config's text is not the secret: the server read the environment.
        let literal = jwt(&hs256(), &claims, "env:WISP_TEST_SECRET");
        refused(
            kind,
            &kind.ask(s.addr, "", &bearer(&literal)),
            INVALID,
            "the literal text",
        );
    }
}

#[test]
fn jwt_expired_not_yet_valid_badly_signed_unsigned_or_for_another_issuer_or_audience_is_401() {
    let (s, handle) = jwt_server();
    let now = now_secs();
    let header_none = json!({ "alg": "none", "typ": "JWT" });
    let unsigned = {
        let h = URL_SAFE_NO_PAD.encode(header_none.to_string());
        let p = URL_SAFE_NO_PAD.encode(good_claims().to_string());
        format!("{h}.{p}.")
    };
    let good = jwt(&hs256(), &good_claims(), JWT_SECRET);
    let tampered = {
        // The payload of other claims with the good token's signature.
        let parts: Vec<&str> = good.split('.').collect();
        let p = URL_SAFE_NO_PAD.encode(claims_with("role", json!("root")).to_string());
        format!("{}.{p}.{}", parts[0], parts[2])
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            jwt(&hs256(), &claims_with("exp", json!(now - 10)), JWT_SECRET),
        ),
        (
            "nbf in the future",
            jwt(&hs256(), &claims_with("nbf", json!(now + 3600)), JWT_SECRET),
        ),
        (
            "another secret",
            jwt(&hs256(), &good_claims(), "another-secret-0123456789"),
        ),
        ("alg none, unsigned", unsigned),
        (
            "alg none, signed",
            jwt(&header_none, &good_claims(), JWT_SECRET),
        ),
        (
            "HS512 header",
            jwt(&json!({ "alg": "HS512" }), &good_claims(), JWT_SECRET),
        ),
        (
            "another issuer",
            jwt(
                &hs256(),
                &claims_with("iss", json!("someone-else")),
                JWT_SECRET,
            ),
        ),
        ("no issuer", {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove("iss");
            jwt(&hs256(), &c, JWT_SECRET)
        }),
        (
            "another audience",
            jwt(&hs256(), &claims_with("aud", json!("tv")), JWT_SECRET),
        ),
        ("tampered payload", tampered),
        ("not a JWT", "s3cret-token".to_string()),
    ];
    for kind in KINDS {
        refused(kind, &kind.ask(s.addr, "", ""), MISSING, "no token");
        for (why, token) in &cases {
            refused(kind, &kind.ask(s.addr, "", &bearer(token)), INVALID, why);
            let query = format!("access_token={token}");
            refused(kind, &kind.ask(s.addr, &query, ""), INVALID, why);
        }
    }
    assert_eq!(stats(&handle).limits.auth, 3 * (1 + 2 * cases.len() as u64));
}

// ---------------------------------------------------------------------------
// Graceful stop

/// A server whose `/api/len` answers the length of the body it got.
fn stop_server(timeouts: &str) -> (TestServer, ServerHandle) {
    start(
        &format!("timeouts: {{ {timeouts} }}, routes: [ {{ match: '/api/', handler: 'action' }}, {{ match: '' }} ]"),
        |d| {
            d.write("a.txt", "A");
        },
        |srv| {
            srv.action("/api/len", |req| {
                Response::text(req.body().len().to_string())
            });
        },
    )
}

/// Sends the head of a 10-byte POST that expects 100-continue, and waits for
/// the 100: the server is then receiving its body.
fn post_in_flight(s: &TestServer) -> Client {
    let mut c = s.client();
    c.send(
        b"POST /api/len HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(c.response().status, 100);
    c.send(b"01234");
    c
}

#[test]
fn stop_lets_a_request_in_flight_finish_with_connection_close_and_closes_idle_ones_at_once() {
    let (s, handle) = stop_server("shutdown: '1 min'");
    let mut busy = post_in_flight(&s);
    let mut idle = s.client();
    idle.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = idle.response();
    assert_eq!(r.text(), "A");
    assert_eq!(r.header("connection"), None, "kept alive");

    handle.stop();
    // The idle keep-alive connection is closed without waiting for the busy one.
    assert!(idle.is_closed(), "the idle connection is closed");
    // No new connections: refused, or closed without a word.
    match Client::try_connect(s.addr) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
        Ok(mut late) => {
            // The server may be gone before the request is written.
            let _ = (&late.stream).write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
            let got = late.read_to_close();
            assert!(got.is_empty(), "a connection after the stop got {got:?}");
        }
    }
    // The request in flight finishes and is answered, with Connection: close.
    busy.send(b"56789");
    let r = busy.response();
    assert_eq!((r.status, r.text().as_str()), (200, "10"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.is_closed());
}

#[test]
fn stop_cuts_off_a_request_not_finished_within_the_shutdown_timeout() {
    let (s, handle) = stop_server("shutdown: '300 ms'");
    let mut busy = post_in_flight(&s);
    let stopped = Instant::now();
    handle.stop();
    // The rest of the body never comes: the server gives up after the timeout.
    assert!(busy.is_closed(), "closed without a response");
    assert!(stopped.elapsed() >= Duration::from_millis(250));
}
