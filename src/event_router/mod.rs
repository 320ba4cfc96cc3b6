//! The event router: a [`Handler`] that reads each message as a JSON
//! object (text) or a MessagePack map (binary), reads its event name and
//! calls the closure registered for it with the message deserialised into
//! the closure's own type.
//!
//! Beside it: `codec.rs`, the two wire formats; `envelope.rs`, the id,
//! ack and trace around an event and the answers that carry them;
//! `reply.rs`, what a closure's return value sends; and XSockets mode:
//! `xsockets.rs`, the handler for `{t, c, d}` messages; `controller.rs`,
//! controllers, their instances and `Call`; `translator.rs`, `IMessage`,
//! its formats and translators.

mod codec;
mod controller;
mod envelope;
mod reply;
mod translator;
mod xsockets;

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::message::Message;
use crate::ws::close_code::CloseCode;
use crate::ws_api::{Handler, WebSocket};

pub use self::codec::Codec;
use self::codec::DecodeError;
pub use self::controller::{Call, Controller, XState};
use self::envelope::{Envelope, LOG_TARGET};
pub use self::reply::Reply;
pub use self::translator::{IMessage, Translator};
pub use self::xsockets::XSockets;

/// A registered event closure with its message type erased: it takes the
/// parsed message and returns the reply, or the error event's text.
type Route<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, Value) -> Result<Option<Value>, String>>;
type BinaryFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, &[u8])>;
type OpenFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>)>;
type CloseFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, CloseCode, &str)>;

/// A WebSocket [`Handler`] that dispatches JSON and MessagePack messages by
/// event name to typed closures.
///
/// Each text message is parsed once as JSON, each binary message as
/// MessagePack ([`Codec`]); both become the same value, so one closure
/// serves clients of either codec, and each is answered in the codec it
/// spoke. [`Router::codec`] pins one codec. The message must be an object
/// (a map with string keys) whose
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
/// A message the router cannot dispatch is answered with an error event, in
/// the codec of the message (the pinned one, if any), and the connection
/// stays open: `{"event":"error","error":"…"}`, plus the request's `"id"`
/// when it had one that could be read. That is sent for invalid JSON or
/// MessagePack (`invalid JSON: …`, `invalid MessagePack: …`), a message
/// that is not an object or map, a map key that is not a string, a missing
/// or non-string event key, an unknown event (`unknown event "x"`), a
/// message that does not fit the closure's type (serde's message after the
/// event name, `add: missing field `b``), a closure that returns `Err`, and
/// a message of the kind a pinned codec does not read (`binary messages are
/// not supported: this router speaks JSON`).
///
/// [`Router::close_on_unreadable`] closes the connection instead when a
/// message cannot be read at all: 1007 for one that is not valid JSON or
/// MessagePack or not an object, 1003 for a kind the pinned codec refuses.
///
/// The error event names itself under the router's key: after
/// `.key("type")` it is `{"type":"error","error":"…"}`, so a client reads
/// every message it gets the same way.
///
/// # Acknowledgements and trace ids
///
/// A request with `"ack": true` and an `"id"` is acknowledged once its
/// closure has finished: after the closure's reply (if any) comes
/// `{"event":"ack","id":…}`. A closure that fails sends its error event
/// (with the id) instead, and `"ack": true` without an `"id"` is refused
/// with the error `"ack" needs an "id"` before the closure runs.
///
/// A request's `"trace"` (any value; a string is usual) is copied into the
/// reply (when it is an object without a trace of its own), the ack and the
/// error event, and into the event's log line: at debug level, under the
/// target `wisp::router`, each dispatched event logs one line such as
/// `#3 "add" trace=4bf92f35: ok`.
///
/// ```text
/// → {"event":"save","id":7,"ack":true,"trace":"t-1","text":"hi"}
/// ← {"event":"saved","id":7,"trace":"t-1"}        the closure's reply
/// ← {"event":"ack","id":7,"trace":"t-1"}
/// ```
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
/// assert_eq!(format!("{router:?}"), r#"Router { key: "event", events: ["count"], codec: None, close_on_unreadable: false, binary: false, open: false, close: false }"#);
/// ```
pub struct Router<S = ()> {
    key: String,
    /// Keys copied from a request into its reply, ack and error event,
    /// beside `"id"` and `"trace"` (see [`Router::carry`]).
    carried: Vec<String>,
    routes: HashMap<String, Route<S>>,
    codec: Option<Codec>,
    close_on_unreadable: bool,
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
            carried: Vec::new(),
            routes: HashMap::new(),
            codec: None,
            close_on_unreadable: false,
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

