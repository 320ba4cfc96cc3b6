//! Rooms across machines: publishes, broadcasts and sends to other nodes'
//! connections, carried by Redis pub/sub (stub).

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::cluster::{Board, Link, Remote};
use crate::config::Config;

/// This node's index in the table of node names (0 without a backplane).
pub(crate) fn node_of(config: &Config) -> u16 {
    config
        .backplane
        .as_ref()
        .and_then(|b| crate::message::node_index(&b.node))
        .unwrap_or(0)
}

/// Starts the backplane thread, if the config has one.
pub(crate) fn start(
    _config: &Config,
    _links: &Arc<[Link]>,
    _board: &Arc<Board>,
) -> Option<SyncSender<Remote>> {
    None
}
