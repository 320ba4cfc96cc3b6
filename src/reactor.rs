//! The event loop: one `mio::Poll`, the listeners, a slab of connections and their timers.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::app::App;
use crate::conn::{Conn, Ctx, Next};
use crate::timer::Timers;

/// Token of the cross-thread waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENER_BASE - i`; connections use their slab key.
const LISTENER_BASE: usize = usize::MAX - 1;
/// One read buffer for the whole loop, shared by every connection.
const READ_BUF: usize = 64 * 1024;
/// Connections accepted past the limit only to be answered 503, at most.
const TURN_AWAY_SLOTS: usize = 64;
/// How long to stop accepting after the process ran out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What other threads share with the loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub stop: AtomicBool,
    pub waker: Waker,
}

pub(crate) struct Reactor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: Slab<Conn>,
    /// Connections that count against `limits.connections`.
    counted: usize,
    timers: Timers,
    read_buf: Vec<u8>,
    scratch: Vec<u8>,
    next_serial: u64,
    /// Set after EMFILE: accepting resumes at this time.
    accept_paused_until: Option<Instant>,
    pub app: App,
    pub shared: Arc<Shared>,
}

impl Reactor {
    pub fn new(poll: Poll, listeners: Vec<TcpListener>, app: App, shared: Arc<Shared>) -> Reactor {
        Reactor {
            poll,
            listeners,
            conns: Slab::new(),
            counted: 0,
            timers: Timers::default(),
            read_buf: vec![0; READ_BUF],
            scratch: Vec::new(),
            next_serial: 0,
            accept_paused_until: None,
            app,
            shared,
        }
    }

    /// Registers the listeners; they are edge-triggered like everything else.
    pub fn register(poll: &Poll, listeners: &mut [TcpListener]) -> io::Result<()> {
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l, Token(LISTENER_BASE - i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Runs until a `ServerHandle` asks it to stop.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.shared.stop.load(Ordering::Acquire) {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.app.date.update(SystemTime::now());
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t > LISTENER_BASE - self.listeners.len() => {
                        self.accept(LISTENER_BASE - t, now);
                    }
                    Token(key) => self.conn_event(
                        key,
                        now,
                        event.is_readable() || event.is_error(),
                        event.is_read_closed(),
                    ),
                }
            }
            self.resume_accepting(now);
            self.expire(now);
        }
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let timer = self.timers.poll_timeout(now);
        let accept = self
            .accept_paused_until
            .map(|t| t.saturating_duration_since(now));
        match (timer, accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) => {
                    // Retrying now would spin: the backlog stays full until a
                    // connection closes. Serve the others and try again soon.
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern only that one client.
                Err(_) => {}
            }
        }
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
    }

    /// Takes a new connection into the slab, or answers 503 when full.
    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: Instant) {
        let over = self.counted >= self.app.config.limits.connections;
        if over && self.conns.len() >= self.app.config.limits.connections + TURN_AWAY_SLOTS {
            return; // Dropping it closes it; we cannot even afford to answer.
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let mut ctx = Ctx {
            app: &mut self.app,
            key,
            scratch: &mut self.scratch,
            now,
        };
        let conn = if over {
            Conn::turned_away(stream, peer, serial, &mut ctx)
        } else {
            self.counted += 1;
            Conn::new(stream, peer, serial, now)
        };
        entry.insert(conn);
        if over {
            // The 503 is in the scratch buffer: write it now.
            self.conn_event(key, now, false, false);
        } else {
            self.rearm(key);
        }
    }

    fn conn_event(&mut self, key: usize, now: Instant, readable: bool, read_closed: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut ctx = Ctx {
            app: &mut self.app,
            key,
            scratch: &mut self.scratch,
            now,
        };
        match conn.ready(&mut ctx, &mut self.read_buf, readable, read_closed) {
            Ok(Next::Keep) => self.rearm(key),
            Ok(Next::Close) | Err(_) => self.close(key),
        }
    }

    /// Fires every passed deadline.
    fn expire(&mut self, now: Instant) {
        while let Some(wake) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(wake.key) else {
                continue;
            };
            if conn.serial != wake.serial || !self.timers.fire(&mut conn.deadline, wake, now) {
                continue;
            }
            let mut ctx = Ctx {
                app: &mut self.app,
                key: wake.key,
                scratch: &mut self.scratch,
                now,
            };
            match conn.timeout(&mut ctx, &mut self.read_buf) {
                Ok(Next::Keep) => self.rearm(wake.key),
                Ok(Next::Close) | Err(_) => self.close(wake.key),
            }
        }
    }

    /// Recomputes a connection's deadline after it did something.
    fn rearm(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            let due = conn.due(&self.app.config.timeouts);
            self.timers.set(&mut conn.deadline, due, key, conn.serial);
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            conn.release(&mut self.app);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.counted {
                self.counted -= 1;
            }
        }
        self.scratch.clear();
    }

    /// The addresses the listeners are bound to.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

/// EMFILE / ENFILE: the process or the system is out of file descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
