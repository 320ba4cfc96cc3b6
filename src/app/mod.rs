//! What the server answers: one complete request in, one response written out.

mod bodies;
mod login;
mod pages;
mod streams;
mod upgrading;

use bodies::{is_multipart, Storing};
pub(crate) use bodies::{BodySink, SinkRefusal};
use login::{check_hashes, gate_from};
use pages::{error_pages, ErrorPage};

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::SystemTime;

use crate::access;
use crate::auth;
use crate::auth::attempts::retry_after;
use crate::auth::gate::{self, Gate, LoggedIn, Refusal, ROLE_REFUSED};
use crate::config::{Config, ConfigError, HandlerKind};
use crate::error::StartError;
use crate::events::{EventSource, EventStream};
use crate::files::mime::MimeTable;
use crate::files::path::normalize;
use crate::files::store::{Stored, Upload};
use crate::files::uploads::{Form, FormReceiver};
use crate::files::{self, FileSite, Sink};
use crate::gateway::exchange::{Exchange, Fetch};
use crate::gateway::{self, Gateway, Proxied};
use crate::http::date::DateCache;
use crate::http::error::HttpError;
use crate::http::head::{Framing, Head, HeadLimits, MAX_HEADERS};
use crate::http::request::{BodyStream, Request};
use crate::http::response::{bodiless, HeadWriter, Response, StatusPage};
use crate::hub::{Hub, RoomLimits, WaitingRoom};
use crate::message::{ConnId, Origin, PeerCert};
use crate::output::FileBody;
use crate::route_table::{matches, Decision, ListenerRedirect, Route, Routes};
use crate::session::{downstream_limits, Session, SharedLimits};
use crate::upgrade;
use crate::ws::receiver::Limits;
use crate::ws_api::AnyHandler;

