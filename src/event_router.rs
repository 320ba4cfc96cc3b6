//! A JSON event router: a [`Handler`] that parses each text message as a JSON
//! object, reads its event name and calls the closure registered for it with
//! the message deserialised into the closure's own type.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::message::Message;
use crate::ws::close_code::CloseCode;
use crate::ws_api::{Handler, WebSocket};

/// The key of the request/response correlation value.
const ID: &str = "id";

/// What a [`Router`] closure hands back: the message that goes to the sender,
/// nothing, or an error.
///
/// | the closure returns | the sender gets |
/// |---|---|
/// | `()` | nothing |
/// | a [`serde_json::Value`] | that value as a text message, unless it is `Null` |
/// | `Option<V>` | nothing for `None`; what `V` sends for `Some` |
/// | `Result<V, E>` | what `V` sends for `Ok`; the error event with `e.to_string()` for `Err(e)` |
///
/// When the request carried an `"id"` and the reply is a JSON object, the
/// reply gets the same `"id"` (unless it set one itself), and so does an error
/// event: a client can match answers to questions.
///
/// Implement it for your own types to return them straight from a closure:
///
/// ```
/// use serde_json::{json, Value};
/// use wisp::Reply;
///
/// struct Sum(i64);
///
/// impl Reply for Sum {
///     fn into_reply(self) -> Result<Option<Value>, String> {
///         Ok(Some(json!({ "event": "sum", "value": self.0 })))
///     }
/// }
///
/// assert_eq!(Sum(3).into_reply(), Ok(Some(json!({ "event": "sum", "value": 3 }))));
/// ```
pub trait Reply {
    /// `Ok(Some(value))` sends `value`, `Ok(None)` sends nothing, `Err(error)`
    /// sends the router's error event with `error` as its text.
    fn into_reply(self) -> Result<Option<Value>, String>;
}

impl Reply for () {
    fn into_reply(self) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

impl Reply for Value {
    fn into_reply(self) -> Result<Option<Value>, String> {
        Ok((!self.is_null()).then_some(self))
    }
}

impl<V: Reply> Reply for Option<V> {
    fn into_reply(self) -> Result<Option<Value>, String> {
        self.map_or(Ok(None), Reply::into_reply)
    }
}

impl<V: Reply, E: fmt::Display> Reply for Result<V, E> {
    fn into_reply(self) -> Result<Option<Value>, String> {
        self.map_err(|e| e.to_string())?.into_reply()
    }
}

/// A registered event closure with its message type erased: it takes the
/// parsed message and returns the reply, or the error event's text.
type Route<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, Value) -> Result<Option<Value>, String>>;
type BinaryFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, &[u8])>;
type OpenFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>)>;
type CloseFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, CloseCode, &str)>;

/// A WebSocket [`Handler`] that dispatches JSON messages by event name to
/// typed closures.
///
/// Each text message is parsed once as JSON. It must be an object whose
/// `"event"` key (another with [`Router::key`]) holds a string naming an
/// event registered with [`Router::on`]; the whole object is then
/// deserialised into that closure's type — which sees every field, the event
/// name and `"id"` included, and may ignore the ones it does not declare — and
/// what the closure returns is the answer (see [`Reply`]).
///
/// ```no_run
/// use serde::Deserialize;
/// use serde_json::json;
/// use wisp::{Config, Router, Server};
///
/// #[derive(Deserialize)]
/// struct Add {
///     a: i64,
///     b: i64,
/// }
///
/// let config = Config::parse("{ web: { routes: [ { match: '/ws/', handler: 'action' } ] } }", ".".as_ref())?;
/// let mut server = Server::bind(config)?;
/// // {"event":"add","a":1,"b":2,"id":7}  →  {"event":"sum","value":3,"id":7}
/// server.websocket(
///     "/ws/api",
///     Router::new()
///         .on("add", |_ws, m: Add| json!({ "event": "sum", "value": m.a + m.b }))
///         .on("ping", |_ws, _: serde_json::Value| json!({ "event": "pong" })),
/// );
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors stay on the connection
///
/// A message the router cannot dispatch is answered with an error event and
/// the connection stays open: `{"event":"error","error":"…"}`, plus the
/// request's `"id"` when it had one that could be read. That is sent for
/// invalid JSON, JSON that is not an object, a missing or non-string event
/// key, an unknown event (`unknown event "x"`), a message that does not fit
/// the closure's type (serde's message after the event name, `add: missing
/// field `b``), a closure that returns `Err`, and a binary message with no
/// [`Router::on_binary`] closure (`binary messages are not supported`).
///
/// The error event names itself under the router's key: after
/// `.key("type")` it is `{"type":"error","error":"…"}`, so a client reads
/// every message it gets the same way.
///
/// # Per-connection state
///
/// `S` is the [`Handler::State`] of each connection, made with `Default` when
/// it opens and reached through [`WebSocket::state_mut`] in every closure.
/// [`Router::new`] makes a router without state (`S = ()`); for another state
/// type use `Router::<S>::default()`:
///
/// ```
/// use wisp::Router;
///
/// let router = Router::<u64>::default().on("count", |ws, _: serde_json::Value| {
///     *ws.state_mut() += 1;
///     serde_json::json!({ "event": "count", "value": *ws.state() })
/// });
/// assert_eq!(format!("{router:?}"), r#"Router { key: "event", events: ["count"], binary: false, open: false, close: false }"#);
/// ```
pub struct Router<S = ()> {
    key: String,
    routes: HashMap<String, Route<S>>,
    binary: Option<BinaryFn<S>>,
    open: Option<OpenFn<S>>,
    close: Option<CloseFn<S>>,
}

impl Router {
    /// A router without per-connection state, with the event name under
    /// `"event"` and no events registered. For state, see `Router::<S>::default()`.
    pub fn new() -> Router {
        Router::default()
    }
}

