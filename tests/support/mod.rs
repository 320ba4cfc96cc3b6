//! Shared helpers: a real server on 127.0.0.1:0 in a thread, a raw-bytes HTTP client,
//! and throw-away document folders.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use wisp::{Config, Server, ServerHandle};

/// A safety net so a broken server fails a test instead of hanging it; never a synchronisation.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A folder under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wisp-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// The folder's own name (its last path component).
    pub fn name(&self) -> String {
        let name = self.path.file_name().expect("a temp folder has a name");
        name.to_str()
            .expect("temp folder names are UTF-8")
            .to_string()
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(relative);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server running on its own thread; stopped and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The first `https://` listener, when there is one.
    pub tls_addr: Option<SocketAddr>,
    pub docs: TempDir,
    pub handle: ServerHandle,
    /// What `Server::run` returned, once it has.
    pub done: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server whose config is `web_body` (the inside of `web: { ... }`),
    /// with `documents` set to a fresh temp folder filled by `fill`, and handlers
    /// registered by `setup` on the server thread.
    pub fn start(
        web_body: &str,
        fill: impl FnOnce(&TempDir),
        setup: impl FnOnce(&mut Server) + Send + 'static,
    ) -> TestServer {
        TestServer::start_on("'http://127.0.0.1:0'", web_body, fill, setup)
    }

    /// [`TestServer::start`] with `listen` set to `listen` (the inside of
    /// the list, such as `'http://127.0.0.1:0', 'https://127.0.0.1:0'`).
    /// `addr` is the first plain listener (or the first of all, without one).
    pub fn start_on(
        listen: &str,
        web_body: &str,
        fill: impl FnOnce(&TempDir),
        setup: impl FnOnce(&mut Server) + Send + 'static,
    ) -> TestServer {
        let docs = TempDir::new("docs");
        fill(&docs);
        let text = format!(
            "{{ web: {{ listen: [{listen}], documents: '{}', {web_body} }} }}",
            docs.path.display()
        );
        let config = Config::parse(&text, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = Server::bind(config).unwrap_or_else(|e| panic!("{e}"));
            setup(&mut server);
            let tls = server.tls_addrs().first().copied();
            tx.send((server.local_addrs()[0], tls, server.handle()))
                .unwrap();
            let _ = done_tx.send(server.run());
        });
        let (addr, tls_addr, handle) = rx.recv().expect("server thread started");
        TestServer {
            addr,
            tls_addr,
            docs,
            handle,
            done,
            thread: Some(thread),
        }
    }

    /// A plain static server over the given files.
    pub fn files(fill: impl FnOnce(&TempDir)) -> TestServer {
        TestServer::start("", fill, |_| {})
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Resp {
        let mut c = self.client();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        c.response()
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        let mut c = self.client();
        c.send(bytes);
        c.response()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if !std::thread::panicking() {
                result.expect("server thread panicked");
                if let Ok(Err(e)) = self.done.try_recv() {
                    panic!("Server::run failed: {e}");
                }
            }
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One `read`, retried while a signal interrupts it: a signal to the test
/// process (a child exiting) is not the server's doing.
pub fn read_retrying(mut stream: impl Read, chunk: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(chunk) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A response head as the server sent it.
#[derive(Debug)]
pub struct Head {
    pub status_line: String,
    /// Its length in bytes, the blank line included.
    pub len: usize,
    /// The status and header fields, with no body.
    pub resp: Resp,
}

/// Parses the response head at the start of `bytes`: `Ok(None)` while it is
/// incomplete, an error for one that is not a status line and header fields.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return Ok(None);
    };
    let len = end + 4;
    let text = std::str::from_utf8(&bytes[..len]).map_err(|e| format!("head is not UTF-8: {e}"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((n, v)) => Ok((n.to_string(), v.trim().to_string())),
            None => Err(format!("header without a colon: {l:?}")),
        })
        .collect::<Result<_, _>>()?;
    let resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    Ok(Some(Head {
        status_line,
        len,
        resp,
    }))
}

/// A raw HTTP client that keeps unread bytes between responses (for
/// pipelining). [`ws::Ws`] is one of these after the opening handshake.
///
/// The stream is a plain `TcpStream` unless said otherwise; any `Read +
/// Write` stream will do (`tls::TlsStream` for https and wss), made into a
/// client by [`Client::over`].
pub struct Client<S = TcpStream> {
    pub stream: S,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Connects, or says why not (a stopped server refuses).
    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        Ok(Client::over(tcp_connect(addr)?))
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Waits until the server has sent something, without reading it: closing
    /// the socket then makes the kernel send a reset instead of a FIN.
    pub fn await_unread(&self) {
        let mut one = [0u8; 1];
        let n = loop {
            match self.stream.peek(&mut one) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other.expect("the server sent something"),
            }
        };
        assert_eq!(n, 1, "the server closed instead of answering");
    }
}

/// A TCP connection with [`IO_TIMEOUT`] on its reads and writes.
pub fn tcp_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

