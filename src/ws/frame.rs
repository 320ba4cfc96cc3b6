//! Frame headers (RFC 6455 §5.2): parsing what a peer sends, writing what
//! the server sends (unmasked) and what it sends as a client (masked).
//!
//! Parsing is resumable: `Ok(None)` means "not enough bytes yet" and nothing
//! was consumed. Rules that one byte can break are checked as soon as that
//! byte is present, so a bad frame fails before its header is complete.

use super::close_code::valid_close_code;
use super::error::WsError;
use super::mask::apply_mask;
use super::opcode::OpCode;

/// The longest payload a control frame may carry (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// The longest close reason: a control payload less the two-byte code.
const MAX_CLOSE_REASON: usize = 123;

/// One decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// This frame ends its message.
    pub(crate) fin: bool,
    /// The three RSV bits, in the low bits: 0, or 4 (RSV1) on the first
    /// frame of a compressed message when permessage-deflate is negotiated.
    pub(crate) rsv: u8,
    /// What the frame carries.
    pub(crate) opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub(crate) mask: Option<[u8; 4]>,
    /// The payload length.
    pub(crate) len: u64,
    /// How many bytes the header itself takes: 2 to 14.
    pub(crate) header_len: usize,
}

/// Parses the header at the front of `buf`; `Ok(None)` until it is complete.
/// `rsv` holds the RSV bits a negotiated extension defines, as they sit in
/// the first byte (`0x40` for permessage-deflate's RSV1, else 0); they are
/// allowed on a Text or Binary frame only, which starts a message.
pub(crate) fn parse_header(buf: &[u8], rsv: u8) -> Result<Option<FrameHeader>, WsError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (fin, rsv, opcode) = parse_first_byte(first, rsv)?;
    let Some(&second) = buf.get(1) else {
        return Ok(None);
    };
    let len7 = second & 0x7F;
    if opcode.is_control() && u64::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(WsError::ControlTooLong);
    }
    let Some((len, len_end)) = parse_length(buf, len7)? else {
        return Ok(None);
    };
    let masked = second & 0x80 != 0;
    let (mask, header_len) = if masked {
        let Some(key) = bytes_at::<4>(buf, len_end) else {
            return Ok(None);
        };
        (Some(key), len_end + 4)
    } else {
        (None, len_end)
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        len,
        header_len,
    }))
}

/// FIN, RSV and opcode: everything the first byte can get wrong.
fn parse_first_byte(byte: u8, allowed: u8) -> Result<(bool, u8, OpCode), WsError> {
    let fin = byte & 0x80 != 0;
    if byte & 0x70 & !allowed != 0 {
        return Err(WsError::ReservedBits);
    }
    let rsv = (byte >> 4) & 0x7;
    let opcode = OpCode::from_u8(byte & 0x0F)?;
    // RFC 7692 §6: RSV1 marks a message, so only its first frame carries it.
    if rsv != 0 && !matches!(opcode, OpCode::Text | OpCode::Binary) {
        return Err(WsError::ReservedBits);
    }
    if opcode.is_control() && !fin {
        return Err(WsError::FragmentedControl);
    }
    Ok((fin, rsv, opcode))
}

/// The payload length and where it ends in `buf`, given the 7-bit field.
/// §5.2 says "the minimal number of bytes MUST be used", so a longer form
/// than needed is refused, as is a 64-bit length with its top bit set.
fn parse_length(buf: &[u8], len7: u8) -> Result<Option<(u64, usize)>, WsError> {
    let (len, end) = match len7 {
        126 => match bytes_at::<2>(buf, 2) {
            Some(b) => (u64::from(u16::from_be_bytes(b)), 4),
            None => return Ok(None),
        },
        127 => match bytes_at::<8>(buf, 2) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        short => return Ok(Some((u64::from(short), 2))),
    };
    let shortest = if len <= 125 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    };
    if len >> 63 != 0 || end != shortest {
        return Err(WsError::BadLength);
    }
    Ok(Some((len, end)))
}

/// `N` bytes of `buf` starting at `at`, if that many are there.
fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at + N)?.try_into().ok()
}

/// The longest frame header a server writes: two bytes and an eight-byte length.
const MAX_HEADER: usize = 10;

