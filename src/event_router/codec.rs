//! The router's wire formats: JSON in text messages, MessagePack in binary
//! ones, both read into the same [`serde_json::Value`] so a closure's type
//! never knows which one came.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::message::{Message, SendStatus};
use crate::ws::close_code::CloseCode;
use crate::ws_api::WebSocket;

/// How deep a MessagePack message may nest: serde_json's own limit, so
/// both codecs accept the same shapes (and a deep one cannot exhaust the
/// server thread's stack).
const MAX_DEPTH: usize = 128;

/// The wire format of a [`Router`](crate::Router)'s events (Altruist's
/// `codec.provider: json | msgpack`).
///
/// An unpinned router reads text messages as JSON and binary messages as
/// MessagePack and answers each request in its own codec;
/// [`Router::codec`](crate::Router::codec) pins one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// JSON in text messages.
    Json,
    /// MessagePack (maps with string keys) in binary messages.
    MessagePack,
}

impl Codec {
    /// The codec a message's kind implies: text is JSON, binary MessagePack.
    pub(crate) fn of(message: &Message<'_>) -> Codec {
        match message {
            Message::Text(_) => Codec::Json,
            Message::Binary(_) => Codec::MessagePack,
        }
    }

    /// Reads one message in the codec its kind implies, which must be
    /// `pinned` when the router pins one: a value that is a map (a JSON
    /// object). Returns it with the codec it came in.
    pub(crate) fn read(
        message: Message<'_>,
        pinned: Option<Codec>,
    ) -> Result<(Map<String, Value>, Codec), DecodeError> {
        let codec = Codec::of(&message);
        if let Some(pinned) = pinned.filter(|&pinned| pinned != codec) {
            return Err(DecodeError::Refused { pinned });
        }
        let value = match message {
            Message::Text(text) => {
                serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?
            }
            Message::Binary(bytes) => decode_msgpack(bytes)?,
        };
        match value {
            Value::Object(fields) => Ok((fields, codec)),
            _ => Err(DecodeError::NotAMap(codec)),
        }
    }

    /// Sends `value` in this codec: a text message of JSON or a binary
    /// message of MessagePack.
    pub(crate) fn send<S>(self, ws: &mut WebSocket<'_, S>, value: &Value) -> SendStatus {
        match self {
            Codec::Json => ws.send_json(value),
            Codec::MessagePack => match rmp_serde::to_vec_named(value) {
                Ok(bytes) => ws.send_binary(&bytes),
                Err(_) => SendStatus::Refused,
            },
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Json => "JSON",
            Codec::MessagePack => "MessagePack",
        })
    }
}

/// Reads one MessagePack value that fills `bytes` exactly.
///
/// Lengths in the input are never trusted for allocation: an array or map
/// header claiming 2^32 - 1 elements grows its value one element at a time
/// (serde_json's `Value` ignores size hints) and fails at the end of the
/// input, and a string's length is checked against the bytes that are there.
fn decode_msgpack(bytes: &[u8]) -> Result<Value, DecodeError> {
    use rmp_serde::decode::Error::{InvalidDataRead, InvalidMarkerRead};
    let invalid = |e: rmp_serde::decode::Error| match e {
        // "IO error while reading marker: failed to fill whole buffer" says it less plainly.
        InvalidMarkerRead(io) | InvalidDataRead(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            DecodeError::MessagePack("the message ends too soon".into())
        }
        e => DecodeError::MessagePack(e.to_string()),
    };
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    let value = Value::deserialize(&mut de).map_err(invalid)?;
    // rmp-serde does not say where it stopped: reading on must find the end.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(InvalidMarkerRead(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        _ => return Err(DecodeError::MessagePack("bytes after the message".into())),
    }
    Ok(value)
}

/// Why a message could not be read, and the close code for a router that
/// closes on unreadable input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The text is not JSON (serde_json's message).
    Json(String),
    /// The bytes are not one MessagePack value (rmp-serde's message), or
    /// a map has a key that is not a string.
    MessagePack(String),
    /// The value is not a map / object.
    NotAMap(Codec),
    /// A message of the kind the router's pinned codec does not read.
    Refused {
        /// The router's codec.
        pinned: Codec,
    },
}

