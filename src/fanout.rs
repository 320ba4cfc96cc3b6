//! Fan-out: what handlers send to other connections, handed to those
//! connections' output queues once the callback has returned.
//!
//! A frame for many recipients is encoded once (by the hub) and shared by
//! every queue it joins. This module decides, for each recipient, whether
//! the frame is queued, held until a `send_block` message there is
//! finished, dropped for backpressure, or closes a slow consumer — and
//! keeps the server's tallies of each. The connections it wrote to are
//! remembered and flushed by the loop at the end of the turn, one write each.

use std::collections::HashMap;
use std::mem;

use slab::Slab;

use crate::app::App;
use crate::conn::{live, Conn, Delivered, Relayed};
use crate::hub::{Delivery, Frames, Targets};
use crate::message::ConnId;
use crate::stats::Stats;
use crate::turn::Turn;
use crate::ws::close_code::CloseCode;

/// Deliveries waiting to be written, and frames waiting for a `send_block`.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    /// Connections that received deliveries, flushed at the end of the turn.
    dirty: Vec<usize>,
    /// Frames sent to connections in the middle of a `send_block` message,
    /// by slab key: they are queued once that message is finished.
    held: HashMap<usize, Held>,
    /// The hub's outbox's other half (see `deliver`); always empty between deliveries.
    spare: Spare,
}

/// An empty outbox kept for its capacity (no `Debug` for what it never holds).
#[derive(Default)]
struct Spare(Vec<Delivery>);

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spare(capacity {})", self.0.capacity())
    }
}

/// Frames waiting for one connection's `send_block` message to finish.
#[derive(Debug)]
struct Held {
    serial: u64,
    frames: Vec<Frames>,
    /// Their bytes: with the connection's backlog, bounded by `maxBackpressure`.
    bytes: usize,
}

/// What became of one frame's deliveries, for the server's counters.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    /// Payload bytes of the delivered frames.
    bytes: u64,
    dropped: u64,
    /// Slow consumers to close (`webSockets.closeOnBackpressure`).
    closing: Vec<ConnId>,
}

impl Tally {
    /// Counts one recipient's outcome (a refused or held frame counts
    /// nothing here).
    fn count(&mut self, id: ConnId, outcome: Delivered, payload: usize) {
        match outcome {
            Delivered::Queued => {
                self.delivered += 1;
                self.bytes += payload as u64;
            }
            Delivered::Dropped => self.dropped += 1,
            Delivered::Close => {
                self.dropped += 1;
                // Once per connection, however many of its frames were over.
                if self.closing.last() != Some(&id) {
                    self.closing.push(id);
                }
            }
            Delivered::Refused | Delivered::Held => {}
        }
    }

    /// Adds the tally to the server's counters and closes the slow consumers.
    fn settle(self, app: &mut App) {
        let stats: &mut Stats = &mut app.hub.stats;
        stats.messages_out += self.delivered;
        stats.bytes_out += self.bytes;
        stats.limits.backpressure += self.dropped;
        for id in self.closing {
            // A slow consumer: it gets `closeTimeout` to read up to the close, then it is dropped.
            app.hub.close(id, CloseCode::POLICY, "backpressure");
        }
    }
}

impl Fanout {
    /// Hands what handlers sent to other connections to their output queues,
    /// until the hub's outbox stays empty (a close may send more).
    pub fn deliver(&mut self, conns: &mut Slab<Conn>, app: &mut App, turn: &mut Turn) {
        while !app.hub.outbox.is_empty() {
            // Swapped with a spare, so neither loses its capacity: a busy
            // loop delivers on every event.
            let mut batch = mem::replace(&mut app.hub.outbox, mem::take(&mut self.spare.0));
            for delivery in batch.drain(..) {
                match delivery {
                    Delivery::Frame { to, frame, except } => {
                        self.deliver_frame(conns, app, &to, &frame, except)
                    }
                    Delivery::Close { to, code, reason } => {
                        if let Some(conn) = live(conns, to) {
                            conn.close_socket(app, turn, to.key, code, &reason);
                            self.dirty.push(to.key);
                        }
                    }
                    Delivery::Relay { to, frame } => self.relay(conns, app, turn, to, frame),
                    Delivery::Answer { to, part } => {
                        if let Some(conn) = live(conns, to) {
                            conn.answer_part(app, part);
                            self.dirty.push(to.key);
                        }
                    }
                }
            }
            self.spare.0 = batch;
        }
    }

