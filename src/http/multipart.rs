//! `multipart/form-data` bodies (RFC 7578 over RFC 2046 §5.1), parsed as
//! they arrive: sans-IO and resumable.
//!
//! [`Parser::feed`] takes any piece of the body and reports what it found
//! to a callback: a part's head ([`Event::Part`]), its data in pieces
//! ([`Event::Data`], borrowed from the input — never gathered), its end,
//! and the end of the body. A delimiter split across reads is recognised
//! without holding input back: the bytes matched so far are a prefix of the
//! delimiter itself, so when the match fails they are reported from the
//! delimiter. The only bytes kept are one part's header block, bounded by
//! [`MAX_PART_HEAD`]. Bad framing is [`HttpError::Malformed`] (400).

use super::error::HttpError;

/// Bytes one part's header block may take.
pub(crate) const MAX_PART_HEAD: usize = 8 * 1024;

/// What the parser found; data borrows from the input (or the delimiter).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A part begins: its `Content-Disposition` and `Content-Type`.
    Part(&'a PartHead),
    /// A piece of the current part's content.
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// The close delimiter: the body is complete.
    End,
}

/// A part's head: `Content-Disposition: form-data; name=…; filename=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartHead {
    /// The form field's name.
    pub name: String,
    /// The client's file name, as sent (a file part), or `None` (a field).
    pub filename: Option<String>,
    /// The part's `Content-Type`, if it has one.
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter: the preamble, skipped.
    Preamble,
    /// Just after a delimiter: `--` (the end), padding, or CRLF.
    AfterDelimiter,
    /// After a delimiter's first `-`.
    CloseDash,
    /// After a delimiter's padding and CR.
    DelimiterLf,
    /// In a part's header block.
    Headers,
    /// In a part's content.
    Body,
    /// After the close delimiter: the epilogue, skipped.
    Done,
}

/// One `multipart/form-data` body being parsed.
#[derive(Debug)]
pub(crate) struct Parser {
    /// `CRLF--boundary`.
    delimiter: Vec<u8>,
    /// Bytes of `delimiter` matched at the end of the input so far.
    matched: usize,
    state: State,
    /// The current part's header block, from a CRLF of our own so that an
    /// empty block ends at the first CRLF too.
    head: Vec<u8>,
    part: PartHead,
    /// Why the body was refused, for the log.
    why: &'static str,
}

impl Parser {
    /// A parser for the boundary of a `Content-Type` header's value;
    /// `None` if it is not `multipart/form-data` with a valid boundary.
    pub fn for_content_type(content_type: &[u8]) -> Option<Parser> {
        boundary(content_type).map(Parser::new)
    }

