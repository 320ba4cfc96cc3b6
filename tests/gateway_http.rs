//! Plain HTTP through a proxy route, over real sockets: a wisp server in
//! front, and behind it another wisp server or a raw TCP downstream.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::{read_retrying, tcp_connect, Client, TestServer, IO_TIMEOUT};
use wisp::Response;

/// A wisp server whose actions answer everything: `/echo` says the
/// method, path, query, each header and the body; `/peer` the port the
/// request came from (the gateway's end of its leg).
fn downstream() -> TestServer {
    TestServer::start(
        "limits: { body: '1MB' }, routes: [ { match: '', handler: 'action' } ]",
        |_| {},
        |s| {
            s.action("/echo", |req| {
                let mut text = format!("{} {} ?{}\n", req.method(), req.path(), req.query());
                for (name, value) in req.headers() {
                    text.push_str(&format!("{}: {}\n", name, String::from_utf8_lossy(value)));
                }
                text.push_str("body: ");
                text.push_str(&String::from_utf8_lossy(req.body()));
                Response::text(text).with_header("X-Down", "yes")
            });
            s.action("/peer", |req| {
                Response::text(req.peer_addr().port().to_string())
            });
        },
    )
}

/// A gateway with one proxy route `/gw/` to `hosts`, and `extra` config.
fn gateway(hosts: &[SocketAddr], extra: &str) -> TestServer {
    gateway_with(hosts, extra, "")
}

/// [`gateway`] with more of the route's settings (`route`, each followed
/// by a comma), a route `/ro/` that takes GET only, and files elsewhere.
fn gateway_with(hosts: &[SocketAddr], extra: &str, route: &str) -> TestServer {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
    let hosts = hosts.join(", ");
    TestServer::start(
        &format!(
            "{extra} routes: [ \
             {{ match: '/gw/', handler: 'proxy', proxy: {{ {route} hosts: [{hosts}] }} }}, \
             {{ match: '/ro/', handler: 'proxy', methods: ['GET'], proxy: {{ hosts: [{hosts}] }} }}, \
             {{ match: '' }} ]"
        ),
        |_| {},
        |_| {},
    )
}

/// A raw downstream: each connection it accepts is handed to `serve` on
/// its own thread; returns its address and the count of connections.
fn raw_downstream(
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let serve = Arc::clone(&serve);
            thread::spawn(move || serve(stream));
        }
    });
    (addr, accepted)
}

/// Reads one request head from a raw stream (bytes after it are lost:
/// callers use requests without bodies, or read the body themselves from
/// what is returned with the head).
fn read_request_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        match read_retrying(&mut *stream, &mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// FNV-1a over a stream of pieces: both ends of a large body compare these.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Sum(u64, u64);

impl Sum {
    fn new() -> Sum {
        Sum(0xcbf2_9ce4_8422_2325, 0)
    }
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.1 += bytes.len() as u64;
    }
}

/// Byte `i` of a large body: a pattern that is not periodic in 64 KiB.
fn pattern(start: u64, out: &mut [u8]) {
    for (k, b) in out.iter_mut().enumerate() {
        let i = start + k as u64;
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
}

/// The process's resident memory in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the RSS until dropped; `peak()` is the highest seen.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
}

impl RssWatch {
    fn start() -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        });
        RssWatch { stop, peak }
    }
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(rss_kib())
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_get_goes_through_with_forwarding_headers_and_without_hop_by_hop_ones() {
    let down = downstream();
    let gw = gateway(&[down.addr], "");
    let mut c = gw.client();
    c.send(
        b"GET /gw/echo?x=1 HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Secret\r\n\
          X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Request-Id: req-42\r\n\
          X-Forwarded-For: 203.0.113.9\r\nX-Custom: c\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text().to_lowercase();
    assert!(seen.starts_with("get /echo ?x=1\n"), "{seen}");
    for want in [
        "x-custom: c\n",
        "x-request-id: req-42\n",
        "x-forwarded-for: 203.0.113.9, 127.0.0.1\n",
        "x-forwarded-host: front\n",
        "via: 1.1 wisp\n",
        &format!("host: {}\n", down.addr),
    ] {
        assert!(seen.contains(want), "{want:?} not in {seen}");
    }
    for gone in ["x-secret", "keep-alive", "te:"] {
        assert!(!seen.contains(gone), "{gone:?} passed: {seen}");
    }
    assert_eq!(r.header("x-down"), Some("yes"));
    assert_eq!(r.header("via"), Some("1.1 wisp"));
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    assert_eq!(
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("server"))
            .count(),
        1,
        "one Server line"
    );
    // The connection goes on.
    c.send(b"GET /gw/echo HTTP/1.1\r\nHost: front\r\n\r\n");
    assert_eq!(c.response().status, 200);
}

