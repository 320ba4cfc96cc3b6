//! Shared helpers: a real server on 127.0.0.1:0 in a thread, a raw-bytes HTTP client,
//! and throw-away document folders.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
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
    pub docs: TempDir,
    handle: ServerHandle,
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
        let docs = TempDir::new("docs");
        fill(&docs);
        let text = format!(
            "{{ web: {{ listen: ['http://127.0.0.1:0'], documents: '{}', {web_body} }} }}",
            docs.path.display()
        );
        let config = Config::parse(&text, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = Server::bind(config).unwrap_or_else(|e| panic!("{e}"));
            setup(&mut server);
            tx.send((server.local_addrs()[0], server.handle())).unwrap();
            server.run().unwrap();
        });
        let (addr, handle) = rx.recv().expect("server thread started");
        TestServer {
            addr,
            docs,
            handle,
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

/// A raw HTTP client that keeps unread bytes between responses (for pipelining).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads more bytes; false at end of stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    true
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
                // A signal to the test process (a child exiting) is not the server's doing.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read failed: {e}"),
            };
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
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill(),
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("head is UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header has a colon");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        self.buf.drain(..head_end);
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("numeric Content-Length"));
        let no_body = head_only || status == 304 || status == 204 || (100..200).contains(&status);
        let body = match (no_body, length) {
            (true, _) => Vec::new(),
            (false, Some(n)) => {
                while self.buf.len() < n {
                    assert!(self.fill(), "connection closed inside a body");
                }
                self.buf.drain(..n).collect()
            }
            (false, None) => {
                while self.fill() {}
                std::mem::take(&mut self.buf)
            }
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// True when the server closes the connection (EOF or reset) with nothing more to say.
    pub fn is_closed(&mut self) -> bool {
        !self.fill() && self.buf.is_empty()
    }

    /// Reads everything until the server closes.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
pub mod binary;
pub mod ws;
