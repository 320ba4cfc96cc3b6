//! Several loops on one machine: `web.workers` threads, each a whole wisp
//! loop with its own listener on the same address (`SO_REUSEPORT`, so the
//! kernel spreads the connections), its own connections, handlers and rooms.
//!
//! They share nothing on the path of a message: what one loop sends to the
//! connections of another crosses a bounded queue (see `cluster`). A worker
//! whose loop panics is started again on the same listener; the others go on.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;

use crate::cluster::{BackplaneCounters, Board, Cluster, Link, LINK_CAPACITY};
use crate::config::Config;
use crate::error::StartError;
use crate::reactor::{Command, Listener, Parts};
use crate::server::{loop_parts, open_listeners, Server, ServerHandle};
use crate::stats::Stats;

/// A server of several loops (`web.workers`), each on its own thread.
///
/// `setup` runs once on each worker's thread (and again when a worker is
/// restarted after a panic) to register the handlers, so **every worker has
/// its own handlers**: a handler's fields are per worker. Keep what all of
/// them must see in an `Arc<Mutex<…>>` (or atomics) captured by `setup`;
/// rooms, [`ConnId`](crate::ConnId) sends, broadcasts and room counts
/// already span the workers.
///
/// ```no_run
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use wisp::{Config, Handler, Message, WebSocket, Workers};
///
/// /// Counts messages on every worker: the count is shared, the handler is not.
/// struct Counter(Arc<AtomicU64>);
///
/// impl Handler for Counter {
///     type State = ();
///     fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, _msg: Message<'_>) {
///         let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
///         ws.send(Message::Text(&n.to_string()));
///     }
/// }
///
/// let mut config = Config::default();
/// config.workers = 4;
/// let total = Arc::new(AtomicU64::new(0));
/// let workers = Workers::start(config, move |server| {
///     server.websocket("/ws/count", Counter(Arc::clone(&total)));
/// })?;
/// workers.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// With `workers: 1` and no backplane, [`Server::bind`] and
/// [`Server::run`] do the same on the calling thread.
pub struct Workers {
    threads: Vec<JoinHandle<io::Result<()>>>,
    handles: Vec<ServerHandle>,
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    board: Arc<Board>,
    /// Ends the backplane's threads.
    backplane_stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.handles.len())
            .field("listen", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Opens the listeners `config.workers` times over and starts a loop on
    /// each, set up by `setup`. Returns once every worker serves (or the
    /// first error: then the others are stopped).
    pub fn start<F>(config: Config, setup: F) -> Result<Workers, StartError>
    where
        F: Fn(&mut Server) + Send + Sync + 'static,
    {
        let count = config.workers.clamp(1, crate::config::MAX_WORKERS);
        let (first, tls_fingerprint) = open_listeners(&config, &|addr| reuse_port(addr))?;
        let addrs: Vec<SocketAddr> = first
            .iter()
            .map(|l| l.socket.local_addr())
            .collect::<io::Result<_>>()
            .map_err(StartError::Io)?;
        let tls_addrs: Vec<SocketAddr> = first
            .iter()
            .zip(&addrs)
            .filter(|(l, _)| !matches!(l.acceptor, crate::transport::Acceptor::Plain))
            .map(|(_, a)| *a)
            .collect();
        let mut sets = vec![first];
        for _ in 1..count {
            sets.push(same_listeners(&sets[0], &addrs)?);
        }
        let mut parts = Vec::with_capacity(count);
        let mut links = Vec::with_capacity(count);
        for listeners in sets {
            let (mut p, commands) = loop_parts(listeners).map_err(StartError::Io)?;
            let (tx, rx) = mpsc::sync_channel(LINK_CAPACITY);
            p.remote = Some(rx);
            links.push(Link {
                tx,
                waker: Arc::clone(&p.shared.waker),
            });
            parts.push((p, commands));
        }
        let links: Arc<[Link]> = links.into();
        let counters = config
            .backplane
            .as_ref()
            .map(|b| Arc::new(BackplaneCounters::new(&b.node)));
        let board = Arc::new(Board::new(count, counters.clone()));
        let node = crate::backplane::node_of(&config);
        let backplane =
            crate::backplane::start(&config, &links, counters.as_ref()).map_err(StartError::Io)?;
        let queue = backplane.as_ref().map(|b| b.queue.clone());
        let cluster = Cluster::new(links, Arc::clone(&board), node, queue);
        let setup = Arc::new(setup);
        let mut workers = Workers {
            threads: Vec::with_capacity(count),
            handles: Vec::with_capacity(count),
            addrs,
            tls_addrs,
            board,
            backplane_stop: backplane.map(|b| b.stop),
        };
        for (index, (parts, commands)) in parts.into_iter().enumerate() {
            let (ready, started) = mpsc::channel();
            let worker = Worker {
                index,
                config: config.clone(),
                tls_fingerprint: tls_fingerprint.clone(),
                cluster: cluster.for_worker(index),
            };
            let setup = Arc::clone(&setup);
            let thread = std::thread::Builder::new()
                .name(format!("wisp-worker-{index}"))
                .spawn(move || worker.run(parts, commands, &*setup, ready))
                .map_err(StartError::Io)?;
            workers.threads.push(thread);
            match started.recv() {
                Ok(Ok(handle)) => workers.handles.push(handle),
                Ok(Err(e)) => return Err(workers.abandon(e)),
                Err(_) => {
                    let e = StartError::Io(io::Error::other("a worker died as it started"));
                    return Err(workers.abandon(e));
                }
            }
        }
        Ok(workers)
    }

    /// Stops the workers already running after one failed to start.
    fn abandon(self, e: StartError) -> StartError {
        self.stop();
        let _ = self.wait();
        e
    }

    /// The addresses every worker listens on: the `http://` ones, then the
    /// `https://` ones (with real ports when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The addresses of the `https://` listeners.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls_addrs.clone()
    }

    /// A handle to each worker, by index. A send, publish or broadcast
    /// through any of them reaches every worker (as from a handler there).
    pub fn handles(&self) -> &[ServerHandle] {
        &self.handles
    }

    /// The counters of every worker added up, each fetched from its loop
    /// (as [`ServerHandle::stats`] does); `None` if one has stopped.
    pub fn stats(&self) -> Option<Stats> {
        let mut total = Stats::default();
        for handle in &self.handles {
            total.merge(&handle.stats()?);
        }
        total.worker_restarts = self.board.restarts.load(Ordering::Relaxed);
        total.backplane = self.board.read().into_iter().find_map(|s| s.backplane);
        Some(total)
    }

    /// Stops every worker (see [`ServerHandle::stop`]); [`Workers::wait`]
    /// returns once they have finished.
    pub fn stop(&self) {
        for handle in &self.handles {
            handle.stop();
        }
        if let Some(stop) = &self.backplane_stop {
            stop.store(true, Ordering::Relaxed);
        }
    }

    /// Waits until every worker has stopped; the first error of any.
    pub fn wait(self) -> io::Result<()> {
        let stop = self.backplane_stop.clone();
        let mut outcome = Ok(());
        for thread in self.threads {
            let result = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        // Stopped by a signal or handle rather than `Workers::stop`.
        if let Some(stop) = stop {
            stop.store(true, Ordering::Relaxed);
        }
        outcome
    }
}

