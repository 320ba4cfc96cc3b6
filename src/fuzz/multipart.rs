//! A `multipart/form-data` upload as a client sends it (`multipart`).

use super::pieces;
use crate::http::error::HttpError;
use crate::http::multipart::{Event, Parser, PartHead};

/// What a body parsed to: its events (consecutive data merged) and verdict.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Part(PartHead),
    Data(Vec<u8>),
    PartEnd,
    End,
}

/// Drives the multipart parser.
///
/// The first byte picks how the body is cut into pieces; then comes the
/// boundary, up to a line feed (`bound` when there is none within 70
/// bytes), then the body. Fed whole and in pieces, the parser must give the
/// same verdict and, when it accepts, the same parts with the same content;
/// it never reports more content than it was given.
pub fn multipart(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let (boundary, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) if (1..=70).contains(&i) => (&rest[..i], &rest[i + 1..]),
        _ => (&b"bound"[..], rest),
    };
    let whole = run(boundary, &[body]);
    let cut = run(boundary, &pieces(body, seed));
    assert_eq!(whole.1, cut.1, "whole and cut disagree on the verdict");
    if whole.1.is_ok() {
        assert_eq!(whole.0, cut.0, "whole and cut disagree on the parts");
    }
    for (events, _) in [&whole, &cut] {
        let content: usize = events
            .iter()
            .map(|e| match e {
                Seen::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
        assert!(content <= body.len(), "more content than body");
    }
}

fn run(boundary: &[u8], pieces: &[&[u8]]) -> (Vec<Seen>, Result<(), HttpError>) {
    let mut parser = Parser::new(boundary);
    let mut seen = Vec::new();
    let mut on = |event: Event<'_>| {
        match event {
            Event::Data(d) => match seen.last_mut() {
                Some(Seen::Data(held)) => held.extend_from_slice(d),
                _ => seen.push(Seen::Data(d.to_vec())),
            },
            Event::Part(head) => seen.push(Seen::Part(head.clone())),
            Event::PartEnd => seen.push(Seen::PartEnd),
            Event::End => seen.push(Seen::End),
        }
        Ok(())
    };
    for piece in pieces {
        if let Err(e) = parser.feed(piece, &mut on) {
            return (seen, Err(e));
        }
    }
    let verdict = parser.finish();
    (seen, verdict)
}
