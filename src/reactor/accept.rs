//! The accept path: new connections taken from the listeners into the
//! slab, or turned away with a 503 past the limits, and the back-off after
//! the process ran out of file descriptors.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::Reactor;
use crate::conn::{Conn, Ctx};
use crate::transport::Acceptor;

/// Connections accepted past the limit only to be answered 503, at most.
const TURN_AWAY_SLOTS: usize = 64;
/// How long to stop accepting after the process ran out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Reactor {
    pub(super) fn accept(&mut self, index: usize, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    let acceptor = listener.acceptor.clone();
                    self.admit(stream, &acceptor, index, peer, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) => {
                    // Retrying now would spin: the backlog stays full until a
                    // connection closes. Serve the others and try again soon.
                    log::warn!("out of file descriptors: not accepting for {ACCEPT_BACKOFF:?}");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern only that one client.
                Err(_) => {}
            }
        }
    }

    pub(super) fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
    }

    /// Takes a new connection into the slab, or answers 503 when full.
    fn admit(
        &mut self,
        stream: mio::net::TcpStream,
        acceptor: &Acceptor,
        listener: usize,
        peer: std::net::SocketAddr,
        now: Instant,
    ) {
        let ip_full = self.per_ip_full(peer.ip());
        if ip_full {
            self.app.hub.stats.limits.connections_per_ip += 1;
        }
        let over = ip_full || self.counted >= self.app.config.limits.connections;
        if over && self.conns.len() >= self.app.config.limits.connections + TURN_AWAY_SLOTS {
            return; // Dropping it closes it; we cannot even afford to answer.
        }
        let _ = stream.set_nodelay(true);
        let Ok(mut transport) = acceptor.transport(stream, now) else {
            return; // rustls could not start a connection: dropping it closes it.
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if self
            .poll
            .registry()
            .register(
                &mut transport,
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
            turn: &mut self.turn,
            key,
        };
        let mut conn = if over {
            Conn::turned_away(transport, peer, serial, &mut ctx)
        } else {
            self.counted += 1;
            if self.app.config.limits.connections_per_ip != usize::MAX {
                *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
            }
            self.app.hub.stats.connections_open += 1;
            self.app.hub.stats.connections_total += 1;
            Conn::new(transport, peer, serial, now)
        };
        conn.listener = u16::try_from(listener).unwrap_or(u16::MAX);
        entry.insert(conn);
        if over {
            // The 503 is in the scratch buffer: write it now.
            self.conn_event(key, false, false);
        } else {
            self.rearm(key);
        }
    }

    /// True when `limits.connectionsPerIp` connections from `ip` are open already.
    fn per_ip_full(&self, ip: std::net::IpAddr) -> bool {
        let limit = self.app.config.limits.connections_per_ip;
        limit != usize::MAX && self.per_ip.get(&ip).is_some_and(|&n| n >= limit)
    }
}

/// EMFILE / ENFILE: the process or the system is out of file descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
