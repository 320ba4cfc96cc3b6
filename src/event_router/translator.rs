//! XSockets' message, `IMessage` (`{t, c, d}`), how it travels — as JSON
//! or MessagePack, or through a [`Translator`] for a protocol of its own —
//! and how it is written for each connection.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec::{Codec, DecodeError};
use crate::message::Message;
use crate::ws::close_code::CloseCode;

/// XSockets' `IMessage`: a topic `t`, a controller `c` and the data `d`.
///
/// On the wire it is `{"t":"foo","c":"bar","d":…}`, in JSON (text) or
/// MessagePack (binary), unless a [`Translator`] turns frames of another
/// shape into it and back. `d` may be missing (it is then `null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IMessage {
    /// The topic: the controller's method (`Foo` for `t:'foo'`).
    pub t: String,
    /// The controller (`Bar` for `c:'bar'`).
    pub c: String,
    /// The data, bound to the topic's parameter type.
    #[serde(default)]
    pub d: Value,
}

impl IMessage {
    /// A message for `topic` on `controller` carrying `data`.
    pub fn new(topic: impl Into<String>, controller: impl Into<String>, data: Value) -> Self {
        IMessage {
            t: topic.into(),
            c: controller.into(),
            d: data,
        }
    }

    /// An IMessage from a decoded map: `t` and `c` strings, `d` anything.
    fn from_map(fields: Map<String, Value>) -> Result<Self, String> {
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("not an IMessage: {e}"))
    }
}

/// A pair of functions between a protocol's own frames and [`IMessage`]s
/// (XSockets' `OnIncomingFrame` / `OnOutgoingFrame`): handlers and
/// controllers stay as they are while the wire format changes.
///
/// ```
/// use serde_json::{json, Value};
/// use wisp::{IMessage, Message, Translator};
///
/// // {M: 'method', J: 'parameters as JSON'} for the controller "demo".
/// let mj = Translator::new(
///     |frame: Message<'_>| {
///         let Message::Text(text) = frame else { return Err("text only".to_string()) };
///         let m: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
///         let (Some(method), Some(json)) = (m["M"].as_str(), m["J"].as_str()) else {
///             return Err("expected {M, J}".to_string());
///         };
///         let data = serde_json::from_str(json).map_err(|e| e.to_string())?;
///         Ok(IMessage::new(method, "demo", data))
///     },
///     |message: &IMessage| json!({ "M": message.t, "J": message.d.to_string() }).to_string(),
/// );
/// let incoming = mj.incoming(Message::Text(r#"{"M":"foo","J":"{\"i\":42}"}"#));
/// assert_eq!(incoming, Ok(IMessage::new("foo", "demo", json!({ "i": 42 }))));
/// assert_eq!(mj.outgoing(&IMessage::new("foo", "demo", json!(1))), r#"{"J":"1","M":"foo"}"#);
/// ```
pub struct Translator {
    incoming: Box<Incoming>,
    outgoing: Box<dyn Fn(&IMessage) -> String>,
}

/// A translator's reading half.
type Incoming = dyn Fn(Message<'_>) -> Result<IMessage, String>;

impl Translator {
    /// `incoming` reads a frame as an IMessage, or says why it cannot (the
    /// connection is then closed with 1007, or answered with an error
    /// message, see [`XSockets::close_on_unreadable`](crate::XSockets::close_on_unreadable));
    /// `outgoing` writes an IMessage as the text of a frame.
    pub fn new<I, O>(incoming: I, outgoing: O) -> Self
    where
        I: Fn(Message<'_>) -> Result<IMessage, String> + 'static,
        O: Fn(&IMessage) -> String + 'static,
    {
        Translator {
            incoming: Box::new(incoming),
            outgoing: Box::new(outgoing),
        }
    }

    /// Reads one frame.
    pub fn incoming(&self, frame: Message<'_>) -> Result<IMessage, String> {
        (self.incoming)(frame)
    }

    /// Writes one message.
    pub fn outgoing(&self, message: &IMessage) -> String {
        (self.outgoing)(message)
    }
}

impl fmt::Debug for Translator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translator").finish_non_exhaustive()
    }
}

/// How one connection's messages travel: in a codec (the one its last
/// message came in), or through the translator of its subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `{t, c, d}` in JSON or MessagePack.
    Plain(Codec),
    /// Through the translator at this index.
    Translated(usize),
}

impl Default for Format {
    fn default() -> Self {
        Format::Plain(Codec::Json)
    }
}

/// A frame written for one format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

impl Frame {
    pub(crate) fn as_message(&self) -> Message<'_> {
        match self {
            Frame::Text(text) => Message::Text(text),
            Frame::Binary(bytes) => Message::Binary(bytes),
        }
    }
}

/// Why a frame is not an IMessage, and the close code it earns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) why: String,
    pub(crate) code: CloseCode,
}

impl From<DecodeError> for Unreadable {
    fn from(e: DecodeError) -> Self {
        Unreadable {
            why: e.to_string(),
            code: e.close_code(),
        }
    }
}

/// The translators of an XSockets handler, by subprotocol.
#[derive(Default)]
pub(crate) struct Translators(Vec<(String, Translator)>);

