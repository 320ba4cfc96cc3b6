//! What travels around an event rather than in it: the `"id"` a client
//! matches answers by, an acknowledgement asked for with `"ack": true`, and
//! a `"trace"` id carried into every answer and the event's log line (the
//! C++ framework's `transaction_id`, `requires_ack` and `trace_id`).

use std::fmt;

use serde_json::{Map, Value};

use super::codec::Codec;
use crate::ws_api::WebSocket;

/// The key of the request/response correlation value.
const ID: &str = "id";
/// The key that asks for an acknowledgement.
const ACK: &str = "ack";
/// The key of a trace id.
const TRACE: &str = "trace";
/// The target of the router's log lines.
pub(crate) const LOG_TARGET: &str = "wisp::router";

/// How one request is answered: its codec, the router's event key, and the
/// request's `"id"`, `"ack"` and `"trace"`.
pub(crate) struct Envelope<'a> {
    pub(crate) codec: Codec,
    key: &'a str,
    id: Option<Value>,
    trace: Option<Value>,
    /// The router's carried keys the request had, with their values.
    carried: Vec<(&'a str, Value)>,
    ack: bool,
}

impl<'a> Envelope<'a> {
    /// The envelope of a request: the handler's type gets the whole message,
    /// id and trace included, so those are copied.
    pub(crate) fn of(
        fields: &Map<String, Value>,
        codec: Codec,
        key: &'a str,
        carry: &'a [String],
    ) -> Self {
        Envelope {
            codec,
            key,
            id: fields.get(ID).cloned(),
            trace: fields.get(TRACE).cloned(),
            carried: carry
                .iter()
                .filter_map(|k| Some((k.as_str(), fields.get(k)?.clone())))
                .collect(),
            ack: fields.get(ACK) == Some(&Value::Bool(true)),
        }
    }

    /// The envelope of a message that could not be read: nothing to carry.
    pub(crate) fn bare(codec: Codec, key: &'a str) -> Self {
        Envelope {
            codec,
            key,
            id: None,
            trace: None,
            carried: Vec::new(),
            ack: false,
        }
    }

    /// True when the request asks for an ack but has no `"id"` to put in it.
    pub(crate) fn ack_without_id(&self) -> bool {
        self.ack && self.id.is_none()
    }

    /// Sends a closure's reply, with the request's `"id"` and `"trace"` if
    /// it is an object that has none of its own.
    pub(crate) fn reply<S>(&self, ws: &mut WebSocket<'_, S>, mut reply: Value) {
        if let Value::Object(reply) = &mut reply {
            self.stamp(reply);
        }
        self.codec.send(ws, &reply);
    }

    /// Sends `{key: "error", "error": error}`, with the request's `"id"`
    /// and `"trace"` if known.
    pub(crate) fn error<S>(&self, ws: &mut WebSocket<'_, S>, error: &str) {
        let mut event = Map::new();
        event.insert(self.key.to_string(), Value::from("error"));
        event.insert("error".to_string(), Value::from(error));
        self.stamp(&mut event);
        self.codec.send(ws, &Value::Object(event));
    }

    /// Sends `{key: "ack", "id": id}` (and the trace) if the request asked
    /// for one: its handler has finished, and everything it sent is ahead.
    pub(crate) fn ack<S>(&self, ws: &mut WebSocket<'_, S>) {
        if !self.ack || self.id.is_none() {
            return;
        }
        let mut event = Map::new();
        event.insert(self.key.to_string(), Value::from(ACK));
        self.stamp(&mut event);
        self.codec.send(ws, &Value::Object(event));
    }

    /// Adds the id, the trace and the carried keys to `answer` where it
    /// has none of its own.
    fn stamp(&self, answer: &mut Map<String, Value>) {
        for (key, value) in [(ID, &self.id), (TRACE, &self.trace)] {
            if let Some(value) = value {
                answer
                    .entry(key.to_string())
                    .or_insert_with(|| value.clone());
            }
        }
        for (key, value) in &self.carried {
            answer
                .entry(key.to_string())
                .or_insert_with(|| value.clone());
        }
    }

    /// The trace id for a log line: ` trace=…`, or nothing.
    pub(crate) fn trace(&self) -> Trace<'_> {
        Trace(self.trace.as_ref())
    }
}

/// A trace id as a log line shows it: ` trace=abc` (a string without its
/// quotes, anything else as JSON), or nothing without one.
pub(crate) struct Trace<'a>(Option<&'a Value>);

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some(Value::String(trace)) => write!(f, " trace={}", trace.escape_debug()),
            Some(trace) => write!(f, " trace={trace}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(message: Value) -> Envelope<'static> {
        let Value::Object(fields) = message else {
            panic!("a map")
        };
        Envelope::of(&fields, Codec::Json, "event", &[])
    }

    #[test]
    fn carried_keys_are_stamped_where_missing() {
        let carry = ["messageCode".to_string(), "absent".to_string()];
        let message = json!({ "event": "x", "messageCode": 4 });
        let Value::Object(fields) = message else {
            panic!("a map")
        };
        let e = Envelope::of(&fields, Codec::Json, "event", &carry);
        let mut answer = Map::new();
        e.stamp(&mut answer);
        assert_eq!(Value::Object(answer), json!({ "messageCode": 4 }));
        let mut own = Map::new();
        own.insert("messageCode".into(), json!(9));
        e.stamp(&mut own);
        assert_eq!(Value::Object(own), json!({ "messageCode": 9 }));
    }

    #[test]
    fn id_and_trace_are_stamped_where_missing() {
        let e = envelope(json!({ "event": "x", "id": 3, "trace": "t-1", "ack": true }));
        let mut answer = Map::new();
        answer.insert("trace".into(), json!("own"));
        e.stamp(&mut answer);
        assert_eq!(Value::Object(answer), json!({ "id": 3, "trace": "own" }));
        assert!(!e.ack_without_id());
    }

    #[test]
    fn only_ack_true_asks_and_it_needs_an_id() {
        assert!(envelope(json!({ "ack": true })).ack_without_id());
        assert!(!envelope(json!({ "ack": "yes" })).ack_without_id());
        assert!(!envelope(json!({ "ack": 1, "id": 1 })).ack);
        assert!(envelope(json!({ "ack": true, "id": null })).ack);
    }

    #[test]
    fn traces_in_log_lines() {
        let line = |v: Value| envelope(v).trace().to_string();
        assert_eq!(line(json!({})), "");
        assert_eq!(line(json!({ "trace": "a b" })), " trace=a b");
        assert_eq!(line(json!({ "trace": "x\ny" })), " trace=x\\ny");
        assert_eq!(line(json!({ "trace": [1] })), " trace=[1]");
    }
}
