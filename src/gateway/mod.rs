//! The gateway: routes whose handler is `'proxy'` end the client's
//! WebSocket (or HTTP request) here and carry it on to a downstream
//! service over a connection this same loop opens — Ocelot's WebSocket
//! proxying, with its routing and load balancing.
//!
//! This module is the sans-IO half: the routes (`route`: templates,
//! pool, TLS client, idle legs), which host a request goes to (`balance`),
//! the request on its way (`request`) and the head the downstream gets
//! (`forward`), a plain request's exchange (`exchange`), how the two legs
//! of a proxied WebSocket relay to each other (`relay`), and here the
//! gateway itself and its handler, which serves both legs' sessions. The
//! connections themselves are the reactor's and `conn`'s.

pub(crate) mod balance;
pub(crate) mod exchange;
pub(crate) mod forward;
pub(crate) mod relay;
pub(crate) mod request;
pub(crate) mod resolve;
pub(crate) mod route;

/// Ocelot's path templates: in `config`, whose loader checks every
/// template at start-up.
pub(crate) use crate::config::template;

use std::any::Any;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use slab::Slab;

use crate::config::{Balancer, Config, ConfigError, HandlerKind};
use crate::http::error::HttpError;
use crate::http::head::Head;
use crate::http::response::Response;
use crate::message::ConnId;
use crate::ws_api::{AnyHandler, Event, Link};

use self::balance::Pool;
use self::exchange::Fetch;
use self::forward::Forward;
use self::relay::{End, Pair, Relaying, Side};
use self::request::cookie;
pub(crate) use self::request::{
    offered_protocols, wants_websocket, write_switching, Proxied, Upgrade,
};
use self::resolve::Resolver;
pub(crate) use self::route::ProxyRoute;
use self::route::IDLE_PER_HOST;

/// The handler index proxied sessions carry: past every registered
/// handler, so `App::socket` finds the gateway only when the list misses.
pub(crate) const HANDLER: u32 = u32::MAX;

/// The largest frame a leg relays, whatever the gateway's own limit:
/// Ocelot too re-frames at its buffer's size. A message larger goes in
/// fragments, so it fits any peer whose `maxFrame` is at least this (a
/// browser's 131,000-byte fragments do not reach a wisp downstream with
/// the default 100K limit as one frame).
const RELAY_FRAME: usize = 64 * 1024;

/// What became of a downstream leg's connect and handshake.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The downstream answered 101 choosing `protocol`; the leg waits in
    /// its phase for the reactor to pair it with the client.
    Opened {
        leg: ConnId,
        protocol: Option<String>,
    },
    /// Refused, down or broken (502), or silent past `timeouts.connect` (504).
    Failed {
        upgrade: Box<Upgrade>,
        status: HttpError,
    },
    /// A plain request's leg connected (its request head written): the
    /// client may relay its body to it.
    Linked { leg: ConnId, client: ConnId },
    /// A plain request's leg failed before the client relayed anything to
    /// it: the next host (`failed`: this one is counted as failing), or
    /// `status` for the client.
    Refetch {
        fetch: Box<Fetch>,
        status: HttpError,
        failed: bool,
    },
    /// A plain request's response is complete: the client reads on (or closes).
    Answered { client: ConnId },
    /// A plain request's leg broke once the request was under way: the
    /// client gets `status`, or is closed if its response had begun.
    Broken { client: ConnId, status: HttpError },
    /// The client of a plain request (by its connection's serial) left or
    /// failed: its leg is closed, if it still fetches for it.
    Abandoned { leg: ConnId, client: u64 },
}

/// The gateway's routes and the legs it relays between. It is also the
/// handler of every proxied WebSocket, client and downstream legs alike.
#[derive(Default)]
pub(crate) struct Gateway {
    pub routes: Vec<ProxyRoute>,
    ends: Slab<End>,
    /// Upgrades waiting for their first (or next) downstream connection
    /// (boxed: each moves on into its leg's phase).
    #[allow(clippy::vec_box)]
    pub dials: Vec<Box<Upgrade>>,
    pub outcomes: Vec<Outcome>,
    /// Plain requests waiting for their first (or next) downstream leg.
    #[allow(clippy::vec_box)]
    pub fetches: Vec<Box<Fetch>>,
    pub resolver: Resolver,
    /// The frame limit, masking keys and spare buffers of the relays.
    pub relaying: Relaying,
}

impl Gateway {
    /// The gateway for the config's proxy routes; `None` without any.
    pub fn new(config: &Config) -> Result<Option<Gateway>, ConfigError> {
        let mut gateway = None;
        for (i, route) in config.routes.iter().enumerate() {
            if route.handler == HandlerKind::Proxy {
                let name = format!("routes[{i}].proxy");
                let route = ProxyRoute::new(&name, route)?;
                let gateway = gateway.get_or_insert_with(|| Gateway::with_limit(config));
                gateway.add(route);
            }
        }
        Ok(gateway)
    }

