//! HTTP from the outside in: a client's request head and body
//! (`http_head`), its upgrade request (`handshake`), and a downstream's
//! answer to the gateway's own upgrade (`client_answer`).

use crate::http::body::BodyDecoder;
use crate::http::error::HttpError;
use crate::http::head::{header_storage, parse_head, Framing, HeadLimits};
use crate::http::request::Request;
use crate::stats::Stats;
use crate::upgrade;

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

/// Small limits, so the fuzzer reaches them.
pub(crate) const HEAD_LIMITS: HeadLimits = HeadLimits {
    header: 1024,
    headers: 16,
    uri: 256,
    body: 4096,
};

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
