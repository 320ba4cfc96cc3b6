//! `web.auth` over real sockets: HTTP Basic (refused over plain HTTP unless
//! `requireTlsForBasic: false`, accepted over TLS), roles that inherit, the
//! login form with its cookies, sessions that expire, XSRF tokens, the
//! limit on login attempts, `next` kept to local paths, and the start-up
//! errors of a bad `auth` block.
//!
//! Tests wait for the server's bytes; the one sleep is a session's expiry
//! itself.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use support::{Client, Resp, TempDir, TestServer};
use wisp::{Config, Response, Server};

/// The password of every test user.
const PASSWORD: &str = "correct horse";

/// `web.auth` and the routes, with `extra` more keys of `auth` and
/// `timeouts` the whole `timeouts` value.
fn web(extra: &str, timeouts: &str) -> String {
    let hash = wisp::hash_password(PASSWORD);
    format!(
        "auth: {{
            roles: {{ user: ['view'], admin: ['user', 'edit'] }},
            users: {{
                alice: {{ password: '{hash}', role: 'admin' }},
                bob: {{ password: '{hash}', role: 'user' }},
            }},
            {extra}
        }},
        timeouts: {timeouts},
        routes: [
            {{ match: '/admin/', role: 'admin' }},
            {{ match: '/view/', role: 'view' }},
            {{ match: '/api/', handler: 'action', role: 'user', xsrf: true }},
            {{ match: '/stats', handler: 'action' }},
            {{ match: '' }},
        ]"
    )
}

fn fill(docs: &TempDir) {
    docs.write("admin/a.txt", "for admins\n");
    docs.write("view/v.txt", "for viewers\n");
    docs.write("login.html", "<form>\n");
}

/// `/api/` answers with who the server says sent it; `/stats` with the counters.
fn setup(server: &mut Server) {
    server.action("/api/", |req| {
        let who = req.claims().cloned().unwrap_or_default();
        Response::json(&who)
    });
    server.action("/stats", |req| Response::json(req.stats()));
}

fn start(extra: &str) -> TestServer {
    TestServer::start(&web(extra, "{}"), fill, setup)
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// One request with `headers` (each ending in CRLF) and `body` over `client`.
fn request<S: Read + Write>(
    client: &mut Client<S>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Resp {
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    client.send(
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}{length}\r\n{body}").as_bytes(),
    );
    client.response()
}

fn get(server: &TestServer, path: &str, headers: &str) -> Resp {
    request(&mut server.client(), "GET", path, headers, "")
}

/// Posts the login form; the response.
fn login<S: Read + Write>(client: &mut Client<S>, user: &str, password: &str, next: &str) -> Resp {
    let body = format!(
        "username={user}&password={}&next={next}",
        password.replace(' ', "+")
    );
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    request(client, "POST", "/auth/login", form, &body)
}

/// Every `Set-Cookie` of a response.
fn set_cookies(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `Cookie` header that sends back what a login set, and the XSRF token.
fn cookies_of(r: &Resp) -> (String, String) {
    let pairs: Vec<&str> = set_cookies(r)
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect();
    let token = pairs
        .iter()
        .find_map(|p| p.strip_prefix("XSRF-TOKEN="))
        .expect("an XSRF-TOKEN cookie")
        .to_string();
    (format!("Cookie: {}\r\n", pairs.join("; ")), token)
}

fn auth_failures(server: &TestServer) -> u64 {
    let r = get(server, "/stats", "");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["limits"]["auth"].as_u64().unwrap()
}

#[test]
fn basic_is_refused_over_plain_http_unless_allowed() {
    let s = start("");
    let r = get(&s, "/admin/a.txt", &basic("alice", PASSWORD));
    assert_eq!(r.status, 403);
    let s = start("requireTlsForBasic: false,");
    let r = get(&s, "/admin/a.txt", &basic("alice", PASSWORD));
    assert_eq!((r.status, r.text().as_str()), (200, "for admins\n"));
    let r = get(&s, "/admin/a.txt", &basic("alice", "wrong"));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"wisp\", charset=\"UTF-8\"")
    );
    let r = get(&s, "/admin/a.txt", &basic("mallory", PASSWORD));
    assert_eq!(r.status, 401);
    assert_eq!(auth_failures(&s), 2);
}

#[test]
fn without_credentials_a_program_is_challenged_and_a_browser_sent_to_the_login_page() {
    let s = start("");
    let r = get(&s, "/admin/a.txt", "");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    let r = get(&s, "/admin/a.txt?x=1", "Accept: text/html,*/*\r\n");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("/login.html?next=/admin/a.txt%3Fx%3D1")
    );
    // The page itself is not protected, nor the rest of the site.
    assert_eq!(get(&s, "/login.html", "").status, 200);
}

