//! A typed JSON event API over one WebSocket, with `wisp::Router`.
//!
//! ```text
//! cargo run --example router                  # ws://127.0.0.1:8080/ws/api
//! cargo run --example router -- 127.0.0.1:0   # any free port; the banner says which
//! ```
//!
//! Then, from any WebSocket client (`websocat ws://127.0.0.1:8080/ws/api`):
//!
//! ```text
//! > {"event":"add","a":1,"b":2,"id":7}
//! < {"event":"sum","id":7,"value":3}
//! > {"event":"greet","name":"ann"}
//! < {"event":"greeting","text":"hello ann"}
//! > {"event":"greet"}
//! < {"error":"greet: missing field `name`","event":"error"}
//! > {"event":"stats"}
//! < {"event":"stats","handled":2}
//! ```

use serde::Deserialize;
use serde_json::json;
use wisp::{Config, Router, Server};

/// `{"event":"add","a":1,"b":2}`: fields the type leaves out (`event`, `id`) are ignored.
#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// `{"event":"greet","name":"ann"}`.
#[derive(Deserialize)]
struct Greet {
    name: String,
}

/// Per-connection state: made with `Default` when a socket opens.
#[derive(Default)]
struct Session {
    handled: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::parse(
        "{ web: { routes: [ { match: '/ws/', handler: 'action' }, { match: '' } ] } }",
        ".".as_ref(),
    )?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }

    let api = Router::<Session>::default()
        // A reply that is a JSON object gets the request's "id" added.
        .on("add", |ws, m: Add| {
            ws.state_mut().handled += 1;
            // An Err becomes {"event":"error","error":"…"}; the socket stays open.
            let value = m.a.checked_add(m.b).ok_or("the sum overflows")?;
            Ok::<_, &str>(json!({ "event": "sum", "value": value }))
        })
        .on("greet", |ws, m: Greet| {
            ws.state_mut().handled += 1;
            json!({ "event": "greeting", "text": format!("hello {}", m.name) })
        })
        // Take a serde_json::Value when the message has nothing to read.
        .on(
            "stats",
            |ws, _: serde_json::Value| json!({ "event": "stats", "handled": ws.state().handled }),
        )
        .on_close(|ws, code, _reason| {
            eprintln!(
                "{} closed ({code}) after {} events",
                ws.id(),
                ws.state().handled
            );
        });

    let mut server = Server::bind(config)?;
    server.websocket("/ws/api", api);
    for addr in server.local_addrs() {
        println!("router: ws://{addr}/ws/api");
    }
    server.run()?;
    Ok(())
}
