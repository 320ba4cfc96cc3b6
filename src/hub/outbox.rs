//! What the hub leaves for the reactor: the [`Delivery`] work queued for
//! other connections while a callback runs, who a shared frame goes to
//! ([`Targets`]), the pieces of a later answer, and [`Frames`], a message
//! framed — and compressed — once for all its recipients.

use std::any::Any;
use std::rc::Rc;

use super::Hub;
use crate::http::response::Response;
use crate::message::{ConnId, Message};
use crate::ws::close_code::CloseCode;
use crate::ws::deflate::Outgoing;
use crate::ws::frame::{frame_payload_len, write_header};
use crate::ws::opcode::OpCode;

/// A predicate over a connection's state, for [`Hub::send_where`].
pub(crate) type StateFilter = Box<dyn Fn(ConnId, &dyn Any) -> bool>;

/// Who a shared frame goes to.
pub(crate) enum Targets {
    One(ConnId),
    All,
    /// Every WebSocket served by the handler at this index.
    Handler(usize),
    Room(Rc<str>),
    Where(StateFilter),
}

/// Work the reactor does for other connections once a callback returns.
pub(crate) enum Delivery {
    Frame {
        to: Targets,
        frame: Frames,
        except: [Option<ConnId>; 2],
    },
    Close {
        to: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// Frames one leg of a proxied WebSocket relays to the other, framed
    /// for it already.
    Relay { to: ConnId, frame: Vec<u8> },
    /// A later answer to a request an action answered `Response::later`.
    Answer { to: ConnId, part: AnswerPart },
}

/// A piece of a later answer.
#[derive(Debug)]
pub(crate) enum AnswerPart {
    /// The whole response.
    Whole(Response),
    /// The head of a response whose body follows in pieces.
    Head(Response),
    /// A piece of that body.
    Piece(Vec<u8>),
    /// The body's end.
    End,
}

/// A message framed once for all its recipients: as it is, and — when
/// compression is on and the message is worth it — compressed once, from a
/// fresh state, for every recipient that negotiated permessage-deflate.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    pub plain: Rc<[u8]>,
    /// Compressed by the shared compressor of `bits` window bits.
    deflated: Option<Rc<[u8]>>,
    bits: u8,
}

impl Frames {
    /// One frame for everyone.
    pub(crate) fn plain(frame: Rc<[u8]>) -> Frames {
        Frames {
            plain: frame,
            deflated: None,
            bits: 15,
        }
    }

    /// The frame for a recipient that compresses as `outgoing`: the
    /// compressed one if its window takes it (a connection that keeps its
    /// own context gets the plain one, which leaves that context alone).
    #[inline]
    pub(crate) fn to(&self, outgoing: Outgoing) -> &Rc<[u8]> {
        match (&self.deflated, outgoing) {
            (Some(deflated), Outgoing::Shared(bits)) if bits >= self.bits => deflated,
            _ => &self.plain,
        }
    }

    /// The message's length, as the counters count it.
    pub(crate) fn payload_len(&self) -> usize {
        frame_payload_len(&self.plain)
    }
}

/// The message a server frame (unmasked, whole) carries; `None` for a
/// control frame.
pub(super) fn frame_message(frame: &[u8]) -> Option<Message<'_>> {
    let payload = frame.get(frame.len() - frame_payload_len(frame)..)?;
    match frame.first().map(|b| b & 0x0f) {
        Some(1) => Some(match std::str::from_utf8(payload) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(payload),
        }),
        Some(2) => Some(Message::Binary(payload)),
        _ => None,
    }
}

/// Encodes a message as one server frame.
pub(crate) fn encode(msg: Message<'_>) -> Rc<[u8]> {
    let (opcode, payload) = match msg {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
    };
    let mut frame = Vec::with_capacity(payload.len() + 10);
    write_header(&mut frame, true, opcode, payload.len());
    frame.extend_from_slice(payload);
    frame.into()
}

impl Hub {
    /// Frames a message for many recipients, compressing it once if that is
    /// worth it (see [`Frames`]).
    pub(crate) fn encode(&mut self, msg: Message<'_>) -> Frames {
        let mut frames = Frames::plain(encode(msg));
        let payload = msg.as_bytes();
        let anyone = self.deflate.sharing > 0;
        if anyone && self.deflate.settings.enable && self.deflate.worth(payload.len()) {
            let bits = self.deflate.settings.window_bits;
            let opcode = match msg {
                Message::Text(_) => OpCode::Text,
                Message::Binary(_) => OpCode::Binary,
            };
            let mut out = Vec::new();
            self.deflate
                .compressor(bits)
                .write_frame(&mut out, opcode, payload);
            frames.deflated = Some(out.into());
            frames.bits = bits;
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::hub;

    #[test]
    fn a_message_for_many_is_compressed_once_and_only_for_someone() {
        let mut h = hub().with_compression(crate::config::Compression {
            enable: true,
            threshold: 10,
            ..Default::default()
        });
        let long = "telemetry ".repeat(20);
        assert!(
            h.encode(Message::Text(&long)).deflated.is_none(),
            "nobody takes it"
        );
        h.deflate.count(Outgoing::Shared(15), true);
        let frames = h.encode(Message::Text(&long));
        let deflated = frames.deflated.clone().expect("compressed once");
        assert!(deflated.len() < frames.plain.len());
        assert!(Rc::ptr_eq(frames.to(Outgoing::Shared(15)), &deflated));
        for plain in [Outgoing::Off, Outgoing::Own, Outgoing::Shared(9)] {
            assert!(Rc::ptr_eq(frames.to(plain), &frames.plain), "{plain:?}");
        }
        assert!(
            h.encode(Message::Text("short")).deflated.is_none(),
            "under the threshold"
        );
        h.deflate.count(Outgoing::Shared(15), false);
        assert!(h.encode(Message::Text(&long)).deflated.is_none());
    }
}
