//! The transport seam: the one place where a connection's bytes meet its
//! socket.
//!
//! Every read and every write of a connection — request heads, responses,
//! WebSocket frames, file bodies — goes through its [`Transport`]. Above it
//! the connection and the protocol modules see only bytes; below it is a
//! plain TCP socket today, and each layer that comes later (TLS, a
//! gateway's downstream leg) is another variant here, so nothing above has
//! to change. An enum rather than a trait object: the plain case is a match
//! that the compiler folds away, with no call through a vtable on the path
//! every echoed message takes.
//!
//! Output code (`output.rs`) writes through the [`Wire`] trait, which the
//! transport implements, so its queueing and file streaming can be tested
//! against a throttled socket.

#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod sys;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::fs::File;
use std::io::{self, IoSlice};
use std::net::Shutdown;

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Where a connection's bytes go to and come from.
#[derive(Debug)]
pub(crate) enum Transport {
    /// A plain TCP connection: `http://` and `ws://`.
    Plain(TcpStream),
    /// TLS: `https://` and `wss://`. Boxed: rustls' state is large, and a
    /// plain connection should not pay for it.
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsConn>),
    /// A test's in-memory peer (`memory.rs`): a connection driven byte by
    /// byte without a socket.
    #[cfg(test)]
    Memory(memory::Memory),
}

impl Transport {
    /// Reads into `buf`'s spare capacity (after clearing it), leaving exactly
    /// the bytes read in it (`buf.len()` is the count returned); `Ok(0)` is
    /// the peer's end of stream. A count short of the capacity means the
    /// socket is drained for now.
    #[inline(always)]
    pub fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::read_spare(&*s, buf),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.read_spare(buf),
            #[cfg(test)]
            Transport::Memory(m) => m.read_spare(buf),
        }
    }

    /// True for a plain TCP connection (and a test's in-memory peer, so
    /// that unit tests drive the fast lane too).
    #[inline(always)]
    pub fn is_plain(&self) -> bool {
        match self {
            Transport::Plain(_) => true,
            #[cfg(test)]
            Transport::Memory(_) => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// [`Transport::read_spare`] for a connection known to be plain (the
    /// fast lane): nothing of TLS is merged into the path. Any other
    /// transport is refused with `Unsupported`, which closes it.
    #[inline(always)]
    pub fn read_plain(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::read_spare(&*s, buf),
            #[cfg(test)]
            Transport::Memory(m) => m.read_spare(buf),
            #[allow(unreachable_patterns)]
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// [`Wire::write`] for a connection known to be plain (the fast lane).
    #[inline(always)]
    pub fn write_plain(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(&*s, buf, false),
            #[cfg(test)]
            Transport::Memory(m) => m.write(buf),
            #[allow(unreachable_patterns)]
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// True while the transport itself holds output the socket has not
    /// taken (TLS records): the connection's output is not finished.
    #[inline(always)]
    pub fn holds_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.holds_output(),
            #[cfg(test)]
            Transport::Memory(_) => false,
        }
    }

    /// When a TLS handshake began, while it is not finished: the
    /// connection's deadline is that plus `timeouts.handshake`.
    #[inline]
    pub fn handshake_from(&self) -> Option<std::time::Instant> {
        match self {
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.handshake_from(),
            _ => None,
        }
    }

    /// The certificate a TLS client presented and the server verified.
    pub fn peer_cert(&self) -> Option<&crate::message::PeerCert> {
        match self {
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.peer_cert(),
            _ => None,
        }
    }

    /// True for `https://` and `wss://`.
    pub fn is_tls(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Transport::Tls(_) => true,
            _ => false,
        }
    }

    /// The TCP socket underneath (a test's in-memory peer has none).
    fn socket(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => Some(t.socket()),
            #[cfg(test)]
            Transport::Memory(_) => None,
        }
    }

    /// Shuts our sending side (a lingering close); errors are ignored, since
    /// a peer that is already gone is what we want anyway.
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.shutdown_write(),
            #[cfg(test)]
            Transport::Memory(m) => m.shut = true,
        }
    }
}

/// What a listener makes of the connections it accepts.
#[derive(Debug, Clone)]
pub(crate) enum Acceptor {
    Plain,
    /// TLS with this configuration (shared by every connection).
    #[cfg(feature = "tls")]
    Tls(std::sync::Arc<rustls::ServerConfig>),
}

impl Acceptor {
    /// The transport of a connection just accepted at `now`.
    pub fn transport(&self, stream: TcpStream, now: std::time::Instant) -> io::Result<Transport> {
        let _ = now;
        match self {
            Acceptor::Plain => Ok(Transport::Plain(stream)),
            #[cfg(feature = "tls")]
            Acceptor::Tls(config) => Ok(Transport::Tls(Box::new(tls::TlsConn::new(
                stream,
                config.clone(),
                now,
            )?))),
        }
    }
}

/// What output code writes through: a connection's transport (or, in
/// tests, a socket that takes only so many bytes).
pub(crate) trait Wire {
    /// Writes some of `buf`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Writes some of `buf`, telling the transport that more follows at
    /// once (a response head before its file body), so it need not go out
    /// in a small packet of its own.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }

    /// A gathered write of queued chunks.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Sends up to `len` bytes of `file` from `*offset` without copying
    /// them through user space, moving `offset` on. A transport that cannot
    /// (one that encrypts, say) answers `OPNOTSUPP`, and the body is copied
    /// in chunks instead.
    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> rustix::io::Result<usize>;

    /// Sends what the transport itself holds (TLS records); true when
    /// nothing is left. A plain socket holds nothing.
    fn drain(&mut self) -> io::Result<bool> {
        Ok(true)
    }
}

impl Wire for Transport {
    #[inline(always)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(&*s, buf, false),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write(buf),
            #[cfg(test)]
            Transport::Memory(m) => m.write(buf),
        }
    }

    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(&*s, buf, true),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write(buf),
            #[cfg(test)]
            Transport::Memory(m) => m.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send_vectored(&*s, bufs),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write_vectored(bufs),
            #[cfg(test)]
            Transport::Memory(m) => m.write_vectored(bufs),
        }
    }

    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> rustix::io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::sendfile(&*s, file, offset, len),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.sendfile(file, offset, len),
            #[cfg(test)]
            Transport::Memory(m) => m.sendfile(file, offset, len),
        }
    }

    fn drain(&mut self) -> io::Result<bool> {
        match self {
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.drain(),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
impl Transport {
    /// The in-memory peer of a test's connection.
    pub fn memory(&mut self) -> &mut memory::Memory {
        match self {
            Transport::Memory(m) => m,
            _ => panic!("not an in-memory transport"),
        }
    }
}

/// The transport is what the event loop registers: its TCP socket, which
/// every kind of transport has underneath.
impl Source for Transport {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket()
            .map_or(Ok(()), |s| s.register(registry, token, interests))
    }

    fn reregister(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.socket()
            .map_or(Ok(()), |s| s.reregister(r, token, interests))
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket().map_or(Ok(()), |s| s.deregister(registry))
    }
}
