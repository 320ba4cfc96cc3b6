//! One entry of `web.routes`: what answers on a path ([`HandlerKind`]),
//! with the route's options, its constructors for code, and the reader of
//! its keys. Who may use a route is `policy`'s; where a proxy route goes,
//! `proxy`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::policy::{self, Auth};
use super::proxy::{self, ProxyConfig};
use super::read::{self, fail, Obj};
use super::redirect::redirect_status;

/// What answers on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// The static file handler (`'file'`).
    File,
    /// Handlers registered in code (`'action'`).
    Action,
    /// A gateway to other servers (`'proxy'`), configured by the route's `proxy`.
    Proxy,
}

/// One entry of `routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// `match`: a prefix when it ends in `/`, else an exact path; `''` matches every path.
    pub pattern: String,
    /// `handler`: `'file'` (the default), `'action'` or `'proxy'`.
    pub handler: HandlerKind,
    /// `methods`: the methods allowed; `None` means GET and HEAD on file
    /// routes and any method on action and proxy routes.
    pub methods: Option<Vec<String>>,
    /// `documents`: this route's folder instead of the global one.
    pub documents: Option<PathBuf>,
    /// `redirect`: answer every match with this redirect instead; on a
    /// route with a `role`, Ioto's meaning: where a request the role
    /// refuses is sent (no credentials, wrong ones, or a role without it),
    /// in place of the 401 or 403.
    pub redirect: Option<RouteRedirect>,
    /// `compressed`: serve `file.br` / `file.gz` to clients that accept them.
    pub compressed: bool,
    /// `cache.maxAge`: sent as `Cache-Control: max-age=…`.
    pub cache_max_age: Option<Duration>,
    /// `listing`: a folder without an index file is answered with a list of
    /// its files (off by default: a 404).
    pub listing: bool,
    /// `auth`: who may use the route (files, actions and WebSocket upgrades alike).
    pub auth: Option<Auth>,
    /// `role`: the role or ability a user needs for the route (`web.auth`):
    /// from a login session or HTTP Basic credentials.
    pub role: Option<String>,
    /// `xsrf`: a `POST`, `PUT`, `DELETE` or `PATCH` needs the session's
    /// token in an `X-XSRF-TOKEN` header (default `false`).
    pub xsrf: bool,
    /// `proxy`: where a `'proxy'` route sends its requests (required there,
    /// refused elsewhere). Boxed: most routes have none.
    pub proxy: Option<Box<ProxyConfig>>,
    /// `trim`: a prefix taken off the path before the handler sees it
    /// (Ioto's): with `{ match: '/app/', trim: '/app' }`, `/app/x.html` is
    /// the file `x.html`, and an action registered for `/x` answers
    /// `/app/x` (its `Request::path` is `/x`: the decoded, normalised path
    /// without the prefix, percent-encoded again). It must begin the
    /// route's `match` and end where a segment does; not on proxy routes,
    /// whose templates say the downstream path.
    pub trim: Option<String>,
    /// `stream`: the route's request bodies go to its actions as they
    /// arrive, never gathered (Ioto's): it takes actions registered with
    /// `Server::action_streaming` (or `action_with_uploads`), bodies up to
    /// `limits.upload`; a request for an action that takes whole bodies
    /// is answered 500 and logged as the mistake it is. Action routes only.
    pub stream: bool,
    /// `validate`: a request body sent as JSON (`Content-Type:
    /// application/json` or `…+json`) must parse, else 400 before the
    /// action runs. Ioto checks requests against API signatures; wisp has
    /// none, so this is the check it can make. Not with `stream`.
    pub validate: bool,
}

/// A route's `redirect`: `'/new'` (302) or `{ status: 301, to: '/new' }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRedirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// The `Location`.
    pub to: String,
}

impl RouteConfig {
    /// A file route for `pattern` with every option at its default.
    pub fn files(pattern: &str) -> RouteConfig {
        RouteConfig {
            pattern: pattern.to_string(),
            handler: HandlerKind::File,
            methods: None,
            documents: None,
            redirect: None,
            compressed: false,
            cache_max_age: None,
            listing: false,
            auth: None,
            role: None,
            xsrf: false,
            proxy: None,
            trim: None,
            stream: false,
            validate: false,
        }
    }

    /// A proxy route for `pattern` to `proxy`'s hosts; empty templates get
    /// their defaults (`pattern` + `{catchAll}` upstream, `/{catchAll}`
    /// downstream). The templates are checked when the server starts.
    pub fn proxy(pattern: &str, proxy: ProxyConfig) -> RouteConfig {
        RouteConfig {
            handler: HandlerKind::Proxy,
            proxy: Some(Box::new(proxy.with_defaults(pattern))),
            ..RouteConfig::files(pattern)
        }
    }
}

const ROUTE_KEYS: &[&str] = &[
    "match",
    "handler",
    "methods",
    "documents",
    "redirect",
    "compressed",
    "cache",
    "listing",
    "auth",
    "role",
    "xsrf",
    "proxy",
    "trim",
    "stream",
    "validate",
];

