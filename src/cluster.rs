//! What the loops of one process share when there are several (workers) or
//! when rooms span machines (the backplane): a bounded link to each loop,
//! the room counts across workers, and a board of every worker's counters.
//!
//! A loop never waits on another: a delivery for another worker is an owned
//! [`Remote`] put on that worker's bounded channel (then its waker is rung),
//! and a full channel drops it, counted by the sender. Nothing here is
//! touched on the path of a message to the loop's own connections; with one
//! worker and no backplane there is no cluster at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

use crate::message::{serial, ConnId, Message};
use crate::stats::{BackplaneStats, Stats};

/// Deliveries waiting for one worker, at most; more are dropped (and counted).
pub(crate) const LINK_CAPACITY: usize = 8192;

/// A message owned, to cross threads; shared by every worker it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Text(Arc<str>),
    Binary(Arc<[u8]>),
}

impl Payload {
    pub fn of(msg: Message<'_>) -> Payload {
        match msg {
            Message::Text(t) => Payload::Text(t.into()),
            Message::Binary(b) => Payload::Binary(b.into()),
        }
    }

    pub fn message(&self) -> Message<'_> {
        match self {
            Payload::Text(t) => Message::Text(t),
            Payload::Binary(b) => Message::Binary(b),
        }
    }
}

/// A delivery made on one loop for connections of another (worker or node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remote {
    /// To every member of `room` there but `except`.
    Publish {
        room: Arc<str>,
        msg: Payload,
        except: Option<ConnId>,
    },
    /// To every WebSocket there but `except`.
    Broadcast {
        msg: Payload,
        except: Option<ConnId>,
    },
    /// To one connection.
    Send { to: ConnId, msg: Payload },
}

/// The way into one worker's loop.
#[derive(Debug)]
pub(crate) struct Link {
    pub tx: SyncSender<Remote>,
    pub waker: Arc<Waker>,
}