/// What a worker thread needs to build (and rebuild) its loop.
struct Worker {
    index: usize,
    config: Config,
    tls_fingerprint: Option<String>,
    cluster: Cluster,
}

impl Worker {
    /// Builds the loop, reports it ready (or why not), and serves; a loop
    /// that panics is built again on the same listeners and queues.
    fn run(
        self,
        mut parts: Parts,
        mut commands: Sender<Command>,
        setup: &(dyn Fn(&mut Server) + Sync),
        ready: Sender<Result<ServerHandle, StartError>>,
    ) -> io::Result<()> {
        let mut ready = Some(ready);
        loop {
            let built = Server::assemble(
                self.config.clone(),
                parts,
                commands,
                self.tls_fingerprint.clone(),
                Some(self.cluster.clone()),
            );
            let mut server = match built {
                Ok(server) => server,
                Err(e) => {
                    let message = e.to_string();
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                    }
                    return Err(io::Error::other(message));
                }
            };
            if catch_unwind(AssertUnwindSafe(|| setup(&mut server))).is_err() {
                let e = io::Error::other(format!("worker {}: the setup panicked", self.index));
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(StartError::Io(io::Error::other(e.to_string()))));
                }
                return Err(e);
            }
            if let Some(ready) = ready.take() {
                if self.index == 0 {
                    server.announce();
                }
                let _ = ready.send(Ok(server.handle()));
            }
            match catch_unwind(AssertUnwindSafe(|| server.serve())) {
                Ok(outcome) => return outcome,
                Err(_) if server.stopping() => return Ok(()),
                Err(_) => {
                    log::error!(
                        "worker {} panicked: its connections are lost; starting it again",
                        self.index
                    );
                    self.cluster.board.restarts.fetch_add(1, Ordering::Relaxed);
                    (parts, commands) = server.salvage()?;
                    drop(server);
                    // The dead loop may have taken a wake-up it never acted
                    // on: the new one looks at its queues first thing.
                    let _ = parts.shared.waker.wake();
                    // Should it panic at once again, do not spin.
                    std::thread::sleep(RESTART_PAUSE);
                }
            }
        }
    }
}

/// The pause before a worker that panicked is started again.
const RESTART_PAUSE: Duration = Duration::from_millis(50);

/// A listener that shares its port with the other workers' (`SO_REUSEPORT`:
/// the kernel spreads new connections over them).
fn reuse_port(addr: SocketAddr) -> Result<TcpListener, StartError> {
    open_shared(addr).map_err(|source| StartError::Bind { addr, source })
}

fn open_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{self, sockopt, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let fd = net::socket_with(family, SocketType::STREAM, flags, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    net::bind(&fd, &addr)?;
    net::listen(&fd, 1024)?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// Another set of the first worker's listeners, on the ports it got.
fn same_listeners(first: &[Listener], addrs: &[SocketAddr]) -> Result<Vec<Listener>, StartError> {
    first
        .iter()
        .zip(addrs)
        .map(|(l, &addr)| {
            Ok(Listener {
                socket: reuse_port(addr)?,
                acceptor: l.acceptor.clone(),
            })
        })
        .collect()
}
