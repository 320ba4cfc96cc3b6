//! The opening handshake's WebSocket-specific headers (RFC 6455 §4.2).
//!
//! The HTTP layer checks the request line and `Upgrade`/`Connection`; these
//! helpers judge `Sec-WebSocket-Key` and `Sec-WebSocket-Protocol` and compute
//! `Sec-WebSocket-Accept`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::http::fields::trim;

/// Appended to the client's key before hashing (§1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The base64 length of a 16-byte key, padding included.
const ENCODED_KEY_LEN: usize = 24;

/// More subprotocols than any real client offers: a cap on the work and the
/// header size a request can cost.
const MAX_PROTOCOLS: usize = 10;

/// Why an upgrade request's subprotocol offer is refused; answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// More than ten subprotocols were offered.
    TooManyProtocols,
    /// Subprotocols were offered, but the server supports none of them.
    NoCommonProtocol,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::TooManyProtocols => "too many WebSocket subprotocols offered",
            HandshakeError::NoCommonProtocol => "no offered WebSocket subprotocol is supported",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(trim(key));
    sha.update(GUID);
    STANDARD.encode(sha.digest().bytes())
}

/// Whether a `Sec-WebSocket-Key` is, as §4.1 requires, the padded standard
/// base64 of exactly 16 bytes (surrounding spaces and tabs aside).
pub(crate) fn valid_key(key: &[u8]) -> bool {
    let key = trim(key);
    // 16 bytes encode to exactly 24 characters; checking first also bounds
    // the decode to the buffer below, which holds the most 24 can decode to.
    let mut decoded = [0; 18];
    key.len() == ENCODED_KEY_LEN && STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

/// Picks the subprotocol to answer with, in the client's order of preference.
///
/// `offered` holds the comma-separated tokens of every
/// `Sec-WebSocket-Protocol` header; `supported` is the server's list, matched
/// exactly (tokens are case-sensitive). No offer gives `Ok(None)`.
pub(crate) fn select_protocol<'a>(
    offered: impl Iterator<Item = &'a [u8]>,
    supported: &[String],
) -> Result<Option<&'a str>, HandshakeError> {
    let mut count = 0;
    let mut chosen = None;
    for token in offered.map(trim).filter(|t| !t.is_empty()) {
        count += 1;
        if count > MAX_PROTOCOLS {
            return Err(HandshakeError::TooManyProtocols);
        }
        chosen = chosen.or_else(|| supported_token(token, supported));
    }
    match (count, chosen) {
        (0, _) => Ok(None),
        (_, Some(protocol)) => Ok(Some(protocol)),
        (_, None) => Err(HandshakeError::NoCommonProtocol),
    }
}

/// `token` as a string, if the server supports it.
fn supported_token<'a>(token: &'a [u8], supported: &[String]) -> Option<&'a str> {
    let token = std::str::from_utf8(token).ok()?;
    supported.iter().any(|p| p == token).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn rfc_6455_accept_example() {
        // §1.3 gives this key, its SHA-1 (b3 7a 4f 2c ...) and this answer.
        assert_eq!(accept_key(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        // "minus any leading and trailing whitespace"
        assert_eq!(
            accept_key(b" \tdGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys() {
        assert!(valid_key(RFC_KEY));
        assert!(valid_key(b"\t dGhlIHNhbXBsZSBub25jZQ==  "));
        assert!(valid_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(valid_key(b"/+/+/+/+/+/+/+/+/+/+/w=="));
        for bad in [
            &b""[..],
            b"   ",
            b"dGhlIHNhbXBsZSBub25jZQ",     // no padding
            b"dGhlIHNhbXBsZSBub25jZQ=",    // half the padding
            b"dGhlIHNhbXBsZSBub25j",       // 15 bytes
            b"dGhlIHNhbXBsZSBub25jZQ==AA", // trailing junk
            b"dGhlIHNhbXBsZSBub25jZWU=",   // 17 bytes
            b"_-_-_-_-_-_-_-_-_-_-_w==",   // URL-safe alphabet
            b"dGhlIHNhbXBsZSBu b25jZQ==",  // inner space
            b"dGhlIHNhbXBsZSBub25jZR==",   // stray bits after the last byte
        ] {
            assert!(!valid_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn select<'a>(
        offered: &[&'a str],
        supported: &[&str],
    ) -> Result<Option<&'a str>, HandshakeError> {
        let supported: Vec<String> = supported.iter().map(ToString::to_string).collect();
        select_protocol(offered.iter().map(|s| s.as_bytes()), &supported)
    }

    #[test]
    fn protocols() {
        assert_eq!(select(&[], &["chat"]), Ok(None));
        assert_eq!(select(&["", " "], &["chat"]), Ok(None));
        assert_eq!(
            select(&["chat"], &[]),
            Err(HandshakeError::NoCommonProtocol)
        );
        assert_eq!(select(&["chat"], &["chat"]), Ok(Some("chat")));
        // The client's order wins over the server's.
        assert_eq!(select(&["b", "a"], &["a", "b"]), Ok(Some("b")));
        assert_eq!(select(&[" x ", "a"], &["a", "x"]), Ok(Some("x")));
        assert_eq!(
            select(&["Chat"], &["chat"]),
            Err(HandshakeError::NoCommonProtocol)
        );
    }

    #[test]
    fn at_most_ten_protocols() {
        let ten: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert_eq!(select(&ten, &["p9"]), Ok(Some("p9")));
        let mut eleven = ten.clone();
        eleven.push("p10");
        assert_eq!(
            select(&eleven, &["p0"]),
            Err(HandshakeError::TooManyProtocols)
        );
    }
}
