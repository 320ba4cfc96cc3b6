//! The benchmark's paths on fastwebsockets (hyper 1 for the handshake): a
//! peer to compare wisp with.
//!
//! ```text
//! fastws_echo PORT
//! ```
//!
//! Written as fastwebsockets' own `examples/echo_server.rs`: one
//! `current_thread` runtime, hyper's HTTP/1 server with upgrades, each
//! WebSocket in its own task run `unconstrained`, a `FragmentCollector`
//! echoing every data frame straight from its read buffer. TCP_NODELAY on
//! every connection. SIGINT ends the process normally (so callgrind writes
//! its profile).

use std::convert::Infallible;

use bytes::Bytes;
use fastwebsockets::{upgrade, FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use wisp_bench::{PUBLISH_PATH, ROOM_PATH};

type Ws = fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = wisp_bench::port_arg()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("fastws_echo on ws://{}/ws/echo", listener.local_addr()?);
        // The room: one sender, a receiver per member. Depth-1 fan-out never lags.
        let (room, _) = broadcast::channel::<Bytes>(64);
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    // A failed accept (say, out of descriptors) costs only that connection.
                    let Ok((stream, _)) = accepted else { continue };
                    stream.set_nodelay(true)?;
                    let room = room.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| upgrade_request(req, room.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    });
                }
                _ = &mut stop => break,
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

async fn upgrade_request(
    mut req: Request<Incoming>,
    room: broadcast::Sender<Bytes>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let Ok((response, fut)) = upgrade::upgrade(&mut req) else {
        let mut refused = Response::new(Empty::new());
        *refused.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(refused);
    };
    let path = req.uri().path();
    // Subscribe before the 101 goes out, so a member misses no publish.
    let receiver = (path == ROOM_PATH).then(|| room.subscribe());
    let publisher = path == PUBLISH_PATH;
    tokio::task::spawn(async move {
        let Ok(ws) = fut.await else { return };
        // Errors are the peer going away; the benchmark does not care which.
        let _ = if let Some(receiver) = receiver {
            tokio::task::unconstrained(member(ws, receiver)).await
        } else if publisher {
            tokio::task::unconstrained(publish(ws, room)).await
        } else {
            tokio::task::unconstrained(echo(ws)).await
        };
    });
    Ok(response)
}

/// fastwebsockets' echo loop (pings and closes are answered by the library).
async fn echo(ws: Ws) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

/// A room member: sends whatever is published, until a write fails. It
/// reads nothing (`read_frame` may not be cancelled mid-frame, so it cannot
/// share a `select!` with the room); members of the benchmark send nothing.
async fn member(mut ws: Ws, mut room: broadcast::Receiver<Bytes>) -> Result<(), WebSocketError> {
    loop {
        match room.recv().await {
            Ok(payload) => {
                ws.write_frame(Frame::binary(Payload::Borrowed(&payload)))
                    .await?
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// The publisher: every data message goes to the room.
async fn publish(ws: Ws, room: broadcast::Sender<Bytes>) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let _ = room.send(Bytes::copy_from_slice(&frame.payload));
            }
            _ => {}
        }
    }
    Ok(())
}
