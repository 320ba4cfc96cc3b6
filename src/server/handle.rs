//! [`ServerHandle`]: a running server controlled from other threads, by
//! closures queued for the loop thread (which it wakes), and [`Outgoing`],
//! the owned message such a closure carries there. A handle is `Send` and
//! lives off the loop; [`Server`] (`mod.rs`) owns the loop and stays on its
//! one thread.
//!
//! [`Server`]: super::Server

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use crate::http::response::Response;
use crate::hub::Hub;
use crate::message::{ConnId, Message};
use crate::reactor::{Command, Shared};
use crate::stats::Stats;

/// Controls a running server from any thread: `Clone + Send`.
///
/// Everything it asks is done on the server thread, which it wakes up.
///
/// ```no_run
/// use wisp::{Config, Message, Server};
///
/// let server = Server::bind(Config::default())?;
/// let handle = server.handle();
/// std::thread::spawn(move || loop {
///     let reading = format!("{{\"temperature\": {}}}", 21.5);
///     if !handle.publish("sensors", reading) {
///         break; // the server has stopped
///     }
///     std::thread::sleep(std::time::Duration::from_secs(1));
/// });
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) commands: Sender<Command>,
}

/// A message to send from another thread, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Outgoing {
    fn message(&self) -> Message<'_> {
        match self {
            Outgoing::Text(t) => Message::Text(t),
            Outgoing::Binary(b) => Message::Binary(b),
        }
    }
}

impl From<String> for Outgoing {
    fn from(s: String) -> Self {
        Outgoing::Text(s)
    }
}

impl From<&str> for Outgoing {
    fn from(s: &str) -> Self {
        Outgoing::Text(s.to_string())
    }
}

impl From<Vec<u8>> for Outgoing {
    fn from(b: Vec<u8>) -> Self {
        Outgoing::Binary(b)
    }
}

impl ServerHandle {
    /// Runs `f` on the server thread with the [`Hub`]. Returns false if the
    /// server has stopped. A panic in `f` is caught there and costs only `f`.
    pub fn run(&self, f: impl FnOnce(&mut Hub) + Send + 'static) -> bool {
        if self.commands.send(Box::new(f)).is_err() {
            return false;
        }
        // If the wake-up cannot be delivered the loop is already gone.
        self.shared.waker.wake().is_ok()
    }

    /// Answers the request of connection `to` that its action answered
    /// [`Response::later`] (see [`Hub::respond`]). False if the server has stopped.
    pub fn respond(&self, to: ConnId, response: Response) -> bool {
        self.run(move |hub| hub.respond(to, response))
    }

    /// Starts a streamed later answer (see [`Hub::respond_stream`]).
    pub fn respond_stream(&self, to: ConnId, head: Response) -> bool {
        self.run(move |hub| hub.respond_stream(to, head))
    }

    /// The next piece of a streamed later answer (see [`Hub::respond_piece`]).
    pub fn respond_piece(&self, to: ConnId, piece: impl Into<Vec<u8>>) -> bool {
        let piece = piece.into();
        self.run(move |hub| hub.respond_piece(to, piece))
    }

    /// Ends a streamed later answer (see [`Hub::respond_end`]).
    pub fn respond_end(&self, to: ConnId) -> bool {
        self.run(move |hub| hub.respond_end(to))
    }

    /// Sends a message to one connection.
    pub fn send(&self, to: ConnId, msg: impl Into<Outgoing>) -> bool {
        let msg = msg.into();
        self.run(move |hub| {
            hub.send(to, msg.message());
        })
    }

    /// Sends a message to every member of a room.
    pub fn publish(&self, room: &str, msg: impl Into<Outgoing>) -> bool {
        let (room, msg) = (room.to_string(), msg.into());
        self.run(move |hub| {
            hub.publish(&room, msg.message(), None);
        })
    }

    /// Sends a message to every open WebSocket.
    pub fn broadcast(&self, msg: impl Into<Outgoing>) -> bool {
        let msg = msg.into();
        self.run(move |hub| hub.broadcast(msg.message(), None))
    }

    /// The server's counters, fetched from the server thread (waits up to
    /// five seconds; `None` if the server has stopped). From the server
    /// thread itself (a handler) it answers `None` at once, since the loop
    /// cannot serve a request while it waits for the answer: handlers read
    /// [`WebSocket::stats`](crate::WebSocket::stats) instead.
    pub fn stats(&self) -> Option<Stats> {
        if self.shared.loop_thread.get() == Some(&std::thread::current().id()) {
            return None;
        }
        let (tx, rx) = mpsc::channel();
        if !self.run(move |hub| {
            let _ = tx.send(hub.stats().clone());
        }) {
            return None;
        }
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Asks the server to read its TLS certificate, key and authority again
    /// (`web.tls`; with `certificate: 'generate'`, the pair in `tls.store`).
    /// Returns false if the server has stopped.
    ///
    /// The loop thread does it when it next wakes: handshakes from then on
    /// use the new pair, while connections already open keep the one they
    /// began with. A pair that does not load (unreadable, not matching,
    /// expired) leaves the old one in use and logs one `error` line saying
    /// why. Either way a counter moves, [`Stats::tls_reloads`] or
    /// [`Stats::tls_reload_failures`], and the reload is done before
    /// anything sent through a handle after this call returns: a
    /// [`ServerHandle::stats`] called next already sees the outcome. Without
    /// an `https://` listener it does nothing (and neither counter moves).
    ///
    /// ```no_run
    /// # let server = wisp::Server::bind(wisp::Config::default())?;
    /// # let handle = server.handle();
    /// let before = handle.stats().map_or(0, |s| s.tls_reloads);
    /// handle.reload_tls();
    /// let reloaded = handle.stats().is_some_and(|s| s.tls_reloads > before);
    /// # Ok::<(), wisp::StartError>(())
    /// ```
    pub fn reload_tls(&self) -> bool {
        self.shared.reload.store(true, Ordering::Release);
        // An empty command: it reports whether the loop is still there, and wakes it.
        self.run(|_| {})
    }

    /// Stops the server: every WebSocket is closed with 1001, what is queued
    /// gets one last chance to be written, and [`Server::run`](super::Server::run) returns.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        // If the wake-up cannot be delivered the loop is already gone.
        let _ = self.shared.waker.wake();
    }
}
