//! One upgraded connection: frames in through the receiver, events out to the
//! handler, the closing handshake, pings, timers and idle timeouts.
//!
//! A session holds only what must outlive one event (it is what an idle
//! WebSocket costs); everything else — the handler, the config, the hub, the
//! output buffer, the connection's id and its peer's address — is lent to
//! it for one [`Step`].

mod closing;
mod intake;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::deadlines::At;
use crate::hub::Hub;
use crate::rate::RateLimiter;
use crate::stats::ConnStats;
use crate::turn::Turn;
use crate::user_timers::TimerId;
use crate::ws::close_code::CloseCode;
use crate::ws::deflate::{Agreed, Outgoing};
use crate::ws::frame::{write_frame, write_masked_frame};
use crate::ws::opcode::OpCode;
use crate::ws::receiver::{Limits, Receiver};
use crate::ws_api::{AnyHandler, ConnInfo, Event, Link, LinkSide, SendFlags, Who, LIMITS, OVER};

/// Whether the WebSocket goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Open,
    /// Over: flush what is queued, then close the TCP connection.
    Close,
}

/// The state of one WebSocket connection.
pub(crate) struct Session {
    receiver: Receiver,
    /// What the handler's callbacks see of the connection (what a
    /// callback's `Link` borrows, in one piece), its state's key included.
    side: LinkSide,
    /// `on_close` has run.
    finished: bool,
    /// `wake` is the close deadline (a close frame went out), not the next ping.
    closing: bool,
    /// Which side of a gateway the session is, if any: three flags that
    /// exclude each other, in one byte (every idle WebSocket pays for the
    /// session's size rounded up to glibc's 16-byte chunks, header included:
    /// see the layout guard in `conn/tests.rs`).
    role: Role,
    /// When the peer counts as gone if it sends nothing more (`timeouts.inactivity`).
    /// An `At` (8 bytes), written from the turn's clock on every message.
    idle_at: Option<At>,
    /// While open: when to ping next. Once closing: when to stop waiting
    /// for the peer's close. An `At` (8 bytes): set and read only when a
    /// deadline is, not per message. With the rate limiter in the boxed
    /// `Extra` (`limits.rate` is rare), the session is 136 bytes, a
    /// 144-byte heap chunk.
    wake: Option<At>,
    /// The handler's own inactivity timeout (`Handler::timeout`), in
    /// milliseconds: 0 for `timeouts.inactivity`, `u32::MAX` for never.
    /// A `u32` fits beside the flags, where a `Duration` would grow the
    /// session; it counts from the connection's last progress (`since`,
    /// given by the connection when asked), so a message costs it nothing.
    own_idle: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.side.info)
            .field("state", &self.side.state)
            .finish_non_exhaustive()
    }
}

/// Everything a session borrows from its connection and the app for one step.
pub(crate) struct Step<'a> {
    pub handler: &'a mut dyn AnyHandler,
    pub config: &'a Config,
    pub hub: &'a mut Hub,
    /// The output buffer, the clock and the callbacks' send budget.
    pub turn: &'a mut Turn,
    /// The connection's id and peer: its connection keeps them, not the session.
    pub who: Who<'a>,
}

impl<'a> Step<'a> {
    #[inline(always)]
    pub fn new(
        handler: &'a mut dyn AnyHandler,
        config: &'a Config,
        hub: &'a mut Hub,
        turn: &'a mut Turn,
        who: Who<'a>,
    ) -> Step<'a> {
        Step {
            handler,
            config,
            hub,
            turn,
            who,
        }
    }

    /// Runs one callback; false if it panicked.
    #[inline(always)]
    fn call(
        &mut self,
        side: &mut LinkSide,
        headers: Option<&[httparse::Header<'_>]>,
        event: Event<'_>,
    ) -> bool {
        self.turn.base = self.turn.scratch.len();
        let link = Link {
            turn: &mut *self.turn,
            side,
            who: &self.who,
            hub: &mut *self.hub,
            headers,
        };
        let handler = &mut *self.handler;
        catch_unwind(AssertUnwindSafe(|| handler.dispatch(link, event))).is_ok()
    }

    /// The output buffer, for frames the session writes itself.
    #[inline(always)]
    fn out(&mut self) -> &mut Vec<u8> {
        &mut self.turn.scratch
    }

    #[inline(always)]
    fn now(&self) -> Instant {
        self.turn.now
    }
}

