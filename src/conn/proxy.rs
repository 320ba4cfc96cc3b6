//! A connection's part in the gateway: the downstream leg's connect and
//! handshake (`Dialing`), the client waiting for it (`Awaiting`), the
//! frames one leg relays to the other, and the coupling of their
//! backpressure.

use super::{COUNTED, PROXIED, READ_CLOSED, READ_PAUSED};
use std::mem;
use std::time::{Instant, SystemTime};

use super::{Conn, Ctx, Next, Phase};
use crate::access;
use crate::app::App;
use crate::deadlines::At;
use crate::gateway::relay::Side;
use crate::gateway::{Outcome, Proxied, Upgrade};
use crate::http::error::HttpError;
use crate::session::Session;
use crate::transport::Transport;
use crate::ws::client::{read_answer, ClientError};

/// A downstream leg on its way to a WebSocket: connecting, then waiting
/// for the downstream's 101.
#[derive(Debug)]
pub(crate) struct Dial {
    pub upgrade: Box<Upgrade>,
    /// Our `Sec-WebSocket-Key`.
    key: String,
    /// Connect and answer by then (`timeouts.connect`).
    deadline: Option<Instant>,
    /// The downstream switched: the leg waits (not reading on) for the
    /// reactor to pair it.
    answered: bool,
    /// What the client is told should this leg fail: 502, or 504 once the deadline passed.
    status: HttpError,
}

/// The longest downstream answer head accepted.
const ANSWER_LIMIT: usize = 16 * 1024;

impl Conn {
    /// A downstream leg connecting to `peer`, its upgrade request queued.
    pub fn dialing(
        transport: Transport,
        peer: std::net::SocketAddr,
        serial: u64,
        now: Instant,
        (upgrade, key, request): (Box<Upgrade>, String, Vec<u8>),
        deadline: Option<Instant>,
    ) -> Conn {
        let mut conn = Conn::new(transport, peer, serial, now);
        conn.set_flag(COUNTED, false);
        conn.output.tail().extend_from_slice(&request);
        conn.phase = Phase::Dialing(Box::new(Dial {
            upgrade,
            key,
            deadline,
            answered: false,
            status: HttpError::BadGateway,
        }));
        conn
    }

