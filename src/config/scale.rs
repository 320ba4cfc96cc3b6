//! Scaling out: `workers` (loops on one machine) and `backplane` (rooms
//! across machines over Redis).

use serde_json::Value;

use super::read::{self, fail, Obj};

/// The most workers (an id has 8 bits for its worker).
pub const MAX_WORKERS: usize = 256;

/// The Redis backplane: `backplane: { redis: 'redis://127.0.0.1:6379',
/// channel: 'wisp', node: 'device-a' }`.
///
/// Room publishes, broadcasts and sends to connections of other nodes go
/// through Redis pub/sub on `channel`; every node of a cluster names the
/// same Redis and channel and its own `node`. Delivery across nodes is at
/// most once (like Socket.IO's Redis adapter): what is published while
/// Redis is out of reach is dropped, and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backplane {
    /// The Redis server (`redis`), a `redis://host:port` URL.
    pub redis: String,
    /// The pub/sub channel (`channel`, default `'wisp'`).
    pub channel: String,
    /// This node's name (`node`): letters, digits, `-`, `_`, `.`; default
    /// the host name. It is in every [`ConnId`](crate::ConnId)'s text form,
    /// in `/api/status` and in the start line.
    pub node: String,
}

impl Backplane {
    /// A backplane on `redis` with the default channel and this host's name.
    pub fn new(redis: &str) -> Backplane {
        Backplane {
            redis: redis.to_string(),
            channel: "wisp".to_string(),
            node: host_name(),
        }
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`), made a
/// valid node name; `'wisp'` when neither says.
pub fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    if name.is_empty() {
        "wisp".to_string()
    } else {
        name
    }
}

/// `workers: 4` or `workers: 'auto'` (the cores available).
pub(super) fn workers(path: &str, v: &Value) -> read::Result<usize> {
    let n = match v {
        Value::String(s) if s == "auto" => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
        Value::Number(n) => match n.as_u64() {
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return fail(path, "expected at least 1 worker, or 'auto'"),
        },
        _ => return fail(path, "expected a number of workers such as 4, or 'auto'"),
    };
    if n > MAX_WORKERS {
        return fail(path, format!("at most {MAX_WORKERS} workers"));
    }
    Ok(n)
}

/// `backplane: { redis, channel, node }`.
pub(super) fn backplane(path: &str, v: &Value) -> read::Result<Backplane> {
    let o = Obj::new(path, v, &["redis", "channel", "node"])?;
    let Some(redis) = o.string("redis")? else {
        return fail(
            &o.path_of("redis"),
            "needed: the Redis URL, e.g. 'redis://127.0.0.1:6379'",
        );
    };
    if !redis.starts_with("redis://") {
        return fail(&o.path_of("redis"), "expected a redis:// URL");
    }
    let mut backplane = Backplane::new(&redis);
    if let Some(channel) = o.string("channel")? {
        if channel.is_empty() {
            return fail(&o.path_of("channel"), "must not be empty");
        }
        backplane.channel = channel;
    }
    if let Some(node) = o.string("node")? {
        if !crate::message::is_node_name(&node) {
            return fail(
                &o.path_of("node"),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        backplane.node = node;
    }
    Ok(backplane)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(web: &str) -> Result<Config, String> {
        Config::parse(&format!("{{ web: {web} }}"), ".".as_ref()).map_err(|e| e.to_string())
    }

    #[test]
    fn workers_and_backplane_are_read() {
        assert_eq!(parse("{}").unwrap().workers, 1);
        assert_eq!(parse("{ workers: 3 }").unwrap().workers, 3);
        assert!(parse("{ workers: 'auto' }").unwrap().workers >= 1);
        for bad in ["0", "-1", "'many'", "1000"] {
            let e = parse(&format!("{{ workers: {bad} }}")).unwrap_err();
            assert!(e.contains("web.workers"), "{e}");
        }
        let c = parse("{ backplane: { redis: 'redis://127.0.0.1:7000', node: 'a-1' } }").unwrap();
        let b = c.backplane.unwrap();
        assert_eq!(
            (b.redis.as_str(), b.channel.as_str(), b.node.as_str()),
            ("redis://127.0.0.1:7000", "wisp", "a-1")
        );
        for bad in [
            "{}",
            "{ redis: 'http://x' }",
            "{ redis: 'redis://x', node: 'a b' }",
            "{ redis: 'redis://x', nodes: 'a' }",
        ] {
            let e = parse(&format!("{{ backplane: {bad} }}")).unwrap_err();
            assert!(e.contains("web.backplane"), "{e}");
        }
    }
}
