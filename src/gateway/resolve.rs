//! Downstream host names to addresses, never on the loop: literal
//! addresses are parsed once; names are resolved once when their route is
//! added (before the loop runs) and then again by a helper thread, at most
//! every 30 seconds.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often names are looked up again.
const REFRESH: Duration = Duration::from_secs(30);

/// One route's hosts as configured (`host:port`) and their addresses.
type Table = Vec<(Vec<String>, Vec<Option<SocketAddr>>)>;

/// The addresses of every route's hosts, by route and host index.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    table: Arc<Mutex<Table>>,
    /// The refreshing thread runs (it is started for the first name).
    refreshing: bool,
}

impl Resolver {
    /// Resolves a new route's `hosts` (its index is the next one) and, for
    /// the first name, starts the thread that keeps names fresh.
    pub fn add_route(&mut self, hosts: Vec<String>) {
        let addrs = hosts.iter().map(|h| lookup(h)).collect();
        let names = hosts.iter().any(|h| h.parse::<SocketAddr>().is_err());
        lock(&self.table).push((hosts, addrs));
        if names && !self.refreshing {
            let table = Arc::downgrade(&self.table);
            let spawned = std::thread::Builder::new()
                .name("wisp-resolver".into())
                .spawn(move || refresh(&table));
            match spawned {
                Ok(_) => self.refreshing = true,
                Err(e) => {
                    log::warn!("gateway: no resolver thread ({e}); names keep their first address")
                }
            }
        }
    }

    /// The address of host `host` of route `route`, if it resolved.
    pub fn addr(&self, route: usize, host: usize) -> Option<SocketAddr> {
        lock(&self.table).get(route)?.1.get(host).copied().flatten()
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// Looks names up again every `REFRESH` until the resolver is dropped,
/// without holding the lock while it does. A lookup that fails keeps the
/// last address that worked.
fn refresh(table: &Weak<Mutex<Table>>) {
    loop {
        std::thread::sleep(REFRESH);
        let Some(shared) = table.upgrade() else {
            return;
        };
        let names: Vec<Vec<String>> = lock(&shared).iter().map(|(h, _)| h.clone()).collect();
        drop(shared);
        let fresh: Vec<Vec<Option<SocketAddr>>> = names
            .iter()
            .map(|hosts| hosts.iter().map(|h| lookup(h)).collect())
            .collect();
        let Some(shared) = table.upgrade() else {
            return;
        };
        for ((_, old), new) in lock(&shared).iter_mut().zip(fresh) {
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
        let mut r = Resolver::default();
        r.add_route(vec![
            "127.0.0.1:5001".into(),
            "[::1]:5002".into(),
            "localhost:5003".into(),
            "no-such-host.invalid:1".into(),
        ]);
        assert_eq!(r.addr(0, 0), Some("127.0.0.1:5001".parse().unwrap()));
        assert_eq!(r.addr(0, 1), Some("[::1]:5002".parse().unwrap()));
        assert_eq!(r.addr(0, 2).map(|a| a.port()), Some(5003));
        assert_eq!(r.addr(0, 3), None);
        assert_eq!(r.addr(1, 0), None);
    }
}
