//! Reading a `web.json5` tree into a [`Config`]: every key checked and
//! named in its error, values in Ioto's syntax, paths taken from the
//! config file's folder.

use std::path::Path;

use serde_json::Value;

use super::read::{self, fail, Obj};
use super::units::parse_listen_url;
use super::{ioto, policy, proxy, redirect, scale, tls, users};
use super::{
    AccessFormat, Compression, Config, HandlerKind, Limits, Log, ProxyConfig, Redirect,
    RouteConfig, RouteRedirect, Timeouts, Upload, WebSockets,
};

const WEB_KEYS: &[&str] = &[
    "listen",
    "documents",
    "index",
    "headers",
    "mime",
    "timeouts",
    "limits",
    "routes",
    "redirect",
    "webSockets",
    "log",
    "tls",
    "name",
    "errors",
    "auth",
    "upload",
    "xsrf",
    "workers",
    "backplane",
];

pub(super) fn from_root(root: &Value, base: &Path) -> read::Result<Config> {
    // Ioto's keys first: renamed to wisp's, set aside, or refused with why.
    let (root, ioto_ignored) = ioto::sift(root)?;
    let root = &root;
    let top = Obj::new("", root, &["web"])?;
    let mut config = Config {
        documents: base.join("site"),
        upload: Upload {
            dir: base.join("uploads"),
            remove: true,
        },
        ioto_ignored,
        ..Config::default()
    };
    let Some((path, web)) = top.get("web") else {
        return Ok(config);
    };
    let web = Obj::new(&path, web, WEB_KEYS)?;
    if let Some(list) = web.strings("listen")? {
        if list.is_empty() {
            return fail(&web.path_of("listen"), "needs at least one address");
        }
        config.listen.clear();
        for l in &list {
            let (addr, tls) = parse_listen_url(l).or_else(|m| fail(&web.path_of("listen"), m))?;
            config.add_listener(addr, tls);
        }
    }
    if let Some(name) = web.string("name")? {
        let host = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if name.is_empty() || !name.chars().all(host) {
            return fail(
                &web.path_of("name"),
                "must be a host name such as 'camera.local'",
            );
        }
        config.name = Some(name);
    }
    if let Some((path, v)) = web.get("tls") {
        config.tls = tls::tls(&path, v, base)?;
    }
    if !config.listen_tls.is_empty()
        && !config.tls.generate
        && (config.tls.certificate.is_none() || config.tls.key.is_none())
    {
        return fail(
            &web.path_of("listen"),
            "an https address needs web.tls.certificate and web.tls.key (or certificate: 'generate')",
        );
    }
    if let Some(dir) = web.string("documents")? {
        config.documents = base.join(dir);
    }
    if let Some(index) = web.string("index")? {
        if index.is_empty() || index.contains('/') {
            return fail(&web.path_of("index"), "must be a file name");
        }
        config.index = index;
    }
    if let Some(headers) = web.string_map("headers")? {
        for (name, value) in &headers {
            if !crate::http::response::header_is_safe(name, value) {
                return fail(
                    &web.path_of("headers"),
                    format!("{name:?} is not a valid header"),
                );
            }
        }
        config.headers = headers;
    }
    if let Some(mime) = web.string_map("mime")? {
        for (ext, kind) in &mime {
            if !crate::http::response::header_is_safe("Content-Type", kind) {
                return fail(
                    &web.path_of("mime"),
                    format!("{ext:?}: {kind:?} is not a valid type"),
                );
            }
        }
        config.mime = mime;
    }
    if let Some(pages) = web.string_map("errors")? {
        config.errors = error_pages(&web.path_of("errors"), pages)?;
    }
    if let Some((path, v)) = web.get("timeouts") {
        config.timeouts = timeouts(&path, v)?;
    }
    if let Some((path, v)) = web.get("limits") {
        config.limits = limits(&path, v)?;
    }
    if let Some(list) = web.list("routes")? {
        // Ioto's `web.xsrf`: the default of every route's own `xsrf`.
        let xsrf = web.boolean("xsrf")?.unwrap_or(false);
        config.routes = list
            .iter()
            .map(|(path, v)| route(path, v, base, xsrf))
            .collect::<read::Result<_>>()?;
    }
    if let Some(list) = web.list("redirect")? {
        config.redirects = list
            .iter()
            .map(|(path, v)| redirect(path, v))
            .collect::<read::Result<_>>()?;
    }
    if let Some((path, v)) = web.get("webSockets") {
        config.web_sockets = web_sockets(&path, v)?;
    }
    if let Some((path, v)) = web.get("log") {
        config.log = log_config(&path, v, base)?;
    }
    if let Some((path, v)) = web.get("auth") {
        config.auth = Some(users::users(&path, v)?);
    }
    route_roles(&web, &config)?;
    if let Some((path, v)) = web.get("workers") {
        config.workers = scale::workers(&path, v)?;
    }
    if let Some((path, v)) = web.get("backplane") {
        config.backplane = Some(scale::backplane(&path, v)?);
    }
    if let Some((path, v)) = web.get("upload") {
        let o = Obj::new(&path, v, &["dir", "remove"])?;
        if let Some(dir) = o.string("dir")? {
            if dir.is_empty() {
                return fail(&o.path_of("dir"), "must name a folder");
            }
            config.upload.dir = base.join(dir);
        }
        config.upload.remove = o.boolean("remove")?.unwrap_or(true);
    }
    Ok(config)
}

