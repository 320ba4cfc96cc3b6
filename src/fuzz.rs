//! Entry points for the cargo-fuzz targets in `fuzz/`; not part of the API.
//!
//! Each function takes any bytes and drives one parser the way the server
//! does. None of them panics on its own account: a panic means the code under
//! test broke, either by panicking itself or by breaking one of the
//! properties checked here (a stream split into pieces decodes as it does
//! whole, a decoder never claims more bytes than it was given).
//!
//! The property tests in `ws::properties` reuse `feed` and `reassemble`.

use std::path::Path;

use crate::config::Config;
use crate::http::body::BodyDecoder;
use crate::http::error::HttpError;
use crate::http::request::{header_storage, parse_head, Framing, HeadLimits, Request};
use crate::stats::Stats;
use crate::upgrade;
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

/// Drives the HTTP request head parser, then the body decoder.
///
/// The input is one connection's first bytes. The head is parsed with small
/// limits, whole and cut short at a few points: a cut head must wait or give
/// the whole one's verdict. Once complete, the bytes after it go to the body
/// decoder, whole and one byte at a time, which must agree.
pub fn http_head(data: &[u8]) {
    let whole = parse_owned(data, &HEAD_LIMITS);
    let cuts = (1..8)
        .map(|k| data.len() * k / 8)
        .chain([data.len().saturating_sub(1)]);
    for cut in cuts {
        let prefix = parse_owned(&data[..cut], &HEAD_LIMITS);
        let fine = prefix == Ok(None)
            || prefix == whole
            || refused_early(&prefix, &whole, cut, &HEAD_LIMITS);
        assert!(fine, "cut {cut}: {prefix:?}, whole {whole:?}");
    }
    let mut storage = header_storage();
    let Ok(Some(head)) = parse_head(data, &mut storage, &HEAD_LIMITS) else {
        return;
    };
    assert!(head.len <= data.len(), "a head longer than its input");
    let stats = Stats::default();
    let peer = ([127, 0, 0, 1], 1).into();
    let request = Request::new(&head, &[], peer, &stats);
    let _ = (request.query_param("a"), request.cookie("a"));
    let _ = (request.header("host"), request.headers().count());
    if head.framing == Framing::None {
        return;
    }
    let rest = &data[head.len..];
    let whole = body(head.framing, [rest]);
    let bytes = body(head.framing, rest.chunks(1));
    assert_eq!(bytes, whole, "{:?}", head.framing);
}

/// Drives the WebSocket upgrade check on a parsed request head.
///
/// The server offers the subprotocols `chat` and `json`, and takes upgrades
/// from pages of `http://example.com` only.
pub fn handshake(data: &[u8]) {
    let mut storage = header_storage();
    let Ok(Some(head)) = parse_head(data, &mut storage, &HEAD_LIMITS) else {
        return;
    };
    let protocols = ["chat".to_string(), "json".to_string()];
    let origins = ["http://example.com".to_string()];
    match upgrade::check(&head, &protocols, &origins) {
        Ok(accepted) => {
            assert_eq!(accepted.accept.len(), 28, "a SHA-1 in base64");
            if let Some(p) = accepted.protocol {
                assert!(protocols.iter().any(|s| s == p), "unoffered {p:?}");
            }
        }
        Err(refused) => assert!(matches!(refused.error().status(), 400 | 403 | 405 | 426)),
    }
}

/// Drives the gateway's reading of a downstream's answer to its upgrade.
///
/// The first byte picks the subprotocols offered; the rest is what the
/// downstream sent. Read whole, and again growing one byte at a time as a
/// socket may deliver it, the verdicts must agree: a need-more never
/// follows a verdict, and a 101's head never claims more than was read.
pub fn client_answer(data: &[u8]) {
    use crate::ws::client::read_answer;
    let [offer, answer @ ..] = data else {
        return;
    };
    let offered: &[&str] = match offer % 3 {
        0 => &[],
        1 => &["chat"],
        _ => &["chat", "superchat"],
    };
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let limit = 1024;
    let whole = read_answer(answer, KEY, offered, limit);
    if let Ok(Some(s)) = &whole {
        assert!(s.len <= answer.len());
        if let Some(p) = &s.protocol {
            assert!(offered.contains(&p.as_str()), "unoffered {p:?}");
        }
    }
    for end in 0..answer.len() {
        match read_answer(&answer[..end], KEY, offered, limit) {
            Ok(None) => {}
            Ok(Some(s)) => {
                let Ok(Some(w)) = &whole else {
                    panic!("a prefix switched, the whole did not");
                };
                assert_eq!(s.len, w.len);
                return;
            }
            // A prefix may already be refused (a bad status line, too large).
            Err(_) => {
                assert!(whole.is_err(), "a prefix failed, the whole did not");
                return;
            }
        }
    }
}

