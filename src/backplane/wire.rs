//! What a node puts on the Redis channel: one JSON object per delivery,
//! versioned, naming its sender node so every node can skip its own.
//!
//! ```text
//! {"v":1,"node":"device-a","kind":"publish","room":"lobby","except":"device-a/w0#3","text":"hi"}
//! {"v":1,"node":"device-a","kind":"broadcast","binary":"AAEC"}
//! {"v":1,"node":"device-b","kind":"send","to":"device-a/w1#9","text":"hi"}
//! ```
//!
//! Decoding trusts nothing: an unknown version, kind or key, a bad node
//! name or id, a room over 256 bytes, a payload over the size limit or not
//! exactly one of `text` and `binary` makes the message malformed.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::cluster::{Payload, Remote};
use crate::message::{is_node_name, ConnId};

/// The encoding's version; a node drops messages of another.
const VERSION: u32 = 1;
/// The longest room name carried.
const MAX_ROOM: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    node: String,
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// Base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Publish,
    Broadcast,
    Send,
}

/// A message from another node, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Sent by this node: every node hears its own publishes.
    Own,
    /// For the loops of this node.
    Deliver(Remote),
}

/// Encodes a delivery made on `node`.
pub(crate) fn encode(node: &str, remote: &Remote) -> Vec<u8> {
    let (kind, room, except, to, msg) = match remote {
        Remote::Publish { room, msg, except } => {
            (Kind::Publish, Some(room.to_string()), *except, None, msg)
        }
        Remote::Broadcast { msg, except } => (Kind::Broadcast, None, *except, None, msg),
        Remote::Send { to, msg } => (Kind::Send, None, None, Some(to.to_string()), msg),
    };
    let (text, binary) = match msg {
        Payload::Text(t) => (Some(t.to_string()), None),
        Payload::Binary(b) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
    };
    let wire = Wire {
        v: VERSION,
        node: node.to_string(),
        kind,
        room,
        except: except.map(|e| e.to_string()),
        to,
        text,
        binary,
    };
    // A struct of strings always serializes.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Decodes what came off the channel, heard by node `own`; `None` when it
/// is malformed. A payload over `max` bytes is malformed too.
pub(crate) fn decode(bytes: &[u8], own: &str, max: usize) -> Option<Inbound> {
    let wire: Wire = serde_json::from_slice(bytes).ok()?;
    if wire.v != VERSION || !is_node_name(&wire.node) {
        return None;
    }
    let msg = payload(wire.text, wire.binary, max)?;
    let except = wire.except.map(|e| e.parse::<ConnId>()).transpose().ok()?;
    let remote = match wire.kind {
        Kind::Publish => {
            let room = wire.room.filter(|r| !r.is_empty() && r.len() <= MAX_ROOM)?;
            if wire.to.is_some() {
                return None;
            }
            Remote::Publish {
                room: room.into(),
                msg,
                except,
            }
        }
        Kind::Broadcast => {
            if wire.room.is_some() || wire.to.is_some() {
                return None;
            }
            Remote::Broadcast { msg, except }
        }
        Kind::Send => {
            if wire.room.is_some() || except.is_some() {
                return None;
            }
            let to = wire.to?.parse::<ConnId>().ok()?;
            Remote::Send { to, msg }
        }
    };
    if wire.node == own {
        return Some(Inbound::Own);
    }
    Some(Inbound::Deliver(remote))
}

/// Exactly one of text and binary, within `max` bytes.
fn payload(text: Option<String>, binary: Option<String>, max: usize) -> Option<Payload> {
    match (text, binary) {
        (Some(t), None) if t.len() <= max => Some(Payload::Text(t.into())),
        (None, Some(b)) if b.len() / 4 * 3 <= max + 3 => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
            (bytes.len() <= max).then(|| Payload::Binary(bytes.into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ConnId {
        text.parse().unwrap()
    }

    #[test]
    fn deliveries_read_back_on_another_node_and_are_own_on_the_sender() {
        let deliveries = [
            Remote::Publish {
                room: "lobby".into(),
                msg: Payload::Text("hi".into()),
                except: Some(id("wire-a/w0#3")),
            },
            Remote::Broadcast {
                msg: Payload::Binary(vec![0, 1, 255].into()),
                except: None,
            },
            Remote::Send {
                to: id("wire-b/w1#9"),
                msg: Payload::Text("to you".into()),
            },
        ];
        for remote in deliveries {
            let bytes = encode("wire-a", &remote);
            assert_eq!(
                decode(&bytes, "wire-b", 100),
                Some(Inbound::Deliver(remote.clone()))
            );
            assert_eq!(decode(&bytes, "wire-a", 100), Some(Inbound::Own));
            assert_eq!(decode(&bytes, "wire-b", 1), None, "over the size limit");
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"v":2,"node":"a","kind":"broadcast","text":"x"}"#,
            r#"{"v":1,"node":"a b","kind":"broadcast","text":"x"}"#,
            r#"{"v":1,"node":"a","kind":"shout","text":"x"}"#,
            r#"{"v":1,"node":"a","kind":"broadcast"}"#,
            r#"{"v":1,"node":"a","kind":"broadcast","text":"x","binary":"AA=="}"#,
            r#"{"v":1,"node":"a","kind":"broadcast","binary":"!!"}"#,
            r#"{"v":1,"node":"a","kind":"publish","text":"x"}"#,
            r#"{"v":1,"node":"a","kind":"publish","room":"","text":"x"}"#,
            r#"{"v":1,"node":"a","kind":"send","text":"x"}"#,
            r#"{"v":1,"node":"a","kind":"send","to":"nobody","text":"x"}"#,
            r##"{"v":1,"node":"a","kind":"broadcast","except":"#x","text":"x"}"##,
            r#"{"v":1,"node":"a","kind":"broadcast","text":"x","extra":1}"#,
        ] {
            assert_eq!(decode(bad.as_bytes(), "b", 100), None, "{bad}");
        }
    }
}
