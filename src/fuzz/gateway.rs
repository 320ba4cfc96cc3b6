//! The gateway's downstream leg (`downstream`): what a hostile downstream
//! sends back, as WebSocket frames or as a plain HTTP response.

use std::rc::Rc;

use super::pieces;
use super::ws::{feed, limits, Outcome, Owned};
use crate::gateway::exchange::{read_response, Answer, Reading, Reframe, Respond};
use crate::gateway::relay::{End, Relaying, Side};
use crate::http::body::BodyDecoder;
use crate::http::head::Framing;
use crate::hub::{Delivery, Hub, RoomLimits};
use crate::message::{ConnId, Message};
use crate::ws::receiver::Limits;

/// Drives what the gateway reads from a downstream.
///
/// Bit 7 of the first byte picks what the rest is. Clear: WebSocket frames
/// after the upgrade. The other bits pick the limits as in `ws_frames`, but
/// the leg is the gateway's (`session::downstream_limits`): the frames come
/// from a server, so they must be unmasked, messages are taken whole, and
/// no extension was offered, so a compressed frame is refused. The second
/// byte cuts the stream; whole and cut must agree. Each message is then
/// relayed to the client as `End::relay` frames it (within a frame limit
/// the first byte's top bits pick), and a client's receiver must read those
/// frames back as the same message.
///
/// Set: a plain HTTP response to a proxied request, read as the gateway
/// does (`read_response`, interim answers skipped) and its body re-framed
/// for the client (`Reframe`). Bits 0–2 say whether the request was a
/// `HEAD`, whether the client speaks HTTP/1.0 and whether its connection
/// closes after this. Read growing a byte at a time and whole, the head
/// must give the same verdict, the head written for the client must parse
/// as one whole head, and the body must come out the same whether it
/// arrives whole or cut; chunks written again must decode to it.
pub fn downstream(data: &[u8]) {
    match data {
        [options, cuts, stream @ ..] if options & 0x80 == 0 => frames(*options, *cuts, stream),
        [options, cuts, stream @ ..] => response(*options, *cuts, stream),
        _ => {}
    }
}

/// The downstream leg's frames, whole and cut, then relayed.
fn frames(options: u8, cuts: u8, stream: &[u8]) {
    let limits = Limits {
        from_server: true,
        streaming: false,
        deflate: None,
        ..limits(options)
    };
    let whole = feed(limits, [stream]);
    let split = feed(limits, pieces(stream, cuts));
    assert_eq!(split, whole, "{limits:?}");
    relay(&whole, [1, 3, 125, 1 << 16][usize::from(options >> 5 & 3)]);
}

/// Relays each message as the gateway's downstream end does and reads the
/// client's frames back with a client's receiver.
fn relay(outcome: &Outcome, max_frame: usize) {
    let mut hub = Hub::new(RoomLimits {
        per_connection: 1,
        members: 1,
    });
    let end = End {
        side: Side::Downstream,
        pair: ConnId { key: 1, serial: 1 },
        shared: Rc::default(),
        route: 0,
        host: 0,
        failed: false,
    };
    let mut relaying = Relaying::new(max_frame);
    let mut sent = Vec::new();
    for event in &outcome.events {
        let Owned::Message(text, data) = event else {
            continue;
        };
        // The session hands a handler text as `&str` (lossy without UTF-8 checks).
        let message = if *text {
            let text = String::from_utf8_lossy(data);
            sent.push(Owned::Message(true, text.as_bytes().to_vec()));
            end.relay(&mut hub, Message::Text(&text), &mut relaying);
            continue;
        } else {
            Message::Binary(data)
        };
        sent.push(Owned::Message(false, data.clone()));
        end.relay(&mut hub, message, &mut relaying);
    }
    let mut wire = Vec::new();
    for delivery in hub.outbox.drain(..) {
        if let Delivery::Relay { to, frame } = delivery {
            assert_eq!(to, end.pair, "relayed to another connection");
            wire.extend_from_slice(&frame);
        }
    }
    // The client's leg of the gateway is a server: it reads masked frames
    // only, so the relayed frames are read as a client would, unlimited.
    let client = Limits {
        from_server: true,
        ..limits(0x3C)
    };
    let read = feed(client, [&wire[..]]);
    assert_eq!(read.error, None, "the relayed frames do not parse");
    assert_eq!(read.events, sent, "relayed messages changed");
    assert_eq!(read.unconsumed, 0);
}

/// How the client's response is written, from bits 0–2.
fn respond(options: u8) -> Respond<'static> {
    Respond {
        date: "Thu, 03 Dec 2026 12:00:00 GMT",
        extra: &[],
        request_id: "fuzz-1",
        cookie: None,
        head_request: options & 1 != 0,
        client_minor: if options & 2 != 0 { 0 } else { 1 },
        close: options & 4 != 0,
    }
}

