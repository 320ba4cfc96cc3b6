//! The cost of one router event, for callgrind (`scripts/cost --router`):
//! a wisp server on a thread of this process and a blocking client that
//! sends MESSAGES copies of one event, one at a time, and reads each answer.
//!
//! ```text
//! router_cost MODE MESSAGES
//! ```
//!
//! MODE is `router-json` or `router-msgpack` (a `wisp::Router` reading the
//! event into a typed struct and answering a small event in the request's
//! codec), or `echo-json` or `echo-msgpack` (a plain handler sending the same
//! frame back: the transport's share, to subtract). The event is the load's
//! JSON telemetry message of 256 bytes (`wisp_bench::deflate::json_payload`)
//! in a text frame, or the same value in MessagePack in a binary frame.
//! Everything is built before the first message, so two runs that differ
//! only in MESSAGES differ only in the messages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use serde::Deserialize;
use serde_json::{json, Value};
use wisp::{Config, Handler, Message, Router, Server, WebSocket};

/// One sample of the telemetry event.
#[derive(Deserialize)]
#[allow(dead_code)] // read so that binding it costs what a real handler's does
struct Sample {
    sensor: String,
    ts: u64,
    value: f64,
    unit: String,
    ok: bool,
}

/// The telemetry event, as a handler would declare it.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Telemetry {
    device: String,
    firmware: String,
    seq: u64,
    samples: Vec<Sample>,
}

/// Sends every message back.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

/// A client frame: FIN, `opcode`, masked with a fixed key.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Reads one whole unmasked server frame into `buf` (cleared first).
fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() >= 2 {
            let (len, header) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                126 => (usize::MAX, 4),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= header + len {
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: router_cost router-json|router-msgpack|echo-json|echo-msgpack MESSAGES";
    let (mode, count) = match (args.get(1), args.get(2).map(|n| n.parse::<usize>())) {
        (Some(mode), Some(Ok(count))) => (mode.clone(), count),
        _ => return Err(usage.into()),
    };
    let json_event = wisp_bench::deflate::json_payload(256);
    let value: Value = serde_json::from_slice(&json_event)?;
    let frame = match mode.as_str() {
        "router-json" | "echo-json" => masked(0x1, &json_event),
        "router-msgpack" | "echo-msgpack" => masked(0x2, &rmp_serde::to_vec_named(&value)?),
        _ => return Err(usage.into()),
    };

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let run = || -> Result<(), Box<dyn std::error::Error>> {
            let mut config = Config::parse(
                "{ web: { routes: [ { match: '/ws/', handler: 'action' } ] } }",
                ".".as_ref(),
            )?;
            config.listen_on("127.0.0.1:0")?;
            let mut server = Server::bind(config)?;
            server.websocket("/ws/echo", Echo);
            server.websocket(
                "/ws/router",
                Router::new().key("type").on("telemetry", |_, t: Telemetry| {
                    json!({ "type": "seen", "seq": t.seq, "samples": t.samples.len() })
                }),
            );
            let _ = tx.send(server.local_addrs().first().copied());
            server.run()?;
            Ok(())
        };
        if let Err(e) = run() {
            eprintln!("router_cost: server: {e}");
        }
    });
    let addr = rx.recv()?.ok_or("the server has no address")?;

    let path = if mode.starts_with("router") {
        "/ws/router"
    } else {
        "/ws/echo"
    };
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!("no upgrade: {}", String::from_utf8_lossy(&head)).into());
    }
    let mut answer = Vec::with_capacity(4096);
    for _ in 0..count {
        stream.write_all(&frame)?;
        read_frame(&mut stream, &mut answer)?;
    }
    // The last answer, so a run shows what the server said.
    if let Some(&opcode) = answer.first() {
        println!(
            "router_cost: {mode}: {count} messages, last answer opcode {:#x}, {} bytes",
            opcode & 0x0f,
            answer.len()
        );
    } else {
        println!("router_cost: {mode}: 0 messages");
    }
    Ok(())
}