impl Session {
    /// A session for the connection whose state has key `state` in its
    /// handler's table, receiving within `limits` (see [`receiver_limits`]).
    pub fn new(
        state: u32,
        limits: Rc<Limits>,
        info: ConnInfo,
        config: &Config,
        now: Instant,
    ) -> Session {
        let mut info = info;
        if let Some(rate) = &config.limits.rate {
            let extra = info.extra.get_or_insert_with(Box::default);
            extra.rate = Some(Box::new(RateLimiter::new(rate, now)));
        }
        Session {
            receiver: Receiver::shared(limits),
            side: LinkSide {
                info,
                state,
                flags: SendFlags::default(),
                tls: false,
                metrics: ConnStats::default(),
            },
            finished: false,
            closing: false,
            role: Role::Server,
            idle_at: config
                .timeouts
                .inactivity
                .and_then(|d| now.checked_add(d))
                .map(At::new),
            wake: config
                .web_sockets
                .ping
                .and_then(|p| now.checked_add(p))
                .map(At::new),
            own_idle: 0,
        }
    }

    /// Gives the connection its handler's inactivity timeout instead of
    /// `timeouts.inactivity` (`None` keeps that; `Duration::MAX` is never).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else { return };
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // At least a millisecond: 0 stands for the config's.
        self.own_idle = ms.max(1);
    }

    /// When the peer counts as gone: `timeouts.inactivity` after what it
    /// last sent, or the handler's own timeout after the connection's last
    /// progress (`since`: a read or a write).
    #[inline]
    fn idle_deadline(&self, since: Instant) -> Option<Instant> {
        match self.own_idle {
            0 => self.idle_at.map(At::instant),
            u32::MAX => None,
            ms => since.checked_add(Duration::from_millis(u64::from(ms))),
        }
    }

    /// Marks the connection as TLS (`wss`), for [`WebSocket::is_tls`](crate::WebSocket::is_tls).
    pub fn set_tls(&mut self, tls: bool) {
        self.side.tls = tls;
    }

    /// Sets how the server compresses what it sends on this connection
    /// (permessage-deflate, as negotiated in the handshake).
    pub fn set_outgoing(&mut self, outgoing: Outgoing) {
        self.side.info.deflate = outgoing;
    }

    /// How the server may compress what it sends here.
    #[inline]
    pub fn outgoing(&self) -> Outgoing {
        self.side.info.deflate
    }

    /// Makes this a gateway's client leg: a protocol error closes the
    /// downstream first (see `failing`).
    pub fn make_relay(&mut self) {
        self.role = Role::Relay;
    }

    /// Makes our side the WebSocket's client (a gateway's downstream leg):
    /// the frames it sends are masked, and `limits.rate`, a guard against
    /// clients, does not apply to what the downstream sends.
    pub fn make_client(&mut self) {
        self.role = Role::Client;
        let extra = &mut self.side.info.extra;
        if let Some(e) = extra {
            e.rate = None;
            if e.is_empty() {
                *extra = None;
            }
        }
    }

    /// The index of the handler serving this connection.
    pub fn handler(&self) -> usize {
        self.side.info.handler as usize
    }

    /// True once a close frame went out: the deadline is the wait for the peer's.
    #[inline]
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// True while messages may still be sent to the peer.
    pub fn can_send(&self) -> bool {
        !self.side.flags.close_sent && self.side.flags.block.is_none()
    }

    /// True while a `send_block` message is unfinished (and no close went out).
    pub fn in_block(&self) -> bool {
        self.side.flags.block.is_some() && !self.side.flags.close_sent
    }

    /// Notes a delivery dropped for backpressure; true if the connection
    /// should be closed for it (`webSockets.closeOnBackpressure`).
    pub fn dropped(&mut self, config: &Config) -> bool {
        self.side.flags.attention |= OVER;
        config.web_sockets.close_on_backpressure
    }

    /// True while `on_drain` is owed.
    #[inline]
    pub fn owes_drain(&self) -> bool {
        self.side.flags.attention & OVER != 0 && !self.finished && !self.side.flags.close_sent
    }

    /// Counts a frame of `payload` bytes delivered from elsewhere (the
    /// server-wide counters are the reactor's to update).
    pub fn count_delivery(&mut self, payload: usize) {
        let m = &mut self.side.metrics;
        m.messages_out += 1;
        m.bytes_out += payload as u64;
    }

    /// The key of the peer's state in its handler's table, for
    /// [`Hub::send_where`](crate::Hub::send_where) filters.
    pub fn state(&self) -> u32 {
        self.side.state
    }

    /// Runs `on_open`, with the upgrade request's headers readable.
    pub fn open(&mut self, mut step: Step<'_>, headers: &[httparse::Header<'_>]) -> Flow {
        let ok = step.call(&mut self.side, Some(headers), Event::Open);
        self.after(&mut step, ok)
    }

    /// Runs `on_timer` for one of this connection's timers.
    pub fn timer(&mut self, mut step: Step<'_>, timer: TimerId) -> Flow {
        if self.finished {
            return Flow::Close;
        }
        let ok = step.call(&mut self.side, None, Event::Timer(timer));
        self.after(&mut step, ok)
    }

    /// Runs `on_drain`: the output has room again.
    pub fn drained(&mut self, mut step: Step<'_>) -> Flow {
        self.side.flags.attention &= !OVER;
        let ok = step.call(&mut self.side, None, Event::Drain);
        self.after(&mut step, ok)
    }

    /// After a callback: a panic closes with 1011, a send over the
    /// backpressure limit may close with 1008, and a close the handler sent
    /// starts the wait for the peer's.
    ///
    /// Every callback but `on_error` and `on_close` is followed by this,
    /// which applies what it asked of `set_limits` first of all: the request
    /// waits in the turn, shared by every connection, so it is taken here
    /// (or cleared after those two) before another callback can run.
    #[inline(always)]
    fn after(&mut self, step: &mut Step<'_>, ok: bool) -> Flow {
        if self.side.flags.attention != 0 {
            if let Some(closed) = self.attend(step) {
                return closed;
            }
        }
        if !ok {
            log::error!(
                "a WebSocket handler for {} panicked; closing {} with 1011",
                self.side.info.path(),
                step.who.id
            );
            return self.close_now(step, CloseCode::INTERNAL, "handler failed");
        }
        self.note_close_sent(step.config, step.now());
        Flow::Open
    }

    /// `after`'s rarer half: lower limits asked for, then a send dropped
    /// for backpressure, which may close with 1008.
    #[inline(never)]
    fn attend(&mut self, step: &mut Step<'_>) -> Option<Flow> {
        if self.side.flags.attention & LIMITS != 0 {
            self.side.flags.attention &= !LIMITS;
            if let Some((frame, message)) = step.turn.limits.take() {
                self.receiver.tighten(frame, message);
            }
        }
        let over = self.side.flags.attention & OVER != 0;
        (over && step.config.web_sockets.close_on_backpressure)
            .then(|| self.close_now(step, CloseCode::POLICY, "backpressure"))
    }

    /// When the session next needs attention; `since` is its connection's
    /// last progress.
    #[inline]
    pub fn due(&self, since: Instant) -> Option<Instant> {
        match (self.idle_deadline(since), self.wake.map(At::instant)) {
            (Some(idle), Some(wake)) => Some(idle.min(wake)),
            (idle, wake) => idle.or(wake),
        }
    }

    /// Acts on a passed deadline: the close wait, a dead peer, or a ping.
    pub fn timeout(&mut self, mut step: Step<'_>, since: Instant) -> Flow {
        let now = step.now();
        let woken = self.wake.is_some_and(|w| w.instant() <= now);
        if self.closing && woken {
            self.finish(
                &mut step,
                CloseCode::ABNORMAL,
                "no close frame from the peer in time",
            );
            return Flow::Close;
        }
        if self.idle_deadline(since).is_some_and(|d| d <= now) {
            return self.close_now(&mut step, CloseCode::GOING_AWAY, "idle");
        }
        if woken && !self.closing {
            control(step.out(), self.role.masked(), OpCode::Ping, b"");
            self.wake = step
                .config
                .web_sockets
                .ping
                .and_then(|p| now.checked_add(p))
                .map(At::new);
        }
        Flow::Open
    }
}

