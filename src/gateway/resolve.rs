//! Downstream host names to addresses, never on the loop: literal
//! addresses are parsed once; names are resolved once at start (before the
//! loop runs) and then again by a helper thread, at most every 30 seconds.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often names are looked up again.
const REFRESH: Duration = Duration::from_secs(30);

/// The addresses of every route's hosts, by route and host index.
#[derive(Debug)]
pub(crate) struct Resolver {
    addrs: Arc<Mutex<Vec<Vec<Option<SocketAddr>>>>>,
}

impl Resolver {
    /// Resolves `hosts` (per route, `host:port` each) and, if any is a
    /// name, starts the thread that keeps them fresh.
    pub fn start(hosts: Vec<Vec<String>>) -> Resolver {
        let first: Vec<Vec<Option<SocketAddr>>> = hosts
            .iter()
            .map(|route| route.iter().map(|h| lookup(h)).collect())
            .collect();
        let addrs = Arc::new(Mutex::new(first));
        let names = hosts
            .iter()
            .flatten()
            .any(|h| h.parse::<SocketAddr>().is_err());
        if names {
            let shared = Arc::downgrade(&addrs);
            let spawned = std::thread::Builder::new()
                .name("wisp-resolver".into())
                .spawn(move || refresh(&hosts, &shared));
            if let Err(e) = spawned {
                log::warn!("gateway: no resolver thread ({e}); names keep their first address");
            }
        }
        Resolver { addrs }
    }

    /// The address of host `host` of route `route`, if it resolved.
    pub fn addr(&self, route: usize, host: usize) -> Option<SocketAddr> {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        addrs.get(route)?.get(host).copied().flatten()
    }
}

/// Looks names up again every `REFRESH` until the resolver is dropped. A
/// lookup that fails keeps the last address that worked.
fn refresh(hosts: &[Vec<String>], shared: &std::sync::Weak<Mutex<Vec<Vec<Option<SocketAddr>>>>>) {
    loop {
        std::thread::sleep(REFRESH);
        let fresh: Vec<Vec<Option<SocketAddr>>> = hosts
            .iter()
            .map(|route| route.iter().map(|h| lookup(h)).collect())
            .collect();
        let Some(addrs) = shared.upgrade() else {
            return;
        };
        let mut addrs = addrs.lock().unwrap_or_else(|e| e.into_inner());
        for (old, new) in addrs.iter_mut().zip(fresh) {
            for (o, n) in old.iter_mut().zip(new) {
                if n.is_some() {
                    *o = n;
                }
            }
        }
    }
}

/// The first address `host:port` stands for (an IPv4 one first).
fn lookup(host: &str) -> Option<SocketAddr> {
    if let Ok(addr) = host.parse() {
        return Some(addr);
    }
    let all: Vec<SocketAddr> = host.to_socket_addrs().ok()?.collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost_resolve_and_unknown_names_do_not() {
        let r = Resolver::start(vec![vec![
            "127.0.0.1:5001".into(),
            "[::1]:5002".into(),
            "localhost:5003".into(),
            "no-such-host.invalid:1".into(),
        ]]);
        assert_eq!(r.addr(0, 0), Some("127.0.0.1:5001".parse().unwrap()));
        assert_eq!(r.addr(0, 1), Some("[::1]:5002".parse().unwrap()));
        assert_eq!(r.addr(0, 2).map(|a| a.port()), Some(5003));
        assert_eq!(r.addr(0, 3), None);
        assert_eq!(r.addr(1, 0), None);
    }
}
