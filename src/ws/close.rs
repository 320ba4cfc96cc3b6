//! Close frame payloads: a status code, then a UTF-8 reason (RFC 6455 §5.5.1).

use super::error::WsError;

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

/// Splits a received close payload into its code and reason.
///
/// An empty payload carries neither; otherwise the first two bytes are the
/// big-endian code, which must be valid, and the rest must be UTF-8.
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<(Option<u16>, &str), WsError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(WsError::BadClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(WsError::InvalidCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok((Some(code), reason))
        }
    }
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
    fn payloads() {
        assert_eq!(parse_close_payload(b""), Ok((None, "")));
        assert_eq!(parse_close_payload(b"\x03"), Err(WsError::BadClosePayload));
        assert_eq!(parse_close_payload(b"\x03\xe8"), Ok((Some(1000), "")));
        assert_eq!(parse_close_payload(b"\x03\xe9bye"), Ok((Some(1001), "bye")));
        assert_eq!(
            parse_close_payload(&[&b"\x0f\xa0"[..], "κόσμε".as_bytes()].concat()),
            Ok((Some(4000), "κόσμε"))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xedx"),
            Err(WsError::InvalidCloseCode)
        );
        assert_eq!(
            parse_close_payload(b"\x00\x00"),
            Err(WsError::InvalidCloseCode)
        );
        // Autobahn 7.5.1: a surrogate in the reason.
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xce\xba\xed\xa0\x80edited"),
            Err(WsError::InvalidUtf8)
        );
    }
}
