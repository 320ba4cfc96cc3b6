//! The server's configuration, read from a `web.json5` with EmbedThis Ioto's
//! keys and value syntax, or built in code.
//!
//! Every key is optional; [`Config::default`] documents each default. Sizes
//! accept `1024`, `'10K'`, `'1MB'`, `'2GB'` or `'unlimited'`; durations accept
//! seconds or `'500 ms'`, `'5 secs'`, `'10 mins'`, `'1 hr'`, `'never'`.
//! Unknown keys and wrong types are errors that name the key.

mod error;
mod ioto;
mod limits;
mod load;
mod logging;
mod policy;
mod proxy;
mod read;
pub(crate) mod redirect;
mod route;
mod scale;
// Matching and rendering wait for the gateway to call them (lead).
#[allow(dead_code)]
pub(crate) mod template;
mod timeouts;
mod tls;
pub mod units;
mod users;
mod web_sockets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::ConfigError;
pub use limits::Limits;
pub use logging::{AccessFormat, Log};
pub use policy::{Auth, Rate, RateAction};
pub use proxy::{Balancer, Breaker, HeaderRules, ProxyConfig, Scheme, Sticky};
use read::fail;
pub use redirect::Redirect;
pub use route::{HandlerKind, RouteConfig, RouteRedirect};
pub use timeouts::Timeouts;
use units::parse_listen_url;
pub use web_sockets::{Compression, WebSockets};

pub use ioto::IgnoredKey;
pub use scale::{host_name, Backplane, MAX_WORKERS};
pub use tls::Tls;
pub use users::{Attempts, LoginPaths, Role, User, Users};

/// Everything the server needs to know, with Ioto's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses to listen on (`listen`). Default: `['http://127.0.0.1:8080']`.
    pub listen: Vec<SocketAddr>,
    /// The `https://` addresses of `listen` (TLS with the certificate of
    /// [`Config::tls`]); none by default.
    pub listen_tls: Vec<SocketAddr>,
    /// The device's host name (`name`, e.g. `'camera.local'`): a certificate
    /// made with `tls.certificate: 'generate'` names it besides `localhost`.
    pub name: Option<String>,
    /// The certificate and key of the `https://` listeners (`tls`).
    pub tls: Tls,
    /// The folder file routes serve (`documents`). Default: `./site`.
    pub documents: PathBuf,
    /// The file served for a path ending in `/` (`index`). Default: `index.html`.
    pub index: String,
    /// Headers added to every response (`headers`). Default: none.
    pub headers: Vec<(String, String)>,
    /// Extra MIME types by extension, merged over the built-in table (`mime`).
    pub mime: Vec<(String, String)>,
    /// Pages sent for error statuses (`errors: { 404: '/404.html' }`): the
    /// status and the page's path under `documents`. Default: none (a short
    /// plain-text page).
    pub errors: Vec<(u16, String)>,
    /// Time limits (`timeouts`).
    pub timeouts: Timeouts,
    /// Size and count limits (`limits`).
    pub limits: Limits,
    /// The routing table (`routes`), first match wins. Default: one file route for everything.
    pub routes: Vec<RouteConfig>,
    /// Redirects checked before the routes (`redirect`): of exact paths, and
    /// of every request on a listener (http → https).
    pub redirects: Vec<Redirect>,
    /// WebSocket options (`webSockets`).
    pub web_sockets: WebSockets,
    /// Logging (`log`).
    pub log: Log,
    /// Users, roles and logging in (`auth`); none by default.
    pub auth: Option<Users>,
    /// Where `multipart/form-data` uploads are stored (`upload`).
    pub upload: Upload,
    /// Keys of Ioto's `web.json5` that wisp read without effect (such as
    /// `show` or `sessions`), each with why; the server logs them as
    /// warnings when it starts. Keys wisp cannot honour safely are refused.
    pub ioto_ignored: Vec<IgnoredKey>,
    /// Event loops serving the listeners (`workers`: a number, or `'auto'`
    /// for the cores available). Default: 1. See [`Workers`](crate::Workers).
    pub workers: usize,
    /// Rooms across machines over Redis (`backplane`); none by default.
    pub backplane: Option<Backplane>,
}

