//! Outbound bytes of one connection.
//!
//! Responses are composed in the reactor's shared scratch buffer and written
//! from there; only what the socket does not take is copied into the
//! connection's own `pending` buffer. An idle connection therefore owns no
//! output memory at all, and a busy one at most what the kernel refused.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

/// Bytes read from a file per refill while streaming a large body.
pub(crate) const FILE_CHUNK: usize = 64 * 1024;

/// One piece of a streamed body.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes held in memory (multipart part heads).
    Bytes(Vec<u8>),
    /// A stretch of the file.
    Range { offset: u64, remaining: u64 },
}

/// A large body that is read from its file a chunk at a time as the socket drains.
#[derive(Debug)]
pub(crate) struct FileBody {
    file: File,
    segments: VecDeque<Segment>,
}

impl FileBody {
    pub fn new(file: File, segments: VecDeque<Segment>) -> FileBody {
        FileBody { file, segments }
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
                out.resize(start + want, 0);
                // A file that shrinks under us cannot fill its Content-Length:
                // read_exact_at fails and the connection is dropped.
                self.file.read_exact_at(&mut out[start..], *offset)?;
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

/// A connection's unsent output.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes not yet written, oldest first; empty (and unallocated) most of the time.
    queue: VecDeque<Chunk>,
    /// How much of the front chunk has been written.
    written: usize,
    /// A large body still to stream after the queue.
    file: Option<Box<FileBody>>,
    /// True once any byte of the current batch was written (for stall timeouts).
    pub progressed: bool,
}

impl Output {
    /// Where new output must go: after the backlog if there is one, else the shared scratch.
    #[inline]
    pub fn target<'a>(&'a mut self, scratch: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        if self.queue.is_empty() {
            return scratch;
        }
        if !matches!(self.queue.back(), Some(Chunk::Owned(_))) {
            self.queue.push_back(Chunk::Owned(Vec::new()));
        }
        match self.queue.back_mut() {
            Some(Chunk::Owned(v)) => v,
            // Just ensured; scratch keeps the order anyway only when the queue is empty.
            _ => scratch,
        }
    }