/// Which side of a gateway a session is (see `Session::role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Our side is the server: no gateway, or a gateway's client leg that
    /// does not relay (never made so).
    Server,
    /// A gateway's client leg (see `make_relay`).
    Relay,
    /// A gateway's client leg that broke the protocol: its connection is not
    /// read again (`Conn::pair_full`), and its close waits until the
    /// downstream has answered what went before.
    Failing,
    /// Our side is the client (a gateway's downstream leg): every frame we
    /// send is masked (RFC 6455 §5.3).
    Client,
}

impl Role {
    /// Our side is the client: the frames it sends are masked.
    fn masked(self) -> bool {
        self == Role::Client
    }
}

/// Appends a ping or pong, masked when our side is the client.
fn control(out: &mut Vec<u8>, masked: bool, opcode: OpCode, payload: &[u8]) {
    if masked {
        write_masked_frame(out, true, opcode, payload, crate::entropy::mask());
    } else {
        write_frame(out, true, opcode, payload);
    }
}

/// What a WebSocket's receiver accepts, from the config: one for handlers
/// that stream and one for those that do not, shared by their connections.
pub(crate) fn receiver_limits(config: &Config, streaming: bool) -> Rc<Limits> {
    Rc::new(Limits {
        max_frame: config.limits.max_frame,
        max_message: config.limits.max_message,
        validate_utf8: config.web_sockets.validate_utf8,
        streaming,
        from_server: false,
        deflate: None,
    })
}

