//! Property tests: the frame decoder does not care how its bytes arrive,
//! what a client encodes decodes back, written headers parse back, and the
//! HTTP head parser waits for a head without changing its verdict.
//!
//! Each property runs 256 generated cases; a failure is shrunk and saved
//! under `proptest-regressions/`, which proptest replays first on every run.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::error::WsError;
use super::frame::{parse_header, write_frame, write_header, FrameHeader};
use super::mask::apply_mask;
use super::opcode::OpCode;
use super::receiver::Limits;
use crate::fuzz::{
    feed, limits, parse_owned, reassemble, refused_early, Outcome, Owned, OwnedHead,
};
use crate::http::error::HttpError;
use crate::http::head::HeadLimits;
use crate::testing::client_frame;

/// Cases per property, unless `PROPTEST_CASES` asks for more (or fewer).
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(CASES)
    }
}

/// No limits: every generated message fits.
const ROOMY: Limits = Limits {
    max_frame: u64::MAX,
    max_message: u64::MAX,
    validate_utf8: true,
    streaming: false,
    from_server: false,
    deflate: None,
};

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

/// `stream` cut at the given points, in order.
fn cut_at(stream: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for point in points.into_iter().chain([stream.len()]) {
        pieces.push(stream[from..point].to_vec());
        from = point;
    }
    pieces
}

/// Feeds `pieces`; streamed pieces are reassembled into messages so runs in
/// either mode compare.
fn decode(limits: Limits, pieces: &[Vec<u8>]) -> Outcome {
    let outcome = feed(limits, pieces.iter().map(Vec::as_slice));
    if limits.streaming {
        reassemble(outcome)
    } else {
        outcome
    }
}

// (a) Any stream, any split.

/// One frame as a client might send it: mostly well formed, sometimes
/// unmasked, with a reserved bit or an unknown opcode, a longer length form
/// than needed, a length that lies, or text that is not UTF-8.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    let first = prop_oneof![
        4 => (any::<bool>(), prop::sample::select(OPCODES.to_vec()))
            .prop_map(|(fin, op)| (u8::from(fin) << 7) | op.as_u8()),
        1 => any::<u8>(),
    ];
    let payload = prop_oneof![
        vec(any::<u8>(), 0..200),
        ".{0,40}".prop_map(String::into_bytes),
        // A close payload: a code, maybe a valid one, and a reason.
        (prop_oneof![Just(1000u16), 990..5100u16], ".{0,10}").prop_map(|(code, reason)| {
            let mut p = code.to_be_bytes().to_vec();
            p.extend(reason.into_bytes());
            p
        }),
    ];
    let length = prop_oneof![
        8 => Just(None),
        1 => (0..3u8, any::<u64>()).prop_map(Some),
    ];
    (
        first,
        payload,
        any::<[u8; 4]>(),
        prop::bool::weighted(0.9),
        length,
    )
        .prop_map(|(first, payload, key, masked, length)| {
            let mut out = vec![first];
            let len = payload.len() as u64;
            match length {
                None if len <= 125 => out.push(len as u8),
                None if len <= 0xFFFF => {
                    out.push(126);
                    out.extend((len as u16).to_be_bytes());
                }
                None => {
                    out.push(127);
                    out.extend(len.to_be_bytes());
                }
                // A longer form than needed, or a made-up length.
                Some((0, _)) => {
                    out.push(126);
                    out.extend((len as u16).to_be_bytes());
                }
                Some((1, _)) => {
                    out.push(127);
                    out.extend(len.to_be_bytes());
                }
                Some((_, lie)) => {
                    out.push(127);
                    out.extend(lie.to_be_bytes());
                }
            }
            if masked {
                out[1] |= 0x80;
                out.extend_from_slice(&key);
            }
            let body = out.len();
            out.extend_from_slice(&payload);
            if masked {
                apply_mask(&mut out[body..], key, 0);
            }
            out
        })
}

/// A byte stream: frames (maybe cut short), or bytes from nowhere.
fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (vec(any_frame(), 0..8), any::<Index>(), any::<bool>()).prop_map(
            |(frames, cut, truncate)| {
                let stream = frames.concat();
                let end = if truncate { cut.index(stream.len() + 1) } else { stream.len() };
                stream[..end].to_vec()
            }
        ),
        1 => vec(any::<u8>(), 0..300),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_stream_decodes_the_same_in_any_split(
        options in any::<u8>(),
        stream in any_stream(),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        let limits = limits(options);
        let whole = decode(limits, std::slice::from_ref(&stream));
        let split = decode(limits, &cut_at(&stream, &cuts));
        prop_assert_eq!(&split, &whole);
        let bytes: Vec<Vec<u8>> = stream.chunks(1).map(<[u8]>::to_vec).collect();
        prop_assert_eq!(decode(limits, &bytes), whole);
    }
}

