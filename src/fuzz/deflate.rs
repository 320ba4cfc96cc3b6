//! The permessage-deflate inflater and its bound (`inflate`), on its own:
//! `ws_frames` reaches it only through the receiver.

use super::pieces;
use crate::ws::deflate::inflate::{Inflater, Inflaters, BLOCK};
use crate::ws::error::WsError;

/// The message limits one byte picks (bits 0–1): what the fuzzer can
/// reach with a few bytes, a block, and more than a block.
const LIMITS: [usize; 4] = [0, 40, 20_000, 100_000];

/// The window the peer's compressor keeps to, with context takeover (bits 4–5).
const WINDOWS: [u8; 4] = [9, 10, 12, 15];

/// Streamed output is kept up to this much: well past what an input of
/// libFuzzer's default most (4 KiB) inflates to, about 4 MiB. (A run that
/// stopped at a lower bound would give a verdict that depends on the cuts:
/// a stream that breaks just past the bound, found in the same call that
/// crosses it or in the next.)
const STREAM_CAP: usize = 64 << 20;

/// Drives the inflater on a run of compressed messages.
///
/// The first byte picks the message limit (bits 0–1), whether the inflater
/// hands out a block at a time as for a streaming handler (bit 2), whether
/// the peer takes over its context (bit 3) and, then, its window (bits 4–5);
/// the second byte how each message is cut. The rest is the messages, each
/// a two-byte big-endian length and that many bytes of compressed payload.
///
/// Without takeover, whole messages go through the loop's shared inflater
/// ([`Inflaters::shared`]) and cut ones through lent ones, given back after
/// each message, as the receiver does; with it, one inflater keeps the
/// context. Properties: a message inflates to the same bytes or the same
/// error whole and in pieces; neither its output nor the memory it takes
/// ever exceeds the room it was given (the limit and one byte) and one
/// [`BLOCK`]; whatever fits the limit is exactly what an unbounded
/// inflater makes of it, and what is refused as too large does make more.
pub fn inflate(data: &[u8]) {
    let [options, cuts, stream @ ..] = data else {
        return;
    };
    let limit = LIMITS[usize::from(options & 3)];
    let how = How {
        room: limit + 1,
        streaming: options & 4 != 0,
        takeover: (options & 8 != 0).then_some(WINDOWS[usize::from(options >> 4 & 3)]),
    };
    let messages = messages(stream);
    let whole = run(how, &messages, None);
    let split = run(how, &messages, Some(*cuts));
    let lenient = how.takeover.is_some_and(|bits| bits < 15);
    match agreed(&whole, &split, lenient) {
        Some(n) => assert_eq!(split[..n], whole[..n], "{how:?}"),
        None => assert_eq!(split, whole, "{how:?}"),
    }
    if how.streaming {
        return;
    }
    // The same messages with no bound on them: the limit only cuts short.
    let unbounded = How {
        room: usize::MAX,
        streaming: true,
        ..how
    };
    let reference = run(unbounded, &messages, None);
    let agreed = agreed(&whole, &reference, lenient).unwrap_or(whole.len());
    for (bounded, reference) in whole[..agreed].iter().zip(&reference) {
        match (bounded, reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{how:?}"),
            (Err(WsError::MessageTooLarge), Ok(b)) => assert!(b.len() > limit, "{how:?}"),
            (Err(WsError::MessageTooLarge), Err(_)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b, "{how:?}"),
            (a, b) => panic!("{a:?} bounded, {b:?} unbounded ({how:?})"),
        }
    }
}

/// What one message inflated to, or why it did not.
type Inflated = Result<Vec<u8>, WsError>;

/// How many of the messages two runs must agree on: all (`None`), unless
/// `lenient`.
///
/// A peer that agreed to a window under 15 bits and then reaches further
/// back breaks the agreement, and zlib does not always notice: it refuses
/// a distance only when the bytes it points at are neither in its window
/// nor in the output of the same call. So such a message may inflate or be
/// refused as broken (1007) depending on how its frames were cut; the runs
/// then agree up to that message. (Output it makes is never wrong: what it
/// copies is the stream's own history.)
fn agreed(a: &[Inflated], b: &[Inflated], lenient: bool) -> Option<usize> {
    if !lenient {
        return None;
    }
    let len = a.len().max(b.len());
    let broken = |r: Option<&Inflated>| matches!(r, Some(Err(WsError::BadDeflate)));
    let took = |r: Option<&Inflated>| matches!(r, Some(Ok(_)));
    (0..len).find(|&i| {
        let (x, y) = (a.get(i), b.get(i));
        (broken(x) && took(y)) || (took(x) && broken(y))
    })
}

