//! The gateway: a `'proxy'` route's requests and WebSockets passed on to
//! downstream hosts (Ocelot's routes), sans-IO parts first.
//!
//! `template` (Ocelot's path templates) lives in `config`, whose loader
//! checks every template at start-up; it is reached here as `gateway::template`.

// The reactor does not drive the gateway yet (lead).
#![allow(dead_code)]

pub(crate) mod balance;
pub(crate) mod forward;
#[allow(unused_imports)] // until the gateway matches paths (lead)
pub(crate) use crate::config::template;