#[test]
fn roles_inherit_and_a_user_without_the_role_is_forbidden() {
    let s = start("requireTlsForBasic: false,");
    // admin → user → view.
    let r = get(&s, "/view/v.txt", &basic("alice", PASSWORD));
    assert_eq!(r.status, 200);
    let r = get(&s, "/view/v.txt", &basic("bob", PASSWORD));
    assert_eq!(r.status, 200);
    let r = get(&s, "/admin/a.txt", &basic("bob", PASSWORD));
    assert_eq!(r.status, 403);
    // Logged in by the form, the same.
    let mut c = s.client();
    let (cookie, _) = cookies_of(&login(&mut c, "bob", PASSWORD, "/"));
    assert_eq!(
        request(&mut c, "GET", "/view/v.txt", &cookie, "").status,
        200
    );
    assert_eq!(
        request(&mut c, "GET", "/admin/a.txt", &cookie, "").status,
        403
    );
}

#[test]
fn the_login_form_sets_a_session_cookie_that_logout_clears() {
    let s = start("");
    let mut c = s.client();
    let r = login(&mut c, "alice", PASSWORD, "%2Fadmin%2Fa.txt");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin/a.txt"));
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 2);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("wisp-session="))
        .unwrap();
    assert!(
        session.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{session}"
    );
    assert_eq!(
        session.split(';').next().unwrap().len(),
        "wisp-session=".len() + 32
    );
    let xsrf = cookies
        .iter()
        .find(|c| c.starts_with("XSRF-TOKEN="))
        .unwrap();
    assert!(
        !xsrf.contains("HttpOnly"),
        "the page's scripts read it: {xsrf}"
    );
    let (cookie, _) = cookies_of(&r);
    let r = request(&mut c, "GET", "/admin/a.txt", &cookie, "");
    assert_eq!((r.status, r.text().as_str()), (200, "for admins\n"));
    let r = request(&mut c, "GET", "/auth/login", &cookie, "");
    let who: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(who, serde_json::json!({ "user": "alice", "role": "admin" }));
    let r = request(&mut c, "POST", "/auth/logout", &cookie, "");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login.html"));
    assert!(set_cookies(&r).iter().all(|c| c.contains("Max-Age=0")));
    // The old cookie is worth nothing now.
    assert_eq!(
        request(&mut c, "GET", "/admin/a.txt", &cookie, "").status,
        401
    );
    assert_eq!(
        request(&mut c, "GET", "/auth/login", &cookie, "").status,
        401
    );
}

#[test]
fn a_wrong_password_on_the_form_is_401_and_sets_nothing() {
    let s = start("");
    let mut c = s.client();
    let r = login(&mut c, "alice", "nope", "/");
    assert_eq!(r.status, 401);
    assert!(set_cookies(&r).is_empty());
    let r = login(&mut c, "nobody", PASSWORD, "/");
    assert_eq!(r.status, 401);
    assert_eq!(auth_failures(&s), 2);
}

#[test]
fn next_is_kept_to_local_paths() {
    let s = start("attempts: '100/min',");
    for next in [
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example%2F",
        "%2F%5Cevil.example",
        "evil",
    ] {
        let r = login(&mut s.client(), "alice", PASSWORD, next);
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some("/"), "{next}");
    }
}

#[test]
fn login_attempts_are_limited_per_address() {
    let s = start("attempts: '3/min',");
    for _ in 0..3 {
        assert_eq!(login(&mut s.client(), "alice", "nope", "/").status, 401);
    }
    let r = login(&mut s.client(), "alice", PASSWORD, "/");
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(auth_failures(&s), 4);
}

#[test]
fn state_changing_requests_to_an_xsrf_route_need_the_token() {
    let s = start("");
    let mut c = s.client();
    let (cookie, token) = cookies_of(&login(&mut c, "alice", PASSWORD, "/"));
    // Reading needs no token.
    let r = request(&mut c, "GET", "/api/x", &cookie, "");
    assert_eq!(r.status, 200);
    let who: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(who, serde_json::json!({ "sub": "alice", "role": "admin" }));
    let r = request(&mut c, "POST", "/api/x", &cookie, "a=1");
    assert_eq!(r.status, 403);
    let wrong = format!("{cookie}X-XSRF-TOKEN: {}\r\n", "0".repeat(32));
    assert_eq!(request(&mut c, "DELETE", "/api/x", &wrong, "").status, 403);
    let right = format!("{cookie}X-XSRF-TOKEN: {token}\r\n");
    assert_eq!(request(&mut c, "POST", "/api/x", &right, "a=1").status, 200);
    assert_eq!(request(&mut c, "PUT", "/api/x", &right, "a=1").status, 200);
}

