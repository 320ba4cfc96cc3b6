//! Several workers on one port (`web.workers`, `SO_REUSEPORT`): connections
//! spread over them, rooms, sends by id and broadcasts span them, the
//! counters add up, and a worker whose loop panics is started again while
//! the other one goes on.
//!
//! Clients are raw WebSockets over real sockets (`support::ws`). Which
//! worker owns a connection is read from its id's text form (`w1#7`), which
//! the test handler tells each client. Waiting is on the server's answers;
//! `IO_TIMEOUT` is only a safety net.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::ws::{Ws, TEXT};
use wisp::{Config, ConnId, Handler, Message, WebSocket, Workers};

/// A command protocol over text messages, to drive the hub from a client:
///
/// - `whoami` → the connection's id (`w1#7`);
/// - `join:R` → `joined R`; `size:R` → the room's size across workers;
/// - `pub:R:TEXT` publishes TEXT to R; `pubx:R:TEXT` the same but not to
///   the sender; `all:TEXT` broadcasts to every other connection;
/// - `to:ID:TEXT` sends TEXT to ID (answers the status unless `Queued`);
/// - `boom` arms the connection's state to panic when it is dropped, then
///   closes: the loop, not a callback, meets the panic.
#[derive(Default)]
struct Probe;

/// A connection's state; armed, dropping it panics.
#[derive(Default)]
struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 && !std::thread::panicking() {
            panic!("boom: a state that panics as it is dropped");
        }
    }
}

impl Handler for Probe {
    type State = Bomb;

    fn on_message(&mut self, ws: &mut WebSocket<'_, Bomb>, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let (verb, rest) = text.split_once(':').unwrap_or((text, ""));
        match verb {
            "whoami" => {
                let id = ws.id().to_string();
                ws.send(Message::Text(&id));
            }
            "join" => {
                let answer = match ws.join(rest) {
                    Ok(()) => format!("joined {rest}"),
                    Err(e) => format!("cannot join: {e}"),
                };
                ws.send(Message::Text(&answer));
            }
            "size" => {
                let size = ws.room_size(rest).to_string();
                ws.send(Message::Text(&size));
            }
            "pub" | "pubx" => {
                let (room, body) = rest.split_once(':').unwrap_or((rest, ""));
                let me = ws.id();
                let except = (verb == "pubx").then_some(me);
                ws.publish(room, Message::Text(body), except);
            }
            "all" => {
                let me = ws.id();
                ws.broadcast(Message::Text(rest), Some(me));
            }
            "to" => {
                let (to, body) = rest.rsplit_once(':').unwrap_or((rest, ""));
                let status = match to.parse::<ConnId>() {
                    Ok(id) => ws.send_to(id, Message::Text(body)),
                    Err(e) => return ws.send(Message::Text(&e.to_string())).ignore(),
                };
                if status != wisp::SendStatus::Queued {
                    ws.send(Message::Text(&format!("{status:?}")));
                }
            }
            "boom" => {
                ws.state_mut().0 = true;
                ws.close(wisp::CloseCode::NORMAL, "boom");
            }
            _ => {
                ws.send(Message::Text(&format!("echo {text}")));
            }
        }
    }
}

/// Lets a `SendStatus` be dropped in an expression position.
trait Ignore {
    fn ignore(self);
}

impl<T> Ignore for T {
    fn ignore(self) {}
}

