//! Outbound bytes of one connection.
//!
//! Responses are composed in the reactor's shared scratch buffer and written
//! from there; only what the socket does not take is copied into the
//! connection's own `pending` buffer. An idle connection therefore owns no
//! output memory at all, and a busy one at most what the kernel refused.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

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

/// A connection's unsent output.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes the socket refused earlier; empty (and unallocated) most of the time.
    pending: Vec<u8>,
    /// How much of `pending` has been written.
    written: usize,
    /// A large body still to stream after `pending`.
    file: Option<Box<FileBody>>,
    /// True once any byte of the current batch was written (for stall timeouts).
    pub progressed: bool,
}

impl Output {
    /// Where new output must go: after the backlog if there is one, else the shared scratch.
    pub fn target<'a>(&'a mut self, scratch: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        if self.pending.is_empty() {
            scratch
        } else {
            &mut self.pending
        }
    }

    /// Bytes queued in this connection beyond the scratch buffer.
    pub fn backlog(&self) -> usize {
        self.pending.len() - self.written
    }

    /// True while a file body is streaming (no further response may be queued).
    pub fn streaming(&self) -> bool {
        self.file.is_some()
    }

    /// True when nothing is waiting to be written.
    pub fn is_idle(&self) -> bool {
        self.backlog() == 0 && self.file.is_none()
    }

    /// Queues a file body after everything else.
    pub fn set_file(&mut self, body: FileBody) {
        self.file = Some(Box::new(body));
    }

    /// Writes the backlog, then `scratch`, then file chunks, until done or the socket is full.
    /// Whatever stays unwritten moves into `pending`; `scratch` is left empty.
    pub fn flush<W: Write>(&mut self, sock: &mut W, scratch: &mut Vec<u8>) -> io::Result<Flushed> {
        self.progressed = false;
        let result = self.flush_inner(sock, scratch);
        if !scratch.is_empty() {
            // Only on error or a full socket: keep the rest for the next writable event.
            self.pending.extend_from_slice(scratch);
            scratch.clear();
        }
        if self.backlog() == 0 {
            self.release();
        }
        result
    }

    fn flush_inner<W: Write>(
        &mut self,
        sock: &mut W,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Flushed> {
        if self.backlog() > 0 {
            // New output was appended to pending, so scratch is empty here.
            if write_all_nb(sock, &self.pending, &mut self.written, &mut self.progressed)?
                == Flushed::Blocked
            {
                return Ok(Flushed::Blocked);
            }
            self.release();
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

    /// Frees the backlog buffer once it holds nothing.
    fn release(&mut self) {
        self.pending = Vec::new();
        self.written = 0;
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
            out.pending.capacity(),
            0,
            "the backlog buffer is freed when empty"
        );
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
