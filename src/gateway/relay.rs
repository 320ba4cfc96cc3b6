//! The two ends of a proxied WebSocket: what one leg's messages and close
//! become on the other leg, and how full each leg's output is.
//!
//! Both legs are ordinary sessions served by the gateway's handler; each
//! end's state says which connection is its pair. A message is re-framed
//! for the other leg (masked towards the downstream, as a client must) and
//! left in the hub's outbox; consecutive messages to the same leg share
//! one buffer. Backpressure couples the legs through [`Pair`]: a leg stops
//! reading while its pair's output is over the mark.

use std::cell::Cell;
use std::rc::Rc;

use crate::entropy::Masks;
use crate::hub::{Delivery, Hub};
use crate::message::{ConnId, Message};
use crate::ws::close_code::CloseCode;
use crate::ws::frame::{write_frame, write_masked_frame};
use crate::ws::opcode::OpCode;

/// The least a relay buffer starts with: room for a turn's worth of short
/// messages to one leg (16 masked 20-byte frames are 416 bytes), so they
/// do not grow it one reallocation at a time.
const RELAY_BUFFER: usize = 512;

/// Relay buffers kept for reuse, at most, and the largest kept.
const SPARE_BUFFERS: usize = 16;
const SPARE_CAPACITY: usize = 64 * 1024;

/// What relaying needs besides the two ends: the frame limit, masking
/// keys, and the buffers a busy pair's frames travel in — a buffer written
/// out whole comes back here (`recycle`) instead of to the allocator.
#[derive(Debug, Default)]
pub(crate) struct Relaying {
    /// The largest frame relayed (see `End::relay`).
    pub max_frame: usize,
    masks: Masks,
    spare: Vec<Vec<u8>>,
}

impl Relaying {
    pub fn new(max_frame: usize) -> Relaying {
        Relaying {
            max_frame,
            ..Relaying::default()
        }
    }

    /// An empty buffer with room for at least `bytes`.
    fn buffer(&mut self, bytes: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut b) => {
                b.reserve(bytes);
                b
            }
            None => Vec::with_capacity(bytes.max(RELAY_BUFFER)),
        }
    }

    /// Takes back a buffer whose bytes were written.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_CAPACITY {
            buffer.clear();
            self.spare.push(buffer);
        }
    }
}

/// Which leg an end is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client's connection to us.
    Client = 0,
    /// Our connection to the downstream.
    Downstream = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Downstream,
            Side::Downstream => Side::Client,
        }
    }
}

/// What both ends of a pair share: the output each leg holds (queued and
/// relayed-but-not-yet-queued bytes), and whether each has stopped reading
/// for the other's sake.
#[derive(Debug, Default)]
pub(crate) struct Pair {
    held: [Cell<usize>; 2],
    paused: [Cell<bool>; 2],
    /// The client broke the protocol with this close code: the downstream
    /// was closed first, and the client gets this code once it answered.
    client_failed: Cell<Option<CloseCode>>,
}

impl Pair {
    /// Bytes waiting to go out on `side`.
    pub fn held(&self, side: Side) -> usize {
        self.held[side as usize].get()
    }

    /// The leg on `side` has this much output left after a flush.
    pub fn set_held(&self, side: Side, bytes: usize) {
        self.held[side as usize].set(bytes);
    }

    /// `bytes` more were relayed to the leg on `side`.
    pub fn add_held(&self, side: Side, bytes: usize) {
        let held = &self.held[side as usize];
        held.set(held.get().saturating_add(bytes));
    }

    /// The leg on `side` stopped reading because its pair is full (true) or resumed.
    pub fn set_paused(&self, side: Side, paused: bool) {
        self.paused[side as usize].set(paused);
    }

    /// The client leg broke the protocol (its close waits for the downstream's).
    pub fn client_failed(&self) -> bool {
        self.client_failed.get().is_some()
    }

    pub fn paused(&self, side: Side) -> bool {
        self.paused[side as usize].get()
    }
}

/// One leg's state in the gateway's handler.
#[derive(Debug)]
pub(crate) struct End {
    pub side: Side,
    /// The other leg.
    pub pair: ConnId,
    pub shared: Rc<Pair>,
    /// The proxy route (index in the gateway's routes) and the downstream host.
    pub route: usize,
    pub host: usize,
    /// This leg broke the protocol (its session reported an error): the
    /// other leg is told 1014 (downstream) or 1001 (client), not its code.
    pub failed: bool,
}

impl End {
    /// Re-frames a message for the other leg and leaves it in the outbox,
    /// in frames of at most `relaying.max_frame` bytes (see `RELAY_FRAME`).
    pub fn relay(&self, hub: &mut Hub, message: Message<'_>, relaying: &mut Relaying) {
        let (opcode, data) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        let frame = match hub.outbox.last_mut() {
            Some(Delivery::Relay { to, frame }) if *to == self.pair => frame,
            _ => {
                hub.outbox.push(Delivery::Relay {
                    to: self.pair,
                    frame: relaying.buffer(data.len() + 14),
                });
                match hub.outbox.last_mut() {
                    Some(Delivery::Relay { frame, .. }) => frame,
                    _ => return,
                }
            }
        };
        let before = frame.len();
        let mut put = |fin, op, piece: &[u8]| match self.side {
            // Towards the downstream we are the client: every frame masked afresh.
            Side::Client => write_masked_frame(frame, fin, op, piece, relaying.masks.next()),
            Side::Downstream => write_frame(frame, fin, op, piece),
        };
        let max_frame = relaying.max_frame;
        if data.len() <= max_frame {
            put(true, opcode, data);
        } else {
            let max = max_frame.max(1);
            let count = data.len().div_ceil(max);
            for (i, piece) in data.chunks(max).enumerate() {
                let op = if i == 0 { opcode } else { OpCode::Continuation };
                put(i + 1 == count, op, piece);
            }
        }
        let added = frame.len() - before;
        self.shared.add_held(self.side.other(), added);
    }

