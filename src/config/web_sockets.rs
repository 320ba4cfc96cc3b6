//! `web.webSockets`: the WebSocket options and their permessage-deflate
//! settings (`compression`), with their defaults and the reader of their
//! keys. Frame and message sizes are `limits`' ([`Limits`](super::Limits)).

use std::time::Duration;

use serde_json::Value;

use super::read::{self, fail, Obj};

/// WebSocket options; frame and message sizes are in [`Limits`](super::Limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSockets {
    /// Accept WebSocket upgrades at all (`enable`, default `true`). When
    /// `false`, every upgrade request, proxied ones included, is answered
    /// 403 with a page that says WebSockets are off.
    pub enable: bool,
    /// Subprotocols the server speaks, in no particular order (`protocol`: a
    /// string or a list). The first one the client offers that is listed here
    /// is selected; a client offering only others is refused with 400.
    /// Default: none (a client that offers any is refused).
    pub protocols: Vec<String>,
    /// Send a ping this often to every WebSocket (`ping`, default `'never'`).
    /// A peer that sends nothing, not even the pong, for `timeouts.inactivity`
    /// is closed with 1001.
    pub ping: Option<Duration>,
    /// Check that text messages are UTF-8 and fail the connection with 1007
    /// when not (`validateUTF`, default `true`).
    pub validate_utf8: bool,
    /// After sending a close frame, how long to wait for the peer's before
    /// dropping the connection (`closeTimeout`, default `'5 secs'`).
    pub close_timeout: Duration,
    /// Bytes that may wait in one connection's output (`maxBackpressure`,
    /// default `'1MB'`). Sends beyond it are dropped (or close the
    /// connection, below), and the connection is not read until it drains.
    pub max_backpressure: usize,
    /// Close a connection whose output is over `maxBackpressure` with 1008
    /// instead of dropping what does not fit (`closeOnBackpressure`, default `false`).
    pub close_on_backpressure: bool,
    /// Origins allowed to open a WebSocket (`origins`); an upgrade with another
    /// `Origin` gets 403. Empty (the default): any origin.
    pub origins: Vec<String>,
    /// permessage-deflate (`compression`): off unless configured.
    pub compression: Compression,
    /// A room every WebSocket joins as it opens, before its handler's
    /// `on_open` (`waitingRoom`, Altruist's default waiting room; default:
    /// none). It counts against `limits.roomsPerConnection` like any room.
    pub waiting_room: Option<String>,
    /// Leave the waiting room when the connection first joins another room
    /// (`leaveWaitingRoom`, default `true`): a waiting room holds only those
    /// who have not gone anywhere yet. With `false` the connection stays
    /// until it leaves the room itself.
    pub leave_waiting_room: bool,
}

/// permessage-deflate (RFC 7692), `webSockets.compression`: `true`, or an
/// object of the keys below (an object turns it on unless `enable: false`).
///
/// Memory: by default every message is compressed and inflated from a fresh
/// state, so one compressor (32 KiB at level 1, the zlib-rs one of 371 KiB
/// made only for a message over 64 KiB or a higher level) and one inflater
/// (46 KiB) serve every connection; a connection holds an
/// inflater of its own only while one of its compressed messages arrives in
/// pieces. With `contextTakeover` each connection keeps a compressor and an
/// inflater for its whole life: about 420 KiB at 15 window bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Accept a client's `permessage-deflate` offer (`enable`). Default
    /// `false` in code; the shipped `web.json5` turns it on.
    pub enable: bool,
    /// Messages shorter than this are sent uncompressed (`threshold`,
    /// default 256 bytes): compressing them saves next to nothing.
    pub threshold: usize,
    /// zlib level, 0–9 (`level`, default 1: fastest; messages up to 64 KiB
    /// compressed afresh then go through wisp's own encoder, zlib-ng's level
    /// 1 without the cost of clearing zlib's tables for every message).
    pub level: u32,
    /// Let both sides keep their compression context from message to message
    /// (`contextTakeover`, default `false`): a better ratio for streams of
    /// similar messages, at the memory cost above per connection. Broadcasts
    /// and room publishes, compressed once for everyone, reach such
    /// connections uncompressed.
    pub context_takeover: bool,
    /// The largest window the server's compressors use, 9–15 (`windowBits`,
    /// default 15): 371 KiB for a compressor at 15, 245 KiB at 9.
    pub window_bits: u8,
    /// The window clients are asked to keep to when their offer allows it,
    /// 9–15 (`clientWindowBits`, default 15: ask nothing). zlib-rs's
    /// inflater takes 46 KiB whatever the window, so this saves the server
    /// no memory; it is there for peers that want it.
    pub client_window_bits: u8,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enable: false,
            threshold: 256,
            level: 1,
            context_takeover: false,
            window_bits: 15,
            client_window_bits: 15,
        }
    }
}

