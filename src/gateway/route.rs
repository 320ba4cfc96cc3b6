//! One proxy route: its templates, its downstream hosts and their state
//! (the pool, the TLS client, the idle legs), checked when it is made.

use super::balance::Pool;
use super::template::Template;
use crate::config::{ConfigError, ProxyConfig, RouteConfig};
use crate::message::ConnId;

/// One proxy route: its templates, its downstream hosts and their state.
pub(crate) struct ProxyRoute {
    /// The route's `match`, which finds it again for a request.
    pub pattern: String,
    pub config: ProxyConfig,
    pub(super) upstream: Template,
    pub(super) downstream: Template,
    pub pool: Pool,
    /// For `wss`/`https` downstreams: the TLS client configuration.
    #[cfg(feature = "tls")]
    pub(super) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Per host: downstream legs kept alive between plain HTTP requests,
    /// the most recently used last.
    pub(super) idle: Vec<Vec<ConnId>>,
}

/// Idle downstream legs kept per host; a leg that finds the pool full
/// closes. nginx's `keepalive 16` is the common setting: with fewer, 100
/// clients in flight opened a new downstream connection for most requests.
pub(crate) const IDLE_PER_HOST: usize = 16;

impl ProxyRoute {
    /// Checks a route's proxy settings (`name` is how errors name it, such
    /// as `routes[2].proxy`) and makes its templates, pool and TLS client.
    pub fn new(name: &str, route: &RouteConfig) -> Result<ProxyRoute, ConfigError> {
        let invalid = |k: &str, message: String| ConfigError::Invalid {
            path: None,
            key: if k.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{k}")
            },
            message,
        };
        let Some(proxy) = route.proxy.as_deref().cloned() else {
            return Err(invalid("", "is required".into()));
        };
        if proxy.hosts.is_empty() {
            return Err(invalid("hosts", "must name at least one host".into()));
        }
        let upstream = Template::parse(&upstream_text(&route.pattern, &proxy))
            .map_err(|e| invalid("upstream", e.to_string()))?;
        let downstream = Template::parse(&downstream_text(&proxy))
            .map_err(|e| invalid("downstream", e.to_string()))?;
        if let Some(missing) = downstream
            .names()
            .find(|n| !upstream.names().any(|u| u == *n))
        {
            return Err(invalid(
                "downstream",
                format!("{{{missing}}} is not a placeholder of the upstream template"),
            ));
        }
        if proxy.accept_any_certificate {
            log::warn!("{name}.acceptAnyCertificate: the downstream's certificate is not checked");
        }
        #[cfg(feature = "tls")]
        let tls = match proxy.scheme.is_tls() {
            true => Some(
                crate::tls::client::client_config(&proxy)
                    .map_err(|e| invalid("authority", e.to_string()))?,
            ),
            false => None,
        };
        Ok(ProxyRoute {
            #[cfg(feature = "tls")]
            tls,
            pattern: route.pattern.clone(),
            idle: vec![Vec::new(); proxy.hosts.len()],
            pool: Pool::new(&proxy),
            config: proxy,
            upstream,
            downstream,
        })
    }
}

/// The upstream template's text: the configured one, or the route's match
/// with a catch-all after it.
fn upstream_text(pattern: &str, proxy: &ProxyConfig) -> String {
    if proxy.upstream.is_empty() {
        let base = if pattern.ends_with('/') || pattern.is_empty() {
            pattern.to_string()
        } else {
            format!("{pattern}/")
        };
        format!("{}{{catchAll}}", if base.is_empty() { "/" } else { &base })
    } else {
        proxy.upstream.clone()
    }
}

fn downstream_text(proxy: &ProxyConfig) -> String {
    if proxy.downstream.is_empty() {
        "/{catchAll}".to_string()
    } else {
        proxy.downstream.clone()
    }
}
