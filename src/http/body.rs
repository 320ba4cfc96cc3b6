//! Request bodies: Content-Length and chunked (RFC 9112 §6, §7.1), decoded incrementally.

use super::error::HttpError;
use super::head::Framing;

/// Bytes a chunk-size line (with extensions) or one trailer line may take.
const MAX_LINE: usize = 4096;
/// Bytes all trailer lines together may take.
const MAX_TRAILERS: usize = 8192;

/// Decodes one request body from successive pieces of input.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(Chunked),
}

/// Progress of one `decode` call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes used (body bytes and framing).
    pub consumed: usize,
    /// True when the body ended; input after `consumed` belongs to the next request.
    pub done: bool,
}

impl BodyDecoder {
    /// A decoder for a framing other than `Framing::None`.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => BodyDecoder::Length { remaining: n },
            Framing::Chunked | Framing::None => BodyDecoder::Chunked(Chunked::default()),
        }
    }

    /// Appends the body bytes found in `input` to `out`, refusing a body over `limit` bytes.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: u64,
    ) -> Result<Progress, HttpError> {
        match self {
            BodyDecoder::Length { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok(Progress {
                    consumed: take,
                    done: *remaining == 0,
                })
            }
            BodyDecoder::Chunked(chunked) => chunked.decode(input, out, limit),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// After the size digits: optional whitespace and extensions up to CR.
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    Trailer,
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// The chunked transfer coding, strict about CRLF and bounded in every line.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Chunked {
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: u64,
    ) -> Result<Progress, HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data(remaining) = self.state {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            self.step(input[i], out.len() as u64, limit)?;
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// Advances the framing state machine by one byte outside chunk data.
    fn step(&mut self, b: u8, body_len: u64, limit: u64) -> Result<(), HttpError> {
        self.state = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > 16 {
                    return Err(HttpError::BadChunk);
                }
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.size = (self.size << 4) | digit;
                State::Size
            }
            (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => {
                self.line_byte(State::Extension)?
            }
            (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b'\t' | b' '..=b'~' | 0x80..=0xff) => {
                self.line_byte(State::Extension)?
            }
            (State::SizeLf, b'\n') => self.end_size_line(body_len, limit)?,
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::TrailerStart, b'\r') => State::TrailerLf { empty: true },
            (State::TrailerStart | State::Trailer, b'\t' | b' '..=b'~' | 0x80..=0xff) => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(HttpError::HeadTooLarge);
                }
                State::Trailer
            }
            (State::Trailer, b'\r') => State::TrailerLf { empty: false },
            (State::TrailerLf { empty: true }, b'\n') => State::Done,
            (State::TrailerLf { empty: false }, b'\n') => State::TrailerStart,
            _ => return Err(HttpError::BadChunk),
        };
        Ok(())
    }

    fn line_byte(&mut self, next: State) -> Result<State, HttpError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(HttpError::BadChunk);
        }
        Ok(next)
    }

    fn end_size_line(&mut self, body_len: u64, limit: u64) -> Result<State, HttpError> {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        self.line = 0;
        if size == 0 {
            return Ok(State::TrailerStart);
        }
        // Decided from the declared size, before any of the chunk is buffered.
        if body_len.saturating_add(size) > limit {
            return Err(HttpError::BodyTooLarge);
        }
        Ok(State::Data(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_whole(input: &[u8], limit: u64) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        let p = dec.decode(input, &mut out, limit)?;
        assert!(p.done, "not done: {:?}", String::from_utf8_lossy(input));
        Ok((out, p.consumed))
    }

    /// Feeds the input in two pieces split at `cut`, as the reactor would.
    fn decode_split(input: &[u8], cut: usize, limit: u64) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        let first = dec.decode(&input[..cut], &mut out, limit)?;
        assert_eq!(first.consumed, cut, "a partial piece is consumed whole");
        if first.done {
            return Ok((out, first.consumed));
        }
        let second = dec.decode(&input[cut..], &mut out, limit)?;
        assert!(second.done);
        Ok((out, cut + second.consumed))
    }

    const GOOD: &[u8] = b"5\r\nhello\r\n6;ext=1;q=\"x\"\r\n world\r\n0\r\nTrailer: t\r\n\r\nNEXT";

    #[test]
    fn chunked_body_whole_and_split_at_every_point() {
        let want = (b"hello world".to_vec(), GOOD.len() - 4);
        assert_eq!(decode_whole(GOOD, 100).unwrap(), want);
        for cut in 0..=GOOD.len() - 4 {
            assert_eq!(decode_split(GOOD, cut, 100).unwrap(), want, "cut {cut}");
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_body() {
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        let mut used = 0;
        for b in GOOD {
            let p = dec.decode(std::slice::from_ref(b), &mut out, 100).unwrap();
            used += p.consumed;
            if p.done {
                break;
            }
        }
        assert_eq!(out, b"hello world");
        assert_eq!(used, GOOD.len() - 4);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"11111111111111111\r\n",
            b"5\x01\r\n",
            b"-5\r\n",
        ];
        for input in cases {
            let mut dec = BodyDecoder::new(Framing::Chunked);
            let r = dec.decode(input, &mut Vec::new(), u64::MAX);
            assert_eq!(
                r,
                Err(HttpError::BadChunk),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn oversized_chunk_is_refused_from_its_size_line() {
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let r = dec.decode(b"5\r\nhello\r\n6\r\n", &mut Vec::new(), 10);
        assert_eq!(r, Err(HttpError::BodyTooLarge));
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let r = dec.decode(b"ffffffffffffffff\r\n", &mut Vec::new(), 10);
        assert_eq!(r, Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn endless_extension_or_trailer_is_refused() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        let mut dec = BodyDecoder::new(Framing::Chunked);
        assert_eq!(
            dec.decode(&ext, &mut Vec::new(), 10),
            Err(HttpError::BadChunk)
        );
        let mut tr = b"0\r\nX: ".to_vec();
        tr.extend(std::iter::repeat_n(b'a', MAX_TRAILERS + 1));
        let mut dec = BodyDecoder::new(Framing::Chunked);
        assert_eq!(
            dec.decode(&tr, &mut Vec::new(), 10),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn content_length_body_stops_at_its_length() {
        let mut dec = BodyDecoder::new(Framing::Length(5));
        let mut out = Vec::new();
        let p = dec.decode(b"hel", &mut out, 5).unwrap();
        assert_eq!(
            p,
            Progress {
                consumed: 3,
                done: false
            }
        );
        let p = dec.decode(b"loGET", &mut out, 5).unwrap();
        assert_eq!(
            p,
            Progress {
                consumed: 2,
                done: true
            }
        );
        assert_eq!(out, b"hello");
    }
}