// (b) Encode, decode, and get the same messages back.

/// A control frame slipped between data frames.
#[derive(Debug, Clone)]
struct Control {
    ping: bool,
    payload: Vec<u8>,
    /// After which of the message's fragments it goes.
    after: Index,
}

/// A data message, how it is cut into frames, and what is slipped in.
#[derive(Debug, Clone)]
struct Data {
    text: bool,
    payload: Vec<u8>,
    cuts: Vec<Index>,
    controls: Vec<Control>,
}

fn control() -> impl Strategy<Value = Control> {
    (any::<bool>(), vec(any::<u8>(), 0..=125), any::<Index>()).prop_map(|(ping, payload, after)| {
        Control {
            ping,
            payload,
            after,
        }
    })
}

fn data() -> impl Strategy<Value = Data> {
    let payload = prop_oneof![
        (Just(false), vec(any::<u8>(), 0..4096)),
        (
            Just(true),
            vec(any::<char>(), 0..1024)
                .prop_map(|c| { c.into_iter().collect::<String>().into_bytes() })
        ),
    ];
    (payload, vec(any::<Index>(), 0..5), vec(control(), 0..3)).prop_map(
        |((text, payload), cuts, controls)| Data {
            text,
            payload,
            cuts,
            controls,
        },
    )
}

/// A close frame's code (a valid one) and reason (at most 123 bytes).
fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    let code = prop_oneof![
        prop::sample::select(vec![
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011
        ]),
        3000..5000u16,
    ];
    let reason = "[a-zé€😀 ]{0,30}".prop_filter("at most 123 bytes", |r| r.len() <= 123);
    prop::option::of((code, reason))
}

/// Encodes `messages` as a client would, each frame with its own mask, and
/// returns the stream and the events it should decode to.
fn encode(messages: &[Data], close: &Option<(u16, String)>, mut key: u32) -> (Vec<u8>, Vec<Owned>) {
    let mut next_key = || {
        key = key.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        key.to_be_bytes()
    };
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for message in messages {
        let fragments = cut_at(&message.payload, &message.cuts);
        for (i, fragment) in fragments.iter().enumerate() {
            let opcode = match (i, message.text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let last = i + 1 == fragments.len();
            client_frame(&mut stream, last, opcode, fragment, next_key());
            if last {
                want.push(Owned::Message(message.text, message.payload.clone()));
            }
            for control in &message.controls {
                if control.after.index(fragments.len()) == i {
                    let opcode = if control.ping {
                        OpCode::Ping
                    } else {
                        OpCode::Pong
                    };
                    client_frame(&mut stream, true, opcode, &control.payload, next_key());
                    let payload = control.payload.clone();
                    want.push(if control.ping {
                        Owned::Ping(payload)
                    } else {
                        Owned::Pong(payload)
                    });
                }
            }
        }
    }
    if let Some((code, reason)) = close {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        client_frame(&mut stream, true, OpCode::Close, &payload, next_key());
        want.push(Owned::Close(Some(*code), reason.clone()));
    }
    (stream, want)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encoded_messages_decode_back(
        messages in vec(data(), 0..6),
        close in close(),
        key in any::<u32>(),
        cuts in vec(any::<Index>(), 0..8),
        streaming in any::<bool>(),
    ) {
        let (stream, want) = encode(&messages, &close, key);
        let limits = Limits { streaming, ..ROOMY };
        let want = Outcome { events: want, error: None, unconsumed: 0 };
        prop_assert_eq!(decode(limits, std::slice::from_ref(&stream)), want.clone());
        prop_assert_eq!(decode(limits, &cut_at(&stream, &cuts)), want);
    }
}

// (c) Written headers parse back.

/// Lengths around every boundary of the three length forms, and beyond.
fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=130u64,
        65_500..=65_600u64,
        any::<u32>().prop_map(u64::from),
        0..=(u64::MAX >> 1),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn written_headers_parse_back(
        fin in any::<bool>(),
        opcode in prop::sample::select(OPCODES.to_vec()),
        len in length(),
        key in prop::option::of(any::<[u8; 4]>()),
    ) {
        let len = usize::try_from(len).unwrap();
        let mut out = Vec::new();
        // A whole frame when the payload is small enough to build.
        let payload: Vec<u8> = if len <= 70_000 {
            (0..len).map(|i| i as u8).collect()
        } else {
            Vec::new()
        };
        if len <= 70_000 {
            write_frame(&mut out, fin, opcode, &payload);
        } else {
            write_header(&mut out, fin, opcode, len);
        }
        let form = match len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        if let Some(key) = key {
            out[1] |= 0x80;
            out.splice(form..form, key);
        }
        let header_len = form + if key.is_some() { 4 } else { 0 };
        let want = if opcode.is_control() && !fin {
            Err(WsError::FragmentedControl)
        } else if opcode.is_control() && len > 125 {
            Err(WsError::ControlTooLong)
        } else {
            Ok(Some(FrameHeader {
                fin,
                rsv: 0,
                opcode,
                mask: key,
                len: len as u64,
                header_len,
            }))
        };
        prop_assert_eq!(parse_header(&out, 0), want);
        if want.is_ok() {
            for cut in 0..header_len {
                prop_assert_eq!(parse_header(&out[..cut], 0), Ok(None), "cut {}", cut);
            }
            if len <= 70_000 {
                prop_assert_eq!(&out[header_len..], &payload[..]);
            }
        }
    }
}