    /// Copies `key` from each request into its reply (an object that has no
    /// `key` of its own), its ack and its error event, as `"id"` and
    /// `"trace"` are: Altruist's `messageCode`, say. Unknown events and
    /// payloads that do not fit their type are answered with it too; a
    /// message that cannot be read at all has nothing to copy.
    pub fn carry(mut self, key: impl Into<String>) -> Self {
        self.carried.push(key.into());
        self
    }

    /// Reads and answers every message in `codec` only (Altruist's
    /// `codec.provider`): a message of the other kind — binary for
    /// [`Codec::Json`], text for [`Codec::MessagePack`] — is answered with
    /// an error event in `codec`. Unpinned, a router reads both.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// With `true`, a message that cannot be read closes the connection
    /// instead of being answered with an error event: 1007 (invalid data)
    /// for invalid JSON or MessagePack or a value that is not an object,
    /// 1003 (unsupported data) for the kind of message a pinned codec
    /// refuses. Messages that are read but cannot be dispatched (an unknown
    /// event, a field of the wrong type) still get an error event. Off by
    /// default.
    pub fn close_on_unreadable(mut self, close: bool) -> Self {
        self.close_on_unreadable = close;
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

    /// Calls `handler` with each binary message, which is then not read as
    /// MessagePack: for a router whose binary messages are raw data.
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

    /// Reads, dispatches and answers one message.
    fn dispatch(&mut self, ws: &mut WebSocket<'_, S>, message: Message<'_>) {
        let (fields, codec) = match Codec::read(message, self.codec) {
            Ok(read) => read,
            Err(e) => return self.unreadable(ws, Codec::of(&message), &e),
        };
        let envelope = Envelope::of(&fields, codec, &self.key, &self.carried);
        let route = match fields.get(&self.key) {
            Some(Value::String(event)) => match self.routes.get_mut(event) {
                Some(route) => (route, event),
                None => return refuse(ws, &envelope, &format!("unknown event {event:?}")),
            },
            Some(_) => return refuse(ws, &envelope, &format!("{:?} is not a string", self.key)),
            None => return refuse(ws, &envelope, &format!("missing {:?}", self.key)),
        };
        if envelope.ack_without_id() {
            return refuse(ws, &envelope, "\"ack\" needs an \"id\"");
        }
        // The log line names the event, which the handler's type takes away.
        let (route, name) = route;
        let name = log::log_enabled!(target: LOG_TARGET, log::Level::Debug).then(|| name.clone());
        let outcome = route(ws, Value::Object(fields));
        if let Some(name) = name {
            let how = outcome.as_ref().err().map_or("ok", String::as_str);
            log::debug!(target: LOG_TARGET, "{} {name:?}{}: {how}", ws.id(), envelope.trace());
        }
        match outcome {
            Ok(Some(reply)) => envelope.reply(ws, reply),
            Ok(None) => {}
            Err(error) => return envelope.error(ws, &error),
        }
        envelope.ack(ws);
    }

    /// Answers a message that could not be read: an error event in the
    /// router's codec (else the message's), or a close if so configured.
    fn unreadable(&self, ws: &mut WebSocket<'_, S>, came_in: Codec, e: &DecodeError) {
        log::debug!(target: LOG_TARGET, "{} unreadable: {e}", ws.id());
        if self.close_on_unreadable {
            ws.close(e.close_code(), &e.to_string());
            return;
        }
        let codec = self.codec.unwrap_or(came_in);
        Envelope::bare(codec, &self.key).error(ws, &e.to_string());
    }
}

/// Answers a message that was read but cannot be dispatched with an error
/// event, and logs why.
fn refuse<S>(ws: &mut WebSocket<'_, S>, envelope: &Envelope<'_>, error: &str) {
    log::debug!(target: LOG_TARGET, "{}{}: {error}", ws.id(), envelope.trace());
    envelope.error(ws, error);
}

impl<S: Default + 'static> Handler for Router<S> {
    type State = S;

    fn on_open(&mut self, ws: &mut WebSocket<'_, S>) {
        if let Some(open) = &mut self.open {
            open(ws);
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, S>, msg: Message<'_>) {
        match (msg, &mut self.binary) {
            (Message::Binary(data), Some(binary)) => binary(ws, data),
            (msg, _) => self.dispatch(ws, msg),
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
            .field("codec", &self.codec)
            .field("close_on_unreadable", &self.close_on_unreadable)
            .field("binary", &self.binary.is_some())
            .field("open", &self.open.is_some())
            .field("close", &self.close.is_some())
            .finish()
    }
}