impl<S> Default for Router<S> {
    fn default() -> Self {
        Router {
            key: "event".to_string(),
            routes: HashMap::new(),
            binary: None,
            open: None,
            close: None,
        }
    }
}

impl<S: 'static> Router<S> {
    /// Reads the event name from `key` instead of `"event"`; error events are
    /// sent under this key too (`{"type":"error","error":"…"}`), which is
    /// why the key should not be `"error"` itself.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Calls `handler` for every message whose event is `event`, with the
    /// message deserialised into `T`; what it returns is sent back
    /// ([`Reply`]). Registering an event again replaces its closure.
    ///
    /// Take a [`serde_json::Value`] to get the message as it came.
    pub fn on<T, R, F>(mut self, event: impl Into<String>, mut handler: F) -> Self
    where
        T: DeserializeOwned,
        R: Reply,
        F: FnMut(&mut WebSocket<'_, S>, T) -> R + 'static,
    {
        let event = event.into();
        let name = event.clone(); // for the error text; the map keeps the other
        let route: Route<S> = Box::new(move |ws, message| {
            let typed = serde_json::from_value(message).map_err(|e| format!("{name}: {e}"))?;
            handler(ws, typed).into_reply()
        });
        self.routes.insert(event, route);
        self
    }

    /// Calls `handler` with each binary message. Without one, a binary
    /// message is answered with the error event `binary messages are not
    /// supported` and the connection stays open.
    pub fn on_binary<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>, &[u8]) + 'static,
    {
        self.binary = Some(Box::new(handler));
        self
    }

    /// Calls `handler` when a connection opens ([`Handler::on_open`]): the
    /// upgrade's headers are readable there, and it may send a welcome.
    pub fn on_open<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>) + 'static,
    {
        self.open = Some(Box::new(handler));
        self
    }

    /// Calls `handler` with the close code and reason when a connection ends
    /// ([`Handler::on_close`]).
    pub fn on_close<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>, CloseCode, &str) + 'static,
    {
        self.close = Some(Box::new(handler));
        self
    }

    /// Parses, dispatches and answers one text message.
    fn dispatch(&mut self, ws: &mut WebSocket<'_, S>, text: &str) {
        let message: Value = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => return send_error(ws, &self.key, None, &format!("invalid JSON: {e}")),
        };
        let Value::Object(fields) = &message else {
            return send_error(ws, &self.key, None, "message is not a JSON object");
        };
        // The handler's type gets the whole message, id included, so the id is copied.
        let id = fields.get(ID).cloned();
        let route = match fields.get(&self.key) {
            Some(Value::String(event)) => match self.routes.get_mut(event) {
                Some(route) => route,
                None => {
                    let error = format!("unknown event {event:?}");
                    return send_error(ws, &self.key, id, &error);
                }
            },
            Some(_) => {
                let error = format!("{:?} is not a string", self.key);
                return send_error(ws, &self.key, id, &error);
            }
            None => {
                let error = format!("missing {:?}", self.key);
                return send_error(ws, &self.key, id, &error);
            }
        };
        match route(ws, message) {
            Ok(Some(mut reply)) => {
                if let (Some(id), Value::Object(reply)) = (id, &mut reply) {
                    reply.entry(ID).or_insert(id);
                }
                ws.send_json(&reply);
            }
            Ok(None) => {}
            Err(error) => send_error(ws, &self.key, id, &error),
        }
    }
}

/// Sends `{key: "error", "error": error}`, with the request's `"id"` if known.
fn send_error<S>(ws: &mut WebSocket<'_, S>, key: &str, id: Option<Value>, error: &str) {
    let mut event = Map::new();
    event.insert(key.to_string(), Value::from("error"));
    event.insert("error".to_string(), Value::from(error));
    if let Some(id) = id {
        event.insert(ID.to_string(), id);
    }
    ws.send_json(&event);
}

impl<S: Default + 'static> Handler for Router<S> {
    type State = S;

    fn on_open(&mut self, ws: &mut WebSocket<'_, S>) {
        if let Some(open) = &mut self.open {
            open(ws);
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, S>, msg: Message<'_>) {
        match msg {
            Message::Text(text) => self.dispatch(ws, text),
            Message::Binary(data) => match &mut self.binary {
                Some(binary) => binary(ws, data),
                None => send_error(ws, &self.key, None, "binary messages are not supported"),
            },
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, S>, code: CloseCode, reason: &str) {
        if let Some(close) = &mut self.close {
            close(ws, code, reason);
        }
    }
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut events: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        events.sort_unstable();
        f.debug_struct("Router")
            .field("key", &self.key)
            .field("events", &events)
            .field("binary", &self.binary.is_some())
            .field("open", &self.open.is_some())
            .field("close", &self.close.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies() {
        assert_eq!(().into_reply(), Ok(None));
        assert_eq!(Value::Null.into_reply(), Ok(None));
        assert_eq!(json!({"a": 1}).into_reply(), Ok(Some(json!({"a": 1}))));
        assert_eq!(json!(false).into_reply(), Ok(Some(json!(false))));
        assert_eq!(None::<Value>.into_reply(), Ok(None));
        assert_eq!(Some(json!(1)).into_reply(), Ok(Some(json!(1))));
        assert_eq!(Some(()).into_reply(), Ok(None));
        assert_eq!(Ok::<_, String>(json!(2)).into_reply(), Ok(Some(json!(2))));
        assert_eq!(
            Err::<(), _>("no such user").into_reply(),
            Err("no such user".to_string())
        );
        assert_eq!(
            Ok::<_, std::fmt::Error>(Some(Err::<Value, _>(7))).into_reply(),
            Err("7".to_string())
        );
    }
}
