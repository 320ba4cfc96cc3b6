//! EmbedThis Ioto's `web.json5` keys, in one table: which ones wisp reads
//! (under the same name or its own), which it accepts without effect, and
//! which it refuses, each with why. An Ioto configuration starts on wisp
//! unless it asks for something wisp cannot honour; then the error says the
//! key is Ioto's and why wisp leaves it out, not "unknown key".

use serde_json::{Map, Value};

use super::read::{self, fail};

/// What wisp does with one of Ioto's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read under the same name, with Ioto's meaning.
    Same,
    /// Read as wisp's key of this name (given both, the config is refused).
    Alias(&'static str),
    /// Accepted and without effect, for this reason (a warning at start).
    Ignored(&'static str),
    /// Refused, for this reason.
    Refused(&'static str),
    /// Accepted without effect when its value is this (as JSON text, such
    /// as `"'basic'"` for the string), refused for any other, for this reason.
    Only(&'static str, &'static str),
}

use Support::{Alias, Ignored, Only, Refused, Same};

const NO_DIGEST: &str =
    "wisp has no HTTP Digest authentication (Basic credentials and login sessions only)";

/// Every key of Ioto's documented `web.json5` for its web server, by path
/// (`[]` stands for each element of a list). A key under one that is
/// ignored or refused as a whole is not listed.
pub(crate) const IOTO_KEYS: &[(&str, Support)] = &[
    ("web.documents", Same),
    ("web.index", Same),
    ("web.listen", Same),
    ("web.headers", Same),
    ("web.redirect", Same),
    ("web.redirect[].from", Same),
    ("web.redirect[].to", Same),
    ("web.redirect[].status", Same),
    ("web.name", Same),
    ("web.mime", Same),
    (
        "web.fiberBlocks",
        Ignored("wisp has no fibers: callbacks run to completion on the event loop"),
    ),
    ("web.auth", Same),
    ("web.auth.roles", Same),
    ("web.auth.users", Same),
    ("web.auth.login", Same),
    ("web.auth.requireTlsForBasic", Same),
    ("web.auth.authType", Only("'basic'", NO_DIGEST)),
    ("web.auth.algorithm", Ignored(NO_DIGEST)),
    ("web.auth.track", Ignored(NO_DIGEST)),
    (
        "web.auth.realm",
        Ignored("wisp's Basic challenge names the realm web.name (else 'wisp')"),
    ),
    (
        "web.auth.secret",
        Ignored("wisp's session ids and XSRF tokens are random 128-bit values, signed by nothing"),
    ),
    ("web.auth.logout", Ignored("wisp's logout path is auth.login.logout")),
    ("web.upload", Same),
    ("web.upload.dir", Same),
    ("web.upload.remove", Same),
    ("web.limits", Same),
    ("web.limits.body", Same),
    ("web.limits.connections", Same),
    ("web.limits.header", Same),
    ("web.limits.upload", Same),
    ("web.limits.uri", Same),
    ("web.limits.maxFrame", Same),
    ("web.limits.maxMessage", Same),
    ("web.limits.requests", Same),
    ("web.limits.digest", Ignored(NO_DIGEST)),
    (
        "web.limits.buffer",
        Ignored("wisp reads into one buffer shared by every connection and keeps a body only below limits.body"),
    ),
    (
        "web.limits.uploads",
        Ignored("wisp bounds a multipart upload by its bytes (limits.upload), not its count of files"),
    ),
    (
        "web.limits.sessions",
        Ignored("wisp keeps at most 1000 login sessions (the least recently used goes first), each ending after timeouts.session unused"),
    ),
    ("web.limits.webSocketsMessage", Alias("maxMessage")),
    ("web.limits.webSocketsFrame", Alias("maxFrame")),
    (
        "web.limits.webSockets",
        Ignored("WebSockets count towards limits.connections (and limits.connectionsPerIp) like any connection"),
    ),
    (
        "web.limits.webSocketsMax",
        Ignored("WebSockets count towards limits.connections (and limits.connectionsPerIp) like any connection"),
    ),
    (
        "web.limits.webSocketsPacket",
        Ignored("wisp writes each message as one frame straight into the connection's output; there is no packet buffer to size"),
    ),
    ("web.timeouts", Same),
    ("web.timeouts.inactivity", Same),
    ("web.timeouts.parse", Same),
    ("web.timeouts.request", Same),
    ("web.timeouts.session", Same),
    ("web.timeouts.sessions", Alias("session")),
    ("web.timeouts.digest", Ignored(NO_DIGEST)),
    (
        "web.timeouts.tls",
        Ignored("wisp keeps no TLS session cache to expire; a TLS handshake is bounded by timeouts.handshake"),
    ),
    ("web.webSockets", Same),
    ("web.webSockets.enable", Same),
    ("web.webSockets.protocol", Same),
    ("web.webSockets.ping", Same),
    ("web.webSockets.validateUTF", Same),
    ("web.webSockets.maxFrame", Refused("wisp reads it as web.limits.maxFrame")),
    ("web.webSockets.maxMessage", Refused("wisp reads it as web.limits.maxMessage")),
    ("web.routes", Same),
    ("web.routes[].match", Same),
    ("web.routes[].handler", Same),
    ("web.routes[].methods", Same),
    ("web.routes[].role", Same),
    ("web.routes[].can", Alias("role")),
    ("web.routes[].redirect", Same),
    ("web.routes[].trim", Same),
    ("web.routes[].stream", Same),
    ("web.routes[].validate", Same),
    ("web.routes[].xsrf", Same),
    ("web.routes[].compressed", Same),
    ("web.routes[].cache", Same),
    ("web.routes[].cache.maxAge", Same),
    (
        "web.routes[].cache.directives",
        Ignored("wisp sends Cache-Control: max-age (cache.maxAge) alone"),
    ),
    (
        "web.routes[].cache.extensions",
        Refused("wisp's cache.maxAge covers every file of its route: give the files to cache a route of their own"),
    ),
    ("web.routes[].authType", Only("'basic'", NO_DIGEST)),
    ("web.routes[].algorithm", Ignored(NO_DIGEST)),
    ("web.xsrf", Same),
    (
        "web.sessions",
        Ignored("wisp's login cookie is fixed: wisp-session, HttpOnly, SameSite=Lax, Secure over https"),
    ),
    (
        "web.show",
        Ignored("wisp logs through `log` (web.log, or --log debug for every refusal)"),
    ),
    (
        "web.signatures",
        Refused("wisp has no API-signature validator, and running without one would let unchecked requests through (routes[].validate checks JSON bodies only)"),
    ),
];

/// An Ioto key read without effect: its path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredKey {
    /// The key's path, such as `web.limits.webSocketsPacket`.
    pub key: String,
    /// Why wisp has no use for it.
    pub why: &'static str,
}

impl std::fmt::Display for IgnoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: Ioto's key, without effect in wisp: {}",
            self.key, self.why
        )
    }
}

