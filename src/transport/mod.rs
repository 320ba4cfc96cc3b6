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
    /// A test's in-memory peer (`memory.rs`): a connection driven byte by
    /// byte without a socket.
    #[cfg(test)]
    Memory(memory::Memory),
}

impl Transport {
    /// Reads into `buf`'s spare capacity (after clearing it); `Ok(0)` is the
    /// peer's end of stream.
    #[inline(always)]
    pub fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::read_spare(&*s, buf),
            #[cfg(test)]
            Transport::Memory(m) => m.read_spare(buf),
        }
    }

    /// The TCP socket underneath (a test's in-memory peer has none).
    fn socket(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
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
            #[cfg(test)]
            Transport::Memory(m) => m.shut = true,
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
}

impl Wire for Transport {
    #[inline(always)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(&*s, buf, false),
            #[cfg(test)]
            Transport::Memory(m) => m.write(buf),
        }
    }

    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(&*s, buf, true),
            #[cfg(test)]
            Transport::Memory(m) => m.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send_vectored(&*s, bufs),
            #[cfg(test)]
            Transport::Memory(m) => m.write_vectored(bufs),
        }
    }

    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> rustix::io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::sendfile(&*s, file, offset, len),
            #[cfg(test)]
            Transport::Memory(m) => m.sendfile(file, offset, len),
        }
    }
}

#[cfg(test)]
impl Transport {
    /// The in-memory peer of a test's connection.
    pub fn memory(&mut self) -> &mut memory::Memory {
        match self {
            Transport::Memory(m) => m,
            Transport::Plain(_) => panic!("not an in-memory transport"),
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
