//! Socket reads and writes as direct system calls.
//!
//! `mio`'s `TcpStream` reads and writes through libc, whose `recv` and `send`
//! are thread-cancellation points: each call enables and disables
//! asynchronous cancellation around the system call, which costs about as
//! much user-space work as everything else wisp does to echo a small
//! message. `rustix` issues the same system calls directly (its `linux_raw`
//! backend) behind a safe API, so the reactor reads and writes through this
//! wrapper instead.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use mio::net::TcpStream;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

/// A borrowed connection socket that reads and writes without libc.
pub(crate) struct Socket<'a>(pub &'a TcpStream);

impl Socket<'_> {
    /// Reads into `buf`'s spare capacity (after clearing it), so no page of
    /// the buffer is touched before a read fills it: an idle server's
    /// 64 KiB read buffer costs no memory until data arrives.
    pub(crate) fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        // `read`, not `recv` without flags: the same on a socket, with three
        // arguments to set up instead of six.
        Ok(rustix::io::read(
            self.0,
            rustix::buffer::spare_capacity(buf),
        )?)
    }
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, _) = rustix::net::recv(self.0, buf, RecvFlags::empty())?;
        Ok(n)
    }
}

impl Write for Socket<'_> {
    #[inline(always)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // NOSIGNAL: a peer that went away is an error here, not a SIGPIPE
        // for a host program that did not ignore it.
        Ok(rustix::net::send(self.0, buf, SendFlags::NOSIGNAL)?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut control = SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(
            self.0,
            bufs,
            &mut control,
            SendFlags::NOSIGNAL,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Socket<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Bytes cross a real loopback connection both ways, one write and one
    /// gathered write, and an empty non-blocking socket says WouldBlock.
    #[test]
    fn reads_and_writes_a_loopback_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = TcpStream::from_std(server);
        let mut sock = Socket(&server);

        let mut buf = [0u8; 16];
        let err = sock.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

        assert_eq!(sock.write(b"abc").unwrap(), 3);
        let parts = [IoSlice::new(b"de"), IoSlice::new(b"fgh")];
        assert_eq!(sock.write_vectored(&parts).unwrap(), 5);
        let mut got = [0u8; 8];
        (&client).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcdefgh");

        (&client).write_all(b"xyz").unwrap();
        let mut n = 0;
        // The bytes are on their way; a non-blocking read may still be early.
        while n == 0 {
            n = match sock.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::yield_now();
                    0
                }
                Err(e) => panic!("read failed: {e}"),
            };
        }
        assert_eq!(&buf[..n], b"xyz");
    }
}
