//! The benchmark's paths on tokio-tungstenite: a peer to compare wisp with.
//!
//! ```text
//! tungstenite_echo PORT [--tls CERTIFICATE KEY]
//! ```
//!
//! With `--tls`, every connection is TLS first (`wss://`): tokio-rustls
//! 0.26 over the same rustls 0.23 and `ring` provider as wisp, with
//! rustls' default server configuration and ALPN `http/1.1`; the WebSocket
//! code is the same.
//!
//! One `current_thread` runtime (one thread, like wisp), TCP_NODELAY on every
//! connection, default `WebSocketConfig`. The echo loop is the one in
//! tokio-tungstenite's own Autobahn server example: `next()` then `send()`,
//! which writes once per message. Payloads are `Bytes`, so an echo or a
//! publish does not copy them. SIGINT ends the process normally (so callgrind
//! writes its profile).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Result};
use tokio_tungstenite::{accept_hdr_async, WebSocketStream};
use wisp_bench::{PUBLISH_PATH, ROOM_PATH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = wisp_bench::port_arg()?;
    let args: Vec<String> = std::env::args().collect();
    let tls = match args.iter().position(|a| a == "--tls") {
        Some(at) => {
            let (Some(certificate), Some(key)) = (args.get(at + 1), args.get(at + 2)) else {
                return Err("--tls needs a certificate and a key".into());
            };
            let config = wisp_bench::tls::server_config(certificate.as_ref(), key.as_ref())?;
            Some(TlsAcceptor::from(config))
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!(
            "tungstenite_echo on {}://{}/ws/echo",
            if tls.is_some() { "wss" } else { "ws" },
            listener.local_addr()?
        );
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
                    match &tls {
                        Some(acceptor) => {
                            let accept = acceptor.accept(stream);
                            let room = room.clone();
                            tokio::spawn(async move {
                                if let Ok(stream) = accept.await {
                                    serve(stream, room).await;
                                }
                            });
                        }
                        None => {
                            tokio::spawn(serve(stream, room.clone()));
                        }
                    }
                }
                _ = &mut stop => break,
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

// tungstenite's handshake callback returns its (large) error response by value.
#[allow(clippy::result_large_err)]
async fn serve<S>(stream: S, room: broadcast::Sender<Bytes>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) = accept_hdr_async(stream, callback).await else {
        return;
    };
    // Errors are the peer going away; the benchmark does not care which.
    let _ = match path.as_str() {
        ROOM_PATH => member(ws, room.subscribe()).await,
        PUBLISH_PATH => publish(ws, room).await,
        _ => echo(ws).await,
    };
}

/// tokio-tungstenite's echo loop (pings and closes are answered by the library).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) -> Result<()> {
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// A room member: sends whatever is published, until the peer goes.
async fn member<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    mut room: broadcast::Receiver<Bytes>,
) -> Result<()> {
    loop {
        tokio::select! {
            published = room.recv() => match published {
                Ok(payload) => ws.send(Message::Binary(payload)).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            incoming = ws.next() => match incoming {
                Some(msg) => { msg?; }
                None => return Ok(()),
            },
        }
    }
}

/// The publisher: every data message goes to the room.
async fn publish<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    room: broadcast::Sender<Bytes>,
) -> Result<()> {
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Binary(payload) => {
                let _ = room.send(payload);
            }
            Message::Text(text) => {
                let _ = room.send(Bytes::from(text));
            }
            _ => {}
        }
    }
    Ok(())
}
