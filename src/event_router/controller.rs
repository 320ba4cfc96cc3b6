//! An XSockets controller: topics bound to typed closures, a catch-all,
//! open and close hooks, and an instance of its state per connection; and
//! [`Call`], what each closure answers through.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::reply::Reply;
use super::translator::{Format, IMessage, Translators};
use crate::message::{ConnId, SendStatus};
use crate::ws_api::WebSocket;

/// An XSockets connection's state ([`XSockets`](crate::XSockets)'
/// [`Handler::State`](crate::Handler::State)): its format and its
/// controller instances.
#[derive(Default)]
pub struct XState {
    pub(crate) format: Format,
    pub(crate) instances: Vec<(usize, Box<dyn Any>)>,
}

impl fmt::Debug for XState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open: Vec<usize> = self.instances.iter().map(|(i, _)| *i).collect();
        f.debug_struct("XState")
            .field("format", &self.format)
            .field("controllers_open", &open)
            .finish()
    }
}

type Topic<C> = Box<dyn FnMut(&mut Call<'_, '_, C>, Value) -> Result<Option<Value>, String>>;
type CatchAll<C> = Box<dyn FnMut(&mut Call<'_, '_, C>, IMessage) -> Result<Option<Value>, String>>;
type Hook<C> = Box<dyn FnMut(&mut Call<'_, '_, C>)>;

/// An XSockets controller (`public class Bar : XSocketController`): each
/// topic is a closure whose parameter type `d` is bound to, like `Foo(string
/// m)` or `Foo(Person p)`; [`Controller::on_message`] catches every topic
/// without a closure (XSockets' `OnMessage` override).
///
/// `C` is the controller's instance state: one per connection, made with
/// `Default` when the connection first sends to this controller (which then
/// runs [`Controller::on_open`]), reached through [`Call::state`], dropped
/// when the connection closes (after [`Controller::on_close`]).
///
/// Topic names match without regard to ASCII case, as XSockets' method names do.
///
/// ```
/// use serde::Deserialize;
/// use serde_json::json;
/// use wisp::Controller;
///
/// #[derive(Deserialize)]
/// #[allow(non_snake_case)]
/// struct Person {
///     name: String,
///     Age: u32,
/// }
///
/// let people = Controller::<u32>::default()
///     .on("add", |call, p: Person| {
///         *call.state() += 1;
///         json!({ "greeting": format!("hello {}, {}", p.name, p.Age), "seen": *call.state() })
///     })
///     .on_message(|call, m: wisp::IMessage| {
///         call.invoke_to_all(&m.t, &m.d);
///     });
/// assert_eq!(format!("{people:?}"), r#"Controller { topics: ["add"], catch_all: true, open: false, close: false }"#);
/// ```
pub struct Controller<C = ()> {
    topics: Vec<(String, Topic<C>)>,
    catch_all: Option<CatchAll<C>>,
    open: Option<Hook<C>>,
    close: Option<Hook<C>>,
}

impl Controller {
    /// A controller without instance state. For state, `Controller::<C>::default()`.
    pub fn new() -> Controller {
        Controller::default()
    }
}

impl<C> Default for Controller<C> {
    fn default() -> Self {
        Controller {
            topics: Vec::new(),
            catch_all: None,
            open: None,
            close: None,
        }
    }
}

impl<C: Default + 'static> Controller<C> {
    /// Calls `handler` for every message on `topic`, with `d` deserialised
    /// into `T` (a `String`, a struct, a [`serde_json::Value`]…). What it
    /// returns goes back to the sender as `{t: topic, c: controller, d: …}`
    /// ([`Reply`]); an `Err`, or a `d` that does not fit `T`, goes back as
    /// the topic `error`.
    pub fn on<T, R, F>(mut self, topic: impl Into<String>, mut handler: F) -> Self
    where
        T: DeserializeOwned,
        R: Reply,
        F: FnMut(&mut Call<'_, '_, C>, T) -> R + 'static,
    {
        let topic = topic.into();
        let name = topic.clone();
        let route: Topic<C> = Box::new(move |call, d| {
            let typed = serde_json::from_value(d).map_err(|e| format!("{name}: {e}"))?;
            handler(call, typed).into_reply()
        });
        self.topics.retain(|(t, _)| !t.eq_ignore_ascii_case(&topic));
        self.topics.push((topic, route));
        self
    }

    /// Calls `handler` with every message whose topic has no closure (the
    /// catch-all). Without one, such a message is answered with the topic
    /// `error`, `unknown topic "x"`.
    pub fn on_message<R, F>(mut self, mut handler: F) -> Self
    where
        R: Reply,
        F: FnMut(&mut Call<'_, '_, C>, IMessage) -> R + 'static,
    {
        self.catch_all = Some(Box::new(move |call, m| handler(call, m).into_reply()));
        self
    }

    /// Calls `handler` when a connection opens this controller: with its
    /// first message to it, before that message is handled.
    pub fn on_open<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut Call<'_, '_, C>) + 'static,
    {
        self.open = Some(Box::new(handler));
        self
    }

    /// Calls `handler` when a connection that opened this controller closes.
    pub fn on_close<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut Call<'_, '_, C>) + 'static,
    {
        self.close = Some(Box::new(handler));
        self
    }
}