/// What Ioto's key `pattern` (a path with `[]` for list elements) is to wisp;
/// `None` for a key that is not Ioto's.
pub(crate) fn support(pattern: &str) -> Option<Support> {
    IOTO_KEYS
        .iter()
        .find(|(k, _)| *k == pattern)
        .map(|(_, s)| *s)
}

/// The tree with Ioto's keys made wisp's: aliases renamed, ignored keys
/// taken out (and returned), refused keys an error that names them.
pub(crate) fn sift(root: &Value) -> read::Result<(Value, Vec<IgnoredKey>)> {
    let mut tree = root.clone();
    let mut ignored = Vec::new();
    if let Value::Object(map) = &mut tree {
        walk(map, "", "", &mut ignored)?;
    }
    Ok((tree, ignored))
}

/// Sifts one object at `path` (for errors) matching `pattern` (for the table).
fn walk(
    map: &mut Map<String, Value>,
    path: &str,
    pattern: &str,
    ignored: &mut Vec<IgnoredKey>,
) -> read::Result<()> {
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let key_path = join(path, &key);
        let key_pattern = join(pattern, &key);
        match support(&key_pattern) {
            Some(Refused(why)) => {
                return fail(
                    &key_path,
                    format!("Ioto's key, not supported by wisp: {why}"),
                )
            }
            Some(Ignored(why)) => {
                map.remove(&key);
                ignored.push(IgnoredKey { key: key_path, why });
                continue;
            }
            Some(Only(value, why)) => {
                let wanted: Value = json5::from_str(value).unwrap_or(Value::Null);
                if map.get(&key) != Some(&wanted) {
                    return fail(
                        &key_path,
                        format!("Ioto's key, not supported by wisp: {why}"),
                    );
                }
                map.remove(&key);
                continue;
            }
            Some(Alias(to)) => {
                if map.contains_key(to) {
                    return fail(
                        &key_path,
                        format!("Ioto's name for {to}: give one of the two"),
                    );
                }
                if let Some(v) = map.remove(&key) {
                    map.insert(to.to_string(), v);
                }
                continue;
            }
            Some(Same) | None => {}
        }
        match map.get_mut(&key) {
            Some(Value::Object(inner)) => walk(inner, &key_path, &key_pattern, ignored)?,
            Some(Value::Array(items)) => {
                let each = format!("{key_pattern}[]");
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Object(inner) = item {
                        walk(inner, &format!("{key_path}[{i}]"), &each, ignored)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/srv/device")).map_err(|e| e.to_string())
    }

    /// A value of the kind the key takes, for a config that sets it alone.
    fn sample(pattern: &str) -> Option<&'static str> {
        if matches!(pattern, "web.webSockets" | "web.upload") {
            return None;
        }
        let leaf = pattern.rsplit('.').next().unwrap_or_default();
        Some(match leaf {
            "documents" | "dir" => "'.'",
            "index" => "'index.html'",
            "listen" => "['http://127.0.0.1:0']",
            "headers" => "{ 'X-A': '1' }",
            "name" => "'device.local'",
            "match" => "'/x/'",
            "handler" => "'action'",
            "methods" => "['GET']",
            "trim" => "'/x'",
            "enable" | "validateUTF" | "remove" | "stream" | "validate" | "xsrf" => "false",
            "protocol" => "'chat'",
            "ping" | "inactivity" | "parse" | "request" | "session" | "sessions" | "tls" => {
                "'5 secs'"
            }
            "body" | "header" | "upload" | "uri" | "maxFrame" | "maxMessage"
            | "webSocketsPacket" | "webSocketsMessage" | "webSocketsFrame" => "'64K'",
            "connections" | "webSockets" | "webSocketsMax" => "10",
            "show" => "'hB'",
            "logout" => "'/auth/logout'",
            "signatures" => "{ enable: true }",
            "fiberBlocks" | "track" => "true",
            "authType" => "'digest'",
            "algorithm" => "'SHA-256'",
            "realm" => "'device'",
            "secret" => "'s3cret'",
            "mime" => "{ md: 'text/markdown' }",
            "requests" | "digest" | "uploads" => "100",
            "buffer" => "'64K'",
            "requireTlsForBasic" => "false",
            "compressed" => "true",
            "directives" => "'public'",
            "extensions" => "['css']",
            _ => return None,
        })
    }

    /// The config text that sets the key `pattern` (`[]` for a list's
    /// element, which gets the other keys it needs) to `value`.
    fn text_for(pattern: &str, value: &str) -> String {
        let parts: Vec<&str> = pattern.split('.').collect();
        let (leaf, outer) = parts.split_last().unwrap();
        let mut inner = format!("{leaf}: {value}");
        for part in outer.iter().rev() {
            inner = match part.strip_suffix("[]") {
                Some(list) => {
                    let needs: &[(&str, &str)] = match list {
                        "routes" => &[("match", "'/x/'"), ("handler", "'action'")],
                        _ => &[("from", "'/a'"), ("to", "'/b'")],
                    };
                    let filler: String = needs
                        .iter()
                        .filter(|(k, _)| k != leaf)
                        .map(|(k, v)| format!("{k}: {v}, "))
                        .collect();
                    format!("{list}: [ {{ {filler}{inner} }} ]")
                }
                None => format!("{part}: {{ {inner} }}"),
            };
        }
        format!("{{ {inner} }}")
    }

    #[test]
    fn every_ioto_key_is_taken_or_refused_with_why() {
        let mut tried = 0;
        for (pattern, support) in IOTO_KEYS {
            let Some(value) = sample(pattern) else {
                continue;
            };
            let text = text_for(pattern, value);
            let got = parse(&text);
            match support {
                Refused(why) => {
                    let err = got.unwrap_err();
                    assert!(
                        err.contains("Ioto's key, not supported by wisp") && err.contains(why),
                        "{text}: {err}"
                    );
                }
                Ignored(why) => {
                    let c = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert!(c.ioto_ignored.iter().any(|i| i.why == *why), "{text}");
                }
                Only(_, why) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(why), "{text}: {err}");
                }
                Same | Alias(_) => {
                    let c = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert!(c.ioto_ignored.is_empty(), "{text}");
                }
            }
            tried += 1;
        }
        assert!(tried > 40, "only {tried} keys tried");
    }

    #[test]
    fn aliases_read_as_wisps_keys_and_refuse_both_at_once() {
        let c = parse(
            "{ web: { limits: { webSocketsMessage: '2MB', webSocketsFrame: '64K' },
                      timeouts: { sessions: '10 mins' } } }",
        )
        .unwrap();
        assert_eq!(c.limits.max_message, 2 * 1024 * 1024);
        assert_eq!(c.limits.max_frame, 64 * 1024);
        assert_eq!(
            c.timeouts.session,
            Some(std::time::Duration::from_secs(600))
        );
        let err =
            parse("{ web: { limits: { maxMessage: 1, webSocketsMessage: 2 } } }").unwrap_err();
        assert_eq!(
            err,
            "web.limits.webSocketsMessage: Ioto's name for maxMessage: give one of the two"
        );
    }

    #[test]
    fn a_refused_key_names_itself_as_iotos_and_says_why() {
        let err = parse("{ web: { signatures: { enable: true } } }").unwrap_err();
        assert!(
            err.starts_with("web.signatures: Ioto's key, not supported by wisp: wisp has no API-signature validator"),
            "{err}"
        );
        // Not Ioto's: still an unknown key, with a suggestion.
        let err = parse("{ web: { webSockets: { enabel: true } } }").unwrap_err();
        assert_eq!(
            err,
            "web.webSockets.enabel: unknown key; did you mean enable?"
        );
    }

    #[test]
    fn a_key_taken_only_at_one_value_refuses_the_others() {
        assert!(parse(
            "{ web: { auth: { authType: 'basic' }, routes: [ { authType: 'basic' } ] } }"
        )
        .is_ok());
        let err = parse("{ web: { routes: [ {}, { authType: 'digest' } ] } }").unwrap_err();
        assert_eq!(
            err,
            format!("web.routes[1].authType: Ioto's key, not supported by wisp: {NO_DIGEST}")
        );
    }

    #[test]
    fn ignored_keys_are_noted_with_their_path() {
        let c = parse(
            "{ web: { show: 'hB', sessions: { cookie: 'x', sameSite: 'Lax' }, routes: [ {} ] } }",
        )
        .unwrap();
        let keys: Vec<_> = c.ioto_ignored.iter().map(|i| i.key.as_str()).collect();
        // In key order, as the parsed tree holds them.
        assert_eq!(keys, ["web.sessions", "web.show"]);
        assert!(c.ioto_ignored[1]
            .to_string()
            .starts_with("web.show: Ioto's key, without effect in wisp: "));
    }

    #[test]
    fn route_keys_of_iotos_are_read_and_checked() {
        let c = parse(
            "{ web: { xsrf: true, auth: { roles: { admin: ['edit'] } }, routes: [
                { match: '/app/', trim: '/app/', can: 'edit' },
                { match: '/up/', handler: 'action', stream: true, xsrf: false },
                { match: '/api/', handler: 'action', validate: true },
            ] } }",
        )
        .unwrap();
        let r = &c.routes;
        assert_eq!(r[0].trim.as_deref(), Some("/app"));
        assert_eq!(r[0].role.as_deref(), Some("edit"));
        assert!(
            r[0].xsrf && !r[1].xsrf && r[2].xsrf,
            "web.xsrf is the default"
        );
        assert!(r[1].stream && r[2].validate);
        let cases = [
            (
                "{ web: { routes: [ { match: '/a/', stream: true } ] } }",
                "web.routes[0].stream: only on a route with handler: 'action'",
            ),
            (
                "{ web: { routes: [ { match: '/a/', handler: 'action', stream: true, validate: true } ] } }",
                "web.routes[0].validate: needs the whole body",
            ),
            (
                "{ web: { routes: [ { match: '/app/', trim: '/ap' } ] } }",
                "web.routes[0].trim: \"/ap\" must end where a segment",
            ),
            (
                "{ web: { routes: [ { match: '/app/', trim: '/other' } ] } }",
                "web.routes[0].trim: \"/other\" must begin the route's match",
            ),
            (
                "{ web: { routes: [ { match: '/a/', role: 'admin' } ] } }",
                "web.routes[0].role: needs web.auth",
            ),
            (
                "{ web: { xsrf: true, routes: [ { match: '/a/' } ] } }",
                "web.routes[0].xsrf: needs web.auth",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(
                err.starts_with(want),
                "{text}\n  got:  {err}\n  want: {want}"
            );
        }
    }

    #[test]
    fn the_table_names_each_key_once() {
        for (i, (k, _)) in IOTO_KEYS.iter().enumerate() {
            assert!(
                IOTO_KEYS[..i].iter().all(|(other, _)| other != k),
                "{k} twice"
            );
            assert!(k.starts_with("web."), "{k}");
        }
    }
}
