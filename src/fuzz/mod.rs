//! Entry points for the cargo-fuzz targets in `fuzz/`; not part of the API.
//!
//! Each function takes any bytes and drives one parser the way the server
//! does. None of them panics on its own account: a panic means the code under
//! test broke, either by panicking itself or by breaking one of the
//! properties checked here (a stream split into pieces decodes as it does
//! whole, a decoder never claims more bytes than it was given).
//!
//! One file per area, each target a `pub fn` re-exported here:
//!
//! - `ws.rs`: `ws_frames`, the frame decoder as a connection feeds it;
//! - `http.rs`: `http_head` (a request head, then its body, chunked or
//!   not), `handshake` (the upgrade check) and `client_answer` (a
//!   downstream's answer to the gateway's upgrade);
//! - `deflate.rs`: `inflate`, the permessage-deflate inflater and its bound;
//! - `gateway.rs`: `downstream`, a hostile downstream's frames and HTTP
//!   responses as the gateway reads and relays them;
//! - `router.rs`: `router`, the event router's JSON and MessagePack decoding and errors;
//! - `multipart.rs`: `multipart`, a `multipart/form-data` upload's parser;
//! - `tls.rs`: `tls`, the server's side of the TLS transport on a socket
//!   (with the `tls` feature);
//! - here: `config`, the configuration loader.
//!
//! The property tests in `ws::properties` reuse `feed` and `reassemble`.

mod deflate;
mod gateway;
mod http;
mod multipart;
mod router;
#[cfg(feature = "tls")]
mod tls;
mod ws;

use std::path::Path;

use crate::config::Config;

pub use self::deflate::inflate;
pub use self::gateway::downstream;
pub(crate) use self::http::HEAD_LIMITS;
// For the property tests in `ws::properties` and the unit tests.
pub use self::http::{client_answer, handshake, http_head};
#[cfg(test)]
pub(crate) use self::http::{parse_owned, refused_early, OwnedHead};
pub use self::multipart::multipart;
pub use self::router::router;
#[cfg(feature = "tls")]
pub use self::tls::tls;
pub use self::ws::ws_frames;
#[cfg(test)]
pub(crate) use self::ws::{feed, limits, reassemble, Outcome, Owned};

/// Drives the configuration loader on the input, if it is UTF-8.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, Path::new("/fuzz")) {
        let _ = e.to_string();
    }
}

/// Cuts `stream` into pieces of 1 to `seed + 1` bytes, their sizes drawn from
/// a little generator seeded by `seed`; seed 0 gives single bytes.
pub(crate) fn pieces(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed);
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = 1 + (state >> 16) as usize % (usize::from(seed) + 1);
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::HttpError;

    #[test]
    fn short_and_empty_inputs_are_fine() {
        for data in [&b""[..], b"\x00", b"\x00\x00", b"\xff\xff\xff"] {
            ws_frames(data);
            http_head(data);
            handshake(data);
            config(data);
        }
    }

    #[test]
    fn pieces_cover_the_stream_in_order() {
        let stream: Vec<u8> = (0..=255).collect();
        for seed in [0, 1, 7, 255] {
            let pieces = pieces(&stream, seed);
            assert!(pieces
                .iter()
                .all(|p| (1..=usize::from(seed) + 1).contains(&p.len())));
            assert_eq!(pieces.concat(), stream);
        }
    }

    #[test]
    fn a_long_request_line_is_refused_early_only_while_it_is_cut() {
        // Found by the http_head target (seeds/http_head/regression-*): the
        // whole input waits for the rest of its head, a cut one is 414.
        let input = format!("GET /{} HTTP/1.1\r\nHost: h\r\n", "a".repeat(400));
        let input = input.as_bytes();
        let whole = parse_owned(input, &HEAD_LIMITS);
        assert_eq!(whole, Ok(None));
        let cut = HEAD_LIMITS.uri + 65;
        let prefix = parse_owned(&input[..cut], &HEAD_LIMITS);
        assert_eq!(prefix, Err(HttpError::UriTooLong));
        assert!(refused_early(&prefix, &whole, cut, &HEAD_LIMITS));
        http_head(input);
    }

    /// The downstream answer target on every truncation and one-byte
    /// change of the RFC's 101 (a quick stand-in for a fuzzing run).
    #[test]
    fn the_client_answer_target_holds_on_mutations_of_a_101() {
        let good = b"\x02HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\r\n";
        for end in 0..good.len() {
            client_answer(&good[..end]);
        }
        for i in 1..good.len() {
            for b in [0u8, b'\r', b'\n', b':', b' ', b'x', 0xff] {
                let mut data = good.to_vec();
                data[i] = b;
                client_answer(&data);
            }
        }
    }

    #[test]
    fn the_seeds_run_clean() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
        type Target = fn(&[u8]);
        let targets: &[(&str, Target)] = &[
            ("ws_frames", ws_frames),
            ("http_head", http_head),
            ("handshake", handshake),
            ("config", config),
            ("client_answer", client_answer),
            ("inflate", inflate),
            ("downstream", downstream),
            ("router", router),
            ("multipart", multipart),
            #[cfg(feature = "tls")]
            ("tls", tls),
        ];
        for &(target, run) in targets {
            let dir = Path::new(seeds).join(target);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                run(&data);
            }
        }
    }
}
