//! The event loop: one `mio::Poll`, the listeners, a slab of connections and their timers.

mod accept;
mod legs;
mod shutdown;

use crate::conn::COUNTED;
use std::collections::HashMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::app::App;
use crate::cluster::{Cluster, Remote, LINK_CAPACITY};
use crate::conn::{live, Conn, Ctx, Next};
use crate::deadlines::Timers;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::transport::Acceptor;
use crate::turn::Turn;
use crate::user_timers::Fired;

/// Work another thread asks the loop to do (see `ServerHandle`).
pub(crate) type Command = Box<dyn FnOnce(&mut Hub) + Send>;

/// Token of the cross-thread waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENER_BASE - i`; connections use their slab key.
const LISTENER_BASE: usize = usize::MAX - 1;
/// One read buffer for the whole loop, shared by every connection.
const READ_BUF: usize = 64 * 1024;
/// How often a worker posts its counters for `/api/status` (with several).
const BOARD_PERIOD: Duration = Duration::from_millis(200);

/// What other threads share with the loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub stop: Arc<AtomicBool>,
    /// Set by `ServerHandle::reload_tls` and the reload signals: the loop
    /// reads the certificates again when it wakes.
    pub reload: Arc<AtomicBool>,
    /// Shared with the other workers' links to this loop.
    pub waker: Arc<Waker>,
    /// The thread running the loop, once it runs.
    pub loop_thread: std::sync::OnceLock<std::thread::ThreadId>,
}

pub(crate) struct Reactor {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    /// Connections that count against `limits.connections`.
    counted: usize,
    timers: Timers,
    read_buf: Vec<u8>,
    /// The shared output buffer and the turn's clock.
    turn: Turn,
    next_serial: u64,
    /// Set after EMFILE: accepting resumes at this time.
    accept_paused_until: Option<Instant>,
    /// Deliveries to other connections, flushed at the end of the turn.
    fanout: Fanout,
    /// Open connections per address, when `limits.connectionsPerIp` is set.
    per_ip: HashMap<std::net::IpAddr, usize>,
    commands: Receiver<Command>,
    /// Deliveries from the other workers and the backplane (with several).
    pub remote: Option<Receiver<Remote>>,
    /// The socket signal handlers write to, to wake the loop (drained on wake-up).
    pub signal_pipe: Option<mio::net::UnixStream>,
    /// The SHA-256 fingerprint of the `https://` listeners' certificate.
    pub tls_fingerprint: Option<String>,
    pub app: App,
    pub shared: Arc<Shared>,
}

impl Reactor {
    pub fn new(
        poll: Poll,
        listeners: Vec<Listener>,
        app: App,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
    ) -> Reactor {
        Reactor {
            poll,
            listeners,
            conns: Slab::new(),
            counted: 0,
            timers: Timers::default(),
            read_buf: Vec::with_capacity(READ_BUF),
            turn: Turn::new(Instant::now()),
            next_serial: 0,
            accept_paused_until: None,
            fanout: Fanout::default(),
            per_ip: HashMap::new(),
            commands,
            remote: None,
            signal_pipe: None,
            tls_fingerprint: None,
            app,
            shared,
        }
    }

    /// Makes this loop one worker of several (or a node of a backplane):
    /// its ids say so, and it posts its counters for the others to read.
    pub fn join_cluster(&mut self, cluster: Cluster, next_serial: Option<u64>) {
        let base = crate::message::serial::base(cluster.node, cluster.worker);
        self.next_serial = next_serial.unwrap_or(base).max(base);
        let (board, worker) = (Arc::clone(&cluster.board), cluster.worker);
        self.app.hub.cluster = Some(cluster);
        board.post(worker, self.app.hub.stats());
        self.app
            .hub
            .every(BOARD_PERIOD, move |hub| board.post(worker, hub.stats()));
    }