/// What reading a downstream's response head came to: the answer, the
/// bytes before it (interim answers) and the head written for the client.
type Head = Result<Option<(usize, Answer, Vec<u8>)>, &'static str>;

/// Reads response heads from the front of `buf` as the gateway does,
/// skipping interim ones, until a final one, a need for more, or an error.
fn read_head(buf: &[u8], respond: &Respond<'_>) -> Head {
    let mut at = 0;
    loop {
        let mut out = Vec::new();
        match read_response(&buf[at..], respond, &mut out)? {
            Reading::Partial => {
                assert!(out.is_empty(), "wrote a head before reading one");
                return Ok(None);
            }
            Reading::Interim(n) => {
                assert!(n > 0 && n <= buf.len() - at, "an interim head of {n} bytes");
                assert!(out.is_empty(), "wrote an interim head");
                at += n;
            }
            Reading::Final(answer) => {
                assert!(answer.len <= buf.len() - at, "a head longer than its input");
                return Ok(Some((at, answer, out)));
            }
        }
    }
}

/// A downstream's plain HTTP response, as the gateway reads and relays it.
fn response(options: u8, cuts: u8, stream: &[u8]) {
    let respond = respond(options);
    let whole = read_head(stream, &respond);
    // As a socket may deliver it: a prefix waits, or gives the whole's verdict.
    // (Every prefix is too slow for long inputs: a few dozen suffice.)
    let step = (stream.len() / 64).max(1);
    for end in (0..stream.len()).step_by(step) {
        match read_head(&stream[..end], &respond) {
            Ok(None) => {}
            Ok(Some((at, a, out))) => {
                let Ok(Some((w_at, w, w_out))) = &whole else {
                    panic!("a prefix was answered, the whole was not: {whole:?}");
                };
                // The head is the same; a body whose length the head leaves
                // open is still `Eof` either way.
                assert_eq!((at, a, &out), (*w_at, *w, w_out));
            }
            // Cut short, an over-long head may be refused before a flaw
            // further on is seen.
            Err("a response head over 16 KiB") => assert!(whole.is_err()),
            Err(e) => assert_eq!(whole.as_ref().err(), Some(&e), "prefix of {end}"),
        }
    }
    let Ok(Some((at, answer, head))) = whole else {
        return;
    };
    // What the client is sent parses as one whole response head.
    let mut storage = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut storage);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len(), "{head:?}"),
        other => panic!(
            "the client's head {:?}: {other:?}",
            String::from_utf8_lossy(&head)
        ),
    }
    assert_eq!(parsed.code, Some(answer.status));
    let rest = &stream[at + answer.len..];
    let whole = body(answer, [rest]);
    let split = body(answer, pieces(rest, cuts));
    assert_eq!(split, whole, "{answer:?}");
    if answer.chunked_out {
        // Chunked again or passed on bare, the bytes are the same.
        let bare = Answer {
            chunked_out: false,
            ..answer
        };
        assert_eq!(body(bare, [rest]), whole, "{answer:?}");
    }
}

/// Re-frames a response body delivered in `pieces`, as the leg does: the
/// body the client is sent (its chunks decoded, when it is sent chunked
/// again: a read's worth is one chunk, so the chunks differ with the cuts),
/// the bytes used and whether the body ended.
fn body<'p>(
    answer: Answer,
    pieces: impl IntoIterator<Item = &'p [u8]>,
) -> Result<(Vec<u8>, usize, bool), String> {
    let mut reframe = Reframe::new(answer.body, answer.chunked_out);
    let mut out = Vec::new();
    let mut used = 0;
    let mut done = reframe.done();
    for piece in pieces {
        if done {
            break;
        }
        let p = reframe.feed(piece, &mut out).map_err(|e| e.to_string())?;
        assert!(p.consumed <= piece.len(), "used more than it had");
        used += p.consumed;
        done = p.done;
        assert_eq!(done, reframe.done());
        if !done {
            assert_eq!(p.consumed, piece.len(), "an unfinished body left bytes");
        }
    }
    if !answer.chunked_out {
        return Ok((out, used, done));
    }
    let mut decoder = BodyDecoder::new(Framing::Chunked);
    let mut plain = Vec::new();
    let p = decoder
        .decode(&out, &mut plain, u64::MAX)
        .expect("our own chunks");
    assert_eq!(p.consumed, out.len(), "bytes after our last chunk");
    assert_eq!(p.done, done, "our chunks end where the body does");
    Ok((plain, used, done))
}