    /// Has the connection in slot `key` run at the end of the turn (a
    /// proxied leg whose pair has room again reads on).
    pub fn wake(&mut self, key: usize) {
        self.dirty.push(key);
    }

    /// Hands a proxied leg what its pair relayed; a buffer written whole
    /// goes back to the gateway, and the pair may read on if it waited.
    fn relay(
        &mut self,
        conns: &mut Slab<Conn>,
        app: &mut App,
        turn: &Turn,
        to: ConnId,
        frame: Vec<u8>,
    ) {
        let Some(conn) = live(conns, to) else {
            return;
        };
        let spent = match conn.relay(frame, turn.at) {
            Relayed::Queued => {
                self.dirty.push(to.key);
                return;
            }
            Relayed::Written(frame) => {
                if let Some(pair) = conn.pair_after_flush(app) {
                    self.dirty.push(pair.key);
                }
                frame
            }
            Relayed::Refused(frame) => frame,
        };
        if let Some(gateway) = app.gateway.as_mut() {
            gateway.relaying.recycle(spent);
        }
    }

    fn deliver_frame(
        &mut self,
        conns: &mut Slab<Conn>,
        app: &mut App,
        to: &Targets,
        frame: &Frames,
        except: [Option<ConnId>; 2],
    ) {
        let mut tally = Tally::default();
        let payload = frame.payload_len();
        // The message as an event, made for the first event stream among the
        // recipients and shared by the rest.
        let mut event = None;
        for id in app.hub.resolve(to) {
            if except.contains(&Some(id)) {
                continue;
            }
            let Some(conn) = live(conns, id) else {
                continue;
            };
            if let Targets::Where(filter) = to {
                if !conn.socket_state(app).is_some_and(|s| filter(id, s)) {
                    continue;
                }
            }
            let delivered = if conn.is_stream() {
                conn.deliver_event(&app.config, frame, &mut event)
            } else {
                conn.deliver(&app.config, frame)
            };
            match delivered {
                Delivered::Held => {
                    let limit = app.config.web_sockets.max_backpressure;
                    if !self.hold(id, frame, conn.backlog(), limit) {
                        tally.dropped += 1;
                    }
                }
                outcome => {
                    if outcome == Delivered::Queued {
                        self.dirty.push(id.key);
                    }
                    tally.count(id, outcome, payload);
                }
            }
        }
        tally.settle(app);
    }

    /// Keeps a frame for a connection in the middle of a `send_block`
    /// message; false (dropped) when that would pass `maxBackpressure` —
    /// as for queued frames, the limit plus one message.
    fn hold(&mut self, id: ConnId, frame: &Frames, backlog: usize, limit: usize) -> bool {
        let held = self.held.entry(id.key).or_insert_with(|| Held {
            serial: id.serial,
            frames: Vec::new(),
            bytes: 0,
        });
        if held.bytes + backlog >= limit {
            return false;
        }
        held.bytes += frame.plain.len();
        held.frames.push(frame.clone());
        true
    }

    /// True while some connection has frames held for it.
    #[inline(always)]
    pub fn holds_any(&self) -> bool {
        !self.held.is_empty()
    }

    /// Queues the frames held for `key` once its `send_block` message is finished.
    pub fn release_held(&mut self, key: usize, conns: &mut Slab<Conn>, app: &mut App) {
        let Some(held) = self.held.get(&key) else {
            return;
        };
        let id = ConnId {
            key,
            serial: held.serial,
        };
        let Some(conn) = live(conns, id) else {
            self.held.remove(&key);
            return;
        };
        if conn.in_block() {
            return;
        }
        let Some(held) = self.held.remove(&key) else {
            return;
        };
        let mut tally = Tally::default();
        for frame in &held.frames {
            tally.count(id, conn.deliver(&app.config, frame), frame.payload_len());
        }
        tally.settle(app);
        self.dirty.push(key);
    }

    /// The connections written to since the last call, each once, in slab order.
    pub fn take_dirty(&mut self) -> Option<Vec<usize>> {
        if self.dirty.is_empty() {
            return None;
        }
        let mut dirty = mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        Some(dirty)
    }

    /// The connection in slot `key` is gone: nothing is held for it any more.
    pub fn forget(&mut self, key: usize) {
        self.held.remove(&key);
    }
}
