//! Socket reads and writes as direct system calls (mio keeps its platform
//! code under `sys` too).
//!
//! `mio`'s `TcpStream` reads and writes through libc, whose `recv` and `send`
//! are thread-cancellation points: each call enables and disables
//! asynchronous cancellation around the system call, which costs about as
//! much user-space work as everything else wisp does to echo a small
//! message. `rustix` issues the same system calls directly (its `linux_raw`
//! backend) behind a safe API, so the transport reads and writes through
//! these functions instead.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use rustix::net::{SendAncillaryBuffer, SendFlags};

/// Reads into `buf`'s spare capacity (after clearing it), so no page of
/// the buffer is touched before a read fills it: an idle server's
/// 64 KiB read buffer costs no memory until data arrives.
#[inline(always)]
pub(crate) fn read_spare(fd: impl AsFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    // `read`, not `recv` without flags: the same on a socket, with three
    // arguments to set up instead of six.
    Ok(rustix::io::read(fd, rustix::buffer::spare_capacity(buf))?)
}

/// Writes `buf`; `more` says more output follows at once (`MSG_MORE`).
#[inline(always)]
pub(crate) fn send(fd: impl AsFd, buf: &[u8], more: bool) -> io::Result<usize> {
    // NOSIGNAL: a peer that went away is an error here, not a SIGPIPE
    // for a host program that did not ignore it.
    let flags = if more {
        SendFlags::NOSIGNAL | SendFlags::MORE
    } else {
        SendFlags::NOSIGNAL
    };
    Ok(rustix::net::send(fd, buf, flags)?)
}

/// A gathered write.
pub(crate) fn send_vectored(fd: impl AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut control = SendAncillaryBuffer::default();
    Ok(rustix::net::sendmsg(
        fd,
        bufs,
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// `sendfile(2)`: up to `len` bytes of `file` from `*offset`, straight
/// from the page cache; `offset` moves past what was sent.
pub(crate) fn sendfile(
    fd: impl AsFd,
    file: &File,
    offset: &mut u64,
    len: usize,
) -> rustix::io::Result<usize> {
    rustix::fs::sendfile(fd, file, Some(offset), len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Bytes cross a real loopback connection both ways, one write and one
    /// gathered write, and an empty non-blocking socket says WouldBlock.
    #[test]
    fn reads_and_writes_a_loopback_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut buf = Vec::with_capacity(16);
        let err = read_spare(&server, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

        assert_eq!(send(&server, b"abc", false).unwrap(), 3);
        let parts = [IoSlice::new(b"de"), IoSlice::new(b"fgh")];
        assert_eq!(send_vectored(&server, &parts).unwrap(), 5);
        let mut got = [0u8; 8];
        (&client).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcdefgh");

        (&client).write_all(b"xyz").unwrap();
        let mut n = 0;
        // The bytes are on their way; a non-blocking read may still be early.
        while n == 0 {
            n = match read_spare(&server, &mut buf) {
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
