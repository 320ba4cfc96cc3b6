//! A connection's part in a proxied plain HTTP request: the client's
//! connection relaying its body to the downstream leg (`Forwarding`), the
//! leg connecting, reading the response and relaying it back (`Fetching`),
//! and the leg kept alive for the next request to its host (`Pooled`).
//!
//! Each side relays what it read to the other through the hub's outbox and
//! stops reading while the other holds `exchange::MARK` bytes of it; the
//! reactor (`reactor/legs.rs`) links the two, and settles what happened
//! once either side is done.

use super::{COUNTED, PROXIED, READ_CLOSED, READ_PAUSED};
use std::mem;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::proxy::log_proxied;
use super::{Conn, Ctx, Next, Phase};
use crate::app::App;
use crate::config::Timeouts;
use crate::deadlines::At;
use crate::gateway::exchange::{read_response, Exchange, Fetch, Reading, Reframe, Respond};
use crate::gateway::relay::Side;
use crate::gateway::Outcome;
use crate::http::error::HttpError;
use crate::http::head::Framing;
use crate::hub::Delivery;
use crate::message::ConnId;
use crate::transport::Transport;

/// How long an idle downstream leg is kept, at most (less with a shorter
/// `timeouts.inactivity`).
const IDLE_LEG: Duration = Duration::from_secs(60);

/// The client's side of a proxied plain request.
#[derive(Debug)]
pub(crate) struct Forwarding {
    exchange: Rc<Exchange>,
    /// The rest of the request body, re-framed for the leg; `None` once
    /// it has all been relayed (or there was none).
    body: Option<Reframe>,
    /// The downstream leg, once connected: body bytes wait until then.
    leg: Option<ConnId>,
}

/// A downstream leg of a proxied plain request.
#[derive(Debug)]
pub(crate) struct FetchLeg {
    fetch: Box<Fetch>,
    /// Connect by then (`timeouts.connect`).
    deadline: Option<Instant>,
    /// Connected, the request head written, the client told.
    linked: bool,
    /// Taken from the idle pool rather than connected for this request.
    reused: bool,
    /// Some response bytes came.
    answered: bool,
    /// The response body still to relay, once the head came.
    body: Option<Reframe>,
    /// The leg may carry another request once the response is complete.
    reusable: bool,
    /// What the client is told should the leg fail before its response: 502, or 504.
    status: HttpError,
    /// Closed by the reactor for the client's sake: not the host's failure.
    abandoned: bool,
}

impl FetchLeg {
    /// True while the leg must not read on: the client holds the mark.
    pub(super) fn paused(&self) -> bool {
        self.fetch.exchange.full_for(Side::Downstream)
    }
}

impl Conn {
    /// The client's request went to a proxy route: its body (framed as
    /// `framing`) goes to the leg once the reactor links one.
    pub(super) fn forwarding(&mut self, exchange: Rc<Exchange>, framing: Framing) {
        let body = (framing != Framing::None).then(|| Reframe::new(framing.into(), true));
        self.phase = Phase::Forwarding(Box::new(Forwarding {
            exchange,
            body,
            leg: None,
        }));
        self.set_flag(PROXIED, true);
    }

    /// True for a client whose proxied request is under way.
    pub fn forwards(&self) -> bool {
        matches!(self.phase, Phase::Forwarding(_))
    }

    /// The reactor linked the client to its leg: held body bytes go now.
    /// False when this is no longer a client waiting for a leg.
    pub fn link(&mut self, leg: ConnId) -> bool {
        let Phase::Forwarding(f) = &mut self.phase else {
            return false;
        };
        f.leg = Some(leg);
        // Input held while waiting is relayed at the next event.
        self.set_flag(READ_PAUSED, true);
        true
    }

