//! XSockets mode: a [`Handler`] for `{t, c, d}` messages, dispatched on
//! `(c, t)` to [`Controller`]s, with translators for protocols of their own.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde_json::Value;

use super::controller::{AnyController, Controller, Wire, XState};
use super::translator::{Format, IMessage, Translator, Translators, Unreadable};
use crate::message::{ConnId, Message};
use crate::ws::close_code::CloseCode;
use crate::ws_api::{Handler, WebSocket};

/// The topic of the messages that report an error to the client.
const ERROR: &str = "error";

/// XSockets' controllers on a wisp path: a [`Handler`] for `IMessage`s
/// (`{t: 'foo', c: 'bar', d: …}`), each dispatched to the topic `t` of the
/// [`Controller`] `c` with `d` bound to the topic's parameter type.
///
/// Mount it per path with [`Server::websocket`](crate::Server::websocket),
/// or per subprotocol with
/// [`Server::websocket_protocol`](crate::Server::websocket_protocol) (e.g.
/// `XSocketsNET`, beside a plain handler for clients that offer none). It is
/// a cheap handle: register a clone for each subprotocol it speaks, and the
/// clones share their controllers and connections, so
/// [`Call::invoke_to_all`](crate::Call::invoke_to_all) reaches them all.
///
/// Messages are JSON in text frames or MessagePack in binary ones, and
/// answers go out in the codec the connection last spoke; a connection
/// whose subprotocol has a [`Translator`] reads and writes through it.
///
/// ```no_run
/// use serde::Deserialize;
/// use serde_json::json;
/// use wisp::{Config, Controller, Server, XSockets};
///
/// #[derive(Deserialize)]
/// #[allow(non_snake_case)]
/// struct Person { name: String, Age: u32 }
///
/// let xsockets = XSockets::new().controller(
///     "bar",
///     Controller::new().on("foo", |_call, p: Person| json!(format!("{} is {}", p.name, p.Age))),
/// );
/// let config = Config::parse("{ web: { routes: [ { match: '/xsockets', handler: 'action' } ] } }", ".".as_ref())?;
/// let mut server = Server::bind(config)?;
/// server.websocket_protocol("/xsockets", "XSocketsNET", xsockets.clone());
/// server.websocket("/xsockets", xsockets);
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A message that is not an IMessage — not JSON or MessagePack, not an
/// object, `t` or `c` missing or not a string, or refused by the
/// connection's translator — closes the connection with 1007 (as XSockets
/// fails it); [`XSockets::close_on_unreadable`]`(false)` answers it with an
/// error message instead. An unknown controller or topic, a `d` that does
/// not fit the topic's type, or a closure's `Err` is answered with
/// `{t: "error", c: controller, d: "…"}` and the connection stays open.
#[derive(Clone, Default)]
pub struct XSockets {
    core: Rc<RefCell<Core>>,
}

/// What the clones of one [`XSockets`] share.
struct Core {
    controllers: Vec<(String, Box<dyn AnyController>)>,
    translators: Translators,
    /// Per controller (same index), who has it open and in which format.
    members: Vec<HashMap<ConnId, Format>>,
    close_on_unreadable: bool,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            controllers: Vec::new(),
            translators: Translators::default(),
            members: Vec::new(),
            close_on_unreadable: true,
        }
    }
}

impl XSockets {
    /// A handler with no controllers, closing on unreadable messages.
    pub fn new() -> Self {
        XSockets::default()
    }

    /// Adds the controller `name` (matched without regard to ASCII case);
    /// adding a name again replaces it.
    pub fn controller<C: Default + 'static>(
        self,
        name: impl Into<String>,
        controller: Controller<C>,
    ) -> Self {
        {
            let mut core = self.core.borrow_mut();
            let name = name.into();
            let boxed: Box<dyn AnyController> = Box::new(controller);
            match core
                .controllers
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                Some(i) => core.controllers[i] = (name, boxed),
                None => {
                    core.controllers.push((name, boxed));
                    core.members.push(HashMap::new());
                }
            }
        }
        self
    }

    /// Reads and writes the frames of connections that negotiated
    /// `protocol` through `translator` (XSockets' `OnIncomingFrame` and
    /// `OnOutgoingFrame`).
    pub fn translator(self, protocol: impl Into<String>, translator: Translator) -> Self {
        self.core
            .borrow_mut()
            .translators
            .add(protocol.into(), translator);
        self
    }

    /// With `false`, a message that is not an IMessage is answered with
    /// `{t: "error", c: "", d: "…"}` and the connection stays open. On by
    /// default: XSockets closes, with 1007 (1003 for a kind of frame the
    /// codec does not read).
    pub fn close_on_unreadable(self, close: bool) -> Self {
        self.core.borrow_mut().close_on_unreadable = close;
        self
    }
}

