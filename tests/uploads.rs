//! `PUT` and `DELETE` on a file route that allows them: bodies streamed into
//! a temporary file and renamed into place, limits enforced while streaming,
//! and nothing left behind by a refused, failed or abandoned upload — a full
//! file system included.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Client, TestServer};

const WRITABLE: &str = "limits: { upload: '1MB' }, routes: [
    { match: '/files/', methods: ['GET', 'HEAD', 'PUT', 'DELETE'] },
    { match: '' },
]";

fn server() -> TestServer {
    TestServer::start(
        WRITABLE,
        |d| {
            fs::create_dir_all(d.path.join("files/sub")).unwrap();
            d.write("index.html", "home");
        },
        |_| {},
    )
}

fn put(c: &mut Client, path: &str, body: &[u8]) -> u16 {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    c.send(body);
    c.response().status
}

/// Sends `bytes`, or returns false if the server refused and closed meanwhile.
fn send_until_refused(c: &mut Client, bytes: &[u8]) -> bool {
    use std::io::Write;
    c.stream.write_all(bytes).is_ok()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Polls `done` until it holds, for at most 10 s (the server works on its own thread).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

/// `len` bytes that tell their offsets apart.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn put_creates_201_replaces_204_and_delete_removes_204_then_404() {
    let s = server();
    let mut c = s.client();
    assert_eq!(put(&mut c, "/files/a.txt", b"first"), 201);
    let r = s.get("/files/a.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    // The same keep-alive connection goes on.
    assert_eq!(put(&mut c, "/files/a.txt", b"second, longer"), 204);
    assert_eq!(s.get("/files/a.txt").body, b"second, longer");
    assert_eq!(put(&mut c, "/files/sub/empty.txt", b""), 201);
    assert_eq!(s.get("/files/sub/empty.txt").body, b"");
    c.send(b"DELETE /files/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 204);
    assert_eq!(s.get("/files/a.txt").status, 404);
    c.send(b"DELETE /files/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 404);
    assert_eq!(names(&s.docs.path.join("files")), ["sub"]);
}

#[test]
fn a_chunked_put_streams_in_pieces_and_expect_100_continue_is_answered_first() {
    let s = server();
    let mut c = s.client();
    c.send(b"PUT /files/big.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_head();
    assert_eq!(interim.resp.status, 100);
    let body = pattern(900 * 1024);
    for piece in body.chunks(7 * 1024 + 3) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send(piece);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    assert_eq!(c.response().status, 201);
    assert!(fs::read(s.docs.path.join("files/big.bin")).unwrap() == body);
    assert_eq!(names(&s.docs.path.join("files")), ["big.bin", "sub"]);
}

#[test]
fn put_over_limits_upload_is_413_and_stores_nothing() {
    let s = server();
    // Declared too large: refused before the body, and the connection closes.
    let mut c = s.client();
    c.send(b"PUT /files/x.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert!(c.is_closed());
    // Chunked past the limit: refused while streaming, the partial file removed.
    let mut c = s.client();
    c.send(b"PUT /files/x.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let piece = pattern(64 * 1024);
    for _ in 0..20 {
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
        if !send_until_refused(&mut c, &chunk) {
            break;
        }
    }
    let status = c.response().status;
    assert_eq!(status, 413);
    assert_eq!(names(&s.docs.path.join("files")), ["sub"]);
    assert_eq!(s.handle.stats().unwrap().limits.body, 2);
}

#[test]
fn refusals_directory_missing_folder_hidden_name_and_unlisted_method() {
    let s = server();
    let mut c = s.client();
    assert_eq!(put(&mut c, "/files/sub", b"x"), 409, "a directory");
    let mut c = s.client();
    assert_eq!(put(&mut c, "/files/sub/", b"x"), 409, "a directory's path");
    let mut c = s.client();
    assert_eq!(
        put(&mut c, "/files/nope/a.txt", b"x"),
        404,
        "no such folder"
    );
    let mut c = s.client();
    assert_eq!(
        put(&mut c, "/files/.env", b"x"),
        404,
        "dot names are never stored"
    );
    let mut c = s.client();
    // `..` is resolved before routing: this is `/escape.txt`, on the read-only route.
    assert_eq!(put(&mut c, "/files/%2e%2e/escape.txt", b"x"), 405);
    let mut c = s.client();
    assert_eq!(
        put(&mut c, "/index.html", b"x"),
        405,
        "the catch-all route is read-only"
    );
    // A refusal after the whole body was read keeps the connection.
    assert_eq!(put(&mut c, "/index.html", b"x"), 405);
    let mut c = s.client();
    c.send(b"DELETE /files/sub HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 409);
    assert_eq!(s.get("/").body, b"home");
    assert_eq!(names(&s.docs.path.join("files")), ["sub"]);
    assert!(!s.docs.path.join("escape.txt").exists());
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_no_file() {
    let s = server();
    let mut c = s.client();
    c.send(b"PUT /files/gone.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n");
    c.send(&pattern(100_000));
    let files = s.docs.path.join("files");
    eventually("the temporary file appears", || names(&files).len() == 2);
    drop(c);
    eventually("the temporary file is removed", || names(&files) == ["sub"]);
    assert_eq!(s.get("/files/gone.bin").status, 404);
}

/// A 1 MiB tmpfs mounted over a folder; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_answers_507_and_leaves_no_partial_file() {
    let s = server();
    let full = s.docs.path.join("files/full");
    fs::create_dir(&full).unwrap();
    let Some(_mounted) = Tmpfs::mount(&full) else {
        // Visible with --nocapture and in CI's log: the 507 path was not run.
        eprintln!("SKIP a_full_file_system_answers_507: cannot mount a tmpfs (needs root)");
        return;
    };
    // Fits the limit (1MB) but not the 1 MiB file system with the old file in it.
    let mut c = s.client();
    assert_eq!(
        put(&mut c, "/files/full/old.bin", &pattern(300 * 1024)),
        201
    );
    let mut c = s.client();
    c.send(b"PUT /files/full/old.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    for piece in pattern(1_000_000).chunks(32 * 1024) {
        if !send_until_refused(&mut c, piece) {
            break;
        }
    }
    assert_eq!(c.response().status, 507);
    assert!(c.is_closed(), "the rest of the body was not read");
    // The old file is intact, and no temporary file is left.
    assert_eq!(names(&full), ["old.bin"]);
    assert!(fs::read(full.join("old.bin")).unwrap() == pattern(300 * 1024));
    // There is room again for what fits.
    let mut c = s.client();
    assert_eq!(put(&mut c, "/files/full/small.txt", b"fits"), 201);
    assert_eq!(s.get("/files/full/small.txt").body, b"fits");
}
