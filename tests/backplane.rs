//! Two wisp processes (the shipped binary, its `/ws/chat` demo) joined by a
//! real `redis-server`: a room spans the nodes, "except the sender" holds,
//! `send_to` crosses nodes, Redis lost and restarted mid-test, and 10,000
//! cross-node publishes of which none arrives twice (or out of order).
//!
//! Each test starts its own `redis-server` on a free port and kills it at
//! the end; they need one installed, so they are ignored by a plain `cargo
//! test`: `scripts/backplane` installs it and runs them. Waiting is on the
//! servers' answers and on `/api/status`, polled with a deadline.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::binary::{start_command, Running};
use support::ws::Ws;
use support::TempDir;

const NEEDS: &str = "needs redis-server: run scripts/backplane";

/// A `redis-server` of the test's own, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Redis::on(port)
    }

    fn on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({NEEDS}): {e}"));
        let redis = Redis { port, child };
        eventually("redis-server answers PING", || redis.ping());
        redis
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// Publishes `text` on `channel` as another client would.
    fn publish(&self, channel: &str, text: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("redis");
        let command = format!(
            "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{text}\r\n",
            channel.len(),
            text.len()
        );
        s.write_all(command.as_bytes()).expect("publish");
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).expect("an answer");
        assert_eq!(&answer, b":", "an integer reply");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it; `Redis::on(port)` starts it again.
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node: the binary with a config naming the backplane.
struct Node {
    run: Running,
    _dir: TempDir,
}

