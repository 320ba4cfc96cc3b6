//! Altruist's portals: groups of gates (event handlers) declared relative to
//! a WebSocket transport path, several to a path, each with its own connect
//! and disconnect hooks. Built on [`Router`]: every path becomes one router
//! whose events are the gates of all the portals on that path, so packets
//! come in JSON or MessagePack ([`Codec`]) and are answered in their own.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::event_router::{Codec, Reply, Router};
use crate::message::Message;
use crate::server::Server;
use crate::ws::close_code::CloseCode;
use crate::ws_api::{Handler, WebSocket};

/// The key of Altruist's packet-type code, copied from a packet into its reply.
pub const MESSAGE_CODE: &str = "messageCode";

/// A gate with its packet type erased: it takes the packet, returns the reply.
type Gate<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, Value) -> Result<Option<Value>, String>>;
type OpenFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>)>;
type CloseFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, CloseCode, &str)>;
type PacketFn<S> = Box<dyn FnMut(&mut WebSocket<'_, S>, Codec)>;

/// Why a set of portals cannot be mounted: a start-up error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalError {
    /// Two portals on one path declare a gate of the same name: a packet
    /// could not say which one it is for.
    DuplicateGate {
        /// The full path the portals share (`/ws/game`).
        path: String,
        /// The gate's name.
        gate: String,
    },
    /// A transport or portal path that does not start with `/`.
    BadPath(String),
}

impl fmt::Display for PortalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortalError::DuplicateGate { path, gate } => {
                write!(f, "two portals on {path} declare the gate {gate:?}")
            }
            PortalError::BadPath(path) => write!(f, "portal path {path:?} must start with '/'"),
        }
    }
}

impl std::error::Error for PortalError {}

/// One portal: a path relative to the transport path, its gates, and its
/// connect/disconnect hooks (Altruist's `OnConnectedAsync` and
/// `OnDisconnectedAsync`).
///
/// A gate is an event: a packet whose `"event"` names it is deserialised
/// into the gate's type and the gate's answer goes back to the sender, as
/// with [`Router::on`]. A reply that is an object gets the packet's
/// `"messageCode"` unless it set one itself.
///
/// ```
/// use serde::Deserialize;
/// use serde_json::json;
/// use wisp::Portal;
///
/// #[derive(Deserialize)]
/// struct Move {
///     x: i32,
///     y: i32,
/// }
///
/// // {"event":"move","x":1,"y":2,"messageCode":9}  →  {"event":"moved","x":1,"y":2,"messageCode":9}
/// let game: Portal = Portal::new("/game")
///     .gate("move", |_ws, m: Move| json!({ "event": "moved", "x": m.x, "y": m.y }))
///     .on_open(|ws| {
///         ws.send_json(&json!({ "event": "welcome" }));
///     });
/// assert_eq!(format!("{game:?}"), r#"Portal { path: "/game", gates: ["move"], open: true, close: false, packet: false }"#);
/// ```
pub struct Portal<S = ()> {
    path: String,
    gates: Vec<(String, Gate<S>)>,
    open: Option<OpenFn<S>>,
    close: Option<CloseFn<S>>,
    packet: Option<PacketFn<S>>,
}

impl<S: 'static> Portal<S> {
    /// A portal at `path` under the transport path (`/game` under `/ws` is
    /// `/ws/game`; `/` is the transport path itself), with no gates yet.
    pub fn new(path: impl Into<String>) -> Self {
        Portal {
            path: path.into(),
            gates: Vec::new(),
            open: None,
            close: None,
            packet: None,
        }
    }

    /// Declares the gate `name`: packets whose event is `name` are
    /// deserialised into `T` and handed to `handler`, whose answer is sent
    /// back ([`Reply`]) with the packet's `messageCode`. Take a
    /// [`serde_json::Value`] to see the packet as it came.
    pub fn gate<T, R, F>(mut self, name: impl Into<String>, mut handler: F) -> Self
    where
        T: DeserializeOwned,
        R: Reply,
        F: FnMut(&mut WebSocket<'_, S>, T) -> R + 'static,
    {
        let name = name.into();
        let label = name.clone(); // for the error text
        let gate: Gate<S> = Box::new(move |ws, packet| {
            let typed = T::deserialize(&packet).map_err(|e| format!("{label}: {e}"))?;
            handler(ws, typed).into_reply()
        });
        self.gates.push((name, gate));
        self
    }

    /// Calls `hook` when a connection opens on this portal's path, after the
    /// hooks of the portals declared before it.
    pub fn on_open<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>) + 'static,
    {
        self.open = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the close code and reason when a connection on this
    /// portal's path ends, after the hooks of the portals declared before it.
    pub fn on_close<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>, CloseCode, &str) + 'static,
    {
        self.close = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the codec of every packet that arrives on this
    /// portal's path, before it is dispatched: a connection that speaks
    /// MessagePack can be sent MessagePack by others (keep it in the state).
    pub fn on_packet<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&mut WebSocket<'_, S>, Codec) + 'static,
    {
        self.packet = Some(Box::new(hook));
        self
    }
}