    /// A parser for `boundary` (as [`boundary`] returned it).
    pub fn new(boundary: &[u8]) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        Parser {
            delimiter,
            // The first delimiter may open the body, with no CRLF before it.
            matched: 2,
            state: State::Preamble,
            head: Vec::new(),
            part: PartHead::default(),
            why: "",
        }
    }

    /// Why the last refusal was made.
    pub fn why(&self) -> &'static str {
        self.why
    }

    /// Parses the next piece of the body, reporting to `on`; an error from
    /// `on` stops the parse and is returned.
    pub fn feed(
        &mut self,
        input: &[u8],
        on: &mut dyn FnMut(Event<'_>) -> Result<(), HttpError>,
    ) -> Result<(), HttpError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(()),
                State::Preamble | State::Body => i = self.scan(input, i, on)?,
                State::AfterDelimiter => {
                    self.state = match input[i] {
                        b'-' => State::CloseDash,
                        b' ' | b'\t' => State::AfterDelimiter,
                        b'\r' => State::DelimiterLf,
                        _ => return self.refuse("a delimiter is followed by text"),
                    };
                    i += 1;
                }
                State::CloseDash => {
                    if input[i] != b'-' {
                        return self.refuse("a delimiter is followed by a single '-'");
                    }
                    i += 1;
                    self.state = State::Done;
                    on(Event::End)?;
                }
                State::DelimiterLf => {
                    if input[i] != b'\n' {
                        return self.refuse("a delimiter's CR is not followed by LF");
                    }
                    i += 1;
                    self.head.clear();
                    self.head.extend_from_slice(b"\r\n");
                    self.state = State::Headers;
                }
                State::Headers => {
                    self.head.push(input[i]);
                    i += 1;
                    if self.head.len() > MAX_PART_HEAD + 2 {
                        return self.refuse("a part's header block is too long");
                    }
                    if self.head.ends_with(b"\r\n\r\n") {
                        self.part = self.part_head()?;
                        self.state = State::Body;
                        self.matched = 0;
                        self.head = Vec::new();
                        on(Event::Part(&self.part))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that the body ended with its close delimiter.
    pub fn finish(&mut self) -> Result<(), HttpError> {
        if self.state == State::Done {
            Ok(())
        } else {
            self.refuse("the body ends before its close delimiter")
        }
    }

    /// Looks for the delimiter in `input` from `i`, reporting content before
    /// it (in a part; the preamble is dropped). Returns where it stopped.
    fn scan(
        &mut self,
        input: &[u8],
        mut i: usize,
        on: &mut dyn FnMut(Event<'_>) -> Result<(), HttpError>,
    ) -> Result<usize, HttpError> {
        let body = self.state == State::Body;
        while i < input.len() {
            if self.matched == 0 {
                // The delimiter's CR occurs nowhere else in it (a boundary
                // has no CR), so a match can only start at a CR.
                let rest = &input[i..];
                let at = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
                if body && at > 0 {
                    on(Event::Data(&rest[..at]))?;
                }
                i += at;
                if i == input.len() {
                    break;
                }
            }
            if input[i] == self.delimiter[self.matched] {
                self.matched += 1;
                i += 1;
                if self.matched == self.delimiter.len() {
                    self.matched = 0;
                    if body {
                        on(Event::PartEnd)?;
                    }
                    self.state = State::AfterDelimiter;
                    return Ok(i);
                }
            } else {
                // Not the delimiter after all: what matched was content,
                // and this byte is looked at afresh.
                if body {
                    on(Event::Data(&self.delimiter[..self.matched]))?;
                }
                self.matched = 0;
            }
        }
        Ok(i)
    }

    /// The head of the part whose header block is in `self.head`.
    fn part_head(&mut self) -> Result<PartHead, HttpError> {
        // Every line with its CRLF; the block's blank line left out.
        let block = &self.head[2..self.head.len() - 2];
        let mut part = PartHead::default();
        let mut disposition = false;
        for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Some(line) = line.strip_suffix(b"\r") else {
                return self.refuse("a part's header line ends without CR");
            };
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return self.refuse("a part's header line has no colon");
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            // Values may hold control bytes (a file name with a NUL or a
            // CR): they are metadata, sanitised by whoever uses them.
            if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
                return self.refuse("a part's header line is malformed");
            }
            if name.eq_ignore_ascii_case(b"content-disposition") {
                if disposition {
                    return self.refuse("a part has two Content-Disposition headers");
                }
                disposition = true;
                let Some((field, filename)) = disposition_params(value) else {
                    return self
                        .refuse("a part's Content-Disposition is not form-data with a name");
                };
                part.name = field;
                part.filename = filename;
            } else if name.eq_ignore_ascii_case(b"content-type") {
                part.content_type = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        if !disposition {
            return self.refuse("a part has no Content-Disposition");
        }
        Ok(part)
    }

    fn refuse<T>(&mut self, why: &'static str) -> Result<T, HttpError> {
        self.why = why;
        self.state = State::Done;
        Err(HttpError::Malformed)
    }
}

/// The boundary of a `multipart/form-data` `Content-Type` value: 1 to 70
/// of RFC 2046's `bchars`, not ending in a space, quoted or not.
pub(crate) fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let mut params = content_type.split(|&b| b == b';');
    let kind = trim(params.next()?);
    if !kind.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let value = params.find_map(|p| {
        let p = trim(p);
        let eq = p.iter().position(|&b| b == b'=')?;
        trim(&p[..eq])
            .eq_ignore_ascii_case(b"boundary")
            .then(|| trim(&p[eq + 1..]))
    })?;
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    };
    let bchar = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b);
    let ok = (1..=70).contains(&value.len()) && value.iter().all(bchar) && !value.ends_with(b" ");
    ok.then_some(value)
}