impl<C> fmt::Debug for Controller<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topics: Vec<&str> = self.topics.iter().map(|(t, _)| t.as_str()).collect();
        f.debug_struct("Controller")
            .field("topics", &topics)
            .field("catch_all", &self.catch_all.is_some())
            .field("open", &self.open.is_some())
            .field("close", &self.close.is_some())
            .finish()
    }
}

/// What a controller's closure answers through: the connection, this
/// controller's instance state for it, and sends in each recipient's format.
pub struct Call<'c, 'w, C> {
    ws: &'c mut WebSocket<'w, XState>,
    state: &'c mut C,
    wire: Wire<'c>,
    topic: &'c str,
}

/// What a call needs of its handler: the controller's name and index, the
/// translators, and who has the controller open.
#[derive(Clone, Copy)]
pub(crate) struct Wire<'c> {
    pub(crate) controller: &'c str,
    pub(crate) translators: &'c Translators,
    pub(crate) members: &'c HashMap<ConnId, Format>,
}

impl<'w, C> Call<'_, 'w, C> {
    /// This connection's instance of the controller's state.
    pub fn state(&mut self) -> &mut C {
        self.state
    }

    /// The connection: its id, headers, rooms, and plain sends.
    pub fn ws(&mut self) -> &mut WebSocket<'w, XState> {
        self.ws
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.ws.id()
    }

    /// The topic of the message being handled (empty in the open and close hooks).
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// The controller's name.
    pub fn controller(&self) -> &str {
        self.wire.controller
    }

    /// Sends `{t: topic, c: this controller, d: data}` to this connection,
    /// in its format (XSockets' `Invoke`).
    pub fn invoke(&mut self, topic: &str, data: &impl Serialize) -> SendStatus {
        let Ok(d) = serde_json::to_value(data) else {
            return SendStatus::Refused;
        };
        let message = IMessage::new(topic, self.wire.controller, d);
        let format = self.ws.state().format;
        match self.wire.translators.write(format, &message) {
            Some(frame) => self.ws.send(frame.as_message()),
            None => SendStatus::Refused,
        }
    }

    /// Sends `{t: topic, c: this controller, d: data}` to every connection
    /// that has this controller open, this one included, each in its own
    /// format, written once per format (XSockets' `InvokeToAll`). Returns
    /// how many it went to.
    pub fn invoke_to_all(&mut self, topic: &str, data: &impl Serialize) -> usize {
        let Ok(d) = serde_json::to_value(data) else {
            return 0;
        };
        let message = IMessage::new(topic, self.wire.controller, d);
        let me = self.ws.id();
        let mut written: Vec<(Format, Option<super::translator::Frame>)> = Vec::new();
        let mut sent = 0;
        for (&to, &format) in self.wire.members {
            let frame = match written.iter().find(|(f, _)| *f == format) {
                Some((_, frame)) => frame.clone(),
                None => {
                    let frame = self.wire.translators.write(format, &message);
                    written.push((format, frame.clone()));
                    frame
                }
            };
            let Some(frame) = frame else { continue };
            let status = if to == me {
                self.ws.send(frame.as_message())
            } else {
                self.ws.send_to(to, frame.as_message())
            };
            sent += usize::from(status != SendStatus::Closed);
        }
        sent
    }
}

impl<C> fmt::Debug for Call<'_, '_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.ws.id())
            .field("controller", &self.wire.controller)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// A controller with its state type erased, as the XSockets handler keeps it.
pub(crate) trait AnyController {
    /// A new instance of the controller's state.
    fn instance(&self) -> Box<dyn Any>;
    /// Runs the open (`true`) or close hook.
    fn hook(
        &mut self,
        ws: &mut WebSocket<'_, XState>,
        wire: Wire<'_>,
        state: &mut dyn Any,
        open: bool,
    );
    /// Handles one message; the reply's `d`, or the error's text.
    fn message(
        &mut self,
        ws: &mut WebSocket<'_, XState>,
        wire: Wire<'_>,
        state: &mut dyn Any,
        message: IMessage,
    ) -> Result<Option<Value>, String>;
}

impl<C: Default + 'static> AnyController for Controller<C> {
    fn instance(&self) -> Box<dyn Any> {
        Box::new(C::default())
    }

    fn hook(
        &mut self,
        ws: &mut WebSocket<'_, XState>,
        wire: Wire<'_>,
        state: &mut dyn Any,
        open: bool,
    ) {
        let hook = if open {
            &mut self.open
        } else {
            &mut self.close
        };
        let (Some(hook), Some(state)) = (hook, state.downcast_mut::<C>()) else {
            return;
        };
        let mut call = Call {
            ws,
            state,
            wire,
            topic: "",
        };
        hook(&mut call);
    }

    fn message(
        &mut self,
        ws: &mut WebSocket<'_, XState>,
        wire: Wire<'_>,
        state: &mut dyn Any,
        message: IMessage,
    ) -> Result<Option<Value>, String> {
        let Some(state) = state.downcast_mut::<C>() else {
            return Err("the controller's state is of another type".into());
        };
        let IMessage { t, c, d } = message;
        let mut call = Call {
            ws,
            state,
            wire,
            topic: &t,
        };
        if let Some((_, topic)) = self
            .topics
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(&t))
        {
            return topic(&mut call, d);
        }
        match &mut self.catch_all {
            Some(catch_all) => {
                let whole = IMessage::new(t.as_str(), c, d);
                catch_all(&mut call, whole)
            }
            None => Err(format!("unknown topic {t:?}")),
        }
    }
}
