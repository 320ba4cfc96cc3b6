//! The server's counters, readable from handlers and served as JSON by the binary.

use serde::Serialize;

/// Counters since the server started. Read them in a callback with
/// [`WebSocket::stats`](crate::WebSocket::stats) or
/// [`Hub::stats`](crate::Hub::stats), in an HTTP action with
/// [`Request::stats`](crate::Request::stats), or from another thread with
/// [`ServerHandle::stats`](crate::ServerHandle::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now (HTTP and WebSocket), not counting those turned away.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// HTTP requests answered (upgrades included).
    pub requests: u64,
    /// WebSockets open now.
    pub websockets_open: u64,
    /// WebSockets opened since start.
    pub websockets_total: u64,
    /// Server-Sent Event streams open now.
    pub events_open: u64,
    /// Server-Sent Event streams opened since start.
    pub events_total: u64,
    /// WebSocket messages received (a streamed message counts once, at its end).
    pub messages_in: u64,
    /// WebSocket messages sent, counted per recipient.
    pub messages_out: u64,
    /// WebSocket payload bytes received.
    pub bytes_in: u64,
    /// WebSocket payload bytes sent, counted per recipient.
    pub bytes_out: u64,
    /// Upgrade requests refused (bad handshake or refused by `on_upgrade`).
    pub upgrades_rejected: u64,
    /// How often each limit was hit.
    pub limits: LimitHits,
    /// TLS certificate reloads that took effect
    /// ([`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls), SIGHUP
    /// in the binary).
    pub tls_reloads: u64,
    /// TLS certificate reloads refused (the old certificate stays): the
    /// error is logged.
    pub tls_reload_failures: u64,
    /// Worker loops restarted after a panic (`web.workers` over 1): each
    /// lost its own connections, the others were undisturbed.
    pub worker_restarts: u64,
    /// Deliveries for another worker or the backplane dropped because its
    /// queue was full (a loop or Redis falling behind).
    pub cluster_dropped: u64,
    /// The Redis backplane's counters (`web.backplane`); absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backplane: Option<BackplaneStats>,
    /// Every proxy route's downstream hosts (empty without the gateway).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<DownstreamStats>,
}

/// One downstream host of a proxy route, as `/api/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DownstreamStats {
    /// The route's `match`.
    pub route: String,
    /// The host as configured (`host:port`).
    pub host: String,
    /// Connections open to it now.
    pub open: u64,
    /// Requests sent to it in all: each proxied WebSocket and plain request,
    /// on a new connection or one kept alive.
    pub requests: u64,
    /// Failed connects and handshakes in all.
    pub failures: u64,
    /// `closed` (in use), `open` (skipped for `breaker.pause`) or
    /// `half-open` (the next request tries it).
    pub breaker: String,
}

/// How often each limit refused something.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitHits {
    /// Connections answered 503 (over `limits.connections` or `limits.connectionsPerIp`).
    pub connections: u64,
    /// Request heads over `limits.header` or `limits.headers` (431).
    pub header: u64,
    /// Request targets over `limits.uri` (414).
    pub uri: u64,
    /// Request bodies over `limits.body` (413).
    pub body: u64,
    /// Requests not received within `timeouts.parse` or `timeouts.request` (408).
    pub timeouts: u64,
    /// WebSocket frames over `limits.maxFrame` (1009).
    pub frame: u64,
    /// WebSocket messages over `limits.maxMessage` (1009).
    pub message: u64,
    /// WebSocket protocol violations (1002, 1007).
    pub protocol: u64,
    /// Messages dropped, or connections closed with 1008, because a
    /// connection's output was over `webSockets.maxBackpressure`.
    pub backpressure: u64,
    /// Messages dropped, or connections closed with 1008, over `limits.rate`.
    pub rate: u64,
    /// Of those, the ones over `limits.connectionsPerIp`.
    pub connections_per_ip: u64,
    /// Requests refused with 401 by a route's `auth`, and upgrades refused with 403 by `webSockets.origins`.
    pub auth: u64,
}

/// Per-connection counters (the C++ framework's `get_metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnStats {
    /// Messages received on this connection.
    pub messages_in: u64,
    /// Messages sent to this connection.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
}

/// The backplane's counters (`web.backplane`), as `/api/status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// This node's name (`web.backplane.node`).
    pub node: String,
    /// Connected to Redis now.
    pub connected: bool,
    /// Times Redis could not be reached or was lost (each logged).
    pub outages: u64,
    /// Messages published to Redis.
    pub sent: u64,
    /// Messages from other nodes handed to the loops.
    pub received: u64,
    /// Messages not sent: Redis was down or its queue was full. Delivery
    /// across nodes is at most once.
    pub dropped: u64,
    /// Messages from Redis that did not decode, dropped unread.
    pub malformed: u64,
}

impl Stats {
    /// Adds another worker's counters to these (the backplane's and the
    /// restarts are the process's, taken from whichever has them).
    pub(crate) fn merge(&mut self, o: &Stats) {
        let sums = [
            (&mut self.connections_open, o.connections_open),
            (&mut self.connections_total, o.connections_total),
            (&mut self.requests, o.requests),
            (&mut self.websockets_open, o.websockets_open),
            (&mut self.websockets_total, o.websockets_total),
            (&mut self.events_open, o.events_open),
            (&mut self.events_total, o.events_total),
            (&mut self.messages_in, o.messages_in),
            (&mut self.messages_out, o.messages_out),
            (&mut self.bytes_in, o.bytes_in),
            (&mut self.bytes_out, o.bytes_out),
            (&mut self.upgrades_rejected, o.upgrades_rejected),
            (&mut self.tls_reloads, o.tls_reloads),
            (&mut self.tls_reload_failures, o.tls_reload_failures),
            (&mut self.cluster_dropped, o.cluster_dropped),
        ];
        for (sum, add) in sums {
            *sum += add;
        }
        self.limits.merge(&o.limits);
        self.worker_restarts = self.worker_restarts.max(o.worker_restarts);
        if self.backplane.is_none() {
            self.backplane.clone_from(&o.backplane);
        }
        self.gateway.extend(o.gateway.iter().cloned());
    }
}

impl LimitHits {
    fn merge(&mut self, o: &LimitHits) {
        let sums = [
            (&mut self.connections, o.connections),
            (&mut self.header, o.header),
            (&mut self.uri, o.uri),
            (&mut self.body, o.body),
            (&mut self.timeouts, o.timeouts),
            (&mut self.frame, o.frame),
            (&mut self.message, o.message),
            (&mut self.protocol, o.protocol),
            (&mut self.backpressure, o.backpressure),
            (&mut self.rate, o.rate),
            (&mut self.connections_per_ip, o.connections_per_ip),
            (&mut self.auth, o.auth),
        ];
        for (sum, add) in sums {
            *sum += add;
        }
    }
}