// (d) The HTTP head parser waits without changing its verdict.

const HEAD_LIMITS: HeadLimits = HeadLimits {
    header: 300,
    headers: 8,
    uri: 64,
    body: 1000,
};

fn parse(input: &[u8]) -> Result<Option<OwnedHead>, HttpError> {
    parse_owned(input, &HEAD_LIMITS)
}

/// A request head, mostly plausible: known and unknown methods, targets of
/// every form, good and bad versions, headers that decide framing, CRLF or
/// bare LF, and a few bytes overwritten at random.
fn any_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        4 => prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE"])
            .prop_map(str::to_string),
        1 => "[A-Z]{1,12}",
    ];
    let target = prop_oneof![
        "/[a-z0-9/.%?=&#]{0,70}",
        Just("*".to_string()),
        "(http|HTTPS)://[a-z:0-9]{0,8}[/?]?[a-z]{0,4}",
        "[a-z]{1,4}",
    ];
    let version = prop_oneof![
        4 => prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]),
        1 => prop::sample::select(vec!["HTTP/2.0", "HTTP/1.x", "http/1.1", "HTTP/0.9"]),
    ];
    let name = prop_oneof![
        prop::sample::select(vec![
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Expect",
            "Upgrade",
            "Sec-WebSocket-Key",
        ])
        .prop_map(str::to_string),
        "[A-Za-z-]{1,10}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "h",
            "5",
            "0",
            "7, 7",
            "x",
            "chunked",
            "gzip, chunked",
            "close",
            "keep-alive",
            "100-continue",
            "",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,20}",
        "[0-9]{1,22}",
    ];
    let eol = prop_oneof![4 => Just("\r\n"), 1 => Just("\n")];
    let headers = vec((name, value), 0..10);
    let edits = vec((any::<Index>(), any::<u8>()), 0..3);
    (
        method,
        target,
        version,
        headers,
        eol,
        "[a-z0-9\r\n]{0,12}",
        edits,
    )
        .prop_map(|(method, target, version, headers, eol, body, edits)| {
            let mut text = format!("{method} {target} {version}{eol}");
            for (name, value) in headers {
                text += &format!("{name}: {value}{eol}");
            }
            text += eol;
            text += &body;
            let mut bytes = text.into_bytes();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_head_is_partial_until_complete_at_every_cut(
        input in prop_oneof![3 => any_head(), 1 => vec(any::<u8>(), 0..200)],
    ) {
        let whole = parse(&input);
        for cut in 0..input.len() {
            let prefix = parse(&input[..cut]);
            if prefix != Ok(None) && !refused_early(&prefix, &whole, cut, &HEAD_LIMITS) {
                prop_assert_eq!(&prefix, &whole, "cut {}", cut);
            }
        }
    }
}

#[test]
fn a_head_refused_early_is_still_refused() {
    // A method too long for any request line is taken for a long target.
    let long_method = format!("{} / HTTP/1.1\r\nHost: h\r\n\r\n", "A".repeat(200));
    // A head over the limit is refused before its bad header arrives.
    let too_big = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\nBad Header: x\r\n\r\n",
        "v".repeat(300)
    );
    for (input, whole, early) in [
        (long_method, HttpError::UnknownMethod, HttpError::UriTooLong),
        (too_big, HttpError::Malformed, HttpError::HeadTooLarge),
    ] {
        let input = input.as_bytes();
        assert_eq!(parse(input), Err(whole));
        let verdicts: Vec<_> = (0..input.len()).map(|cut| parse(&input[..cut])).collect();
        assert!(verdicts.contains(&Err(early)));
        for (cut, verdict) in verdicts.into_iter().enumerate() {
            let fine = verdict == Ok(None)
                || verdict == Err(whole)
                || refused_early(&verdict, &Err(whole), cut, &HEAD_LIMITS);
            assert!(fine, "cut {cut}: {verdict:?}");
        }
    }
}