pub(super) fn route(path: &str, v: &Value, base: &Path, xsrf: bool) -> read::Result<RouteConfig> {
    let o = Obj::new(path, v, ROUTE_KEYS)?;
    let pattern = o.string("match")?.unwrap_or_default();
    if !(pattern.is_empty() || pattern.starts_with('/')) {
        return fail(&o.path_of("match"), "must be '' or start with '/'");
    }
    let handler = match o.string("handler")?.as_deref() {
        None | Some("file") => HandlerKind::File,
        Some("action") => HandlerKind::Action,
        Some("proxy") => HandlerKind::Proxy,
        Some(other) => {
            let message = match read::suggest(other, &["file", "action", "proxy"]) {
                Some(s) => format!("{other:?} is not a handler; did you mean '{s}'?"),
                None => format!("{other:?} is not 'file', 'action' or 'proxy'"),
            };
            return fail(&o.path_of("handler"), message);
        }
    };
    let proxy = route_proxy(&o, handler, base, &pattern)?;
    let methods = o.strings("methods")?;
    if let Some(list) = &methods {
        if let Some(bad) = list
            .iter()
            .find(|m| !crate::http::head::METHODS.contains(&m.as_str()))
        {
            return fail(
                &o.path_of("methods"),
                format!("{bad:?} is not a method this server implements"),
            );
        }
    }
    let redirect = match o.get("redirect") {
        None => None,
        Some((_, Value::String(to))) => Some(RouteRedirect {
            status: 302,
            to: to.clone(),
        }),
        Some((p, v)) => {
            let r = Obj::new(&p, v, &["status", "to"])?;
            Some(RouteRedirect {
                status: redirect_status(&r, 302)?,
                to: r
                    .string("to")?
                    .map_or_else(|| fail(&r.path_of("to"), "is required"), Ok)?,
            })
        }
    };
    let cache_max_age = match o.get("cache") {
        None => None,
        Some((p, v)) => Obj::new(&p, v, &["maxAge"])?.duration("maxAge")?.flatten(),
    };
    let (stream, validate) = (
        o.boolean("stream")?.unwrap_or(false),
        o.boolean("validate")?.unwrap_or(false),
    );
    if stream && handler != HandlerKind::Action {
        return fail(
            &o.path_of("stream"),
            "only on a route with handler: 'action' (its actions take the body as it arrives)",
        );
    }
    if stream && validate {
        return fail(
            &o.path_of("validate"),
            "needs the whole body, which a route with stream: true never gathers",
        );
    }
    let trim = route_trim(&o, handler, &pattern)?;
    Ok(RouteConfig {
        trim,
        stream,
        validate,
        pattern,
        handler,
        methods,
        documents: o.string("documents")?.map(|d| base.join(d)),
        redirect,
        compressed: o.boolean("compressed")?.unwrap_or(false),
        listing: o.boolean("listing")?.unwrap_or(false),
        cache_max_age,
        auth: o
            .get("auth")
            .map(|(p, v)| policy::auth(&p, v))
            .transpose()?,
        role: o.string("role")?,
        xsrf: o.boolean("xsrf")?.unwrap_or(xsrf),
        proxy,
    })
}

/// A route's `trim`: a prefix of its `match` ('/app' or '/app/'), kept
/// without its trailing slash; not on proxy routes.
fn route_trim(o: &Obj<'_>, handler: HandlerKind, pattern: &str) -> read::Result<Option<String>> {
    let Some(trim) = o.string("trim")? else {
        return Ok(None);
    };
    let key = o.path_of("trim");
    if handler == HandlerKind::Proxy {
        return fail(
            &key,
            "not on a proxy route (its downstream template says the path)",
        );
    }
    let trim = trim.strip_suffix('/').unwrap_or(&trim);
    if !trim.starts_with('/') || !pattern.starts_with(trim) {
        return fail(
            &key,
            format!("{trim:?} must begin the route's match ({pattern:?}) and start with '/'"),
        );
    }
    // Only whole segments: '/ap' off '/app/x' would leave 'p/x'.
    let rest = &pattern[trim.len()..];
    if !(rest.is_empty() || rest.starts_with('/')) {
        return fail(
            &key,
            format!("{trim:?} must end where a segment of {pattern:?} ends"),
        );
    }
    Ok(Some(trim.to_string()))
}

/// A route's `proxy`: required with `handler: 'proxy'`, refused without.
fn route_proxy(
    o: &Obj<'_>,
    handler: HandlerKind,
    base: &Path,
    pattern: &str,
) -> read::Result<Option<Box<ProxyConfig>>> {
    match (o.get("proxy"), handler) {
        (Some((p, v)), HandlerKind::Proxy) => {
            Ok(Some(Box::new(proxy::proxy(&p, v, base, pattern)?)))
        }
        (None, HandlerKind::Proxy) => fail(&o.path_of("proxy"), "is required"),
        (Some((p, _)), _) => fail(&p, "only on a route with handler: 'proxy'"),
        (None, _) => Ok(None),
    }
}