impl<S: Read + Write> Client<S> {
    /// A client on a connected stream (nothing read from it yet).
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Reads more bytes into the buffer; false at end of stream (EOF or
    /// reset; over TLS also a TCP end without `close_notify`).
    pub fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match read_retrying(&mut self.stream, &mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
            {
                false
            }
            Err(e) => panic!(
                "read failed: {e}; unparsed {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The bytes read and not yet taken.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads until `n` bytes are buffered.
    fn need(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(
                self.read_more(),
                "connection closed with {} of {n} bytes: {:?}",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads exactly `n` bytes, whatever they are.
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        self.need(n);
        self.buf.drain(..n).collect()
    }

    /// Reads one response head (and no body).
    pub fn read_head(&mut self) -> Head {
        loop {
            match parse_head(&self.buf) {
                Ok(Some(head)) => {
                    self.buf.drain(..head.len);
                    return head;
                }
                Ok(None) => assert!(
                    self.read_more(),
                    "connection closed before a response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Err(e) => panic!("{e}; got {:?}", String::from_utf8_lossy(&self.buf)),
            }
        }
    }

    /// Reads one response to a GET-like request.
    pub fn response(&mut self) -> Resp {
        self.read_response(false)
    }

    /// Reads one response to a HEAD request (no body whatever Content-Length says).
    pub fn head_response(&mut self) -> Resp {
        self.read_response(true)
    }

    fn read_response(&mut self, head_only: bool) -> Resp {
        let mut resp = self.read_head().resp;
        let status = resp.status;
        let length = resp
            .header("content-length")
            .map(|v| v.parse::<usize>().expect("numeric Content-Length"));
        let no_body = head_only || status == 304 || status == 204 || (100..200).contains(&status);
        resp.body = match (no_body, length) {
            (true, _) => Vec::new(),
            (false, Some(n)) => {
                while self.buf.len() < n {
                    assert!(self.read_more(), "connection closed inside a body");
                }
                self.buf.drain(..n).collect()
            }
            (false, None) => self.read_to_close(),
        };
        resp
    }

    /// Reads the last response of the connection: it must have `status` and
    /// `Connection: close`, and the server must then close. `what` (the
    /// request, say) goes into the message of a wrong status.
    pub fn last_response(&mut self, status: u16, what: &str) -> Resp {
        let r = self.response();
        assert_eq!(r.status, status, "{what} -> {}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
        assert!(
            self.is_closed(),
            "the connection stayed open after {status}"
        );
        r
    }

    /// True when the server closes the connection (EOF or reset) with nothing more to say.
    pub fn is_closed(&mut self) -> bool {
        !self.read_more() && self.buf.is_empty()
    }

    /// Reads everything until the server closes.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.read_more() {}
        std::mem::take(&mut self.buf)
    }
}

// ---------------------------------------------------------------------------
// Whatever a hostile connection got back

/// What a connection got back before the server closed it.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    /// Nothing more came for the time allowed and the connection stayed open.
    pub hung: bool,
}

/// One parsed response of a reply.
#[derive(Debug)]
pub struct Parsed {
    pub status: u16,
    pub close: bool,
    pub body: Vec<u8>,
}

impl Reply {
    /// The responses in the reply, in order; an error for anything that is not
    /// a sequence of complete HTTP/1.1 responses.
    pub fn responses(&self) -> Result<Vec<Parsed>, String> {
        let mut rest = &self.bytes[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let head = parse_head(rest)?
                .ok_or_else(|| format!("incomplete response head {:?}", show(rest)))?;
            if !head.status_line.starts_with("HTTP/1.1 ") {
                return Err(format!("bad status line {:?}", head.status_line));
            }
            let r = &head.resp;
            let length = r.header("content-length").and_then(|v| v.parse().ok());
            let close = r.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")
            });
            rest = &rest[head.len..];
            let n = if (100..200).contains(&r.status) {
                0
            } else {
                length.unwrap_or(rest.len())
            };
            if rest.len() < n {
                return Err(format!(
                    "{} body cut short: {} of {n}",
                    r.status,
                    rest.len()
                ));
            }
            out.push(Parsed {
                status: r.status,
                close,
                body: rest[..n].to_vec(),
            });
            rest = &rest[n..];
        }
        Ok(out)
    }
}

/// At most 60 bytes of `bytes`, escaped, for messages.
pub fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(60)];
    let more = if bytes.len() > 60 {
        format!("… ({} bytes)", bytes.len())
    } else {
        String::new()
    };
    format!("{}{more}", cut.escape_ascii())
}

/// Reads until the peer closes (EOF, reset or any other error) or nothing
/// comes for `timeout`.
pub fn read_until_close(stream: &TcpStream, timeout: Duration) -> Reply {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match read_retrying(stream, &mut chunk) {
            Ok(0) => return Reply { bytes, hung: false },
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Reply { bytes, hung: true }
            }
            // Reset (or aborted) by the server: the connection is over.
            Err(_) => return Reply { bytes, hung: false },
        }
    }
}

/// Sends `input` on a fresh connection (from another thread, so a large input
/// and the answer can cross), half-closes if asked, and reads until the server
/// closes or `timeout` passes with nothing.
pub fn exchange(addr: SocketAddr, input: &[u8], half_close: bool, timeout: Duration) -> Reply {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let writer = stream.try_clone().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // The server may refuse and close before it has read everything.
            let _ = (&writer).write_all(input);
            if half_close {
                let _ = writer.shutdown(Shutdown::Write);
            }
        });
        read_until_close(&stream, timeout)
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
pub mod binary;
pub mod downstream;
#[cfg(feature = "tls")]
pub mod tls;
pub mod ws;

/// How many bytes the kernel holds on the server's side of the connection
/// from `client` (the client socket's local address) that the server has
/// not read yet: the `rx_queue` of that socket in `/proc/net/tcp`. `None`
/// if the socket is not listed (or the address is not IPv4).
///
/// With the server's own counters this shows a paused read without a clock:
/// bytes waiting unread, and a server that takes turns without reading them.
pub fn unread_by_server(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    fn hex(addr: SocketAddr) -> Option<String> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        // The address as the kernel prints it: its u32 in host order, then the port.
        let ip = u32::from_ne_bytes(v4.ip().octets());
        Some(format!("{ip:08X}:{:04X}", v4.port()))
    }
    let (local, remote) = (hex(server)?, hex(client)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (_tx, rx) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}