impl DecodeError {
    /// 1003 for a kind of message the router does not take, 1007 for one
    /// it cannot read.
    pub(crate) fn close_code(&self) -> CloseCode {
        match self {
            DecodeError::Refused { .. } => CloseCode::UNSUPPORTED,
            _ => CloseCode::INVALID_DATA,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "invalid JSON: {e}"),
            DecodeError::MessagePack(e) => write!(f, "invalid MessagePack: {e}"),
            DecodeError::NotAMap(Codec::Json) => f.write_str("message is not a JSON object"),
            DecodeError::NotAMap(Codec::MessagePack) => {
                f.write_str("message is not a MessagePack map")
            }
            DecodeError::Refused {
                pinned: Codec::Json,
            } => f.write_str("binary messages are not supported: this router speaks JSON"),
            DecodeError::Refused {
                pinned: Codec::MessagePack,
            } => f.write_str("text messages are not supported: this router speaks MessagePack"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads `bytes` as a message of the kind `codec` reads.
    fn decode(codec: Codec, bytes: &[u8]) -> Result<Value, DecodeError> {
        let message = match codec {
            Codec::Json => Message::Text(std::str::from_utf8(bytes).expect("UTF-8")),
            Codec::MessagePack => Message::Binary(bytes),
        };
        Codec::read(message, Some(codec)).map(|(fields, _)| Value::Object(fields))
    }

    fn msgpack(value: &Value) -> Vec<u8> {
        rmp_serde::to_vec_named(value).expect("encodes")
    }

    #[test]
    fn every_json_type_survives_messagepack() {
        let value = json!({
            "null": null, "t": true, "f": false,
            "u": 7, "big": u64::MAX, "neg": -5, "min": i64::MIN, "float": 1.5, "tiny": -0.0625,
            "s": "text ✓", "empty": "", "a": [1, "two", [3.0], {}, []], "o": { "nested": { "deep": [null] } }
        });
        assert_eq!(
            decode(Codec::MessagePack, &msgpack(&value)),
            Ok(value.clone())
        );
        let json = serde_json::to_vec(&value).expect("encodes");
        assert_eq!(decode(Codec::Json, &json), Ok(value));
    }

    #[test]
    fn maps_with_keys_that_are_not_strings_are_refused() {
        // {1: "a"}, {true: 1}, {[]: 1}, {bin "k": 1}
        for bytes in [
            &[0x81, 0x01, 0xa1, b'a'][..],
            &[0x81, 0xc3, 0x01],
            &[0x81, 0x90, 0x01],
            &[0x81, 0xc4, 0x01, b'k', 0x01],
        ] {
            let e = decode(Codec::MessagePack, bytes).expect_err("refused");
            assert!(
                matches!(e, DecodeError::MessagePack(_)),
                "{e} for {bytes:02x?}"
            );
            assert_eq!(e.close_code(), CloseCode::INVALID_DATA);
        }
        // ...also deeper down.
        let e = decode(Codec::MessagePack, &[0x81, 0xa1, b'o', 0x81, 0x02, 0x03]);
        assert!(matches!(e, Err(DecodeError::MessagePack(_))), "{e:?}");
    }

    #[test]
    fn huge_length_headers_allocate_nothing_they_claim() {
        // array32, map32, str32 and bin32 headers claiming 2^32 - 1, with
        // nothing behind them: each fails at the end of the input.
        let claims = [
            vec![0x81, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k'],
            vec![0x81, 0xa1, b's', 0xdb, 0xff, 0xff, 0xff, 0xff, b'x'],
            vec![0x81, 0xa1, b'b', 0xc6, 0xff, 0xff, 0xff, 0xff, b'x'],
        ];
        for bytes in claims {
            let e = decode(Codec::MessagePack, &bytes).expect_err("cut short");
            assert!(
                matches!(e, DecodeError::MessagePack(_)),
                "{e} for {bytes:02x?}"
            );
        }
    }

    #[test]
    fn only_one_whole_map_is_a_message() {
        assert_eq!(
            decode(Codec::MessagePack, &[0x80, 0x80]),
            Err(DecodeError::MessagePack("bytes after the message".into()))
        );
        assert_eq!(
            decode(Codec::MessagePack, &[0x92, 0x01, 0x02]),
            Err(DecodeError::NotAMap(Codec::MessagePack))
        );
        assert_eq!(
            decode(Codec::Json, b"[1]"),
            Err(DecodeError::NotAMap(Codec::Json))
        );
        assert!(matches!(
            decode(Codec::MessagePack, &[]),
            Err(DecodeError::MessagePack(_))
        ));
        // A reserved marker.
        assert!(matches!(
            decode(Codec::MessagePack, &[0xc1]),
            Err(DecodeError::MessagePack(_))
        ));
    }

    #[test]
    fn nesting_is_bounded_like_json() {
        let mut deep = vec![0x81, 0xa1, b'a'];
        deep.extend(std::iter::repeat_n(0x91, MAX_DEPTH + 1));
        deep.push(0xc0);
        let e = decode(Codec::MessagePack, &deep).expect_err("too deep");
        assert!(e.to_string().contains("depth"), "{e}");
        let mut fine = vec![0x81, 0xa1, b'a'];
        // 127 containers in all, the map included, as serde_json allows.
        fine.extend(std::iter::repeat_n(0x91, MAX_DEPTH - 2));
        fine.push(0xc0);
        assert!(decode(Codec::MessagePack, &fine).is_ok());
    }

    #[test]
    fn a_pinned_codec_refuses_the_other_kind() {
        assert_eq!(
            Codec::read(Message::Text("{}"), Some(Codec::MessagePack)),
            Err(DecodeError::Refused {
                pinned: Codec::MessagePack
            })
        );
        assert_eq!(
            Codec::read(Message::Binary(&[0x80]), Some(Codec::Json)),
            Err(DecodeError::Refused {
                pinned: Codec::Json
            })
        );
        assert_eq!(
            Codec::read(Message::Binary(&[0x80]), None),
            Ok((Map::new(), Codec::MessagePack))
        );
        assert_eq!(
            Codec::read(Message::Text("{}"), None),
            Ok((Map::new(), Codec::Json))
        );
    }

    #[test]
    fn errors_name_their_codec_and_close_code() {
        let refused = DecodeError::Refused {
            pinned: Codec::MessagePack,
        };
        assert_eq!(
            refused.to_string(),
            "text messages are not supported: this router speaks MessagePack"
        );
        assert_eq!(refused.close_code(), CloseCode::UNSUPPORTED);
        assert_eq!(
            DecodeError::NotAMap(Codec::Json).close_code(),
            CloseCode::INVALID_DATA
        );
    }
}
