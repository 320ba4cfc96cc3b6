//! Coming from EmbedThis Ioto, over real sockets: an Ioto `web.json5`
//! starts, its route keys (`trim`, `stream`, `validate`, `xsrf`, `role`)
//! and `webSockets.enable` act, a key wisp cannot honour stops the start
//! saying it is Ioto's, and a handler's `set_limits` (`webSocketSetLimits`)
//! and `timeout` (`webSocketRun`'s) hold for its own connections.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::ws::{Ws, BINARY};
use support::{TempDir, TestServer};
use wisp::{BodyStream, Config, Handler, Message, Response, Server, WebSocket};

/// Echoes, after lowering its connections' limits when `limits` is set.
struct Echo {
    limits: Option<(u64, u64)>,
    timeout: Option<Duration>,
}

impl Handler for Echo {
    type State = ();
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        if let Some((frame, message)) = self.limits {
            ws.set_limits(frame, message);
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

fn echo() -> Echo {
    Echo {
        limits: None,
        timeout: None,
    }
}

/// Counts a streamed body's bytes.
struct Count(u64);

impl BodyStream for Count {
    fn on_body(&mut self, chunk: &[u8]) -> Result<(), Response> {
        self.0 += chunk.len() as u64;
        Ok(())
    }
    fn on_end(&mut self) -> Response {
        Response::text(self.0.to_string())
    }
}

fn post(s: &TestServer, path: &str, content_type: &str, body: &[u8]) -> support::Resp {
    let mut c = s.client();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(&[head.as_bytes(), body].concat());
    c.response()
}

#[test]
fn websockets_enable_false_refuses_every_upgrade_with_403_saying_why() {
    let s = TestServer::start(
        "webSockets: { enable: false }, routes: [ { match: '/ws/', handler: 'action' }, { match: '' } ]",
        |d| {
            d.write("a.txt", "A");
        },
        |srv| {
            srv.websocket("/ws/echo", echo());
        },
    );
    let resp = s.raw(support::ws::upgrade_request("/ws/echo", "").as_bytes());
    assert_eq!(resp.status, 403);
    assert!(
        resp.text().contains("webSockets.enable: false"),
        "{}",
        resp.text()
    );
    // Plain requests are served as before.
    assert_eq!(s.get("/a.txt").text(), "A");
    // On, the same handler upgrades.
    let on = TestServer::start(
        "routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket("/ws/echo", echo());
        },
    );
    let mut ws = Ws::open(on.addr, "/ws/echo");
    ws.send_text("hi");
    ws.expect_text("hi");
}

#[test]
fn websockets_enable_false_refuses_a_proxied_upgrade_before_any_dial() {
    // Port 9 (discard) on loopback: nothing is dialled, so nothing need listen.
    let s = TestServer::start(
        "webSockets: { enable: false },
         routes: [ { match: '/gw/', handler: 'proxy', proxy: { hosts: ['127.0.0.1:9'] } } ]",
        |_| {},
        |_| {},
    );
    let resp = s.raw(support::ws::upgrade_request("/gw/echo", "").as_bytes());
    assert_eq!(resp.status, 403);
    assert!(
        resp.text().contains("webSockets.enable: false"),
        "{}",
        resp.text()
    );
}

#[test]
fn trim_takes_the_prefix_off_before_files_and_actions_see_the_path() {
    let s = TestServer::start(
        "routes: [ { match: '/app/', handler: 'action', trim: '/app' },
                   { match: '/static/', trim: '/static/' } ]",
        |d| {
            d.write("a.txt", "A");
        },
        |srv| {
            srv.action("/status", |req| Response::text(req.path().to_string()));
            srv.action("/status/", |req| Response::text(req.path().to_string()));
        },
    );
    assert_eq!(s.get("/app/status").text(), "/status");
    // The path is matched decoded and handed on encoded, as a request's is.
    assert_eq!(s.get("/%61pp/status%2Fx%20y").text(), "/status/x%20y");
    assert_eq!(s.get("/static/a.txt").text(), "A");
    // Untrimmed, nothing answers: the action is registered without the prefix.
    assert_eq!(s.get("/status").status, 404);
    assert_eq!(s.get("/app/a.txt").status, 404);
}