    /// A gateway with no route yet, relaying within `config`'s frame limit.
    pub fn with_limit(config: &Config) -> Gateway {
        let own = usize::try_from(config.limits.max_frame).unwrap_or(usize::MAX);
        Gateway {
            relaying: Relaying::new(own.min(RELAY_FRAME)),
            ..Gateway::default()
        }
    }

    /// Adds a route; hosts given by name are resolved here (before the
    /// loop runs), then again off the loop.
    pub fn add(&mut self, route: ProxyRoute) {
        self.resolver.add_route(route.config.hosts.clone());
        self.routes.push(route);
    }

    /// The proxy route for a routing pattern.
    pub fn route_of(&self, pattern: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.pattern == pattern)
    }

    /// The downstream target for `head` on `route`: `None` when the path
    /// does not fit the route's upstream template (404).
    pub fn target(&self, route: usize, head: &Head<'_>) -> Option<String> {
        let r = self.routes.get(route)?;
        let captures = r.upstream.matches(head.path)?;
        r.downstream.render(&captures, head.query).ok()
    }

    /// The sticky-session key of a request on `route`: its cookie's value,
    /// or a new one the 101 sets (`CookieStickySessions` only).
    pub fn sticky(&self, route: usize, head: &Head<'_>) -> Option<(String, bool)> {
        let config = &self.routes.get(route)?.config;
        if config.balancer != Balancer::CookieStickySessions {
            return None;
        }
        Some(match cookie(head, &config.sticky.cookie) {
            Some(value) => (value.to_string(), false),
            None => (crate::entropy::token(), true),
        })
    }

    /// Files an upgrade for the reactor to dial.
    pub fn dial(&mut self, upgrade: Box<Upgrade>) {
        self.dials.push(upgrade);
    }

    /// Picks the next host for `req`, or `None` when none is left.
    pub fn pick(&mut self, req: &mut Proxied, now: Instant) -> Option<SocketAddr> {
        let sticky = req.sticky.as_ref().map(|(v, _)| v.as_str());
        let picked = self.pick_host(req.route, sticky, &mut req.tried, now);
        if let Some(&last) = req.tried.last() {
            req.host = last;
        }
        picked
    }

    /// The address of the next host of `route` not in `tried` (which it
    /// joins, last); a host that does not resolve counts as failed.
    fn pick_host(
        &mut self,
        route: usize,
        sticky: Option<&str>,
        tried: &mut Vec<usize>,
        now: Instant,
    ) -> Option<SocketAddr> {
        loop {
            let r = self.routes.get_mut(route)?;
            let host = r.pool.pick(now, sticky, tried)?;
            tried.push(host);
            match self.resolver.addr(route, host) {
                Some(addr) => return Some(addr),
                None => {
                    log::warn!("gateway: {} does not resolve", r.pool.host(host));
                    r.pool.failed(host, now);
                }
            }
        }
    }

    /// For a TLS downstream: the client configuration and the name the
    /// host's certificate must carry.
    #[cfg(feature = "tls")]
    pub fn tls_for(
        &self,
        route: usize,
        host: usize,
    ) -> Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )> {
        let route = self.routes.get(route)?;
        let config = route.tls.clone()?;
        let name = crate::tls::client::server_name(route.pool.host(host))?;
        Some((config, name))
    }

    /// Files a plain request for the reactor to send on.
    pub fn fetch(&mut self, fetch: Box<Fetch>) {
        self.fetches.push(fetch);
    }

    /// The request head for the host `fetch` is trying.
    pub fn fetch_request(&self, fetch: &Fetch, head: &Head<'_>, out: &mut Vec<u8>) {
        if let Some(fwd) = self.forward(&fetch.req) {
            forward::write_request(out, head, &fetch.req.target, &fwd);
        }
    }

    /// What the downstream request of `req` to the host it is trying
    /// carries besides its head.
    fn forward<'a>(&'a self, req: &'a Proxied) -> Option<Forward<'a>> {
        let route = self.routes.get(req.route)?;
        Some(Forward {
            peer: req.peer,
            tls: req.tls,
            request_id: &req.request_id,
            rules: &route.config.headers,
            host: route.pool.host(req.host),
        })
    }

    /// The most recently idle leg to `host` of `route`, out of the pool.
    pub fn take_idle(&mut self, route: usize, host: usize) -> Option<ConnId> {
        self.routes.get_mut(route)?.idle.get_mut(host)?.pop()
    }

    /// Keeps an idle leg for the next request to its host; false when the
    /// host has `IDLE_PER_HOST` already (the leg closes).
    pub fn park(&mut self, route: usize, host: usize, leg: ConnId) -> bool {
        let Some(idle) = self
            .routes
            .get_mut(route)
            .and_then(|r| r.idle.get_mut(host))
        else {
            return false;
        };
        if idle.len() >= IDLE_PER_HOST {
            return false;
        }
        idle.push(leg);
        true
    }

    /// An idle leg (by its connection's serial) closed or was taken: it
    /// leaves the pool.
    pub fn unpark(&mut self, route: usize, host: usize, serial: u64) {
        if let Some(idle) = self
            .routes
            .get_mut(route)
            .and_then(|r| r.idle.get_mut(host))
        {
            idle.retain(|l| l.serial != serial);
        }
    }

    /// A plain request's host answered: its breaker closes, a new sticky
    /// session stays with it.
    pub fn answered(&mut self, fetch: &Fetch) {
        if let Some(route) = self.routes.get_mut(fetch.req.route) {
            route.pool.succeeded(fetch.req.host);
            if let Some((value, _)) = &fetch.req.sticky {
                route.pool.stick(value, fetch.req.host, fetch.req.started);
            }
        }
    }

    /// The `Set-Cookie` value of a new sticky session for `fetch`'s response.
    pub fn sticky_cookie(&self, fetch: &Fetch) -> Option<String> {
        let (value, true) = fetch.req.sticky.as_ref()? else {
            return None;
        };
        let s = &self.routes.get(fetch.req.route)?.config.sticky;
        let secure = if fetch.req.tls { "; Secure" } else { "" };
        Some(format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            s.cookie,
            s.expiry.as_secs()
        ))
    }

    /// The pool of `route`, for the leg's accounting.
    pub fn pool_mut(&mut self, route: usize) -> Option<&mut Pool> {
        self.routes.get_mut(route).map(|r| &mut r.pool)
    }

    /// The request head for the host `upgrade` is trying, with `key`.
    pub fn request(&self, upgrade: &Upgrade, head: &Head<'_>, key: &str, out: &mut Vec<u8>) {
        if let Some(fwd) = self.forward(&upgrade.req) {
            forward::write_upgrade(out, head, &upgrade.req.target, key, &fwd);
        }
    }

    /// Pairs a client and its downstream leg: the states of their sessions
    /// (client's, downstream's) and what they share.
    pub fn pair(&mut self, upgrade: &Upgrade, leg: ConnId) -> (u32, u32, Rc<Pair>) {
        let shared = Rc::new(Pair::default());
        let end = |side, pair| End {
            side,
            pair,
            shared: Rc::clone(&shared),
            route: upgrade.req.route,
            host: upgrade.req.host,
            failed: false,
        };
        let client = self.ends.insert(end(Side::Client, leg));
        let downstream = self.ends.insert(end(Side::Downstream, upgrade.req.client));
        if let Some(route) = self.routes.get_mut(upgrade.req.route) {
            route.pool.succeeded(upgrade.req.host);
            if let Some((value, _)) = &upgrade.req.sticky {
                route
                    .pool
                    .stick(value, upgrade.req.host, upgrade.req.started);
            }
        }
        // Slab keys of a few billion legs are not a concern of a device.
        let key = |k: usize| u32::try_from(k).unwrap_or(u32::MAX - 1);
        (key(client), key(downstream), shared)
    }

    /// The leg with state `key`: its side and what it shares with its pair.
    pub fn end(&self, key: u32) -> Option<&End> {
        self.ends.get(key as usize)
    }

    /// A host failed to connect or answer.
    pub fn failed(&mut self, req: &Proxied, now: Instant) {
        if let Some(route) = self.routes.get_mut(req.route) {
            route.pool.failed(req.host, now);
            route.pool.closed(req.host);
        }
    }

    /// Per route and host: open connections, requests, failures, breaker.
    pub fn status(&self, now: Instant) -> Vec<crate::stats::DownstreamStats> {
        self.routes
            .iter()
            .flat_map(|r| r.pool.status(&r.pattern, now))
            .collect()
    }
}