    /// The connection's own queue tail, for output made outside its events
    /// (when the shared scratch may belong to another connection).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.queue.back(), Some(Chunk::Owned(_))) {
            self.queue.push_back(Chunk::Owned(Vec::new()));
        }
        match self.queue.back_mut() {
            Some(Chunk::Owned(v)) => v,
            _ => unreachable!("an owned chunk was just pushed"),
        }
    }

    /// Queues a frame shared with other connections, after everything else.
    pub fn push_shared(&mut self, frame: &Rc<[u8]>) {
        if frame.len() >= SHARE_MIN {
            self.queue.push_back(Chunk::Shared(Rc::clone(frame)));
            return;
        }
        match self.queue.back_mut() {
            Some(Chunk::Owned(v)) => v.extend_from_slice(frame),
            _ => self.queue.push_back(Chunk::Owned(frame.to_vec())),
        }
    }

    /// Bytes queued in this connection beyond the scratch buffer.
    pub fn backlog(&self) -> usize {
        self.queue.iter().map(|c| c.bytes().len()).sum::<usize>() - self.written
    }

    /// True while a file body is streaming (no further response may be queued).
    pub fn streaming(&self) -> bool {
        self.file.is_some()
    }

    /// True when nothing is waiting to be written.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.file.is_none()
    }

    /// Queues a file body after everything else.
    pub fn set_file(&mut self, body: FileBody) {
        self.file = Some(Box::new(body));
    }

    /// Writes the queue, then `scratch`, then file chunks, until done or the socket is full.
    /// Whatever stays unwritten moves into the queue; `scratch` is left empty.
    pub fn flush<W: Write>(&mut self, sock: &mut W, scratch: &mut Vec<u8>) -> io::Result<Flushed> {
        self.progressed = false;
        let result = self.flush_inner(sock, scratch);
        if !scratch.is_empty() {
            // Only on error or a full socket: keep the rest for the next writable event.
            self.queue.push_back(Chunk::Owned(scratch.clone()));
            scratch.clear();
        }
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            // Give the deque's memory back: an idle connection owns no buffer.
            self.queue = VecDeque::new();
        }
        result
    }

    fn flush_inner<W: Write>(
        &mut self,
        sock: &mut W,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Flushed> {
        // New output was appended to the queue when it was not empty, so scratch is empty here.
        if self.write_queue(sock)? == Flushed::Blocked {
            return Ok(Flushed::Blocked);
        }
        loop {
            if !scratch.is_empty() {
                let mut done = 0;
                let state = write_all_nb(sock, scratch, &mut done, &mut self.progressed);
                scratch.drain(..done);
                if state? == Flushed::Blocked {
                    return Ok(Flushed::Blocked);
                }
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(Flushed::All);
            };
            if !file.refill(scratch)? {
                self.file = None;
                return Ok(Flushed::All);
            }
        }
    }

    /// Writes queued chunks with vectored writes until the queue is empty or the socket is full.
    fn write_queue<W: Write>(&mut self, sock: &mut W) -> io::Result<Flushed> {
        while !self.queue.is_empty() {
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
                    self.progressed = true;
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
fn write_all_nb<W: Write>(
    sock: &mut W,
    buf: &[u8],
    done: &mut usize,
    progressed: &mut bool,
) -> io::Result<Flushed> {
    while *done < buf.len() {
        match sock.write(&buf[*done..]) {
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

    /// A socket that accepts `room` bytes, then blocks.
    struct Throttled {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(7);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unwritten_scratch_moves_to_pending_and_order_is_kept() {
        let mut out = Output::default();
        let mut sock = Throttled {
            room: 10,
            got: Vec::new(),
        };
        let mut scratch = b"0123456789abcdef".to_vec();
        assert_eq!(
            out.flush(&mut sock, &mut scratch).unwrap(),
            Flushed::Blocked
        );
        assert!(scratch.is_empty());
        assert_eq!(out.backlog(), 6);
        // New output now goes behind the backlog.
        out.target(&mut scratch).extend_from_slice(b"XYZ");
        assert!(scratch.is_empty());
        sock.room = 100;
        assert_eq!(out.flush(&mut sock, &mut scratch).unwrap(), Flushed::All);
        assert_eq!(sock.got, b"0123456789abcdefXYZ");
        assert!(out.is_idle());
        assert_eq!(
            out.queue.capacity(),
            0,
            "the backlog buffer is freed when empty"
        );
    }

    #[test]
    fn shared_frames_keep_their_place_in_line_and_are_not_copied() {
        let mut out = Output::default();
        let mut sock = Throttled {
            room: 3,
            got: Vec::new(),
        };
        let mut scratch = b"first;".to_vec();
        assert_eq!(
            out.flush(&mut sock, &mut scratch).unwrap(),
            Flushed::Blocked
        );
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
        assert_eq!(sock.got, want);
        assert_eq!(Rc::strong_count(&big), 1, "written frames are released");
        assert!(out.is_idle());
    }

    #[test]
    fn file_body_streams_in_chunks_behind_the_head() {
        let path = std::env::temp_dir().join(format!("wisp-output-{}", std::process::id()));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let segments = [
            Segment::Bytes(b"<".to_vec()),
            Segment::Range {
                offset: 10,
                remaining: 150_000,
            },
            Segment::Bytes(b">".to_vec()),
        ]
        .into_iter()
        .collect();
        let mut out = Output::default();
        out.set_file(FileBody::new(file, segments));
        let mut scratch = b"HEAD".to_vec();
        let mut sock = Throttled {
            room: 1000,
            got: Vec::new(),
        };
        while out.flush(&mut sock, &mut scratch).unwrap() == Flushed::Blocked {
            assert!(out.backlog() <= FILE_CHUNK, "memory stays bounded");
            sock.room = 50_000;
        }
        let mut want = b"HEAD<".to_vec();
        want.extend_from_slice(&data[10..150_010]);
        want.push(b'>');
        assert_eq!(sock.got, want);
        std::fs::remove_file(path).unwrap();
    }
}