/// Uploads: `upload: { dir: './uploads', remove: true }` (Ioto's keys).
///
/// The file parts of a `multipart/form-data` body sent to an action
/// registered with `Server::action_with_uploads` stream into files in
/// `dir`, under names the server makes up; `limits.upload` bounds the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The folder uploaded files are written to (`dir`, default
    /// `./uploads` beside the config file); created when first needed.
    pub dir: PathBuf,
    /// Remove the files once the handler returned, unless it kept them
    /// (`remove`, default `true`).
    pub remove: bool,
}

impl Default for Upload {
    fn default() -> Self {
        Upload {
            dir: PathBuf::from("./uploads"),
            remove: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            listen_tls: Vec::new(),
            name: None,
            tls: Tls::default(),
            documents: PathBuf::from("./site"),
            index: "index.html".to_string(),
            headers: Vec::new(),
            mime: Vec::new(),
            errors: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            routes: vec![RouteConfig::files("")],
            redirects: Vec::new(),
            web_sockets: WebSockets::default(),
            log: Log::default(),
            auth: None,
            upload: Upload::default(),
            ioto_ignored: Vec::new(),
            workers: 1,
            backplane: None,
        }
    }
}

impl Config {
    /// Reads a `web.json5` file. Relative paths inside it are relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| e.in_file(path))
    }

    /// Parses json5 text (`{ web: { … } }`); relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        if nesting(text) > MAX_NESTING {
            // The json5 parser recurses once per level: deep enough input
            // would overflow the stack instead of failing (found by fuzzing).
            return Err(ConfigError::Syntax {
                path: None,
                message: format!("nested more than {MAX_NESTING} levels deep"),
            });
        }
        let root: Value = json5::from_str(text).map_err(|e| ConfigError::Syntax {
            path: None,
            message: error::syntax_message(text, &e),
        })?;
        load::from_root(&root, base).map_err(ConfigError::from)
    }

    /// Listens on `url` alone, replacing [`Config::listen`].
    ///
    /// `url` takes the forms of `listen` in a `web.json5`: `'http://:8080'`
    /// (every IPv4 interface), `'http://127.0.0.1:9000'`, `'http://[::1]:8080'`,
    /// `'http://localhost'` (port 80), or the same without the scheme:
    /// `'127.0.0.1:0'`, `':8080'`, `'8080'`; and `'https://:8443'` and the
    /// like, which go to [`Config::listen_tls`] (TLS with [`Config::tls`]).
    /// One that does not parse is a [`ConfigError::Invalid`] for the key
    /// `listen`, and the lists stay as they were.
    ///
    /// ```
    /// let mut config = wisp::Config::default();
    /// config.listen_on("http://127.0.0.1:0")?;
    /// assert_eq!(config.listen, ["127.0.0.1:0".parse().unwrap()]);
    /// assert!(config.listen_on("ftp://:21").is_err());
    /// # Ok::<(), wisp::ConfigError>(())
    /// ```
    pub fn listen_on(&mut self, url: &str) -> Result<&mut Self, ConfigError> {
        let (addr, tls) = listen_address(url)?;
        self.listen.clear();
        self.listen_tls.clear();
        self.add_listener(addr, tls);
        Ok(self)
    }

    /// Listens on `url` as well, adding it to [`Config::listen`]; `url` is as
    /// for [`Config::listen_on`].
    ///
    /// ```
    /// let mut config = wisp::Config::default();
    /// config.listen_on("127.0.0.1:0")?.also_listen_on("http://[::1]:0")?;
    /// assert_eq!(config.listen.len(), 2);
    /// # Ok::<(), wisp::ConfigError>(())
    /// ```
    pub fn also_listen_on(&mut self, url: &str) -> Result<&mut Self, ConfigError> {
        let (addr, tls) = listen_address(url)?;
        self.add_listener(addr, tls);
        Ok(self)
    }

    fn add_listener(&mut self, addr: SocketAddr, tls: bool) {
        if tls {
            self.listen_tls.push(addr);
        } else {
            self.listen.push(addr);
        }
    }
}

