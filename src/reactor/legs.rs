//! The reactor's half of the gateway: opening a downstream leg for each
//! proxied upgrade, pairing it with its client once the downstream
//! switched, and trying the next host — or answering the client 502/504 —
//! when it did not.

use std::mem;
use std::rc::Rc;

use mio::{Interest, Token};

use super::Reactor;
use crate::conn::{live, log_proxied, Conn};
use crate::gateway::exchange::Fetch;
use crate::gateway::{self, Outcome, Upgrade, HANDLER};
use crate::http::head::{header_storage, parse_head, HeadLimits};
use crate::message::ConnId;
use crate::session::Session;
use crate::transport::Transport;
use crate::ws_api::{ConnInfo, Extra};

impl Reactor {
    /// Dials what the turn's upgrades asked for and settles what the
    /// dials came to, until neither leaves more to do.
    #[inline(never)]
    pub(super) fn gateway_work(&mut self) {
        loop {
            let Some(gateway) = self.app.gateway.as_mut() else {
                return;
            };
            if gateway.dials.is_empty() && gateway.outcomes.is_empty() && gateway.fetches.is_empty()
            {
                return;
            }
            let dials = mem::take(&mut gateway.dials);
            let fetches = mem::take(&mut gateway.fetches);
            let outcomes = mem::take(&mut gateway.outcomes);
            for upgrade in dials {
                self.dial(upgrade);
            }
            for fetch in fetches {
                self.fetch(fetch);
            }
            for outcome in outcomes {
                match outcome {
                    Outcome::Opened { leg, protocol } => self.pair(leg, protocol),
                    Outcome::Failed { upgrade, status } => {
                        if let Some(gateway) = self.app.gateway.as_mut() {
                            gateway.failed(&upgrade.req, self.turn.now);
                        }
                        let mut upgrade = upgrade;
                        upgrade.req.status = status;
                        self.dial(upgrade);
                    }
                    outcome => self.settle(outcome),
                }
            }
        }
    }

    /// Opens a leg to the next host `upgrade` may try; with none left, the
    /// client gets the last failure's status.
    fn dial(&mut self, mut upgrade: Box<Upgrade>) {
        let now = self.turn.now;
        if live(&mut self.conns, upgrade.req.client).is_none() {
            return; // The client left while we dialed.
        }
        loop {
            let Some(gateway) = self.app.gateway.as_mut() else {
                return;
            };
            let Some(addr) = gateway.pick(&mut upgrade.req, now) else {
                return self.refuse_client(&upgrade);
            };
            let key = crate::entropy::ws_key();
            let mut request = Vec::new();
            {
                let mut storage = header_storage();
                let Ok(Some(head)) = parse_head(&upgrade.req.head, &mut storage, &self.app.limits)
                else {
                    return self.refuse_client(&upgrade);
                };
                gateway.request(&upgrade, &head, &key, &mut request);
            }
            let Some(transport) =
                self.connect_leg(addr, (upgrade.req.route, upgrade.req.host), now)
            else {
                continue;
            };
            self.next_serial += 1;
            let deadline = self.leg_deadline(now);
            let conn = Conn::dialing(
                transport,
                addr,
                self.next_serial,
                now,
                (upgrade, key, request),
                deadline,
            );
            self.insert_leg(conn);
            return;
        }
    }