impl Core {
    fn message(&mut self, ws: &mut WebSocket<'_, XState>, frame: Message<'_>) {
        let format = ws.state().format;
        let message = match self.translators.read(format, frame) {
            Ok((message, format)) => {
                ws.state_mut().format = format;
                message
            }
            Err(e) => return self.unreadable(ws, format, e),
        };
        let Some(index) = self
            .controllers
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case(&message.c))
        else {
            let why = format!("unknown controller {:?}", message.c);
            return self.error(ws, &message.c, &why);
        };
        let mut instance = self.instance(ws, index);
        let Core {
            controllers,
            translators,
            members,
            ..
        } = self;
        let (Some((name, controller)), Some(members)) =
            (controllers.get_mut(index), members.get(index))
        else {
            return;
        };
        let wire = Wire {
            controller: name,
            translators,
            members,
        };
        let topic = message.t.clone();
        let outcome = controller.message(ws, wire, &mut *instance, message);
        ws.state_mut().instances.push((index, instance));
        let answer = match outcome {
            Ok(None) => return,
            Ok(Some(d)) => IMessage::new(topic, name.as_str(), d),
            Err(why) => IMessage::new(ERROR, name.as_str(), Value::from(why)),
        };
        send(ws, translators, &answer);
    }

    /// The connection's instance of controller `index`, taken out of its
    /// state for the call, or a new one: the connection joins the
    /// controller's members and its open hook runs.
    fn instance(&mut self, ws: &mut WebSocket<'_, XState>, index: usize) -> Box<dyn Any> {
        let (id, format) = (ws.id(), ws.state().format);
        let instances = &mut ws.state_mut().instances;
        if let Some(at) = instances.iter().position(|(i, _)| *i == index) {
            let (_, instance) = instances.swap_remove(at);
            if let Some(members) = self.members.get_mut(index) {
                members.insert(id, format);
            }
            return instance;
        }
        let Some((name, controller)) = self.controllers.get_mut(index) else {
            return Box::new(());
        };
        let mut instance = controller.instance();
        let Some(members) = self.members.get_mut(index) else {
            return instance;
        };
        members.insert(id, format);
        let wire = Wire {
            controller: name,
            translators: &self.translators,
            members,
        };
        controller.hook(ws, wire, &mut *instance, true);
        instance
    }

    /// Closes on, or answers, a frame that is not an IMessage.
    fn unreadable(&self, ws: &mut WebSocket<'_, XState>, format: Format, e: Unreadable) {
        if self.close_on_unreadable {
            ws.close(e.code, &e.why);
            return;
        }
        let answer = IMessage::new(ERROR, "", Value::from(e.why));
        if let Some(frame) = self.translators.write(format, &answer) {
            ws.send(frame.as_message());
        }
    }

    fn error(&self, ws: &mut WebSocket<'_, XState>, controller: &str, why: &str) {
        send(
            ws,
            &self.translators,
            &IMessage::new(ERROR, controller, Value::from(why)),
        );
    }

    /// The connection is gone: each controller it opened runs its close
    /// hook and forgets it.
    fn close(&mut self, ws: &mut WebSocket<'_, XState>) {
        let instances = std::mem::take(&mut ws.state_mut().instances);
        let id = ws.id();
        for (index, mut instance) in instances {
            let (Some((name, controller)), Some(members)) =
                (self.controllers.get_mut(index), self.members.get_mut(index))
            else {
                continue;
            };
            members.remove(&id);
            let wire = Wire {
                controller: name,
                translators: &self.translators,
                members,
            };
            controller.hook(ws, wire, &mut *instance, false);
        }
    }
}

/// Sends `message` to this connection in its format.
fn send(ws: &mut WebSocket<'_, XState>, translators: &Translators, message: &IMessage) {
    if let Some(frame) = translators.write(ws.state().format, message) {
        ws.send(frame.as_message());
    }
}

impl Handler for XSockets {
    type State = XState;

    fn on_open(&mut self, ws: &mut WebSocket<'_, XState>) {
        let format = self.core.borrow().translators.format_for(ws.protocol());
        ws.state_mut().format = format;
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, XState>, msg: Message<'_>) {
        self.core.borrow_mut().message(ws, msg);
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, XState>, _code: CloseCode, _reason: &str) {
        self.core.borrow_mut().close(ws);
    }
}

impl fmt::Debug for XSockets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.borrow();
        let controllers: Vec<&str> = core.controllers.iter().map(|(n, _)| n.as_str()).collect();
        let translators: Vec<&str> = core.translators.protocols().collect();
        f.debug_struct("XSockets")
            .field("controllers", &controllers)
            .field("translators", &translators)
            .field("close_on_unreadable", &core.close_on_unreadable)
            .finish()
    }
}
