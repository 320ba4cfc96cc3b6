//! The server's configuration, read from a `web.json5` with EmbedThis Ioto's
//! keys and value syntax, or built in code.
//!
//! Every key is optional; [`Config::default`] documents each default. Sizes
//! accept `1024`, `'10K'`, `'1MB'`, `'2GB'` or `'unlimited'`; durations accept
//! seconds or `'500 ms'`, `'5 secs'`, `'10 mins'`, `'1 hr'`, `'never'`.
//! Unknown keys and wrong types are errors that name the key.

mod ioto;
mod load;
mod policy;
mod proxy;
mod read;
pub(crate) mod redirect;
mod scale;
// Matching and rendering wait for the gateway to call them (lead).
#[allow(dead_code)]
pub(crate) mod template;
mod tls;
pub mod units;
mod users;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use policy::{Auth, Rate, RateAction};
pub use proxy::{Balancer, Breaker, HeaderRules, ProxyConfig, Scheme, Sticky};
use read::{fail, KeyError};
use units::parse_listen_url;

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

/// Logging: `log: 'info'` or `log: { level: 'info', access: true }`.
///
/// wisp logs through the `log` facade; the `wisp` binary prints the records
/// to stderr. A program using the library installs its own logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The most verbose level printed by the binary (`level`: `'off'`,
    /// `'error'`, `'warn'`, `'info'`, `'debug'`, `'trace'`; default `'info'`).
    pub level: log::LevelFilter,
    /// One `info` line per request, under the target `wisp::access`
    /// (`access`, default `false`).
    pub access: bool,
    /// The access line's format (`format`: `'combined'`, the default, or `'common'`).
    pub format: AccessFormat,
    /// A file the log goes to instead of stderr (`path`); rotated at `size`.
    pub path: Option<PathBuf>,
    /// The log file's size at which it is rotated (`size`, default 1MB).
    pub size: u64,
    /// Rotated files kept beside it, `path.1` the newest (`keep`, default 3).
    pub keep: usize,
}

/// The access log's line format: Apache's, with the duration and request id after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// `host - - [time] "request" status bytes`.
    Common,
    /// The common format, then `"referer" "user-agent"`.
    Combined,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: log::LevelFilter::Info,
            access: false,
            format: AccessFormat::Combined,
            path: None,
            size: 1024 * 1024,
            keep: 3,
        }
    }
}

/// WebSocket options; frame and message sizes are in [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSockets {
    /// Accept WebSocket upgrades at all (`enable`, default `true`). When
    /// `false`, every upgrade request, proxied ones included, is answered
    /// 403 with a page that says WebSockets are off.
    pub enable: bool,
    /// Subprotocols the server speaks, in no particular order (`protocol`: a
    /// string or a list). The first one the client offers that is listed here
    /// is selected; a client offering only others is refused with 400.
    /// Default: none (a client that offers any is refused).
    pub protocols: Vec<String>,
    /// Send a ping this often to every WebSocket (`ping`, default `'never'`).
    /// A peer that sends nothing, not even the pong, for `timeouts.inactivity`
    /// is closed with 1001.
    pub ping: Option<Duration>,
    /// Check that text messages are UTF-8 and fail the connection with 1007
    /// when not (`validateUTF`, default `true`).
    pub validate_utf8: bool,
    /// After sending a close frame, how long to wait for the peer's before
    /// dropping the connection (`closeTimeout`, default `'5 secs'`).
    pub close_timeout: Duration,
    /// Bytes that may wait in one connection's output (`maxBackpressure`,
    /// default `'1MB'`). Sends beyond it are dropped (or close the
    /// connection, below), and the connection is not read until it drains.
    pub max_backpressure: usize,
    /// Close a connection whose output is over `maxBackpressure` with 1008
    /// instead of dropping what does not fit (`closeOnBackpressure`, default `false`).
    pub close_on_backpressure: bool,
    /// Origins allowed to open a WebSocket (`origins`); an upgrade with another
    /// `Origin` gets 403. Empty (the default): any origin.
    pub origins: Vec<String>,
    /// permessage-deflate (`compression`): off unless configured.
    pub compression: Compression,
    /// A room every WebSocket joins as it opens, before its handler's
    /// `on_open` (`waitingRoom`, Altruist's default waiting room; default:
    /// none). It counts against `limits.roomsPerConnection` like any room.
    pub waiting_room: Option<String>,
    /// Leave the waiting room when the connection first joins another room
    /// (`leaveWaitingRoom`, default `true`): a waiting room holds only those
    /// who have not gone anywhere yet. With `false` the connection stays
    /// until it leaves the room itself.
    pub leave_waiting_room: bool,
}