    /// Takes back what outlives a loop that panicked — its poll (with the
    /// waker every link rings), listeners and queues — for a new loop on the
    /// same thread. The connections stay behind and are dropped with it.
    pub fn salvage(&mut self) -> io::Result<Parts> {
        Ok(Parts {
            poll: std::mem::replace(&mut self.poll, Poll::new()?),
            listeners: std::mem::take(&mut self.listeners),
            shared: Arc::clone(&self.shared),
            commands: std::mem::replace(&mut self.commands, std::sync::mpsc::channel().1),
            remote: self.remote.take(),
            next_serial: Some(self.next_serial),
        })
    }

    /// Registers the listeners; they are edge-triggered like everything else.
    pub fn register(poll: &Poll, listeners: &mut [Listener]) -> io::Result<()> {
        for (i, l) in listeners.iter_mut().map(|l| &mut l.socket).enumerate() {
            poll.registry()
                .register(l, Token(LISTENER_BASE - i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Runs until a `ServerHandle` asks it to stop.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        // Once stopping: until when connections may finish what they are doing.
        let mut draining: Option<Option<Instant>> = None;
        // The clock is read once per turn, after the poll. The poll's timeout
        // is reckoned from that reading of the turn before, so a deadline can
        // fire late by as long as that turn's work took (as any deadline
        // that falls due during a turn already does).
        let mut now = Instant::now();
        loop {
            if draining.is_none() && self.shared.stop.load(Ordering::Acquire) {
                now = Instant::now();
                self.turn.set_now(now);
                draining = Some(self.begin_shutdown(now));
            }
            let until = draining.flatten();
            if draining.is_some() && (self.conns.is_empty() || until.is_some_and(|t| t <= now)) {
                break;
            }
            let mut timeout = self.poll_timeout(now);
            if let Some(until) = until {
                let left = until.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            let polled = self.poll.poll(&mut events, timeout);
            now = Instant::now();
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.app.date.expire();
            self.turn.set_now(now);
            // Once per turn, not once per message.
            let inactivity = self.app.config.timeouts.inactivity;
            self.turn.idle_at = inactivity.and_then(|d| self.turn.at.checked_add(d));
            for event in events.iter() {
                match event.token() {
                    WAKER => self.run_commands(),
                    Token(t) if t > LISTENER_BASE - self.listeners.len() => {
                        self.accept(LISTENER_BASE - t, now);
                    }
                    Token(key) => self.conn_event(
                        key,
                        event.is_readable() || event.is_error(),
                        event.is_read_closed(),
                    ),
                }
            }
            self.resume_accepting(now);
            self.expire(now);
            self.fire_user_timers(now);
            if self.app.gateway.is_some() {
                self.gateway_work();
            }
            self.flush_dirty();
        }
        // What did not finish in time is dropped (unfinished WebSockets report 1006).
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
        Ok(())
    }

    /// Runs what other threads sent, each as if it were a global timer.
    ///
    /// A reload asked for (the flag of `ServerHandle::reload_tls` or of a
    /// signal) is done before the next command, so that anything a thread
    /// sends after asking (a `stats` call) sees it done.
    fn run_commands(&mut self) {
        if let Some(pipe) = &self.signal_pipe {
            // Edge-triggered: read it empty so the next signal wakes us again.
            let mut sink = [0u8; 64];
            while matches!(io::Read::read(&mut &*pipe, &mut sink), Ok(n) if n > 0) {}
        }
        self.reload_if_asked();
        while let Ok(command) = self.commands.try_recv() {
            self.reload_if_asked();
            // A panicking closure costs only itself.
            if catch_unwind(AssertUnwindSafe(|| command(&mut self.app.hub))).is_err() {
                log::error!("a closure sent through a ServerHandle panicked");
            }
            self.deliver();
        }
        if self.remote.is_some() {
            self.run_remote();
        }
    }

    /// Delivers what other workers and the backplane sent, a queue's worth
    /// at most per wake-up so this loop's own connections get their turn.
    fn run_remote(&mut self) {
        let Some(remote) = &self.remote else {
            return;
        };
        let mut taken = 0;
        for delivery in remote.try_iter().take(LINK_CAPACITY) {
            self.app.hub.apply(delivery);
            taken += 1;
        }
        self.deliver();
        if taken == LINK_CAPACITY {
            // More may wait, their wake-ups spent: come back next turn.
            let _ = self.shared.waker.wake();
        }
    }

    #[inline]
    fn reload_if_asked(&mut self) {
        let reload = &self.shared.reload;
        if reload.load(Ordering::Relaxed) && reload.swap(false, Ordering::AcqRel) {
            self.reload_tls();
        }
    }

    /// Reads the TLS certificate, key and authority again: new handshakes on
    /// every `https://` listener use them, open connections keep theirs. A
    /// pair that does not load leaves the old one, with one `error` line.
    #[cfg(feature = "tls")]
    fn reload_tls(&mut self) {
        if !self
            .listeners
            .iter()
            .any(|l| matches!(l.acceptor, Acceptor::Tls(_)))
        {
            return;
        }
        match crate::tls::load(&self.app.config, false) {
            Ok(loaded) => {
                for listener in &mut self.listeners {
                    if let Acceptor::Tls(config) = &mut listener.acceptor {
                        *config = Arc::clone(&loaded.config);
                    }
                }
                log::info!("tls: reloaded; certificate SHA-256 {}", loaded.fingerprint);
                self.tls_fingerprint = Some(loaded.fingerprint);
                self.app.hub.stats.tls_reloads += 1;
            }
            Err(e) => {
                log::error!("tls: reload failed, keeping the old certificate: {e}");
                self.app.hub.stats.tls_reload_failures += 1;
            }
        }
    }

    /// Without TLS there is nothing to reload.
    #[cfg(not(feature = "tls"))]
    fn reload_tls(&mut self) {}

    /// Fires the handlers' timers that are due.
    fn fire_user_timers(&mut self, now: Instant) {
        while let Some(fired) = self.app.hub.timers.pop_due(now) {
            match fired {
                Fired::Conn(timer, id) => {
                    let Some(conn) = live(&mut self.conns, id) else {
                        self.app.hub.timers.forget(timer);
                        continue;
                    };
                    let mut ctx = Ctx {
                        app: &mut self.app,
                        turn: &mut self.turn,
                        key: id.key,
                    };
                    conn.user_timer(&mut ctx, timer);
                    // What the handler sent is in the scratch buffer: write it now.
                    self.conn_event(id.key, false, false);
                }
                Fired::Global(timer, mut f) => {
                    let ran = catch_unwind(AssertUnwindSafe(|| f(&mut self.app.hub))).is_ok();
                    if ran {
                        self.app.hub.timers.restore(timer, f);
                    } else {
                        log::error!("a global timer panicked; it is cancelled");
                        self.app.hub.timers.forget(timer);
                    }
                    self.deliver();
                }
            }
        }
    }

    /// Hands what handlers sent to other connections to their output queues.
    fn deliver(&mut self) {
        self.fanout
            .deliver(&mut self.conns, &mut self.app, &mut self.turn);
    }

    /// Writes out everything delivered this turn, one write per connection.
    fn flush_dirty(&mut self) {
        while let Some(dirty) = self.fanout.take_dirty() {
            for key in dirty {
                self.conn_event(key, false, false);
            }
            // A leg that failed as it was written to leaves the gateway work.
            if self.app.gateway.is_some() {
                self.gateway_work();
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let user = self
            .app
            .hub
            .timers
            .next_due()
            .map(|t| t.saturating_duration_since(now));
        let accept = self
            .accept_paused_until
            .map(|t| t.saturating_duration_since(now));
        [self.timers.poll_timeout(now), user, accept]
            .into_iter()
            .flatten()
            .min()
    }

    fn conn_event(&mut self, key: usize, readable: bool, read_closed: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut ctx = Ctx {
            app: &mut self.app,
            turn: &mut self.turn,
            key,
        };
        match conn.ready(&mut ctx, &mut self.read_buf, readable, read_closed) {
            // Not `rearm`: the connection is at hand, no second lookup.
            Ok(next @ (Next::Keep | Next::KeepLater)) => {
                if next == Next::Keep {
                    arm(&mut self.timers, conn, key, &self.app.config.timeouts);
                }
                if conn.is_proxied() {
                    if let Some(pair) = conn.pair_after_flush(&self.app) {
                        self.fanout.wake(pair.key);
                    }
                }
            }
            Ok(Next::Close) | Err(_) => self.close(key),
        }
        if self.fanout.holds_any() {
            self.fanout
                .release_held(key, &mut self.conns, &mut self.app);
        }
        if !self.app.hub.outbox.is_empty() {
            self.deliver();
        }
    }

    /// Fires every passed deadline.
    fn expire(&mut self, now: Instant) {
        while let Some(wake) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(wake.key()) else {
                continue;
            };
            if !wake.is_for(conn.serial) {
                continue;
            }
            // Asked now: events that only moved the deadline later did not record it.
            let due = conn.due(&self.app.config.timeouts);
            if !self.timers.fire(&mut conn.deadline, due, wake, now) {
                continue;
            }
            let mut ctx = Ctx {
                app: &mut self.app,
                turn: &mut self.turn,
                key: wake.key(),
            };
            match conn.timeout(&mut ctx, &mut self.read_buf) {
                Ok(Next::Keep | Next::KeepLater) => self.rearm(wake.key()),
                Ok(Next::Close) | Err(_) => self.close(wake.key()),
            }
            self.deliver();
        }
    }

    /// Recomputes a connection's deadline after it did something.
    fn rearm(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            arm(&mut self.timers, conn, key, &self.app.config.timeouts);
        }
    }

    fn close(&mut self, key: usize) {
        self.fanout.forget(key);
        if let Some(mut conn) = self.conns.try_remove(key) {
            conn.release(&mut self.app, &mut self.turn, key);
            let _ = self.poll.registry().deregister(&mut conn.transport);
            if conn.flag(COUNTED) {
                self.counted -= 1;
                if let Some(n) = self.per_ip.get_mut(&conn.peer.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip.remove(&conn.peer.ip());
                    }
                }
                self.app.hub.stats.connections_open -= 1;
            }
        }
        self.turn.scratch.clear();
        self.prune_timers();
        // on_close may have sent to others (a chat's "left" notice).
        self.deliver();
    }

    /// Rebuilds the deadline heap once the wake-ups of closed connections
    /// outnumber the live ones, so churn cannot grow it (linear, amortised
    /// over at least as many closes).
    fn prune_timers(&mut self) {
        if self.timers.len() <= 2 * self.conns.len() + 1024 {
            return;
        }
        let conns = &self.conns;
        self.timers
            .retain(|w| conns.get(w.key()).is_some_and(|c| w.is_for(c.serial)));
    }

    /// The loop's registry, for sources added after start-up.
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// The addresses the listeners are bound to.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// The addresses of the TLS listeners.
    pub fn tls_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| !matches!(l.acceptor, Acceptor::Plain))
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }
}

/// What a loop is made of besides its app and connections: made once per
/// worker, and handed on to the next loop when one panics.
#[derive(Debug)]
pub(crate) struct Parts {
    pub poll: Poll,
    /// Registered with `poll` already.
    pub listeners: Vec<Listener>,
    pub shared: Arc<Shared>,
    pub commands: Receiver<Command>,
    pub remote: Option<Receiver<Remote>>,
    /// Where the last loop's serials stopped, so no id is given twice.
    pub next_serial: Option<u64>,
}

/// A listening socket and what it makes of the connections it accepts.
#[derive(Debug)]
pub(crate) struct Listener {
    pub socket: TcpListener,
    pub acceptor: Acceptor,
}

/// Sets the deadline of the connection in slot `key` to when it next needs attention.
#[inline]
fn arm(timers: &mut Timers, conn: &mut Conn, key: usize, timeouts: &crate::config::Timeouts) {
    let due = conn.due(timeouts);
    timers.set(&mut conn.deadline, due, key, conn.serial);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::{self, RecvTimeoutError, Sender};
    use std::sync::OnceLock;

    use super::*;
    use crate::testing::{self, responses, TempDir};
    use crate::transport::memory::Memory;
    use crate::transport::Transport;

    /// A reactor on a loopback listener, with the test app, and the sending
    /// end of its command channel.
    fn reactor() -> (Reactor, Sender<Command>, TempDir) {
        let docs = TempDir::new("reactor");
        let (app, _) = testing::app(testing::config(&docs.path, ""));
        let poll = Poll::new().unwrap();
        let mut listeners = vec![Listener {
            socket: TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
            acceptor: Acceptor::Plain,
        }];
        Reactor::register(&poll, &mut listeners).unwrap();
        let shared = Arc::new(Shared {
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(Waker::new(poll.registry(), WAKER).unwrap()),
            loop_thread: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel();
        (Reactor::new(poll, listeners, app, shared, rx), tx, docs)
    }

    /// Puts a connection with an in-memory peer in the slab, as `admit`
    /// does (but not counted against the limits); returns its key.
    fn insert(r: &mut Reactor, now: Instant) -> usize {
        r.next_serial += 1;
        let transport = Transport::Memory(Memory::default());
        let mut conn = Conn::new(transport, testing::peer(), r.next_serial, now);
        conn.set_flag(COUNTED, false);
        let key = r.conns.insert(conn);
        r.rearm(key);
        key
    }

    #[test]
    fn the_deadline_heap_stays_bounded_as_connections_come_and_go() {
        let (mut r, _tx, _docs) = reactor();
        let now = Instant::now();
        let live: Vec<usize> = (0..10).map(|_| insert(&mut r, now)).collect();
        for _ in 0..5000 {
            let key = insert(&mut r, now);
            r.close(key);
            assert!(r.timers.len() <= 2 * r.conns.len() + 1025);
        }
        assert!(
            r.timers.len() < 2000,
            "the wake-ups of closed connections are pruned"
        );
        assert!(r.timers.len() >= live.len(), "the live ones' are kept");
        assert_eq!(r.conns.len(), live.len());
    }

    #[test]
    fn a_slow_head_is_answered_408_by_the_loop_timers_then_dropped() {
        let (mut r, _tx, _docs) = reactor();
        let t0 = r.turn.now;
        let key = insert(&mut r, t0);
        r.conns[key]
            .transport
            .memory()
            .push(b"GET /api/x HTTP/1.1\r\n");
        r.conn_event(key, true, false);
        let parse = r.app.config.timeouts.parse.unwrap();
        r.turn.set_now(t0 + parse - Duration::from_millis(1));
        r.expire(r.turn.now);
        assert!(r.conns[key].transport.memory().sent.is_empty(), "not yet");
        r.turn.set_now(t0 + parse);
        r.expire(r.turn.now);
        let sent = r.conns[key].transport.memory().take_sent();
        assert_eq!(responses(&sent)[0].status, 408);
        // Lingering: dropped when that deadline passes too.
        let linger = r.conns[key].due(&r.app.config.timeouts).unwrap();
        assert!(linger > r.turn.now);
        r.turn.set_now(linger);
        r.expire(linger);
        assert!(
            !r.conns.contains(key),
            "the lingering connection was dropped"
        );
    }

    #[test]
    fn commands_run_on_the_loop_and_a_panicking_one_is_survived() {
        let (mut r, tx, _docs) = reactor();
        let ran = Arc::new(AtomicUsize::new(0));
        let count = |ran: &Arc<AtomicUsize>| -> Command {
            let ran = Arc::clone(ran);
            Box::new(move |hub: &mut Hub| {
                assert_eq!(hub.stats().websockets_open, 0);
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        tx.send(count(&ran)).unwrap();
        tx.send(Box::new(|_: &mut Hub| panic!("a command panics")))
            .unwrap();
        tx.send(count(&ran)).unwrap();
        let stop = Arc::clone(&r.shared.stop);
        tx.send(Box::new(move |_: &mut Hub| {
            stop.store(true, Ordering::Release)
        }))
        .unwrap();
        r.shared.waker.wake().unwrap();
        // Should the loop not stop, stop it from outside after a while.
        let (done, finished) = mpsc::channel::<()>();
        let shared = Arc::clone(&r.shared);
        let guard = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(Duration::from_secs(10)) {
                shared.stop.store(true, Ordering::Release);
                let _ = shared.waker.wake();
            }
        });
        r.run().unwrap();
        drop(done);
        guard.join().unwrap();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "both commands around the panic ran"
        );
    }
}