#[test]
fn trim_reaches_websockets_and_streaming_actions_too() {
    let s = TestServer::start(
        "limits: { body: '1K', upload: '1MB' },
         routes: [ { match: '/v1/', handler: 'action', trim: '/v1' } ]",
        |_| {},
        |srv| {
            srv.websocket("/ws", echo());
            srv.action_streaming("/upload", |_| Ok(Count(0)));
        },
    );
    let mut ws = Ws::open(s.addr, "/v1/ws");
    ws.send_text("through");
    ws.expect_text("through");
    // Streamed (over limits.body) because the trimmed path is a streaming action's.
    let r = post(&s, "/v1/upload", "application/octet-stream", &[7; 8000]);
    assert_eq!((r.status, r.text()), (200, "8000".to_string()));
}

#[test]
fn a_stream_route_gives_bodies_to_a_streaming_action_and_refuses_a_whole_body_one() {
    let s = TestServer::start(
        "limits: { body: '1K', upload: '1MB' },
         routes: [ { match: '/up/', handler: 'action', stream: true } ]",
        |_| {},
        |srv| {
            srv.action_streaming("/up/count", |_| Ok(Count(0)));
            srv.action("/up/whole", |req| {
                Response::text(req.body().len().to_string())
            });
        },
    );
    let r = post(&s, "/up/count", "application/octet-stream", &[1; 40_000]);
    assert_eq!((r.status, r.text()), (200, "40000".to_string()));
    let r = post(&s, "/up/whole", "text/plain", b"small");
    assert_eq!(r.status, 500, "the config's mistake, not the client's");
}

#[test]
fn validate_answers_400_to_a_json_body_that_does_not_parse() {
    let s = TestServer::start(
        "routes: [ { match: '/api/', handler: 'action', validate: true },
                   { match: '/loose/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.action("/api/", |req| Response::text(req.body().len().to_string()));
            srv.action("/loose/", |req| {
                Response::text(req.body().len().to_string())
            });
        },
    );
    let bad = br#"{"name": "Steve", "Age": }"#;
    assert_eq!(post(&s, "/api/x", "application/json", bad).status, 400);
    assert_eq!(
        post(&s, "/api/x", "application/problem+json; charset=utf-8", bad).status,
        400
    );
    let good = br#"{"name": "Steve", "Age": 42}"#;
    let r = post(&s, "/api/x", "application/json", good);
    assert_eq!((r.status, r.text()), (200, good.len().to_string()));
    // Not JSON by its type: not checked; nor on a route without validate.
    assert_eq!(post(&s, "/api/x", "text/plain", bad).status, 200);
    assert_eq!(post(&s, "/loose/x", "application/json", bad).status, 200);
}

