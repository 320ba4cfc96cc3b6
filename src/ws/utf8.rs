//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 §8.1 asks an endpoint to fail the connection as soon as a text
//! message is known not to be UTF-8, and Autobahn 6.4.x checks that it does,
//! even when the offending byte sits in the middle of a frame. So a piece is
//! judged the moment it arrives; only a sequence cut off by the piece's end is
//! held back, and it is judged once its next bytes come.

use super::error::WsError;

/// Validates one message's bytes across any number of pieces.
#[derive(Debug, Default)]
pub(crate) struct Utf8Validator {
    /// The start of a multi-byte sequence that the last piece cut off.
    pending: [u8; 4],
    /// How many bytes of `pending` are held: 0 to 3.
    pending_len: usize,
}

impl Utf8Validator {
    /// Checks the next piece of the message, failing at the first byte that
    /// can no longer start or continue a valid sequence.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), WsError> {
        let rest = if self.pending_len == 0 {
            bytes
        } else {
            self.complete_pending(bytes)?
        };
        // std's validator skips ASCII a word at a time, and it rejects an
        // impossible prefix (F4 90, ED A0, E0 80, C0, F5..FF) with
        // `error_len() == Some(..)` the moment its bad byte is seen.
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                self.hold(&rest[e.valid_up_to()..]);
                Ok(())
            }
            Err(_) => Err(WsError::InvalidUtf8),
        }
    }

    /// Ends the message: a sequence still cut off here is invalid. The
    /// validator is ready for the next message either way.
    pub(crate) fn finish(&mut self) -> Result<(), WsError> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(WsError::InvalidUtf8)
        }
    }

    /// Forgets any held bytes, for a fresh message.
    pub(crate) fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Feeds the held prefix the bytes it still lacks; returns what is left.
    fn complete_pending<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], WsError> {
        let have = self.pending_len;
        let take = (sequence_len(self.pending[0]) - have).min(bytes.len());
        let (head, rest) = bytes.split_at(take);
        self.pending[have..have + take].copy_from_slice(head);
        match std::str::from_utf8(&self.pending[..have + take]) {
            Ok(_) => {
                self.pending_len = 0;
                Ok(rest)
            }
            // Still cut off: `take` was all of `bytes`, so `rest` is empty.
            Err(e) if e.error_len().is_none() => {
                self.pending_len = have + take;
                Ok(rest)
            }
            Err(_) => Err(WsError::InvalidUtf8),
        }
    }

    /// Keeps the 1 to 3 bytes of a valid but unfinished sequence.
    fn hold(&mut self, tail: &[u8]) {
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }
}