/// An unmasked header (servers never mask) in its shortest form, and its length.
pub(crate) fn encode_header(fin: bool, opcode: OpCode, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0; MAX_HEADER];
    head[0] = (u8::from(fin) << 7) | opcode.as_u8();
    // Each cast is bounded by its match arm.
    let used = match len {
        0..=125 => {
            head[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (head, used)
}

/// Appends an unmasked header (servers never mask) in its shortest form.
pub(crate) fn write_header(out: &mut Vec<u8>, fin: bool, opcode: OpCode, len: usize) {
    let (head, used) = encode_header(fin, opcode, len);
    out.extend_from_slice(&head[..used]);
}

/// Appends a whole unmasked frame, growing `out` at most once.
#[inline(always)]
pub(crate) fn write_frame(out: &mut Vec<u8>, fin: bool, opcode: OpCode, payload: &[u8]) {
    if let Ok(len @ 0..=125) = u8::try_from(payload.len()) {
        // Most frames: a two-byte header, written without the general encoder.
        // No `reserve` first: `out` is a buffer that lives on, so it nearly
        // always has room, and each capacity check is paid on every frame.
        out.extend_from_slice(&[(u8::from(fin) << 7) | opcode.as_u8(), len]);
        out.extend_from_slice(payload);
        return;
    }
    write_long_frame(out, fin, opcode, payload);
}

/// `write_frame` for payloads of 126 bytes and more.
#[inline(never)]
fn write_long_frame(out: &mut Vec<u8>, fin: bool, opcode: OpCode, payload: &[u8]) {
    let (head, used) = encode_header(fin, opcode, payload.len());
    out.reserve(used + payload.len());
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and as much of `reason` as fits.
///
/// The reason is cut to 123 bytes on a character boundary so the frame stays
/// a legal control frame. A code a peer would reject (0 for "none", the
/// local-only 1005/1006/1015, or any other code outside
/// [`valid_close_code`]) sends an empty payload instead, reason and all.
pub(crate) fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = [0; 2 + MAX_CLOSE_REASON];
    let len = close_payload(&mut payload, code, reason);
    write_frame(out, true, OpCode::Close, &payload[..len]);
}

/// Appends a whole masked frame, as a client sends it (§5.3), in the
/// shortest form: the header with the mask bit and `mask`, then the payload
/// XORed with it. The payload is copied, then masked where it lies in `out`.
// The gateway (the lead's branch) is the first caller.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn write_masked_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: [u8; 4],
) {
    if let Ok(len @ 0..=125) = u8::try_from(payload.len()) {
        // Most frames: the two header bytes and the key, without the general encoder.
        let [k0, k1, k2, k3] = mask;
        out.extend_from_slice(&[
            (u8::from(fin) << 7) | opcode.as_u8(),
            0x80 | len,
            k0,
            k1,
            k2,
            k3,
        ]);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask, 0);
        return;
    }
    let (mut head, used) = encode_header(fin, opcode, payload.len());
    head[1] |= 0x80;
    out.reserve(used + 4 + payload.len());
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// [`write_close`] as a client sends it: masked with `mask`.
// The gateway (the lead's branch) is the first caller.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn write_masked_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: [u8; 4]) {
    let mut payload = [0; 2 + MAX_CLOSE_REASON];
    let len = close_payload(&mut payload, code, reason);
    write_masked_frame(out, true, OpCode::Close, &payload[..len], mask);
}