/// Each route's `role` names a role or ability of `web.auth`.
fn route_roles(web: &Obj<'_>, config: &Config) -> read::Result<()> {
    for (i, route) in config.routes.iter().enumerate() {
        if route.xsrf && config.auth.is_none() {
            let key = format!("{}[{i}].xsrf", web.path_of("routes"));
            return fail(&key, "needs web.auth (the tokens belong to login sessions)");
        }
        let Some(role) = &route.role else { continue };
        let key = format!("{}[{i}].role", web.path_of("routes"));
        match &config.auth {
            None => return fail(&key, "needs web.auth (its users and roles)"),
            Some(users) if !users.knows(role) => {
                return fail(
                    &key,
                    format!("{role:?} is not a role or ability of web.auth.roles"),
                )
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `errors: { 404: '/404.html' }`: a status from 400 to 599 each, and a
/// path under `documents`.
fn error_pages(path: &str, pages: Vec<(String, String)>) -> read::Result<Vec<(u16, String)>> {
    pages
        .into_iter()
        .map(|(status, page)| {
            let key = format!("{path}.{status}");
            let code = match status.parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => code,
                _ => return fail(&key, "must be an error status, 400 to 599"),
            };
            if !page.starts_with('/')
                || page
                    .split('/')
                    .any(|s| s == ".." || s.starts_with('.') && !s.is_empty())
            {
                return fail(&key, format!("{page:?} must be a path such as '/404.html'"));
            }
            Ok((code, page))
        })
        .collect()
}

fn web_sockets(path: &str, v: &Value) -> read::Result<WebSockets> {
    const KEYS: &[&str] = &[
        "enable",
        "protocol",
        "ping",
        "validateUTF",
        "closeTimeout",
        "maxBackpressure",
        "closeOnBackpressure",
        "origins",
        "compression",
        "waitingRoom",
        "leaveWaitingRoom",
    ];
    let o = Obj::new(path, v, KEYS)?;
    let d = WebSockets::default();
    let waiting_room = o.string("waitingRoom")?;
    if waiting_room.as_deref() == Some("") {
        return fail(&o.path_of("waitingRoom"), "must name a room");
    }
    let protocols = o.strings("protocol")?.unwrap_or_default();
    if let Some(bad) = protocols.iter().find(|p| !is_token(p)) {
        return fail(
            &o.path_of("protocol"),
            format!("{bad:?} is not a valid protocol token"),
        );
    }
    Ok(WebSockets {
        enable: o.boolean("enable")?.unwrap_or(d.enable),
        protocols,
        ping: o.duration("ping")?.unwrap_or(d.ping),
        validate_utf8: o.boolean("validateUTF")?.unwrap_or(d.validate_utf8),
        close_timeout: match o.duration("closeTimeout")? {
            None => d.close_timeout,
            Some(Some(t)) => t,
            Some(None) => return fail(&o.path_of("closeTimeout"), "must be a finite duration"),
        },
        max_backpressure: o
            .size_usize("maxBackpressure")?
            .unwrap_or(d.max_backpressure),
        close_on_backpressure: o
            .boolean("closeOnBackpressure")?
            .unwrap_or(d.close_on_backpressure),
        origins: o.strings("origins")?.unwrap_or_default(),
        compression: match o.get("compression") {
            Some((path, v)) => compression(&path, v)?,
            None => d.compression,
        },
        waiting_room,
        leave_waiting_room: o
            .boolean("leaveWaitingRoom")?
            .unwrap_or(d.leave_waiting_room),
    })
}

/// `webSockets.compression`: `true`/`false`, or an object.
fn compression(path: &str, v: &Value) -> read::Result<Compression> {
    let d = Compression::default();
    if let Value::Bool(enable) = v {
        return Ok(Compression {
            enable: *enable,
            ..d
        });
    }
    const KEYS: &[&str] = &[
        "enable",
        "threshold",
        "level",
        "contextTakeover",
        "windowBits",
        "clientWindowBits",
    ];
    let o = Obj::new(path, v, KEYS)?;
    Ok(Compression {
        enable: o.boolean("enable")?.unwrap_or(true),
        threshold: o.size_usize("threshold")?.unwrap_or(d.threshold),
        level: number_in(&o, "level", 0, 9)?.unwrap_or(d.level),
        context_takeover: o.boolean("contextTakeover")?.unwrap_or(d.context_takeover),
        window_bits: bits(&o, "windowBits")?.unwrap_or(d.window_bits),
        client_window_bits: bits(&o, "clientWindowBits")?.unwrap_or(d.client_window_bits),
    })
}

/// A window size in bits as zlib takes it for raw deflate: 9 to 15.
fn bits(o: &Obj<'_>, key: &str) -> read::Result<Option<u8>> {
    Ok(number_in(o, key, 9, 15)?.map(|n| n as u8))
}

/// A whole number from `low` to `high`.
fn number_in(o: &Obj<'_>, key: &str, low: u32, high: u32) -> read::Result<Option<u32>> {
    let Some((path, v)) = o.get(key) else {
        return Ok(None);
    };
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) if (low..=high).contains(&n) => Ok(Some(n)),
        _ => fail(
            &path,
            format!("expected a whole number from {low} to {high}"),
        ),
    }
}

fn log_config(path: &str, v: &Value, base: &Path) -> read::Result<Log> {
    if let Value::String(level) = v {
        return Ok(Log {
            level: log_level(path, level)?,
            ..Log::default()
        });
    }
    let o = Obj::new(
        path,
        v,
        &["level", "access", "format", "path", "size", "keep"],
    )?;
    let d = Log::default();
    let format = match o.string("format")?.as_deref() {
        None | Some("combined") => AccessFormat::Combined,
        Some("common") => AccessFormat::Common,
        Some(other) => {
            return fail(
                &o.path_of("format"),
                format!("{other:?} is not 'combined' or 'common'"),
            )
        }
    };
    let size = o.size("size")?.unwrap_or(d.size);
    if size < 1024 {
        return fail(&o.path_of("size"), "must be at least 1K");
    }
    Ok(Log {
        level: match o.string("level")? {
            Some(level) => log_level(&o.path_of("level"), &level)?,
            None => d.level,
        },
        access: o.boolean("access")?.unwrap_or(d.access),
        format,
        path: o.string("path")?.map(|p| base.join(p)),
        size,
        keep: o.count("keep")?.unwrap_or(d.keep),
    })
}

/// Parses a log level name: off, error, warn, info, debug, trace.
fn log_level(path: &str, text: &str) -> read::Result<log::LevelFilter> {
    text.parse().or_else(|_| {
        fail(
            path,
            format!("{text:?} is not a log level (off, error, warn, info, debug, trace)"),
        )
    })
}

/// An HTTP token (RFC 9110 §5.6.2), as a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && crate::http::response::header_is_safe(s, "")
}

