//! Close status codes (RFC 6455 §7.4): the named ones, and which a close
//! frame may carry.

use std::fmt;

/// A close status code (RFC 6455 §7.4): the named codes, or any code a close
/// frame may carry, from [`CloseCode::new`].
///
/// `NO_STATUS` and `ABNORMAL` only ever describe a close locally (no code
/// received; no close frame at all); they are not [sendable](CloseCode::is_sendable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: a protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (text to a binary-only endpoint, say).
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was received; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data does not match its type (invalid UTF-8 in text).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later, say when overloaded (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway or proxy received a bad response upstream (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// The code, if a close frame may carry it (RFC 6455 §7.4.1 and the IANA registry):
    /// 1000–1003, 1007–1014 and 3000–4999.
    pub fn new(code: u16) -> Option<CloseCode> {
        valid_close_code(code).then_some(CloseCode(code))
    }

    /// The code as a number.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether a close frame may carry this code: false only for
    /// [`NO_STATUS`](CloseCode::NO_STATUS) and [`ABNORMAL`](CloseCode::ABNORMAL).
    pub fn is_sendable(self) -> bool {
        valid_close_code(self.0)
    }
}

/// So that `code == 1000` reads as it should.
impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    /// Just the number, as in `closing with 1002`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a peer may send this close code (RFC 6455 §7.4).
///
/// 1000–1003 and 1007–1011 are defined by the RFC; 1012–1014 (Service
/// Restart, Try Again Later, Bad Gateway) were registered with IANA later;
/// 3000–4999 are for libraries and applications. 1004 is reserved, and 1005,
/// 1006 and 1015 only ever describe a close locally, never on the wire.
/// The Autobahn suite (as packaged by kosoku 0.1.0) agrees: 7.7.x sends
/// 1000–1003, 1007–1011, 3000, 3999, 4000 and 4999 and wants them accepted;
/// 7.9.x sends 0, 999, 1004, 1005, 1006, 1016, 1100, 2000 and 2999 and wants
/// a 1002 close; it tests neither 1012–1014 nor 1015.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn autobahn_7_7_codes_are_valid() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn autobahn_7_9_codes_are_invalid() {
        for code in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
            assert!(!valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn iana_codes_and_the_edges() {
        for code in [1012, 1013, 1014] {
            assert!(valid_close_code(code), "{code}");
        }
        for code in [1015, 5000, u16::MAX] {
            assert!(!valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn close_codes_are_only_the_sendable_ones() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert_eq!(CloseCode::new(code), None, "{code}");
        }
        for code in [1000, 1003, 1007, 1011, 1012, 1014, 3000, 3999, 4000, 4999] {
            let c = CloseCode::new(code).unwrap();
            assert_eq!((c.as_u16(), u16::from(c)), (code, code));
            assert!(c.is_sendable());
        }
        assert_eq!(CloseCode::new(1002), Some(CloseCode::PROTOCOL));
        assert_eq!(CloseCode::new(1011), Some(CloseCode::INTERNAL));
    }

    #[test]
    fn named_close_codes_have_their_rfc_numbers() {
        let named = [
            (CloseCode::NORMAL, 1000),
            (CloseCode::GOING_AWAY, 1001),
            (CloseCode::PROTOCOL, 1002),
            (CloseCode::UNSUPPORTED, 1003),
            (CloseCode::NO_STATUS, 1005),
            (CloseCode::ABNORMAL, 1006),
            (CloseCode::INVALID_DATA, 1007),
            (CloseCode::POLICY, 1008),
            (CloseCode::TOO_BIG, 1009),
            (CloseCode::EXTENSION, 1010),
            (CloseCode::INTERNAL, 1011),
            (CloseCode::SERVICE_RESTART, 1012),
            (CloseCode::TRY_AGAIN_LATER, 1013),
            (CloseCode::BAD_GATEWAY, 1014),
        ];
        for (code, number) in named {
            assert_eq!(code.as_u16(), number);
            assert_eq!(code.to_string(), number.to_string());
            assert_eq!(
                code.is_sendable(),
                !matches!(number, 1005 | 1006),
                "{number}"
            );
        }
    }
}
