//! One client connection: bytes in, requests parsed, responses queued, timeouts.
//!
//! A connection owns no buffer while it is idle: input is parsed straight out
//! of the reactor's shared read buffer and only an incomplete tail is kept;
//! output is written from the shared scratch buffer and only what the socket
//! refuses is kept (see `output.rs`).

use std::io::{self, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::app::{App, Origin};
use crate::config::{Config, Timeouts};
use crate::deadlines::Deadline;
use crate::http::body::BodyDecoder;
use crate::http::error::HttpError;
use crate::http::request::{header_storage, parse_head, Framing, Head};
use crate::message::ConnId;
use crate::output::{write_all_nb, Flushed, Output};
use crate::session::{Flow, Session, Step, GOING_AWAY};
use crate::socket::Socket;
use crate::turn::Turn;
use crate::user_timers::TimerId;

/// Output queued beyond this stops parsing pipelined requests and reading the socket.
const HIGH_WATER: usize = 64 * 1024;
/// How long a refused connection may take to read our answer before we drop it.
const LINGER: Duration = Duration::from_secs(2);

/// The shared, per-loop state a connection works with.
pub(crate) struct Ctx<'a> {
    pub app: &'a mut App,
    pub turn: &'a mut Turn,
    /// The connection's slab key.
    pub key: usize,
}

/// What became of a frame delivered from another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    Queued,
    /// Not a WebSocket that can receive (closing, or gone).
    Refused,
    /// Mid-`send_block`: the frame must wait until that message is finished.
    Held,
    /// Over `webSockets.maxBackpressure`: dropped.
    Dropped,
    /// Over it, with `closeOnBackpressure`: the connection must be closed.
    Close,
}

/// Whether the reactor keeps the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Keep,
    /// Kept, and its deadline can only have moved later: the wake-up
    /// already armed comes first, and `Conn::due` is read again when it fires.
    KeepLater,
    Close,
}

