//! Range requests (RFC 9110 §14): parsing `Range: bytes=...` and laying out
//! `multipart/byteranges` bodies.

use super::fields::trim;

/// An inclusive span of bytes, `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    /// The first byte's offset.
    pub start: u64,
    /// The last byte's offset (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes in the range.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a Range header asks of a representation of known size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Send the whole representation (200): no usable Range header.
    Full,
    /// Send these ranges (206): sorted, non-overlapping, non-adjacent, and
    /// never empty.
    Partial(Vec<ByteRange>),
    /// Nothing requested lies within the representation (416).
    Unsatisfiable,
}

/// The most digits a position may have; 19 digits always fit in a u64.
const MAX_DIGITS: usize = 19;

/// Parses a Range header value against a representation of `size` bytes.
///
/// Only the `bytes` unit (any case) is understood; another unit, or a header
/// that does not follow the grammar, gives [`RangeRequest::Full`], since a
/// server ignores a Range it does not understand. Ranges are clamped to the
/// representation, ranges starting at or past its end are dropped (all of
/// them dropped: [`RangeRequest::Unsatisfiable`]), and the rest are sorted
/// and merged where they overlap or touch. More than `max_ranges` after
/// merging gives `Full`.
///
/// A request covering the whole representation in one range is still answered
/// with `Partial(vec![whole])`, i.e. a 206 with a Content-Range, which the
/// RFC allows.
pub(crate) fn parse_range(header: &[u8], size: u64, max_ranges: usize) -> RangeRequest {
    let Some(specs) = parse_specs(trim(header)) else {
        return RangeRequest::Full;
    };
    let mut ranges: Vec<ByteRange> = specs
        .into_iter()
        .filter_map(|spec| spec.resolve(size))
        .collect();
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            // Overlapping or adjacent: `end < size <= u64::MAX`, so no overflow.
            Some(last) if r.start <= last.end + 1 => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() > max_ranges {
        return RangeRequest::Full;
    }
    RangeRequest::Partial(merged)
}

/// One `range-spec` as written, before it meets the representation's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    Int {
        /// The first position.
        first: u64,
        /// The last position, if given (never below `first`).
        last: Option<u64>,
    },
    /// `-length`: the final `length` bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes this spec selects from `size`, or `None` if it is unsatisfiable.
    fn resolve(self, size: u64) -> Option<ByteRange> {
        let last_byte = size.checked_sub(1)?;
        match self {
            Spec::Int { first, last } => (first < size).then(|| ByteRange {
                start: first,
                end: last.map_or(last_byte, |last| last.min(last_byte)),
            }),
            Spec::Suffix(0) => None,
            Spec::Suffix(len) => Some(ByteRange {
                start: size.saturating_sub(len),
                end: last_byte,
            }),
        }
    }
}

