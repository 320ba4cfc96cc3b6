//! The public face of the reactor: [`Server`] binds, takes handlers, runs
//! and stops; [`ServerHandle`] (`handle.rs`) reaches it from other threads.

mod handle;

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};

use crate::app::App;
use crate::cluster::{Cluster, StatsBoard};
use crate::config::Config;
use crate::error::StartError;
use crate::events::EventSource;
use crate::http::request::{BodyStream, Request};
use crate::http::response::Response;
use crate::hub::Hub;
use crate::logger::START;
use crate::reactor::{Command, Listener, Parts, Reactor, Shared, WAKER};
use crate::transport::Acceptor;
use crate::user_timers::TimerId;
use crate::ws_api::{Handler, Served};

pub use handle::{Outgoing, ServerHandle};

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
    commands: Sender<Command>,
    /// Signal handlers wake the loop by writing here (see
    /// [`Server::stop_on_signals`]); the loop owns the reading end.
    signal_pipe: Option<std::os::unix::net::UnixStream>,
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
        let (listeners, tls_fingerprint) = open_listeners(&config, &|addr| {
            TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })
        })?;
        let (parts, commands) = loop_parts(listeners).map_err(StartError::Io)?;
        Server::assemble(config, parts, commands, tls_fingerprint, None)
    }

    /// A server on listeners (and queues) made already: one worker's.
    pub(crate) fn assemble(
        config: Config,
        parts: Parts,
        commands: Sender<Command>,
        tls_fingerprint: Option<String>,
        cluster: Option<Cluster>,
    ) -> Result<Server, StartError> {
        let limits = &config.limits;
        if limits.max_frame > limits.max_message {
            // Harmless (a message is the bound), but says the pair was misread.
            log::warn!(
                "limits.maxFrame ({} bytes) is over limits.maxMessage ({} bytes): no frame can be longer than its message",
                limits.max_frame,
                limits.max_message
            );
        }
        let mut app = App::new(config)?;
        let bound: Vec<SocketAddr> = parts
            .listeners
            .iter()
            .map(|l| l.socket.local_addr())
            .collect::<io::Result<_>>()
            .map_err(StartError::Io)?;
        app.bound(&bound);
        let mut reactor = Reactor::new(
            parts.poll,
            parts.listeners,
            app,
            parts.shared,
            parts.commands,
        );
        reactor.tls_fingerprint = tls_fingerprint;
        reactor.remote = parts.remote;
        if let Some(cluster) = cluster {
            reactor.join_cluster(cluster, parts.next_serial);
        }
        Ok(Server {
            reactor,
            commands,
            signal_pipe: None,
        })
    }

    /// This worker's index (0 with one worker).
    pub fn worker(&self) -> usize {
        self.reactor
            .app
            .hub
            .cluster
            .as_ref()
            .map_or(0, |c| c.worker)
    }

    /// Every worker's counters, for a status page (see [`StatsBoard`]);
    /// `None` for a lone loop, whose [`Request::stats`] say it all.
    pub fn stats_board(&self) -> Option<StatsBoard> {
        let cluster = self.reactor.app.hub.cluster.as_ref()?;
        Some(StatsBoard::new(Arc::clone(&cluster.board), cluster.worker))
    }

    /// The addresses the server listens on (with real ports when 0 was
    /// asked for): the `http://` ones, then the `https://` ones.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.reactor.local_addrs()
    }

    /// The addresses of the `https://` listeners.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.reactor.tls_addrs()
    }

    /// The SHA-256 fingerprint of the `https://` listeners' certificate (of
    /// its DER), as upper-case hex pairs joined by colons (`AB:CD:…`, the
    /// form browsers and `openssl x509 -fingerprint -sha256` show); `None`
    /// without an `https://` listener.
    ///
    /// With `tls: { certificate: 'generate' }` it is what a client pins: the
    /// same on every start while the pair in `tls.store` is kept.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.reactor.tls_fingerprint.clone()
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

    /// Registers a Server-Sent Events source on a path of an `action`
    /// route: a `GET` there opens an event stream (`text/event-stream`)
    /// when the source's `on_open` says so. The stream is in the [`Hub`]
    /// like a WebSocket: what is sent or published to it goes out as events.
    ///
    /// ```no_run
    /// # let mut server = wisp::Server::bind(wisp::Config::default())?;
    /// server.events("/api/events", |_req: &wisp::Request<'_>, stream: &mut wisp::EventStream<'_>| {
    ///     stream.join("news").map_err(|_| wisp::Response::new(503))?;
    ///     stream.send("welcome");
    ///     Ok(())
    /// });
    /// // Elsewhere, from a timer or another thread: every stream in the room gets it.
    /// server.handle().publish("news", "an event's data");
    /// # Ok::<(), wisp::StartError>(())
    /// ```
    pub fn events(&mut self, prefix: &str, source: impl EventSource) -> &mut Self {
        self.reactor.app.add_events(prefix, Box::new(source));
        self
    }

    /// Registers an action that takes its request body piece by piece, on
    /// an `action` route: bodies up to `limits.upload` (not `limits.body`),
    /// never gathered in memory.
    ///
    /// `open` sees the request's head (its body is empty) and returns a
    /// [`BodyStream`] for the body, or a response that refuses it (then the
    /// body is not read and the connection closes). `Expect: 100-continue`
    /// is answered only once `open` accepted. A body over `limits.upload`
    /// is 413 (before reading it when `Content-Length` says so) and closes
    /// the connection. A request without a body goes straight to `on_end`.
    pub fn action_streaming<F, S>(&mut self, prefix: &str, mut open: F) -> &mut Self
    where
        F: FnMut(&Request<'_>) -> Result<S, Response> + 'static,
        S: BodyStream + 'static,
    {
        self.reactor.app.add_streaming(
            prefix,
            Box::new(move |req| open(req).map(|s| Box::new(s) as Box<dyn BodyStream>)),
        );
        self
    }

    /// Registers an action that takes `multipart/form-data` uploads, on an
    /// `action` route.
    ///
    /// Such a body streams into `upload.dir` as it arrives: each file part
    /// into a file named by the server, plain fields (64 KiB in all)
    /// gathered; over `limits.upload` it is 413 and the partial files are
    /// removed. Then `handler` runs with [`Request::uploads`] and
    /// [`Request::form_fields`]; once it returns, the files are removed
    /// unless it kept them ([`Request::keep_upload`],
    /// [`UploadedFile::keep`](crate::UploadedFile::keep)) or `upload.remove`
    /// is `false`. Other requests reach `handler` as with [`Server::action`].
    pub fn action_with_uploads<F>(&mut self, prefix: &str, handler: F) -> &mut Self
    where
        F: FnMut(&Request<'_>) -> Response + 'static,
    {
        self.reactor.app.add_uploads(prefix, Box::new(handler));
        self
    }

    /// Adds a gateway route: requests and WebSocket upgrades under
    /// `prefix` go on to `proxy`'s downstream hosts (see the README's
    /// "Gateway"). It comes before the config's routes. A bad template or
    /// an empty host list is an error naming the route.
    ///
    /// ```no_run
    /// use wisp::config::{ProxyConfig, Scheme};
    /// let mut server = wisp::Server::bind(wisp::Config::default()).unwrap();
    /// server.proxy("/gateway/", ProxyConfig::new(&["127.0.0.1:5001"], Scheme::Ws)).unwrap();
    /// ```
    pub fn proxy(
        &mut self,
        prefix: &str,
        proxy: crate::config::ProxyConfig,
    ) -> Result<&mut Self, StartError> {
        self.reactor.app.add_proxy(prefix, proxy)?;
        Ok(self)
    }

    /// Registers a WebSocket handler on an `action` route.
    ///
    /// `prefix` follows the same rule as [`Server::action`]. A GET with a
    /// valid upgrade becomes a WebSocket served by `handler`'s callbacks;
    /// other requests to the path are answered 426 (or 400/405 for broken
    /// handshakes).
    pub fn websocket<H: Handler>(&mut self, prefix: &str, handler: H) -> &mut Self {
        self.reactor
            .app
            .add_websocket(prefix, None, Box::new(Served::new(handler)));
        self
    }

    /// Registers a WebSocket handler for one subprotocol on `prefix`.
    ///
    /// Several handlers may share a prefix, one per subprotocol (and one
    /// registered with [`Server::websocket`] for clients that offer none):
    /// the subprotocol negotiated in the handshake picks the handler. The
    /// server offers every registered subprotocol besides `webSockets.protocol`.
    pub fn websocket_protocol<H: Handler>(
        &mut self,
        prefix: &str,
        protocol: &str,
        handler: H,
    ) -> &mut Self {
        self.reactor
            .app
            .add_websocket(prefix, Some(protocol), Box::new(Served::new(handler)));
        self
    }

    /// Runs `f` on the server thread every `period`, first after one period;
    /// `f` reaches every connection through the [`Hub`].
    pub fn every(&mut self, period: Duration, f: impl FnMut(&mut Hub) + 'static) -> TimerId {
        self.reactor.app.hub.every(period, f)
    }

    /// Runs `f` on the server thread once, after `delay`.
    pub fn after(&mut self, delay: Duration, f: impl FnMut(&mut Hub) + 'static) -> TimerId {
        self.reactor.app.hub.after(delay, f)
    }

    /// A handle to the running server, for other threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.reactor.shared),
            commands: self.commands.clone(),
        }
    }

    /// Stops the server gracefully (as [`ServerHandle::stop`] does) when the
    /// process receives one of `signals`, e.g. `SIGINT` and `SIGTERM`.
    ///
    /// No thread waits for them: the signal handler (signal-hook's, no
    /// `unsafe` of ours) sets the stop flag and writes a byte to a socket
    /// the loop polls, which wakes it.
    pub fn stop_on_signals(&mut self, signals: &[i32]) -> io::Result<()> {
        let flag = Arc::clone(&self.reactor.shared.stop);
        self.on_signals(signals, &flag)
    }

    /// Reloads the TLS certificate (as [`ServerHandle::reload_tls`] does)
    /// when the process receives one of `signals`, e.g. `SIGHUP`. Like
    /// [`Server::stop_on_signals`], no thread waits for them.
    pub fn reload_tls_on_signals(&mut self, signals: &[i32]) -> io::Result<()> {
        let flag = Arc::clone(&self.reactor.shared.reload);
        self.on_signals(signals, &flag)
    }

    /// Sets `flag` and wakes the loop on each of `signals`.
    fn on_signals(&mut self, signals: &[i32], flag: &Arc<AtomicBool>) -> io::Result<()> {
        let tx = match &self.signal_pipe {
            Some(tx) => tx.try_clone()?,
            None => {
                let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
                rx.set_nonblocking(true)?;
                tx.set_nonblocking(true)?;
                let mut rx = mio::net::UnixStream::from_std(rx);
                self.reactor
                    .registry()
                    .register(&mut rx, WAKER, Interest::READABLE)?;
                self.reactor.signal_pipe = Some(rx);
                self.signal_pipe = Some(tx.try_clone()?);
                tx
            }
        };
        for &signal in signals {
            // The flag first: the byte wakes a loop that must find it set.
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, tx.try_clone()?)?;
        }
        Ok(())
    }

    /// Serves until [`ServerHandle::stop`] is called.
    pub fn run(mut self) -> io::Result<()> {
        self.announce();
        self.serve()
    }

    /// Runs the loop (a worker's, again after a panic).
    pub(crate) fn serve(&mut self) -> io::Result<()> {
        let _ = self
            .reactor
            .shared
            .loop_thread
            .set(std::thread::current().id());
        self.reactor.run()
    }

    /// Gives back what the next loop of a worker is made of (see
    /// `Reactor::salvage`); the lost connections leave the room counts.
    pub(crate) fn salvage(&mut self) -> io::Result<(Parts, Sender<Command>)> {
        let hub = &mut self.reactor.app.hub;
        if catch_unwind(AssertUnwindSafe(|| hub.leave_cluster())).is_err() {
            log::error!("a panicked worker's room counts could not be taken back");
        }
        Ok((self.reactor.salvage()?, self.commands.clone()))
    }

    /// True once [`ServerHandle::stop`] was called.
    pub(crate) fn stopping(&self) -> bool {
        self.reactor.shared.stop.load(Ordering::Acquire)
    }

    /// Logs the start line — where the server listens — and the TLS
    /// certificate's fingerprint (what [`init_logging`](crate::init_logging)
    /// prints on stdout).
    pub(crate) fn announce(&self) {
        if !log::log_enabled!(target: START, log::Level::Info) {
            return;
        }
        let secure = self.tls_addrs();
        let urls: Vec<String> = self
            .local_addrs()
            .iter()
            .map(|a| {
                let scheme = if secure.contains(a) { "https" } else { "http" };
                format!("{scheme}://{a}")
            })
            .collect();
        let config = &self.reactor.app.config;
        let mut scale = String::new();
        if config.workers > 1 {
            scale = format!(" with {} workers", config.workers);
        }
        if let Some(backplane) = &config.backplane {
            scale += &format!(
                " as node {} (backplane {})",
                backplane.node, backplane.redis
            );
        }
        log::info!(
            target: START,
            "wisp {} serving {} on {}{scale}",
            env!("CARGO_PKG_VERSION"),
            config.documents.display(),
            urls.join(", ")
        );
        if let Some(fingerprint) = self.tls_fingerprint() {
            log::info!(target: START, "tls: certificate SHA-256 {fingerprint}");
        }
    }
}

