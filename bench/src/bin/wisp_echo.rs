//! wisp serving the benchmark's paths: `/ws/echo`, `/ws/room`, `/ws/publish`,
//! and, with a second argument, a folder of static files at `/`.
//!
//! ```text
//! wisp_echo PORT [DOCUMENTS] [--tls CERTIFICATE KEY] [--compression VALUE]
//!           [--workers N] [--backplane REDIS_URL NODE]
//! ```
//!
//! With `--workers` (`web.workers`) or `--backplane` (`web.backplane`, on
//! a build with `--features backplane`; scripts/bench passes it), on
//! the channel `bench`) it runs as `wisp::Workers`: the room then spans the
//! workers, and the nodes of every `wisp_echo` on the same Redis.
//!
//! With `--compression`, VALUE is written into the configuration as
//! `webSockets.compression` (JSON5: `true`, or an object such as
//! `"{ level: 6 }"`), so permessage-deflate is configured as a deployment
//! configures it.
//!
//! With `--tls`, the one listener is `https://` (so `wss://`) with that
//! certificate chain and key (PEM), wisp's TLS settings otherwise default.
//!
//! The limits are raised for the benchmark: 20,000 connections and room
//! members (the idle and fan-out runs hold 10,000), 20 MB frames, no cap on
//! keep-alive requests (as nginx is configured). SIGINT or SIGTERM stops it
//! through a `ServerHandle`, so `valgrind --tool=callgrind` sees a normal
//! exit and writes its profile.

use wisp::{CloseCode, Config, Handler, Message, Server, WebSocket};
use wisp_bench::{ECHO_PATH, PUBLISH_PATH, ROOM_PATH};

/// The one room of the fan-out benchmark.
const ROOM: &str = "bench";

/// `/ws/echo`: every message back with its opcode.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

/// `/ws/room`: joins the room on open and only receives.
struct Member;

impl Handler for Member {
    type State = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        if ws.join(ROOM).is_err() {
            ws.close(CloseCode::POLICY, "the room is full");
        }
    }
}

/// `/ws/publish`: every message goes to every member of the room.
struct Publish;

impl Handler for Publish {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.publish(ROOM, msg, None);
    }
}

/// Takes `--flag` and its `n` values out of `args`, as one string each.
fn take_flag(args: &mut Vec<String>, flag: &str, n: usize) -> Result<Option<Vec<String>>, String> {
    let Some(at) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    if at + n >= args.len() {
        return Err(format!("{flag} needs {n} value(s)"));
    }
    let values: Vec<String> = args.drain(at..=at + n).skip(1).collect();
    Ok(Some(values))
}

/// The benchmark's handlers, on one server (or one worker).
fn register(server: &mut Server) {
    server.websocket(ECHO_PATH, Echo);
    server.websocket(ROOM_PATH, Member);
    server.websocket(PUBLISH_PATH, Publish);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = wisp_bench::port_arg()?;
    let mut args: Vec<String> = std::env::args().collect();
    let workers = take_flag(&mut args, "--workers", 1)?;
    let backplane = take_flag(&mut args, "--backplane", 2)?;
    let mut scale = String::new();
    if let Some(w) = &workers {
        scale += &format!("workers: {},", w[0]);
    }
    if let Some(b) = &backplane {
        scale += &format!(
            "backplane: {{ redis: {:?}, channel: 'bench', node: {:?} }},",
            b[0], b[1]
        );
    }
    let compression = match args.iter().position(|a| a == "--compression") {
        Some(at) if at + 1 < args.len() => {
            let value = args.remove(at + 1);
            args.remove(at);
            format!("webSockets: {{ compression: {value} }},")
        }
        Some(_) => return Err("--compression needs a value".into()),
        None => String::new(),
    };
    let tls = args.iter().position(|a| a == "--tls");
    let documents = match args.get(2) {
        Some(d) if tls != Some(2) => d.clone(),
        _ => ".".into(),
    };
    let mut config = Config::parse(
        &format!(
            "{{ web: {{
                listen: ['http://127.0.0.1:{port}'],
                documents: {documents:?},
                routes: [
                    {{ match: '/ws/', handler: 'action', methods: ['GET'] }},
                    {{ match: '' }},
                ],
                limits: {{
                    connections: 20100, roomMembers: 20000, requests: 'unlimited',
                    maxFrame: '20MB', maxMessage: '20MB',
                }},
                timeouts: {{ shutdown: '2 secs' }},
                {compression}
                {scale}
            }} }}"
        ),
        ".".as_ref(),
    )?;
    if let Some(at) = tls {
        let (Some(certificate), Some(key)) = (args.get(at + 1), args.get(at + 2)) else {
            return Err("--tls needs a certificate and a key".into());
        };
        config.listen_on(&format!("https://127.0.0.1:{port}"))?;
        config.tls.certificate = Some(certificate.into());
        config.tls.key = Some(key.into());
    }
    if workers.is_some() || backplane.is_some() {
        return run_workers(config);
    }
    let mut server = Server::bind(config)?;
    register(&mut server);
    for addr in server.local_addrs() {
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        println!("wisp_echo on {scheme}://{addr}{ECHO_PATH}");
    }
    server.stop_on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    server.run()?;
    Ok(())
}

/// Several loops (or a backplane node): stopped by SIGINT or SIGTERM too.
fn run_workers(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let workers = wisp::Workers::start(config, |server| {
        register(server);
        let signals = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
        if let Err(e) = server.stop_on_signals(&signals) {
            eprintln!("wisp_echo: cannot watch for signals: {e}");
        }
    })?;
    for addr in workers.local_addrs() {
        println!("wisp_echo on ws://{addr}{ECHO_PATH}");
    }
    workers.wait()?;
    Ok(())
}