#[test]
fn a_session_unused_for_timeouts_session_ends() {
    let session = Duration::from_secs(1);
    let s = TestServer::start(&web("", "{ session: '1 sec' }"), fill, setup);
    let mut c = s.client();
    let (cookie, _) = cookies_of(&login(&mut c, "alice", PASSWORD, "/"));
    // Used within the time, the session goes on (and starts over).
    assert_eq!(
        request(&mut c, "GET", "/admin/a.txt", &cookie, "").status,
        200
    );
    // The server stamped that use before its answer arrived here: waiting
    // the whole time from now is past it on the server's clock too.
    std::thread::sleep(session);
    assert_eq!(
        request(&mut c, "GET", "/admin/a.txt", &cookie, "").status,
        401
    );
}

#[cfg(feature = "tls")]
mod over_tls {
    use super::*;
    use support::tls::TlsServer;

    fn start() -> TlsServer {
        TlsServer::start("", &web("", "{}"), fill, setup)
    }

    #[test]
    fn basic_over_tls_is_accepted_and_cookies_are_secure() {
        let s = start();
        let mut c = s.https();
        let r = request(&mut c, "GET", "/admin/a.txt", &basic("alice", PASSWORD), "");
        assert_eq!((r.status, r.text().as_str()), (200, "for admins\n"));
        let r = request(&mut c, "GET", "/admin/a.txt", &basic("alice", "wrong"), "");
        assert_eq!(r.status, 401);
        let r = request(&mut c, "GET", "/admin/a.txt", &basic("bob", PASSWORD), "");
        assert_eq!(r.status, 403);
        let r = login(&mut c, "alice", PASSWORD, "/");
        assert_eq!(r.status, 303);
        for cookie in set_cookies(&r) {
            assert!(cookie.ends_with("; SameSite=Lax; Secure"), "{cookie}");
        }
        // The same server refuses Basic on its plain listener.
        let r = get(&s, "/admin/a.txt", &basic("alice", PASSWORD));
        assert_eq!(r.status, 403);
    }
}

#[test]
fn a_bad_auth_block_is_a_start_error_naming_its_key() {
    let hash = wisp::hash_password(PASSWORD);
    let parse = |auth: &str, routes: &str| {
        let text = format!("{{ web: {{ auth: {{ {auth} }}, routes: [{routes}] }} }}");
        Config::parse(&text, Path::new("/"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        parse("roles: { a: ['b'], b: ['a'] }", ""),
        "web.auth.roles.a: roles inherit in a cycle: a → b → a"
    );
    assert_eq!(
        parse(
            &format!("roles: {{ a: [] }}, users: {{ u: {{ password: '{hash}', role: 'boss' }} }}"),
            ""
        ),
        "web.auth.users.u.role: \"boss\" is not a role of web.auth.roles"
    );
    assert!(parse(
        "roles: { a: [] }, users: { u: { password: 'hunter2', role: 'a' } }",
        ""
    )
    .starts_with("web.auth.users.u.password: is not a password hash"));
    assert_eq!(
        parse("roles: { a: ['view'] }", "{ match: '/x', role: 'edit' }"),
        "web.routes[0].role: \"edit\" is not a role or ability of web.auth.roles"
    );
    let text = "{ web: { routes: [{ match: '/x', role: 'a' }] } }";
    assert_eq!(
        Config::parse(text, Path::new("/")).unwrap_err().to_string(),
        "web.routes[0].role: needs web.auth (its users and roles)"
    );
    let text = "{ web: { routes: [{ match: '/x', xsrf: true }] } }";
    assert_eq!(
        Config::parse(text, Path::new("/")).unwrap_err().to_string(),
        "web.routes[0].xsrf: needs web.auth (the tokens belong to login sessions)"
    );
    // A hash that looks like one but is not: refused when the server starts.
    let docs = TempDir::new("login");
    let text = format!(
        "{{ web: {{ listen: 'http://127.0.0.1:0', documents: '{}', auth: {{ roles: {{ a: [] }}, \
         users: {{ u: {{ password: '$argon2id$v=19$m=1$x$y', role: 'a' }} }} }} }} }}",
        docs.path.display()
    );
    let config = Config::parse(&text, Path::new("/")).unwrap();
    let Err(e) = Server::bind(config) else {
        panic!("a start error");
    };
    let e = e.to_string();
    assert!(e.contains("web.auth.users.u.password"), "{e}");
}
