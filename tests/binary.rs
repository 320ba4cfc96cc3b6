//! The `wisp` binary: the shipped config and site, the command line, and start-up errors.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};

use support::binary::{start_command, wisp, Running};
use support::ws::{upgrade_request, Ws};
use support::{Client, TempDir};

/// Starts the binary (stderr piped, for the tests that read it).
fn start(args: &[&str]) -> Running {
    let mut command = wisp();
    command.stderr(Stdio::piped());
    start_command(command, args)
}

/// Runs the binary to completion; returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = wisp().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn get(addr: SocketAddr, path: &str) -> support::Resp {
    let mut c = Client::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c.response()
}

#[test]
fn shipped_config_serves_the_site_and_the_status_handler() {
    let w = start(&["--config", "web.json5", "--listen", "http://127.0.0.1:0"]);
    let r = get(w.addr, "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<title>wisp</title>"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    for asset in ["/style.css", "/app.js", "/favicon.svg"] {
        assert_eq!(get(w.addr, asset).status, 200, "{asset}");
    }
    let status = get(w.addr, "/api/status");
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(v["server"], "wisp");
    assert_eq!(get(w.addr, "/home").status, 301);
}

#[test]
fn shipped_binary_echoes_on_ws_echo_and_serves_the_echo_page() {
    let w = start(&["--config", "web.json5", "--listen", "http://127.0.0.1:0"]);
    assert_eq!(get(w.addr, "/echo.html").status, 200);
    assert_eq!(get(w.addr, "/echo.js").status, 200);
    let (r, mut ws) = Ws::handshake(w.addr, upgrade_request("/ws/echo", "").as_bytes());
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // A masked binary frame "hi"; the echo comes back unmasked with the same opcode.
    ws.send_binary(b"hi");
    let echo = ws.read_bytes(4);
    assert_eq!(echo, [0x82, 2, b'h', b'i']);
}

#[test]
fn access_log_has_one_line_per_request_on_stderr() {
    let dir = TempDir::new("bin-log");
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("site");
    let cfg = dir.write(
        "web.json5",
        format!(
            "{{ web: {{ documents: '{}', log: {{ level: 'info', access: true }} }} }}",
            site.display()
        ),
    );
    let mut w = start(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let rx = stderr_lines(&mut w);
    assert_eq!(get(w.addr, "/style.css?v=2").status, 200);
    assert_eq!(get(w.addr, "/missing").status, 404);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let line = rx
            .recv_timeout(support::IO_TIMEOUT)
            .expect("an access line on stderr");
        if line.starts_with("access: ") {
            lines.push(line);
        }
    }
    // The combined format (the time cut out), then how long it took.
    let css = std::fs::metadata(site.join("style.css")).unwrap().len();
    let shape = |line: &str| {
        let (before, rest) = line.split_once(" [").expect("a time");
        let (_, after) = rest.split_once("] ").expect("a time");
        let (fields, took) = after.rsplit_once(' ').expect("a duration");
        assert!(took.ends_with("ms"), "{line}");
        format!("{before} {fields}")
    };
    assert_eq!(
        shape(&lines[0]),
        format!("access: 127.0.0.1 - - \"GET /style.css?v=2 HTTP/1.1\" 200 {css} \"-\" \"-\"")
    );
    assert!(shape(&lines[1]).starts_with("access: 127.0.0.1 - - \"GET /missing HTTP/1.1\" 404 "));
}

#[test]
fn sigterm_closes_websockets_with_1001_and_exits_zero() {
    let mut w = start(&["--config", "web.json5", "--listen", "http://127.0.0.1:0"]);
    let mut ws = Ws::open(w.addr, "/ws/echo");
    ws.send_text("before");
    assert_eq!(ws.read_text(), "before");
    let mut idle = Client::connect(w.addr);
    idle.send(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response().status, 200);
    let pid = w.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        ws.read_close().0,
        1001,
        "WebSockets are told the server is going away"
    );
    ws.send_close(1001, "");
    assert!(idle.is_closed(), "idle keep-alive connections are closed");
    let status = exit_status(&mut w.child).expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

/// Waits (bounded by the I/O safety net) for a child to exit.
fn exit_status(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + support::IO_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().ok()? {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(10)); // polling, not synchronisation
    }
    None
}

