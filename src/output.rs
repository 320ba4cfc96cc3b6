//! Outbound bytes of one connection.
//!
//! Responses are composed in the reactor's shared scratch buffer and written
//! from there; only what the socket does not take is copied into the
//! connection's own `pending` buffer. An idle connection therefore owns no
//! output memory at all, and a busy one at most what the kernel refused.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::OnceLock;

use rustix::io::Errno;

use crate::transport::Wire;

/// Bytes read from a file per refill while a body is copied through user space.
pub(crate) const FILE_CHUNK: usize = 64 * 1024;
/// The most one `sendfile` is asked for (Linux moves at most about 2 GiB per call).
const SENDFILE_MAX: usize = 0x7fff_f000;

/// One piece of a streamed body.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes held in memory (multipart part heads).
    Bytes(Vec<u8>),
    /// A stretch of the file.
    Range { offset: u64, remaining: u64 },
}

/// A large body, sent from its file as the socket drains.
///
/// File bytes go from the page cache to the socket with `sendfile(2)`: no
/// copy through user space and no buffer in wisp. Where `sendfile` must not
/// or cannot be used (see `sendfile_is_safe`, or a file system that does
/// not support it), the body is read a chunk at a time into the output and
/// written from there instead.
#[derive(Debug)]
pub(crate) struct FileBody {
    /// Shared with the documents' open-file cache; every read names its offset.
    file: Rc<File>,
    segments: VecDeque<Segment>,
    /// Copy through user space instead of `sendfile`.
    copy: bool,
}

/// What [`FileBody::send`] achieved.
enum Sent {
    /// Every segment has been written.
    Done,
    /// The socket is full.
    Blocked,
    /// `sendfile` is not supported for this file: copy from here on.
    Copy,
}

impl FileBody {
    pub fn new(file: Rc<File>, segments: VecDeque<Segment>) -> FileBody {
        FileBody {
            file,
            segments,
            copy: !sendfile_is_safe(),
        }
    }

    /// Writes the segments in order, file ranges with `sendfile`, until the
    /// body is complete or the socket is full.
    fn send<W: Wire>(&mut self, sock: &mut W, progressed: &mut bool) -> io::Result<Sent> {
        loop {
            let left = self.segments.len();
            let Some(segment) = self.segments.front_mut() else {
                return Ok(Sent::Done);
            };
            match segment {
                Segment::Bytes(bytes) => {
                    let mut done = 0;
                    // A part head: the part's bytes follow at once.
                    let more = left > 1;
                    let state = write_all_nb(sock, bytes, &mut done, progressed, more);
                    bytes.drain(..done);
                    if state? == Flushed::Blocked {
                        return Ok(Sent::Blocked);
                    }
                }
                Segment::Range { offset, remaining } => {
                    while *remaining > 0 {
                        let want = usize::try_from(*remaining)
                            .unwrap_or(SENDFILE_MAX)
                            .min(SENDFILE_MAX);
                        match sock.sendfile(&self.file, offset, want) {
                            // A file that shrinks under us cannot fill its
                            // Content-Length: the connection is dropped.
                            Ok(0) => return Err(shrank()),
                            Ok(n) => {
                                *remaining -= n as u64;
                                *progressed = true;
                            }
                            Err(Errno::AGAIN) => return Ok(Sent::Blocked),
                            Err(Errno::INTR) => {}
                            // The file system cannot splice (some FUSE and
                            // network file systems): `offset` is where to go on.
                            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                                self.copy = true;
                                return Ok(Sent::Copy);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            self.segments.pop_front();
        }
    }

    /// Appends the next piece (at most `FILE_CHUNK` file bytes) to `out`.
    /// Returns false when the body is complete.
    fn refill(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(segment) = self.segments.front_mut() else {
            return Ok(false);
        };
        match segment {
            Segment::Bytes(bytes) => {
                out.extend_from_slice(bytes);
                self.segments.pop_front();
            }
            Segment::Range { offset, remaining } => {
                let want = usize::try_from(*remaining)
                    .unwrap_or(FILE_CHUNK)
                    .min(FILE_CHUNK);
                let start = out.len();
                out.reserve(want);
                // Read into the buffer's spare capacity, not over zeros
                // written first: `read_to_end` on a `File` fills
                // uninitialised memory directly, and the seek is cheaper
                // than zero-filling 64 KiB (the file is shared with the
                // open-file cache, but every refill seeks first).
                let mut file = &*self.file;
                let read = file
                    .seek(SeekFrom::Start(*offset))
                    .and_then(|_| file.take(want as u64).read_to_end(out));
                // A file that shrinks under us cannot fill its Content-Length:
                // the connection is dropped.
                match read {
                    Ok(n) if n == want => {}
                    Ok(_) => {
                        out.truncate(start);
                        return Err(shrank());
                    }
                    Err(e) => {
                        out.truncate(start);
                        return Err(e);
                    }
                }
                *offset += want as u64;
                *remaining -= want as u64;
                if *remaining == 0 {
                    self.segments.pop_front();
                }
            }
        }
        Ok(true)
    }
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent",
    )
}

/// Whether this process may use `sendfile` on a connection.
///
/// `sendfile` takes no `MSG_NOSIGNAL`: writing into a connection its peer has
/// reset raises SIGPIPE, which ends a process that has not ignored it. Rust
/// programs ignore SIGPIPE from start-up (the standard library does so before
/// `main`), so this is true almost everywhere; a host that restored the
/// default action gets the copying path, whose sends pass `MSG_NOSIGNAL`.
/// Read once from `/proc/self/status` (no `/proc`: copy).
fn sendfile_is_safe() -> bool {
    static SAFE: OnceLock<bool> = OnceLock::new();
    *SAFE.get_or_init(|| {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return false;
        };
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .and_then(|mask| u128::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask >> (signal_hook::consts::SIGPIPE - 1) & 1 == 1)
    })
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued has been written.
    All,
    /// The socket is full; wait for writability.
    Blocked,
}

/// Shared frames smaller than this are copied into the queue instead: a copy
/// of a few hundred bytes is cheaper than keeping one more chunk alive.
const SHARE_MIN: usize = 256;
/// Chunks handed to one `writev`.
const MAX_IOVECS: usize = 32;

/// One piece of queued output.
#[derive(Debug)]
enum Chunk {
    /// Bytes this connection owns (what the socket refused earlier).
    Owned(Vec<u8>),
    /// A frame encoded once and shared by every recipient of a fan-out.
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(r) => r,
        }
    }
}