#[test]
fn iotos_can_and_role_need_a_login_and_web_xsrf_needs_web_auth() {
    let s = TestServer::start(
        "auth: { roles: { user: ['view'], admin: ['user', 'edit'] } },
         routes: [ { match: '/edit/', handler: 'action', can: 'edit' },
                   { match: '/open/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.action("/", |_| Response::text("in"));
        },
    );
    assert_eq!(s.get("/open/x").text(), "in");
    let r = s.get("/edit/x");
    assert_eq!(r.status, 401, "no session, no credentials");
    let err = Config::parse(
        "{ web: { xsrf: true, routes: [ { match: '/a/' } ] } }",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "web.routes[0].xsrf: needs web.auth (the tokens belong to login sessions)"
    );
    let err = Config::parse(
        "{ web: { routes: [ { match: '/a/', can: 'edit' } ] } }",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "web.routes[0].role: needs web.auth (its users and roles)"
    );
}

/// The shipped web.json5's demo password hash (`wisp-demo`).
const HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$h9VBz6rhH9PnD/90M3XqnA$ewQViyg+qH2fv5vsaIaggQD8Yr1AT1KOzDlpg+jOuf8";

#[test]
fn a_route_with_a_role_and_a_redirect_sends_only_the_refused_there() {
    let s = TestServer::start(
        &format!(
            "auth: {{ roles: {{ user: ['view'], admin: ['user', 'edit'] }},
                     users: {{ boss: {{ password: '{HASH}', role: 'admin' }},
                              guest: {{ password: '{HASH}', role: 'user' }} }},
                     requireTlsForBasic: false }},
             routes: [ {{ match: '/admin/', handler: 'action', can: 'edit', redirect: '/login.html' }},
                       {{ match: '/moved/', redirect: '/new/' }} ]"
        ),
        |_| {},
        |srv| {
            srv.action("/admin/", |_| Response::text("panel"));
        },
    );
    let get = |auth: &str| {
        let mut c = s.client();
        c.send(format!("GET /admin/x HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes());
        c.response()
    };
    let r = get("");
    assert_eq!((r.status, r.header("location")), (302, Some("/login.html")));
    // boss:wisp-demo has `edit`; guest:wisp-demo has not.
    let r = get("Authorization: Basic Ym9zczp3aXNwLWRlbW8=\r\n");
    assert_eq!((r.status, r.text()), (200, "panel".to_string()));
    let r = get("Authorization: Basic Z3Vlc3Q6d2lzcC1kZW1v\r\n");
    assert_eq!((r.status, r.header("location")), (302, Some("/login.html")));
    // Without a role, a redirect is every request's answer, as before.
    let r = s.get("/moved/x");
    assert_eq!((r.status, r.header("location")), (302, Some("/new/")));
}

#[test]
fn an_ioto_key_wisp_cannot_honour_stops_the_start_saying_it_is_iotos() {
    let err = Config::parse(
        "{ web: { signatures: { enable: true, path: 'signatures.json5' } } }",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("web.signatures: Ioto's key, not supported by wisp: "),
        "{err}"
    );
    assert!(!err.contains("unknown key"), "{err}");
}

#[test]
fn a_real_ioto_web_json5_starts_and_serves() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ioto-web.json5");
    let mut config = Config::load(&sample).unwrap_or_else(|e| panic!("{e}"));
    let ignored: Vec<&str> = config.ioto_ignored.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "web.show",
        "web.sessions",
        "web.fiberBlocks",
        "web.auth.realm",
        "web.routes[7].cache.directives",
        "web.limits.webSocketsPacket",
        "web.timeouts.tls",
    ] {
        assert!(ignored.contains(&key), "{key} not noted: {ignored:?}");
    }
    assert_eq!(config.limits.max_frame, 128 * 1024, "webSocketsFrame");
    assert_eq!(config.limits.max_message, 1024 * 1024, "webSocketsMessage");
    assert!(!config.web_sockets.validate_utf8);
    assert_eq!(config.routes[0].trim.as_deref(), Some("/api/public"));
    assert!(config.routes[1].stream && config.routes[0].validate && config.routes[2].xsrf);
    assert_eq!(config.routes[3].role.as_deref(), Some("edit"));
    // Its port and folder are the device's: a free port and a temp folder here.
    let docs = TempDir::new("ioto");
    docs.write("index.html", "home");
    docs.write("notes.md", "# notes");
    config.listen_on("127.0.0.1:0").unwrap();
    config.documents = docs.path.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut server = Server::bind(config).unwrap_or_else(|e| panic!("{e}"));
        server.websocket("/ws/chat", echo());
        server.action("/ping", |req| Response::text(req.path().to_string()));
        tx.send((server.local_addrs()[0], server.handle())).unwrap();
        server.run()
    });
    let (addr, handle) = rx.recv().expect("the server started");
    let mut c = support::Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "home");
    c.send(b"GET /notes.md HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!(
        r.header("content-type"),
        Some("text/markdown"),
        "Ioto's '.md'"
    );
    c.send(b"GET /api/public/ping HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "/ping", "trimmed");
    c.send(b"GET /admin/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("location")), (302, Some("/login.html")));
    let (resp, mut ws) = Ws::open_with(addr, "/ws/chat", "Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(resp.header("sec-websocket-protocol"), Some("chat"));
    ws.send_text("hello");
    ws.expect_text("hello");
    drop(ws);
    handle.stop();
    thread.join().unwrap().unwrap();
}

#[test]
fn set_limits_holds_one_connection_to_its_own_frame_limit_with_1009() {
    let s = TestServer::start(
        "limits: { maxFrame: '64K' }, routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket(
                "/ws/tight",
                Echo {
                    limits: Some((100, 1000)),
                    timeout: None,
                },
            );
            srv.websocket("/ws/loose", echo());
        },
    );
    let mut tight = Ws::open(s.addr, "/ws/tight");
    tight.send_binary(&[1; 100]);
    tight.expect_message(BINARY, &[1; 100]);
    tight.send_binary(&[2; 101]);
    tight.expect_close(1009);
    // Another handler's connection keeps the server's limit.
    let mut loose = Ws::open(s.addr, "/ws/loose");
    loose.send_binary(&[3; 5000]);
    loose.expect_message(BINARY, &[3; 5000]);
}