#[test]
fn out_of_descriptors_pauses_accepting_and_keeps_serving_what_it_has() {
    // Started with 24 descriptors: a handful of connections use them up.
    let mut command = Command::new("prlimit");
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "--nofile=24:24",
        "--",
        env!("CARGO_BIN_EXE_wisp"),
    ]);
    command.stderr(Stdio::piped());
    let mut w = start_command(
        command,
        &[
            "--config",
            "web.json5",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
        ],
    );
    let rx = stderr_lines(&mut w);
    let mut held = Client::connect(w.addr);
    held.send(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(held.response().status, 200);
    // More connections than descriptors: the kernel queues them, accept fails with EMFILE.
    let flood: Vec<Client> = (0..40).map(|_| Client::connect(w.addr)).collect();
    let warned = rx
        .recv_timeout(support::IO_TIMEOUT)
        .expect("a warning on stderr");
    assert!(warned.contains("out of file descriptors"), "{warned}");
    // The connection it has is still served while it cannot accept more;
    // a file it cannot open for want of descriptors is a 503, not a 403
    // (every descriptor is taken: the flood is still queued, idle, and
    // accepting resumes only to fail again).
    held.send(b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(held.response().status, 200);
    held.send(b"GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = held.response();
    assert_eq!(r.status, 503, "{}", r.text());
    drop(flood);
    drop(held);
    // Once descriptors free up, new connections are served again.
    let deadline = std::time::Instant::now() + support::IO_TIMEOUT;
    loop {
        let mut c = Client::connect(w.addr);
        c.send(b"GET /favicon.svg HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        if c.read_to_close().starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never served again");
    }
}

#[test]
fn log_level_flag_is_checked() {
    let (ok, _, err) = run(&["--log", "loud"]);
    assert!(!ok && err.contains("--log loud: not a level"), "{err}");
}

#[test]
fn documents_override_and_one_line_banner() {
    let docs = TempDir::new("bin-docs");
    docs.write("index.html", "override");
    let w = start(&[
        "--listen",
        "127.0.0.1:0",
        "--documents",
        docs.path.to_str().unwrap(),
        "--config",
        "web.json5",
    ]);
    assert_eq!(get(w.addr, "/").text(), "override");
}

#[test]
fn help_and_version() {
    let (ok, out, _) = run(&["--version"]);
    assert!(ok);
    assert_eq!(out.trim(), concat!("wisp ", env!("CARGO_PKG_VERSION")));
    let (ok, out, _) = run(&["--help"]);
    assert!(ok && out.contains("--listen URL"));
    let (ok, _, err) = run(&["--frobnicate"]);
    assert!(!ok && err.contains("unknown argument"));
}

/// A start-up failure prints exactly one line on stderr, no panic, and exits non-zero.
fn fails_with(args: &[&str], want: &str) {
    let (ok, _, err) = run(args);
    assert!(!ok, "should fail: {args:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(want), "{err:?} should contain {want:?}");
    assert!(!err.contains("panicked"));
}

#[test]
fn bad_config_names_the_key() {
    let dir = TempDir::new("bin-cfg");
    let cfg = dir.write("web.json5", "{ web: { limits: { maxFrme: '1K' } } }");
    fails_with(
        &["--config", cfg.to_str().unwrap()],
        "web.limits.maxFrme: unknown key; did you mean maxFrame?",
    );
    let syntax = dir.write("broken.json5", "{ web: { listen: [ }");
    fails_with(&["--config", syntax.to_str().unwrap()], "broken.json5");
    fails_with(
        &["--config", "/nonexistent/web.json5"],
        "/nonexistent/web.json5",
    );
}

#[test]
fn port_in_use_is_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let listen = format!("http://{addr}");
    fails_with(
        &["--config", "web.json5", "--listen", &listen],
        &format!("cannot listen on {addr}"),
    );
}

#[test]
fn missing_documents_folder_is_one_clear_line() {
    fails_with(
        &[
            "--config",
            "web.json5",
            "--listen",
            "127.0.0.1:0",
            "--documents",
            "/nonexistent/site",
        ],
        "documents folder /nonexistent/site",
    );
}

#[test]
fn log_debug_says_why_each_request_was_refused() {
    let mut w = start(&[
        "--config",
        "web.json5",
        "--listen",
        "127.0.0.1:0",
        "--log",
        "debug",
    ]);
    let rx = stderr_lines(&mut w);
    assert_eq!(get(w.addr, "/../etc/passwd").status, 400);
    let mut c = Client::connect(w.addr);
    c.send(
        b"GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
    );
    assert_eq!(c.response().status, 400);
    let mut want = vec![
        "400 for GET /../etc/passwd: the path is malformed or climbs above the root",
        "400 for a WebSocket upgrade: ",
    ];
    while !want.is_empty() {
        let line = rx
            .recv_timeout(support::IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("no debug line saying {want:?}"));
        want.retain(|w| !(line.starts_with("debug: 127.0.0.1:") && line.contains(w)));
    }
}

#[test]
fn hash_password_reads_one_line_and_prints_a_hash_the_server_accepts() {
    use std::io::Write;
    let hash_of = |input: &str| {
        let mut child = wisp()
            .arg("--hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, hash, _) = hash_of("s3cret pass\r\n");
    assert!(ok);
    let hash = hash.trim_end();
    assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
    assert!(!hash.contains("s3cret"));
    // A fresh salt each time.
    assert_ne!(hash_of("s3cret pass\n").1.trim_end(), hash);
    let (ok, out, err) = hash_of("");
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("no password on stdin"), "{err}");

    // The hash logs its user in, by HTTP Basic here.
    let dir = TempDir::new("hash-password");
    dir.write("site/secret.txt", "hush\n");
    let config = dir.write(
        "web.json5",
        format!(
            "{{ web: {{ auth: {{ roles: {{ admin: [] }}, requireTlsForBasic: false, \
             users: {{ ann: {{ password: '{hash}', role: 'admin' }} }} }}, \
             routes: [{{ match: '/secret.txt', role: 'admin' }}, {{ match: '' }}] }} }}"
        ),
    );
    let config = config.display().to_string();
    let w = start(&["--config", &config, "--listen", "http://127.0.0.1:0"]);
    assert_eq!(get(w.addr, "/secret.txt").status, 401);
    let mut c = Client::connect(w.addr);
    // ann:s3cret pass
    c.send(
        b"GET /secret.txt HTTP/1.1\r\nHost: t\r\nAuthorization: Basic YW5uOnMzY3JldCBwYXNz\r\n\r\n",
    );
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hush\n"));
}

#[test]
fn shipped_config_protects_the_admin_page_with_the_demo_login() {
    let w = start(&["--config", "web.json5", "--listen", "http://127.0.0.1:0"]);
    let mut c = Client::connect(w.addr);
    c.send(b"GET /admin.html HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login.html?next=/admin.html"));
    assert_eq!(get(w.addr, "/login.html").status, 200);
    let form = "username=admin&password=wisp-demo&next=%2Fadmin.html";
    c.send(
        format!(
            "POST /auth/login HTTP/1.1\r\nHost: t\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    let r = c.response();
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin.html"));
    let session = r
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("wisp-session="))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .unwrap();
    c.send(format!("GET /admin.html HTTP/1.1\r\nHost: t\r\nCookie: {session}\r\n\r\n").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<title>wisp · admin</title>"));
    assert_eq!(get(w.addr, "/admin").status, 302);
}

/// The binary's stderr, line by line, as a reader thread receives it.
fn stderr_lines(w: &mut Running) -> std::sync::mpsc::Receiver<String> {
    let stderr = w.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