/// Drives the configuration loader on the input, if it is UTF-8.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, Path::new("/fuzz")) {
        let _ = e.to_string();
    }
}

/// Small limits, so the fuzzer reaches them.
const HEAD_LIMITS: HeadLimits = HeadLimits {
    header: 1024,
    headers: 16,
    uri: 256,
    body: 4096,
};

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

/// Cuts `stream` into pieces of 1 to `seed + 1` bytes, their sizes drawn from
/// a little generator seeded by `seed`; seed 0 gives single bytes.
fn pieces(stream: &[u8], seed: u8) -> Vec<&[u8]> {
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

/// Decodes a body delivered in `pieces`: the body, the bytes used and whether
/// it ended, or the error.
fn body<'p>(
    framing: Framing,
    pieces: impl IntoIterator<Item = &'p [u8]>,
) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = BodyDecoder::new(framing);
    let mut out = Vec::new();
    let mut used = 0;
    for piece in pieces {
        let progress = decoder.decode(piece, &mut out, HEAD_LIMITS.body)?;
        assert!(progress.consumed <= piece.len(), "used more than it had");
        used += progress.consumed;
        if progress.done {
            return Ok((out, used, true));
        }
        assert_eq!(
            progress.consumed,
            piece.len(),
            "an unfinished body left bytes"
        );
    }
    Ok((out, used, false))
}

/// A parsed head, copied out of the input it borrows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OwnedHead {
    method: String,
    path: String,
    query: String,
    minor: u8,
    headers: Vec<(String, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    len: usize,
}

/// [`parse_head`], its result copied out.
pub(crate) fn parse_owned(
    input: &[u8],
    limits: &HeadLimits,
) -> Result<Option<OwnedHead>, HttpError> {
    let mut storage = header_storage();
    let head = parse_head(input, &mut storage, limits)?;
    Ok(head.map(|h| OwnedHead {
        method: h.method.to_string(),
        path: h.path.to_string(),
        query: h.query.to_string(),
        minor: h.minor,
        headers: h
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        framing: h.framing,
        keep_alive: h.keep_alive,
        expect_continue: h.expect_continue,
        len: h.len,
    }))
}

/// Whether the verdict on the first `cut` bytes of an input may differ from
/// the verdict on the whole.
///
/// A head that is not complete yet is refused as soon as it breaks a limit,
/// whatever the rest would have shown, and the whole may not have shown it
/// yet: a request line over the URI limit is caught early only while its
/// end has not arrived. A head that is good whole never breaks one early, so
/// this only ever refuses sooner, or with another error, a head that is no
/// good.
pub(crate) fn refused_early(
    prefix: &Result<Option<OwnedHead>, HttpError>,
    whole: &Result<Option<OwnedHead>, HttpError>,
    cut: usize,
    limits: &HeadLimits,
) -> bool {
    match (prefix, whole) {
        (_, Ok(Some(_))) => false,
        (Err(HttpError::HeadTooLarge), _) => cut > limits.header,
        (Err(HttpError::UriTooLong), _) => cut > limits.uri.saturating_add(64),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let targets: [(&str, Target); 5] = [
            ("ws_frames", ws_frames),
            ("http_head", http_head),
            ("handshake", handshake),
            ("config", config),
            ("client_answer", client_answer),
        ];
        for (target, run) in targets {
            let dir = Path::new(seeds).join(target);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                run(&data);
            }
        }
    }
}
