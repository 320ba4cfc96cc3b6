//! The public face of the reactor: bind, register handlers, run, stop.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Poll, Waker};

use crate::app::App;
use crate::config::Config;
use crate::error::StartError;
use crate::handler::Handler;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::reactor::{Reactor, Shared, WAKER};

/// A bound server: its listeners are open, its loop not yet running.
///
/// Build it from a [`Config`], register handlers, then call [`Server::run`]
/// on the thread that should serve. Everything runs on that one thread; use a
/// [`ServerHandle`] to stop it from another.
///
/// ```no_run
/// use wisp::{Config, Response, Server};
///
/// let config = Config::load("web.json5".as_ref())?;
/// let mut server = Server::bind(config)?;
/// server.action("/api/status", |_req| Response::json(&serde_json::json!({ "ok": true })));
/// println!("listening on {:?}", server.local_addrs());
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    reactor: Reactor,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens every `listen` address of the config and checks the documents folders.
    /// Port 0 binds a free port; read it back with [`Server::local_addrs`].
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let app = App::new(config)?;
        let poll = Poll::new().map_err(StartError::Io)?;
        let mut listeners = Vec::with_capacity(app.config.listen.len());
        for &addr in &app.config.listen {
            let listener =
                TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
            listeners.push(listener);
        }
        Reactor::register(&poll, &mut listeners).map_err(StartError::Io)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(StartError::Io)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            waker,
        });
        Ok(Server {
            reactor: Reactor::new(poll, listeners, app, shared),
        })
    }

    /// The addresses the server listens on (with real ports when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.reactor.local_addrs()
    }

    /// Registers an HTTP action handler on an `action` route.
    ///
    /// `prefix` follows the route rule: ending in `/` it matches every path
    /// below it, otherwise exactly. The longest matching prefix wins. The
    /// handler runs on the server thread, so it must not block.
    pub fn action<F>(&mut self, prefix: &str, handler: F) -> &mut Self
    where
        F: FnMut(&Request<'_>) -> Response + 'static,
    {
        self.reactor.app.add_action(prefix, Box::new(handler));
        self
    }

    /// Registers a WebSocket handler on an `action` route.
    ///
    /// `prefix` follows the same rule as [`Server::action`]. A GET with a
    /// valid upgrade becomes a WebSocket served by `handler`'s callbacks;
    /// other requests to the path are answered 426 (or 400/405 for broken
    /// handshakes).
    pub fn websocket<H: Handler>(&mut self, prefix: &str, handler: H) -> &mut Self {
        self.reactor.app.add_websocket(prefix, Box::new(handler));
        self
    }

    /// A handle that can stop the server from any thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.reactor.shared),
        }
    }

    /// Serves until [`ServerHandle::stop`] is called.
    pub fn run(mut self) -> io::Result<()> {
        self.reactor.run()
    }
}

/// Controls a running server from any thread.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// Asks the loop to stop; [`Server::run`] returns soon after.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        // If the wake-up cannot be delivered the loop is already gone.
        let _ = self.shared.waker.wake();
    }
}
