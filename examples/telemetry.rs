//! Pushing data: a per-connection timer sends each client a reading every
//! second (Ioto's telemetry example), and a second thread publishes alerts to
//! a room through a `ServerHandle`.
//!
//! ```text
//! cargo run --example telemetry                  # ws://127.0.0.1:8080/ws/telemetry
//! cargo run --example telemetry -- 127.0.0.1:0   # any free port; the banner says which
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wisp::{Config, Handler, Server, TimerId, WebSocket};

/// Per connection: how many readings it has had.
#[derive(Default)]
struct Subscriber {
    sent: u64,
}

struct Telemetry;

impl Handler for Telemetry {
    type State = Subscriber;

    fn on_open(&mut self, ws: &mut WebSocket<'_, Subscriber>) {
        let _ = ws.join("alerts");
        // Cancelled by the server when the connection closes.
        ws.set_timer(Duration::from_secs(1), Some(Duration::from_secs(1)));
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, Subscriber>, _timer: TimerId) {
        ws.state_mut().sent += 1;
        let reading = json!({
            "event": "reading",
            "seq": ws.state().sent,
            "temperature": temperature(),
        });
        ws.send_json(&reading);
    }
}

/// A pretend sensor: a slow wave around 21 °C.
fn temperature() -> f64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    21.0 + 2.0 * (secs / 60.0).sin()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::parse(
        "{ web: { routes: [ { match: '/ws/', handler: 'action', methods: ['GET'] } ] } }",
        ".".as_ref(),
    )?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }
    let mut server = Server::bind(config)?;
    server.websocket("/ws/telemetry", Telemetry);

    // Another thread (a sensor driver, say) talks to the loop through a handle.
    let handle = server.handle();
    std::thread::spawn(move || {
        for n in 1.. {
            std::thread::sleep(Duration::from_secs(5));
            let alert = json!({ "event": "alert", "n": n, "text": "door opened" }).to_string();
            if !handle.publish("alerts", alert) {
                break; // the server stopped
            }
        }
    });

    for addr in server.local_addrs() {
        println!("telemetry: ws://{addr}/ws/telemetry");
    }
    server.run()?;
    Ok(())
}