/// A connection's unsent output, and the input it read but could not use
/// yet: nothing at all (one null pointer) while there is neither, which is
/// nearly always; the queue, the file body and the unread bytes only while
/// they hold something.
///
/// The unread input lives here, not in a pointer of its own, because every
/// connection's slot pays for each pointer and few connections ever hold
/// either: one box for both keeps the slot at 88 bytes (issue 18).
#[derive(Debug, Default)]
pub(crate) struct Output {
    backlog: Option<Box<Backlog>>,
}

/// What a connection has not written yet, and what it has not read yet.
#[derive(Debug, Default)]
struct Backlog {
    /// Bytes not yet written, oldest first.
    queue: VecDeque<Chunk>,
    /// How much of the front chunk has been written.
    written: usize,
    /// A large body still to stream after the queue.
    file: Option<FileBody>,
    /// Bytes read but not yet used: an incomplete request or frame.
    unread: Vec<u8>,
}

impl Output {
    /// Where new output must go: after the backlog if there is one, else the shared scratch.
    #[inline]
    pub fn target<'a>(&'a mut self, scratch: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        match self.backlog.as_deref_mut() {
            Some(b) if !b.queue.is_empty() => b.owned_tail(),
            _ => scratch,
        }
    }

    /// The connection's own queue tail, for output made outside its events
    /// (when the shared scratch may belong to another connection).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        self.held().owned_tail()
    }

    /// The backlog, made when there was none.
    fn held(&mut self) -> &mut Backlog {
        self.backlog.get_or_insert_with(Box::default)
    }

    /// Queues a frame shared with other connections, after everything else.
    pub fn push_shared(&mut self, frame: &Rc<[u8]>) {
        let queue = &mut self.held().queue;
        if frame.len() >= SHARE_MIN {
            queue.push_back(Chunk::Shared(Rc::clone(frame)));
            return;
        }
        match queue.back_mut() {
            Some(Chunk::Owned(v)) => v.extend_from_slice(frame),
            _ => queue.push_back(Chunk::Owned(frame.to_vec())),
        }
    }

    /// Queues bytes made elsewhere (frames a proxied leg relayed), after
    /// everything else, without copying them unless they are few.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let queue = &mut self.held().queue;
        if bytes.len() < SHARE_MIN {
            if let Some(Chunk::Owned(v)) = queue.back_mut() {
                v.extend_from_slice(&bytes);
                return;
            }
        }
        queue.push_back(Chunk::Owned(bytes));
    }

    /// Bytes queued in this connection beyond the scratch buffer.
    pub fn backlog(&self) -> usize {
        self.backlog.as_ref().map_or(0, |b| {
            b.queue.iter().map(|c| c.bytes().len()).sum::<usize>() - b.written
        })
    }

    /// True while a file body is streaming (no further response may be queued).
    pub fn streaming(&self) -> bool {
        self.backlog.as_ref().is_some_and(|b| b.file.is_some())
    }

    /// True when bytes wait in the queue (a file body aside): new output
    /// must go after them, not into the shared scratch buffer.
    #[inline]
    pub fn has_queue(&self) -> bool {
        self.backlog.as_ref().is_some_and(|b| !b.queue.is_empty())
    }

    /// True when nothing is waiting to be written.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.backlog
            .as_ref()
            .is_none_or(|b| b.queue.is_empty() && b.file.is_none())
    }

    /// True when nothing is waiting to be written and no input is held:
    /// the connection owns no buffer at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.backlog
            .as_ref()
            .is_none_or(|b| b.queue.is_empty() && b.file.is_none() && b.unread.is_empty())
    }

    /// True when no input is held back unprocessed.
    #[inline(always)]
    pub fn unread_is_empty(&self) -> bool {
        self.backlog.as_ref().is_none_or(|b| b.unread.is_empty())
    }

    /// Holds `bytes` after the unread input.
    pub fn keep_unread(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.held().unread.extend_from_slice(bytes);
        }
    }

    /// The unread input, leaving none.
    pub fn take_unread(&mut self) -> Vec<u8> {
        self.backlog
            .as_deref_mut()
            .map(|b| std::mem::take(&mut b.unread))
            .unwrap_or_default()
    }

    /// Holds `bytes` as the unread input (given back after
    /// [`Output::take_unread`]); the box goes when nothing is left in it.
    pub fn put_unread(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            self.clear_unread();
        } else {
            self.held().unread = bytes;
        }
    }

    /// Drops the unread input.
    pub fn clear_unread(&mut self) {
        if let Some(b) = self.backlog.as_deref_mut() {
            b.unread = Vec::new();
            if b.queue.is_empty() && b.file.is_none() {
                self.backlog = None;
            }
        }
    }

    /// Queues a file body after everything else.
    pub fn set_file(&mut self, body: FileBody) {
        self.held().file = Some(body);
    }

    /// [`Output::flush_noting`] without the progress (the tests' way in).
    #[cfg(test)]
    pub fn flush<W: Wire>(&mut self, sock: &mut W, scratch: &mut Vec<u8>) -> io::Result<Flushed> {
        self.flush_noting(sock, scratch, &mut false)
    }

    /// Writes the queue, then `scratch`, then the file body, until done or
    /// the socket is full. Whatever stays unwritten moves into the queue (a
    /// file body stays where it is); `scratch` is left empty. `progressed`
    /// is set when any byte was written (the connection's stall timeout is
    /// counted from the last progress).
    /// Kept out of `Output` itself: every connection would pay for the flag.
    pub fn flush_noting<W: Wire>(
        &mut self,
        sock: &mut W,
        scratch: &mut Vec<u8>,
        progressed: &mut bool,
    ) -> io::Result<Flushed> {
        *progressed = false;
        // No backlog: an empty one on the stack, boxed only if something stays.
        let mut none = Backlog::default();
        let backlog = self.backlog.as_deref_mut().unwrap_or(&mut none);
        let mut result = backlog.flush_inner(sock, scratch, progressed);
        // What the transport itself holds (TLS records) is output too.
        if matches!(result, Ok(Flushed::All)) && !sock.drain()? {
            result = Ok(Flushed::Blocked);
        }
        if !scratch.is_empty() {
            // Only on error or a full socket: keep the rest for the next writable event.
            backlog.queue.push_back(Chunk::Owned(scratch.clone()));
            scratch.clear();
        }
        if backlog.queue.is_empty() && backlog.file.is_none() && backlog.unread.is_empty() {
            // Give the memory back: an idle connection owns no buffer.
            self.backlog = None;
        } else if self.backlog.is_none() {
            self.backlog = Some(Box::new(none));
        }
        result
    }
}

