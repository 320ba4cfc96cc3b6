//! Across nodes through Redis: publish latency and room fan-out between two
//! `wisp_echo` nodes on one Redis (each run with `--backplane URL NODE`).
//!
//! ```text
//! backplane --a ADDR --b ADDR [--messages 2000] [--members 50] [--fanout 1000]
//! ```
//!
//! Latency: one member of the room on node A (`/ws/room`), a publisher on
//! node B (`/ws/publish`); each message is sent once the one before it has
//! arrived on A (depth 1), timed from send to arrival: the whole path,
//! B's loop, its backplane thread, Redis, A's subscriber thread, A's loop.
//!
//! Fan-out: `--members` members on each node, the publisher on B sends
//! `--fanout` messages in batches of 100 (each batch once A's first member
//! has the one before); every member reads until it has them all or the
//! stream has been quiet for two seconds. Prints deliveries per second and
//! how many arrived (delivery across nodes is at most once).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{self, Message};
use wisp_bench::{Histogram, PUBLISH_PATH, ROOM_PATH};

type Ws = tungstenite::WebSocket<TcpStream>;

fn open(addr: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (ws, _) =
        tungstenite::client::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    ws
}

/// The next text message (pings and the like skipped).
fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn send(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.into())).expect("send");
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = |flag| {
        arg(&args, flag)
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("{flag} ADDR needed (try the module docs)"))
    };
    let (a, b) = (addr("--a"), addr("--b"));
    let number =
        |flag, default: usize| arg(&args, flag).map_or(default, |v| v.parse().expect(flag));
    let messages = number("--messages", 2000);
    let members = number("--members", 50);
    let fanout = number("--fanout", 1000);

    latency(a, b, messages);
    fan_out(a, b, members, fanout);
}

fn latency(a: SocketAddr, b: SocketAddr, messages: usize) {
    let mut member = open(a, ROOM_PATH);
    let mut publisher = open(b, PUBLISH_PATH);
    // Until one arrives: both nodes are on the backplane and A's member is in.
    member
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let warm = (0..).find(|i| {
        send(&mut publisher, format!("warm{i}"));
        next_text(&mut member).is_some()
    });
    member.get_ref().set_read_timeout(None).expect("timeout");
    let mut hist = Histogram::default();
    let mut lost = 0;
    for i in 0..messages {
        let text = format!("{i}");
        let sent = Instant::now();
        send(&mut publisher, text.clone());
        loop {
            match next_text(&mut member) {
                Some(t) if t == text => break,
                Some(_) => continue, // a late warm-up message
                None => {
                    lost += 1;
                    break;
                }
            }
        }
        hist.record(sent.elapsed());
    }
    let us = |q| hist.quantile_ns(q) as f64 / 1000.0;
    println!(
        "cross-node publish latency, B -> Redis -> A, depth 1, {messages} messages (after {} warm-up): p50 {:.0} us, p99 {:.0} us, max {:.0} us{}",
        warm.unwrap_or(0) + 1,
        us(0.5),
        us(0.99),
        hist.max_ns() as f64 / 1000.0,
        if lost > 0 { format!(", {lost} lost") } else { String::new() }
    );
}

fn fan_out(a: SocketAddr, b: SocketAddr, members: usize, fanout: usize) {
    let first_seen = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for (node, addr) in [(0, a), (1, b)] {
        for m in 0..members {
            let mut ws = open(addr, ROOM_PATH);
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let seen = (node == 0 && m == 0).then(|| Arc::clone(&first_seen));
            readers.push(std::thread::spawn(move || {
                let mut got = 0usize;
                while got < fanout {
                    let Some(t) = next_text(&mut ws) else { break };
                    if let Some(i) = t.strip_prefix('f').and_then(|i| i.parse::<usize>().ok()) {
                        got += 1;
                        if let Some(seen) = &seen {
                            seen.store(i + 1, Ordering::Relaxed);
                        }
                    }
                }
                got
            }));
        }
    }
    let mut publisher = open(b, PUBLISH_PATH);
    let started = Instant::now();
    for batch in (0..fanout).step_by(100) {
        for i in batch..(batch + 100).min(fanout) {
            send(&mut publisher, format!("f{i}"));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while first_seen.load(Ordering::Relaxed) < (batch + 100).min(fanout)
            && Instant::now() < deadline
        {
            std::thread::yield_now();
        }
    }
    let got: usize = readers.into_iter().map(|r| r.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed();
    let expected = 2 * members * fanout;
    println!(
        "room fan-out across two nodes: {members} members on each, {fanout} messages published on B: {got} of {expected} deliveries in {:.2} s ({:.0} deliveries/s, the tail includes up to 2 s of quiet)",
        elapsed.as_secs_f64(),
        got as f64 / elapsed.as_secs_f64()
    );
}
