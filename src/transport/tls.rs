//! A TLS connection on the loop: rustls' state beside the socket, driven
//! the way rustls' own mio server example drives it — records in with
//! `read_tls`, `process_new_packets`, plaintext out of the reader; plaintext
//! in through the writer, records out with `write_tls` — without a thread
//! and without a buffer of ours.
//!
//! rustls keeps the records it has produced until the socket takes them
//! (at most its buffer limit, then its writer takes no more); the
//! connection sees them through [`TlsConn::holds_output`], so it neither
//! calls its output finished nor closes before they are out.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::{sys, Wire};
use crate::message::PeerCert;
use crate::tls::der::cert_info;

/// Plaintext rustls will hold, encrypted, for a socket that does not take
/// it: past this its writer takes no more and the connection queues the
/// rest itself, as it does for a plain socket.
const SEND_LIMIT: usize = 64 * 1024;

/// The answer to plain HTTP on a TLS port (what nginx does, too).
const PLAIN_HTTP: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 51\r\nConnection: close\r\n\r\nThis port speaks HTTPS; send the request over TLS.\n";

/// One TLS connection.
#[derive(Debug)]
pub(crate) struct TlsConn {
    sock: TcpStream,
    /// Ours is the server's side, or (a gateway's downstream leg) the client's.
    tls: Connection,
    /// When the handshake began (the accept); `None` once it is done.
    handshake_from: Option<Instant>,
    /// The first bytes have been looked at (plain HTTP is answered 400).
    greeted: bool,
    /// The client's verified certificate, read once the handshake is done.
    peer: Option<Box<PeerCert>>,
}

/// What a read of the socket into rustls found.
enum Fill {
    /// Records arrived and were processed.
    More,
    /// The socket is drained for now.
    Drained,
    /// The peer closed its side of the TCP connection.
    Eof,
}