impl Link {
    /// Queues a delivery and wakes the loop; false (dropped) when its queue is full.
    pub fn offer(&self, remote: Remote) -> bool {
        match self.tx.try_send(remote) {
            Ok(()) => {
                // A loop that is gone has no connections to deliver to.
                let _ = self.waker.wake();
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

/// The backplane's counters, moved by its threads and the loops.
#[derive(Debug, Default)]
pub(crate) struct BackplaneCounters {
    pub node: String,
    /// Subscribed to the channel now.
    pub subscribed: AtomicBool,
    /// The publishing connection is up now.
    pub publishing: AtomicBool,
    /// Set by the subscriber when Redis was lost: the publishing connection
    /// is likely dead too, and is made again.
    #[cfg_attr(not(feature = "backplane"), allow(dead_code))]
    pub stale: AtomicBool,
    pub outages: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
}

impl BackplaneCounters {
    pub fn new(node: &str) -> BackplaneCounters {
        BackplaneCounters {
            node: node.to_string(),
            ..BackplaneCounters::default()
        }
    }

    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BackplaneStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackplaneStats {
            node: self.node.clone(),
            connected: self.subscribed.load(Ordering::Relaxed)
                && self.publishing.load(Ordering::Relaxed),
            outages: get(&self.outages),
            sent: get(&self.sent),
            received: get(&self.received),
            dropped: get(&self.dropped),
            malformed: get(&self.malformed),
        }
    }
}

/// Every worker's counters, written by each worker a few times a second.
#[derive(Debug, Default)]
pub(crate) struct Board {
    stats: Mutex<Vec<Stats>>,
    /// Worker loops restarted after a panic, in all.
    pub restarts: AtomicU64,
    /// With a backplane, its counters.
    pub backplane: Option<Arc<BackplaneCounters>>,
}

impl Board {
    pub fn new(workers: usize, backplane: Option<Arc<BackplaneCounters>>) -> Board {
        Board {
            stats: Mutex::new(vec![Stats::default(); workers]),
            restarts: AtomicU64::new(0),
            backplane,
        }
    }

    pub fn post(&self, worker: usize, stats: &Stats) {
        if let Some(slot) = lock(&self.stats).get_mut(worker) {
            slot.clone_from(stats);
        }
    }

    /// Each worker's counters as last posted, with the restarts filled in.
    pub fn read(&self) -> Vec<Stats> {
        let mut all = lock(&self.stats).clone();
        let restarts = self.restarts.load(Ordering::Relaxed);
        let backplane = self.backplane.as_ref().map(|b| b.snapshot());
        for s in &mut all {
            s.worker_restarts = restarts;
            s.backplane.clone_from(&backplane);
        }
        all
    }
}

/// What one worker's hub knows of the others.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    /// This worker's index.
    pub worker: usize,
    /// This process's node (its index in the node names; 0 without a backplane).
    pub node: u16,
    /// Every worker's link, by index (this one's included, unused).
    pub links: Arc<[Link]>,
    /// Members of each room across the workers.
    rooms: Arc<Mutex<HashMap<Box<str>, usize>>>,
    pub board: Arc<Board>,
    /// The backplane thread's queue, with a backplane.
    pub backplane: Option<SyncSender<Remote>>,
}

impl Cluster {
    pub fn new(
        links: Arc<[Link]>,
        board: Arc<Board>,
        node: u16,
        backplane: Option<SyncSender<Remote>>,
    ) -> Cluster {
        Cluster {
            worker: 0,
            node,
            links,
            rooms: Arc::default(),
            board,
            backplane,
        }
    }

    /// The same cluster seen from worker `worker`.
    pub fn for_worker(&self, worker: usize) -> Cluster {
        Cluster {
            worker,
            ..self.clone()
        }
    }

    /// True if `id` belongs to another worker or node.
    #[inline]
    pub fn is_remote(&self, id: ConnId) -> bool {
        id.worker() != self.worker || serial::node(id.serial) != self.node
    }

    /// Hands a delivery to every other worker and the backplane; returns
    /// how many of them dropped it (full queues).
    pub fn spread(&self, remote: &Remote) -> u64 {
        let mut dropped = 0;
        for (i, link) in self.links.iter().enumerate() {
            if i != self.worker && !link.offer(remote.clone()) {
                dropped += 1;
            }
        }
        if !self.to_backplane(remote.clone()) {
            dropped += 1;
        }
        dropped
    }

    /// Sends to a connection of another worker or node; false if dropped
    /// (a full queue, or no way to that node).
    pub fn send(&self, to: ConnId, msg: Message<'_>) -> bool {
        let remote = Remote::Send {
            to,
            msg: Payload::of(msg),
        };
        if serial::node(to.serial) != self.node {
            return self.backplane.is_some() && self.to_backplane(remote);
        }
        self.links.get(to.worker()).is_some_and(|l| l.offer(remote))
    }

    /// False if the backplane's queue is full (true without a backplane).
    fn to_backplane(&self, remote: Remote) -> bool {
        let Some(tx) = &self.backplane else {
            return true;
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(remote) {
            if let Some(counters) = &self.board.backplane {
                BackplaneCounters::add(&counters.dropped);
            }
            return false;
        }
        true
    }

    /// A member joined (`+1`) or left (`-1`) a room on this worker.
    pub fn count(&self, room: &str, joined: bool) {
        let mut rooms = lock(&self.rooms);
        if joined {
            *rooms.entry(room.into()).or_insert(0) += 1;
        } else if let Some(n) = rooms.get_mut(room) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rooms.remove(room);
            }
        }
    }

    /// Members of a room on every worker of this process.
    pub fn room_size(&self, room: &str) -> usize {
        lock(&self.rooms).get(room).copied().unwrap_or(0)
    }
}

/// A poisoned lock still holds good counts: a panic elsewhere left them whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every worker's counters, as last posted (a few times a second), for a
/// status page served by one of them. Get it with
/// [`Server::stats_board`](crate::Server::stats_board).
#[derive(Debug, Clone)]
pub struct StatsBoard {
    board: Arc<Board>,
    worker: usize,
}

impl StatsBoard {
    pub(crate) fn new(board: Arc<Board>, worker: usize) -> StatsBoard {
        StatsBoard { board, worker }
    }

    /// Each worker's counters, by index; this worker's replaced by `here`
    /// (its own, up to date: [`Request::stats`](crate::Request::stats)).
    pub fn workers(&self, here: &Stats) -> Vec<Stats> {
        let mut all = self.board.read();
        if let Some(mine) = all.get_mut(self.worker) {
            let (restarts, backplane) = (mine.worker_restarts, mine.backplane.take());
            mine.clone_from(here);
            mine.worker_restarts = restarts;
            mine.backplane = backplane;
        }
        all
    }

    /// Every worker's counters added up (this worker's from `here`).
    pub fn total(&self, here: &Stats) -> Stats {
        let mut total = Stats::default();
        for stats in self.workers(here) {
            total.merge(&stats);
        }
        total
    }
}