/// Opens every listener of the config with `bind`: the `http://` ones,
/// then the `https://` ones; with the certificate's fingerprint.
pub(crate) fn open_listeners(
    config: &Config,
    bind: &dyn Fn(SocketAddr) -> Result<TcpListener, StartError>,
) -> Result<(Vec<Listener>, Option<String>), StartError> {
    let mut listeners = Vec::with_capacity(config.listen.len());
    for &addr in &config.listen {
        listeners.push(Listener {
            socket: bind(addr)?,
            acceptor: Acceptor::Plain,
        });
    }
    #[allow(unused_mut)] // Only TLS sets it.
    let mut tls_fingerprint = None;
    #[cfg(feature = "tls")]
    if !config.listen_tls.is_empty() {
        let loaded = crate::tls::load(config, true)?;
        let acceptor = Acceptor::Tls(loaded.config);
        for &addr in &config.listen_tls {
            listeners.push(Listener {
                socket: bind(addr)?,
                acceptor: acceptor.clone(),
            });
        }
        tls_fingerprint = Some(loaded.fingerprint);
    }
    Ok((listeners, tls_fingerprint))
}

/// A poll with the listeners registered, its waker, and the command queue.
pub(crate) fn loop_parts(mut listeners: Vec<Listener>) -> io::Result<(Parts, Sender<Command>)> {
    let poll = Poll::new()?;
    Reactor::register(&poll, &mut listeners)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let shared = Arc::new(Shared {
        stop: Arc::new(AtomicBool::new(false)),
        reload: Arc::new(AtomicBool::new(false)),
        waker,
        loop_thread: std::sync::OnceLock::new(),
    });
    let (commands, inbox) = mpsc::channel();
    let parts = Parts {
        poll,
        listeners,
        shared,
        commands: inbox,
        remote: None,
        next_serial: None,
    };
    Ok((parts, commands))
}
