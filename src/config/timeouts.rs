//! `web.timeouts`: how long each stage of a connection may take, with the
//! defaults and the reader of their keys.

use std::time::Duration;

use serde_json::Value;

use super::read::{self, Obj};

/// Time limits; `None` means never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To receive a whole request head, from its first byte (`parse`, default 5 secs).
    pub parse: Option<Duration>,
    /// An idle connection is closed after this (`inactivity`, default 5 mins).
    pub inactivity: Option<Duration>,
    /// To receive a whole request, head and body (`request`, default 5 mins).
    pub request: Option<Duration>,
    /// To finish a TLS handshake, from the connection's accept (`handshake`,
    /// default 10 secs): a client that trickles its handshake is dropped.
    pub handshake: Option<Duration>,
    /// After a stop (SIGINT, SIGTERM, `ServerHandle::stop`), how long
    /// responses in flight and closing handshakes may take (`shutdown`, default 5 secs).
    pub shutdown: Option<Duration>,
    /// To connect to a gateway's downstream host, TLS handshake included
    /// (`connect`, default 5 secs); then the next host is tried.
    pub connect: Option<Duration>,
    /// A login session ends after this long unused (`session`, default 30
    /// mins; each request with the session's cookie starts it over).
    pub session: Option<Duration>,
    /// An idle Server-Sent Events stream gets a comment this often, so
    /// nothing on the way times it out (`keepalive`, default 15 secs).
    pub keepalive: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            parse: Some(Duration::from_secs(5)),
            inactivity: Some(Duration::from_secs(300)),
            request: Some(Duration::from_secs(300)),
            shutdown: Some(Duration::from_secs(5)),
            handshake: Some(Duration::from_secs(10)),
            connect: Some(Duration::from_secs(5)),
            session: Some(Duration::from_secs(30 * 60)),
            keepalive: Some(Duration::from_secs(15)),
        }
    }
}

pub(super) fn timeouts(path: &str, v: &Value) -> read::Result<Timeouts> {
    let keys = [
        "parse",
        "inactivity",
        "request",
        "shutdown",
        "handshake",
        "connect",
        "session",
        "keepalive",
    ];
    let o = Obj::new(path, v, &keys)?;
    let d = Timeouts::default();
    Ok(Timeouts {
        handshake: o.duration("handshake")?.unwrap_or(d.handshake),
        parse: o.duration("parse")?.unwrap_or(d.parse),
        inactivity: o.duration("inactivity")?.unwrap_or(d.inactivity),
        request: o.duration("request")?.unwrap_or(d.request),
        shutdown: o.duration("shutdown")?.unwrap_or(d.shutdown),
        connect: o.duration("connect")?.unwrap_or(d.connect),
        session: o.duration("session")?.unwrap_or(d.session),
        keepalive: o.duration("keepalive")?.unwrap_or(d.keepalive),
    })
}