/// `form-data; name="field"; filename="a.txt"` → the name and file name
/// (quoted strings unescaped: `\"` and `\\`). `None` if it is not
/// `form-data` or has no name.
fn disposition_params(value: &[u8]) -> Option<(String, Option<String>)> {
    let value = std::str::from_utf8(value).ok()?;
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let (mut name, mut filename) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (text, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i + 1,
                    (_, '\\') => text.push(chars.next()?.1),
                    (_, c) => text.push(c),
                }
            };
            (text, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(text),
            "filename" => filename = Some(text),
            _ => {}
        }
        rest = next;
    }
    Some((name?, filename))
}

fn trim(s: &[u8]) -> &[u8] {
    super::fields::trim(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parse reported, data merged: (head, content) per part, and whether it ended.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Seen {
        parts: Vec<(PartHead, Vec<u8>)>,
        open: bool,
        end: bool,
    }

    fn record(seen: &mut Seen, e: Event<'_>) -> Result<(), HttpError> {
        match e {
            Event::Part(h) => {
                assert!(!seen.open, "a part inside a part");
                seen.open = true;
                seen.parts.push((h.clone(), Vec::new()));
            }
            Event::Data(d) => {
                assert!(seen.open && !d.is_empty());
                seen.parts.last_mut().unwrap().1.extend_from_slice(d);
            }
            Event::PartEnd => {
                assert!(seen.open);
                seen.open = false;
            }
            Event::End => {
                assert!(!seen.open && !seen.end);
                seen.end = true;
            }
        }
        Ok(())
    }

    /// Parses `body` fed in the pieces `cuts` make of it.
    fn parse(body: &[u8], cuts: &[usize]) -> Result<Seen, HttpError> {
        let mut p = Parser::new(b"XyZ");
        let mut seen = Seen::default();
        let mut from = 0;
        for &cut in cuts.iter().chain([body.len()].iter()) {
            p.feed(&body[from..cut], &mut |e| record(&mut seen, e))?;
            from = cut;
        }
        p.finish()?;
        Ok(seen)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"note\"\r\n\r\n\
        hello\r\n\
        --XyZ  \r\n\
        content-disposition: form-data; name=\"f\"; filename=\"a \\\"b\\\".txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        line\r\n--XyQ not yet\r\r\n-\r\n--X\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=empty; filename=\"\"\r\n\r\n\
        \r\n--XyZ--\r\nepilogue";

    fn expected() -> Seen {
        let head = |name: &str, filename: Option<&str>, ct: Option<&str>| PartHead {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: ct.map(Into::into),
        };
        Seen {
            parts: vec![
                (head("note", None, None), b"hello".to_vec()),
                (
                    head("f", Some("a \"b\".txt"), Some("text/plain")),
                    b"line\r\n--XyQ not yet\r\r\n-\r\n--X".to_vec(),
                ),
                (head("empty", Some(""), None), Vec::new()),
            ],
            open: false,
            end: true,
        }
    }

    #[test]
    fn parts_fields_files_and_near_delimiters() {
        assert_eq!(parse(BODY, &[]), Ok(expected()));
    }

    /// Every way of cutting the body in two and in three gives the same parts.
    #[test]
    fn every_split_gives_the_same_parts() {
        let want = expected();
        for a in 0..=BODY.len() {
            assert_eq!(parse(BODY, &[a]).as_ref(), Ok(&want), "cut at {a}");
            for b in a..=BODY.len() {
                assert_eq!(parse(BODY, &[a, b]).as_ref(), Ok(&want), "cuts {a} {b}");
            }
        }
        let every: Vec<usize> = (1..BODY.len()).collect();
        assert_eq!(parse(BODY, &every), Ok(want), "byte by byte");
    }

    /// Parses `body` in the pieces `cuts` make, keeping the error too.
    fn outcome(body: &[u8], cuts: &[usize]) -> Result<Seen, HttpError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        parse(body, &cuts)
    }

    proptest::proptest! {
        /// Bodies made of pieces that look like delimiters, CRs, dashes and
        /// headers parse the same (parts or refusal) however they are cut.
        #[test]
        fn any_body_parses_the_same_however_it_is_cut(
            pieces in proptest::collection::vec(0usize..12, 0..40),
            cuts in proptest::collection::vec(0usize..10_000, 0..6),
        ) {
            const PIECES: [&[u8]; 12] = [
                b"\r\n--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n",
                b"\r\n--XyZ\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n",
                b"\r\n--XyZ--",
                b"\r\n--XyZ",
                b"\r\n--Xy",
                b"\r\n-",
                b"\r",
                b"\n",
                b"-",
                b"data",
                b"  ",
                b"Content-Type: x\r\n",
            ];
            let body: Vec<u8> = pieces.iter().flat_map(|&i| PIECES[i].iter().copied()).collect();
            let whole = outcome(&body, &[]);
            proptest::prop_assert_eq!(outcome(&body, &cuts), whole);
        }
    }

    #[test]
    fn a_body_may_open_with_its_delimiter() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--XyZ--";
        let seen = parse(body, &[]).unwrap();
        assert_eq!(seen.parts.len(), 1);
        assert_eq!(seen.parts[0].1, b"1");
    }

    #[test]
    fn bad_framing_is_400() {
        let bad: &[&[u8]] = &[
            // Truncated: no close delimiter.
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n1",
            b"",
            // Text after a delimiter.
            b"--XyZx\r\n",
            b"--XyZ-x",
            b"--XyZ\rx",
            // No Content-Disposition, not form-data, no name, two of them.
            b"--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\n--XyZ--",
            // A header without a colon, a bare LF, folding.
            b"--XyZ\r\nContent-Disposition form-data\r\n\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=a\nX: y\r\n\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n folded\r\n\r\n--XyZ--",
            // An unterminated quoted name.
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\n--XyZ--",
        ];
        for body in bad {
            assert_eq!(
                parse(body, &[]),
                Err(HttpError::Malformed),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_header_block_is_bounded() {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\nX: ".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_PART_HEAD));
        body.extend_from_slice(b"\r\n\r\n--XyZ--");
        let mut p = Parser::new(b"XyZ");
        assert_eq!(p.feed(&body, &mut |_| Ok(())), Err(HttpError::Malformed));
        assert_eq!(p.why(), "a part's header block is too long");
    }

    #[test]
    fn a_callback_error_stops_the_parse() {
        let mut p = Parser::new(b"XyZ");
        let got = p.feed(BODY, &mut |e| match e {
            Event::Data(_) => Err(HttpError::BodyTooLarge),
            _ => Ok(()),
        });
        assert_eq!(got, Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"multipart/form-data; boundary=abc", b"abc"),
            (b"Multipart/Form-Data;boundary=\"a b:c\"", b"a b:c"),
            (b"multipart/form-data; charset=x; BOUNDARY = z--", b"z--"),
        ];
        for (ct, b) in ok {
            assert_eq!(boundary(ct), Some(*b));
        }
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        let bad: &[&[u8]] = &[
            b"multipart/mixed; boundary=abc",
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=\"ab \"",
            b"multipart/form-data; boundary=a\rb",
            b"text/plain; boundary=abc",
            long.as_bytes(),
        ];
        for ct in bad {
            assert_eq!(boundary(ct), None, "{}", String::from_utf8_lossy(ct));
        }
    }
}