/// Writes a close payload into `buf` by [`write_close`]'s rules; returns its length.
fn close_payload(buf: &mut [u8; 2 + MAX_CLOSE_REASON], code: u16, reason: &str) -> usize {
    if !valid_close_code(code) {
        return 0;
    }
    let reason = truncate(reason, MAX_CLOSE_REASON);
    buf[..2].copy_from_slice(&code.to_be_bytes());
    buf[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    2 + reason.len()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The payload length of an encoded server frame (for counting).
pub(crate) fn frame_payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::Owned;
    use crate::ws::close::parse_close_payload;
    use crate::ws::receiver::{Limits, Receiver};

    fn header(bytes: &[u8]) -> Result<Option<FrameHeader>, WsError> {
        parse_header(bytes, 0)
    }

    #[test]
    fn written_headers_parse_back_at_every_length() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            let mut out = Vec::new();
            write_header(&mut out, true, OpCode::Binary, len);
            let want_len = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            let want = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                len: len as u64,
                header_len: want_len,
            };
            assert_eq!(header(&out), Ok(Some(want)), "len {len}");
        }
    }

    #[test]
    fn rfc_6455_examples() {
        // §5.7: unmasked "Hel" without FIN, and a masked "Hello".
        let h = header(b"\x01\x03Hel").unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.len, h.header_len),
            (false, OpCode::Text, 3, 2)
        );
        let h = header(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
            .unwrap()
            .unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!((h.len, h.header_len), (5, 6));
    }

    #[test]
    fn a_header_split_at_every_byte_waits_until_complete() {
        let masked_64 = b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x01\x02\x03\x04";
        let masked_16 = b"\x02\xfe\x01\x00\x01\x02\x03\x04";
        let ping = b"\x89\x80\x01\x02\x03\x04";
        for full in [&masked_64[..], masked_16, ping] {
            for cut in 0..full.len() {
                assert_eq!(header(&full[..cut]), Ok(None), "{full:x?} cut {cut}");
            }
            let h = header(full).unwrap().unwrap();
            assert_eq!(h.header_len, full.len());
            assert_eq!(h.mask, Some([1, 2, 3, 4]));
        }
    }

    #[test]
    fn rejections() {
        let cases: &[(&[u8], WsError)] = &[
            (b"\xc1", WsError::ReservedBits),
            (b"\xa1", WsError::ReservedBits),
            (b"\x91", WsError::ReservedBits),
            // RSV is checked before the opcode.
            (b"\xf3", WsError::ReservedBits),
            (b"\x83", WsError::UnknownOpcode),
            (b"\x87", WsError::UnknownOpcode),
            (b"\x8b", WsError::UnknownOpcode),
            (b"\x8f", WsError::UnknownOpcode),
            (b"\x09", WsError::FragmentedControl),
            (b"\x08\x80", WsError::FragmentedControl),
            (b"\x89\xfe", WsError::ControlTooLong),
            (b"\x88\x7e\x00\x7e", WsError::ControlTooLong),
            (b"\x8a\x7f", WsError::ControlTooLong),
            (
                b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00",
                WsError::BadLength,
            ),
            (b"\x82\xfe\x00\x7d", WsError::BadLength),
            (
                b"\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff",
                WsError::BadLength,
            ),
            (
                b"\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x05",
                WsError::BadLength,
            ),
        ];
        for &(bytes, want) in cases {
            assert_eq!(header(bytes), Err(want), "{bytes:x?}");
        }
    }

    #[test]
    fn largest_lengths_are_accepted() {
        let h = header(b"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff")
            .unwrap()
            .unwrap();
        assert_eq!(h.len, u64::MAX >> 1);
        let h = header(b"\x89\x7d").unwrap().unwrap();
        assert_eq!(h.len, 125);
    }

    #[test]
    fn frames_carry_their_payload() {
        let mut out = Vec::new();
        write_frame(&mut out, false, OpCode::Text, b"Hel");
        assert_eq!(out, b"\x01\x03Hel");
        out.clear();
        write_frame(&mut out, true, OpCode::Pong, b"");
        assert_eq!(out, b"\x8a\x00");
    }

    fn close_payload(code: u16, reason: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_close(&mut out, code, reason);
        let h = header(&out).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode), (true, OpCode::Close));
        assert_eq!(h.header_len + h.len as usize, out.len());
        out.split_off(h.header_len)
    }

    #[test]
    fn close_frames() {
        assert_eq!(close_payload(1000, ""), b"\x03\xe8");
        assert_eq!(close_payload(1001, "bye"), b"\x03\xe9bye");
        for code in [0, 1005, 1006, 1015, 999, 5000] {
            assert_eq!(close_payload(code, "why"), b"", "{code}");
        }
    }

    /// Decodes `frame` as a server does (it must be masked) into its one event.
    fn server_reads(frame: &[u8]) -> Owned {
        let mut rx = Receiver::new(Limits {
            max_frame: u64::MAX,
            max_message: u64::MAX,
            validate_utf8: true,
            streaming: false,
            from_server: false,
            deflate: None,
        });
        let mut buf = frame.to_vec();
        match rx.decode(&mut buf, &mut None) {
            Ok((n, Some(event))) if n == frame.len() => Owned::from(event),
            other => panic!("{other:?}"),
        }
    }

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn masked_frames_round_trip_through_a_server_receiver() {
        for len in [0, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = vec![0xAA];
            write_masked_frame(&mut out, true, OpCode::Binary, &payload, KEY);
            let frame = &out[1..];
            let mut plain = Vec::new();
            write_frame(&mut plain, true, OpCode::Binary, &payload);
            let h = header(frame).unwrap().unwrap();
            assert_eq!((h.mask, h.len), (Some(KEY), len as u64), "len {len}");
            assert_eq!(
                h.header_len,
                header(&plain).unwrap().unwrap().header_len + 4
            );
            assert_eq!(frame.len(), h.header_len + len, "len {len}");
            assert_eq!(server_reads(frame), Owned::Message(false, payload));
        }
    }

    #[test]
    fn rfc_6455_masked_hello() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, true, OpCode::Text, b"Hello", KEY);
        assert_eq!(out, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    }

    #[test]
    fn masked_close_frames_follow_the_same_rules() {
        for (code, reason) in [(1000, ""), (1001, "bye"), (4000, "é".repeat(70).as_str())] {
            let mut plain = Vec::new();
            write_close(&mut plain, code, reason);
            let want = plain.split_off(header(&plain).unwrap().unwrap().header_len);
            let mut out = Vec::new();
            write_masked_close(&mut out, code, reason, KEY);
            let (code, reason) = parse_close_payload(&want).unwrap();
            let reason = reason.to_string();
            assert_eq!(server_reads(&out), Owned::Close(code, reason));
        }
        for code in [0, 1005, 1006, 1015, 999, 5000] {
            let mut out = Vec::new();
            write_masked_close(&mut out, code, "why", KEY);
            assert_eq!(out, [0x88, 0x80, 0x37, 0xfa, 0x21, 0x3d], "{code}");
        }
    }

    #[test]
    fn close_reasons_are_cut_on_a_char_boundary() {
        let long = "x".repeat(200);
        let payload = close_payload(1000, &long);
        assert_eq!(payload.len(), 125);
        // 122 bytes, then a 2-byte char that would end at 124.
        let tricky = format!("{}é", "x".repeat(122));
        let payload = close_payload(1000, &tricky);
        assert_eq!(
            parse_close_payload(&payload),
            Ok((Some(1000), &tricky[..122]))
        );
        let exact = "y".repeat(123);
        let payload = close_payload(4000, &exact);
        assert_eq!(
            parse_close_payload(&payload),
            Ok((Some(4000), exact.as_str()))
        );
    }
}
