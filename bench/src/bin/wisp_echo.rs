//! wisp serving the benchmark's paths: `/ws/echo`, `/ws/room`, `/ws/publish`,
//! and, with a second argument, a folder of static files at `/`.
//!
//! ```text
//! wisp_echo PORT [DOCUMENTS] [--tls CERTIFICATE KEY] [--compression VALUE]
//! ```
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = wisp_bench::port_arg()?;
    let mut args: Vec<String> = std::env::args().collect();
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
    let mut server = Server::bind(config)?;
    server.websocket(ECHO_PATH, Echo);
    server.websocket(ROOM_PATH, Member);
    server.websocket(PUBLISH_PATH, Publish);
    for addr in server.local_addrs() {
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        println!("wisp_echo on {scheme}://{addr}{ECHO_PATH}");
    }
    server.stop_on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    server.run()?;
    Ok(())
}
