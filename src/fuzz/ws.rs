//! The WebSocket frame decoder as the server plays it (`ws_frames`), and
//! the helpers the property tests share: `feed` plays a connection,
//! `reassemble` turns streamed pieces back into messages.

use super::pieces;
use crate::ws::error::WsError;
use crate::ws::receiver::{Event, Limits, Receiver};

/// Drives the WebSocket frame decoder.
///
/// The first byte picks the limits and options, the second how the stream is
/// cut into pieces; the rest is the stream a client sent. It is fed whole and
/// in those pieces, keeping the unconsumed tail and calling again until the
/// decoder asks for more, as the connection does, and both runs must agree.
pub fn ws_frames(data: &[u8]) {
    let [options, cuts, stream @ ..] = data else {
        return;
    };
    let limits = limits(*options);
    let whole = feed(limits, [stream]);
    let pieces = pieces(stream, *cuts);
    let split = feed(limits, pieces.iter().copied());
    let deflate = limits.deflate.is_some();
    if limits.streaming {
        assert_eq!(
            failed_alike(reassemble(split), deflate),
            failed_alike(reassemble(whole.clone()), deflate),
            "{limits:?}"
        );
    } else {
        assert_eq!(
            failed_alike(split, deflate),
            failed_alike(whole.clone(), deflate),
            "{limits:?}"
        );
    }
    // With no message limit, streaming only changes how data is handed out.
    if limits.max_message == u64::MAX {
        let other = Limits {
            streaming: !limits.streaming,
            ..limits
        };
        let other = feed(other, pieces.iter().copied());
        let (streamed, held) = if limits.streaming {
            (other, whole)
        } else {
            (whole, other)
        };
        assert_eq!(
            failed_alike(reassemble(streamed), deflate),
            failed_alike(reassemble(held), deflate),
            "{limits:?}"
        );
    }
}

/// A compressed message can break three ways at once — it stops inflating,
/// inflates to invalid UTF-8, inflates past the limit — and which is found
/// first depends on where its frames were cut, as inflating and checking go
/// a piece at a time. So with permessage-deflate those three count as one
/// verdict (the connection fails); everything before them must still agree.
fn failed_alike(mut outcome: Outcome, deflate: bool) -> Outcome {
    if deflate
        && matches!(
            outcome.error,
            Some(WsError::BadDeflate | WsError::InvalidUtf8 | WsError::MessageTooLarge)
        )
    {
        outcome.error = Some(WsError::BadDeflate);
    }
    outcome
}

/// The receiver options one byte picks: bit 0 streams, bit 1 skips UTF-8
/// checks, bits 2–3 the frame limit and bits 4–5 the message limit.
pub(crate) fn limits(byte: u8) -> Limits {
    const FRAME: [u64; 4] = [8, 200, 1 << 16, u64::MAX];
    const MESSAGE: [u64; 4] = [16, 300, 1 << 20, u64::MAX];
    Limits {
        streaming: byte & 1 != 0,
        validate_utf8: byte & 2 == 0,
        max_frame: FRAME[usize::from(byte >> 2 & 3)],
        max_message: MESSAGE[usize::from(byte >> 4 & 3)],
        // A gateway's downstream leg: frames from a server, which must be unmasked.
        from_server: byte & 0xC0 == 0x40,
        // permessage-deflate: afresh per message, or (with bit 6) taking over context.
        deflate: (byte & 0x80 != 0).then_some(crate::ws::deflate::Agreed {
            server_no_context_takeover: true,
            client_no_context_takeover: byte & 0x40 == 0,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            echo: Default::default(),
        }),
    }
}

/// An [`Event`] copied out of the buffers it borrows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owned {
    /// [`Event::Message`]: text or not, and the payload.
    Message(bool, Vec<u8>),
    /// [`Event::Fragment`].
    Fragment {
        /// Part of a text message.
        text: bool,
        /// The piece.
        data: Vec<u8>,
        /// The message's first piece.
        first: bool,
        /// The message's last piece.
        last: bool,
    },
    /// [`Event::Ping`].
    Ping(Vec<u8>),
    /// [`Event::Pong`].
    Pong(Vec<u8>),
    /// [`Event::Close`].
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Owned {
    fn from(event: Event<'_>) -> Owned {
        match event {
            Event::Message { text, data } => Owned::Message(text, data.to_vec()),
            Event::Fragment {
                text,
                data,
                first,
                last,
            } => Owned::Fragment {
                text,
                data: data.to_vec(),
                first,
                last,
            },
            Event::Ping(p) => Owned::Ping(p.to_vec()),
            Event::Pong(p) => Owned::Pong(p.to_vec()),
            Event::Close { code, reason } => Owned::Close(code, reason.to_string()),
        }
    }
}