/// The length of the sequence a lead byte starts. Only lead bytes that std
/// accepted as a valid prefix are ever held, so 2 to 4.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a message must be judged, and when.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Verdict {
        Valid,
        /// Invalid as soon as the byte at this index arrives.
        FailAt(usize),
        /// Every byte is a valid prefix, but the message ends mid-sequence.
        Incomplete,
    }
    use Verdict::*;

    const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

    /// The Autobahn 6.x vectors, by the case they come from.
    const CASES: &[(&[u8], Verdict)] = &[
        // 6.1, 6.2, 6.5: empty, mixed, and "κόσμε".
        (b"", Valid),
        ("Hello-µ@ßöäüàá-UTF-8!!".as_bytes(), Valid),
        (KOSME, Valid),
        // 6.3 / 6.4: κόσμε, then a surrogate, then "edited".
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            FailAt(12),
        ),
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
            FailAt(12),
        ),
        // 6.7, 6.9, 6.11: first and last sequences of each length, boundaries.
        (b"\x00", Valid),
        (b"\xc2\x80", Valid),
        (b"\xe0\xa0\x80", Valid),
        (b"\xf0\x90\x80\x80", Valid),
        (b"\x7f", Valid),
        (b"\xdf\xbf", Valid),
        (b"\xef\xbf\xbf", Valid),
        (b"\xf4\x8f\xbf\xbf", Valid),
        (b"\xed\x9f\xbf", Valid),
        (b"\xee\x80\x80", Valid),
        (b"\xef\xbf\xbd", Valid),
        (b"\xf4\x90\x80\x80", FailAt(1)),
        // 6.8, 6.10: five- and six-byte forms, and 4-byte forms above U+10FFFF.
        (b"\xf8\x88\x80\x80\x80", FailAt(0)),
        (b"\xfc\x84\x80\x80\x80\x80", FailAt(0)),
        (b"\xf7\xbf\xbf\xbf", FailAt(0)),
        // 6.12: unexpected continuation bytes.
        (b"\x80", FailAt(0)),
        (b"\xbf", FailAt(0)),
        (b"a\x80\xbf", FailAt(1)),
        // 6.13: lonely start bytes followed by a space.
        (b"\xc2 ", FailAt(1)),
        (b"\xe1 ", FailAt(1)),
        (b"\xf1 ", FailAt(1)),
        // 6.14: sequences with their last byte missing.
        (b"\xdf", Incomplete),
        (b"\xef\xbf", Incomplete),
        (b"\xf3\xbf\xbf", Incomplete),
        (b"\xce\xba\xe1\xbd", Incomplete),
        (b"\xc0", FailAt(0)),
        (b"\xe0\x80", FailAt(1)),
        (b"\xf0\x80\x80", FailAt(1)),
        // 6.15: a missing last byte followed by more text.
        (b"\xef\xbfa", FailAt(2)),
        // 6.16: impossible bytes.
        (b"\xfe", FailAt(0)),
        (b"\xff", FailAt(0)),
        (b"\xfe\xfe\xff\xff", FailAt(0)),
        // 6.17, 6.18, 6.19: overlong forms, including of NUL.
        (b"\xc0\xaf", FailAt(0)),
        (b"\xe0\x80\xaf", FailAt(1)),
        (b"\xf0\x80\x80\xaf", FailAt(1)),
        (b"\xc1\xbf", FailAt(0)),
        (b"\xe0\x9f\xbf", FailAt(1)),
        (b"\xf0\x8f\xbf\xbf", FailAt(1)),
        (b"\xc0\x80", FailAt(0)),
        (b"\xe0\x80\x80", FailAt(1)),
        // 6.20, 6.21: UTF-16 surrogates, single and paired.
        (b"\xed\xa0\x80", FailAt(1)),
        (b"\xed\xaf\xbf", FailAt(1)),
        (b"\xed\xbf\xbf", FailAt(1)),
        (b"\xed\xa0\x80\xed\xb0\x80", FailAt(1)),
        // 6.22, 6.23: noncharacters and U+FFFD are valid.
        (b"\xef\xbf\xbe", Valid),
        (b"\xf4\x8f\xbf\xbe", Valid),
        (b"\xf0\x9f\xbf\xbf", Valid),
    ];

    /// Feeds `pieces` in order; returns how many whole pieces were accepted
    /// and whether the message as a whole was valid.
    fn judge(pieces: &[&[u8]]) -> (usize, bool) {
        let mut v = Utf8Validator::default();
        for (i, piece) in pieces.iter().enumerate() {
            if v.feed(piece).is_err() {
                return (i, false);
            }
        }
        (pieces.len(), v.finish().is_ok())
    }

    #[test]
    fn whole_messages() {
        for &(bytes, verdict) in CASES {
            assert_eq!(judge(&[bytes]).1, verdict == Valid, "{bytes:x?}");
            assert_eq!(std::str::from_utf8(bytes).is_ok(), verdict == Valid);
        }
    }

    #[test]
    fn byte_by_byte_fails_at_the_first_bad_byte() {
        for &(bytes, verdict) in CASES {
            let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
            let want = match verdict {
                Valid => (bytes.len(), true),
                Incomplete => (bytes.len(), false),
                FailAt(i) => (i, false),
            };
            assert_eq!(judge(&pieces), want, "{bytes:x?}");
        }
    }

    #[test]
    fn split_at_every_point_gives_the_same_verdict_as_early_as_possible() {
        for &(bytes, verdict) in CASES {
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                let want = match verdict {
                    Valid => (2, true),
                    Incomplete => (2, false),
                    FailAt(i) if i < cut => (0, false),
                    FailAt(_) => (1, false),
                };
                assert_eq!(judge(&[a, b]), want, "{bytes:x?} cut {cut}");
            }
        }
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::default();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(WsError::InvalidUtf8));
        v.feed(b"\xac").unwrap_err();
        v.reset();
        v.feed(b"\xe2").unwrap();
        v.reset();
        v.feed(b"ok").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn a_held_prefix_completes_across_three_pieces() {
        let mut v = Utf8Validator::default();
        for piece in [&b"x\xf0"[..], b"\x9f", b"\x98", b"\x80y"] {
            v.feed(piece).unwrap();
        }
        v.finish().unwrap();
    }
}
