//! Inflating a compressed message as its frames arrive (RFC 7692 §7.2.2),
//! within a bound on what it may inflate to.
//!
//! The sender ended each message with a sync flush and dropped the flush's
//! `00 00 ff ff`; the inflater puts it back after the message's last byte.
//! Output is made at most [`BLOCK`] bytes at a time, so a message that
//! inflates past its limit (a "bomb") is stopped within one block of it.

use flate2::{Decompress, FlushDecompress, Status};

use crate::ws::error::WsError;

use super::TAIL;

/// The most output one step of inflating makes.
pub(crate) const BLOCK: usize = 16 * 1024;

/// An inflater for one direction of permessage-deflate, raw deflate (no
/// zlib header), with the state of the message it is inflating.
pub(crate) struct Inflater {
    inner: Decompress,
    /// Bytes of [`TAIL`] fed so far for the current message.
    tail_fed: u8,
    /// The sender ended its stream (a final block): only the tail may follow,
    /// and the next message needs a fresh state.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("total_out", &self.inner.total_out())
            .finish_non_exhaustive()
    }
}

/// The inflaters one loop shares among its connections.
#[derive(Debug, Default)]
pub(crate) struct Inflaters {
    /// Inflates whole one-frame messages from a fresh state, for every
    /// connection whose peer takes over no context; made when first needed.
    shared: Option<Box<Inflater>>,
    /// What [`Inflaters::shared`] inflated: the latest whole message.
    out: Vec<u8>,
    /// Inflaters lent to messages that arrived in pieces, given back.
    #[allow(clippy::vec_box)]
    // Boxed as the receivers hold them, so lending one moves a pointer.
    spare: Vec<Box<Inflater>>,
}

/// How many given-back inflaters are kept for the next messages (each is
/// about 40 KiB once it has inflated something).
const SPARE: usize = 4;

/// The largest output buffer kept between messages.
const KEEP_OUT: usize = 64 * 1024;

impl Inflaters {
    /// The shared inflater, fresh, and its emptied output buffer.
    pub(crate) fn shared(&mut self) -> (&mut Inflater, &mut Vec<u8>) {
        let inflater = self
            .shared
            .get_or_insert_with(|| Box::new(Inflater::new(15)));
        inflater.reset();
        if self.out.capacity() > KEEP_OUT {
            self.out = Vec::new();
        }
        self.out.clear();
        (inflater, &mut self.out)
    }

    /// A fresh inflater for one message that arrives in pieces.
    pub(crate) fn take(&mut self) -> Box<Inflater> {
        match self.spare.pop() {
            Some(mut inflater) => {
                inflater.reset();
                inflater
            }
            None => Box::new(Inflater::new(15)),
        }
    }

    /// Takes back an inflater whose message is over.
    pub(crate) fn give(&mut self, inflater: Box<Inflater>) {
        if self.spare.len() < SPARE {
            self.spare.push(inflater);
        }
    }
}

/// How far one call to [`Inflater::inflate`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes of the input consumed; the rest must be offered again.
    pub consumed: usize,
    /// The message is whole: its input ended, the tail is fed and all its
    /// output is out.
    pub done: bool,
    /// The call stopped because `out` reached `room`: more output may be due.
    pub full: bool,
}

impl Inflater {
    /// An inflater for a peer whose compressor uses at most `window_bits`
    /// (8..=15). zlib cannot inflate with a 256-byte window, but a 512-byte
    /// one reads everything a 256-byte one could.
    pub(crate) fn new(window_bits: u8) -> Inflater {
        Inflater {
            inner: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            tail_fed: 0,
            ended: false,
        }
    }

    /// Forgets every earlier message: no context is taken over.
    pub(crate) fn reset(&mut self) {
        self.inner.reset(false);
        self.tail_fed = 0;
        self.ended = false;
    }

    /// Readies the inflater for a new message, keeping the context of the
    /// earlier ones unless the sender ended its stream.
    pub(crate) fn begin(&mut self) {
        if self.ended {
            self.reset();
        }
        self.tail_fed = 0;
    }