/// What a run of the receiver shows from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Every event, in order.
    pub(crate) events: Vec<Owned>,
    /// The error that ended the run, if one did.
    pub(crate) error: Option<WsError>,
    /// Bytes left unconsumed at the end; 0 after an error or a Close, when
    /// the receiver is done.
    pub(crate) unconsumed: usize,
}

/// What `Receiver::short_message` made of some bytes, owned.
type Short = Option<Result<(bool, Vec<u8>, usize), WsError>>;

/// Runs `Receiver::short_message` on a copy of `buf`, so the decoder can
/// then run on the bytes themselves and the two be compared.
fn short_message(receiver: &Receiver, buf: &[u8]) -> Short {
    let mut copy = buf.to_vec();
    let short = receiver.short_message(&mut copy)?;
    Some(short.map(|(text, payload)| (text, copy[payload.clone()].to_vec(), payload.end)))
}

/// The session takes whole short messages with `short_message` and
/// everything else with `decode`: where the first answers, both must agree.
fn check_short(short: &Short, decoded: &Result<(usize, Option<Event<'_>>), WsError>) {
    let Some(short) = short else {
        return;
    };
    match (short, decoded) {
        (Ok((text, data, end)), Ok((used, Some(Event::Message { text: t, data: d })))) => {
            assert_eq!(
                (text, data.as_slice(), end),
                (t, *d, used),
                "short and decode differ"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "short and decode fail differently"),
        (short, decoded) => panic!("short {short:?} but decode {decoded:?}"),
    }
}

/// Plays the connection: appends each piece to the unconsumed tail and calls
/// the receiver until it asks for more, stopping at an error or a Close.
/// Before each call it checks the short-message path against the decoder.
pub(crate) fn feed<'p>(limits: Limits, pieces: impl IntoIterator<Item = &'p [u8]>) -> Outcome {
    let mut receiver = Receiver::new(limits);
    let mut inflaters = None;
    let mut pending = Vec::new();
    let mut events = Vec::new();
    let done = |events, error| Outcome {
        events,
        error,
        unconsumed: 0,
    };
    for piece in pieces {
        pending.extend_from_slice(piece);
        let mut pos = 0;
        // Events that consumed nothing, in a row: a decoder going round in circles.
        let mut idle = 0;
        loop {
            let available = pending.len() - pos;
            let short = short_message(&receiver, &pending[pos..]);
            let decoded = receiver.decode(&mut pending[pos..], &mut inflaters);
            check_short(&short, &decoded);
            let (used, event) = match decoded {
                Ok((0, None)) => break,
                Ok(decoded) => decoded,
                Err(e) => return done(events, Some(e)),
            };
            assert!(used <= available, "consumed {used} of {available} bytes");
            // A compressed message hands out its inflated blocks one per call,
            // each without consuming anything: those are progress too.
            let inflated = matches!(&event, Some(Event::Fragment { data, .. }) if !data.is_empty());
            idle = if used == 0 && !inflated { idle + 1 } else { 0 };
            assert!(idle < 64, "events without progress");
            pos += used;
            if let Some(event) = event {
                let close = matches!(event, Event::Close { .. });
                events.push(event.into());
                if close {
                    return done(events, None);
                }
            }
        }
        pending.drain(..pos);
    }
    Outcome {
        events,
        error: None,
        unconsumed: pending.len(),
    }
}

/// Turns streamed pieces back into whole messages, checking their
/// `first`/`last` marks; a message left unfinished is dropped, since how much
/// of it was handed out depends on how the bytes arrived.
pub(crate) fn reassemble(outcome: Outcome) -> Outcome {
    let mut events = Vec::new();
    let mut partial: Option<(bool, Vec<u8>)> = None;
    for event in outcome.events {
        let Owned::Fragment {
            text,
            data,
            first,
            last,
        } = event
        else {
            events.push(event);
            continue;
        };
        assert_eq!(first, partial.is_none(), "first marks the first piece only");
        assert!(
            !data.is_empty() || last,
            "an empty piece must end its message"
        );
        let (was_text, mut so_far) = partial.take().unwrap_or((text, Vec::new()));
        assert_eq!(was_text, text, "a message changed type");
        so_far.extend(data);
        if last {
            events.push(Owned::Message(text, so_far));
        } else {
            partial = Some((text, so_far));
        }
    }
    Outcome { events, ..outcome }
}