impl AnyHandler for Gateway {
    fn upgrade(
        &mut self,
        _req: &crate::http::request::Request<'_>,
    ) -> Result<(u32, Option<String>), Response> {
        // Proxied upgrades are paired by the reactor, never through here.
        Err(Response::new(500))
    }

    fn streaming(&self) -> bool {
        false
    }

    /// The gateway relays frames as they are; its upgrades never pass the
    /// extension on (see `forward::write_upgrade`).
    fn compression(&self) -> bool {
        false
    }

    fn dispatch(&mut self, link: Link<'_>, event: Event<'_>) {
        let key = link.side.state as usize;
        let Some(end) = self.ends.get_mut(key) else {
            return;
        };
        match event {
            Event::Message(m) => end.relay(link.hub, m, &mut self.relaying),
            Event::Error(e) => {
                end.failed = true;
                if end.side == Side::Client {
                    end.client_failed(link.hub, e.close_code(), e.to_string());
                }
            }
            Event::Close(code, reason) => {
                let (code, reason) = end.passed_on(code, reason);
                link.hub.outbox.push(crate::hub::Delivery::Close {
                    to: end.pair,
                    code,
                    reason,
                });
                if end.side == Side::Downstream {
                    if let Some(route) = self.routes.get_mut(end.route) {
                        route.pool.closed(end.host);
                    }
                }
            }
            Event::Open | Event::Partial(_) | Event::Timer(_) | Event::Drain => {}
        }
    }

    fn state(&self, _key: u32) -> Option<&dyn Any> {
        None
    }

    fn release(&mut self, key: u32) {
        self.ends.try_remove(key as usize);
    }
}