impl Backlog {
    /// The queue's last chunk as owned bytes to append to (pushed if needed).
    fn owned_tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.queue.back(), Some(Chunk::Owned(_))) {
            self.queue.push_back(Chunk::Owned(Vec::new()));
        }
        match self.queue.back_mut() {
            Some(Chunk::Owned(v)) => v,
            _ => unreachable!("an owned chunk was just pushed"),
        }
    }

    fn flush_inner<W: Wire>(
        &mut self,
        sock: &mut W,
        scratch: &mut Vec<u8>,
        progressed: &mut bool,
    ) -> io::Result<Flushed> {
        // New output was appended to the queue when it was not empty, so scratch is empty here.
        if self.write_queue(sock, progressed)? == Flushed::Blocked {
            return Ok(Flushed::Blocked);
        }
        loop {
            if !scratch.is_empty() {
                let mut done = 0;
                // A head whose body follows with `sendfile`.
                let more = self.file.as_ref().is_some_and(|f| !f.copy);
                let state = write_all_nb(sock, scratch, &mut done, progressed, more);
                scratch.drain(..done);
                if state? == Flushed::Blocked {
                    return Ok(Flushed::Blocked);
                }
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(Flushed::All);
            };
            let more = if file.copy {
                file.refill(scratch)?
            } else {
                match file.send(sock, progressed)? {
                    Sent::Done => false,
                    Sent::Blocked => return Ok(Flushed::Blocked),
                    Sent::Copy => true,
                }
            };
            if !more {
                self.file = None;
                return Ok(Flushed::All);
            }
        }
    }

    /// Writes queued chunks with vectored writes until the queue is empty or the socket is full.
    fn write_queue<W: Wire>(&mut self, sock: &mut W, progressed: &mut bool) -> io::Result<Flushed> {
        loop {
            // A chunk with nothing left to write (an owned tail that was
            // asked for and not filled) is dropped: writing only empty
            // slices would return 0, which means the peer is gone.
            while self
                .queue
                .front()
                .is_some_and(|c| c.bytes().len() == self.written)
            {
                self.queue.pop_front();
                self.written = 0;
            }
            if self.queue.is_empty() {
                break;
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.queue.iter().take(MAX_IOVECS).enumerate() {
                let bytes = chunk.bytes();
                slices[i] = IoSlice::new(if i == 0 {
                    &bytes[self.written..]
                } else {
                    bytes
                });
                count += 1;
            }
            match sock.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *progressed = true;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while let Some(front) = self.queue.front() {
            let left = front.bytes().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.queue.pop_front();
        }
    }
}

/// Writes `buf[*done..]` until finished or WouldBlock.
///
/// `more` says that more output follows at once (a response head before its
/// file): the bytes go with `MSG_MORE`, so the kernel holds them for the
/// next write instead of sending a small packet of their own. On loopback
/// that halved the reader's CPU per 1 MiB response; the last write of a
/// response must go without it, or its tail would wait for the cork timer.
#[inline]
pub(crate) fn write_all_nb<W: Wire>(
    sock: &mut W,
    buf: &[u8],
    done: &mut usize,
    progressed: &mut bool,
    more: bool,
) -> io::Result<Flushed> {
    while *done < buf.len() {
        let written = if more {
            sock.write_more(&buf[*done..])
        } else {
            sock.write(&buf[*done..])
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *done += n;
                *progressed = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flushed::All)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A real loopback connection: `sock` is the server's end (non-blocking,
    /// a small send buffer), `peer` the client's (blocking, a small receive
    /// buffer), so a large body fills the connection and has to wait.
    fn connection() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // Accepted sockets inherit the listener's receive buffer.
        rustix::net::sockopt::set_socket_recv_buffer_size(&listener, 16 * 1024).unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&sock, 16 * 1024).unwrap();
        sock.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (sock, peer)
    }

    /// Reads exactly `n` bytes from the peer.
    fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        peer.read_exact(&mut got).unwrap();
        got
    }

    /// A socket that accepts `room` bytes (at most 7 per write), then blocks,
    /// whatever the real connection behind it could take.
    struct Throttled {
        room: usize,
        sock: TcpStream,
    }

    /// The plain socket, as a transport would write to it.
    impl Wire for TcpStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            crate::transport::sys::send(&*self, buf, false)
        }
        fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
            crate::transport::sys::send(&*self, buf, true)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            crate::transport::sys::send_vectored(&*self, bufs)
        }
        fn sendfile(&mut self, f: &File, at: &mut u64, n: usize) -> rustix::io::Result<usize> {
            crate::transport::sys::sendfile(&*self, f, at, n)
        }
    }

    impl Wire for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(7);
            let n = Wire::write(&mut self.sock, &buf[..n])?;
            self.room -= n;
            Ok(n)
        }
        /// One slice at a time, as `std::io::Write` does by default.
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            self.write(first)
        }
        /// Not throttled: only the writes of queued bytes are.
        fn sendfile(&mut self, f: &File, at: &mut u64, n: usize) -> rustix::io::Result<usize> {
            self.sock.sendfile(f, at, n)
        }
    }

    /// An output that flushed `first` into a socket taking `room` bytes,
    /// and was blocked: the rest of `first` is queued, the scratch is empty.
    fn blocked(room: usize, first: &[u8]) -> (Output, Throttled, TcpStream, Vec<u8>) {
        let (sock, peer) = connection();
        let mut sock = Throttled { room, sock };
        let mut out = Output::default();
        let mut scratch = first.to_vec();
        assert_eq!(
            out.flush(&mut sock, &mut scratch).unwrap(),
            Flushed::Blocked
        );
        assert!(scratch.is_empty());
        (out, sock, peer, scratch)
    }

    #[test]
    fn a_tail_asked_for_and_left_empty_is_not_a_write_of_nothing() {
        let (mut sock, _peer) = connection();
        let mut out = Output::default();
        let mut scratch = Vec::new();
        out.tail();
        assert!(!out.is_idle());
        // Writing only empty slices returns 0, which reads as a peer gone.
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert!(out.is_idle());
        out.tail().extend_from_slice(b"x");
        out.tail();
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert!(out.is_idle());
    }

    #[test]
    fn unread_input_shares_the_box_and_outlives_a_flush() {
        let (mut sock, mut peer) = connection();
        let mut out = Output::default();
        let mut scratch = Vec::new();
        out.keep_unread(b"GET / HT");
        assert!(out.is_idle(), "held input is nothing to write");
        assert!(!out.is_empty() && !out.unread_is_empty());
        // Output written in full frees nothing the unread input needs.
        scratch.extend_from_slice(b"pong");
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert_eq!(read_exactly(&mut peer, 4), b"pong");
        let mut held = out.take_unread();
        assert_eq!(held, b"GET / HT");
        held.extend_from_slice(b"TP/1.1");
        out.put_unread(held);
        assert_eq!(out.take_unread(), b"GET / HTTP/1.1");
        // Given back empty, the box goes: an idle connection owns no buffer.
        out.put_unread(Vec::new());
        assert!(out.is_empty() && out.backlog.is_none());
        out.keep_unread(b"x");
        out.tail().extend_from_slice(b"queued");
        out.clear_unread();
        assert!(out.unread_is_empty() && out.has_queue(), "the queue stays");
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert!(out.backlog.is_none());
    }

    #[test]
    fn unwritten_scratch_moves_to_pending_and_order_is_kept() {
        let (mut out, mut sock, mut peer, mut scratch) = blocked(10, b"0123456789abcdef");
        assert_eq!(out.backlog(), 6);
        // New output now goes behind the backlog.
        out.target(&mut scratch).extend_from_slice(b"XYZ");
        assert!(scratch.is_empty());
        sock.room = 100;
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert_eq!(read_exactly(&mut peer, 19), b"0123456789abcdefXYZ");
        assert!(out.is_idle());
        assert!(out.backlog.is_none(), "the backlog is freed when empty");
    }

    #[test]
    fn shared_frames_keep_their_place_in_line_and_are_not_copied() {
        let (mut out, mut sock, mut peer, mut scratch) = blocked(3, b"first;");
        let big: Rc<[u8]> = vec![b'B'; SHARE_MIN].into();
        let small: Rc<[u8]> = b"small;".to_vec().into();
        out.push_shared(&big);
        out.push_shared(&small);
        assert_eq!(
            Rc::strong_count(&big),
            2,
            "a large frame is shared, not copied"
        );
        assert_eq!(Rc::strong_count(&small), 1, "a small one is copied");
        out.target(&mut scratch).extend_from_slice(b"last");
        assert!(scratch.is_empty());
        assert_eq!(out.backlog(), 3 + SHARE_MIN + 6 + 4);
        sock.room = usize::MAX;
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        let mut want = b"first;".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"small;last");
        assert_eq!(read_exactly(&mut peer, want.len()), want);
        assert_eq!(Rc::strong_count(&big), 1, "written frames are released");
        assert!(out.is_idle());
    }

    /// A temporary file of `len` patterned bytes, removed on drop.
    struct TempFile {
        path: std::path::PathBuf,
        data: Vec<u8>,
    }

    impl TempFile {
        fn new(tag: &str, len: usize) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("wisp-output-{tag}-{}", std::process::id()));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            TempFile { path, data }
        }

        fn open(&self) -> Rc<File> {
            Rc::new(File::open(&self.path).unwrap())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// A head, then a multipart-like body: bytes, a range, bytes, a range, bytes.
    fn parts() -> VecDeque<Segment> {
        [
            Segment::Bytes(b"<".to_vec()),
            Segment::Range {
                offset: 10,
                remaining: 600_000,
            },
            Segment::Bytes(b"|".to_vec()),
            Segment::Range {
                offset: 5,
                remaining: 3,
            },
            Segment::Bytes(b">".to_vec()),
        ]
        .into_iter()
        .collect()
    }

    fn parts_expected(data: &[u8]) -> Vec<u8> {
        let mut want = b"HEAD<".to_vec();
        want.extend_from_slice(&data[10..600_010]);
        want.push(b'|');
        want.extend_from_slice(&data[5..8]);
        want.push(b'>');
        want
    }

    /// Flushes `body` behind `HEAD` into a connection the peer drains slowly;
    /// returns what the peer read, and checks that the output never held more
    /// than `most` bytes of the file and that the connection did fill up.
    fn stream(body: FileBody, len: usize, most: usize) -> Vec<u8> {
        let (mut sock, mut peer) = connection();
        let mut out = Output::default();
        out.set_file(body);
        let mut scratch = b"HEAD".to_vec();
        let mut got = Vec::new();
        let mut buf = vec![0; 4096];
        let mut blocked = 0;
        while out.flush(&mut sock, &mut scratch).unwrap() == Flushed::Blocked {
            blocked += 1;
            assert!(out.backlog() <= most, "memory stays bounded");
            // The connection is full, so there is something to read.
            let n = peer.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            blocked > 0,
            "the body should not fit the connection at once"
        );
        assert!(out.is_idle());
        got.extend(read_exactly(&mut peer, len - got.len()));
        got
    }

    #[test]
    fn file_body_goes_out_with_sendfile_in_order_behind_the_head() {
        let f = TempFile::new("sendfile", 700_000);
        let mut body = FileBody::new(f.open(), parts());
        body.copy = false;
        // Nothing of the file passes through wisp's memory.
        let got = stream(body, parts_expected(&f.data).len(), 0);
        assert!(got == parts_expected(&f.data), "streamed bytes differ");
    }

    #[test]
    fn file_body_can_be_copied_in_chunks_instead() {
        let f = TempFile::new("copy", 700_000);
        let mut body = FileBody::new(f.open(), parts());
        body.copy = true;
        let got = stream(body, parts_expected(&f.data).len(), FILE_CHUNK);
        assert!(got == parts_expected(&f.data), "streamed bytes differ");
    }

    /// A file cut short after its head went out fails the flush (and so the
    /// connection) instead of sending fewer bytes than promised.
    fn shrinking(copy: bool) {
        let f = TempFile::new(if copy { "shrink-copy" } else { "shrink" }, 300_000);
        let file = f.open();
        let segments = std::iter::once(Segment::Range {
            offset: 0,
            remaining: 300_000,
        })
        .collect();
        let mut body = FileBody::new(Rc::clone(&file), segments);
        body.copy = copy;
        let (mut sock, mut peer) = connection();
        let mut out = Output::default();
        out.set_file(body);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f.path)
            .unwrap()
            .set_len(200_000)
            .unwrap();
        let mut scratch = b"HEAD".to_vec();
        let mut buf = vec![0; 65536];
        let mut got = 0;
        let err = loop {
            match out.flush(&mut sock, &mut scratch) {
                Ok(Flushed::Blocked) => got += peer.read(&mut buf).unwrap(),
                Ok(Flushed::All) => panic!("a short body was reported complete"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(got <= 4 + 200_000);
    }

    #[test]
    fn a_file_that_shrinks_fails_instead_of_sending_short() {
        shrinking(false);
        shrinking(true);
    }
}