/// `bytes=` then a list of specs, or `None` if it is not that.
fn parse_specs(header: &[u8]) -> Option<Vec<Spec>> {
    let eq = header.iter().position(|&b| b == b'=')?;
    if !header[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let specs = header[eq + 1..]
        .split(|&b| b == b',')
        .map(trim)
        .filter(|element| !element.is_empty())
        .map(parse_spec)
        .collect::<Option<Vec<Spec>>>()?;
    // The list needs at least one real element.
    (!specs.is_empty()).then_some(specs)
}

/// One `range-spec`: `a-b`, `a-` or `-n`.
fn parse_spec(v: &[u8]) -> Option<Spec> {
    let dash = v.iter().position(|&b| b == b'-')?;
    let (first, last) = (&v[..dash], &v[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(number(last)?));
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(Spec::Int { first, last: None });
    }
    let last = number(last)?;
    (last >= first).then_some(Spec::Int {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT`, at most [`MAX_DIGITS`] of them.
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > MAX_DIGITS {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The layout of a `multipart/byteranges` body (RFC 9110 §14.6).
///
/// The body is, in order: for each part its head then its range's bytes from
/// the file (which the caller streams), then `closing`. The first head starts
/// directly with `--BOUNDARY` (no leading CRLF); every later head starts with
/// the CRLF that ends the previous part's bytes.
#[derive(Debug)]
pub(crate) struct Multipart {
    /// Each part's head and the range of the file that follows it.
    pub parts: Vec<(Vec<u8>, ByteRange)>,
    /// The bytes after the last part: `\r\n--BOUNDARY--\r\n`.
    pub closing: Vec<u8>,
    /// The boundary, without its leading dashes.
    boundary: String,
}

impl Multipart {
    /// Lays out the parts for `ranges` of a `size`-byte representation of type
    /// `content_type`.
    ///
    /// `boundary` must be a valid multipart boundary that needs no quoting
    /// (1 to 70 of letters, digits and `'()+_,-./:=?`, not ending in a space)
    /// and must not occur in the file's bytes.
    pub(crate) fn new(
        ranges: &[ByteRange],
        size: u64,
        content_type: &str,
        boundary: String,
    ) -> Multipart {
        let parts = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let lead = if i == 0 { "" } else { "\r\n" };
                let head = format!(
                    "{lead}--{boundary}\r\nContent-Type: {content_type}\r\n\
                     Content-Range: bytes {}-{}/{size}\r\n\r\n",
                    r.start, r.end
                );
                (head.into_bytes(), *r)
            })
            .collect();
        let closing = format!("\r\n--{boundary}--\r\n").into_bytes();
        Multipart {
            parts,
            closing,
            boundary,
        }
    }

    /// The Content-Type of the whole body.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The exact length of the whole body: heads, ranges and closing.
    pub(crate) fn content_length(&self) -> u64 {
        let parts: u64 = self
            .parts
            .iter()
            .map(|(head, r)| head.len() as u64 + r.len())
            .sum();
        parts + self.closing.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn parse(header: &str, size: u64) -> RangeRequest {
        parse_range(header.as_bytes(), size, 16)
    }

    fn partial(ranges: &[(u64, u64)]) -> RangeRequest {
        RangeRequest::Partial(ranges.iter().map(|&(s, e)| r(s, e)).collect())
    }

    #[test]
    fn len_is_inclusive() {
        assert_eq!(r(0, 0).len(), 1);
        assert_eq!(r(10, 19).len(), 10);
        assert_eq!(r(0, u64::MAX - 1).len(), u64::MAX);
    }

    #[test]
    fn every_spec_form() {
        assert_eq!(parse("bytes=0-1", 20), partial(&[(0, 1)]));
        assert_eq!(parse("bytes=5-5", 20), partial(&[(5, 5)]));
        assert_eq!(parse("bytes=5-", 20), partial(&[(5, 19)]));
        assert_eq!(parse("bytes=-3", 20), partial(&[(17, 19)]));
        assert_eq!(parse("bytes=19-", 20), partial(&[(19, 19)]));
        assert_eq!(parse("bytes=-1", 20), partial(&[(19, 19)]));
        assert_eq!(parse("bytes=0-", 20), partial(&[(0, 19)]));
        assert_eq!(parse("bytes=0-19", 20), partial(&[(0, 19)]));
    }

    #[test]
    fn unit_case_and_whitespace() {
        assert_eq!(parse("BYTES=0-1", 20), partial(&[(0, 1)]));
        assert_eq!(parse("Bytes=0-1", 20), partial(&[(0, 1)]));
        assert_eq!(parse("  bytes=0-1\t", 20), partial(&[(0, 1)]));
        assert_eq!(
            parse("bytes=0-1 ,\t10-11 , -2", 20),
            partial(&[(0, 1), (10, 11), (18, 19)])
        );
        assert_eq!(parse("bytes= 0-1", 20), partial(&[(0, 1)]));
        assert_eq!(parse("bytes=0-1,,5-6", 20), partial(&[(0, 1), (5, 6)]));
        assert_eq!(parse("bytes=,0-1, ,5-6,", 20), partial(&[(0, 1), (5, 6)]));
    }

    #[test]
    fn clamping() {
        assert_eq!(parse("bytes=10-100", 20), partial(&[(10, 19)]));
        assert_eq!(
            parse("bytes=0-9999999999999999999", 20),
            partial(&[(0, 19)])
        );
        assert_eq!(parse("bytes=-20", 20), partial(&[(0, 19)]));
        assert_eq!(parse("bytes=-21", 20), partial(&[(0, 19)]));
        assert_eq!(parse("bytes=-9999999999999999999", 20), partial(&[(0, 19)]));
        assert_eq!(
            parse_range(b"bytes=0-", u64::MAX, 16),
            partial(&[(0, u64::MAX - 1)])
        );
        assert_eq!(
            parse_range(b"bytes=-5", u64::MAX, 16),
            partial(&[(u64::MAX - 5, u64::MAX - 1)])
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=20-", 20), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=20-30", 20), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=50-60", 20), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 20), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse("bytes=-0, 30-40, 20-", 20),
            RangeRequest::Unsatisfiable
        );
        // Unsatisfiable members are dropped when others remain.
        assert_eq!(parse("bytes=50-60, 0-1", 20), partial(&[(0, 1)]));
        assert_eq!(parse("bytes=-0, -1", 20), partial(&[(19, 19)]));
    }

    #[test]
    fn empty_files_satisfy_nothing() {
        for h in [
            "bytes=0-",
            "bytes=0-0",
            "bytes=-1",
            "bytes=-0",
            "bytes=0-5,-3",
        ] {
            assert_eq!(parse(h, 0), RangeRequest::Unsatisfiable, "{h}");
        }
        assert_eq!(parse("bytes=5-2", 0), RangeRequest::Full);
    }

    #[test]
    fn coalescing() {
        assert_eq!(parse("bytes=0-5, 3-10", 20), partial(&[(0, 10)]));
        assert_eq!(parse("bytes=0-5, 6-10", 20), partial(&[(0, 10)]));
        assert_eq!(parse("bytes=0-5, 7-10", 20), partial(&[(0, 5), (7, 10)]));
        assert_eq!(parse("bytes=10-11, 0-1", 20), partial(&[(0, 1), (10, 11)]));
        assert_eq!(parse("bytes=2-3, 0-10", 20), partial(&[(0, 10)]));
        assert_eq!(parse("bytes=0-0, 0-0, 0-0", 20), partial(&[(0, 0)]));
        assert_eq!(parse("bytes=-5, 10-", 20), partial(&[(10, 19)]));
        assert_eq!(parse("bytes=0-1, -19", 20), partial(&[(0, 19)]));
        let overlapping: Vec<String> = (0..1000).map(|i| format!("{i}-{}", i + 1)).collect();
        assert_eq!(
            parse(&format!("bytes={}", overlapping.join(",")), 2000),
            partial(&[(0, 1000)])
        );
    }

    #[test]
    fn the_cap_applies_after_coalescing() {
        let singles: Vec<String> = (0..20).map(|i| format!("{}-{}", 2 * i, 2 * i)).collect();
        let header = format!("bytes={}", singles.join(","));
        assert_eq!(parse_range(header.as_bytes(), 100, 16), RangeRequest::Full);
        match parse_range(header.as_bytes(), 100, 20) {
            RangeRequest::Partial(ranges) => assert_eq!(ranges.len(), 20),
            other => panic!("{other:?}"),
        }
        // Adjacent single bytes merge into one range, well under the cap.
        let adjacent: Vec<String> = (0..20).map(|i| format!("{i}-{i}")).collect();
        let header = format!("bytes={}", adjacent.join(","));
        assert_eq!(parse_range(header.as_bytes(), 20, 16), partial(&[(0, 19)]));
        assert_eq!(parse_range(b"bytes=0-1", 20, 0), RangeRequest::Full);
        assert_eq!(
            parse_range(b"bytes=0-1,4-5", 20, 2),
            partial(&[(0, 1), (4, 5)])
        );
        assert_eq!(parse_range(b"bytes=0-1,4-5", 20, 1), RangeRequest::Full);
    }

    #[test]
    fn other_units_are_ignored() {
        for h in [
            "lines=1-2",
            "items=0-1",
            "byte=0-1",
            "bytesx=0-1",
            "none",
            "=0-1",
        ] {
            assert_eq!(parse(h, 20), RangeRequest::Full, "{h}");
        }
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes= ",
            "bytes=,",
            "bytes=,,",
            "bytes=5-2",
            "bytes=0-1,5-2",
            "bytes=-",
            "bytes=--1",
            "bytes=1--2",
            "bytes=1-2-3",
            "bytes=a-b",
            "bytes=1-b",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=1- 2",
            "bytes=0x1-2",
            "bytes=1",
            "bytes=0-1;2-3",
            "bytes=0-1 2-3",
            "bytes =0-1",
            "bytes=0-1=2",
            "bytes=10000000000000000000-",
            "bytes=-10000000000000000000",
            "bytes=0-00000000000000000001",
            "bytes=0-1,\u{e9}",
            "bytes=*",
            "bytes=-5-",
        ] {
            assert_eq!(parse(h, 20), RangeRequest::Full, "{h:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 20, 16), RangeRequest::Full);
        // Nineteen digits still parse.
        assert_eq!(parse("bytes=0000000000000000001-2", 20), partial(&[(1, 2)]));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let seed = b"bytes=0-1, -5,10-";
        for i in 0..seed.len() {
            for b in 0..=255u8 {
                let mut v = seed.to_vec();
                v[i] = b;
                for size in [0, 1, 5, 20, u64::MAX] {
                    let _ = parse_range(&v, size, 4);
                    let _ = parse_range(&v[..i], size, 4);
                }
            }
        }
    }

    /// The body as the caller assembles it, with `file` standing in for the file.
    fn assemble(m: &Multipart, file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (head, r) in &m.parts {
            body.extend_from_slice(head);
            body.extend_from_slice(&file[r.start as usize..=r.end as usize]);
        }
        body.extend_from_slice(&m.closing);
        body
    }

    #[test]
    fn multipart_layout() {
        let file = b"0123456789abcdefghij";
        let ranges = [r(0, 1), r(10, 11)];
        let m = Multipart::new(&ranges, 20, "text/plain", "wisp-1-14-ff".to_string());
        assert_eq!(
            m.content_type(),
            "multipart/byteranges; boundary=wisp-1-14-ff"
        );
        let body = String::from_utf8(assemble(&m, file)).unwrap();
        assert_eq!(
            body,
            "--wisp-1-14-ff\r\n\
             Content-Type: text/plain\r\n\
             Content-Range: bytes 0-1/20\r\n\
             \r\n\
             01\r\n\
             --wisp-1-14-ff\r\n\
             Content-Type: text/plain\r\n\
             Content-Range: bytes 10-11/20\r\n\
             \r\n\
             ab\r\n\
             --wisp-1-14-ff--\r\n"
        );
        assert_eq!(body.matches("--wisp-1-14-ff\r\n").count(), 2);
        assert_eq!(m.content_length(), body.len() as u64);
    }

    #[test]
    fn content_length_is_exact() {
        let file: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let cases: &[&[ByteRange]] = &[
            &[r(0, 0)],
            &[r(0, 0), r(4999, 4999)],
            &[r(0, 99), r(200, 2999), r(4000, 4999)],
            &[r(1, 1), r(3, 3), r(5, 5), r(7, 7), r(9, 9)],
        ];
        for ranges in cases {
            let m = Multipart::new(ranges, 5000, "application/octet-stream", "b".repeat(70));
            assert_eq!(m.parts.len(), ranges.len());
            assert_eq!(m.content_length(), assemble(&m, &file).len() as u64);
        }
        // Straight from parse_range, as the caller does.
        let RangeRequest::Partial(ranges) = parse("bytes=-10, 0-9, 100-199", 5000) else {
            panic!("expected ranges");
        };
        let m = Multipart::new(&ranges, 5000, "image/png", "x-y-z".to_string());
        let body = assemble(&m, &file);
        assert_eq!(m.content_length(), body.len() as u64);
        assert!(body.ends_with(b"\r\n--x-y-z--\r\n"));
    }
}
