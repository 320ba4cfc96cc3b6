//! Client-to-server payload masking (RFC 6455 §5.3), eight bytes at a time.

/// XORs `data` in place with the four-byte masking key.
///
/// `phase` is the payload offset of `data[0]`, so a payload that arrives in
/// pieces can be unmasked piece by piece as it comes.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    // Line the key up with data[0]: byte i of the payload takes key[i % 4].
    // A rotation of the little-endian word moves whole bytes (and, unlike a
    // slice rotation, costs one instruction).
    let shift = 8 * (phase % 4) as u32;
    let key = u32::from_le_bytes(mask).rotate_right(shift).to_le_bytes();
    // Native-endian both ways, so byte order inside the words is unchanged;
    // the two halves of the u64 are the same key, whichever comes first.
    let half = u64::from(u32::from_ne_bytes(key));
    let word = half | (half << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, hence of 4: the key is still aligned.
    let mut tail = chunks.into_remainder();
    if tail.len() >= 4 {
        let (four, rest) = tail.split_at_mut(4);
        let mut bytes = [0; 4];
        bytes.copy_from_slice(four);
        four.copy_from_slice(&(u32::from_ne_bytes(bytes) ^ u32::from_ne_bytes(key)).to_ne_bytes());
        tail = rest;
    }
    for (byte, k) in tail.iter_mut().zip(key) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn naive(data: &mut [u8], mask: [u8; 4], phase: usize) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= mask[(phase + i) % 4];
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn rfc_6455_example() {
        // §5.7: a masked "Hello".
        let mut data = *b"\x7f\x9f\x4d\x51\x58";
        apply_mask(&mut data, MASK, 0);
        assert_eq!(&data, b"Hello");
    }

    #[test]
    fn matches_a_byte_loop_for_every_length_and_phase() {
        for len in 0..=70 {
            for phase in 0..8 {
                let mut fast = sample(len);
                let mut slow = fast.clone();
                apply_mask(&mut fast, MASK, phase);
                naive(&mut slow, MASK, phase);
                assert_eq!(fast, slow, "len {len} phase {phase}");
            }
        }
    }

    #[test]
    fn resumes_at_every_split_point() {
        let mut want = sample(70);
        naive(&mut want, MASK, 0);
        for cut in 0..=70 {
            let mut data = sample(70);
            let (head, tail) = data.split_at_mut(cut);
            apply_mask(head, MASK, 0);
            apply_mask(tail, MASK, cut);
            assert_eq!(data, want, "cut {cut}");
        }
    }

    #[test]
    fn masking_twice_restores_the_data() {
        let mut data = sample(33);
        apply_mask(&mut data, MASK, 5);
        apply_mask(&mut data, MASK, 5);
        assert_eq!(data, sample(33));
    }
}