/// The receivers' limits, one `Rc` per kind of connection (streaming or
/// not, and the permessage-deflate parameters agreed), shared by every
/// connection of that kind so each pays a pointer for them.
#[derive(Debug)]
pub(crate) struct SharedLimits {
    /// Whole messages and streaming, without compression, first; then the
    /// kinds made as handshakes agree on parameters (a few at most).
    kinds: Vec<Rc<Limits>>,
}

impl SharedLimits {
    pub(crate) fn new(config: &Config) -> SharedLimits {
        SharedLimits {
            kinds: vec![
                receiver_limits(config, false),
                receiver_limits(config, true),
            ],
        }
    }

    /// The limits of a connection without compression that takes whole messages.
    pub(crate) fn plain(&self) -> &Rc<Limits> {
        &self.kinds[0]
    }

    /// The limits of a connection that streams or not, with `deflate` agreed.
    pub(crate) fn get(&mut self, streaming: bool, deflate: Option<Agreed>) -> Rc<Limits> {
        let want = Limits {
            streaming,
            deflate,
            ..*self.kinds[0]
        };
        if let Some(kind) = self.kinds.iter().find(|k| ***k == want) {
            return Rc::clone(kind);
        }
        let kind = Rc::new(want);
        self.kinds.push(Rc::clone(&kind));
        kind
    }
}