#[test]
fn set_limits_never_widens_the_servers_limit() {
    let s = TestServer::start(
        "limits: { maxFrame: '1K' }, routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket(
                "/ws/wide",
                Echo {
                    limits: Some((1 << 30, 1 << 30)),
                    timeout: None,
                },
            );
        },
    );
    let mut ws = Ws::open(s.addr, "/ws/wide");
    ws.send_binary(&[1; 1024]);
    ws.expect_message(BINARY, &[1; 1024]);
    ws.send_binary(&[1; 1025]);
    ws.expect_close(1009);
}

#[test]
fn set_limits_bounds_what_a_compressed_message_inflates_to() {
    let s = TestServer::start(
        "webSockets: { compression: true }, routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket(
                "/ws/tight",
                Echo {
                    limits: Some((1 << 20, 1000)),
                    timeout: None,
                },
            );
        },
    );
    let (resp, mut ws) = Ws::open_with(
        s.addr,
        "/ws/tight",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    assert!(resp
        .header("sec-websocket-extensions")
        .is_some_and(|e| e.contains("permessage-deflate")));
    // 4000 zeros deflate to a few bytes; inflated they are over the 1000 asked for.
    let compressed = deflate_raw(&[0; 4000]);
    assert!(compressed.len() < 100);
    ws.send_raw(&support::ws::masked_frame(
        0x80 | 0x40 | BINARY,
        &compressed,
    ));
    ws.expect_close(1009);
}

/// A raw deflate stream of `data`, as permessage-deflate sends it (the
/// final empty block's `00 00 ff ff` taken off).
fn deflate_raw(data: &[u8]) -> Vec<u8> {
    use flate2::{write::DeflateEncoder, Compression};
    use std::io::Write;
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.flush().unwrap();
    let mut out = e.finish().unwrap();
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}

#[test]
fn a_handlers_timeout_closes_its_idle_connections_with_1001() {
    let s = TestServer::start(
        "timeouts: { inactivity: '10 mins' }, routes: [ { match: '/ws/', handler: 'action' } ]",
        |_| {},
        |srv| {
            srv.websocket(
                "/ws/brief",
                Echo {
                    limits: None,
                    timeout: Some(Duration::from_millis(300)),
                },
            );
        },
    );
    let start = Instant::now();
    let mut ws = Ws::open(s.addr, "/ws/brief");
    // Activity starts it over: a message is still answered.
    ws.send_text("still here");
    ws.expect_text("still here");
    let (code, reason) = ws.read_close();
    assert_eq!((code, reason.as_str()), (1001, "idle"));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
}