#[test]
fn a_head_stays_a_head() {
    let down = downstream();
    let gw = gateway(&[down.addr], "");
    let mut c = gw.client();
    c.send(b"GET /gw/echo HTTP/1.1\r\nHost: h\r\n\r\n");
    let get = c.response();
    c.send(b"HEAD /gw/echo HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.head_response();
    assert_eq!(head.status, 200);
    // "HEAD" is one byte longer than "GET" in the echo.
    let want = (get.body.len() + 1).to_string();
    assert_eq!(head.header("content-length"), Some(want.as_str()));
    // No body came: the next response follows at once.
    c.send(b"GET /gw/echo HTTP/1.1\r\nHost: h\r\n\r\n");
    let next = c.response();
    assert_eq!(next.status, 200);
    assert!(next.text().starts_with("GET /echo"), "{}", next.text());
}

#[test]
fn bodies_by_length_and_in_chunks_arrive_whole() {
    let down = downstream();
    let gw = gateway(&[down.addr], "");
    let mut c = gw.client();
    c.send(b"POST /gw/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
    let r = c.response();
    assert!(r.text().ends_with("body: hello world"), "{}", r.text());
    assert!(
        r.text().to_lowercase().contains("content-length: 11"),
        "{}",
        r.text()
    );
    c.send(
        b"PUT /gw/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("PUT /echo"), "{}", r.text());
    assert!(r.text().ends_with("body: hello world"), "{}", r.text());
    assert!(
        r.text()
            .to_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        r.text()
    );
    // Expect: 100-continue is answered by the gateway.
    c.send(
        b"POST /gw/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.read_head();
    assert_eq!(interim.resp.status, 100);
    c.send(b"ok");
    let r = c.response();
    assert!(r.text().ends_with("body: ok"), "{}", r.text());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let down = downstream();
    let gw = gateway(&[down.addr], "");
    let mut c = gw.client();
    c.send(
        b"GET /gw/echo?n=1 HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /gw/echo?n=2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\ntwo\
          HEAD /gw/echo?n=3 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /gw/echo?n=4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    let r1 = c.response();
    let r2 = c.response();
    let r3 = c.head_response();
    let r4 = c.response();
    assert!(r1.text().starts_with("GET /echo ?n=1"), "{}", r1.text());
    assert!(r2.text().starts_with("POST /echo ?n=2") && r2.text().ends_with("body: two"));
    assert_eq!(r3.status, 200);
    assert!(r4.text().starts_with("GET /echo ?n=4"), "{}", r4.text());
    assert_eq!(r4.header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn legs_are_kept_alive_for_the_next_request_to_their_host() {
    let down = downstream();
    let gw = gateway(&[down.addr], "");
    let mut ports = Vec::new();
    for _ in 0..3 {
        // A new client each time: the leg belongs to the host, not the client.
        let r = gw.get("/gw/peer");
        assert_eq!(r.status, 200);
        ports.push(r.text());
    }
    assert!(ports.iter().all(|p| *p == ports[0]), "one leg: {ports:?}");
}

#[test]
fn a_kept_leg_closed_by_the_downstream_is_retried_on_a_fresh_one() {
    // Each connection answers its first request, then closes on its second
    // unanswered, as a server whose keep-alive timer just ran out.
    let (addr, accepted) = raw_downstream(|mut s| {
        if read_request_head(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
        let _ = read_request_head(&mut s);
    });
    let gw = gateway(&[addr], "");
    for _ in 0..3 {
        let r = gw.get("/gw/x");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "one fresh leg per retry"
    );
}

#[test]
fn no_downstream_is_502_and_a_silent_one_504() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway(&[closed], "");
    let r = gw.get("/gw/anything");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("connection"), Some("close"));

    let (held, tx) = mpsc::channel::<TcpStream>();
    let (silent, _) = raw_downstream(move |s| {
        let _ = held.send(s); // Kept open, never answered.
    });
    let gw = gateway(&[silent], "timeouts: { connect: '300 ms' },");
    let r = gw.get("/gw/slow");
    assert_eq!(r.status, 504);
    drop(tx);
}

#[test]
fn a_malformed_answer_is_502() {
    let (addr, _) = raw_downstream(|mut s| {
        if read_request_head(&mut s).is_some() {
            let _ = s.write_all(b"SMTP 220 ready\r\n\r\n");
        }
    });
    let gw = gateway(&[addr], "");
    let r = gw.get("/gw/x");
    assert_eq!(r.status, 502);
}

#[test]
fn hosts_take_turns_and_refusals_and_other_routes_keep_their_limits() {
    let (a, b) = (downstream(), downstream());
    let gw = gateway_with(&[a.addr, b.addr], "", "loadBalancer: 'RoundRobin',");
    let hosts: Vec<String> = (0..4)
        .map(|_| {
            let text = gw.get("/gw/echo").text();
            let host = text.lines().find(|l| l.starts_with("Host: ")).unwrap();
            host.to_string()
        })
        .collect();
    assert_ne!(hosts[0], hosts[1], "{hosts:?}");
    assert_eq!((&hosts[0], &hosts[1]), (&hosts[2], &hosts[3]), "{hosts:?}");

    // A refused request with a body: its body is not read, so it closes.
    let mut c = gw.client();
    c.send(b"POST /ro/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.response();
    assert_eq!(r.status, 405);
    assert!(c.is_closed());
    // Off the proxy routes, limits.body (100K) still holds.
    let r = gw.raw(b"POST /file HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n");
    assert_eq!(r.status, 413);
}

#[test]
fn a_downstream_that_breaks_mid_body_closes_the_client() {
    let (addr, _) = raw_downstream(|mut s| {
        if read_request_head(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
        }
    });
    let gw = gateway(&[addr], "");
    let mut c = gw.client();
    c.send(b"GET /gw/x HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.read_head();
    assert_eq!(head.resp.status, 200);
    let rest = c.read_to_close();
    assert_eq!(rest, b"only part");
}

#[test]
fn close_delimited_and_chunked_responses_reach_the_client() {
    let (addr, _) = raw_downstream(|mut s| {
        while let Some((head, _)) = read_request_head(&mut s) {
            if head.starts_with("GET /chunked") {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      3\r\nabc\r\n4;ext\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n",
                );
            } else {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end");
                return;
            }
        }
    });
    let gw = gateway(&[addr], "");
    let mut c = gw.client();
    c.send(b"GET /gw/chunked HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.read_head();
    assert_eq!(head.resp.header("transfer-encoding"), Some("chunked"));
    let mut body = Vec::new();
    while !body.ends_with(b"\r\n0\r\n\r\n") {
        body.extend(c.read_bytes(1));
    }
    // Chunked again (one chunk per read), without extensions or trailers.
    let text = String::from_utf8(body).unwrap();
    let mut data = String::new();
    let mut rest = text.as_str();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(after, "\r\n", "no trailers");
            break;
        }
        data.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap();
    }
    assert_eq!(data, "abcdefg");
    c.send(b"GET /gw/eof HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"until the end");
}

/// 10 MiB up and 10 MiB down, generated and checked on the fly: the bytes
/// arrive intact, and the process (client, gateway and downstream alike)
/// does not grow by the body's size.
#[test]
fn ten_mib_up_and_down_stream_through_in_bounded_memory() {
    const SIZE: u64 = 10 << 20;
    let (got_tx, got_rx) = mpsc::channel::<Sum>();
    let (addr, _) = raw_downstream(move |mut s| {
        while let Some((head, mut early)) = read_request_head(&mut s) {
            if head.starts_with("PUT") {
                let mut sum = Sum::new();
                let take = early.len().min(SIZE as usize);
                sum.add(&early[..take]);
                early.drain(..take);
                let mut chunk = vec![0u8; 64 * 1024];
                while sum.1 < SIZE {
                    let want = (SIZE - sum.1).min(chunk.len() as u64) as usize;
                    match read_retrying(&mut s, &mut chunk[..want]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => sum.add(&chunk[..n]),
                    }
                }
                let _ = got_tx.send(sum);
                let _ = s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
            } else {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let mut chunk = vec![0u8; 64 * 1024];
                let mut sent = 0;
                while sent < SIZE {
                    let n = (SIZE - sent).min(chunk.len() as u64) as usize;
                    pattern(sent, &mut chunk[..n]);
                    if s.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    sent += n as u64;
                }
            }
        }
    });
    let gw = gateway(&[addr], "");
    let watch = RssWatch::start();
    let base = rss_kib();

    // Up: more than limits.body (100K) is fine on a proxy route.
    let mut c = gw.client();
    let head = format!("PUT /gw/up HTTP/1.1\r\nHost: h\r\nContent-Length: {SIZE}\r\n\r\n");
    c.send(head.as_bytes());
    let mut want = Sum::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < SIZE {
        let n = (SIZE - sent).min(chunk.len() as u64) as usize;
        pattern(sent, &mut chunk[..n]);
        want.add(&chunk[..n]);
        c.stream.write_all(&chunk[..n]).unwrap();
        sent += n as u64;
    }
    let r = c.response();
    assert_eq!(r.status, 201);
    assert_eq!(got_rx.recv_timeout(IO_TIMEOUT).unwrap(), want);

    // Down.
    c.send(b"GET /gw/down HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.read_head();
    assert_eq!(head.resp.status, 200);
    let mut got = Sum::new();
    let early = c.buffered().to_vec();
    got.add(&early);
    let mut stream = &c.stream;
    while got.1 < SIZE {
        let n = read_retrying(&mut stream, &mut chunk).unwrap();
        assert!(n > 0, "closed after {} bytes", got.1);
        got.add(&chunk[..n]);
    }
    assert_eq!(got, want, "the same pattern came down");
    let grown = watch.peak().saturating_sub(base);
    assert!(
        grown < 6 * 1024,
        "the process grew by {grown} KiB for 10 MiB each way"
    );
}

/// A client that sends its body slowly and a downstream that reads it
/// slowly: the gateway keeps up, and each side pauses for the other.
#[test]
fn a_slow_reader_pauses_the_downstream_without_losing_bytes() {
    const SIZE: u64 = 4 << 20;
    let (addr, _) = raw_downstream(move |mut s| {
        if read_request_head(&mut s).is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < SIZE {
            let n = (SIZE - sent).min(chunk.len() as u64) as usize;
            pattern(sent, &mut chunk[..n]);
            if s.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n as u64;
        }
    });
    let gw = gateway(&[addr], "");
    let mut c = Client::over(tcp_connect(gw.addr).unwrap());
    c.send(b"GET /gw/x HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.read_head();
    assert_eq!(head.resp.status, 200);
    let mut want = Sum::new();
    let mut buf = vec![0u8; 4096];
    let mut sent = 0u64;
    let mut got = Sum::new();
    got.add(c.buffered());
    let mut stream = &c.stream;
    // Small reads: the downstream outruns the client and must wait.
    while got.1 < SIZE {
        let n = read_retrying(&mut stream, &mut buf).unwrap();
        assert!(n > 0);
        got.add(&buf[..n]);
    }
    let mut pat = vec![0u8; 64 * 1024];
    while sent < SIZE {
        let n = (SIZE - sent).min(pat.len() as u64) as usize;
        pattern(sent, &mut pat[..n]);
        want.add(&pat[..n]);
        sent += n as u64;
    }
    assert_eq!(got, want);
}