/// What a gateway's downstream legs accept: the clients' limits, for
/// frames that come from a server (unmasked).
pub(crate) fn downstream_limits(config: &Config) -> Rc<Limits> {
    let mut limits = *receiver_limits(config, false);
    limits.from_server = true;
    Rc::new(limits)
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::hub::RoomLimits;
    use crate::message::{ConnId, Peer};
    use crate::testing::{self, close_frame, frames, masked, with_head, Frame, Log, Probe};
    use crate::ws_api::Served;

    /// A session with a [`Probe`] handler, and everything a step borrows.
    struct Fixture {
        session: Session,
        served: Served<Probe>,
        log: Log,
        config: Config,
        hub: Hub,
        turn: Turn,
        id: ConnId,
        peer: Peer,
        t0: Instant,
        /// The connection's last progress, as the connection would say.
        since: Instant,
    }

    impl Fixture {
        /// An open session under the config with `extra` in `web: { … }`.
        fn new(extra: &str) -> Fixture {
            let config = testing::config("/".as_ref(), extra);
            let probe = Probe::default();
            let log = Rc::clone(&probe.log);
            let mut served = Served::new(probe);
            let mut hub = Hub::new(RoomLimits {
                per_connection: 4,
                members: 4,
            });
            let peer = testing::peer();
            let (state, _) = with_head("GET /ws/t HTTP/1.1\r\nHost: h\r\n\r\n", |head| {
                let request = crate::http::request::Request::new(head, &[], peer, &hub.stats);
                served.upgrade(&request).expect("accepted")
            });
            let id = ConnId { key: 0, serial: 1 };
            hub.add_socket(id, 0);
            let info = ConnInfo {
                handler: 0,
                deflate: Outgoing::Off,
                target: Rc::new("/ws/t".into()),
                extra: None,
            };
            let t0 = Instant::now();
            let session = Session::new(state, receiver_limits(&config, false), info, &config, t0);
            let mut turn = Turn::new(t0);
            turn.room = config.web_sockets.max_backpressure;
            let mut f = Fixture {
                session,
                served,
                log,
                config,
                hub,
                turn,
                id,
                peer: Peer::new(peer),
                t0,
                since: t0,
            };
            let (session, step) = f.parts();
            assert_eq!(session.open(step, &[]), Flow::Open);
            f
        }

        /// The session, and a step lending it the rest.
        fn parts(&mut self) -> (&mut Session, Step<'_>) {
            let step = Step::new(
                &mut self.served,
                &self.config,
                &mut self.hub,
                &mut self.turn,
                Who {
                    id: self.id,
                    peer: &self.peer,
                },
            );
            (&mut self.session, step)
        }

        /// Feeds what the peer sent; checks that it was all used.
        fn receive(&mut self, bytes: &[u8]) -> Flow {
            let mut buf = bytes.to_vec();
            let inactivity = self.config.timeouts.inactivity;
            let idle_at = inactivity.map(|d| At::new(self.turn.now + d));
            self.since = self.turn.now;
            let (session, step) = self.parts();
            let (used, flow) = session.receive(step, &mut buf, idle_at);
            assert_eq!(used, bytes.len());
            flow
        }

        /// The deadline passed at `t0 + secs`.
        fn timeout_at(&mut self, secs: u64) -> Flow {
            self.turn.set_now(self.t0 + Duration::from_secs(secs));
            let since = self.since;
            let (session, step) = self.parts();
            session.timeout(step, since)
        }

        /// The frames the session wrote since the last look.
        fn out(&mut self) -> Vec<Frame> {
            frames(&std::mem::take(&mut self.turn.scratch))
        }

        /// The one frame written since the last look, a close: its code.
        fn closed_with(&mut self) -> Option<u16> {
            let out = self.out();
            assert_eq!(out.len(), 1, "{out:?}");
            out[0].close_code()
        }

        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }

        fn closes_logged(&self) -> usize {
            self.log().iter().filter(|l| l.starts_with("close")).count()
        }
    }

    #[test]
    fn a_whole_message_reaches_on_message() {
        let mut f = Fixture::new("");
        assert_eq!(f.receive(&masked(true, OpCode::Text, b"hello")), Flow::Open);
        assert_eq!(f.log(), ["open", "text hello"]);
        assert_eq!(f.out(), [Frame::text("hello")]);
        assert_eq!(f.hub.stats.messages_in, 1);
    }

    #[test]
    fn a_fragmented_message_is_reassembled_around_a_ping() {
        let mut f = Fixture::new("");
        f.receive(&masked(false, OpCode::Text, b"hel"));
        f.receive(&masked(false, OpCode::Continuation, b"lo "));
        f.receive(&masked(true, OpCode::Ping, b"?"));
        assert_eq!(f.log(), ["open"], "no message before its last fragment");
        assert!(f.session.receiver.holds_message(), "the message so far");
        f.receive(&masked(true, OpCode::Continuation, b"world"));
        assert_eq!(f.log(), ["open", "text hello world"]);
        assert!(!f.session.receiver.holds_message(), "freed once handed out");
        let pong = Frame {
            fin: true,
            opcode: OpCode::Pong,
            payload: b"?".to_vec(),
        };
        assert_eq!(f.out(), [pong, Frame::text("hello world")]);
    }

    #[test]
    fn on_close_runs_exactly_once() {
        let mut f = Fixture::new("");
        assert_eq!(f.receive(&close_frame(1001, "away")), Flow::Close);
        assert_eq!(f.closed_with(), Some(1001), "the peer's code is echoed");
        let (session, step) = f.parts();
        session.abandon(step);
        assert_eq!(f.log(), ["open", "close 1001 away"]);
        assert_eq!(f.hub.stats.websockets_open, 0);
        // A connection dropped without a close reports 1006, once too.
        let mut f = Fixture::new("");
        for _ in 0..2 {
            let (session, step) = f.parts();
            session.abandon(step);
        }
        assert_eq!(f.log(), ["open", "close 1006 "]);
        assert!(f.out().is_empty());
    }

    #[test]
    fn a_panicking_handler_closes_with_1011() {
        let mut f = Fixture::new("");
        assert_eq!(
            f.receive(&masked(true, OpCode::Text, b"panic")),
            Flow::Close
        );
        assert_eq!(f.closed_with(), Some(1011));
        assert_eq!(f.log().last().unwrap(), "close 1011 handler failed");
        assert_eq!(f.closes_logged(), 1);
    }

    /// A gateway's downstream leg is not rate limited, and with nothing else
    /// rare about it the box that held its limiter goes too.
    #[test]
    fn a_client_leg_drops_its_limiter_and_an_emptied_box() {
        let mut f =
            Fixture::new("limits: { rate: { messages: '2/sec', burst: 2, action: 'close' } }");
        assert!(f
            .session
            .side
            .info
            .extra
            .as_ref()
            .is_some_and(|e| e.rate.is_some()));
        f.session.make_client();
        assert!(f.session.side.info.extra.is_none());
    }

    #[test]
    fn over_the_rate_with_the_close_action_closes_with_1008() {
        let mut f =
            Fixture::new("limits: { rate: { messages: '2/sec', burst: 2, action: 'close' } }");
        for text in ["a", "b"] {
            assert_eq!(
                f.receive(&masked(true, OpCode::Text, text.as_bytes())),
                Flow::Open
            );
        }
        assert_eq!(f.out().len(), 2);
        assert_eq!(f.receive(&masked(true, OpCode::Text, b"c")), Flow::Close);
        assert_eq!(f.closed_with(), Some(1008));
        assert_eq!(
            f.log(),
            ["open", "text a", "text b", "close 1008 rate limit"]
        );
        assert_eq!(f.hub.stats.limits.rate, 1);
    }

    #[test]
    fn the_ping_timer_writes_a_ping_and_rearms() {
        let mut f = Fixture::new("webSockets: { ping: '10 secs' }");
        let t0 = f.t0;
        assert_eq!(f.session.due(f.since), Some(t0 + Duration::from_secs(10)));
        assert_eq!(f.timeout_at(10), Flow::Open);
        let ping = f.out();
        assert_eq!(ping.len(), 1);
        assert_eq!(ping[0].opcode, OpCode::Ping);
        assert_eq!(f.session.due(f.since), Some(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn an_idle_peer_is_closed_with_1001() {
        let mut f = Fixture::new("timeouts: { inactivity: '30 secs' }");
        assert_eq!(f.timeout_at(29), Flow::Open, "early: nothing to do");
        assert!(f.out().is_empty());
        assert_eq!(f.timeout_at(30), Flow::Close);
        assert_eq!(f.closed_with(), Some(1001));
        assert_eq!(f.log().last().unwrap(), "close 1001 idle");
    }

    #[test]
    fn a_handlers_own_timeout_replaces_the_configs_and_activity_restarts_it() {
        let mut f = Fixture::new("timeouts: { inactivity: '30 secs' }");
        f.session.set_timeout(Some(Duration::from_secs(5)));
        assert_eq!(f.session.due(f.since), Some(f.t0 + Duration::from_secs(5)));
        // A ping at 4 s: the peer is alive until 9 s, whatever the config says.
        f.turn.set_now(f.t0 + Duration::from_secs(4));
        f.receive(&masked(true, OpCode::Ping, b""));
        assert_eq!(f.out().len(), 1, "the pong");
        assert_eq!(f.session.due(f.since), Some(f.t0 + Duration::from_secs(9)));
        assert_eq!(f.timeout_at(8), Flow::Open);
        assert_eq!(f.timeout_at(9), Flow::Close);
        assert_eq!(f.closed_with(), Some(1001));
        // Never: no idle deadline at all.
        let mut f = Fixture::new("timeouts: { inactivity: '30 secs' }");
        f.session.set_timeout(Some(Duration::MAX));
        assert_eq!(f.session.due(f.since), None);
    }

    #[test]
    fn a_peer_that_never_answers_our_close_is_given_up_with_1006() {
        let mut f = Fixture::new("webSockets: { closeTimeout: '3 secs' }");
        let (session, step) = f.parts();
        session.close_by_server(step, CloseCode::GOING_AWAY, "stopping");
        assert_eq!(f.closed_with(), Some(1001));
        assert!(f.session.is_closing());
        assert_eq!(f.timeout_at(3), Flow::Close);
        assert_eq!(
            f.log().last().unwrap(),
            "close 1006 no close frame from the peer in time"
        );
        assert!(f.out().is_empty(), "nothing more is sent");
    }
}
