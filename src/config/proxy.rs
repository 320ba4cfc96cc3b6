//! A gateway route's `proxy` object (Ocelot's route, in Ioto's value
//! syntax): where requests on the route go, how a host is chosen, and what
//! happens to the headers on the way.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::read::{self, fail, Obj};
use super::template::Template;

/// A route's `proxy`: `{ upstream, downstream, scheme, hosts, loadBalancer, … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The paths taken (`upstream`, Ocelot's UpstreamPathTemplate), such as
    /// `'/gateway/{catchAll}'`. Default: the route's `match` followed by
    /// `{catchAll}`; empty in code means that default.
    pub upstream: String,
    /// The path sent downstream (`downstream`, Ocelot's
    /// DownstreamPathTemplate); the query string is passed on. Default:
    /// `'/{catchAll}'`; empty in code means that default.
    pub downstream: String,
    /// How the downstream hosts are spoken to (`scheme`, default `'ws'`).
    pub scheme: Scheme,
    /// The downstream hosts as written, `host:port` (`hosts`; names,
    /// IPv4 and bracketed IPv6 such as `'[::1]:5001'`).
    pub hosts: Vec<String>,
    /// How a host is chosen (`loadBalancer`, default `'NoLoadBalancer'` as in Ocelot).
    pub balancer: Balancer,
    /// Accept any certificate from a `wss`/`https` host
    /// (`acceptAnyCertificate`, default `false`): for test rigs only, and
    /// warned about at start.
    pub accept_any_certificate: bool,
    /// The CAs a `wss`/`https` host's certificate must chain to
    /// (`authority`, a PEM bundle); `None`: the system's roots.
    pub authority: Option<PathBuf>,
    /// When a failing host is skipped (`breaker`).
    pub breaker: Breaker,
    /// Headers added to and removed from the downstream request (`headers`).
    pub headers: HeaderRules,
    /// The cookie of `CookieStickySessions` (`sticky`).
    pub sticky: Sticky,
}

/// How a gateway route speaks to its hosts (`scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// WebSockets over TCP; plain HTTP requests on the route go as `http`.
    Ws,
    /// WebSockets over TLS; plain HTTP requests on the route go as `https`.
    Wss,
    /// HTTP only.
    Http,
    /// HTTP over TLS only.
    Https,
}

impl Scheme {
    /// True for `wss` and `https`.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }

    /// True for `ws` and `wss`: upgrades are proxied as WebSockets.
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// How a host is chosen for a new request or connection (`loadBalancer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancer {
    /// Each host in turn (`'RoundRobin'`).
    RoundRobin,
    /// The host with the fewest open connections (`'LeastConnection'`).
    LeastConnection,
    /// The first host that is up (`'NoLoadBalancer'`): the others are fail-overs.
    NoLoadBalancer,
    /// The host a client's cookie names, else each in turn (`'CookieStickySessions'`).
    CookieStickySessions,
}

/// `breaker: { failures: 3, pause: '30 secs' }`: a host that failed
/// `failures` times in a row is skipped for `pause`, then tried again by
/// one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Failures in a row that open the breaker (default 3; 0: it never opens).
    pub failures: u32,
    /// How long an open breaker skips its host (default 30 secs).
    pub pause: Duration,
}

/// `headers: { add: { … }, remove: [ … ] }` for the downstream request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Set on every downstream request, replacing the client's header of the same name.
    pub add: Vec<(String, String)>,
    /// The client's headers not passed on, lowercased. Removing
    /// `x-forwarded-for` or `via` drops the client's values but not the
    /// gateway's own.
    pub remove: Vec<String>,
}

/// `sticky: { cookie: 'wisp-sticky', expiry: '1 hr' }` for `CookieStickySessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// The cookie's name (default `wisp-sticky`).
    pub cookie: String,
    /// How long an unused session stays with its host (default 1 hr).
    pub expiry: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: 3,
            pause: Duration::from_secs(30),
        }
    }
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            cookie: "wisp-sticky".to_string(),
            expiry: Duration::from_secs(3600),
        }
    }
}

impl ProxyConfig {
    /// A proxy to `hosts` (`"host:port"`) with every other option at its
    /// default; the templates are left empty, which means the defaults
    /// (`match` + `{catchAll}` upstream, `/{catchAll}` downstream).
    pub fn new(hosts: &[&str], scheme: Scheme) -> ProxyConfig {
        ProxyConfig {
            upstream: String::new(),
            downstream: String::new(),
            scheme,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            balancer: Balancer::NoLoadBalancer,
            accept_any_certificate: false,
            authority: None,
            breaker: Breaker::default(),
            headers: HeaderRules::default(),
            sticky: Sticky::default(),
        }
    }

