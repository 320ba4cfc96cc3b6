//! permessage-deflate (RFC 7692) on the load's side: the offer, the check
//! of the server's answer, raw DEFLATE per message (a sync flush whose
//! `00 00 ff ff` tail is cut off, and put back before inflating), and the
//! JSON payload the compressed rows send.
//!
//! flate2 with the zlib-rs backend, as wisp uses: the load's compressor is
//! the same code as the server's.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The end of every sync flush, which a permessage-deflate message leaves off.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The `Sec-WebSocket-Extensions` offer: with `takeover`, a bare
/// `permessage-deflate` (both sides may keep their context); without it,
/// both sides start every message afresh.
pub fn offer(takeover: bool) -> &'static str {
    if takeover {
        "permessage-deflate"
    } else {
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
    }
}

/// What the server's answer agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server compresses every message afresh: its messages can be
    /// inflated with a reset inflater.
    pub server_no_context_takeover: bool,
    /// The client (the load) must compress every message afresh.
    pub client_no_context_takeover: bool,
    /// The server's window, 8..=15 (15 when the answer does not say).
    pub server_max_window_bits: u8,
}

/// Checks the `Sec-WebSocket-Extensions` values of a 101 against the offer
/// made with [`offer`]`(takeover)`: exactly one extension,
/// `permessage-deflate`, with no parameter twice, none unknown, no
/// `client_max_window_bits` (not offered), and `server_no_context_takeover`
/// when the offer asked for it (RFC 7692 §7.1.1.1).
pub fn check_answer(values: &[&str], takeover: bool) -> Result<Agreed, String> {
    let extensions: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let [extension] = extensions[..] else {
        return Err(format!("the answer names {} extensions", extensions.len()));
    };
    let mut parts = extension.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    if name != "permessage-deflate" {
        return Err(format!("the answer's extension is {name:?}"));
    }
    let mut agreed = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
    };
    let mut seen: Vec<&str> = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (part, None),
        };
        if seen.contains(&key) {
            return Err(format!("the answer names {key} twice"));
        }
        seen.push(key);
        match (key, value) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => {
                agreed.server_max_window_bits = match v.parse::<u8>() {
                    Ok(bits @ 8..=15) => bits,
                    _ => return Err(format!("server_max_window_bits={v}")),
                }
            }
            _ => return Err(format!("the answer's parameter {part:?} was not offered")),
        }
    }
    if !takeover && !agreed.server_no_context_takeover {
        return Err("the answer leaves out the server_no_context_takeover offered".into());
    }
    Ok(agreed)
}

/// A raw DEFLATE compressor for whole messages.
pub struct Deflater {
    compress: Compress,
    out: Vec<u8>,
}

impl Deflater {
    /// A compressor at zlib `level` (0..=9) with a 32 KiB window.
    pub fn new(level: u32) -> Deflater {
        Deflater {
            compress: Compress::new(Compression::new(level), false),
            out: Vec::new(),
        }
    }

    /// One message's payload as permessage-deflate sends it: compressed
    /// from a fresh state when `fresh` (else after the messages before it),
    /// ending in a sync flush without its tail.
    pub fn message(&mut self, payload: &[u8], fresh: bool) -> &[u8] {
        if fresh {
            self.compress.reset();
        }
        self.out.clear();
        self.out.reserve(payload.len() / 2 + 64);
        let mut at = 0;
        loop {
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&payload[at..], &mut self.out, FlushCompress::Sync)
                .expect("a raw deflate stream cannot be in error");
            at += (self.compress.total_in() - before) as usize;
            // Done once everything is in and the flush had room to finish.
            if at == payload.len() && self.out.len() < self.out.capacity() {
                break;
            }
            self.out.reserve(self.out.capacity().max(64));
        }
        debug_assert!(self.out.ends_with(&TAIL));
        let end = self.out.len().saturating_sub(TAIL.len());
        &self.out[..end]
    }
}

/// A raw DEFLATE inflater for whole messages.
pub struct Inflater {
    decompress: Decompress,
    out: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// An inflater that reads any window up to 32 KiB.
    pub fn new() -> Inflater {
        Inflater {
            decompress: Decompress::new(false),
            out: Vec::new(),
        }
    }

    /// The message a permessage-deflate payload carries (the tail put back),
    /// inflated from a fresh state when `fresh`; an error past `limit` bytes
    /// or for a stream that is not DEFLATE.
    pub fn message(&mut self, payload: &[u8], fresh: bool, limit: usize) -> io::Result<&[u8]> {
        if fresh {
            self.decompress.reset(false);
        }
        self.out.clear();
        // Room for one byte more than allowed: a full buffer means too long.
        self.out.reserve(limit + 1);
        let bad = |e: flate2::DecompressError| io::Error::new(io::ErrorKind::InvalidData, e);
        'parts: for part in [payload, &TAIL[..]] {
            let mut at = 0;
            while at < part.len() {
                let (before_in, before_out) = (self.decompress.total_in(), self.out.len());
                let status = self
                    .decompress
                    .decompress_vec(&part[at..], &mut self.out, FlushDecompress::Sync)
                    .map_err(bad)?;
                at += (self.decompress.total_in() - before_in) as usize;
                if self.out.len() > limit {
                    return Err(io::Error::other(format!(
                        "a compressed message inflates to more than {limit} bytes"
                    )));
                }
                if status == Status::StreamEnd {
                    break 'parts;
                }
                if at < part.len()
                    && self.decompress.total_in() == before_in
                    && self.out.len() == before_out
                {
                    return Err(io::Error::other("the inflater is stuck"));
                }
            }
        }
        Ok(&self.out)
    }
}