    /// Inflates the next piece of a message's compressed payload, appending
    /// to `out` until `out.len()` reaches `room`. `end`: `input` is the last
    /// of the message (the tail is fed after it).
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        end: bool,
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<Progress, WsError> {
        let mut consumed = 0;
        loop {
            if out.len() >= room {
                return Ok(Progress {
                    consumed,
                    done: false,
                    full: true,
                });
            }
            reserve(out, room);
            let spare = out.capacity() - out.len();
            let (rest, tail) = if consumed < input.len() {
                (&input[consumed..], false)
            } else if end && usize::from(self.tail_fed) < TAIL.len() {
                (&TAIL[usize::from(self.tail_fed)..], true)
            } else {
                (&[][..], false)
            };
            let before = self.inner.total_in();
            let made = out.len();
            let stepped = self.step(rest, tail, out);
            if stepped.is_err() && out.len() >= room {
                // The message is over its limit whatever follows: zlib may
                // read on past a full buffer into a broken block header,
                // which a stream cut there would not have shown yet. Too
                // large, then, however the frames were cut (found by the
                // `inflate` fuzz target).
                return Ok(Progress {
                    consumed,
                    done: false,
                    full: true,
                });
            }
            stepped?;
            let used = (self.inner.total_in() - before) as usize;
            if tail {
                self.tail_fed += used as u8;
            } else {
                consumed += used;
            }
            let filled = out.len() - made == spare;
            let input_left = consumed < input.len();
            let tail_left = end && usize::from(self.tail_fed) < TAIL.len() && !self.ended;
            if !filled && !input_left && !tail_left {
                // The last step may have gone past the room (by less than
                // its block): that is over the limit too, though the input
                // is used up (found by the `inflate` fuzz target).
                let full = out.len() >= room;
                return Ok(Progress {
                    consumed,
                    done: end && !full,
                    full,
                });
            }
            if used == 0 && out.len() == made {
                // No progress with input and room left: the stream is broken.
                return Err(WsError::BadDeflate);
            }
        }
    }

    /// One call into the inflater, mapping its failure to the close.
    fn step(&mut self, input: &[u8], tail: bool, out: &mut Vec<u8>) -> Result<Status, WsError> {
        if self.ended {
            // After a final block only the tail may come, and it is ignored.
            return match tail || input.is_empty() {
                true => {
                    self.tail_fed = TAIL.len() as u8;
                    Ok(Status::StreamEnd)
                }
                false => Err(WsError::BadDeflate),
            };
        }
        let status = self
            .inner
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| WsError::BadDeflate)?;
        if status == Status::StreamEnd {
            self.ended = true;
        }
        Ok(status)
    }
}