    /// The same with empty templates replaced by their defaults for a route
    /// matching `pattern`.
    pub(crate) fn with_defaults(mut self, pattern: &str) -> ProxyConfig {
        if self.upstream.is_empty() {
            self.upstream = default_upstream(pattern);
        }
        if self.downstream.is_empty() {
            self.downstream = DEFAULT_DOWNSTREAM.to_string();
        }
        self
    }
}

const DEFAULT_DOWNSTREAM: &str = "/{catchAll}";

/// `match` followed by `{catchAll}`; `''` (every path) is `/{catchAll}`.
fn default_upstream(pattern: &str) -> String {
    match pattern {
        "" => "/{catchAll}".to_string(),
        p => format!("{p}{{catchAll}}"),
    }
}

const KEYS: &[&str] = &[
    "upstream",
    "downstream",
    "scheme",
    "hosts",
    "loadBalancer",
    "acceptAnyCertificate",
    "authority",
    "breaker",
    "headers",
    "sticky",
];

/// Reads a route's `proxy` object; `pattern` is the route's `match`.
pub(super) fn proxy(
    path: &str,
    v: &Value,
    base: &Path,
    pattern: &str,
) -> read::Result<ProxyConfig> {
    let o = Obj::new(path, v, KEYS)?;
    let (upstream, downstream) = templates(&o, pattern)?;
    let scheme = scheme(&o)?;
    let balancer = balancer(&o)?;
    let accept_any_certificate = o.boolean("acceptAnyCertificate")?.unwrap_or(false);
    let authority = o.string("authority")?.map(|a| base.join(a));
    for (key, set) in [
        ("acceptAnyCertificate", accept_any_certificate),
        ("authority", authority.is_some()),
    ] {
        if set && !scheme.is_tls() {
            return fail(&o.path_of(key), "only for a 'wss' or 'https' scheme");
        }
    }
    if accept_any_certificate && authority.is_some() {
        return fail(
            &o.path_of("authority"),
            "acceptAnyCertificate: true skips the check authority is for",
        );
    }
    if o.get("sticky").is_some() && balancer != Balancer::CookieStickySessions {
        return fail(
            &o.path_of("sticky"),
            "only for loadBalancer: 'CookieStickySessions'",
        );
    }
    Ok(ProxyConfig {
        upstream,
        downstream,
        scheme,
        hosts: hosts(&o)?,
        balancer,
        accept_any_certificate,
        authority,
        breaker: o
            .get("breaker")
            .map_or(Ok(Breaker::default()), |(p, v)| breaker(&p, v))?,
        headers: o
            .get("headers")
            .map_or(Ok(HeaderRules::default()), |(p, v)| header_rules(&p, v))?,
        sticky: o
            .get("sticky")
            .map_or(Ok(Sticky::default()), |(p, v)| sticky(&p, v))?,
    })
}

/// Both templates, parsed to check them; every downstream placeholder
/// must be one the upstream captures.
fn templates(o: &Obj<'_>, pattern: &str) -> read::Result<(String, String)> {
    let upstream = o
        .string("upstream")?
        .unwrap_or_else(|| default_upstream(pattern));
    let downstream = o
        .string("downstream")?
        .unwrap_or_else(|| DEFAULT_DOWNSTREAM.to_string());
    let up = Template::parse(&upstream).or_else(|e| fail(&o.path_of("upstream"), e))?;
    let down = Template::parse(&downstream).or_else(|e| fail(&o.path_of("downstream"), e))?;
    if let Some(name) = down.names().find(|n| !up.names().any(|u| u == *n)) {
        return fail(
            &o.path_of("downstream"),
            format!("{{{name}}} is not a placeholder of upstream {upstream:?}"),
        );
    }
    Ok((upstream, downstream))
}

fn scheme(o: &Obj<'_>) -> read::Result<Scheme> {
    let scheme = match o.string("scheme")?.as_deref() {
        None | Some("ws") => Scheme::Ws,
        Some("wss") => Scheme::Wss,
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => {
            return fail(
                &o.path_of("scheme"),
                format!("{other:?} is not 'ws', 'wss', 'http' or 'https'"),
            )
        }
    };
    if scheme.is_tls() && !cfg!(feature = "tls") {
        return fail(
            &o.path_of("scheme"),
            "wss and https need wisp built with its `tls` feature",
        );
    }
    Ok(scheme)
}

