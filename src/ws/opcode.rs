//! The four-bit frame opcode (RFC 6455 §5.2, §11.8).

use super::error::WsError;

/// What a frame carries: a piece of a data message, or a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// 0x0: the next piece of a fragmented Text or Binary message.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the closing handshake.
    Close,
    /// 0x9: a keep-alive probe; the peer answers with a Pong.
    Ping,
    /// 0xA: the answer to a Ping, or an unsolicited heartbeat.
    Pong,
}

impl OpCode {
    /// Reads the low four bits of a frame's first byte.
    pub(crate) fn from_u8(bits: u8) -> Result<OpCode, WsError> {
        match bits {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            _ => Err(WsError::UnknownOpcode),
        }
    }

    /// The wire value, for the low four bits of a frame's first byte.
    pub(crate) fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames are the ones with the high opcode bit set (§5.5).
    pub(crate) fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nibble_round_trips_or_is_unknown() {
        for bits in 0..16u8 {
            match OpCode::from_u8(bits) {
                Ok(op) => assert_eq!(op.as_u8(), bits),
                Err(e) => {
                    assert_eq!(e, WsError::UnknownOpcode);
                    assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits:#x}");
                }
            }
        }
    }

    #[test]
    fn control_opcodes_are_close_ping_pong() {
        let control: Vec<OpCode> = (0..16u8)
            .filter_map(|b| OpCode::from_u8(b).ok())
            .filter(|op| op.is_control())
            .collect();
        assert_eq!(control, [OpCode::Close, OpCode::Ping, OpCode::Pong]);
    }
}
