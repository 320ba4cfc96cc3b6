//! A WebSocket echo handler with per-connection state, as in the README.
//!
//! ```text
//! cargo run --example echo                  # ws://127.0.0.1:8080/ws/echo, site/ beside it
//! cargo run --example echo -- 127.0.0.1:0   # any free port; the banner says which
//! ```

use wisp::{CloseCode, Config, Handler, Message, Server, WebSocket, WsError};

/// Echoes every message and counts them per connection.
struct Echo;

impl Handler for Echo {
    type State = u64; // per-connection data, created with Default (Ioto's SetData/GetData)

    fn on_open(&mut self, ws: &mut WebSocket<'_, u64>) {
        // The upgrade's headers are readable here, and only here.
        let agent = ws.header("user-agent").unwrap_or("?").to_string();
        ws.send_text(&format!("hello {agent}, you are {}", ws.id()));
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, u64>, msg: Message<'_>) {
        *ws.state_mut() += 1;
        ws.send(msg); // Message::Text(&str) or Message::Binary(&[u8]), borrowed: no copy
    }

    fn on_error(&mut self, ws: &mut WebSocket<'_, u64>, err: &WsError) {
        eprintln!(
            "{}: {err} (closing with {})",
            ws.peer_addr(),
            err.close_code()
        );
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, u64>, code: CloseCode, reason: &str) {
        eprintln!(
            "{} closed with {code} {reason:?} after {} messages",
            ws.id(),
            ws.state()
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::load("web.json5".as_ref())?; // routes '/ws/' to actions
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }
    let mut server = Server::bind(config)?;
    server.websocket("/ws/echo", Echo);
    for addr in server.local_addrs() {
        println!("echo: ws://{addr}/ws/echo");
    }
    server.run()?;
    Ok(())
}