impl TlsConn {
    pub fn new(sock: TcpStream, config: Arc<ServerConfig>, now: Instant) -> io::Result<TlsConn> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(SEND_LIMIT));
        Ok(TlsConn {
            sock,
            tls: Connection::Server(tls),
            handshake_from: Some(now),
            greeted: false,
            peer: None,
        })
    }

    /// Our side of a TLS connection to `name` (a `wss`/`https` downstream):
    /// what we write before the handshake is done waits in rustls.
    pub fn client(
        sock: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        now: Instant,
    ) -> io::Result<TlsConn> {
        let mut tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(SEND_LIMIT));
        Ok(TlsConn {
            sock,
            tls: Connection::Client(tls),
            handshake_from: Some(now),
            // A server speaks first only in TLS: there is no plain HTTP to catch.
            greeted: true,
            peer: None,
        })
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// When the handshake began, while it is not finished.
    pub fn handshake_from(&self) -> Option<Instant> {
        self.handshake_from
    }

    /// The client's verified certificate, if it presented one.
    pub fn peer_cert(&self) -> Option<&PeerCert> {
        self.peer.as_deref()
    }

    /// Reads the subject and names of the certificate the client presented
    /// (rustls has verified it against `tls.authority`).
    fn client_certificate(&self) -> Option<Box<PeerCert>> {
        if matches!(self.tls, Connection::Client(_)) {
            return None;
        }
        let leaf = self.tls.peer_certificates()?.first()?;
        let info = cert_info(leaf)?;
        Some(Box::new(PeerCert {
            subject: info.subject,
            names: info.names,
        }))
    }

    /// True while rustls holds records the socket has not taken yet.
    #[inline]
    pub fn holds_output(&self) -> bool {
        self.tls.wants_write()
    }

    /// Reads plaintext into `buf`'s spare capacity (after clearing it).
    ///
    /// Like a socket read, a result shorter than the capacity means the
    /// socket is drained (edge-triggered polling reports what comes next),
    /// so this reads and decrypts until the buffer is full, the socket
    /// would block, or the peer is gone. `Ok(0)` is the end of the stream:
    /// a `close_notify`, or the TCP connection closed.
    #[cold]
    #[inline(never)]
    pub fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        if !self.greeted && !self.greet()? {
            return Ok(0);
        }
        loop {
            let state = match self.tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    if matches!(self.tls, Connection::Client(_)) {
                        // A gateway's downstream: its client sees only 502 or 1014.
                        log::info!("gateway: TLS with the downstream failed: {e}");
                    }
                    // rustls has queued the alert that says why: send it.
                    let _ = self.push();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            if self.handshake_from.is_some() && !self.tls.is_handshaking() {
                self.handshake_from = None;
                self.peer = self.client_certificate();
            }
            // Handshake flights, alerts and key updates go out at once.
            self.push()?;
            let ready = state.plaintext_bytes_to_read();
            let room = buf.capacity() - buf.len();
            if ready > 0 && room > 0 {
                let start = buf.len();
                let n = ready.min(room);
                buf.resize(start + n, 0);
                let got = self.tls.reader().read(&mut buf[start..])?;
                buf.truncate(start + got);
                if buf.len() == buf.capacity() {
                    return Ok(buf.len());
                }
                continue;
            }
            if state.peer_has_closed() {
                return Ok(buf.len());
            }
            match self.fill()? {
                Fill::More => {}
                Fill::Drained if buf.is_empty() => return Err(io::ErrorKind::WouldBlock.into()),
                Fill::Drained | Fill::Eof => return Ok(buf.len()),
            }
        }
    }

    /// Reads what the socket has into rustls.
    fn fill(&mut self) -> io::Result<Fill> {
        loop {
            match self.tls.read_tls(&mut SocketReader(&self.sock)) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(_) => return Ok(Fill::More),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Looks at the first byte: a TLS handshake record starts with 22. A
    /// plain HTTP request gets a plain 400 and the connection ends; false then.
    fn greet(&mut self) -> io::Result<bool> {
        let mut first = [0u8; 1];
        let peeked = rustix::net::recv(&self.sock, &mut first, rustix::net::RecvFlags::PEEK);
        match peeked {
            Ok((0, _)) => return Ok(true),
            Ok(_) => {}
            Err(rustix::io::Errno::AGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => return Err(e.into()),
        }
        self.greeted = true;
        if first[0] == 22 || !first[0].is_ascii_alphabetic() {
            return Ok(true);
        }
        // Read what the client sent, so that closing does not reset the
        // connection under our answer, then answer and close.
        let mut sink = [0u8; 4096];
        while matches!(SocketReader(&self.sock).read(&mut sink), Ok(1..)) {}
        let _ = sys::send(&self.sock, PLAIN_HTTP, false);
        let _ = self.sock.shutdown(Shutdown::Write);
        Ok(false)
    }

    /// Writes the records rustls holds; true when none is left.
    fn push(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut SocketWriter(&self.sock)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// An orderly end: `close_notify`, then our side of the TCP connection.
    pub fn shutdown_write(&mut self) {
        self.tls.send_close_notify();
        let _ = self.push();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

impl Wire for TlsConn {
    #[cold]
    #[inline(never)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Records from before go first; until they are out, take nothing new.
        if !self.push()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        self.push()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.push()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write_vectored(bufs)?;
        self.push()?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// File bytes must be encrypted: the body is copied in chunks instead.
    fn sendfile(&mut self, _: &File, _: &mut u64, _: usize) -> rustix::io::Result<usize> {
        Err(rustix::io::Errno::OPNOTSUPP)
    }

    fn drain(&mut self) -> io::Result<bool> {
        self.push()
    }
}

/// The socket as rustls reads it: `read(2)` without libc.
struct SocketReader<'a>(&'a TcpStream);

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(self.0, buf)?)
    }
}

/// The socket as rustls writes it.
struct SocketWriter<'a>(&'a TcpStream);

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf, false)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::send_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
