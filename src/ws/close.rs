//! Close frame payloads: a status code, then a UTF-8 reason (RFC 6455 §5.5.1).

use super::close_code::valid_close_code;
use super::error::WsError;

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
