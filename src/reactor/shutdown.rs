//! The start of a stop: listeners closed, WebSockets sent a 1001, idle
//! connections closed, and the deadline for the rest (`timeouts.shutdown`).

use std::time::Instant;

use super::Reactor;

impl Reactor {
    /// The loop is stopping: no more connections are accepted, every
    /// WebSocket gets a 1001 close, idle HTTP connections are closed, and
    /// requests in flight may finish (without keep-alive) until `timeouts.shutdown`.
    pub(super) fn begin_shutdown(&mut self, now: Instant) -> Option<Instant> {
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        self.listeners.clear();
        self.accept_paused_until = None;
        self.app.stopping = true;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let idle = match self.conns.get_mut(key) {
                Some(conn) => conn.wind_down(&mut self.app, &mut self.turn, key),
                None => continue,
            };
            if idle {
                self.close(key);
            } else {
                self.conn_event(key, false, false);
            }
        }
        log::info!("stopping: {} connections finishing", self.conns.len());
        self.app
            .config
            .timeouts
            .shutdown
            .and_then(|d| now.checked_add(d))
    }
}