/// How the messages are inflated.
#[derive(Debug, Clone, Copy)]
struct How {
    /// The most one message may inflate to: the limit and one byte.
    room: usize,
    /// A block at a time, each handed out (the limit does not apply).
    streaming: bool,
    /// The peer keeps its context, with this window.
    takeover: Option<u8>,
}

/// Splits the input into length-prefixed messages; the last takes what is left.
fn messages(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let [a, b, rest @ ..] = stream {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
        let (message, tail) = rest.split_at(len);
        out.push(message);
        stream = tail;
    }
    out
}

/// What each message inflated to, up to the first that failed (the
/// connection ends there).
fn run(how: How, messages: &[&[u8]], cuts: Option<u8>) -> Vec<Inflated> {
    let mut inflaters = Inflaters::default();
    let mut own = how.takeover.map(|bits| Box::new(Inflater::new(bits)));
    let mut results = Vec::new();
    for message in messages {
        let pieces = match cuts {
            Some(seed) => pieces(message, seed),
            None => vec![*message],
        };
        let result = match &mut own {
            Some(inflater) => {
                inflater.begin();
                one(inflater, &pieces, how, None)
            }
            None if cuts.is_none() && !how.streaming => {
                let (inflater, out) = inflaters.shared();
                one(inflater, &pieces, how, Some(out))
            }
            None => {
                let mut inflater = inflaters.take();
                let result = one(&mut inflater, &pieces, how, None);
                inflaters.give(inflater);
                result
            }
        };
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    results
}

/// Inflates one message delivered in `pieces`, the last ending it, into
/// `shared` (the shared inflater's buffer) or a buffer of its own.
fn one(
    inflater: &mut Inflater,
    pieces: &[&[u8]],
    how: How,
    shared: Option<&mut Vec<u8>>,
) -> Inflated {
    let mut own = Vec::new();
    let out = shared.unwrap_or(&mut own);
    let mut streamed = Vec::new();
    let last = pieces.len().saturating_sub(1);
    // An empty message is one empty piece that ends it.
    let pieces: &[&[u8]] = if pieces.is_empty() { &[&[]] } else { pieces };
    for (i, piece) in pieces.iter().enumerate() {
        let end = i == last;
        let mut at = 0;
        loop {
            if how.streaming {
                out.clear();
            }
            let progress = inflater.inflate(&piece[at..], end, out, room(how))?;
            assert!(
                progress.consumed <= piece.len() - at,
                "used more than it had"
            );
            at += progress.consumed;
            // The bound on a bomb: one step makes at most a block, and the
            // buffer never grows past the room and a block. (The shared
            // buffer keeps its capacity between messages, but with the same
            // room that was never more.)
            let bound = room(how).saturating_add(BLOCK);
            assert!(out.len() <= bound, "{} bytes made ({how:?})", out.len());
            assert!(
                out.capacity() <= bound,
                "{} bytes held ({how:?})",
                out.capacity()
            );
            if how.streaming {
                streamed.extend_from_slice(out);
                if streamed.len() > STREAM_CAP {
                    // A bomb: as far as it went is the verdict.
                    return Err(WsError::MessageTooLarge);
                }
            } else if progress.full {
                return Err(WsError::MessageTooLarge);
            }
            if progress.done {
                assert!(end && at == piece.len(), "done before the end");
                break;
            }
            if !progress.full {
                // Not full and not done: the piece is used up, more is due.
                assert!(!end, "the last piece ended without being done");
                assert_eq!(at, piece.len(), "an unfull inflater left input");
                break;
            }
        }
    }
    Ok(if how.streaming { streamed } else { out.clone() })
}

/// The room one call is given: a block when streaming, else the message's.
fn room(how: How) -> usize {
    if how.streaming {
        BLOCK
    } else {
        how.room
    }
}
