//! Compressing an outgoing message into one whole frame (RFC 7692 §7.2.1).
//!
//! The message is deflated with a sync flush, the flush's `00 00 ff ff`
//! dropped, and the frame marked with RSV1. The compressor writes straight
//! into the output buffer after room for the frame header, so its output is
//! never copied; only when the header turns out shorter or longer than
//! guessed (a message whose compressed size crosses 125 or 65,535 bytes) is
//! the compressed payload moved along by a few bytes.

use flate2::{Compress, Compression, FlushCompress};

use super::quick::{Quick, MAX_MESSAGE};
use super::TAIL;
use crate::ws::frame::encode_header;
use crate::ws::opcode::OpCode;

/// RSV1: the frame's message is compressed (§6).
pub(crate) const RSV1: u8 = 0x40;

/// A raw-deflate compressor for one direction of permessage-deflate.
pub(crate) struct Compressor {
    /// zlib-rs, made when first needed: for a compressor that keeps its
    /// context, a level above 1, or a message longer than `quick` takes.
    inner: Option<Compress>,
    /// Level 1 afresh: the fast encoder for messages up to 64 KiB.
    quick: Option<Quick>,
    level: u32,
    window_bits: u8,
    /// Start every message afresh (no context takeover): one compressor can
    /// then serve every connection.
    fresh: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor at zlib `level` (0..=9) with a window of `window_bits`
    /// (9..=15); `fresh` resets it after every message.
    pub(crate) fn new(level: u32, window_bits: u8, fresh: bool) -> Compressor {
        Compressor {
            inner: None,
            quick: (fresh && level == 1).then(Quick::default),
            level: level.min(9),
            window_bits: window_bits.clamp(9, 15),
            fresh,
        }
    }

    /// zlib-rs, made on first use.
    fn zlib(&mut self) -> &mut Compress {
        let (level, bits) = (self.level, self.window_bits);
        self.inner.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        })
    }

    /// Appends one whole frame (FIN set, RSV1) carrying `payload` compressed,
    /// as a message of kind `opcode`. A message that does not shrink is sent
    /// compressed all the same (deflate's stored blocks add 5 bytes per
    /// 64 KiB): the threshold keeps short messages out of here, and a handler
    /// that knows its data is compressed already sends it with
    /// `send_uncompressed`.
    pub(crate) fn write_frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
        let start = out.len();
        // Deflate adds at most 5 bytes per 16 KiB stored block, and the flush.
        let guess = payload.len() + payload.len() / 1024 + 16;
        let guessed_header = encode_header(true, opcode, guess).1;
        out.resize(start + guessed_header, 0);
        match &mut self.quick {
            Some(quick) if payload.len() <= MAX_MESSAGE => {
                quick.compress(payload, self.window_bits, out)
            }
            _ => {
                self.deflate(out, payload);
                if self.fresh {
                    self.zlib().reset();
                }
            }
        }
        let len = out.len() - start - guessed_header;
        let (head, used) = encode_header(true, opcode, len);
        if used != guessed_header {
            // Move the payload to sit right after a header of its true size.
            let body = start + guessed_header..out.len();
            if used < guessed_header {
                out.copy_within(body, start + used);
                out.truncate(start + used + len);
            } else {
                out.splice(start..start, std::iter::repeat_n(0, used - guessed_header));
            }
        }
        out[start..start + used].copy_from_slice(&head[..used]);
        out[start] |= RSV1;
    }

    /// Deflates `payload` onto the end of `out` with a sync flush, less its tail.
    fn deflate(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        let zlib = self.zlib();
        let before = zlib.total_in();
        loop {
            out.reserve(payload.len() / 2 + 64);
            let spare = out.capacity() - out.len();
            let done = (zlib.total_in() - before) as usize;
            let made = out.len();
            // Only a stream error fails, and a valid compressor fed a slice has none.
            if zlib
                .compress_vec(&payload[done..], out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let consumed = (zlib.total_in() - before) as usize == payload.len();
            if consumed && out.len() - made < spare {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::inflate::Inflater;
    use crate::ws::frame::parse_header;

    /// Reads back a frame this module wrote: its header and inflated payload.
    fn read_back(frame: &[u8], inflater: &mut Inflater) -> (u8, OpCode, Vec<u8>) {
        let header = parse_header(frame, RSV1).unwrap().unwrap();
        assert!(header.fin);
        assert_eq!(frame.len(), header.header_len + header.len as usize);
        let payload = &frame[header.header_len..];
        if header.rsv == 0 {
            return (0, header.opcode, payload.to_vec());
        }
        let mut out = Vec::new();
        inflater.begin();
        let p = inflater.inflate(payload, true, &mut out, 1 << 24).unwrap();
        assert!(p.done);
        (header.rsv << 4, header.opcode, out)
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!("{{\"sensor\":\"temperature\",\"value\":{i}}},"));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn frames_of_every_header_size_read_back() {
        for level in [1, 6] {
            frames_read_back(Compressor::new(level, 15, true));
        }
    }

    fn frames_read_back(mut c: Compressor) {
        let mut inflater = Inflater::new(15);
        // Around each header-size boundary, before and after compressing.
        for n in [
            0, 1, 100, 125, 126, 200, 1000, 4000, 65_535, 65_536, 70_000, 300_000, 2_000_000,
        ] {
            let payload = json(n);
            let mut out = vec![0xAA];
            c.write_frame(&mut out, OpCode::Text, &payload);
            assert_eq!(out[0], 0xAA, "what was there stays");
            let (rsv, opcode, data) = read_back(&out[1..], &mut inflater);
            assert_eq!(opcode, OpCode::Text);
            assert_eq!(data, payload, "{n} bytes");
            assert_eq!(rsv, RSV1, "{n} bytes");
        }
    }

    #[test]
    fn incompressible_data_grows_by_a_few_bytes() {
        let noise = crate::testing::noise(3000, 0x2545_f491);
        let mut c = Compressor::new(6, 15, true);
        let mut out = Vec::new();
        c.write_frame(&mut out, OpCode::Binary, &noise);
        assert!(out.len() <= noise.len() + 4 + 10, "{}", out.len());
        let (rsv, _, data) = read_back(&out, &mut Inflater::new(15));
        assert_eq!(rsv, RSV1);
        assert!(data == noise);
    }

    #[test]
    fn a_compressor_with_context_takes_it_over() {
        let mut c = Compressor::new(6, 15, false);
        let mut inflater = Inflater::new(15);
        let payload = json(500);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut out = Vec::new();
            c.write_frame(&mut out, OpCode::Text, &payload);
            sizes.push(out.len());
            let (rsv, _, data) = read_back(&out, &mut inflater);
            assert_eq!((rsv, data), (RSV1, payload.clone()));
        }
        assert!(
            sizes[1] < sizes[0] / 4,
            "{sizes:?}: the second refers to the first"
        );
    }

    #[test]
    fn small_windows_are_honoured() {
        for (bits, level) in (9..=15).flat_map(|b| [(b, 1), (b, 9)]) {
            let mut c = Compressor::new(level, bits, true);
            let mut inflater = Inflater::new(bits);
            let payload = json(10_000);
            let mut out = Vec::new();
            c.write_frame(&mut out, OpCode::Binary, &payload);
            assert_eq!(read_back(&out, &mut inflater).2, payload, "{bits} bits");
        }
    }
}