/// A listen address given in code, its error named for the `listen` key.
fn listen_address(url: &str) -> Result<(SocketAddr, bool), ConfigError> {
    Ok(parse_listen_url(url).or_else(|e| fail("listen", e))?)
}

/// Deeper than any configuration needs, far shallower than the stack allows.
const MAX_NESTING: usize = 64;

/// The deepest nesting of `{` and `[` outside strings and comments.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' | '\'' => {
                // Skip the string, escapes included.
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        s if s == c => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                chars.find(|&s| s == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for s in chars.by_ref() {
                    if star && s == '/' {
                        break;
                    }
                    star = s == '*';
                }
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/srv/device")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_config_is_the_default_with_paths_from_the_base() {
        let c = parse("{}").unwrap();
        assert_eq!(c.documents, Path::new("/srv/device/site"));
        assert_eq!(c.listen, Config::default().listen);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.routes, vec![RouteConfig::files("")]);
    }

    #[test]
    fn the_shipped_web_json5_parses() {
        let text = include_str!("../../web.json5");
        let c = parse(text).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.timeouts.parse, Some(Duration::from_secs(5)));
        assert!(c.routes.iter().any(|r| r.handler == HandlerKind::Action));
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "{ web: {
                listen: ['http://:8080', 'http://[::1]:9000'],
                documents: 'www', index: 'home.html',
                headers: { 'X-A': '1' }, mime: { md: 'text/markdown' },
                timeouts: { parse: '500 ms', inactivity: 'never', request: 60 },
                limits: { connections: 7, header: '2K', headers: 9, uri: '1K', body: '1MB',
                          upload: '64MB', requests: 5, maxFrame: '64K', maxMessage: 'unlimited' },
                routes: [
                    { match: '/api/', handler: 'action', methods: ['GET', 'POST'] },
                    { match: '/old/', redirect: { status: 308, to: '/new/' } },
                    { match: '/moved', redirect: '/there' },
                    { match: '', handler: 'file', documents: 'other', compressed: true, cache: { maxAge: '1 hr' } },
                ],
                redirect: [ { from: '/home', to: '/' } ],
                webSockets: { protocol: ['chat', 'v2.json'], ping: '30 secs', validateUTF: false, closeTimeout: '1 sec' },
                log: { level: 'debug', access: true },
            } }",
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.documents, Path::new("/srv/device/www"));
        assert_eq!(c.index, "home.html");
        assert_eq!(c.headers, vec![("X-A".into(), "1".into())]);
        assert_eq!(c.mime, vec![("md".into(), "text/markdown".into())]);
        assert_eq!(c.timeouts.parse, Some(Duration::from_millis(500)));
        assert_eq!(c.timeouts.inactivity, None);
        assert_eq!(c.timeouts.request, Some(Duration::from_secs(60)));
        assert_eq!(c.limits.connections, 7);
        assert_eq!(c.limits.header, 2048);
        assert_eq!(c.limits.max_message, u64::MAX);
        assert_eq!(c.limits.upload, 64 * 1024 * 1024);
        let base = Path::new("/srv/device");
        let u = Config::parse("{ web: { upload: { dir: 'up', remove: false } } }", base).unwrap();
        assert_eq!(u.upload.dir, Path::new("/srv/device/up"));
        assert!(!u.upload.remove);
        assert!(Config::parse("{ web: { upload: { dri: 'x' } } }", base).is_err());
        let d = Config::parse("{ web: {} }", base).unwrap();
        assert_eq!(
            (d.upload.dir.as_path(), d.upload.remove),
            (Path::new("/srv/device/uploads"), true)
        );
        assert_eq!(c.limits.max_frame, 64 * 1024, "set");
        // Without a maxFrame, a frame may be as long as a message.
        let limits = |body: &str| {
            parse(&format!("{{ web: {{ limits: {{ {body} }} }} }}"))
                .unwrap()
                .limits
        };
        assert_eq!(limits("maxMessage: '200K'").max_frame, 200 * 1024);
        assert_eq!(limits("").max_frame, limits("").max_message);
        assert_eq!(Limits::default().upload, 20 * 1024 * 1024);
        assert_eq!(c.routes[0].methods, Some(vec!["GET".into(), "POST".into()]));
        assert_eq!(
            c.routes[1].redirect,
            Some(RouteRedirect {
                status: 308,
                to: "/new/".into()
            })
        );
        assert_eq!(
            c.routes[2].redirect,
            Some(RouteRedirect {
                status: 302,
                to: "/there".into()
            })
        );
        assert_eq!(
            c.routes[3].documents,
            Some(PathBuf::from("/srv/device/other"))
        );
        assert!(c.routes[3].compressed);
        assert_eq!(c.routes[3].cache_max_age, Some(Duration::from_secs(3600)));
        assert_eq!(c.redirects[0].status, 301);
        let ws = &c.web_sockets;
        assert_eq!(
            ws.protocols,
            vec!["chat".to_string(), "v2.json".to_string()]
        );
        assert_eq!(ws.ping, Some(Duration::from_secs(30)));
        assert!(!ws.validate_utf8);
        assert_eq!(ws.close_timeout, Duration::from_secs(1));
        assert_eq!(
            c.log,
            Log {
                level: log::LevelFilter::Debug,
                access: true,
                ..Log::default()
            }
        );
        let log = parse(
            "{ web: { log: { format: 'common', path: 'logs/wisp.log', size: '64K', keep: 5 } } }",
        )
        .unwrap()
        .log;
        assert_eq!(log.format, AccessFormat::Common);
        assert_eq!(log.path, Some(PathBuf::from("/srv/device/logs/wisp.log")));
        assert_eq!((log.size, log.keep), (64 * 1024, 5));
        assert_eq!(
            parse("{ web: { log: 'warn' } }").unwrap().log.level,
            log::LevelFilter::Warn
        );
        assert_eq!(
            parse("{ web: { webSockets: { protocol: 'one' } } }")
                .unwrap()
                .web_sockets
                .protocols,
            vec!["one".to_string()]
        );
    }

    #[test]
    fn tls_generate_store_and_listener_redirects_are_read() {
        let c = parse(
            "{ web: { listen: ['http://:8080', 'http://:8081'],
                tls: { certificate: 'generate' },
                redirect: [ { status: 301, from: 'http://:8080', to: 'https://:8443' },
                            { from: '/old', to: '/new' } ] } }",
        )
        .unwrap();
        assert!(c.tls.generate);
        assert_eq!(c.tls.certificate, None);
        assert_eq!(c.tls.store, Path::new("/srv/device/state"));
        assert_eq!(c.redirects.len(), 2);
        assert_eq!(c.redirects[0].from, "http://:8080");
        let c =
            parse("{ web: { tls: { certificate: 'generate', store: '/var/lib/wisp' } } }").unwrap();
        assert_eq!(c.tls.store, Path::new("/var/lib/wisp"));
        let c = parse("{ web: { tls: { certificate: 'a.pem', key: 'k.pem' } } }").unwrap();
        assert!(!c.tls.generate);
        assert_eq!(c.tls.certificate, Some(PathBuf::from("/srv/device/a.pem")));
        assert_eq!(Tls::default().store, Path::new("./state"));
    }

    #[test]
    fn listen_addresses_set_in_code() {
        let mut c = Config::default();
        c.listen_on("http://:8080").unwrap();
        assert_eq!(c.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        c.also_listen_on("[::1]:9000").unwrap();
        assert_eq!(c.listen.len(), 2);
        let e = c.listen_on("ftp://:21").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"listen: "ftp://:21": unknown scheme "ftp""#
        );
        assert_eq!(c.listen.len(), 2, "a refused address leaves the list");
        #[cfg(feature = "tls")]
        {
            c.also_listen_on("https://127.0.0.1:8443").unwrap();
            assert_eq!(c.listen.len(), 2, "an https address is not a plain one");
            assert_eq!(c.listen_tls, vec!["127.0.0.1:8443".parse().unwrap()]);
            c.listen_on("https://:0").unwrap();
            assert!(c.listen.is_empty());
            assert_eq!(c.listen_tls, vec!["0.0.0.0:0".parse().unwrap()]);
        }
        #[cfg(not(feature = "tls"))]
        assert!(c.also_listen_on("https://127.0.0.1:8443").is_err());
        c.listen_on("http://:8080").unwrap();
        assert!(c.listen_tls.is_empty(), "listen_on replaces both lists");
        assert!(c.also_listen_on("http://:99999").is_err());
        assert_eq!(c.listen.len(), 1);
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (
                "{ web: { limits: { maxFrme: '1K' } } }",
                "web.limits.maxFrme: unknown key; did you mean maxFrame?",
            ),
            (
                "{ web: { listn: [] } }",
                "web.listn: unknown key; did you mean listen?",
            ),
            ("{ wbe: {} }", "wbe: unknown key; did you mean web?"),
            (
                "{ web: { limits: { body: '10Q' } } }",
                "web.limits.body: \"10Q\": unknown size unit",
            ),
            (
                "{ web: { limits: { body: true } } }",
                "web.limits.body: expected a size",
            ),
            (
                "{ web: { limits: { connections: 0 } } }",
                "web.limits.connections: must be at least 1",
            ),
            (
                "{ web: { timeouts: { parse: 'soon' } } }",
                "web.timeouts.parse: \"soon\" is not a duration",
            ),
            (
                "{ web: { listen: ['https://:443'] } }",
                if cfg!(feature = "tls") {
                    "web.listen: an https address needs web.tls.certificate and web.tls.key"
                } else {
                    "web.listen: \"https://:443\": https needs wisp built with its `tls` feature"
                },
            ),
            (
                "{ web: { routes: [ { match: 'x' } ] } }",
                "web.routes[0].match: must be '' or start with '/'",
            ),
            (
                "{ web: { routes: [ {}, { handler: 'cgi' } ] } }",
                "web.routes[1].handler: \"cgi\" is not",
            ),
            (
                "{ web: { log: { format: 'json' } } }",
                "web.log.format: \"json\" is not 'combined' or 'common'",
            ),
            (
                "{ web: { log: { size: 10 } } }",
                "web.log.size: must be at least 1K",
            ),
            (
                "{ web: { errors: { '200': '/ok.html' } } }",
                "web.errors.200: must be an error status, 400 to 599",
            ),
            (
                "{ web: { errors: { '404': 'x.html' } } }",
                "web.errors.404: \"x.html\" must be a path such as '/404.html'",
            ),
            (
                "{ web: { errors: { '404': '/../x.html' } } }",
                "web.errors.404: \"/../x.html\" must be a path",
            ),
            (
                "{ web: { routes: [ { handler: 'acton' } ] } }",
                "web.routes[0].handler: \"acton\" is not a handler; did you mean 'action'?",
            ),
            (
                "{ web: { limits: { connections: 'ten' } } }",
                "web.limits.connections: expected a count such as 100 or 'unlimited', found \"ten\"",
            ),
            (
                "{ web: { limits: { requests: true } } }",
                "web.limits.requests: expected a count such as 100 or 'unlimited', found a boolean",
            ),
            (
                "{ web: { routes: [ { methods: ['get'] } ] } }",
                "web.routes[0].methods: \"get\" is not a method",
            ),
            (
                "{ web: { routes: [ { cache: { maxage: 1 } } ] } }",
                "web.routes[0].cache.maxage: unknown key; did you mean maxAge?",
            ),
            (
                "{ web: { redirect: [ { from: '/a', to: '/b', status: 200 } ] } }",
                "web.redirect[0].status: 200 is not a redirect status",
            ),
            (
                "{ web: { redirect: [ { from: '/a' } ] } }",
                "web.redirect[0].to: is required",
            ),
            (
                "{ web: { redirect: [ { from: 'old', to: '/b' } ] } }",
                "web.redirect[0].from: must start with '/' or be a listen URL",
            ),
            (
                "{ web: { redirect: [ { from: 'ftp://:21', to: 'https://:8443' } ] } }",
                "web.redirect[0].from: \"ftp://:21\": unknown scheme",
            ),
            (
                "{ web: { redirect: [ { from: 'http://:8080', to: '/new' } ] } }",
                "web.redirect[0].to: \"/new\": expected a URL",
            ),
            (
                "{ web: { redirect: [ { from: 'http://:8080', to: 'https://:8443/x' } ] } }",
                "web.redirect[0].to: \"https://:8443/x\": only a scheme, host and port",
            ),
            (
                "{ web: { tls: { certificate: 'generate', key: 'k.pem' } } }",
                "web.tls.key: certificate: 'generate' makes its own key",
            ),
            (
                "{ web: { tls: { store: '' } } }",
                "web.tls.store: must be a folder name",
            ),
            (
                "{ web: { tls: { stor: 'x' } } }",
                "web.tls.stor: unknown key; did you mean store?",
            ),
            (
                "{ web: { headers: { 'X-A': 'a\\nb' } } }",
                "web.headers: \"X-A\" is not a valid header",
            ),
            ("{ web: [] }", "web: expected an object, found a list"),
            (
                "{ web: { log: 'loud' } }",
                "web.log: \"loud\" is not a log level",
            ),
            (
                "{ web: { log: { acess: true } } }",
                "web.log.acess: unknown key; did you mean access?",
            ),
            (
                "{ web: { webSockets: { pnig: 1 } } }",
                "web.webSockets.pnig: unknown key; did you mean ping?",
            ),
            (
                "{ web: { webSockets: { protocol: 'a b' } } }",
                "web.webSockets.protocol: \"a b\" is not a valid protocol token",
            ),
            (
                "{ web: { webSockets: { closeTimeout: 'never' } } }",
                "web.webSockets.closeTimeout: must be a finite duration",
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
    fn deep_nesting_is_refused_before_the_parser_recurses() {
        assert_eq!(
            nesting("{ a: [ { b: '[[[{{{' } ], // [[[\n /* {{{ */ c: \"]]\" }"),
            3
        );
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        let err = parse(&format!("{{ web: {{ x: {deep} }} }}")).unwrap_err();
        assert!(err.contains("nested more than 64 levels"), "{err}");
        assert!(parse("{ web: { headers: {} } }").is_ok());
    }

    #[test]
    fn syntax_errors_and_files_are_named() {
        assert!(parse("{ web: { listen: [ }").is_err());
        // Where the parser stopped, not where the unclosed brace opened.
        let err = parse("{ web: {\n  listen: ['http://:1']\n  limits: {} } }").unwrap_err();
        assert_eq!(err.to_string(), "expected comma at line 3 column 3");
        // What `main` returning it prints: the same line, not the variant's fields.
        let err = Config::parse("{ web: { limits: { bdy: 1 } } }", Path::new("/")).unwrap_err();
        assert_eq!(format!("{err:?}"), err.to_string());
        let err = parse("{ web: {\n  limits: { body: 1 },\n}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the text ends at line 3 inside an object ({ … }) (opened at line 1 column 1): \
             a closing brace, bracket or quote is missing"
        );
        let dir = std::env::temp_dir().join(format!("wisp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.json5");
        std::fs::write(&file, "{ web: { documents: 'pub', limits: { bdy: 1 } } }").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: web.limits.bdy: unknown key; did you mean body?",
                file.display()
            )
        );
        std::fs::write(&file, "{ web: { documents: 'pub' } }").unwrap();
        assert_eq!(Config::load(&file).unwrap().documents, dir.join("pub"));
        std::fs::remove_dir_all(&dir).unwrap();
        let err = Config::load(Path::new("/nonexistent/web.json5"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read /nonexistent/web.json5: "),
            "{err}"
        );
    }

    #[test]
    fn the_waiting_room_is_read() {
        let d = parse("{ web: {} }").unwrap().web_sockets;
        assert_eq!((d.waiting_room, d.leave_waiting_room), (None, true));
        let ws =
            parse("{ web: { webSockets: { waitingRoom: 'lobby', leaveWaitingRoom: false } } }")
                .unwrap()
                .web_sockets;
        assert_eq!(ws.waiting_room.as_deref(), Some("lobby"));
        assert!(!ws.leave_waiting_room);
        assert_eq!(
            parse("{ web: { webSockets: { waitingRoom: '' } } }").unwrap_err(),
            "web.webSockets.waitingRoom: must name a room"
        );
    }
}