/// permessage-deflate (RFC 7692), `webSockets.compression`: `true`, or an
/// object of the keys below (an object turns it on unless `enable: false`).
///
/// Memory: by default every message is compressed and inflated from a fresh
/// state, so one compressor (32 KiB at level 1, the zlib-rs one of 371 KiB
/// made only for a message over 64 KiB or a higher level) and one inflater
/// (46 KiB) serve every connection; a connection holds an
/// inflater of its own only while one of its compressed messages arrives in
/// pieces. With `contextTakeover` each connection keeps a compressor and an
/// inflater for its whole life: about 420 KiB at 15 window bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Accept a client's `permessage-deflate` offer (`enable`). Default
    /// `false` in code; the shipped `web.json5` turns it on.
    pub enable: bool,
    /// Messages shorter than this are sent uncompressed (`threshold`,
    /// default 256 bytes): compressing them saves next to nothing.
    pub threshold: usize,
    /// zlib level, 0–9 (`level`, default 1: fastest; messages up to 64 KiB
    /// compressed afresh then go through wisp's own encoder, zlib-ng's level
    /// 1 without the cost of clearing zlib's tables for every message).
    pub level: u32,
    /// Let both sides keep their compression context from message to message
    /// (`contextTakeover`, default `false`): a better ratio for streams of
    /// similar messages, at the memory cost above per connection. Broadcasts
    /// and room publishes, compressed once for everyone, reach such
    /// connections uncompressed.
    pub context_takeover: bool,
    /// The largest window the server's compressors use, 9–15 (`windowBits`,
    /// default 15): 371 KiB for a compressor at 15, 245 KiB at 9.
    pub window_bits: u8,
    /// The window clients are asked to keep to when their offer allows it,
    /// 9–15 (`clientWindowBits`, default 15: ask nothing). zlib-rs's
    /// inflater takes 46 KiB whatever the window, so this saves the server
    /// no memory; it is there for peers that want it.
    pub client_window_bits: u8,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enable: false,
            threshold: 256,
            level: 1,
            context_takeover: false,
            window_bits: 15,
            client_window_bits: 15,
        }
    }
}

impl Default for WebSockets {
    fn default() -> Self {
        WebSockets {
            enable: true,
            protocols: Vec::new(),
            ping: None,
            validate_utf8: true,
            close_timeout: Duration::from_secs(5),
            max_backpressure: 1024 * 1024,
            close_on_backpressure: false,
            origins: Vec::new(),
            compression: Compression::default(),
            waiting_room: None,
            leave_waiting_room: true,
        }
    }
}

/// Time limits; `None` means never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To receive a whole request head, from its first byte (`parse`, default 5 secs).
    pub parse: Option<Duration>,
    /// An idle connection is closed after this (`inactivity`, default 5 mins).
    pub inactivity: Option<Duration>,
    /// To receive a whole request, head and body (`request`, default 5 mins).
    pub request: Option<Duration>,
    /// To finish a TLS handshake, from the connection's accept (`handshake`,
    /// default 10 secs): a client that trickles its handshake is dropped.
    pub handshake: Option<Duration>,
    /// After a stop (SIGINT, SIGTERM, `ServerHandle::stop`), how long
    /// responses in flight and closing handshakes may take (`shutdown`, default 5 secs).
    pub shutdown: Option<Duration>,
    /// To connect to a gateway's downstream host, TLS handshake included
    /// (`connect`, default 5 secs); then the next host is tried.
    pub connect: Option<Duration>,
    /// A login session ends after this long unused (`session`, default 30
    /// mins; each request with the session's cookie starts it over).
    pub session: Option<Duration>,
    /// An idle Server-Sent Events stream gets a comment this often, so
    /// nothing on the way times it out (`keepalive`, default 15 secs).
    pub keepalive: Option<Duration>,
}