    /// Sends a plain request on: over an idle leg to the host picked, else
    /// over a new connection; with no host left, the client gets the last
    /// failure's status.
    fn fetch(&mut self, mut fetch: Box<Fetch>) {
        let now = self.turn.now;
        if !live(&mut self.conns, fetch.req.client).is_some_and(|c| c.forwards()) {
            return; // The client left, or failed, meanwhile.
        }
        // The head was checked on arrival; its body is streamed, so no limit.
        let limits = HeadLimits {
            body: u64::MAX,
            ..self.app.limits
        };
        loop {
            let Some(gateway) = self.app.gateway.as_mut() else {
                return;
            };
            let Some(addr) = gateway.pick(&mut fetch.req, now) else {
                return self.refuse_fetch(&fetch);
            };
            let mut request = Vec::new();
            {
                let mut storage = header_storage();
                let Ok(Some(head)) = parse_head(&fetch.req.head, &mut storage, &limits) else {
                    return self.refuse_fetch(&fetch);
                };
                gateway.fetch_request(&fetch, &head, &mut request);
            }
            // An idle leg to that host first.
            while let Some(leg) = gateway.take_idle(fetch.req.route, fetch.req.host) {
                let Some(conn) = live(&mut self.conns, leg) else {
                    continue;
                };
                let client = fetch.req.client;
                let (route, host) = (fetch.req.route, fetch.req.host);
                match conn.reuse((fetch, &request), now) {
                    Ok(()) => {
                        if let Some(pool) =
                            self.app.gateway.as_mut().and_then(|g| g.pool_mut(route))
                        {
                            pool.requested(host);
                        }
                        self.rearm(leg.key);
                        self.fanout.wake(leg.key);
                        self.settle(Outcome::Linked { leg, client });
                        return;
                    }
                    Err(back) => fetch = back,
                }
            }
            let Some(transport) = self.connect_leg(addr, (fetch.req.route, fetch.req.host), now)
            else {
                continue;
            };
            self.next_serial += 1;
            let deadline = self.leg_deadline(now);
            let conn = Conn::fetching(
                transport,
                addr,
                self.next_serial,
                now,
                (fetch, request),
                deadline,
            );
            self.insert_leg(conn);
            return;
        }
    }

    /// No downstream took a plain request: the client is answered and closed.
    fn refuse_fetch(&mut self, fetch: &Fetch) {
        let tried = !fetch.req.tried.is_empty();
        log_proxied(&self.app, &fetch.req, fetch.req.status.status(), tried);
        if let Some(client) = live(&mut self.conns, fetch.req.client) {
            client.exchange_broken(&mut self.app, fetch.req.status);
            self.fanout.wake(fetch.req.client.key);
        }
    }