    /// The client leg broke the protocol (`code`): the downstream is
    /// closed first, with that code; the client's close follows the
    /// downstream's answer, so whatever it sent back before still arrives.
    pub fn client_failed(&self, hub: &mut Hub, code: CloseCode, reason: String) {
        self.shared.client_failed.set(Some(code));
        hub.outbox.push(Delivery::Close {
            to: self.pair,
            code,
            reason,
        });
    }

    /// The close the other leg is given when this one ends with `code`.
    pub fn passed_on(&self, code: CloseCode, reason: &str) -> (CloseCode, String) {
        if let (Side::Downstream, Some(failed)) = (self.side, self.shared.client_failed.get()) {
            return (failed, "protocol error".into());
        }
        let vanished = code == CloseCode::ABNORMAL || self.failed;
        match self.side {
            Side::Downstream if vanished => (CloseCode::BAD_GATEWAY, "downstream failed".into()),
            Side::Client if vanished => (CloseCode::GOING_AWAY, "client gone".into()),
            // 1005 (no code) and the other local-only codes go out as a close with no code.
            _ => (code, reason.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(side: Side) -> End {
        End {
            side,
            pair: ConnId { key: 7, serial: 9 },
            shared: Rc::default(),
            route: 0,
            host: 0,
            failed: false,
        }
    }

    #[test]
    fn messages_to_one_leg_share_a_buffer_and_count_as_its_output() {
        let mut hub = Hub::new(crate::hub::RoomLimits {
            per_connection: 1,
            members: 1,
        });
        let e = end(Side::Downstream);
        e.relay(&mut hub, Message::Text("hi"), &mut Relaying::new(1 << 20));
        e.relay(
            &mut hub,
            Message::Binary(b"yo"),
            &mut Relaying::new(1 << 20),
        );
        assert_eq!(hub.outbox.len(), 1);
        let Some(Delivery::Relay { to, frame }) = hub.outbox.first() else {
            panic!("a relay");
        };
        assert_eq!(*to, e.pair);
        assert_eq!(frame.as_slice(), b"\x81\x02hi\x82\x02yo");
        assert_eq!(e.shared.held(Side::Client), 8);
        assert_eq!(e.shared.held(Side::Downstream), 0);
    }

    #[test]
    fn towards_the_downstream_frames_are_masked() {
        let mut hub = Hub::new(crate::hub::RoomLimits {
            per_connection: 1,
            members: 1,
        });
        let e = end(Side::Client);
        e.relay(
            &mut hub,
            Message::Text("hello"),
            &mut Relaying::new(1 << 20),
        );
        let Some(Delivery::Relay { frame, .. }) = hub.outbox.first() else {
            panic!("a relay");
        };
        assert_eq!(frame[1], 0x80 | 5, "mask bit and length");
        assert_eq!(frame.len(), 2 + 4 + 5);
        let mask = [frame[2], frame[3], frame[4], frame[5]];
        let text: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(text, b"hello");
    }

    #[test]
    fn a_message_longer_than_the_frame_limit_goes_in_fragments() {
        let mut hub = Hub::new(crate::hub::RoomLimits {
            per_connection: 1,
            members: 1,
        });
        let e = end(Side::Downstream);
        e.relay(&mut hub, Message::Text("abcdefg"), &mut Relaying::new(3));
        e.relay(&mut hub, Message::Binary(b""), &mut Relaying::new(3));
        let Some(Delivery::Relay { frame, .. }) = hub.outbox.first() else {
            panic!("a relay");
        };
        assert_eq!(
            frame.as_slice(),
            b"\x01\x03abc\x00\x03def\x80\x01g\x82\x00",
            "Text, Continuation, final Continuation; an empty message is one frame"
        );
    }

    #[test]
    fn a_vanished_or_failed_leg_gives_the_other_1014_or_1001() {
        let mut down = end(Side::Downstream);
        assert_eq!(
            down.passed_on(CloseCode::ABNORMAL, "").0,
            CloseCode::BAD_GATEWAY
        );
        assert_eq!(
            down.passed_on(CloseCode::NORMAL, "bye"),
            (CloseCode::NORMAL, "bye".to_string())
        );
        down.failed = true;
        assert_eq!(
            down.passed_on(CloseCode::PROTOCOL, "").0,
            CloseCode::BAD_GATEWAY
        );
        let client = end(Side::Client);
        assert_eq!(
            client.passed_on(CloseCode::ABNORMAL, "").0,
            CloseCode::GOING_AWAY
        );
        assert_eq!(
            client.passed_on(CloseCode::new(4000).unwrap(), "app").0,
            CloseCode::new(4000).unwrap()
        );
    }
}