/// Makes room for one block of output in `out`, growing it by doubling (so
/// a long message costs few copies) but never past `room` and a block.
fn reserve(out: &mut Vec<u8>, room: usize) {
    let want = BLOCK.min(room - out.len());
    if out.capacity() - out.len() >= want {
        return;
    }
    let target = (out.capacity() * 2)
        .max(out.len() + want)
        .min(room.saturating_add(BLOCK));
    out.reserve_exact(target - out.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A message as a permessage-deflate sender makes it: raw deflate,
    /// sync-flushed, the tail dropped.
    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        out
    }

    fn sample() -> Vec<u8> {
        (0..5000u32)
            .flat_map(|i| format!("{{\"t\":{i},\"v\":{}}}", i % 7).into_bytes())
            .collect()
    }

    /// Inflates `pieces` one after the other, the last ending the message.
    fn inflate_pieces(
        inflater: &mut Inflater,
        pieces: &[&[u8]],
        room: usize,
    ) -> Result<Vec<u8>, WsError> {
        let mut out = Vec::new();
        inflater.begin();
        for (i, piece) in pieces.iter().enumerate() {
            let end = i + 1 == pieces.len();
            let p = inflater.inflate(piece, end, &mut out, room)?;
            if p.full {
                return Err(WsError::MessageTooLarge);
            }
            assert_eq!(p.consumed, piece.len());
            assert_eq!(p.done, end);
        }
        Ok(out)
    }

    #[test]
    fn a_message_inflates_across_every_split_point() {
        let data = b"Hello, hello, hello! permessage-deflate, hello again.".repeat(3);
        let wire = deflated(&data);
        let mut inflater = Inflater::new(15);
        for cut in 0..=wire.len() {
            inflater.reset();
            let out =
                inflate_pieces(&mut inflater, &[&wire[..cut], &wire[cut..]], 1 << 20).unwrap();
            assert_eq!(out, data, "cut at {cut}");
        }
    }

    #[test]
    fn reset_per_message_forgets_the_last_one() {
        let data = sample();
        let wire = deflated(&data);
        let mut inflater = Inflater::new(15);
        for _ in 0..3 {
            inflater.reset();
            assert_eq!(
                inflate_pieces(&mut inflater, &[&wire], 1 << 20).unwrap(),
                data
            );
        }
    }

    #[test]
    fn context_is_taken_over_between_messages() {
        let mut c = Compress::new(Compression::default(), false);
        let mut inflater = Inflater::new(15);
        for round in 0..3 {
            let data = format!("round {round}: the same words again and again").into_bytes();
            let mut wire = Vec::with_capacity(256);
            c.compress_vec(&data, &mut wire, FlushCompress::Sync)
                .unwrap();
            wire.truncate(wire.len() - 4);
            assert_eq!(
                inflate_pieces(&mut inflater, &[&wire], 1 << 20).unwrap(),
                data
            );
        }
    }

    #[test]
    fn exactly_the_limit_inflates_and_one_more_byte_does_not() {
        let data = sample();
        let wire = deflated(&data);
        let mut inflater = Inflater::new(15);
        // `room` is the limit plus one: reaching it means over the limit.
        inflater.reset();
        assert_eq!(
            inflate_pieces(&mut inflater, &[&wire], data.len() + 1).unwrap(),
            data
        );
        inflater.reset();
        assert_eq!(
            inflate_pieces(&mut inflater, &[&wire], data.len()),
            Err(WsError::MessageTooLarge)
        );
    }

    #[test]
    fn a_bomb_stops_within_a_block_of_its_limit() {
        let zeros = vec![0u8; 64 << 20];
        let wire = deflated(&zeros);
        assert!(wire.len() < 128 << 10, "{}", wire.len());
        let mut inflater = Inflater::new(15);
        inflater.begin();
        let mut out = Vec::new();
        let room = 1 << 20;
        let p = inflater.inflate(&wire, true, &mut out, room).unwrap();
        assert!(p.full && !p.done);
        assert!(
            out.len() <= room && out.capacity() <= room + BLOCK,
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn output_is_handed_out_a_block_at_a_time_when_asked() {
        let data = sample();
        let wire = deflated(&data);
        let mut inflater = Inflater::new(15);
        inflater.begin();
        let (mut all, mut at) = (Vec::new(), 0);
        loop {
            let mut out = Vec::new();
            let p = inflater
                .inflate(&wire[at..], true, &mut out, BLOCK)
                .unwrap();
            at += p.consumed;
            assert!(out.len() <= BLOCK);
            all.extend_from_slice(&out);
            if p.done {
                break;
            }
        }
        assert_eq!(all, data);
    }

    /// Found by the `inflate` fuzz target (seeds/inflate/regression-last-
    /// step-past-the-room): a message that ends its stream (a final block,
    /// so no tail is fed after it) inflates a block in a first step and the
    /// rest in a second — past the room, but short of filling its block,
    /// with the input used up. That message is too large, and so is one
    /// that ends exactly at the room; one byte less fits.
    #[test]
    fn a_last_step_past_the_room_is_too_large() {
        let data = vec![7u8; 25_000];
        let mut c = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(1024);
        c.compress_vec(&data, &mut wire, FlushCompress::Finish)
            .unwrap();
        let mut inflater = Inflater::new(15);
        for room in [20_001, 25_000] {
            inflater.reset();
            assert_eq!(
                inflate_pieces(&mut inflater, &[&wire], room),
                Err(WsError::MessageTooLarge),
                "room {room}"
            );
        }
        inflater.reset();
        assert_eq!(
            inflate_pieces(&mut inflater, &[&wire], 25_001).unwrap(),
            data
        );
    }

    /// Found by the `inflate` fuzz target (seeds/inflate/regression-*): 41
    /// bytes inflate, then a broken block header. Whole, zlib fills the
    /// room and reads on into the header in one call; cut after 4 bytes, it
    /// stops at the full room first. Both are "too large".
    #[test]
    fn a_message_past_its_room_is_too_large_even_if_broken_after_it() {
        let wire = [0xaa, 0x20, 0x0e, 0x04, 0xfa, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut inflater = Inflater::new(15);
        for cut in [wire.len(), 4] {
            inflater.reset();
            assert_eq!(
                inflate_pieces(&mut inflater, &[&wire[..cut], &wire[cut..]], 41),
                Err(WsError::MessageTooLarge),
                "cut at {cut}"
            );
        }
        // With room to spare the same bytes are broken.
        inflater.reset();
        assert_eq!(
            inflate_pieces(&mut inflater, &[&wire], 1 << 20),
            Err(WsError::BadDeflate)
        );
    }

    #[test]
    fn garbage_is_refused() {
        let mut inflater = Inflater::new(15);
        inflater.begin();
        // BTYPE 11 is reserved.
        let r = inflater.inflate(&[0xff, 0xff, 0xff], true, &mut Vec::new(), 1 << 20);
        assert_eq!(r, Err(WsError::BadDeflate));
    }

    #[test]
    fn a_final_block_ends_the_stream_and_the_next_message_starts_afresh() {
        let data = b"final block".to_vec();
        let mut c = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(64);
        c.compress_vec(&data, &mut wire, FlushCompress::Finish)
            .unwrap();
        let mut inflater = Inflater::new(15);
        for _ in 0..2 {
            assert_eq!(
                inflate_pieces(&mut inflater, &[&wire], 1 << 20).unwrap(),
                data
            );
        }
        // Anything but the tail after the end is refused.
        inflater.begin();
        let mut extra = wire.clone();
        extra.extend_from_slice(&deflated(b"more"));
        let r = inflater.inflate(&extra, true, &mut Vec::new(), 1 << 20);
        assert_eq!(r, Err(WsError::BadDeflate));
    }
}