impl<S> fmt::Debug for Portal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gates: Vec<&str> = self.gates.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Portal")
            .field("path", &self.path)
            .field("gates", &gates)
            .field("open", &self.open.is_some())
            .field("close", &self.close.is_some())
            .field("packet", &self.packet.is_some())
            .finish()
    }
}

/// The [`Handler`] of one full path: a [`Router`] with the gates of every
/// portal there, and their packet hooks ([`Portal::on_packet`]).
pub struct PortalPath<S = ()> {
    router: Router<S>,
    packet: Vec<PacketFn<S>>,
}

impl<S: Default + 'static> Handler for PortalPath<S> {
    type State = S;

    fn on_open(&mut self, ws: &mut WebSocket<'_, S>) {
        Handler::on_open(&mut self.router, ws);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, S>, msg: Message<'_>) {
        let codec = match msg {
            Message::Text(_) => Codec::Json,
            Message::Binary(_) => Codec::MessagePack,
        };
        self.packet.iter_mut().for_each(|hook| hook(ws, codec));
        Handler::on_message(&mut self.router, ws, msg);
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, S>, code: CloseCode, reason: &str) {
        Handler::on_close(&mut self.router, ws, code, reason);
    }
}

impl<S> fmt::Debug for PortalPath<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalPath")
            .field("router", &self.router)
            .field("packet_hooks", &self.packet.len())
            .finish()
    }
}

/// The portals under one WebSocket transport path (Altruist's
/// `websocket.path`), mounted on a [`Server`] together.
///
/// Portals that share a full path share its connections: one [`Router`]
/// serves that path with the gates of all of them, and every portal's
/// `on_open` (then `on_close`) hook runs for each connection, in the order
/// the portals were declared. A gate name declared twice on one path is
/// refused when the portals are mounted ([`PortalError::DuplicateGate`]).
/// `S` is the per-connection state, shared by the portals of a path.
///
/// ```no_run
/// use serde_json::{json, Value};
/// use wisp::{Config, Portal, Portals, Server};
///
/// let config = Config::parse(
///     "{ web: { routes: [ { match: '/ws/', handler: 'action' } ], webSockets: { waitingRoom: 'lobby' } } }",
///     ".".as_ref(),
/// )?;
/// let mut server = Server::bind(config)?;
/// // `Portals` is `Portals<()>`: no per-connection state.
/// let portals: Portals = Portals::new("/ws")
///     .portal(Portal::new("/game").gate("handshake", |ws, _: Value| {
///         json!({ "event": "handshake", "clientId": ws.id().to_string() })
///     }))
///     .portal(Portal::new("/game").on_open(|ws| {
///         ws.send_json(&json!({ "event": "welcome" }));
///     }));
/// portals.mount(&mut server)?; // ws://host/ws/game
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Portals<S = ()> {
    transport: String,
    codec: Option<Codec>,
    portals: Vec<Portal<S>>,
}

impl<S: Default + 'static> Portals<S> {
    /// No portals yet, under the transport path `transport` (`/ws`).
    pub fn new(transport: impl Into<String>) -> Self {
        Portals {
            transport: transport.into(),
            codec: None,
            portals: Vec::new(),
        }
    }

    /// Reads and answers packets in `codec` only (Altruist's
    /// `codec.provider: json | msgpack`; see [`Router::codec`]). Without
    /// it, both are read and each packet is answered in its own.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Adds a portal; its hooks run after those of the portals added before.
    pub fn portal(mut self, portal: Portal<S>) -> Self {
        self.portals.push(portal);
        self
    }

    /// One handler per full path, in the order the paths were first declared.
    pub fn into_paths(self) -> Result<Vec<(String, PortalPath<S>)>, PortalError> {
        let base = self.transport.trim_end_matches('/');
        if !self.transport.starts_with('/') {
            return Err(PortalError::BadPath(self.transport));
        }
        let mut paths: Vec<(String, Vec<Portal<S>>)> = Vec::new();
        for portal in self.portals {
            let path = full_path(base, &portal.path)?;
            match paths.iter_mut().find(|(p, _)| *p == path) {
                Some((_, group)) => group.push(portal),
                None => paths.push((path, vec![portal])),
            }
        }
        paths
            .into_iter()
            .map(|(path, group)| {
                let handler = path_handler(&path, group, self.codec)?;
                Ok((path, handler))
            })
            .collect()
    }

    /// Registers every path's handler on `server` ([`Server::websocket`]).
    pub fn mount(self, server: &mut Server) -> Result<(), PortalError> {
        for (path, handler) in self.into_paths()? {
            server.websocket(&path, handler);
        }
        Ok(())
    }
}