impl Node {
    fn start(redis: &str, channel: &str, node: &str, workers: usize) -> Node {
        let dir = TempDir::new("backplane");
        let config = format!(
            "{{ web: {{ listen: ['http://127.0.0.1:0'], documents: '.', workers: {workers}, \
             routes: [ {{ match: '/api/', handler: 'action' }}, {{ match: '/ws/', handler: 'action' }} ], \
             backplane: {{ redis: '{redis}', channel: '{channel}', node: '{node}' }} }} }}"
        );
        let path = dir.write("web.json5", config);
        let mut command = support::binary::wisp();
        command.stderr(Stdio::null());
        let run = start_command(command, &["--config", path.to_str().unwrap()]);
        Node { run, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.run.addr
    }

    /// `/api/status` as JSON.
    fn status(&self) -> Value {
        let mut s = TcpStream::connect(self.addr()).expect("connect");
        s.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn backplane(&self) -> Value {
        self.status()["stats"]["backplane"].clone()
    }

    fn connected(&self) -> bool {
        self.backplane()["connected"] == true
    }

    fn chat(&self, room: &str, name: &str) -> Member {
        let mut ws = Ws::open(self.addr(), "/ws/chat");
        ws.send_json(&json!({ "event": "whoami" }));
        let id = ws.read_json()["id"].as_str().expect("an id").to_string();
        ws.send_json(&json!({ "event": "join", "room": room, "name": name }));
        assert_eq!(ws.read_json()["event"], "joined");
        Member { ws, id }
    }
}

struct Member {
    ws: Ws,
    id: String,
}

impl Member {
    fn say(&mut self, room: &str, text: &str) {
        self.ws
            .send_json(&json!({ "event": "say", "room": room, "text": text }));
    }

    fn next(&mut self) -> Value {
        self.ws.read_json()
    }

    /// The next event must be `said` of `text`.
    fn expect_said(&mut self, text: &str) {
        let v = self.next();
        assert_eq!(
            (v["event"].as_str(), v["text"].as_str()),
            (Some("said"), Some(text)),
            "{v}"
        );
    }

    fn expect_presence(&mut self, name: &str) {
        let v = self.next();
        assert_eq!(
            (v["event"].as_str(), v["name"].as_str()),
            (Some("presence"), Some(name)),
            "{v}"
        );
    }
}

/// Polls `f` until it holds, for at most twenty seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

/// Waits until `node` has heard `n` messages from the other node (so that a
/// presence is not still on its way when the next member joins there).
fn heard(node: &Node, n: u64) {
    eventually("the other node's messages arrived", || {
        node.backplane()["received"] == n
    });
}

/// Two nodes on one Redis, both subscribed; node A with two workers.
fn cluster(redis: &Redis, channel: &str) -> (Node, Node) {
    let a = Node::start(&redis.url(), channel, "node-a", 2);
    let b = Node::start(&redis.url(), channel, "node-b", 1);
    eventually("both nodes are on the backplane", || {
        a.connected() && b.connected()
    });
    (a, b)
}

#[test]
#[ignore = "needs redis-server: run scripts/backplane"]
fn a_room_spans_two_nodes_except_sender_holds_and_send_to_crosses() {
    let redis = Redis::start();
    let (a, b) = cluster(&redis, "spans");
    let mut ann = a.chat("lobby", "ann");
    assert!(ann.id.starts_with("node-a/w"), "{}", ann.id);
    heard(&b, 1);
    let mut bob = b.chat("lobby", "bob");
    assert!(bob.id.starts_with("node-b/w0#"), "{}", bob.id);
    ann.expect_presence("bob");
    let mut cy = b.chat("lobby", "cy");
    // Except the sender: cy's presence goes to ann (node A) and bob, not to cy.
    ann.expect_presence("cy");
    bob.expect_presence("cy");

    // A publish made on node B reaches the member on node A, and B's own.
    bob.say("lobby", "from b");
    for m in [&mut ann, &mut bob, &mut cy] {
        m.expect_said("from b");
    }
    ann.say("lobby", "from a");
    for m in [&mut ann, &mut bob, &mut cy] {
        m.expect_said("from a");
    }

    // send_to a connection of the other node, by its id's text.
    bob.ws
        .send_json(&json!({ "event": "tell", "to": ann.id, "text": "psst" }));
    assert_eq!(
        ann.next(),
        json!({ "event": "told", "from": "bob", "text": "psst" })
    );
    ann.ws
        .send_json(&json!({ "event": "tell", "to": cy.id, "text": "back" }));
    assert_eq!(
        cy.next(),
        json!({ "event": "told", "from": "ann", "text": "back" })
    );
    // Nothing else reached bob: his next event is his own next say.
    bob.say("lobby", "last");
    for m in [&mut bob, &mut ann, &mut cy] {
        m.expect_said("last");
    }

    let (sa, sb) = (a.backplane(), b.backplane());
    assert_eq!(sa["node"], "node-a");
    assert_eq!(a.status()["node"], "node-a");
    assert!(sb["sent"].as_u64().unwrap() >= 3, "{sb}");
    assert!(sa["received"].as_u64().unwrap() >= 3, "{sa}");
    assert_eq!(sa["malformed"], 0);

    // Something else on the channel is dropped and counted, never trusted.
    redis.publish(
        "spans",
        "{\"v\":1,\"node\":\"evil\",\"kind\":\"broadcast\"}",
    );
    redis.publish("spans", "not-json");
    eventually("both nodes dropped both", || {
        a.backplane()["malformed"] == 2 && b.backplane()["malformed"] == 2
    });
    ann.say("lobby", "still fine");
    for m in [&mut ann, &mut bob, &mut cy] {
        m.expect_said("still fine");
    }
    drop(redis);
}

#[test]
#[ignore = "needs redis-server: run scripts/backplane"]
fn redis_lost_mid_test_local_rooms_go_on_and_delivery_resumes() {
    let redis = Redis::start();
    let (a, b) = cluster(&redis, "outage");
    let mut ann = a.chat("lobby", "ann");
    heard(&b, 1);
    let mut bob = b.chat("lobby", "bob");
    ann.expect_presence("bob");
    let outages = a.backplane()["outages"].as_u64().unwrap();

    let port = redis.kill();
    eventually("both nodes see Redis gone", || {
        !a.connected() && !b.connected()
    });
    assert!(
        a.backplane()["outages"].as_u64().unwrap() > outages,
        "the outage is counted"
    );

    // Local rooms keep working.
    let mut amy = a.chat("lobby", "amy");
    ann.expect_presence("amy");
    let dropped = a.backplane()["dropped"].as_u64().unwrap();
    ann.say("lobby", "during");
    ann.expect_said("during");
    amy.expect_said("during");
    eventually(
        "the publish made during the outage is counted as dropped",
        || a.backplane()["dropped"].as_u64().unwrap() > dropped,
    );

    let redis = Redis::on(port);
    eventually("both nodes are back on the backplane", || {
        a.connected() && b.connected()
    });
    ann.say("lobby", "after");
    ann.expect_said("after");
    amy.expect_said("after");
    // "during" never reached node B: bob's next message is "after" (a
    // sender's messages keep their order, so a late "during" would come first).
    bob.expect_said("after");
    drop(redis);
}

#[test]
#[ignore = "needs redis-server: run scripts/backplane"]
fn ten_thousand_cross_node_publishes_none_twice() {
    const N: usize = 10_000;
    const BATCH: usize = 100;
    let redis = Redis::start();
    let (a, b) = cluster(&redis, "many");
    let mut ann = a.chat("lobby", "ann");
    heard(&b, 1);
    let mut bob = b.chat("lobby", "bob");
    ann.expect_presence("bob");

    // Ann reads on her own thread until the end marker arrives.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let v = ann.next();
            let text = v["text"].as_str().unwrap_or_default().to_string();
            if text == "end" {
                return got;
            }
            got.push(text);
        }
    });
    let count = |n: &Node, what: &str| n.backplane()[what].as_u64().unwrap();
    // Bob's presence is the one message node B sent so far.
    eventually("node B counted its first message", || {
        count(&b, "sent") == 1
    });
    let (sent, dropped) = (count(&b, "sent"), count(&b, "dropped"));
    // Bob publishes in batches, reading his own echoes between them.
    for start in (0..N).step_by(BATCH) {
        for i in start..start + BATCH {
            bob.say("lobby", &format!("m{i}"));
        }
        for i in start..start + BATCH {
            bob.expect_said(&format!("m{i}"));
        }
    }
    // Node B has published or dropped (and counted) every one.
    let (mut sent_now, mut dropped_now) = (0, 0);
    eventually("node B's backplane queue is drained", || {
        (sent_now, dropped_now) = (count(&b, "sent") - sent, count(&b, "dropped") - dropped);
        sent_now + dropped_now >= N as u64
    });
    assert_eq!(
        sent_now + dropped_now,
        N as u64,
        "{sent_now} sent, {dropped_now} dropped"
    );
    eprintln!("{N} publishes on node B: {sent_now} went through Redis, {dropped_now} dropped (a full queue)");
    bob.say("lobby", "end");
    bob.expect_said("end");
    let got = reader.join().expect("the reader");
    let numbers: Vec<usize> = got
        .iter()
        .map(|t| {
            t.strip_prefix('m')
                .and_then(|n| n.parse().ok())
                .expect("an m-number")
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "each at most once, in the order said"
    );
    assert_eq!(
        numbers.len() as u64,
        sent_now,
        "each one sent arrived (Redis stayed up); {dropped_now} dropped and counted"
    );
    drop(redis);
}

#[test]
#[ignore = "needs redis-server: run scripts/backplane"]
fn redis_down_at_start_the_node_serves_locally_and_joins_once_redis_is_up() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = Node::start(&url, "late", "node-a", 1);
    let b = Node::start(&url, "late", "node-b", 1);
    eventually("the outage is counted", || {
        a.backplane()["outages"] == 1 && b.backplane()["outages"] == 1
    });
    assert_eq!(a.backplane()["connected"], false);
    // It serves locally meanwhile.
    let mut ann = a.chat("lobby", "ann");
    let mut amy = a.chat("lobby", "amy");
    ann.expect_presence("amy");
    amy.say("lobby", "local");
    ann.expect_said("local");
    amy.expect_said("local");

    let redis = Redis::on(port);
    eventually("both nodes reach Redis", || a.connected() && b.connected());
    assert_eq!(a.backplane()["outages"], 1, "one outage, counted once");
    let mut bob = b.chat("lobby", "bob");
    ann.expect_presence("bob");
    amy.expect_presence("bob");
    bob.say("lobby", "now across");
    for m in [&mut bob, &mut ann, &mut amy] {
        m.expect_said("now across");
    }
    drop(redis);
}
