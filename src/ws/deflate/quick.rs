//! A fast raw-deflate encoder for one message compressed afresh: greedy
//! LZ77 matching and deflate's fixed Huffman codes — the same kind of output
//! as zlib-ng's level 1 (`deflate_quick`), without its fixed costs.
//!
//! Why our own: starting a zlib-rs stream afresh zeroes a 128 KiB hash table
//! and a 48 KiB symbol buffer before it compresses a byte, which is two
//! thirds of the work of compressing a 1 KiB message (`BENCHMARKS.md`,
//! "permessage-deflate"). Here the hash table (32 KiB) is never cleared:
//! each entry carries the message it belongs to in its value, so an entry
//! of an earlier message is simply not a match. Longer messages, higher
//! levels and compressors that keep their context go to zlib-rs.
//!
//! The output ends as a sync flush does, less its `00 00 ff ff` (RFC 7692
//! §7.2.1): one fixed-code block, its end-of-block code, then the 3-bit
//! header of an empty stored block and zero bits to the byte boundary.

/// The longest message this encoder takes: positions fit in a `u16`.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// log2 of the hash table's size.
const HASH_BITS: u32 = 13;

/// Deflate's shortest and longest matches.
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;

/// The hash table: for each hash of four bytes, where they were last seen,
/// as `base + position + 1`. Entries at or below `base` belong to earlier
/// messages.
#[derive(Debug)]
pub(crate) struct Quick {
    table: Box<[u32; 1 << HASH_BITS]>,
    /// Above every entry of the earlier messages.
    base: u32,
}

impl Default for Quick {
    fn default() -> Quick {
        Quick {
            table: Box::new([0; 1 << HASH_BITS]),
            base: 0,
        }
    }
}

impl Quick {
    /// Appends `payload` (at most [`MAX_MESSAGE`] bytes) compressed afresh
    /// to `out`, with back-references no further than `2^window_bits`.
    pub(crate) fn compress(&mut self, payload: &[u8], window_bits: u8, out: &mut Vec<u8>) {
        debug_assert!(payload.len() <= MAX_MESSAGE);
        let window = 1usize << window_bits.clamp(8, 15);
        let start = out.len();
        if self.base > u32::MAX - 2 * MAX_MESSAGE as u32 {
            // Once in 65,000 messages or more: start the numbering again.
            self.table.fill(0);
            self.base = 0;
        }
        let base = self.base;
        self.base += payload.len() as u32 + 1;
        let mut bits = Bits::new(out, payload.len());
        // BFINAL 0, BTYPE 01: a block with the fixed codes.
        bits.put(0b010, 3);
        let mut at = 0;
        let mut literal_from = 0;
        while at + MIN_MATCH <= payload.len() {
            let word = u32::from_le_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ]);
            let slot = &mut self.table[hash(word)];
            let seen = *slot;
            *slot = base + at as u32 + 1;
            let found = (seen > base)
                .then(|| (seen - base - 1) as usize)
                .filter(|&c| {
                    at - c <= window && payload[c..c + MIN_MATCH] == payload[at..at + MIN_MATCH]
                });
            let Some(from) = found else {
                at += 1;
                continue;
            };
            let len = MIN_MATCH + common(&payload[from + MIN_MATCH..], &payload[at + MIN_MATCH..]);
            let len = len.min(MAX_MATCH);
            for &byte in &payload[literal_from..at] {
                bits.literal(byte);
            }
            bits.copy(len, at - from);
            at += len;
            literal_from = at;
        }
        for &byte in &payload[literal_from..] {
            bits.literal(byte);
        }
        // End of block (256: seven zero bits), then an empty stored block's
        // header (BFINAL 0, BTYPE 00) and the pad to a byte: a sync flush
        // whose LEN/NLEN, `00 00 ff ff`, are left off.
        bits.put(0, 7 + 3);
        bits.finish();
        if out.len() - start > stored_len(payload.len()) {
            // The fixed codes spend 9 bits on a byte over 143: data that does
            // not compress goes in stored blocks instead, 5 bytes per 64 KiB.
            out.truncate(start);
            stored(payload, out);
        }
    }
}

/// The length of `len` bytes in stored blocks, with the flush's header.
fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(usize::from(u16::MAX)).max(1) + 1
}