fn timeouts(path: &str, v: &Value) -> read::Result<Timeouts> {
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

fn limits(path: &str, v: &Value) -> read::Result<Limits> {
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

fn route(path: &str, v: &Value, base: &Path, xsrf: bool) -> read::Result<RouteConfig> {
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
            .find(|m| !crate::http::request::METHODS.contains(&m.as_str()))
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

fn redirect(path: &str, v: &Value) -> read::Result<Redirect> {
    let o = Obj::new(path, v, &["status", "from", "to"])?;
    let required = |key: &str| {
        o.string(key)?
            .map_or_else(|| fail(&o.path_of(key), "is required"), Ok)
    };
    let from = required("from")?;
    let to = required("to")?;
    if redirect::is_listener(&from) {
        redirect::listener(&from).or_else(|m| fail(&o.path_of("from"), m))?;
        redirect::target(&to).or_else(|m| fail(&o.path_of("to"), m))?;
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

fn redirect_status(o: &Obj<'_>, default: u16) -> read::Result<u16> {
    match o.size("status")? {
        None => Ok(default),
        Some(s @ (301 | 302 | 303 | 307 | 308)) => Ok(s as u16),
        Some(s) => fail(
            &o.path_of("status"),
            format!("{s} is not a redirect status (301, 302, 303, 307, 308)"),
        ),
    }
}
