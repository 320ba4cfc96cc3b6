//! # wisp
//!
//! A small, fast, single-threaded HTTP/1.1 server for small devices: one
//! `mio` event loop serves a static site and your handlers on one port, with
//! every connection held in a few hundred bytes.
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
//! ## Stop it from another thread
//!
//! [`Server::handle`] returns a [`ServerHandle`] (`Clone + Send`) whose
//! [`ServerHandle::stop`] ends [`Server::run`]. Bind to port 0 and read the
//! real port with [`Server::local_addrs`] — that is how the tests run it.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod app;
pub mod config;
mod conn;
mod error;
mod files;
mod handler;
mod http;
mod output;
mod reactor;
mod routes;
mod server;
mod session;
mod timer;
mod upgrade;
mod ws;

pub use config::{Config, ConfigError};
pub use error::StartError;
pub use handler::{ConnId, Fragment, Handler, Message, SendStatus, WebSocket};
pub use http::error::HttpError;
pub use http::request::Request;
pub use http::response::Response;
pub use server::{Server, ServerHandle};
pub use ws::error::WsError;
