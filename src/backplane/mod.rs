//! Rooms across machines (`web.backplane`): room publishes, broadcasts and
//! sends to other nodes' connections travel over Redis pub/sub, like
//! Socket.IO's Redis adapter and SignalR's Redis backplane.
//!
//! Two threads per process, never the loops: one takes what the loops put
//! on a bounded queue and `PUBLISH`es it; one is `SUBSCRIBE`d to the
//! channel and hands what other nodes published to every worker's queue.
//! The loops never wait on Redis: a full queue, or Redis out of reach,
//! drops the message and counts it. Each node skips its own messages (every
//! subscriber hears them). Delivery across nodes is at most once; a
//! sender's messages keep their order.
//!
//! Redis down at start: the server starts anyway and serves locally, and
//! both threads retry with a capped backoff (each outage logged and counted
//! once); lost while running: the same, and delivery resumes once Redis is back.

#[cfg(feature = "backplane")]
mod threads;
#[cfg(feature = "backplane")]
mod wire;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::cluster::{BackplaneCounters, Link, Remote};
use crate::config::Config;

/// Without the `backplane` feature a config that asks for one is refused.
#[cfg(not(feature = "backplane"))]
pub(crate) fn start(
    config: &Config,
    _links: &Arc<[Link]>,
    _counters: Option<&Arc<BackplaneCounters>>,
) -> std::io::Result<Option<Running>> {
    if config.backplane.is_none() {
        return Ok(None);
    }
    Err(std::io::Error::other(
        "web.backplane: this wisp was built without the `backplane` feature",
    ))
}

/// This node's index in the table of node names (0 without a backplane).
pub(crate) fn node_of(config: &Config) -> u16 {
    config
        .backplane
        .as_ref()
        .and_then(|b| crate::message::node_index(&b.node))
        .unwrap_or(0)
}

/// The running backplane: where the loops put what goes to other nodes,
/// and the flag that ends its threads.
#[derive(Debug)]
pub(crate) struct Running {
    pub queue: SyncSender<Remote>,
    pub stop: Arc<AtomicBool>,
}

#[cfg(feature = "backplane")]
/// Starts the backplane's threads, if the config has a backplane.
pub(crate) fn start(
    config: &Config,
    links: &Arc<[Link]>,
    counters: Option<&Arc<BackplaneCounters>>,
) -> std::io::Result<Option<Running>> {
    let (Some(settings), Some(counters)) = (&config.backplane, counters) else {
        return Ok(None);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (queue, rx) = std::sync::mpsc::sync_channel(threads::QUEUE);
    let side = threads::Side {
        settings: settings.clone(),
        node: node_of(config),
        counters: Arc::clone(counters),
        stop: Arc::clone(&stop),
    };
    let publisher = side.clone();
    std::thread::Builder::new()
        .name("wisp-backplane-out".into())
        .spawn(move || publisher.publish_all(&rx))?;
    let links = Arc::clone(links);
    let max = usize::try_from(config.limits.max_message).unwrap_or(usize::MAX);
    std::thread::Builder::new()
        .name("wisp-backplane-in".into())
        .spawn(move || side.subscribe(&links, max))?;
    Ok(Some(Running { queue, stop }))
}
