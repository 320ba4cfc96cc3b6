//! `web.limits`: sizes and counts a request, a connection or a room may
//! reach, with their defaults and the reader of their keys (rates are
//! `policy`'s [`Rate`]).

use serde_json::Value;

use super::policy::{self, Rate};
use super::read::{self, fail, Obj};

/// Size and count limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Open connections; beyond it clients are answered 503 (`connections`, default 100).
    pub connections: usize,
    /// Bytes in one request head; beyond it 431 (`header`, default 10K).
    pub header: usize,
    /// Header lines in one request; beyond it 431 (`headers`, default 64, at most 256).
    pub headers: usize,
    /// Bytes in the request target; beyond it 414 (`uri`, default 4K).
    pub uri: usize,
    /// Bytes in a request body; beyond it 413 (`body`, default 100K).
    pub body: u64,
    /// Bytes in one `PUT` body stored by a file route, streamed to the file as
    /// it arrives; beyond it 413 and nothing is stored (`upload`, default 20MB).
    pub upload: u64,
    /// Requests on one keep-alive connection (`requests`, default 1000).
    pub requests: u64,
    /// Bytes in one WebSocket frame payload (`maxFrame`; when not set, the
    /// same as `maxMessage`, since most clients other than browsers send a
    /// message as one frame).
    pub max_frame: u64,
    /// Bytes in one WebSocket message (`maxMessage`, default 1MB).
    pub max_message: u64,
    /// Rooms one WebSocket may be in at once (`roomsPerConnection`, default 32).
    pub rooms_per_connection: usize,
    /// Members one room may have (`roomMembers`, default 10000).
    pub room_members: usize,
    /// Connections from one IP address; more are answered 503
    /// (`connectionsPerIp`, default `'unlimited'`).
    pub connections_per_ip: usize,
    /// Per-WebSocket message and byte rates (`rate`, default none).
    pub rate: Option<Rate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 100,
            header: 10 * 1024,
            headers: 64,
            uri: 4 * 1024,
            body: 100 * 1024,
            upload: 20 * 1024 * 1024,
            requests: 1000,
            max_frame: 1024 * 1024,
            max_message: 1024 * 1024,
            rooms_per_connection: 32,
            room_members: 10_000,
            connections_per_ip: usize::MAX,
            rate: None,
        }
    }
}

pub(super) fn limits(path: &str, v: &Value) -> read::Result<Limits> {
    let o = Obj::new(
        path,
        v,
        &[
            "connections",
            "header",
            "headers",
            "uri",
            "body",
            "upload",
            "requests",
            "maxFrame",
            "maxMessage",
            "roomsPerConnection",
            "roomMembers",
            "connectionsPerIp",
            "rate",
        ],
    )?;
    let d = Limits::default();
    let l = Limits {
        connections: o.count("connections")?.unwrap_or(d.connections),
        header: o.size_usize("header")?.unwrap_or(d.header),
        headers: o.count("headers")?.unwrap_or(d.headers),
        uri: o.size_usize("uri")?.unwrap_or(d.uri),
        body: o.size("body")?.unwrap_or(d.body),
        upload: o.size("upload")?.unwrap_or(d.upload),
        requests: o.count("requests")?.map_or(d.requests, |n| n as u64),
        max_frame: o
            .size("maxFrame")?
            .or(o.size("maxMessage")?)
            .unwrap_or(d.max_frame),
        max_message: o.size("maxMessage")?.unwrap_or(d.max_message),
        rooms_per_connection: o
            .count("roomsPerConnection")?
            .unwrap_or(d.rooms_per_connection),
        room_members: o.count("roomMembers")?.unwrap_or(d.room_members),
        connections_per_ip: o.count("connectionsPerIp")?.unwrap_or(d.connections_per_ip),
        rate: o
            .get("rate")
            .map(|(p, v)| policy::rate(&p, v))
            .transpose()?,
    };
    let positive = [
        ("connections", l.connections as u64),
        ("header", l.header as u64),
        ("headers", l.headers as u64),
        ("uri", l.uri as u64),
        ("requests", l.requests),
        ("maxFrame", l.max_frame),
        ("maxMessage", l.max_message),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, n)| *n == 0) {
        return fail(&o.path_of(key), "must be at least 1");
    }
    if l.header < 64 {
        return fail(
            &o.path_of("header"),
            "must be at least 64 bytes to hold a request line",
        );
    }
    Ok(l)
}