    /// What a plain request's legs came to.
    fn settle(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Linked { leg, client } => {
                if live(&mut self.conns, client).is_some_and(|c| c.link(leg)) {
                    self.fanout.wake(client.key);
                } else {
                    // The client left or failed meanwhile: the leg goes too.
                    self.abandon(leg, client.serial);
                }
            }
            Outcome::Refetch {
                mut fetch,
                status,
                failed,
            } => {
                if failed {
                    if let Some(pool) = self
                        .app
                        .gateway
                        .as_mut()
                        .and_then(|g| g.pool_mut(fetch.req.route))
                    {
                        pool.failed(fetch.req.host, self.turn.now);
                    }
                }
                fetch.req.status = status;
                self.fetch(fetch);
            }
            Outcome::Answered { client } => {
                if let Some(c) = live(&mut self.conns, client) {
                    c.exchange_over();
                    self.fanout.wake(client.key);
                }
            }
            Outcome::Broken { client, status } => {
                if let Some(c) = live(&mut self.conns, client) {
                    c.exchange_broken(&mut self.app, status);
                    self.fanout.wake(client.key);
                }
            }
            Outcome::Abandoned { leg, client } => self.abandon(leg, client),
            Outcome::Opened { .. } | Outcome::Failed { .. } => {}
        }
    }

    /// Closes a plain request's leg whose client (by serial) no longer
    /// waits for it; a leg done with that client's request is left alone.
    fn abandon(&mut self, leg: ConnId, client: u64) {
        if let Some(conn) = live(&mut self.conns, leg).filter(|c| c.fetches_for(client)) {
            conn.abandon();
            self.close(leg.key);
        }
    }

    /// Connects to `addr` for a leg to host `host` of route `route` and
    /// registers it under the slab's next key (`insert_leg` puts it there);
    /// `None`, with the host's failure counted, when that fails at once.
    fn connect_leg(
        &mut self,
        addr: std::net::SocketAddr,
        (route, host): (usize, usize),
        now: std::time::Instant,
    ) -> Option<Transport> {
        let gateway = self.app.gateway.as_mut()?;
        let transport = match mio::net::TcpStream::connect(addr) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                leg_transport(gateway, (route, host), stream, now)
            }
            Err(e) => {
                log::info!("gateway: cannot connect to {addr}: {e}");
                None
            }
        };
        let slot = self.conns.vacant_key();
        let registered = transport.and_then(|mut t| {
            self.poll
                .registry()
                .register(&mut t, Token(slot), Interest::READABLE | Interest::WRITABLE)
                .ok()
                .map(|()| t)
        });
        let pool = gateway.pool_mut(route)?;
        match registered {
            Some(_) => pool.opened(host),
            None => pool.failed(host, now),
        }
        registered
    }

    /// When a new leg gives up connecting (and answering): `timeouts.connect`.
    fn leg_deadline(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        self.app
            .config
            .timeouts
            .connect
            .and_then(|d| now.checked_add(d))
    }

    /// Puts a leg `connect_leg` registered into its slot.
    fn insert_leg(&mut self, conn: Conn) {
        let slot = self.conns.insert(conn);
        self.rearm(slot);
    }

    /// No downstream took the upgrade: the client is answered and closed.
    fn refuse_client(&mut self, upgrade: &Upgrade) {
        log_proxied(
            &self.app,
            &upgrade.req,
            upgrade.req.status.status(),
            !upgrade.req.tried.is_empty(),
        );
        if let Some(client) = live(&mut self.conns, upgrade.req.client) {
            client.gateway_refused(&mut self.app, upgrade.req.status);
            self.fanout.wake(upgrade.req.client.key);
        }
    }

    /// The downstream switched: both legs become sessions of the gateway's
    /// handler, the client gets its 101, and each reads on.
    fn pair(&mut self, leg: ConnId, protocol: Option<String>) {
        let Some(upgrade) = live(&mut self.conns, leg).and_then(Conn::take_answered) else {
            return;
        };
        let now = self.turn.now;
        let client_here = live(&mut self.conns, upgrade.req.client).is_some_and(|c| c.awaits());
        let client_limits = Rc::clone(self.app.plain_ws_limits());
        let Some(gateway) = self.app.gateway.as_mut() else {
            return;
        };
        if !client_here {
            // The client left meanwhile: the leg goes too (the downstream sees EOF).
            if let Some(route) = gateway.routes.get_mut(upgrade.req.route) {
                route.pool.closed(upgrade.req.host);
            }
            self.close(leg.key);
            return;
        }
        let (client_state, leg_state, _) = gateway.pair(&upgrade, leg);
        let config = &self.app.config;
        let info = |target: Box<str>| ConnInfo {
            handler: HANDLER,
            deflate: Default::default(),
            target: Rc::new(target),
            extra: Extra::boxed(None, None, None, protocol.as_deref()),
        };
        let mut client_session = Session::new(
            client_state,
            client_limits,
            info(upgrade.req.client_target.clone()),
            config,
            now,
        );
        client_session.set_tls(upgrade.req.tls);
        client_session.make_relay();
        let mut leg_session = Session::new(
            leg_state,
            Rc::clone(&self.app.downstream_limits),
            info(upgrade.req.target.as_str().into()),
            config,
            now,
        );
        leg_session.make_client();
        let mut head = Vec::new();
        let route = gateway.routes.get(upgrade.req.route);
        let sticky = route.map(|r| {
            let s = &r.config.sticky;
            (s.cookie.as_str(), s.expiry, upgrade.req.tls)
        });
        gateway::write_switching(
            &mut head,
            (&self.app.date.text, &config.headers),
            &upgrade,
            protocol.as_deref(),
            sticky,
        );
        log_proxied(&self.app, &upgrade.req, 101, true);
        if let Some(c) = live(&mut self.conns, upgrade.req.client) {
            c.join_pair(Box::new(client_session), &head);
        }
        if let Some(l) = live(&mut self.conns, leg) {
            l.join_pair(Box::new(leg_session), &[]);
        }
        self.fanout.wake(upgrade.req.client.key);
        self.fanout.wake(leg.key);
    }
}

/// The transport of a leg to a downstream: TLS for `wss`/`https` routes.
fn leg_transport(
    gateway: &crate::gateway::Gateway,
    (route, host): (usize, usize),
    stream: mio::net::TcpStream,
    now: std::time::Instant,
) -> Option<Transport> {
    #[cfg(feature = "tls")]
    if let Some((config, name)) = gateway.tls_for(route, host) {
        let conn = crate::transport::tls::TlsConn::client(stream, config, name, now).ok()?;
        return Some(Transport::Tls(Box::new(conn)));
    }
    let _ = (gateway, route, host, now);
    Some(Transport::Plain(stream))
}
