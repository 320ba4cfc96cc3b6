//! An in-memory peer for tests: the transport a connection gets when a test
//! drives it byte by byte, without a socket.
//!
//! The test pushes what the client sends as chunks ([`Memory::push`]); a
//! read takes what has arrived, as a stream socket does: every chunk pushed
//! since the last read, up to the buffer's capacity. Pushing one chunk
//! before each `ready` therefore decides where reads split the stream. With
//! nothing left a read says `WouldBlock`, or `Ok(0)` once the test has ended
//! the stream ([`Memory::end`]). What the server writes collects in
//! [`Memory::sent`], up to [`Memory::room`] bytes before `WouldBlock`, so
//! backpressure can be exercised. `sendfile` is not supported, which sends
//! file bodies down the copying path.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};

/// The peer at the other end of a `Transport::Memory`.
#[derive(Debug)]
pub(crate) struct Memory {
    /// What the client sent and the server has not read yet, by read.
    inbound: VecDeque<Vec<u8>>,
    /// The client ended its stream: reads past `inbound` return `Ok(0)`.
    ended: bool,
    /// Everything the server wrote, in order.
    pub sent: Vec<u8>,
    /// Bytes the "socket" still accepts before writes say `WouldBlock`.
    pub room: usize,
    /// The server shut its sending side.
    pub shut: bool,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory::with_room(usize::MAX)
    }
}

impl Memory {
    /// A peer whose socket accepts `room` bytes before it blocks.
    pub fn with_room(room: usize) -> Memory {
        Memory {
            inbound: VecDeque::new(),
            ended: false,
            sent: Vec::new(),
            room,
            shut: false,
        }
    }

    /// Queues bytes from the client, to be returned by the next read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.inbound.push_back(bytes.to_vec());
    }

    /// The client closes its sending side.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Takes what the server wrote so far.
    pub fn take_sent(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sent)
    }

    /// Reads what has arrived into `buf`'s spare capacity (after clearing
    /// it); what does not fit stays first in line.
    pub fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        if self.inbound.is_empty() {
            return if self.ended {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        while let Some(chunk) = self.inbound.front_mut() {
            let n = chunk.len().min(buf.capacity() - buf.len());
            if n == 0 && !chunk.is_empty() {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.inbound.pop_front();
            }
        }
        Ok(buf.len())
    }

    /// Takes as much of `buf` as there is room for.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.sent.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }

    /// Takes the slices in order, as far as there is room.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.room == 0 && total > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for buf in bufs {
            n += self.write(buf)?;
            if self.room == 0 {
                break;
            }
        }
        Ok(n)
    }

    /// Not supported: the output copies file bodies instead.
    pub fn sendfile(&mut self, _: &File, _: &mut u64, _: usize) -> rustix::io::Result<usize> {
        Err(rustix::io::Errno::OPNOTSUPP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads take what has arrived up to the buffer's capacity, the rest
    /// next time; writes stop at the room and resume when it grows.
    #[test]
    fn reads_what_arrived_and_writes_up_to_the_room() {
        let mut peer = Memory::with_room(5);
        let mut buf = Vec::with_capacity(4);
        let wb = |r: io::Result<usize>| r.unwrap_err().kind() == io::ErrorKind::WouldBlock;
        assert!(wb(peer.read_spare(&mut buf)));
        peer.push(b"ab");
        peer.push(b"cdef");
        peer.push(b"g");
        assert_eq!(peer.read_spare(&mut buf).unwrap(), 4);
        assert_eq!(buf, b"abcd");
        assert_eq!(peer.read_spare(&mut buf).unwrap(), 3);
        assert_eq!(buf, b"efg");
        assert!(wb(peer.read_spare(&mut buf)));
        peer.end();
        assert_eq!(peer.read_spare(&mut buf).unwrap(), 0);

        let parts = [IoSlice::new(b"123"), IoSlice::new(b"456")];
        assert_eq!(peer.write_vectored(&parts).unwrap(), 5);
        assert!(wb(peer.write(b"6")));
        peer.room = 10;
        assert_eq!(peer.write(b"6789").unwrap(), 4);
        assert_eq!(peer.take_sent(), b"123456789");
    }
}
