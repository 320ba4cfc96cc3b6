//! The top-level `redirect` entries: [`Redirect`] and the reader of its
//! keys (with the `status` check a route's `redirect` shares), and for the
//! entries that name a listener rather than a path
//! (`{ from: 'http://:8080', to: 'https://:8443' }`, every request on that
//! listener sent to the same path and query at the `to` scheme and port)
//! the parsing of `from` and `to`.

use std::net::SocketAddr;

use serde_json::Value;

use super::read::{self, fail, Obj};
use super::units::parse_listen_url;

/// One entry of the top-level `redirect` list, in either of Ioto's forms:
///
/// - a path: `{ from: '/old', to: '/new' }` answers a request for exactly
///   `/old` with `Location: /new`;
/// - a listener: `{ status: 301, from: 'http://:8080', to: 'https://:8443' }`
///   answers every request arriving on the `http://:8080` listener with the
///   same path and query at `https://` on port 8443. The host is the one the
///   request's `Host` names (its port replaced), or the host `to` names if
///   it names one (`'https://device.example:8443'`). A `from` with no
///   address (`'http://:8080'`) is every listener on that port; one that is
///   no listener's is logged as a warning at start. Port 0 in `to` stands for
///   the port the matching `listen` entry was given (for tests).
///   A request without `Host` (HTTP/1.0) is answered 400 unless `to` names
///   the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308 (default 301).
    pub status: u16,
    /// The exact path to redirect, or a listen URL such as `'http://:8080'`.
    pub from: String,
    /// The `Location` (for a path), or the scheme, host and port to send a
    /// listener's requests to (`'https://:8443'`).
    pub to: String,
}

pub(super) fn redirect(path: &str, v: &Value) -> read::Result<Redirect> {
    let o = Obj::new(path, v, &["status", "from", "to"])?;
    let required = |key: &str| {
        o.string(key)?
            .map_or_else(|| fail(&o.path_of(key), "is required"), Ok)
    };
    let from = required("from")?;
    let to = required("to")?;
    if is_listener(&from) {
        listener(&from).or_else(|m| fail(&o.path_of("from"), m))?;
        target(&to).or_else(|m| fail(&o.path_of("to"), m))?;
    } else if !from.starts_with('/') {
        return fail(
            &o.path_of("from"),
            "must start with '/' or be a listen URL such as 'http://:8080'",
        );
    }
    Ok(Redirect {
        status: redirect_status(&o, 301)?,
        from,
        to,
    })
}

pub(super) fn redirect_status(o: &Obj<'_>, default: u16) -> read::Result<u16> {
    match o.size("status")? {
        None => Ok(default),
        Some(s @ (301 | 302 | 303 | 307 | 308)) => Ok(s as u16),
        Some(s) => fail(
            &o.path_of("status"),
            format!("{s} is not a redirect status (301, 302, 303, 307, 308)"),
        ),
    }
}

/// Where a listener's requests are sent: a scheme, and a host and a port
/// when `to` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub https: bool,
    /// The host as written (`example.com`, `192.0.2.1`, `[::1]`); `None` to
    /// take the request's `Host`.
    pub host: Option<String>,
    /// `None` for the scheme's default (no port in the `Location`).
    pub port: Option<u16>,
}

/// True when `from` is a listen URL (`http://:8080`) rather than a path.
pub(crate) fn is_listener(from: &str) -> bool {
    from.contains("://")
}

/// The listener `from` names: its address and whether it is `https`.
pub(crate) fn listener(from: &str) -> Result<(SocketAddr, bool), String> {
    parse_listen_url(from).map_err(|e| e.to_string())
}

/// Parses `to`: `'https://:8443'`, `'https://example.com'`,
/// `'https://[::1]:8443'`, `'http://192.0.2.1:8080'`. No path: the request's
/// own is kept.
pub(crate) fn target(to: &str) -> Result<Target, String> {
    let (scheme, rest) = to
        .split_once("://")
        .ok_or_else(|| format!("{to:?}: expected a URL such as 'https://:8443'"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        other => return Err(format!("{to:?}: unknown scheme {other:?}")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{to:?}: only a scheme, host and port (the request's path is kept)"
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{to:?}: unclosed '['"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').unwrap_or(p)),
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{to:?}: not an IPv6 address"));
        }
        (format!("[{inside}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if !host.starts_with('[') && !host_is_safe(&host) {
        return Err(format!("{to:?}: not a host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("{to:?}: {p:?} is not a port"))?,
        ),
    };
    let default = if https { 443 } else { 80 };
    let unspecified = host.is_empty() || host == "0.0.0.0" || host == "[::]";
    Ok(Target {
        https,
        host: (!unspecified).then_some(host),
        port: port.filter(|&p| p != default),
    })
}

/// A host name or IPv4 address: letters, digits, `.`, `-` and `_` (empty is
/// allowed: no host). Also checks a request's `Host` before it goes into a
/// `Location`.
pub(crate) fn host_is_safe(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |https, host: Option<&str>, port| Target {
            https,
            host: host.map(str::to_string),
            port,
        };
        assert_eq!(target("https://:8443"), Ok(t(true, None, Some(8443))));
        assert_eq!(target("https://:443/"), Ok(t(true, None, None)));
        assert_eq!(
            target("https://example.com"),
            Ok(t(true, Some("example.com"), None))
        );
        assert_eq!(
            target("http://[::1]:8080"),
            Ok(t(false, Some("[::1]"), Some(8080)))
        );
        assert_eq!(target("https://0.0.0.0:9"), Ok(t(true, None, Some(9))));
        assert_eq!(target("https://:0"), Ok(t(true, None, Some(0))));
        for bad in [
            "/new",
            "ftp://:21",
            "https://:8443/x",
            "https://a b",
            "https://[::1",
            "https://:99999",
            "https://u@host",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