/// Two workers on a free port, each serving `Probe` on `/ws/probe`.
fn start(workers: usize) -> Workers {
    let text = format!(
        "{{ web: {{ listen: ['http://127.0.0.1:0'], workers: {workers}, \
         routes: [ {{ match: '/ws/', handler: 'action' }} ] }} }}"
    );
    let config = Config::parse(&text, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    Workers::start(config, |server| {
        server.websocket("/ws/probe", Probe);
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A client that knows its connection's id.
struct Member {
    ws: Ws,
    id: String,
}

impl Member {
    fn open(workers: &Workers) -> Member {
        let mut ws = Ws::open(workers.local_addrs()[0], "/ws/probe");
        ws.send_text("whoami");
        let id = ws.read_frame().text();
        Member { ws, id }
    }

    fn worker(&self) -> usize {
        self.id
            .parse::<ConnId>()
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.id))
            .worker()
    }

    fn ask(&mut self, text: &str) -> String {
        self.ws.send_text(text);
        self.text()
    }

    fn text(&mut self) -> String {
        let frame = self.ws.read_frame();
        assert_eq!(frame.opcode, TEXT, "a text message");
        frame.text()
    }
}

/// Opens connections until each worker has `each` of them (the kernel
/// spreads them by a hash of the addresses, so a few more may be needed).
fn members_on_every_worker(workers: &Workers, count: usize, each: usize) -> Vec<Member> {
    let mut members = Vec::new();
    for _ in 0..200 {
        let per: Vec<usize> = (0..count)
            .map(|w| members.iter().filter(|m: &&Member| m.worker() == w).count())
            .collect();
        if per.iter().all(|&n| n >= each) {
            return members;
        }
        members.push(Member::open(workers));
    }
    panic!("200 connections did not reach every one of {count} workers");
}

/// Polls `f` until it holds, for at most ten seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn two_workers_spread_connections_and_the_counters_add_up() {
    let workers = start(2);
    let members = members_on_every_worker(&workers, 2, 2);
    for m in &members {
        // Worker 0's ids read as a lone server's do.
        let prefix = match m.worker() {
            0 => "#".to_string(),
            w => format!("w{w}#"),
        };
        assert!(m.id.starts_with(&prefix), "{}", m.id);
    }
    let stats = workers.stats().expect("both workers answer");
    assert_eq!(stats.websockets_open, members.len() as u64);
    assert_eq!(stats.connections_open, members.len() as u64);
    // Each worker counts only its own.
    for (w, handle) in workers.handles().iter().enumerate() {
        let own = handle.stats().expect("a worker answers").websockets_open;
        let expected = members.iter().filter(|m| m.worker() == w).count() as u64;
        assert_eq!(own, expected, "worker {w}");
    }
    drop(members);
    workers.stop();
    workers.wait().expect("both workers stop cleanly");
}

#[test]
fn a_room_spans_the_workers_with_except_sender_send_to_and_broadcast() {
    let workers = start(2);
    let mut members = members_on_every_worker(&workers, 2, 2);
    for m in &mut members {
        assert_eq!(m.ask("join:lobby"), "joined lobby");
    }
    let n = members.len();
    assert_eq!(
        members[0].ask("size:lobby"),
        n.to_string(),
        "counted on every worker"
    );
    let on = |w: usize, members: &[Member]| members.iter().position(|m| m.worker() == w).unwrap();
    let (a, b) = (on(0, &members), on(1, &members));

    // A publish from either worker reaches every member, the sender too.
    for (from, text) in [(a, "from worker 0"), (b, "from worker 1")] {
        members[from].ws.send_text(&format!("pub:lobby:{text}"));
        for m in &mut members {
            assert_eq!(m.text(), text, "{} got the publish", m.id);
        }
    }

    // Except the sender: the others get it; the sender's next answer is
    // the one to its own next question, so nothing else reached it.
    members[b].ws.send_text("pubx:lobby:not to me");
    for (i, m) in members.iter_mut().enumerate() {
        if i != b {
            assert_eq!(m.text(), "not to me");
        }
    }
    assert_eq!(members[b].ask("hello"), "echo hello");

    // send_to a connection of the other worker, by the id it was told.
    let to = members[b].id.clone();
    members[a].ws.send_text(&format!("to:{to}:across"));
    assert_eq!(members[b].text(), "across");
    assert_eq!(
        members[a].ask("hello"),
        "echo hello",
        "no status: it was queued"
    );

    // A broadcast but the sender reaches both workers.
    members[a].ws.send_text("all:everyone");
    for (i, m) in members.iter_mut().enumerate() {
        if i != a {
            assert_eq!(m.text(), "everyone", "{}", m.id);
        }
    }
    assert_eq!(members[a].ask("hello"), "echo hello");

    // A member that leaves (closes) leaves the count on every worker.
    let gone = members.remove(a);
    drop(gone);
    eventually("the room shrinks", || {
        members[0].ask("size:lobby") == (n - 1).to_string()
    });
    drop(members);
    workers.stop();
    workers.wait().expect("both workers stop cleanly");
}

#[test]
fn a_worker_that_panics_is_started_again_and_the_other_goes_on() {
    let workers = start(2);
    let (mut bystander, mut victim) = (None, None);
    for m in members_on_every_worker(&workers, 2, 1) {
        match m.worker() {
            0 if bystander.is_none() => bystander = Some(m),
            1 if victim.is_none() => victim = Some(m),
            _ => {}
        }
    }
    let (mut bystander, mut victim) = (bystander.unwrap(), victim.unwrap());
    let victim_id = victim.id.clone();
    assert_eq!(victim.ask("join:r"), "joined r");
    assert!(victim_id.starts_with("w1#"), "{victim_id}");
    victim.ws.send_text("boom");
    // The closing handshake ends the connection, and its state is dropped:
    // the loop panics, and whatever else it held is lost with it.
    let close = victim.ws.read_frame();
    assert_eq!(close.opcode, support::ws::CLOSE);
    victim
        .ws
        .send_frame(true, support::ws::CLOSE, &close.payload);
    let _ = victim.ws.read_to_close();
    eventually("the restart is counted", || {
        workers.stats().is_some_and(|s| s.worker_restarts == 1)
    });
    // The other worker was undisturbed.
    assert_eq!(bystander.ask("still here"), "echo still here");
    // And worker 1 serves new connections again.
    let mut again = None;
    for _ in 0..200 {
        let m = Member::open(&workers);
        if m.worker() == 1 {
            again = Some(m);
            break;
        }
    }
    let mut again = again.expect("a connection reached the restarted worker");
    assert_ne!(again.id, victim_id, "a new id");
    assert_eq!(
        bystander.ask("size:r"),
        "0",
        "the lost member left the count"
    );
    assert_eq!(again.ask("join:r"), "joined r");
    assert_eq!(bystander.ask("join:r"), "joined r");
    assert_eq!(bystander.ask("size:r"), "2");
    bystander.ws.send_text("pubx:r:across the restart");
    assert_eq!(again.text(), "across the restart");
    drop((again, bystander));
    workers.stop();
    workers.wait().expect("both workers stop cleanly");
}