/// A request whose body is still arriving.
#[derive(Debug)]
struct PendingBody {
    head: Vec<u8>,
    decoder: BodyDecoder,
    body: Vec<u8>,
    started: Instant,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a request head; `started` is when its first byte arrived.
    Head { started: Option<Instant> },
    /// Receiving a request body.
    Body(Box<PendingBody>),
    /// The last response is queued: discard input, close once it is written.
    /// `until` bounds how long a refused client gets to read it.
    Closing { until: Option<Instant> },
    /// Our side is shut; read and discard until the client closes too, so
    /// unread input does not turn into a reset that destroys our answer.
    Lingering { until: Instant },
    /// Upgraded: every byte is WebSocket frames.
    WebSocket(Box<Session>),
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Unique for the life of the process; tells a reused slab slot apart.
    pub serial: u64,
    pub deadline: Deadline,
    /// False for a connection accepted over the limit only to be answered 503.
    pub counted: bool,
    input: Vec<u8>,
    output: Output,
    phase: Phase,
    /// Last read or write progress.
    since: Instant,
    served: u64,
    read_closed: bool,
    read_paused: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, serial: u64, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            serial,
            deadline: Deadline::default(),
            counted: true,
            input: Vec::new(),
            output: Output::default(),
            phase: Phase::Head { started: None },
            since: now,
            served: 0,
            read_closed: false,
            read_paused: false,
        }
    }

    /// A connection over `limits.connections`: it gets a 503 and nothing else.
    pub fn turned_away(
        stream: TcpStream,
        peer: SocketAddr,
        serial: u64,
        ctx: &mut Ctx<'_>,
    ) -> Conn {
        let mut conn = Conn::new(stream, peer, serial, ctx.turn.now);
        conn.counted = false;
        conn.refuse(ctx, HttpError::Busy);
        conn
    }

    /// Handles a readiness event.
    pub fn ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        readable: bool,
        read_closed: bool,
    ) -> io::Result<Next> {
        if readable && !read_closed {
            if let Some(closing) = self.quiet_websocket() {
                return self.websocket_read(ctx, read_buf, closing);
            }
        }
        if readable || read_closed || self.read_paused {
            self.read_all(ctx, read_buf, read_closed)?;
        }
        self.flush(ctx, read_buf)
    }

    /// For an open WebSocket with nothing held back (no unparsed input, no
    /// queued output, reading not paused, nothing owed to the handler):
    /// whether its closing handshake has begun.
    #[inline]
    fn quiet_websocket(&self) -> Option<bool> {
        let Phase::WebSocket(s) = &self.phase else {
            return None;
        };
        let quiet =
            !s.owes_drain() && self.input.is_empty() && self.output.is_idle() && !self.read_paused;
        quiet.then(|| s.is_closing())
    }

    /// The hot path of a busy WebSocket: one read, its frames, one write,
    /// without the general path's loops. A full read buffer, an incomplete
    /// frame or a socket that refuses part of the answer continue on the
    /// general path.
    #[inline]
    fn websocket_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        closing: bool,
    ) -> io::Result<Next> {
        let n = match Socket(&self.stream).read_spare(read_buf) {
            Ok(0) => {
                self.read_closed = true;
                return self.flush(ctx, read_buf);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::KeepLater),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.read_all(ctx, read_buf, false)?;
                return self.flush(ctx, read_buf);
            }
            Err(e) => return Err(e),
        };
        self.since = ctx.turn.now;
        self.take_bytes(ctx, &mut read_buf[..n]);
        if n == read_buf.capacity() || !self.input.is_empty() {
            return self.websocket_more(ctx, read_buf, n);
        }
        // Still open, nothing owed, and no close frame went out in this
        // event: the answers go out in one write, and the deadline can only
        // have moved later (the idle one).
        let unchanged = matches!(&self.phase, Phase::WebSocket(s) if !s.owes_drain() && s.is_closing() == closing);
        if !unchanged {
            return self.flush(ctx, read_buf);
        }
        // The answers in one write, which the socket nearly always takes
        // whole (`since` is already now, from the read).
        if ctx.turn.scratch.is_empty() {
            return Ok(Next::KeepLater);
        }
        match Socket(&self.stream).write(&ctx.turn.scratch) {
            Ok(n) if n == ctx.turn.scratch.len() => {
                ctx.turn.scratch.clear();
                return Ok(Next::KeepLater);
            }
            Ok(n) => {
                ctx.turn.scratch.drain(..n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        // The rest is queued, or retried after an interrupt.
        self.flush_queued(ctx, read_buf)
    }

    /// The lane's read of `n` bytes left more to do: the socket may hold
    /// more (the read filled the buffer), or a frame is incomplete.
    #[inline(never)]
    fn websocket_more(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        n: usize,
    ) -> io::Result<Next> {
        if n == read_buf.capacity() {
            self.read_all(ctx, read_buf, false)?;
        } else if self.paused(ctx) {
            self.read_paused = true;
        }
        self.flush(ctx, read_buf)
    }

    /// Writes what is queued; when it all went out, resumes paused input and
    /// decides whether the connection is finished.
    #[inline(always)]
    fn flush(&mut self, ctx: &mut Ctx<'_>, read_buf: &mut Vec<u8>) -> io::Result<Next> {
        // The common case: all this event's output is in the scratch buffer
        // and nothing else is owed.
        if self.output.is_idle()
            && !self.read_paused
            && !self.owes_drain(ctx.app)
            && self.write_scratch(ctx)?
        {
            return self.after_output(ctx.turn.now);
        }
        self.flush_queued(ctx, read_buf)
    }

    /// The general flush: a queue, a file body, paused input or `on_drain`.
    #[inline(never)]
    fn flush_queued(&mut self, ctx: &mut Ctx<'_>, read_buf: &mut Vec<u8>) -> io::Result<Next> {
        let mut drained = false;
        loop {
            let flushed = self
                .output
                .flush(&mut Socket(&self.stream), &mut ctx.turn.scratch)?;
            if self.output.progressed {
                self.since = ctx.turn.now;
            }
            // Once per flush, so a handler that overflows again in on_drain cannot loop.
            if !drained && self.owes_drain(ctx.app) {
                drained = true;
                self.on_session(ctx.app, ctx.turn, true, |s, step| s.drained(step));
                continue;
            }
            if flushed == Flushed::Blocked {
                return Ok(Next::Keep);
            }
            if !self.read_paused {
                break;
            }
            // Output drained below the mark: parse what was held back, then read on.
            self.read_paused = false;
            self.process_held(ctx);
            self.read_all(ctx, read_buf, false)?;
        }
        self.after_output(ctx.turn.now)
    }

    /// Writes the scratch buffer straight to the socket; true when all of it
    /// went. What the socket refused stays in the scratch buffer for the
    /// general path to queue.
    #[inline(always)]
    fn write_scratch(&mut self, ctx: &mut Ctx<'_>) -> io::Result<bool> {
        let (mut done, mut progressed) = (0, false);
        let flushed = write_all_nb(
            &mut Socket(&self.stream),
            &ctx.turn.scratch,
            &mut done,
            &mut progressed,
            false,
        )?;
        if progressed {
            self.since = ctx.turn.now;
        }
        if flushed == Flushed::All {
            ctx.turn.scratch.clear();
        } else {
            ctx.turn.scratch.drain(..done);
        }
        Ok(flushed == Flushed::All)
    }

    /// Decides what an idle output means in each phase.
    #[inline(always)]
    fn after_output(&mut self, now: Instant) -> io::Result<Next> {
        match self.phase {
            Phase::Closing { .. } => {
                if self.read_closed {
                    return Ok(Next::Close);
                }
                // Ignore errors: the peer may already be gone, which is what we want.
                let _ = self.stream.shutdown(Shutdown::Write);
                self.input = Vec::new();
                self.phase = Phase::Lingering {
                    until: now + LINGER,
                };
                Ok(Next::Keep)
            }
            _ if self.read_closed => Ok(Next::Close),
            _ => Ok(Next::Keep),
        }
    }

    /// Reads until the socket is drained, output backs up, or the peer closed.
    fn read_all(
        &mut self,
        ctx: &mut Ctx<'_>,
        read_buf: &mut Vec<u8>,
        hint_closed: bool,
    ) -> io::Result<()> {
        loop {
            if self.paused(ctx) {
                self.read_paused = true;
                return Ok(());
            }
            match Socket(&self.stream).read_spare(read_buf) {
                Ok(0) => {
                    self.read_closed = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.since = ctx.turn.now;
                    self.take_bytes(ctx, &mut read_buf[..n]);
                    if !self.input.is_empty() && self.paused(ctx) {
                        // Input may be held unprocessed: resume it once the output drains.
                        self.read_paused = true;
                        return Ok(());
                    }
                    // A short read means the socket is drained: edge-triggered
                    // polling reports the next arrival, so skip the extra read
                    // that would only say WouldBlock. A pending EOF was flagged
                    // in the event, so keep reading then to see it.
                    if n < read_buf.capacity() && !hint_closed {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// True while queued output is too large to take more input: a peer
    /// that sends but does not read cannot make this connection hold more
    /// than the limit plus one answer.
    ///
    /// HTTP stops at `HIGH_WATER`. A WebSocket stops at half of
    /// `webSockets.maxBackpressure`, so the answer to the last message read
    /// still fits under the limit (an echo loses nothing to a slow reader),
    /// and whenever a send did not fit, until `on_drain`.
    #[inline]
    fn paused(&self, ctx: &Ctx<'_>) -> bool {
        if !self.output.is_idle() {
            return self.paused_with_backlog(ctx);
        }
        // The common case, nothing queued but the scratch, without walking the queue.
        self.over_mark(ctx, ctx.turn.scratch.len())
    }

    #[inline(never)]
    fn paused_with_backlog(&self, ctx: &Ctx<'_>) -> bool {
        self.output.streaming()
            || self.over_mark(ctx, self.output.backlog() + ctx.turn.scratch.len())
    }

    /// True when `queued` bytes of output are enough to stop taking input.
    #[inline]
    fn over_mark(&self, ctx: &Ctx<'_>, queued: usize) -> bool {
        match &self.phase {
            Phase::WebSocket(s) => {
                s.owes_drain() || queued >= ctx.app.config.web_sockets.max_backpressure / 2
            }
            _ => queued > HIGH_WATER,
        }
    }

    /// Processes freshly read bytes, keeping only an unprocessed tail.
    #[inline(always)]
    fn take_bytes(&mut self, ctx: &mut Ctx<'_>, fresh: &mut [u8]) {
        if self.input.is_empty() {
            let used = match self.phase {
                // One session call takes every whole frame there is.
                Phase::WebSocket(_) => self.on_frames(ctx, fresh),
                _ => self.process(ctx, fresh),
            };
            if used < fresh.len() {
                self.input.extend_from_slice(&fresh[used..]);
            }
        } else {
            self.input.extend_from_slice(fresh);
            self.process_held(ctx);
        }
    }

    /// Processes the bytes held from earlier reads.
    fn process_held(&mut self, ctx: &mut Ctx<'_>) {
        if self.input.is_empty() {
            return;
        }
        let mut held = mem::take(&mut self.input);
        let used = self.process(ctx, &mut held);
        held.drain(..used);
        if !held.is_empty() {
            self.input = held;
        }
    }

    /// Runs the protocol over `data`; returns how many bytes were used.
    fn process(&mut self, ctx: &mut Ctx<'_>, data: &mut [u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() && !self.paused(ctx) {
            let rest = &mut data[pos..];
            let used = match self.phase {
                Phase::Head { .. } => self.on_head_bytes(ctx, rest),
                Phase::Body(_) => self.on_body_bytes(ctx, rest),
                Phase::WebSocket(_) => self.on_frames(ctx, rest),
                Phase::Closing { .. } | Phase::Lingering { .. } => rest.len(),
            };
            if used == 0 {
                break;
            }
            pos += used;
        }
        pos
    }

    // Out of line: its header array would otherwise swell the stack frame of
    // `process`, which every WebSocket read goes through.
    #[inline(never)]
    fn on_head_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        if let Phase::Head {
            started: started @ None,
        } = &mut self.phase
        {
            *started = Some(ctx.turn.now);
        }
        let limits = ctx.app.limits;
        let mut storage = header_storage();
        let head = match parse_head(buf, &mut storage, &limits) {
            Ok(Some(head)) => head,
            Ok(None) => return 0,
            Err(e) => {
                self.refuse(ctx, e);
                return buf.len();
            }
        };
        let started = match self.phase {
            Phase::Head { started } => started.unwrap_or(ctx.turn.now),
            _ => ctx.turn.now,
        };
        match head.framing {
            Framing::None => {
                self.respond(ctx, &head, &[]);
                head.len
            }
            // The whole body is here already: answer from the read buffer, no copy.
            Framing::Length(n) if (buf.len() - head.len) as u64 >= n => {
                let end = head.len + n as usize;
                self.respond(ctx, &head, &buf[head.len..end]);
                end
            }
            framing => {
                if head.expect_continue {
                    self.output
                        .target(&mut ctx.turn.scratch)
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                self.phase = Phase::Body(Box::new(PendingBody {
                    head: buf[..head.len].to_vec(),
                    decoder: BodyDecoder::new(framing),
                    body: Vec::new(),
                    started,
                }));
                head.len
            }
        }
    }

    #[inline(never)]
    fn on_body_bytes(&mut self, ctx: &mut Ctx<'_>, buf: &[u8]) -> usize {
        let Phase::Body(pending) = &mut self.phase else {
            return 0;
        };
        let progress = match pending
            .decoder
            .decode(buf, &mut pending.body, ctx.app.limits.body)
        {
            Ok(p) => p,
            Err(e) => {
                self.refuse(ctx, e);
                return buf.len();
            }
        };
        if progress.done {
            let Phase::Body(pending) = mem::replace(&mut self.phase, Phase::Head { started: None })
            else {
                return progress.consumed;
            };
            let limits = ctx.app.limits;
            let mut storage = header_storage();
            // The head parsed before; parsing it again from its copy is cheaper than owning it.
            match parse_head(&pending.head, &mut storage, &limits) {
                Ok(Some(head)) => self.respond(ctx, &head, &pending.body),
                _ => self.refuse(ctx, HttpError::Malformed),
            }
        }
        progress.consumed
    }

    /// Answers a complete request and moves to the next phase.
    fn respond(&mut self, ctx: &mut Ctx<'_>, head: &Head<'_>, body: &[u8]) {
        self.served += 1;
        let close =
            !head.keep_alive || self.served >= ctx.app.config.limits.requests || ctx.app.stopping;
        let origin = Origin {
            id: self.id(ctx),
            peer: self.peer,
            now: ctx.turn.now,
        };
        let out = self.output.target(&mut ctx.turn.scratch);
        let handled = ctx.app.handle(head, body, origin, out, close);
        if let Some(file) = handled.file {
            self.output.set_file(file);
        }
        self.phase = match handled.upgrade {
            _ if handled.close => Phase::Closing { until: None },
            Some(session) => Phase::WebSocket(session),
            None => Phase::Head { started: None },
        };
    }

    fn id(&self, ctx: &Ctx<'_>) -> ConnId {
        ConnId {
            key: ctx.key,
            serial: self.serial,
        }
    }

    /// Runs `f` on the WebSocket session with its handler, config, hub and
    /// the turn. Its sends go to the turn's scratch buffer when that holds
    /// this connection's output of this event (`shared`) and nothing is
    /// queued before it; else the connection's queue is lent to the turn for
    /// the while. Ends the WebSocket when `f` says so.
    #[inline(always)]
    fn on_session(
        &mut self,
        app: &mut App,
        turn: &mut Turn,
        shared: bool,
        f: impl FnOnce(&mut Session, Step<'_>) -> Flow,
    ) -> Option<Flow> {
        let Phase::WebSocket(session) = &mut self.phase else {
            return None;
        };
        let max = app.config.web_sockets.max_backpressure;
        let mut lent = None;
        if shared && !self.output.has_queue() {
            turn.room = max;
        } else {
            turn.room = max.saturating_sub(self.output.backlog());
            let tail = self.output.tail();
            mem::swap(&mut turn.scratch, tail);
            lent = Some(tail);
        }
        let Some((handler, config, hub)) = app.socket(session.handler()) else {
            if let Some(tail) = lent {
                mem::swap(&mut turn.scratch, tail);
            }
            return None;
        };
        let flow = f(session, Step::new(handler, config, hub, turn, &self.peer));
        if let Some(tail) = lent {
            mem::swap(&mut turn.scratch, tail);
        }
        if flow == Flow::Close {
            self.end_websocket(turn.now);
        }
        Some(flow)
    }

    /// Runs WebSocket frames through the session; returns the bytes used.
    fn on_frames(&mut self, ctx: &mut Ctx<'_>, buf: &mut [u8]) -> usize {
        let mut used = buf.len();
        let idle_at = ctx.turn.idle_at;
        let flow = self.on_session(ctx.app, ctx.turn, true, |session, step| {
            let (n, flow) = session.receive(step, buf, idle_at);
            used = n;
            flow
        });
        match flow {
            Some(Flow::Open) => used,
            _ => buf.len(),
        }
    }

    /// Queues a frame another connection's handler sent here.
    pub fn deliver(&mut self, config: &Config, frame: &Rc<[u8]>) -> Delivered {
        let Phase::WebSocket(session) = &mut self.phase else {
            return Delivered::Refused;
        };
        if session.in_block() {
            return Delivered::Held;
        }
        if !session.can_send() {
            return Delivered::Refused;
        }
        // The limit plus one message: a frame is refused only once the limit is reached.
        if self.output.backlog() >= config.web_sockets.max_backpressure {
            return if session.dropped(config) {
                Delivered::Close
            } else {
                Delivered::Dropped
            };
        }
        session.count_delivery(frame_payload_len(frame));
        self.output.push_shared(frame);
        Delivered::Queued
    }

    /// True while a WebSocket is in the middle of a `send_block` message.
    pub fn in_block(&self) -> bool {
        matches!(&self.phase, Phase::WebSocket(s) if s.in_block())
    }

    /// Bytes queued beyond what the socket took.
    pub fn backlog(&self) -> usize {
        self.output.backlog()
    }

    /// True when a WebSocket that dropped sends for backpressure has room again
    /// (its output is below half of `webSockets.maxBackpressure`).
    fn owes_drain(&self, app: &App) -> bool {
        matches!(&self.phase, Phase::WebSocket(s) if s.owes_drain())
            && self.output.backlog() <= app.config.web_sockets.max_backpressure / 2
    }

    /// The hub asked to close this WebSocket.
    pub fn close_socket(&mut self, app: &mut App, turn: &mut Turn, code: u16, reason: &str) {
        self.on_session(app, turn, false, |session, step| {
            session.close_by_server(step, code, reason);
            Flow::Open
        });
    }

    /// Runs the handler's `on_timer` for one of this connection's timers.
    pub fn user_timer(&mut self, ctx: &mut Ctx<'_>, timer: TimerId) {
        self.on_session(ctx.app, ctx.turn, true, |session, step| {
            session.timer(step, timer)
        });
    }

    /// The server is stopping: close the WebSocket with 1001 and report it.
    /// The server is stopping: a WebSocket starts its closing handshake with
    /// 1001; returns true for an idle HTTP connection, which can simply be closed.
    pub fn wind_down(&mut self, app: &mut App, turn: &mut Turn) -> bool {
        match self.phase {
            Phase::WebSocket(_) => {
                self.on_session(app, turn, false, |session, step| {
                    session.close_by_server(step, GOING_AWAY, "server shutting down");
                    Flow::Open
                });
                false
            }
            Phase::Head { started: None } => self.output.is_idle(),
            _ => false,
        }
    }

    /// The WebSocket's state, for the hub's filters.
    pub fn socket_state<'a>(&self, app: &'a App) -> Option<&'a dyn std::any::Any> {
        match &self.phase {
            Phase::WebSocket(session) => app.socket_state(session.handler(), session.state()),
            _ => None,
        }
    }

    /// The WebSocket is over: flush, then close the TCP connection (the server closes first, RFC 6455 §7.1.1).
    fn end_websocket(&mut self, now: Instant) {
        self.phase = Phase::Closing {
            until: Some(now + LINGER),
        };
    }

    /// Called before the connection is dropped: a WebSocket that did not
    /// finish its closing handshake reports 1006 to its handler.
    pub fn release(&mut self, app: &mut App, turn: &mut Turn) {
        // Whatever the handler sends from on_close here goes nowhere: the socket is going.
        self.on_session(app, turn, false, |session, step| {
            session.abandon(step);
            Flow::Open
        });
    }

    /// Queues an error answer and stops reading requests.
    fn refuse(&mut self, ctx: &mut Ctx<'_>, err: HttpError) {
        log::debug!("{}: {} {err}", self.peer, err.status());
        ctx.app
            .refuse(err, self.output.target(&mut ctx.turn.scratch));
        self.phase = Phase::Closing {
            until: Some(ctx.turn.now + LINGER),
        };
    }

    /// When this connection next needs attention.
    #[inline(always)]
    pub fn due(&self, t: &Timeouts) -> Option<Instant> {
        match &self.phase {
            // The busiest case first, and without a call.
            Phase::WebSocket(session) if self.output.is_idle() => session.due(),
            _ => self.due_otherwise(t),
        }
    }

    /// `due` for everything but an idle WebSocket.
    #[inline(never)]
    fn due_otherwise(&self, t: &Timeouts) -> Option<Instant> {
        let stall = || add(self.since, t.inactivity);
        match &self.phase {
            Phase::Lingering { until } | Phase::Closing { until: Some(until) } => Some(*until),
            Phase::WebSocket(session) => earliest(session.due(), stall()),
            _ if !self.output.is_idle() => stall(),
            Phase::Head { started: None } | Phase::Closing { until: None } => stall(),
            Phase::Head { started: Some(s) } => earliest(add(*s, t.parse), add(*s, t.request)),
            Phase::Body(p) => add(p.started, t.request),
        }
    }

    /// Acts on a passed deadline.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>, read_buf: &mut Vec<u8>) -> io::Result<Next> {
        if matches!(self.phase, Phase::WebSocket(_)) {
            let stalled = !self.output.is_idle()
                && add(self.since, ctx.app.config.timeouts.inactivity)
                    .is_some_and(|d| d <= ctx.turn.now);
            if stalled {
                // The peer stopped reading: nothing can reach it any more.
                self.release(ctx.app, ctx.turn);
                return Ok(Next::Close);
            }
            self.on_session(ctx.app, ctx.turn, true, |session, step| {
                session.timeout(step)
            });
            return self.flush(ctx, read_buf);
        }
        let receiving = matches!(
            self.phase,
            Phase::Head { started: Some(_) } | Phase::Body(_)
        );
        if receiving && self.output.is_idle() {
            // Slowloris or a stalled upload: say so, then close.
            self.refuse(ctx, HttpError::Timeout);
            return self.flush(ctx, read_buf);
        }
        Ok(Next::Close)
    }
}

/// The payload length of an encoded server frame (for counting).
pub(crate) fn frame_payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}

fn add(t: Instant, d: Option<Duration>) -> Option<Instant> {
    d.and_then(|d| t.checked_add(d))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