/// A registered HTTP action handler.
pub(crate) type ActionFn = Box<dyn FnMut(&Request<'_>) -> Response>;

/// A registered streaming action: given the head, a stream for the body or a refusal.
pub(crate) type StreamFn = Box<dyn FnMut(&Request<'_>) -> Result<Box<dyn BodyStream>, Response>>;

/// What answers on an action path.
enum Endpoint {
    Http(ActionFn),
    /// Takes its body piece by piece (`Server::action_streaming`).
    Streaming(StreamFn),
    /// Takes `multipart/form-data` uploads into `upload.dir`
    /// (`Server::action_with_uploads`); other bodies as `Http`.
    Uploads(ActionFn),
    /// A WebSocket handler (its index in `App::sockets`), for one
    /// subprotocol or (`None`) for any.
    Socket {
        socket: usize,
        protocol: Option<String>,
    },
    /// A Server-Sent Events source (its index in `App::streams`).
    Events(usize),
}

struct Action {
    prefix: String,
    endpoint: Endpoint,
}

/// A complete request on its way to an action: head, body, verified claims, origin.
#[derive(Clone, Copy)]
struct Incoming<'r, 'h> {
    head: &'r Head<'h>,
    body: &'r [u8],
    claims: Option<&'r serde_json::Value>,
    origin: Origin,
    /// The TLS client's verified certificate.
    peer_cert: Option<&'r PeerCert>,
}

/// How the connection goes on after a response.
#[derive(Debug)]
pub(crate) struct Handled {
    pub file: Option<FileBody>,
    pub close: bool,
    /// The request was upgraded: the connection speaks WebSocket from now on.
    pub upgrade: Option<Box<Session>>,
    /// A proxied upgrade: the connection waits for the gateway's downstream.
    pub proxied: bool,
    /// A proxied plain request: the connection relays its body (if any) to
    /// the downstream leg and waits for the response, through this.
    pub exchange: Option<Rc<Exchange>>,
    /// The body is still to come: the connection streams it into this.
    pub sink: Option<BodySink>,
    /// An event stream opened (the index of its source in `App::streams`).
    pub events: Option<usize>,
    /// The action answers later (`Response::later`): the connection waits.
    pub later: bool,
}

impl Handled {
    fn response(close: bool) -> Handled {
        Handled {
            file: None,
            close,
            upgrade: None,
            proxied: false,
            exchange: None,
            sink: None,
            events: None,
            later: false,
        }
    }
}

/// Configuration, routes and handlers: everything a response depends on.
pub(crate) struct App {
    pub config: Config,
    pub limits: HeadLimits,
    routes: Routes,
    mime: MimeTable,
    actions: Vec<Action>,
    /// The WebSocket handlers, apart from the actions so that a session
    /// reaches its own with one index.
    sockets: Vec<Box<dyn AnyHandler>>,
    /// What WebSocket receivers accept, by kind of connection: shared by
    /// every session of that kind.
    ws_limits: SharedLimits,
    /// The upgrade targets the handlers' connections share.
    ws_targets: upgrade::Targets,
    pub date: DateCache,
    pub hub: Hub,
    /// The proxy routes and their legs, when the config has any.
    pub gateway: Option<Gateway>,
    /// What a gateway's downstream legs accept (frames from a server).
    pub downstream_limits: Rc<Limits>,
    /// The server is stopping: answers close their connections.
    pub stopping: bool,
    /// Some file route allows `PUT`: its bodies stream into files.
    stores_files: bool,
    /// Some action streams its bodies or takes uploads.
    streams_actions: bool,
    /// A complete upload on its way to its action (`App::finish_form`).
    finished_form: Option<Form>,
    /// The `errors` pages, read at start: status, content type, body.
    error_pages: Vec<ErrorPage>,
    /// The Server-Sent Events sources, apart from the actions like the sockets.
    streams: Vec<Box<dyn EventSource>>,
    /// Who sent the request being answered (for the debug log's refusals).
    peer: std::net::SocketAddr,
    /// `web.auth`: users, their sessions, the login form.
    gate: Option<Gate>,
}

impl App {
    pub fn new(config: Config) -> Result<App, StartError> {
        let routes = Routes::new(&config)?;
        let config_rooms = (
            config.limits.rooms_per_connection,
            config.limits.room_members,
        );
        let limits = HeadLimits {
            header: config.limits.header,
            headers: config.limits.headers.min(MAX_HEADERS),
            uri: config.limits.uri,
            body: config.limits.body,
        };
        let ws_limits = SharedLimits::new(&config);
        let compression = config.web_sockets.compression;
        let waiting_room = config
            .web_sockets
            .waiting_room
            .as_deref()
            .map(|name| WaitingRoom {
                name: name.into(),
                leave_on_join: config.web_sockets.leave_waiting_room,
            });
        let gateway = Gateway::new(&config).map_err(StartError::Config)?;
        let stores_files = config.routes.iter().any(|r| {
            r.handler == HandlerKind::File
                && r.methods
                    .as_ref()
                    .is_some_and(|m| m.iter().any(|m| m == "PUT"))
        });
        let mime = MimeTable::new(&config.mime);
        let error_pages = error_pages(&config, &mime)?;
        check_hashes(&config)?;
        for ignored in &config.ioto_ignored {
            log::warn!("{ignored}");
        }
        Ok(App {
            streams: Vec::new(),
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            gate: Gate::new(&config),
            stores_files,
            streams_actions: false,
            finished_form: None,
            error_pages,
            ws_limits,
            ws_targets: upgrade::Targets::default(),
            downstream_limits: downstream_limits(&config),
            gateway,
            mime,
            config,
            limits,
            routes,
            actions: Vec::new(),
            sockets: Vec::new(),
            date: DateCache::new(),
            hub: Hub::new(RoomLimits {
                per_connection: config_rooms.0,
                members: config_rooms.1,
            })
            .with_compression(compression)
            .with_waiting_room(waiting_room),
            stopping: false,
        })
    }

    /// Adds a proxy route for `prefix` before the config's routes.
    pub fn add_proxy(
        &mut self,
        prefix: &str,
        proxy: crate::config::ProxyConfig,
    ) -> Result<(), StartError> {
        let route = crate::config::RouteConfig::proxy(prefix, proxy);
        let built = gateway::ProxyRoute::new(&format!("proxy({prefix:?})"), &route)
            .map_err(StartError::Config)?;
        let config = &self.config;
        self.gateway
            .get_or_insert_with(|| Gateway::with_limit(config))
            .add(built);
        self.routes.prepend(route.clone());
        self.config.routes.insert(0, route);
        Ok(())
    }

    /// What a WebSocket receiver without compression, taking whole messages, accepts.
    pub fn plain_ws_limits(&self) -> &Rc<Limits> {
        self.ws_limits.plain()
    }

    /// Tells the routes the addresses the listeners were bound to (in
    /// listener order), for redirects to a listener given port 0.
    pub fn bound(&mut self, bound: &[std::net::SocketAddr]) {
        self.routes.bound(bound);
    }

    /// Registers an HTTP action handler for a path prefix (`/api/` or an exact `/api/status`).
    pub fn add_action(&mut self, prefix: &str, handler: ActionFn) {
        self.add(prefix, Endpoint::Http(handler));
    }

    /// Registers a WebSocket handler for a path prefix, for one subprotocol or any.
    pub fn add_websocket(
        &mut self,
        prefix: &str,
        protocol: Option<&str>,
        handler: Box<dyn AnyHandler>,
    ) {
        let protocol = protocol.map(str::to_string);
        let socket = self.sockets.len();
        self.sockets.push(handler);
        self.add(prefix, Endpoint::Socket { socket, protocol });
    }

    /// Registers an action that takes its body piece by piece.
    pub fn add_streaming(&mut self, prefix: &str, open: StreamFn) {
        self.streams_actions = true;
        self.add(prefix, Endpoint::Streaming(open));
    }

    /// Registers an action whose `multipart/form-data` bodies stream into `upload.dir`.
    pub fn add_uploads(&mut self, prefix: &str, handler: ActionFn) {
        self.streams_actions = true;
        self.add(prefix, Endpoint::Uploads(handler));
    }

    fn add(&mut self, prefix: &str, endpoint: Endpoint) {
        self.actions.push(Action {
            prefix: prefix.to_string(),
            endpoint,
        });
        // Longest prefix first, so the most specific handler wins.
        self.actions
            .sort_by_key(|a| std::cmp::Reverse(a.prefix.len()));
    }

    /// The state with key `key` of WebSocket handler `index`.
    pub fn socket_state(&self, index: usize, key: u32) -> Option<&dyn std::any::Any> {
        self.sockets.get(index)?.state(key)
    }

    /// WebSocket handler `index`, the config and the hub, for a session's step.
    #[inline]
    pub fn socket(
        &mut self,
        index: usize,
    ) -> Option<(&mut (dyn AnyHandler + 'static), &Config, &mut Hub)> {
        let handler: &mut dyn AnyHandler = match self.sockets.get_mut(index) {
            Some(handler) => &mut **handler,
            // Only proxied sessions carry an index past the list.
            None => self.gateway.as_mut()?,
        };
        Some((handler, &self.config, &mut self.hub))
    }

    /// Answers one complete request into `out`, and logs it if asked to.
    ///
    /// `peer_cert` is the TLS client's verified certificate, if any.
    pub fn handle(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        (origin, peer_cert): (Origin, Option<&PeerCert>),
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        self.hub.stats.requests += 1;
        self.peer = origin.peer;
        self.date.refresh();
        let mark = out.len();
        let request = Incoming {
            head,
            body,
            claims: None,
            origin,
            peer_cert,
        };
        let handled = self.answer(request, out, close);
        // A proxied upgrade is logged once its downstream answered, a
        // streamed action's request once its body did.
        let later = matches!(handled.sink, Some(BodySink::Stream(_) | BodySink::Form(_)));
        if self.config.log.access && !handled.proxied && !later {
            self.log_access(head, &origin, &out[mark..]);
        }
        handled
    }

    /// Routes a request to its answer: a redirect, a status page, a file or an action.
    fn answer(&mut self, request: Incoming<'_, '_>, out: &mut Vec<u8>, close: bool) -> Handled {
        let Incoming { head, origin, .. } = request;
        if head.path == "*" {
            // OPTIONS * asks about the server as a whole.
            let allow = self.routes.methods();
            let mut w = HeadWriter::start(out, 200, &self.date.text, &self.config.headers);
            w.header("Allow", &allow);
            w.finish(Some(0), close);
            return Handled::response(close);
        }
        if let Some(r) = self.routes.listener_redirect(origin.listener) {
            let Some(location) = listener_location(r, head) else {
                return self.status_page(
                    head,
                    out,
                    400,
                    close,
                    None,
                    "the Host header gives no host for the listener's redirect",
                );
            };
            let mut w = HeadWriter::start(out, r.status, &self.date.text, &self.config.headers);
            w.header("Location", &location);
            w.finish(Some(0), close);
            return Handled::response(close);
        }
        if let Some(handled) = self.login_paths(request, out, close) {
            return handled;
        }
        let Ok((relative, trailing)) = normalize(head.path) else {
            return self.status_page(
                head,
                out,
                400,
                close,
                None,
                "the path is malformed or climbs above the root",
            );
        };
        let routed = routing_path(&relative, trailing);
        match self.routes.decide(&routed) {
            Decision::Redirect { status, location } => {
                let mut w = HeadWriter::start(out, status, &self.date.text, &self.config.headers);
                w.header("Location", location);
                w.finish(Some(0), close);
                Handled::response(close)
            }
            Decision::NotFound => {
                self.status_page(head, out, 404, close, None, "no route matches the path")
            }
            Decision::Route(route) if !route.allows(head.method) => {
                let allow = route.allow_header();
                self.status_page(
                    head,
                    out,
                    405,
                    close,
                    Some(("Allow", &allow)),
                    "the route does not allow the method",
                )
            }
            Decision::Route(route) => {
                let mut claims = match &route.config.auth {
                    None => None,
                    Some(auth) => match auth::check(auth, head, SystemTime::now()) {
                        Ok(claims) => claims,
                        Err(e) => {
                            log::debug!("{}: 401 for {}: {e}", origin.peer, head.path);
                            self.hub.stats.limits.auth += 1;
                            let challenge = Some(("WWW-Authenticate", e.challenge()));
                            return self.status_page(head, out, 401, close, challenge, "");
                        }
                    },
                };
                let role = route.config.role.as_deref();
                if let (Some(gate), true) =
                    (self.gate.as_mut(), role.is_some() || route.config.xsrf)
                {
                    match gate.admit((role, route.config.xsrf), head, gate_from(&origin)) {
                        // An action sees who it is, as it would a JWT's claims.
                        Ok(Some(admitted)) => {
                            claims = claims.or_else(|| {
                                Some(serde_json::json!({ "sub": admitted.user, "role": admitted.role }))
                            });
                        }
                        Ok(None) => {}
                        Err(refusal) => match (&refusal, &route.config.redirect) {
                            // Ioto's `{ role, redirect }`: who may not come in goes there.
                            (
                                Refusal::Challenge(_) | Refusal::Login(_) | Refusal::Wrong(_),
                                Some(to),
                            )
                            | (Refusal::Forbidden(ROLE_REFUSED), Some(to)) => {
                                let mut w = HeadWriter::start(
                                    out,
                                    to.status,
                                    &self.date.text,
                                    &self.config.headers,
                                );
                                w.header("Location", &to.to);
                                w.finish(Some(0), close);
                                return Handled::response(close);
                            }
                            _ => return self.refused(refusal, head, out, close),
                        },
                    }
                }
                // Ioto's `trim`: the handler sees the path without the prefix.
                let trimmed = route.config.trim.as_deref().map(|t| trim_path(t, &routed));
                let (routed, relative) = match &trimmed {
                    Some(t) => (t.as_str(), file_relative(t, trailing)),
                    None => (routed.as_str(), relative.as_str()),
                };
                match route.config.handler {
                    HandlerKind::File if matches!(head.method, "PUT" | "DELETE") => {
                        match self.store(route, head, request.body, (relative, trailing)) {
                            Storing::Body(upload) => Handled {
                                sink: Some(BodySink::File(upload)),
                                ..Handled::response(close)
                            },
                            Storing::Done(result, refused) => {
                                self.stored(result, out, close || refused)
                            }
                        }
                    }
                    HandlerKind::File => {
                        self.serve_file(route, head, (relative, trailing), out, close)
                    }
                    HandlerKind::Action => {
                        let (stream, validate) = (route.config.stream, route.config.validate);
                        let refusal = self.route_refusal(routed, request, (stream, validate));
                        if let Some((status, why)) = refusal {
                            return self.status_page(head, out, status, close, None, why);
                        }
                        let encoded = trimmed.as_deref().map(encode_path);
                        let head = encoded.as_deref().map(|path| with_path(head, path));
                        let request = Incoming {
                            claims: claims.as_ref(),
                            head: head.as_ref().unwrap_or(request.head),
                            ..request
                        };
                        self.run_action(routed, request, out, close)
                    }
                    HandlerKind::Proxy => {
                        let pattern = route.config.pattern.clone();
                        self.proxy(&pattern, request, out, close)
                    }
                }
            }
        }
    }

    fn serve_file(
        &self,
        route: &Route,
        head: &Head<'_>,
        path: (&str, bool),
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        let Some(docs) = route.root.as_ref() else {
            return self.status_page(
                head,
                out,
                500,
                close,
                None,
                "the file route has no documents folder",
            );
        };
        let site = FileSite {
            docs,
            index: &self.config.index,
            mime: &self.mime,
            route: &route.config,
        };
        let mut sink = Sink {
            out,
            file: None,
            date: &self.date.text,
            extra: &self.config.headers,
            close,
        };
        match files::serve(&site, head, path, &mut sink) {
            Ok(()) => Handled {
                file: sink.file,
                close: sink.close,
                upgrade: None,
                proxied: false,
                exchange: None,
                sink: None,
                events: None,
                later: false,
            },
            Err(e) => self.status_page(head, out, e.status(), close, None, &e.to_string()),
        }
    }

    fn run_action(
        &mut self,
        routed: &str,
        incoming: Incoming<'_, '_>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        let Incoming {
            head,
            body,
            claims,
            origin,
            peer_cert,
        } = incoming;
        let Some(index) = self.actions.iter().position(|a| matches(&a.prefix, routed)) else {
            return self.status_page(
                head,
                out,
                404,
                close,
                None,
                "no action handler is registered for the path",
            );
        };
        if let Endpoint::Events(source) = self.actions[index].endpoint {
            return self.open_stream(source, incoming, out);
        }
        if let Some(gateway) = &self.gateway {
            // Only actions read the counters: the gateway's are brought up to date for them.
            self.hub.stats.gateway = gateway.status(origin.now);
        }
        let form = self.finished_form.take();
        let (uploads, fields) = match &form {
            Some(form) => (&form.files[..], &form.fields[..]),
            None => (&[][..], &[][..]),
        };
        let request = Request::new(head, body, origin.peer, &self.hub.stats)
            .with_id(origin.id)
            .with_claims(claims)
            .with_tls(origin.tls)
            .with_peer_cert(peer_cert)
            .with_form(uploads, fields);
        // A body still to come streams (`App::streams_action` said so).
        let streams = head.framing != Framing::None && body.is_empty();
        let handler = match &mut self.actions[index].endpoint {
            Endpoint::Http(handler) => handler,
            Endpoint::Uploads(handler) if form.is_some() || !streams || !is_multipart(head) => {
                handler
            }
            Endpoint::Uploads(_) => {
                let too_large =
                    matches!(head.framing, Framing::Length(n) if n > self.config.limits.upload);
                let started = if too_large {
                    Err(HttpError::BodyTooLarge)
                } else {
                    let content_type = head.header("content-type").unwrap_or_default();
                    FormReceiver::new(content_type, &self.config.upload)
                };
                return match started {
                    Ok(receiver) => Handled {
                        sink: Some(BodySink::Form(Box::new(receiver))),
                        ..Handled::response(close)
                    },
                    Err(e) => {
                        self.refuse_request(e, out);
                        Handled::response(true)
                    }
                };
            }
            Endpoint::Streaming(open) => {
                let opened = match catch_unwind(AssertUnwindSafe(|| open(&request))) {
                    Ok(opened) => opened,
                    Err(_) => {
                        log::error!(
                            "the streaming action for {} panicked; answered 500",
                            head.path
                        );
                        return self.status_page(head, out, 500, true, None, "");
                    }
                };
                let stream = match opened {
                    Ok(stream) => stream,
                    // Refused before its body was read: the connection closes.
                    Err(response) => {
                        let head_only = head.method == "HEAD";
                        return self.write_response(&response, head_only, out, close || streams);
                    }
                };
                if matches!(head.framing, Framing::Length(n) if n > self.config.limits.upload) {
                    self.refuse_request(HttpError::BodyTooLarge, out);
                    return Handled::response(true);
                }
                if streams {
                    return Handled {
                        sink: Some(BodySink::Stream(stream)),
                        ..Handled::response(close)
                    };
                }
                // The body, if any, is here already (gathered below `limits.body`).
                let mut sink = BodySink::Stream(stream);
                if !body.is_empty() {
                    match sink.write(body) {
                        Ok(()) => {}
                        Err(SinkRefusal::Response(response)) => {
                            return self.write_response(&response, false, out, close);
                        }
                        Err(SinkRefusal::Error(e)) => {
                            self.refuse_request(e, out);
                            return Handled::response(true);
                        }
                    }
                }
                let BodySink::Stream(stream) = sink else {
                    return Handled::response(close);
                };
                return self.end_stream(head, stream, out, close);
            }
            Endpoint::Socket { .. } => return self.upgrade(index, incoming, out),
            Endpoint::Events(_) => return Handled::response(close),
        };
        // A panicking handler costs its own request (500, connection closed), never the server.
        match catch_unwind(AssertUnwindSafe(|| handler(&request))) {
            Ok(response) if response.is_later() => Handled {
                later: true,
                ..Handled::response(close)
            },
            Ok(response) => self.write_response(&response, head.method == "HEAD", out, close),
            Err(_) => {
                log::error!(
                    "the action handler for {} panicked; answered 500",
                    head.path
                );
                self.status_page(head, out, 500, true, None, "")
            }
        }
    }

    /// Why a route's own keys refuse a request to its action before it
    /// runs: a whole body for an action on a `stream: true` route (the
    /// config's mistake, 500), or a JSON body that does not parse on a
    /// `validate: true` route (the client's, 400).
    fn route_refusal(
        &self,
        routed: &str,
        request: Incoming<'_, '_>,
        (stream, validate): (bool, bool),
    ) -> Option<(u16, &'static str)> {
        if stream {
            let action = self.actions.iter().find(|a| matches(&a.prefix, routed));
            if let Some(Action {
                endpoint: Endpoint::Http(_),
                ..
            }) = action
            {
                log::warn!(
                    "{}: the route streams its bodies (stream: true) but the action takes them whole: register it with Server::action_streaming",
                    request.head.path
                );
                return Some((
                    500,
                    "the route streams its bodies but its action takes them whole",
                ));
            }
        }
        let json = request.head.header("content-type").is_some_and(is_json);
        let bad = || serde_json::from_slice::<serde::de::IgnoredAny>(request.body).is_err();
        (validate && json && !request.body.is_empty() && bad())
            .then_some((400, "the JSON body does not parse (validate: true)"))
    }

    /// A request on a proxy route: an upgrade is checked as any other and
    /// filed for the reactor to dial its downstream; the answer comes later.
    fn proxy(
        &mut self,
        pattern: &str,
        incoming: Incoming<'_, '_>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        let Incoming { head, origin, .. } = incoming;
        let route = self.gateway.as_ref().and_then(|g| g.route_of(pattern));
        let (Some(gateway), Some(route)) = (self.gateway.as_mut(), route) else {
            return self.status_page(
                head,
                out,
                500,
                close,
                None,
                "no gateway for the proxy route",
            );
        };
        let Some(target) = gateway.target(route, head) else {
            return self.status_page(
                head,
                out,
                404,
                close,
                None,
                "the path does not fit the proxy route's upstream template",
            );
        };
        // An `http`/`https` route passes an upgrade on as a plain request
        // (its hop-by-hop `Upgrade` dropped), as a proxy without WebSockets does.
        let websocket = gateway
            .routes
            .get(route)
            .is_some_and(|r| r.config.scheme.is_websocket());
        if !(websocket && gateway::wants_websocket(head)) {
            let exchange = Rc::new(Exchange::new(head.framing == Framing::None));
            let fetch = Fetch {
                req: Proxied::new((route, target), head, &origin, gateway.sticky(route, head)),
                close,
                has_body: head.framing != Framing::None,
                retried: false,
                exchange: Rc::clone(&exchange),
            };
            gateway.fetch(Box::new(fetch));
            return Handled {
                file: None,
                close: false,
                upgrade: None,
                proxied: true,
                exchange: Some(exchange),
                sink: None,
                events: None,
                later: false,
            };
        }
        if !self.config.web_sockets.enable {
            return self.websockets_off(out);
        }
        let key = match upgrade::check_request(head, &self.config.web_sockets.origins) {
            Ok(key) => key,
            Err(refused) => return self.refused_upgrade(refused, out),
        };
        let upgrade = gateway::Upgrade {
            req: Proxied::new((route, target), head, &origin, gateway.sticky(route, head)),
            accept: crate::ws::handshake::accept_key(key),
            offered: gateway::offered_protocols(head),
        };
        gateway.dial(Box::new(upgrade));
        Handled {
            file: None,
            close: false,
            upgrade: None,
            proxied: true,
            exchange: None,
            sink: None,
            events: None,
            later: false,
        }
    }

    /// True when `head` goes to a proxy route as a plain request: its body
    /// is streamed to the downstream, not gathered (so `limits.body` does
    /// not apply). The same routing as [`App::handle`]'s, without the
    /// checks that refuse a request (those still answer it).
    pub fn proxies(&self, head: &Head<'_>) -> bool {
        if self.gateway.is_none() || gateway::wants_websocket(head) {
            return false;
        }
        let Ok((relative, trailing)) = normalize(head.path) else {
            return false;
        };
        matches!(
            self.routes.decide(&routing_path(&relative, trailing)),
            Decision::Route(route) if route.config.handler == HandlerKind::Proxy
        )
    }

    /// Writes a handler's response.
    pub fn write_response(
        &self,
        r: &Response,
        head_only: bool,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        let status = if (100..=999).contains(&r.status()) && r.status() != 101 {
            r.status()
        } else {
            500
        };
        let mut w = HeadWriter::start(out, status, &self.date.text, &self.config.headers);
        w.handler_headers(r.headers());
        if bodiless(status) {
            w.finish(None, close);
        } else {
            w.finish(Some(r.body().len() as u64), close);
            if !head_only {
                out.extend_from_slice(r.body());
            }
        }
        Handled::response(close)
    }

    /// Writes the head of a streamed later answer: its status and headers,
    /// and `Transfer-Encoding: chunked` (`chunked`) or no length at all (an
    /// HTTP/1.0 client, whose connection's end ends the body).
    pub fn write_stream_head(
        &mut self,
        r: &Response,
        chunked: bool,
        out: &mut Vec<u8>,
        close: bool,
    ) {
        self.date.refresh();
        let status = match r.status() {
            s @ 200..=999 if !bodiless(s) => s,
            _ => 500,
        };
        let mut w = HeadWriter::start(out, status, &self.date.text, &self.config.headers);
        w.handler_headers(r.headers());
        if chunked {
            w.header("Transfer-Encoding", "chunked");
        }
        w.finish(None, close);
    }
}

/// `routed` without the route's `trim` prefix (which it begins with, up to
/// a segment's end): always a path starting with '/'.
fn trim_path(trim: &str, routed: &str) -> String {
    match routed.strip_prefix(trim) {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => "/".to_string(),
    }
}

/// A file route's relative path (no leading '/', no trailing one) from a
/// trimmed routing path.
fn file_relative(trimmed: &str, trailing: bool) -> &str {
    let relative = trimmed.strip_prefix('/').unwrap_or(trimmed);
    match relative.strip_suffix('/') {
        Some(r) if trailing => r,
        _ => relative,
    }
}

/// A decoded path percent-encoded again, as a request's path is read:
/// everything but unreserved characters, sub-delimiters, ':', '@' and '/'.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `head` with another path (a trimmed one).
fn with_path<'h>(head: &Head<'h>, path: &'h str) -> Head<'h> {
    Head {
        method: head.method,
        path,
        query: head.query,
        minor: head.minor,
        headers: head.headers,
        framing: head.framing,
        keep_alive: head.keep_alive,
        expect_continue: head.expect_continue,
        len: head.len,
    }
}

/// `application/json`, or a `+json` type such as `application/problem+json`.
fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    essence == b"application/json" || essence.ends_with(b"+json")
}

/// The path routes are matched against: decoded and normalised, so `/%61pi/` and
/// `/x/../api/` reach the same route as `/api/`.
fn routing_path(relative: &str, trailing: bool) -> String {
    let mut p = String::with_capacity(relative.len() + 2);
    p.push('/');
    p.push_str(relative);
    if trailing && !relative.is_empty() {
        p.push('/');
    }
    p
}

/// Where a listener-wide redirect sends `head`: the target's scheme, its
/// host or else the request's `Host` (without its port), the target's port,
/// and the request's own path and query, as received. `None` when there is
/// no host to use (no `Host`, or one that is not a host name).
fn listener_location(r: &ListenerRedirect, head: &Head<'_>) -> Option<String> {
    let host = match &r.target.host {
        Some(host) => host.as_str(),
        None => request_host(head.header("Host")?)?,
    };
    let scheme = if r.target.https { "https" } else { "http" };
    let mut location =
        String::with_capacity(scheme.len() + host.len() + head.path.len() + head.query.len() + 10);
    location.push_str(scheme);
    location.push_str("://");
    location.push_str(host);
    if let Some(port) = r.target.port {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(head.path);
    if !head.query.is_empty() {
        location.push('?');
        location.push_str(head.query);
    }
    Some(location)
}

/// The host of a `Host` header without its port: a name, an IPv4 address or
/// a bracketed IPv6 address; `None` for anything else.
fn request_host(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        return value.get(..inside.len() + 2);
    }
    let host = value.split_once(':').map_or(value, |(h, _)| h);
    (!host.is_empty() && crate::config::redirect::host_is_safe(host)).then_some(host)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::message::ConnId;
    use crate::testing::{self, response, with_head, Reply, TempDir};

    /// The test app over a documents folder holding `hello.txt`.
    fn fixture() -> (App, TempDir) {
        let docs = TempDir::new("app");
        docs.write("hello.txt", b"hello, file\n");
        let (app, _) = testing::app(testing::config(&docs.path, ""));
        (app, docs)
    }

    /// Answers the request `head` (the head's text without its blank line)
    /// with `body`: how it went on, the response, and whether the bytes
    /// written were exactly that response.
    fn answer(app: &mut App, head: &str, body: &[u8], close: bool) -> (Handled, Reply, bool) {
        let text = format!("{head}\r\nHost: h\r\n\r\n");
        let origin = Origin {
            id: ConnId { key: 0, serial: 1 },
            peer: testing::peer(),
            now: Instant::now(),
            started: Instant::now(),
            tls: false,
            listener: 0,
        };
        let mut out = Vec::new();
        let handled = with_head(&text, |h| {
            app.handle(h, body, (origin, None), &mut out, close)
        });
        let (reply, used) = response(&out, head.starts_with("HEAD "));
        (handled, reply, used == out.len())
    }

    #[test]
    fn a_trimmed_path_keeps_its_slash_and_is_encoded_again_for_the_handler() {
        assert_eq!(trim_path("/app", "/app/x/y"), "/x/y");
        assert_eq!(trim_path("/app", "/app/"), "/");
        assert_eq!(trim_path("/app", "/app"), "/");
        assert_eq!(file_relative("/x/y/", true), "x/y");
        assert_eq!(file_relative("/", true), "");
        assert_eq!(file_relative("/x.html", false), "x.html");
        assert_eq!(encode_path("/a b/%/ü?#"), "/a%20b/%25/%C3%BC%3F%23");
        assert_eq!(encode_path("/v1/x:y@z,(1)"), "/v1/x:y@z,(1)");
        assert!(is_json(b"application/json"));
        assert!(is_json(b"Application/JSON; charset=utf-8"));
        assert!(is_json(b"application/problem+json"));
        assert!(!is_json(b"text/plain"));
        assert!(!is_json(b"application/jsonx"));
    }

    #[test]
    fn the_host_of_a_redirect_comes_from_the_host_header_without_its_port() {
        assert_eq!(request_host(b"device.local:8080"), Some("device.local"));
        assert_eq!(request_host(b"192.0.2.7"), Some("192.0.2.7"));
        assert_eq!(request_host(b"[::1]:8080"), Some("[::1]"));
        assert_eq!(request_host(b" [fe80::1] "), Some("[fe80::1]"));
        for bad in [
            &b""[..],
            b":8080",
            b"a/b",
            b"a b",
            b"[zz]",
            b"[::1",
            b"\xff",
            b"evil@x",
        ] {
            assert_eq!(request_host(bad), None, "{bad:?}");
        }
    }

    /// OPTIONS `*`, a redirect route, a missing file and a method the
    /// route does not allow: each its status, its header, and a connection
    /// that goes on.
    #[test]
    fn routing_answers_options_redirects_404_and_405() {
        let (mut app, _docs) = fixture();
        let all = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";
        let cases = [
            ("OPTIONS * HTTP/1.1", 200, Some(("Allow", all))),
            ("GET /old HTTP/1.1", 301, Some(("Location", "/new"))),
            ("GET /missing.txt HTTP/1.1", 404, None),
            ("POST /ro/x HTTP/1.1", 405, Some(("Allow", "GET"))),
            ("GET /ro/x HTTP/1.1", 200, None),
        ];
        for (request, status, header) in cases {
            let (handled, reply, whole) = answer(&mut app, request, b"", false);
            assert_eq!(reply.status, status, "{request}");
            if let Some((name, value)) = header {
                assert_eq!(reply.header(name), Some(value), "{request}");
            }
            assert!(whole, "{request}: more than one response");
            assert!(!handled.close && !reply.closes(), "{request}");
            assert!(handled.upgrade.is_none() && handled.file.is_none());
        }
    }

    #[test]
    fn an_action_answers_with_its_response() {
        let (mut app, _docs) = fixture();
        let (handled, reply, whole) = answer(&mut app, "POST /api/x?a=1 HTTP/1.1", b"abc", false);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body_text(), "POST /api/x abc");
        assert_eq!(
            reply.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(whole && !reply.closes() && !handled.close);
        // The connection's last request says so.
        let (handled, reply, _) = answer(&mut app, "GET /api/x HTTP/1.1", b"", true);
        assert!(reply.closes() && handled.close);
        assert_eq!(app.hub.stats.requests, 2);
    }

    #[test]
    fn a_head_request_gets_the_length_but_no_body() {
        let (mut app, _docs) = fixture();
        for path in ["/api/x", "/hello.txt", "/missing.txt"] {
            let (_, get, _) = answer(&mut app, &format!("GET {path} HTTP/1.1"), b"", false);
            let (_, head, whole) = answer(&mut app, &format!("HEAD {path} HTTP/1.1"), b"", false);
            assert!(whole, "{path}: HEAD wrote a body");
            assert!(get.status == 200 || path == "/missing.txt", "{path}");
            assert_eq!(head.status, get.status, "{path}");
            // The action echoes the method: "HEAD" is one byte longer than "GET".
            let length = (get.body.len() + usize::from(path == "/api/x")).to_string();
            assert_eq!(
                head.header("Content-Length"),
                Some(length.as_str()),
                "{path}"
            );
        }
    }

    #[test]
    fn a_panicking_action_is_500_and_closes_and_the_app_goes_on() {
        let (mut app, _docs) = fixture();
        let (handled, reply, whole) = answer(&mut app, "GET /api/panic HTTP/1.1", b"", false);
        assert_eq!(reply.status, 500);
        assert!(reply.closes() && handled.close && whole);
        let (_, reply, _) = answer(&mut app, "GET /api/fine HTTP/1.1", b"", false);
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn an_upgrade_opens_a_session_and_a_plain_get_to_a_websocket_is_426() {
        let (mut app, _docs) = fixture();
        let text = String::from_utf8(testing::upgrade_request("/ws/chat")).unwrap();
        let head = text.trim_end_matches("\r\n\r\n").replace("\r\nHost: h", "");
        let (handled, reply, whole) = answer(&mut app, &head, b"", false);
        assert_eq!(reply.status, 101);
        assert!(handled.upgrade.is_some() && !handled.close && whole);
        let (handled, reply, _) = answer(&mut app, "GET /ws/chat HTTP/1.1", b"", false);
        assert_eq!(reply.status, 426);
        assert!(handled.upgrade.is_none() && handled.close);
    }
}