/// A JSON telemetry message of exactly `size` bytes (valid UTF-8, valid
/// JSON from 128 bytes up): a device's envelope and an array of samples
/// whose keys repeat and whose readings, timestamps and sensor names vary
/// (a fixed pseudo-random sequence, so every run sends the same bytes).
/// It compresses about as real telemetry does, not as a run of one byte.
pub fn json_payload(size: usize) -> Vec<u8> {
    const SENSORS: [(&str, &str); 5] = [
        ("temperature", "C"),
        ("humidity", "%"),
        ("pressure", "hPa"),
        ("voltage", "V"),
        ("current", "mA"),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut ts: u64 = 1_764_758_400_000;
    let mut out = format!(
        "{{\"type\":\"telemetry\",\"device\":\"gw-{:04}\",\"firmware\":\"2.4.{}\",\"seq\":{},\"samples\":[",
        next() % 10_000,
        next() % 20,
        next() % 1_000_000
    );
    let closing = "]}";
    let mut first = true;
    loop {
        let (kind, unit) = SENSORS[(next() % SENSORS.len() as u64) as usize];
        ts += 50 + next() % 950;
        let r = next();
        let sample = format!(
            "{}{{\"sensor\":\"{kind}-{:02}\",\"ts\":{ts},\"value\":{}.{:03},\"unit\":\"{unit}\",\"ok\":{}}}",
            if first { "" } else { "," },
            r % 16,
            (r >> 8) % 1000,
            (r >> 20) % 1000,
            (r >> 40) % 32 != 0
        );
        if out.len() + sample.len() + closing.len() > size {
            break;
        }
        out.push_str(&sample);
        first = false;
    }
    out.push(']');
    // The rest: a tag of varying letters, or spaces when too little is left.
    let left = size.saturating_sub(out.len() + 1);
    if left >= 10 {
        out.push_str(",\"tag\":\"");
        for _ in 0..left - 9 {
            out.push((b'a' + (next() % 26) as u8) as char);
        }
        out.push('"');
    } else {
        out.extend(std::iter::repeat_n(' ', left));
    }
    out.push('}');
    let mut bytes = out.into_bytes();
    bytes.truncate(size);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_fresh_and_with_takeover() {
        let payload = json_payload(1024);
        let mut d = Deflater::new(6);
        let mut i = Inflater::new();
        let fresh = d.message(&payload, true).to_vec();
        assert!(fresh.len() < payload.len() / 2, "{} bytes", fresh.len());
        assert!(!fresh.ends_with(&TAIL));
        assert_eq!(i.message(&fresh, true, 1024).unwrap(), &payload[..]);
        // Fresh again: the same bytes.
        assert_eq!(d.message(&payload, true), &fresh[..]);
        // Takeover: the second message refers back to the first.
        let mut d = Deflater::new(6);
        let mut i = Inflater::new();
        let one = d.message(&payload, false).to_vec();
        let two = d.message(&payload, false).to_vec();
        assert!(two.len() < one.len() / 4);
        assert_eq!(i.message(&one, false, 1024).unwrap(), &payload[..]);
        assert_eq!(i.message(&two, false, 1024).unwrap(), &payload[..]);
    }

    #[test]
    fn an_inflated_message_past_the_limit_is_an_error() {
        let payload = json_payload(1024);
        let packed = Deflater::new(1).message(&payload, true).to_vec();
        assert!(Inflater::new().message(&packed, true, 1023).is_err());
        assert!(Inflater::new()
            .message(b"\xff\xff\xff", true, 1024)
            .is_err());
    }

    #[test]
    fn large_and_empty_messages() {
        let payload: Vec<u8> = json_payload(16384);
        let mut d = Deflater::new(6);
        let packed = d.message(&payload, true).to_vec();
        assert_eq!(
            Inflater::new().message(&packed, true, 16384).unwrap(),
            &payload[..]
        );
        let empty = d.message(b"", true).to_vec();
        assert_eq!(Inflater::new().message(&empty, true, 0).unwrap(), b"");
    }

    #[test]
    fn the_json_payload_has_the_size_asked_and_is_json_shaped() {
        for size in [128, 200, 1024, 1030, 16384] {
            let p = json_payload(size);
            assert_eq!(p.len(), size);
            let s = std::str::from_utf8(&p).unwrap();
            assert!(s.starts_with("{\"type\":\"telemetry\""));
            assert!(s.ends_with('}'));
            assert_eq!(s.matches('{').count(), s.matches('}').count());
        }
    }

    #[test]
    fn answers_are_checked_against_the_offer() {
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let a = check_answer(&[both], false).unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(a.server_max_window_bits, 15);
        let a = check_answer(
            &["permessage-deflate;server_no_context_takeover; server_max_window_bits=\"12\""],
            false,
        )
        .unwrap();
        assert_eq!(a.server_max_window_bits, 12);
        assert!(!a.client_no_context_takeover);
        assert!(check_answer(&["permessage-deflate"], false).is_err());
        assert!(check_answer(&["permessage-deflate"], true).is_ok());
        assert!(check_answer(&[], false).is_err());
        assert!(check_answer(&["x-webkit-deflate-frame"], true).is_err());
        assert!(check_answer(&["permessage-deflate; client_max_window_bits=10"], true).is_err());
        assert!(check_answer(&["permessage-deflate; server_max_window_bits=7"], true).is_err());
        assert!(check_answer(
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            true
        )
        .is_err());
        assert!(check_answer(&["permessage-deflate", "permessage-deflate"], true).is_err());
    }
}