    /// Reads the downstream's answer to our upgrade; returns the bytes used.
    pub(super) fn on_answer_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        let Phase::Dialing(dial) = &mut self.phase else {
            return 0;
        };
        if dial.answered {
            return 0; // Frames already: the session that will read them is not made yet.
        }
        let offered: Vec<&str> = dial.upgrade.offered.iter().map(String::as_str).collect();
        match read_answer(buf, &dial.key, &offered, ANSWER_LIMIT) {
            Ok(None) => 0,
            Ok(Some(switched)) => {
                dial.answered = true;
                let leg = crate::message::ConnId {
                    key: ctx.key,
                    serial: self.serial,
                };
                if let Some(gateway) = ctx.app.gateway.as_mut() {
                    gateway.outcomes.push(Outcome::Opened {
                        leg,
                        protocol: switched.protocol,
                    });
                }
                switched.len
            }
            Err(e) => {
                log::info!("gateway: {} answered the upgrade wrongly: {e}", self.peer);
                if let ClientError::Status(s) = e {
                    log::debug!("gateway: downstream status {s}");
                }
                self.set_flag(READ_CLOSED, true);
                buf.len()
            }
        }
    }

    /// The leg's upgrade, once the downstream switched (the reactor pairs it).
    pub fn take_answered(&mut self) -> Option<Box<Upgrade>> {
        match &self.phase {
            Phase::Dialing(d) if d.answered => {}
            _ => return None,
        }
        match mem::replace(&mut self.phase, Phase::Closing { until: None }) {
            Phase::Dialing(dial) => Some(dial.upgrade),
            _ => None,
        }
    }

    /// A leg's dial ended without a WebSocket (refused, reset, timed out,
    /// a wrong answer): the reactor tries the next host or answers the client.
    pub(super) fn dial_failed(&mut self, app: &mut App) {
        if !matches!(self.phase, Phase::Dialing(_)) {
            return;
        }
        if let Phase::Dialing(dial) = mem::replace(&mut self.phase, Phase::Closing { until: None })
        {
            if let Some(gateway) = app.gateway.as_mut() {
                gateway.outcomes.push(Outcome::Failed {
                    upgrade: dial.upgrade,
                    status: dial.status,
                });
            }
        }
    }

    /// The dial's deadline passed: the client will be told 504.
    pub(super) fn dial_timed_out(&mut self) -> Next {
        if let Phase::Dialing(dial) = &mut self.phase {
            dial.status = HttpError::GatewayTimeout;
        }
        Next::Close
    }

    /// True for a client waiting for its downstream.
    pub fn awaits(&self) -> bool {
        matches!(self.phase, Phase::Awaiting)
    }

    /// True for a leg of a proxied WebSocket.
    #[inline]
    pub fn is_proxied(&self) -> bool {
        self.flag(PROXIED)
    }

    /// When a dialing leg gives up.
    pub(super) fn dial_deadline(&self) -> Option<Option<Instant>> {
        match &self.phase {
            Phase::Dialing(d) => Some(d.deadline),
            _ => None,
        }
    }

    /// True while this connection waits on the gateway: the client before
    /// its downstream answered, the leg after (until paired).
    pub(super) fn waits_on_gateway(&self) -> bool {
        match &self.phase {
            Phase::Awaiting => true,
            Phase::Dialing(d) => d.answered,
            _ => false,
        }
    }

    /// Makes this connection one leg of a proxied WebSocket: `head` (our
    /// 101, for the client leg) goes out first, then the session runs.
    pub fn join_pair(&mut self, session: Box<Session>, head: &[u8]) {
        if !head.is_empty() {
            self.output.tail().extend_from_slice(head);
        }
        self.phase = Phase::WebSocket(session);
        self.set_flag(PROXIED, true);
        // Input held while waiting is parsed at the next event.
        self.set_flag(READ_PAUSED, true);
    }

    /// The client's upgrade failed downstream: `err` (502 or 504), then close.
    pub fn gateway_refused(&mut self, app: &mut App, err: HttpError) {
        if !matches!(self.phase, Phase::Awaiting) {
            return;
        }
        log::debug!("{}: {} {err}", self.peer, err.status());
        app.refuse(err, self.output.tail());
        self.phase = Phase::Closing { until: None };
    }

    /// For a proxied leg: the side it is and whether its pair's output is
    /// over the mark, so this leg must not read on.
    pub(super) fn pair_full(&self, app: &App) -> bool {
        let Some((side, shared)) = self.pair_of(app) else {
            return false;
        };
        // A client that broke the protocol is not read again: its close
        // follows the downstream's (see `Session::fail`).
        if side == Side::Client && shared.client_failed() {
            return true;
        }
        let full = shared.held(side.other()) >= app.config.web_sockets.max_backpressure / 2;
        shared.set_paused(side, full);
        full
    }

    /// After a proxied leg wrote: records what it still holds and, when
    /// that is below the mark and its pair stopped reading for it, says
    /// the pair may read on.
    pub fn pair_after_flush(&self, app: &App) -> Option<crate::message::ConnId> {
        let session = match &self.phase {
            Phase::WebSocket(session) => session,
            Phase::Forwarding(_) | Phase::Fetching(_) => return self.exchange_after_flush(),
            _ => return None,
        };
        let end = app.gateway.as_ref()?.end(session.state())?;
        let held = self.output.backlog();
        end.shared.set_held(end.side, held);
        let other = end.side.other();
        let room = held < app.config.web_sockets.max_backpressure / 2;
        (room && end.shared.paused(other)).then(|| {
            end.shared.set_paused(other, false);
            end.pair
        })
    }

    fn pair_of<'a>(&self, app: &'a App) -> Option<(Side, &'a crate::gateway::relay::Pair)> {
        let Phase::WebSocket(session) = &self.phase else {
            return None;
        };
        let end = app.gateway.as_ref()?.end(session.state())?;
        Some((end.side, &end.shared))
    }

    /// Takes frames the other leg relayed. Never dropped: the other leg
    /// stops reading instead, so what waits here stays bounded. A plain
    /// WebSocket leg with nothing queued writes them at once — the one
    /// write they would get at the end of the turn — and gives the buffer
    /// back for the next relay.
    pub fn relay(&mut self, mut frames: Vec<u8>, at: At) -> Relayed {
        match &mut self.phase {
            Phase::WebSocket(session) if session.can_send() => {}
            // A proxied plain request's body, or its response.
            Phase::Forwarding(_) | Phase::Fetching(_) => {
                self.output.push_owned(frames);
                return Relayed::Queued;
            }
            _ => return Relayed::Refused(frames),
        }
        if self.output.is_idle() && self.transport.is_plain() {
            match self.transport.write_plain(&frames) {
                Ok(n) if n == frames.len() => {
                    self.since = at;
                    return Relayed::Written(frames);
                }
                Ok(n) => {
                    self.since = at;
                    frames.drain(..n);
                }
                // Queued: the flush that follows meets the error or the wait.
                Err(_) => {}
            }
        }
        self.output.push_owned(frames);
        Relayed::Queued
    }
}

/// What became of frames relayed to a connection.
#[derive(Debug)]
pub(crate) enum Relayed {
    /// Queued (or partly written): the connection must be flushed.
    Queued,
    /// Written whole: the buffer is free again.
    Written(Vec<u8>),
    /// Not a leg that can take them (closing, gone).
    Refused(Vec<u8>),
}

/// The access log's line for a proxied request: the client's request, our
/// status, the request id both sides log, and the downstream host (when
/// one was tried).
pub(crate) fn log_proxied(app: &App, req: &Proxied, status: u16, with_host: bool) {
    if !app.config.log.access {
        return;
    }
    let host = app
        .gateway
        .as_ref()
        .and_then(|g| g.routes.get(req.route))
        .filter(|_| with_host)
        .map_or("-", |r| r.pool.host(req.host));
    let (path, query) = req
        .client_target
        .split_once('?')
        .unwrap_or((&req.client_target, ""));
    let entry = access::Entry {
        peer: req.peer.ip(),
        method: &req.method,
        target: (path, query),
        minor: req.minor,
        status,
        // Relayed as it came: not counted here.
        bytes: None,
        referer: None,
        agent: None,
        took: None,
        id: Some(&req.request_id),
    };
    let line = access::line(&entry, app.config.log.format, SystemTime::now());
    log::info!(target: "wisp::access", "{line} downstream={host}");
}