impl Translators {
    pub(crate) fn add(&mut self, protocol: String, translator: Translator) {
        match self.0.iter_mut().find(|(p, _)| *p == protocol) {
            Some(slot) => slot.1 = translator,
            None => self.0.push((protocol, translator)),
        }
    }

    /// The format a connection that negotiated `protocol` starts with.
    pub(crate) fn format_for(&self, protocol: Option<&str>) -> Format {
        protocol
            .and_then(|p| self.0.iter().position(|(name, _)| name == p))
            .map_or(Format::default(), Format::Translated)
    }

    /// Reads a frame in `format`; a plain one comes back with the format
    /// its codec implies.
    pub(crate) fn read(
        &self,
        format: Format,
        frame: Message<'_>,
    ) -> Result<(IMessage, Format), Unreadable> {
        let invalid = |why: String| Unreadable {
            why,
            code: CloseCode::INVALID_DATA,
        };
        match format {
            Format::Translated(i) => match self.0.get(i) {
                Some((_, translator)) => Ok((translator.incoming(frame).map_err(invalid)?, format)),
                None => Err(invalid("no such translator".into())),
            },
            Format::Plain(_) => {
                let (fields, codec) = Codec::read(frame, None)?;
                Ok((
                    IMessage::from_map(fields).map_err(invalid)?,
                    Format::Plain(codec),
                ))
            }
        }
    }

    /// Writes `message` for a connection in `format`.
    pub(crate) fn write(&self, format: Format, message: &IMessage) -> Option<Frame> {
        match format {
            Format::Plain(Codec::Json) => serde_json::to_string(message).ok().map(Frame::Text),
            Format::Plain(Codec::MessagePack) => {
                rmp_serde::to_vec_named(message).ok().map(Frame::Binary)
            }
            Format::Translated(i) => {
                let (_, translator) = self.0.get(i)?;
                Some(Frame::Text(translator.outgoing(message)))
            }
        }
    }

    /// The subprotocols with a translator.
    pub(crate) fn protocols(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(p, _)| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upper() -> Translator {
        Translator::new(
            |frame| match frame {
                Message::Text(t) => Ok(IMessage::new(t, "shout", Value::Null)),
                Message::Binary(_) => Err("text only".into()),
            },
            |m| m.t.to_uppercase(),
        )
    }

    #[test]
    fn plain_messages_in_either_codec() {
        let t = Translators::default();
        let json = Message::Text(r#"{"t":"foo","c":"bar","d":{"name":"Steve","Age":42}}"#);
        let want = IMessage::new("foo", "bar", json!({ "name": "Steve", "Age": 42 }));
        assert_eq!(
            t.read(Format::default(), json),
            Ok((want.clone(), Format::Plain(Codec::Json)))
        );
        let bytes = rmp_serde::to_vec_named(&want).expect("encodes");
        assert_eq!(
            t.read(Format::default(), Message::Binary(&bytes)),
            Ok((want.clone(), Format::Plain(Codec::MessagePack)))
        );
        assert_eq!(
            t.write(Format::Plain(Codec::MessagePack), &want),
            Some(Frame::Binary(bytes))
        );
        // d may be missing.
        let bare = t.read(Format::default(), Message::Text(r#"{"t":"x","c":"y"}"#));
        assert_eq!(bare.map(|(m, _)| m.d), Ok(Value::Null));
    }

    #[test]
    fn what_is_not_an_imessage_is_unreadable_with_1007() {
        let t = Translators::default();
        for text in [
            r#"{"c":"bar"}"#,
            r#"{"t":1,"c":"bar"}"#,
            "[1]",
            "{",
            "\"hi\"",
        ] {
            let e = t
                .read(Format::default(), Message::Text(text))
                .expect_err(text);
            assert_eq!(e.code, CloseCode::INVALID_DATA, "{text}: {}", e.why);
        }
        let e = t.read(Format::default(), Message::Text(r#"{"t":"foo"}"#));
        assert_eq!(
            e.map_err(|e| e.why),
            Err("not an IMessage: missing field `c`".to_string())
        );
    }

    #[test]
    fn translators_by_subprotocol() {
        let mut t = Translators::default();
        t.add("Shout".into(), upper());
        let format = t.format_for(Some("Shout"));
        assert_eq!(format, Format::Translated(0));
        assert_eq!(t.format_for(Some("XSocketsNET")), Format::default());
        assert_eq!(t.format_for(None), Format::default());
        assert_eq!(
            t.read(format, Message::Text("hey")),
            Ok((IMessage::new("hey", "shout", Value::Null), format))
        );
        let e = t
            .read(format, Message::Binary(b"x"))
            .expect_err("text only");
        assert_eq!(
            (e.why.as_str(), e.code),
            ("text only", CloseCode::INVALID_DATA)
        );
        let out = t.write(format, &IMessage::new("hey", "shout", Value::Null));
        assert_eq!(out, Some(Frame::Text("HEY".into())));
        assert_eq!(t.protocols().collect::<Vec<_>>(), ["Shout"]);
    }
}