    /// Relays the request body bytes at the front of `buf` to the leg;
    /// returns the bytes used.
    pub(super) fn on_forward_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        let Phase::Forwarding(f) = &mut self.phase else {
            return 0;
        };
        let (Some(leg), Some(body)) = (f.leg, f.body.as_mut()) else {
            return 0; // No leg yet, or the next request: held.
        };
        let mut frame = Vec::with_capacity(buf.len() + 16);
        match body.feed(buf, &mut frame) {
            Ok(progress) => {
                if progress.done {
                    f.body = None;
                    f.exchange.set_request_done();
                }
                relay(ctx, &f.exchange, (leg, Side::Downstream), frame);
                progress.consumed
            }
            Err(e) => {
                if let Some(g) = ctx.app.gateway.as_mut() {
                    g.outcomes.push(Outcome::Abandoned {
                        leg,
                        client: self.serial,
                    });
                }
                if f.exchange.response_started() {
                    self.phase = Phase::Closing { until: None };
                } else {
                    self.refuse(ctx, e);
                }
                self.set_flag(PROXIED, false);
                buf.len()
            }
        }
    }

    /// True while the client must not read on: no leg yet, the body
    /// relayed (what follows is the next request), or the leg full.
    pub(super) fn forward_paused(&self) -> bool {
        match &self.phase {
            Phase::Forwarding(f) => {
                f.leg.is_none() || f.body.is_none() || f.exchange.full_for(Side::Client)
            }
            _ => false,
        }
    }

    /// The response was relayed whole: the client reads its next request,
    /// or closes when the response said so.
    pub fn exchange_over(&mut self) {
        let Phase::Forwarding(f) = &self.phase else {
            return;
        };
        self.phase = if f.exchange.client_closes() || f.body.is_some() {
            Phase::Closing { until: None }
        } else {
            Phase::Head { started: None }
        };
        self.set_flag(PROXIED, false);
        self.set_flag(READ_PAUSED, true);
    }

    /// The leg failed: `err` when no response was begun, then close.
    pub fn exchange_broken(&mut self, app: &mut App, err: HttpError) {
        let Phase::Forwarding(f) = &self.phase else {
            return;
        };
        if !f.exchange.response_started() {
            log::debug!("{}: {} {err}", self.peer, err.status());
            app.refuse(err, self.output.tail());
        }
        self.phase = Phase::Closing { until: None };
        self.set_flag(PROXIED, false);
    }

    /// A downstream leg connecting to `peer` for `fetch`, its request head queued.
    pub fn fetching(
        transport: Transport,
        peer: std::net::SocketAddr,
        serial: u64,
        now: Instant,
        (fetch, request): (Box<Fetch>, Vec<u8>),
        deadline: Option<Instant>,
    ) -> Conn {
        let mut conn = Conn::new(transport, peer, serial, now);
        conn.set_flag(COUNTED, false);
        conn.output.tail().extend_from_slice(&request);
        conn.phase = Phase::Fetching(Box::new(FetchLeg {
            fetch,
            deadline,
            linked: false,
            reused: false,
            answered: false,
            body: None,
            reusable: false,
            status: HttpError::BadGateway,
            abandoned: false,
        }));
        conn.set_flag(PROXIED, true);
        conn
    }

    /// An idle leg takes `fetch`, its request head queued; the fetch is
    /// handed back when this is not an idle leg.
    pub fn reuse(
        &mut self,
        (fetch, request): (Box<Fetch>, &[u8]),
        now: Instant,
    ) -> Result<(), Box<Fetch>> {
        // Out of the pool already (`Gateway::take_idle`).
        let Phase::Pooled { .. } = self.phase else {
            return Err(fetch);
        };
        self.output.tail().extend_from_slice(request);
        self.since = At::new(now);
        self.phase = Phase::Fetching(Box::new(FetchLeg {
            fetch,
            deadline: None,
            linked: true,
            reused: true,
            answered: false,
            body: None,
            reusable: false,
            status: HttpError::BadGateway,
            abandoned: false,
        }));
        self.set_flag(PROXIED, true);
        Ok(())
    }

    /// After an event: a leg whose connect finished and whose request head
    /// went out tells the reactor, which links its client.
    pub(super) fn fetch_progress(&mut self, ctx: &mut Ctx<'_>) {
        let id = self.id(ctx);
        let Phase::Fetching(leg) = &mut self.phase else {
            return;
        };
        if leg.linked || !self.output.is_idle() || self.transport.holds_output() {
            return;
        }
        leg.linked = true;
        if let Some(g) = ctx.app.gateway.as_mut() {
            g.outcomes.push(Outcome::Linked {
                leg: id,
                client: leg.fetch.req.client,
            });
        }
    }

    /// Reads the downstream's response at the front of `buf` and relays it
    /// to the client; returns the bytes used.
    pub(super) fn on_response_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        let Phase::Fetching(leg) = &mut self.phase else {
            return 0;
        };
        leg.answered = true;
        let to = (leg.fetch.req.client, Side::Client);
        if let Some(body) = leg.body.as_mut() {
            let mut frame = Vec::with_capacity(buf.len() + 16);
            return match body.feed(buf, &mut frame) {
                Ok(progress) => {
                    relay(ctx, &leg.fetch.exchange, to, frame);
                    if progress.done {
                        self.fetch_finished(ctx);
                    }
                    progress.consumed
                }
                Err(e) => {
                    log::info!("gateway: {} sent a broken body: {e}", self.peer);
                    self.set_flag(READ_CLOSED, true);
                    buf.len()
                }
            };
        }
        ctx.app.date.refresh();
        let fetch = &leg.fetch;
        let cookie = ctx
            .app
            .gateway
            .as_ref()
            .and_then(|g| g.sticky_cookie(fetch));
        let respond = Respond {
            date: &ctx.app.date.text,
            extra: &ctx.app.config.headers,
            request_id: &fetch.req.request_id,
            cookie: cookie.as_deref(),
            head_request: fetch.head_only(),
            client_minor: fetch.req.minor,
            // A client still sending its body cannot send the next request.
            close: fetch.close || !fetch.exchange.request_done(),
        };
        let mut frame = Vec::new();
        match read_response(buf, &respond, &mut frame) {
            Ok(Reading::Partial) => 0,
            Ok(Reading::Interim(n)) => n,
            Ok(Reading::Final(answer)) => {
                fetch.exchange.set_response_started(answer.close);
                log_proxied(ctx.app, &fetch.req, answer.status, true);
                if let Some(g) = ctx.app.gateway.as_mut() {
                    g.answered(fetch);
                }
                relay(ctx, &fetch.exchange, to, frame);
                let body = Reframe::new(answer.body, answer.chunked_out);
                let done = body.done();
                leg.body = Some(body);
                leg.reusable = answer.reusable;
                if done {
                    self.fetch_finished(ctx);
                }
                answer.len
            }
            Err(why) => {
                log::info!("gateway: {} answered with {why}", self.peer);
                self.set_flag(READ_CLOSED, true);
                buf.len()
            }
        }
    }

    /// The response is complete: the client is told, and the leg waits in
    /// the pool for the next request to its host, or closes.
    fn fetch_finished(&mut self, ctx: &mut Ctx<'_>) {
        let id = self.id(ctx);
        let Phase::Fetching(leg) = mem::replace(&mut self.phase, Phase::Closing { until: None })
        else {
            return;
        };
        self.set_flag(PROXIED, false);
        let Some(g) = ctx.app.gateway.as_mut() else {
            return;
        };
        g.outcomes.push(Outcome::Answered {
            client: leg.fetch.req.client,
        });
        let (route, host) = (leg.fetch.req.route, leg.fetch.req.host);
        let keep = leg.reusable
            && leg.fetch.exchange.request_done()
            && !ctx.app.stopping
            && !self.flag(READ_CLOSED)
            && g.park(route, host, id);
        if keep {
            // Route and host indexes are small: a config lists them.
            self.phase = Phase::Pooled {
                route: route as u32,
                host: host as u32,
            };
            self.since = ctx.turn.at;
        } else {
            if let Some(pool) = g.pool_mut(route) {
                pool.closed(host);
            }
            // Closed as soon as what is queued is written.
            self.set_flag(READ_CLOSED, true);
        }
    }

    /// After a side of an exchange wrote: records what it still holds and,
    /// when the other side stopped reading for it and there is room now,
    /// says that side may read on.
    pub(super) fn exchange_after_flush(&self) -> Option<ConnId> {
        let held = self.output.backlog();
        match &self.phase {
            Phase::Forwarding(f) => f.exchange.drained(Side::Client, held).then_some(f.leg?),
            Phase::Fetching(leg) => leg
                .fetch
                .exchange
                .drained(Side::Downstream, held)
                .then_some(leg.fetch.req.client),
            _ => None,
        }
    }

    /// The leg's deadline passed: before its response, the client is told 504.
    pub(super) fn fetch_timed_out(&mut self) -> Next {
        if let Phase::Fetching(leg) = &mut self.phase {
            leg.status = HttpError::GatewayTimeout;
        }
        Next::Close
    }

    /// The reactor closes this leg for its client's sake.
    pub fn abandon(&mut self) {
        if let Phase::Fetching(leg) = &mut self.phase {
            leg.abandoned = true;
        }
    }

    /// True for a leg fetching for the client with this serial.
    pub fn fetches_for(&self, client: u64) -> bool {
        matches!(&self.phase, Phase::Fetching(leg) if leg.fetch.req.client.serial == client)
    }

    /// When a leg or a forwarding client next needs attention.
    pub(super) fn fetch_due(&self, t: &Timeouts) -> Option<Option<Instant>> {
        let add = |d: Option<Duration>| d.and_then(|d| self.since.instant().checked_add(d));
        Some(match &self.phase {
            Phase::Fetching(leg) if !leg.linked => leg.deadline,
            // The response head is due `connect` after the request went out.
            Phase::Fetching(leg) if leg.body.is_none() && leg.fetch.exchange.request_done() => {
                match (add(t.connect), add(t.inactivity)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Fetching(_) | Phase::Forwarding(_) => add(t.inactivity),
            Phase::Pooled { .. } => add(Some(t.inactivity.map_or(IDLE_LEG, |i| i.min(IDLE_LEG)))),
            _ => return None,
        })
    }

    /// Before the connection is dropped: what its part in an exchange
    /// leaves the reactor to settle.
    pub(super) fn exchange_released(&mut self, app: &mut App, now: Instant) {
        if !matches!(
            self.phase,
            Phase::Forwarding(_) | Phase::Fetching(_) | Phase::Pooled { .. }
        ) {
            return;
        }
        let phase = mem::replace(&mut self.phase, Phase::Closing { until: None });
        let Some(g) = app.gateway.as_mut() else {
            return;
        };
        let outcome = match phase {
            Phase::Forwarding(f) => match f.leg {
                Some(leg) => Outcome::Abandoned {
                    leg,
                    client: self.serial,
                },
                None => return,
            },
            Phase::Pooled { route, host } => {
                let (route, host) = (route as usize, host as usize);
                g.unpark(route, host, self.serial);
                if let Some(pool) = g.pool_mut(route) {
                    pool.closed(host);
                }
                return;
            }
            Phase::Fetching(leg) => {
                let FetchLeg {
                    mut fetch,
                    linked,
                    reused,
                    answered,
                    body,
                    status,
                    abandoned,
                    ..
                } = *leg;
                if let Some(pool) = g.pool_mut(fetch.req.route) {
                    pool.closed(fetch.req.host);
                }
                if body.as_ref().is_some_and(Reframe::until_eof) {
                    // A body that ends with the connection: complete.
                    Outcome::Answered {
                        client: fetch.req.client,
                    }
                } else if !linked {
                    Outcome::Refetch {
                        fetch,
                        status,
                        failed: true,
                    }
                } else if reused && !answered && !fetch.has_body && !fetch.retried && !abandoned {
                    // A kept-alive leg the downstream had closed: once more
                    // on a fresh connection, maybe to the same host.
                    fetch.retried = true;
                    fetch.req.tried.pop();
                    Outcome::Refetch {
                        fetch,
                        status,
                        failed: false,
                    }
                } else {
                    let client = fetch.req.client;
                    if !abandoned {
                        if let Some(pool) = g.pool_mut(fetch.req.route) {
                            pool.failed(fetch.req.host, now);
                        }
                        if !fetch.exchange.response_started() {
                            log_proxied(app, &fetch.req, status.status(), true);
                        }
                    }
                    Outcome::Broken { client, status }
                }
            }
            _ => return,
        };
        if let Some(g) = app.gateway.as_mut() {
            g.outcomes.push(outcome);
        }
    }
}

/// Leaves `frame` in the outbox for the connection `to`, counted as what
/// that side holds.
fn relay(ctx: &mut Ctx<'_>, exchange: &Exchange, (to, side): (ConnId, Side), frame: Vec<u8>) {
    if frame.is_empty() {
        return;
    }
    exchange.gauge.add_held(side, frame.len());
    ctx.app.hub.outbox.push(Delivery::Relay { to, frame });
}