/// `payload` in stored blocks (BFINAL 0, BTYPE 00, LEN, NLEN, the bytes),
/// then the flush's empty stored block without its LEN/NLEN.
fn stored(payload: &[u8], out: &mut Vec<u8>) {
    for chunk in payload.chunks(usize::from(u16::MAX)) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0);
}

/// The table slot of four bytes.
#[inline(always)]
fn hash(word: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// How many bytes `a` and `b` share from the start.
#[inline(always)]
fn common(a: &[u8], b: &[u8]) -> usize {
    let limit = a.len().min(b.len()).min(MAX_MATCH - MIN_MATCH);
    let mut n = 0;
    while n + 8 <= limit {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[n..n + 8].try_into().unwrap_or([0; 8]));
        let diff = x ^ y;
        if diff != 0 {
            return n + (diff.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < limit && a[n] == b[n] {
        n += 1;
    }
    n
}

/// Deflate's bit order on top of a byte vector: bits go in from the least
/// significant end; Huffman codes go in reversed (most significant first).
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(out: &'a mut Vec<u8>, len: usize) -> Bits<'a> {
        // Fixed codes take at most 9 bits a byte, and a few for the block.
        out.reserve(len + len / 8 + 16);
        Bits {
            out,
            acc: 0,
            count: 0,
        }
    }

    /// Appends the low `n` bits of `value` (n ≤ 32).
    #[inline(always)]
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += n;
        if self.count >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Appends a Huffman code of `n` bits, most significant bit first.
    #[inline(always)]
    fn code(&mut self, code: u32, n: u32) {
        self.put(code.reverse_bits() >> (32 - n), n);
    }

    /// A literal byte in the fixed code (RFC 1951 §3.2.6).
    #[inline(always)]
    fn literal(&mut self, byte: u8) {
        let (code, len) = LITERALS[usize::from(byte)];
        self.put(u32::from(code), u32::from(len));
    }

    /// A back-reference of `len` (4..=258) bytes `dist` (1..=32768) back.
    fn copy(&mut self, len: usize, dist: usize) {
        let (symbol, extra, base) = length_code(len);
        if symbol < 280 {
            self.code(symbol - 256, 7);
        } else {
            self.code(0xC0 + (symbol - 280), 8);
        }
        self.put((len - base) as u32, extra);
        let (code, extra, base) = distance_code(dist);
        self.code(code, 5);
        self.put((dist - base) as u32, extra);
    }

    /// Writes out the last bits, zero-padded to a byte.
    fn finish(self) {
        let bytes = self.count.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Every byte's fixed code, bit-reversed as it goes on the wire, and its length.
static LITERALS: [(u16, u8); 256] = literal_codes();

const fn literal_codes() -> [(u16, u8); 256] {
    let mut table = [(0, 0); 256];
    let mut b = 0;
    while b < 256 {
        let (code, len) = if b < 144 {
            (0x30 + b as u32, 8)
        } else {
            (0x190 + (b as u32 - 144), 9)
        };
        table[b] = ((code.reverse_bits() >> (32 - len)) as u16, len as u8);
        b += 1;
    }
    table
}

/// A match length's symbol (257..=285), extra bits and base length.
fn length_code(len: usize) -> (u32, u32, usize) {
    const BASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const EXTRA: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    let i = BASE.partition_point(|&b| usize::from(b) <= len) - 1;
    (257 + i as u32, u32::from(EXTRA[i]), usize::from(BASE[i]))
}

/// A distance's code (0..=29), extra bits and base distance.
fn distance_code(dist: usize) -> (u32, u32, usize) {
    const BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    let i = BASE.partition_point(|&b| usize::from(b) <= dist) - 1;
    let extra = if i < 4 { 0 } else { (i as u32 - 2) / 2 };
    (i as u32, extra, usize::from(BASE[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::inflate::Inflater;

    fn inflate(wire: &[u8], window_bits: u8) -> Result<Vec<u8>, crate::ws::error::WsError> {
        let mut inflater = Inflater::new(window_bits);
        inflater.begin();
        let mut out = Vec::new();
        let p = inflater.inflate(wire, true, &mut out, 1 << 24)?;
        assert!(p.done);
        Ok(out)
    }

    fn round_trip(data: &[u8], window_bits: u8) -> Vec<u8> {
        let mut quick = Quick::default();
        let mut wire = Vec::new();
        quick.compress(data, window_bits, &mut wire);
        assert_eq!(
            inflate(&wire, window_bits).as_deref(),
            Ok(data),
            "{} bytes",
            data.len()
        );
        wire
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0u32;
        while s.len() < n {
            s.push_str(&format!(
                "{{\"sensor\":\"t{}\",\"value\":{}.{}}},",
                i % 13,
                i * 7 % 1000,
                i % 10
            ));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn one_encoder_serves_message_after_message() {
        let mut quick = Quick::default();
        let messages = [
            json(900),
            json(900),
            b"x".repeat(600),
            json(5000),
            json(900),
        ];
        for round in 0..2 {
            if round == 1 {
                // Near the end of the numbering, which starts again.
                quick.base = u32::MAX - 2 * MAX_MESSAGE as u32 - 1000;
            }
            for m in &messages {
                let mut wire = Vec::new();
                quick.compress(m, 15, &mut wire);
                // Each inflates on its own: nothing refers to an earlier one.
                assert_eq!(inflate(&wire, 15).as_deref(), Ok(&m[..]));
            }
        }
    }

    #[test]
    fn json_shrinks_like_zlib_level_1() {
        let data = json(1024);
        let wire = round_trip(&data, 15);
        assert!(
            wire.len() * 2 < data.len(),
            "{} of {}",
            wire.len(),
            data.len()
        );
    }

    #[test]
    fn every_length_round_trips() {
        let data = json(3000);
        for n in 0..300 {
            round_trip(&data[..n], 15);
        }
        for n in [1000, 4095, 4096, 4097, 40_000, MAX_MESSAGE] {
            round_trip(&json(n), 15);
        }
    }

    #[test]
    fn long_runs_and_every_byte_value() {
        round_trip(&[0; 5000], 15);
        round_trip(&[0xff; 777], 15);
        let all: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        round_trip(&all, 15);
        let noise = crate::testing::noise(5000, 7);
        let wire = round_trip(&noise, 15);
        assert_eq!(
            wire.len(),
            noise.len() + 6,
            "one stored block and the flush"
        );
        let wire = round_trip(&crate::testing::noise(MAX_MESSAGE, 3), 15);
        assert_eq!(
            wire.len(),
            MAX_MESSAGE + 11,
            "two stored blocks and the flush"
        );
        round_trip(&[], 15);
    }

    #[test]
    fn matches_keep_within_a_small_window() {
        // A repeat 600 bytes back is out of reach of a 512-byte window.
        let mut data = json(600);
        data.extend_from_within(..600);
        for bits in 9..=15 {
            round_trip(&data, bits);
        }
    }

    proptest::proptest! {
        /// Anything compresses and inflates back within its window, a
        /// few-letter alphabet making matches of every length and distance.
        #[test]
        fn anything_round_trips(
            data in proptest::collection::vec(0u8..4, 0..20_000),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            bits in 9u8..=15,
        ) {
            let mut data = data;
            data.extend_from_slice(&noise);
            round_trip(&data, bits);
        }
    }

    #[test]
    fn every_length_and_distance_code() {
        for len in MIN_MATCH..=MAX_MATCH {
            let (symbol, extra, base) = length_code(len);
            assert!(
                (257..=285).contains(&symbol) && len - base < 1 << extra,
                "{len}"
            );
        }
        for dist in 1..=32_768 {
            let (code, extra, base) = distance_code(dist);
            assert!(code < 30 && dist - base < 1 << extra, "{dist}");
        }
        // A message that uses them: runs of every length at growing distances.
        let mut data = Vec::new();
        for len in (MIN_MATCH..=MAX_MATCH).step_by(7) {
            let start = data.len();
            data.extend((0..len).map(|i| (i * 31 + len) as u8));
            data.extend(std::iter::repeat_n(b'.', start % 3000));
            data.extend_from_within(start..start + len);
        }
        round_trip(&data[..data.len().min(MAX_MESSAGE)], 15);
    }
}
