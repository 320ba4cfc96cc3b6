//! Why a WebSocket connection is failed, and the close code each reason earns.

use std::fmt;

use super::close_code::CloseCode;

/// A protocol violation by the peer, found while decoding its frames.
///
/// Each one fails the connection: the server sends a close frame carrying
/// [`WsError::close_code`] and stops reading, as RFC 6455 §7.1.7 asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// A client frame without a masking key (RFC 6455 §5.1).
    Unmasked,
    /// A server frame with a masking key, which §5.1 forbids (the gateway's
    /// downstream connections).
    Masked,
    /// An RSV bit is set, but no extension that would define it was negotiated.
    ReservedBits,
    /// An opcode the protocol does not define (3–7, 0xB–0xF).
    UnknownOpcode,
    /// A Close, Ping or Pong frame with FIN clear: control frames cannot be split.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong,
    /// A payload length with its top bit set, or not in its shortest form.
    BadLength,
    /// A continuation frame when no fragmented message was in progress.
    UnexpectedContinuation,
    /// A new Text or Binary frame while a fragmented message was still in progress.
    ExpectedContinuation,
    /// A data frame longer than the configured frame limit.
    FrameTooLarge,
    /// A message whose fragments add up to more than the configured message limit.
    MessageTooLarge,
    /// A text message or close reason that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame whose payload is a single byte: half a close code.
    BadClosePayload,
    /// A close frame with a code a peer may not send (RFC 6455 §7.4).
    InvalidCloseCode,
    /// A compressed message (permessage-deflate, RFC 7692) that does not inflate.
    BadDeflate,
}

impl WsError {
    /// The close code sent to the peer for this error (RFC 6455 §7.4.1).
    pub fn close_code(self) -> CloseCode {
        match self {
            WsError::FrameTooLarge | WsError::MessageTooLarge => CloseCode::TOO_BIG,
            WsError::InvalidUtf8 | WsError::BadDeflate => CloseCode::INVALID_DATA,
            WsError::Unmasked
            | WsError::Masked
            | WsError::ReservedBits
            | WsError::UnknownOpcode
            | WsError::FragmentedControl
            | WsError::ControlTooLong
            | WsError::BadLength
            | WsError::UnexpectedContinuation
            | WsError::ExpectedContinuation
            | WsError::BadClosePayload
            | WsError::InvalidCloseCode => CloseCode::PROTOCOL,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WsError::Unmasked => "received an unmasked frame from a client",
            WsError::Masked => "a server must not mask its frames",
            WsError::ReservedBits => "reserved bits are set",
            WsError::UnknownOpcode => "unknown opcode",
            WsError::FragmentedControl => "fragmented control frame",
            WsError::ControlTooLong => "control frame longer than 125 bytes",
            WsError::BadLength => "invalid payload length encoding",
            WsError::UnexpectedContinuation => "continuation frame with no message to continue",
            WsError::ExpectedContinuation => "new data frame inside a fragmented message",
            WsError::FrameTooLarge => "frame too large",
            WsError::MessageTooLarge => "message too large",
            WsError::InvalidUtf8 => "invalid UTF-8 in a text message or close reason",
            WsError::BadClosePayload => "close frame payload of one byte",
            WsError::InvalidCloseCode => "invalid close code",
            WsError::BadDeflate => "a compressed message that does not inflate",
        })
    }
}

impl std::error::Error for WsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc_6455() {
        assert_eq!(WsError::Unmasked.close_code(), 1002);
        assert_eq!(WsError::Masked.close_code(), 1002);
        assert_eq!(WsError::InvalidCloseCode.close_code(), 1002);
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
        assert_eq!(WsError::BadDeflate.close_code(), 1007);
        assert_eq!(WsError::FrameTooLarge.close_code(), 1009);
        assert_eq!(WsError::MessageTooLarge.close_code(), 1009);
    }

    #[test]
    fn messages_are_one_lowercase_line() {
        let msg = WsError::Unmasked.to_string();
        assert_eq!(msg, "received an unmasked frame from a client");
        assert!(!msg.contains('\n'));
    }
}