impl Default for WebSockets {
    fn default() -> Self {
        WebSockets {
            enable: true,
            protocols: Vec::new(),
            ping: None,
            validate_utf8: true,
            close_timeout: Duration::from_secs(5),
            max_backpressure: 1024 * 1024,
            close_on_backpressure: false,
            origins: Vec::new(),
            compression: Compression::default(),
            waiting_room: None,
            leave_waiting_room: true,
        }
    }
}

pub(super) fn web_sockets(path: &str, v: &Value) -> read::Result<WebSockets> {
    const KEYS: &[&str] = &[
        "enable",
        "protocol",
        "ping",
        "validateUTF",
        "closeTimeout",
        "maxBackpressure",
        "closeOnBackpressure",
        "origins",
        "compression",
        "waitingRoom",
        "leaveWaitingRoom",
    ];
    let o = Obj::new(path, v, KEYS)?;
    let d = WebSockets::default();
    let waiting_room = o.string("waitingRoom")?;
    if waiting_room.as_deref() == Some("") {
        return fail(&o.path_of("waitingRoom"), "must name a room");
    }
    let protocols = o.strings("protocol")?.unwrap_or_default();
    if let Some(bad) = protocols.iter().find(|p| !is_token(p)) {
        return fail(
            &o.path_of("protocol"),
            format!("{bad:?} is not a valid protocol token"),
        );
    }
    Ok(WebSockets {
        enable: o.boolean("enable")?.unwrap_or(d.enable),
        protocols,
        ping: o.duration("ping")?.unwrap_or(d.ping),
        validate_utf8: o.boolean("validateUTF")?.unwrap_or(d.validate_utf8),
        close_timeout: match o.duration("closeTimeout")? {
            None => d.close_timeout,
            Some(Some(t)) => t,
            Some(None) => return fail(&o.path_of("closeTimeout"), "must be a finite duration"),
        },
        max_backpressure: o
            .size_usize("maxBackpressure")?
            .unwrap_or(d.max_backpressure),
        close_on_backpressure: o
            .boolean("closeOnBackpressure")?
            .unwrap_or(d.close_on_backpressure),
        origins: o.strings("origins")?.unwrap_or_default(),
        compression: match o.get("compression") {
            Some((path, v)) => compression(&path, v)?,
            None => d.compression,
        },
        waiting_room,
        leave_waiting_room: o
            .boolean("leaveWaitingRoom")?
            .unwrap_or(d.leave_waiting_room),
    })
}

/// `webSockets.compression`: `true`/`false`, or an object.
fn compression(path: &str, v: &Value) -> read::Result<Compression> {
    let d = Compression::default();
    if let Value::Bool(enable) = v {
        return Ok(Compression {
            enable: *enable,
            ..d
        });
    }
    const KEYS: &[&str] = &[
        "enable",
        "threshold",
        "level",
        "contextTakeover",
        "windowBits",
        "clientWindowBits",
    ];
    let o = Obj::new(path, v, KEYS)?;
    Ok(Compression {
        enable: o.boolean("enable")?.unwrap_or(true),
        threshold: o.size_usize("threshold")?.unwrap_or(d.threshold),
        level: number_in(&o, "level", 0, 9)?.unwrap_or(d.level),
        context_takeover: o.boolean("contextTakeover")?.unwrap_or(d.context_takeover),
        window_bits: bits(&o, "windowBits")?.unwrap_or(d.window_bits),
        client_window_bits: bits(&o, "clientWindowBits")?.unwrap_or(d.client_window_bits),
    })
}

/// A window size in bits as zlib takes it for raw deflate: 9 to 15.
fn bits(o: &Obj<'_>, key: &str) -> read::Result<Option<u8>> {
    Ok(number_in(o, key, 9, 15)?.map(|n| n as u8))
}

/// A whole number from `low` to `high`.
fn number_in(o: &Obj<'_>, key: &str, low: u32, high: u32) -> read::Result<Option<u32>> {
    let Some((path, v)) = o.get(key) else {
        return Ok(None);
    };
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) if (low..=high).contains(&n) => Ok(Some(n)),
        _ => fail(
            &path,
            format!("expected a whole number from {low} to {high}"),
        ),
    }
}

/// An HTTP token (RFC 9110 §5.6.2), as a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && crate::http::response::header_is_safe(s, "")
}