/// Size and count limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Open connections; beyond it clients are answered 503 (`connections`, default 100).
    pub connections: usize,
    /// Bytes in one request head; beyond it 431 (`header`, default 10K).
    pub header: usize,
    /// Header lines in one request; beyond it 431 (`headers`, default 64, at most 256).
    pub headers: usize,
    /// Bytes in the request target; beyond it 414 (`uri`, default 4K).
    pub uri: usize,
    /// Bytes in a request body; beyond it 413 (`body`, default 100K).
    pub body: u64,
    /// Bytes in one `PUT` body stored by a file route, streamed to the file as
    /// it arrives; beyond it 413 and nothing is stored (`upload`, default 20MB).
    pub upload: u64,
    /// Requests on one keep-alive connection (`requests`, default 1000).
    pub requests: u64,
    /// Bytes in one WebSocket frame payload (`maxFrame`; when not set, the
    /// same as `maxMessage`, since most clients other than browsers send a
    /// message as one frame).
    pub max_frame: u64,
    /// Bytes in one WebSocket message (`maxMessage`, default 1MB).
    pub max_message: u64,
    /// Rooms one WebSocket may be in at once (`roomsPerConnection`, default 32).
    pub rooms_per_connection: usize,
    /// Members one room may have (`roomMembers`, default 10000).
    pub room_members: usize,
    /// Connections from one IP address; more are answered 503
    /// (`connectionsPerIp`, default `'unlimited'`).
    pub connections_per_ip: usize,
    /// Per-WebSocket message and byte rates (`rate`, default none).
    pub rate: Option<Rate>,
}

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

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            parse: Some(Duration::from_secs(5)),
            inactivity: Some(Duration::from_secs(300)),
            request: Some(Duration::from_secs(300)),
            shutdown: Some(Duration::from_secs(5)),
            handshake: Some(Duration::from_secs(10)),
            connect: Some(Duration::from_secs(5)),
            session: Some(Duration::from_secs(30 * 60)),
            keepalive: Some(Duration::from_secs(15)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 100,
            header: 10 * 1024,
            headers: 64,
            uri: 4 * 1024,
            body: 100 * 1024,
            upload: 20 * 1024 * 1024,
            requests: 1000,
            max_frame: 1024 * 1024,
            max_message: 1024 * 1024,
            rooms_per_connection: 32,
            room_members: 10_000,
            connections_per_ip: usize::MAX,
            rate: None,
        }
    }
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

/// Why a configuration could not be used. Prints as one line.
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The text is not valid json5.
    Syntax {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value is wrong.
    Invalid {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The key's path, such as `web.limits.maxFrame`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The same one line as `Display`: a program whose `main` returns this
/// error prints that line, not the variant's fields.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default()
        };
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Syntax { path, message } => write!(f, "{}{message}", file(path)),
            ConfigError::Invalid { path, key, message } => {
                write!(f, "{}{key}: {message}", file(path))
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
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
            message: syntax_message(text, &e),
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

impl From<KeyError> for ConfigError {
    fn from(e: KeyError) -> Self {
        ConfigError::Invalid {
            path: None,
            key: e.key,
            message: e.message,
        }
    }
}

/// The parser's message, said so that it leads to the mistake: at the end
/// of the text, a brace, bracket or quote left open is reported where it was
/// opened (often line 1), so the message says that the text ended first.
fn syntax_message(text: &str, e: &json5::Error) -> String {
    use json5::ErrorCode as C;
    let opened = match e.code() {
        Some(C::EofParsingObject) => "an object ({ … })",
        Some(C::EofParsingArray) => "a list ([ … ])",
        Some(C::EofParsingString) => "a string",
        Some(C::EofParsingComment) => "a comment",
        Some(C::EofParsingValue) => "a key's value",
        _ => return e.to_string(),
    };
    let at = e
        .position()
        .map(|p| format!(" (opened at line {} column {})", p.line + 1, p.column + 1))
        .unwrap_or_default();
    let lines = text.lines().count().max(1);
    format!("the text ends at line {lines} inside {opened}{at}: a closing brace, bracket or quote is missing")
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

impl ConfigError {
    fn in_file(self, file: &Path) -> ConfigError {
        let file = Some(file.to_path_buf());
        match self {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: file,
                message,
            },
            ConfigError::Invalid { key, message, .. } => ConfigError::Invalid {
                path: file,
                key,
                message,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
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