fn balancer(o: &Obj<'_>) -> read::Result<Balancer> {
    Ok(match o.string("loadBalancer")?.as_deref() {
        None | Some("NoLoadBalancer") => Balancer::NoLoadBalancer,
        Some("RoundRobin") => Balancer::RoundRobin,
        Some("LeastConnection") => Balancer::LeastConnection,
        Some("CookieStickySessions") => Balancer::CookieStickySessions,
        Some(other) => {
            return fail(
                &o.path_of("loadBalancer"),
                format!(
                    "{other:?} is not a load balancer (RoundRobin, LeastConnection, NoLoadBalancer, CookieStickySessions)"
                ),
            )
        }
    })
}

fn hosts(o: &Obj<'_>) -> read::Result<Vec<String>> {
    let key = o.path_of("hosts");
    let Some(hosts) = o.strings("hosts")? else {
        return fail(&key, "is required");
    };
    if hosts.is_empty() {
        return fail(&key, "needs at least one host");
    }
    for h in &hosts {
        check_host_port(h).or_else(|m| fail(&key, format!("{h:?}: {m}")))?;
    }
    Ok(hosts)
}

/// Checks `name:port`, `192.0.2.1:port` or `[::1]:port`, port 1–65535.
fn check_host_port(text: &str) -> Result<(), &'static str> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("expected host:port, such as '127.0.0.1:5001'")?;
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return Err("the port must be 1 to 65535");
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "not an IPv6 address");
    }
    if host.contains(':') {
        return Err("an IPv6 address goes in brackets: '[::1]:5001'");
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || !host.chars().all(name_char) {
        return Err("the host must be a name or an address");
    }
    Ok(())
}