impl<S> fmt::Debug for Portals<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Portals")
            .field("transport", &self.transport)
            .field("codec", &self.codec)
            .field("portals", &self.portals)
            .finish()
    }
}

/// `/ws` + `/game` = `/ws/game`; `/ws` + `/` (or ``) = `/ws`.
fn full_path(base: &str, portal: &str) -> Result<String, PortalError> {
    if !(portal.is_empty() || portal.starts_with('/')) {
        return Err(PortalError::BadPath(portal.to_string()));
    }
    let path = format!("{base}{}", portal.trim_end_matches('/'));
    Ok(if path.is_empty() { "/".into() } else { path })
}

/// The handler of one path: the gates of all its portals, their hooks chained.
fn path_handler<S: Default + 'static>(
    path: &str,
    group: Vec<Portal<S>>,
    codec: Option<Codec>,
) -> Result<PortalPath<S>, PortalError> {
    // The packet's messageCode goes into replies, acks and error events alike.
    let mut router = Router::<S>::default().carry(MESSAGE_CODE);
    if let Some(codec) = codec {
        router = router.codec(codec);
    }
    let mut packet = Vec::new();
    let mut opens = Vec::new();
    let mut closes = Vec::new();
    let mut seen = HashMap::new();
    for portal in group {
        for (name, mut gate) in portal.gates {
            if seen.insert(name.clone(), ()).is_some() {
                let path = path.to_string();
                return Err(PortalError::DuplicateGate { path, gate: name });
            }
            router = router.on(name, move |ws, packet: Value| gate(ws, packet));
        }
        opens.extend(portal.open);
        closes.extend(portal.close);
        packet.extend(portal.packet);
    }
    if !opens.is_empty() {
        router = router.on_open(move |ws| opens.iter_mut().for_each(|hook| hook(ws)));
    }
    if !closes.is_empty() {
        router = router.on_close(move |ws, code, reason| {
            closes.iter_mut().for_each(|hook| hook(ws, code, reason));
        });
    }
    Ok(PortalPath { router, packet })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_under_the_transport() {
        assert_eq!(full_path("/ws", "/game"), Ok("/ws/game".into()));
        assert_eq!(full_path("/ws", "/"), Ok("/ws".into()));
        assert_eq!(full_path("/ws", ""), Ok("/ws".into()));
        assert_eq!(full_path("", "/chat/"), Ok("/chat".into()));
        assert_eq!(full_path("", ""), Ok("/".into()));
        assert_eq!(
            full_path("/ws", "game"),
            Err(PortalError::BadPath("game".into()))
        );
    }

    #[test]
    fn a_gate_twice_on_one_path_is_refused_but_not_on_two() {
        let ping = |_: &mut WebSocket<'_, ()>, _: Value| ();
        let twice = Portals::<()>::new("/ws")
            .portal(Portal::new("/a").gate("ping", ping))
            .portal(Portal::new("/a/").gate("ping", ping))
            .into_paths();
        let err = twice.map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "two portals on /ws/a declare the gate \"ping\""
        );
        let apart = Portals::<()>::new("/ws/")
            .portal(Portal::new("/a").gate("ping", ping))
            .portal(Portal::new("/b").gate("ping", ping))
            .portal(Portal::new("/a").gate("pong", ping))
            .into_paths()
            .unwrap();
        let paths: Vec<&str> = apart.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/ws/a", "/ws/b"]);
        assert!(format!("{:?}", apart[0].1).contains(r#"events: ["ping", "pong"]"#));
        let bad = Portals::<()>::new("ws").into_paths().map(|_| ());
        assert_eq!(bad, Err(PortalError::BadPath("ws".into())));
    }
}
