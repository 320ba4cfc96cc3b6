//! The echo server the Autobahn TestSuite drives (`scripts/autobahn`).
//!
//! ```text
//! cargo run --release --example autobahn -- 9001
//! ```
//!
//! Every path is a WebSocket that echoes each message with its opcode. The
//! limits are raised above the suite's largest message (16 MiB), and
//! permessage-deflate is on for every message, however short (sections 12
//! and 13 of the suite).

use wisp::{Config, Handler, Message, Server, WebSocket};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(|_| format!("not a port: {p}"))?,
        None => 9001,
    };
    let config = Config::parse(
        &format!(
            "{{ web: {{
                listen: ['http://127.0.0.1:{port}'],
                routes: [ {{ match: '', handler: 'action', methods: ['GET'] }} ],
                limits: {{ connections: 1000, maxFrame: '20MB', maxMessage: '20MB' }},
                webSockets: {{ maxBackpressure: '64MB', compression: {{ threshold: 0 }} }},
            }} }}"
        ),
        ".".as_ref(),
    )?;
    let mut server = Server::bind(config)?;
    server.websocket("", Echo);
    for addr in server.local_addrs() {
        println!("autobahn echo server on ws://{addr}/");
    }
    server.run()?;
    Ok(())
}