fn breaker(path: &str, v: &Value) -> read::Result<Breaker> {
    let o = Obj::new(path, v, &["failures", "pause"])?;
    let d = Breaker::default();
    Ok(Breaker {
        failures: o
            .size("failures")?
            .map_or(d.failures, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        pause: finite(&o, "pause")?.unwrap_or(d.pause),
    })
}

fn sticky(path: &str, v: &Value) -> read::Result<Sticky> {
    let o = Obj::new(path, v, &["cookie", "expiry"])?;
    let d = Sticky::default();
    let cookie = o.string("cookie")?.unwrap_or(d.cookie);
    if !is_token(&cookie) {
        return fail(
            &o.path_of("cookie"),
            format!("{cookie:?} is not a valid cookie name"),
        );
    }
    Ok(Sticky {
        cookie,
        expiry: finite(&o, "expiry")?.unwrap_or(d.expiry),
    })
}

/// A duration that may not be `'never'`.
fn finite(o: &Obj<'_>, key: &str) -> read::Result<Option<Duration>> {
    match o.duration(key)? {
        Some(None) => fail(&o.path_of(key), "must be a finite duration"),
        d => Ok(d.flatten()),
    }
}

/// Headers the gateway writes itself: a rule may not add them.
const WRITTEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

fn header_rules(path: &str, v: &Value) -> read::Result<HeaderRules> {
    let o = Obj::new(path, v, &["add", "remove"])?;
    let add = o.string_map("add")?.unwrap_or_default();
    for (name, value) in &add {
        let key = o.path_of("add");
        if !crate::http::response::header_is_safe(name, value) {
            return fail(&key, format!("{name:?} is not a valid header"));
        }
        let lower = name.to_ascii_lowercase();
        if WRITTEN.contains(&lower.as_str()) || lower.starts_with("sec-websocket-") {
            return fail(&key, format!("{name:?} is written by the gateway"));
        }
    }
    let remove = o.strings("remove")?.unwrap_or_default();
    if let Some(bad) = remove.iter().find(|n| !is_token(n)) {
        return fail(
            &o.path_of("remove"),
            format!("{bad:?} is not a header name"),
        );
    }
    Ok(HeaderRules {
        add,
        remove: remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
    })
}

/// An HTTP token (RFC 9110 §5.6.2): header and cookie names.
fn is_token(s: &str) -> bool {
    !s.is_empty() && crate::http::response::header_is_safe(s, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HandlerKind, RouteConfig};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/srv/device")).map_err(|e| e.to_string())
    }

    /// The first route's proxy of `{ web: { routes: [ { match: '/gw/', handler: 'proxy', proxy: … } ] } }`.
    fn proxy_of(proxy: &str) -> Result<ProxyConfig, String> {
        let text = format!(
            "{{ web: {{ routes: [ {{ match: '/gw/', handler: 'proxy', proxy: {proxy} }} ] }} }}"
        );
        let mut c = parse(&text)?;
        Ok(*c.routes.remove(0).proxy.ok_or("no proxy")?)
    }

    #[test]
    #[cfg(feature = "tls")]
    fn every_key_is_read() {
        let p = proxy_of(
            "{ upstream: '/gw/{version}/{rest}', downstream: '/api/{version}/{rest}',
               scheme: 'https', hosts: ['127.0.0.1:5001', 'backend:443', '[::1]:5002'],
               loadBalancer: 'CookieStickySessions', authority: 'ca.pem',
               breaker: { failures: 5, pause: '1 min' },
               headers: { add: { 'X-Api-Key': 'k' }, remove: ['Authorization', 'cookie'] },
               sticky: { cookie: 'srv', expiry: '10 mins' } }",
        )
        .unwrap();
        assert_eq!(p.upstream, "/gw/{version}/{rest}");
        assert_eq!(p.downstream, "/api/{version}/{rest}");
        assert_eq!(p.scheme, Scheme::Https);
        assert_eq!(p.hosts, ["127.0.0.1:5001", "backend:443", "[::1]:5002"]);
        assert_eq!(p.balancer, Balancer::CookieStickySessions);
        assert_eq!(p.authority, Some(PathBuf::from("/srv/device/ca.pem")));
        assert!(!p.accept_any_certificate);
        assert_eq!(
            p.breaker,
            Breaker {
                failures: 5,
                pause: Duration::from_secs(60)
            }
        );
        assert_eq!(p.headers.add, [("X-Api-Key".to_string(), "k".to_string())]);
        assert_eq!(p.headers.remove, ["authorization", "cookie"]);
        assert_eq!(
            p.sticky,
            Sticky {
                cookie: "srv".into(),
                expiry: Duration::from_secs(600)
            }
        );
    }

    #[test]
    fn defaults() {
        let p = proxy_of("{ hosts: 'h:1' }").unwrap();
        assert_eq!(
            p,
            ProxyConfig::new(&["h:1"], Scheme::Ws).with_defaults("/gw/")
        );
        let c = parse(
            "{ web: { timeouts: { connect: '2 secs' }, routes: [ { match: '/gw/', handler: 'proxy', proxy: { hosts: 'h:1' } } ] } }",
        )
        .unwrap();
        assert_eq!(c.timeouts.connect, Some(Duration::from_secs(2)));
        assert_eq!(c.routes[0].handler, HandlerKind::Proxy);
        assert_eq!(
            c.routes[0],
            RouteConfig::proxy("/gw/", ProxyConfig::new(&["h:1"], Scheme::Ws))
        );
        let never = parse("{ web: { timeouts: { connect: 'never' } } }").unwrap();
        assert_eq!(never.timeouts.connect, None);
        assert_eq!(
            parse("{}").unwrap().timeouts.connect,
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let at = "web.routes[0].proxy";
        let cases = [
            ("{ hosts: 'h:1', upstrem: '/x' }", format!("{at}.upstrem: unknown key; did you mean upstream?")),
            ("{ hosts: 'h:1', breaker: { failurs: 1 } }", format!("{at}.breaker.failurs: unknown key; did you mean failures?")),
            ("{ hosts: 'h:1', headers: { ad: {} } }", format!("{at}.headers.ad: unknown key; did you mean add?")),
            ("{ hosts: 'h:1', upstream: 'gw/{x}' }", format!("{at}.upstream: a template must start with '/'")),
            ("{ hosts: 'h:1', upstream: '/gw/{x' }", format!("{at}.upstream: unbalanced brace at byte 4")),
            ("{ hosts: 'h:1', downstream: '/{x}' }", format!("{at}.downstream: {{x}} is not a placeholder of upstream \"/gw/{{catchAll}}\"")),
            ("{ hosts: 'h:1', upstream: '/gw/{a}' }", format!("{at}.downstream: {{catchAll}} is not a placeholder")),
            ("{ hosts: 'h:1', loadBalancer: 'roundrobin' }", format!("{at}.loadBalancer: \"roundrobin\" is not a load balancer")),
            ("{ hosts: 'h:1', scheme: 'ftp' }", format!("{at}.scheme: \"ftp\" is not 'ws', 'wss', 'http' or 'https'")),
            ("{ hosts: [] }", format!("{at}.hosts: needs at least one host")),
            ("{ }", format!("{at}.hosts: is required")),
            ("{ hosts: ['h:1', 'h'] }", format!("{at}.hosts: \"h\": expected host:port")),
            ("{ hosts: 'h:1', authority: 'ca.pem' }", format!("{at}.authority: only for a 'wss' or 'https' scheme")),
            ("{ hosts: 'h:1', acceptAnyCertificate: true }", format!("{at}.acceptAnyCertificate: only for a 'wss' or 'https' scheme")),
            ("{ hosts: 'h:1', sticky: {} }", format!("{at}.sticky: only for loadBalancer: 'CookieStickySessions'")),
            ("{ hosts: 'h:1', loadBalancer: 'CookieStickySessions', sticky: { cookie: 'a b' } }", format!("{at}.sticky.cookie: \"a b\" is not a valid cookie name")),
            ("{ hosts: 'h:1', loadBalancer: 'CookieStickySessions', sticky: { expiry: 'never' } }", format!("{at}.sticky.expiry: must be a finite duration")),
            ("{ hosts: 'h:1', breaker: { pause: 'never' } }", format!("{at}.breaker.pause: must be a finite duration")),
            ("{ hosts: 'h:1', headers: { add: { 'X-A': 'a\\r\\nb' } } }", format!("{at}.headers.add: \"X-A\" is not a valid header")),
            ("{ hosts: 'h:1', headers: { add: { 'Host': 'x' } } }", format!("{at}.headers.add: \"Host\" is written by the gateway")),
            ("{ hosts: 'h:1', headers: { add: { 'Sec-WebSocket-Key': 'x' } } }", format!("{at}.headers.add: \"Sec-WebSocket-Key\" is written by the gateway")),
            ("{ hosts: 'h:1', headers: { remove: ['a:b'] } }", format!("{at}.headers.remove: \"a:b\" is not a header name")),
        ];
        for (proxy, want) in cases {
            let err = proxy_of(proxy).unwrap_err();
            assert!(
                err.starts_with(&want),
                "{proxy}\n  got:  {err}\n  want: {want}"
            );
        }
        let routes = [
            (
                "{ match: '/gw/', handler: 'proxy' }",
                "web.routes[0].proxy: is required",
            ),
            (
                "{ match: '/gw/', proxy: { hosts: 'h:1' } }",
                "web.routes[0].proxy: only on a route with handler: 'proxy'",
            ),
            (
                "{ handler: 'cgi' }",
                "web.routes[0].handler: \"cgi\" is not 'file', 'action' or 'proxy'",
            ),
        ];
        for (route, want) in routes {
            let err = parse(&format!("{{ web: {{ routes: [ {route} ] }} }}")).unwrap_err();
            assert_eq!(err, want, "{route}");
        }
    }

    #[test]
    fn host_ports() {
        for ok in ["127.0.0.1:5001", "backend:80", "[::1]:5001", "a.b-c:65535"] {
            assert_eq!(check_host_port(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("127.0.0.1", "expected host:port"),
            ("h:0", "the port must be 1 to 65535"),
            ("h:65536", "the port must be 1 to 65535"),
            ("h:+80", "the port must be 1 to 65535"),
            ("h:", "the port must be 1 to 65535"),
            ("::1:80", "an IPv6 address goes in brackets"),
            ("[::g]:80", "not an IPv6 address"),
            (":80", "the host must be"),
            ("a b:80", "the host must be"),
        ];
        for (text, want) in bad {
            let got = check_host_port(text).unwrap_err();
            assert!(got.starts_with(want), "{text}: {got}");
        }
    }

    #[test]
    fn defaults_fill_empty_templates() {
        let p = ProxyConfig::new(&["h:1"], Scheme::Http).with_defaults("/gw/");
        assert_eq!(p.upstream, "/gw/{catchAll}");
        assert_eq!(p.downstream, "/{catchAll}");
        let p = ProxyConfig::new(&["h:1"], Scheme::Http).with_defaults("");
        assert_eq!(p.upstream, "/{catchAll}");
        assert!(Scheme::Wss.is_tls() && Scheme::Wss.is_websocket());
        assert!(!Scheme::Http.is_tls() && !Scheme::Http.is_websocket());
    }
}
