//! # wisp
//!
//! A small, fast, single-threaded HTTP/1.1 and WebSocket server for small
//! devices: one `mio` event loop serves a static site, your handlers and your
//! WebSockets on one port, with every connection held in a few hundred bytes.
//!
//! ## Serve a folder
//!
//! The shipped binary does this from `web.json5` (`cargo run --release`). In
//! code, bind a [`Server`] to a [`Config`] and run it:
//!
//! ```no_run
//! use wisp::{Config, Server};
//!
//! let mut config = Config::default();          // serves ./site on 127.0.0.1:8080
//! config.documents = "public".into();
//! Server::bind(config)?.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every default is documented on [`Config`]; [`Config::load`] reads the same
//! settings from a `web.json5` file, with Ioto's keys and value syntax
//! (`'100K'`, `'5 secs'`, `'never'`).
//!
//! ## Write a handler
//!
//! Paths on an `action` route go to handlers you register. A handler gets the
//! [`Request`] (method, path, query, headers, body, peer) and returns a
//! [`Response`]. It runs on the server thread, so it must not block.
//!
//! ```no_run
//! use wisp::{Config, Response, Server};
//!
//! let config = Config::parse(
//!     "{ web: { routes: [ { match: '/api/', handler: 'action' }, { match: '' } ] } }",
//!     ".".as_ref(),
//! )?;
//! let mut server = Server::bind(config)?;
//! let mut hits = 0u64;
//! server.action("/api/hits", move |req| {
//!     hits += 1;
//!     Response::json(&serde_json::json!({ "hits": hits, "from": req.peer_addr().to_string() }))
//! });
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A body is gathered up to `limits.body` before the handler runs. Larger
//! ones, up to `limits.upload`, stream: [`Server::action_streaming`] hands
//! a [`BodyStream`] each piece as it is read, and
//! [`Server::action_with_uploads`] writes the files of a
//! `multipart/form-data` upload into `upload.dir` and lists them in
//! [`Request::uploads`] ([`UploadedFile`]), removed after the handler
//! unless it keeps them.
//!
//! ## Speak WebSocket
//!
//! A [`Handler`] receives Ioto's events — open, message, partial message,
//! error, close — for every WebSocket on its path, with a [`WebSocket`] to
//! answer through and typed per-connection state. Messages arrive whole and
//! borrowed ([`Message::Text`] / [`Message::Binary`]); a streaming handler gets
//! each piece as it arrives instead. Protocol violations are answered with
//! the RFC 6455 close code ([`WsError::close_code`]).
//!
//! ```no_run
//! use wisp::{Config, Handler, Message, Server, WebSocket};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
//!         ws.send(msg);
//!     }
//! }
//!
//! let config = Config::parse("{ web: { routes: [ { match: '/ws/', handler: 'action' } ] } }", ".".as_ref())?;
//! let mut server = Server::bind(config)?;
//! server.websocket("/ws/echo", Echo);
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Reach the other connections
//!
//! Inside a callback the [`WebSocket`] also reaches every other connection
//! by [`ConnId`]: [`WebSocket::send_to`], [`WebSocket::broadcast`], rooms
//! ([`WebSocket::join`], [`WebSocket::publish`]) whose frames are encoded
//! once and shared by every recipient, timers ([`WebSocket::set_timer`]) and
//! the whole [`Hub`]. [`Handler::on_upgrade`] decides on the handshake
//! (authentication, subprotocol, initial state), [`Router`] dispatches
//! JSON and MessagePack events to typed closures, and [`XSockets`] speaks
//! XSockets' `{t, c, d}` to [`Controller`]s.
//!
//! ## Compress
//!
//! `webSockets: { compression: true }` in `web.json5` (or
//! [`config::Compression`] in code) accepts the permessage-deflate offer
//! every browser makes. Handlers see messages as they were sent and send as
//! before: the server inflates and compresses, with one shared compressor
//! for every connection, and compresses a broadcast once for all its
//! recipients. [`Handler::compression`] declines it for one handler and
//! [`WebSocket::send_uncompressed`] for one message.
//!
//! ## Scale out
//!
//! `web.workers: 4` (or `'auto'`) runs one loop per core, each with its own
//! listener on the same port (`SO_REUSEPORT`), connections, handlers and
//! rooms: start them with [`Workers::start`], whose setup closure registers
//! the handlers on every worker (so a handler's fields are per worker; share
//! state through an `Arc`). Sends by [`ConnId`], broadcasts, room publishes
//! and [`Hub::room_size`] span the workers through bounded queues.
//! `web.backplane: { redis: 'redis://…', node: 'device-a' }` joins several
//! processes over Redis pub/sub, at most once per message; see
//! [`config::Backplane`].
//!
//! ```no_run
//! use wisp::{Config, Workers};
//! # struct Chat;
//! # impl wisp::Handler for Chat { type State = (); }
//!
//! let mut config = Config::load("web.json5".as_ref())?;
//! config.workers = 4;
//! let workers = Workers::start(config, |server| {
//!     server.websocket("/ws/chat", Chat);
//! })?;
//! workers.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Stop it from another thread
//!
//! [`Server::handle`] returns a [`ServerHandle`] (`Clone + Send`) that sends,
//! publishes and runs closures on the loop from any thread, and whose
//! [`ServerHandle::stop`] ends [`Server::run`]. Bind to port 0 and read the
//! real port with [`Server::local_addrs`] — that is how the tests run it.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod access;
mod app;
mod auth;
mod backplane;
mod cluster;
pub mod config;
mod conn;
mod deadlines;
mod entropy;
mod error;
mod event_router;
mod events;
mod fanout;
mod files;
mod gateway;
// Entry points for fuzz/ (its Cargo.toml turns the feature on) and the
// property tests; not part of the API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod http;
mod hub;
mod logger;
mod message;
mod output;
mod portals;
mod rate;
mod reactor;
mod route_table;
mod server;
mod session;
mod stats;
#[cfg(test)]
mod testing;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod turn;
mod upgrade;
mod upload_api;
mod user_timers;
mod workers;
mod ws;
mod ws_api;

pub use auth::password::hash as hash_password;
pub use cluster::StatsBoard;
pub use config::{Config, ConfigError};
pub use error::StartError;
pub use event_router::{
    Call, Codec, Controller, IMessage, Reply, Router, Translator, XSockets, XState,
};
pub use events::{Event, EventSource, EventStream};
pub use http::error::HttpError;
pub use http::request::{BodyStream, Request};
pub use http::response::Response;
pub use hub::{Hub, RoomError};
pub use logger::init_logging;
pub use message::{ConnId, Fragment, Message, ParseConnIdError, PeerCert, SendStatus};
pub use portals::{Portal, PortalError, PortalPath, Portals, MESSAGE_CODE};
pub use server::{Outgoing, Server, ServerHandle};
pub use stats::{BackplaneStats, ConnStats, DownstreamStats, LimitHits, Stats};
#[cfg(feature = "tls")]
pub use tls::TlsError;
pub use upload_api::UploadedFile;
pub use user_timers::TimerId;
pub use workers::Workers;
pub use ws::close_code::CloseCode;
pub use ws::error::WsError;
pub use ws_api::{Handler, Upgrade, WebSocket};
