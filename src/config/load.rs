//! Reading a `web.json5` tree into a [`Config`]: Ioto's keys sifted first,
//! then the `web` object's own keys checked here and each section handed to
//! the reader beside its types (`limits`, `route`, `web_sockets`, …). Every
//! key is named in its error; paths are taken from the config file's folder.

use std::path::Path;

use serde_json::Value;

use super::read::{self, fail, Obj};
use super::units::parse_listen_url;
use super::{ioto, limits, logging, redirect, route, scale, timeouts, tls, users, web_sockets};
use super::{Config, Upload};

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
        config.timeouts = timeouts::timeouts(&path, v)?;
    }
    if let Some((path, v)) = web.get("limits") {
        config.limits = limits::limits(&path, v)?;
    }
    if let Some(list) = web.list("routes")? {
        // Ioto's `web.xsrf`: the default of every route's own `xsrf`.
        let xsrf = web.boolean("xsrf")?.unwrap_or(false);
        config.routes = list
            .iter()
            .map(|(path, v)| route::route(path, v, base, xsrf))
            .collect::<read::Result<_>>()?;
    }
    if let Some(list) = web.list("redirect")? {
        config.redirects = list
            .iter()
            .map(|(path, v)| redirect::redirect(path, v))
            .collect::<read::Result<_>>()?;
    }
    if let Some((path, v)) = web.get("webSockets") {
        config.web_sockets = web_sockets::web_sockets(&path, v)?;
    }
    if let Some((path, v)) = web.get("log") {
        config.log = logging::log_config(&path, v, base)?;
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
