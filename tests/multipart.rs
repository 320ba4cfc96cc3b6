//! `multipart/form-data` uploads into `upload.dir` and streamed request
//! bodies, over real sockets: bodies cut at every point, sanitised names,
//! files removed after the handler unless kept, 413 and 400 while streaming
//! with nothing left behind, a vanished client, a 64 MiB streamed body, and
//! real clients (curl, Python aiohttp).

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{TempDir, TestServer};
use wisp::{BodyStream, Response, Server};

const BOUNDARY: &str = "----wispXyZ";

/// A server whose `/up/` action takes uploads into `dir` and answers with
/// what it saw (as JSON); `?keep=NAME` keeps the first file as `dir/../NAME`.
fn upload_server(dir: &Path, limits: &str) -> TestServer {
    let web = format!(
        "upload: {{ dir: '{}' }}, limits: {{ {limits} }}, routes: [
            {{ match: '/up/', handler: 'action' }},
            {{ match: '/stream/', handler: 'action' }},
            {{ match: '' }},
        ]",
        dir.display()
    );
    TestServer::start(&web, |_| {}, setup)
}

fn setup(server: &mut Server) {
    server.action_with_uploads("/up/", |req| {
        let files: Vec<serde_json::Value> = req
            .uploads()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "field": f.field(),
                    "filename": f.filename(),
                    "size": f.size(),
                    "type": f.content_type(),
                    "path": f.path(),
                    "content": String::from_utf8_lossy(&fs::read(f.path()).unwrap_or_default()),
                })
            })
            .collect();
        if let Some(name) = req.query_param("keep") {
            let dest = req.uploads()[0]
                .path()
                .parent()
                .unwrap()
                .join("..")
                .join(name);
            req.keep_upload(0, &dest).unwrap();
        }
        Response::json(&serde_json::json!({
            "files": files,
            "fields": req.form_fields(),
            "note": req.form_field("note"),
        }))
    });
    server.action_streaming("/stream/", |req| {
        if req.query_param("refuse").is_some() {
            return Err(Response::text("no").with_status(403));
        }
        let cap = req.query_param("cap").and_then(|c| c.parse().ok());
        let panics = req.query_param("panic").is_some();
        Ok(Tally {
            cap,
            panics,
            ..Tally::default()
        })
    });
}

/// What a streamed body came to: pieces, the largest, bytes and a checksum.
#[derive(Default)]
struct Tally {
    chunks: u64,
    largest: usize,
    bytes: u64,
    sum: u64,
    /// Refuse the body past this many bytes (422).
    cap: Option<u64>,
    /// Panic in `on_body`.
    panics: bool,
}

impl BodyStream for Tally {
    fn on_body(&mut self, chunk: &[u8]) -> Result<(), Response> {
        assert!(!chunk.is_empty());
        assert!(!self.panics, "a handler's bug");
        if self
            .cap
            .is_some_and(|cap| self.bytes + chunk.len() as u64 > cap)
        {
            return Err(Response::text("enough").with_status(422));
        }
        self.chunks += 1;
        self.largest = self.largest.max(chunk.len());
        self.bytes += chunk.len() as u64;
        self.sum = checksum(self.sum, chunk);
        Ok(())
    }

    fn on_end(&mut self) -> Response {
        Response::json(&serde_json::json!({
            "chunks": self.chunks, "largest": self.largest, "bytes": self.bytes, "sum": self.sum,
        }))
    }
}

/// Fletcher-like: depends on every byte and its order.
fn checksum(mut sum: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        sum = sum.wrapping_mul(31).wrapping_add(u64::from(b) + 1);
    }
    sum
}

/// A part: field, file name (`None` for a plain field), content.
type Part<'a> = (&'a str, Option<&'a [u8]>, &'a [u8]);

/// A multipart body of `parts`.
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .unwrap();
        if let Some(filename) = filename {
            body.extend_from_slice(b"; filename=\"");
            body.extend_from_slice(filename);
            body.extend_from_slice(b"\"\r\nContent-Type: application/octet-stream");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    body
}

fn head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn json(r: &support::Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn names(dir: &Path) -> Vec<String> {
    let Ok(list) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = list
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
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn two_files_and_a_field() -> Vec<u8> {
    form(&[
        ("note", None, b"hello\r\n--not a boundary"),
        ("a", Some(b"a.txt"), b"first file\r\n-"),
        ("b", Some(b"b.bin"), b"\r\n--" as &[u8]),
    ])
}

fn check_two_files(v: &serde_json::Value, dir: &Path) {
    assert_eq!(v["note"], "hello\r\n--not a boundary");
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{v}");
    assert_eq!(files[0]["field"], "a");
    assert_eq!(files[0]["filename"], "a.txt");
    assert_eq!(files[0]["content"], "first file\r\n-");
    assert_eq!(files[0]["size"], 13);
    assert_eq!(files[0]["type"], "application/octet-stream");
    assert_eq!(files[1]["content"], "\r\n--");
    for f in files {
        let path = PathBuf::from(f["path"].as_str().unwrap());
        assert_eq!(path.parent(), Some(dir), "stored in upload.dir");
    }
}

#[test]
fn two_files_and_a_field_cut_at_every_point_are_stored_then_removed() {
    let up = TempDir::new("mp-split");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let body = two_files_and_a_field();
    let head = head("/up/", body.len());
    let mut c = s.client();
    c.stream.set_nodelay(true).unwrap();
    for cut in 0..=body.len() {
        c.send(head.as_bytes());
        c.send(&body[..cut]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&body[cut..]);
        let r = c.response();
        assert_eq!(r.status, 200, "cut at {cut}: {}", r.text());
        check_two_files(&json(&r), &dir);
        assert!(names(&dir).is_empty(), "cut at {cut}: files left");
    }
    // Byte by byte, on the same keep-alive connection.
    c.send(head.as_bytes());
    for b in &body {
        c.send(std::slice::from_ref(b));
    }
    let r = c.response();
    assert_eq!(r.status, 200);
    check_two_files(&json(&r), &dir);
    assert!(names(&dir).is_empty());
}

#[test]
fn expect_100_continue_is_answered_once_the_upload_is_accepted() {
    let up = TempDir::new("mp-expect");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "upload: '1K'");
    let body = two_files_and_a_field();
    let expect = |path: &str, length: usize| {
        head(path, length).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n")
    };
    let mut c = s.client();
    c.send(expect("/up/", body.len()).as_bytes());
    assert_eq!(c.response().status, 100);
    c.send(&body);
    let r = c.response();
    assert_eq!(r.status, 200, "{}", r.text());
    check_two_files(&json(&r), &dir);
    // Too large: 413 and no 100 Continue.
    let mut c = s.client();
    c.send(expect("/up/", 5000).as_bytes());
    c.last_response(413, "an upload over limits.upload with Expect");
    // HTTP/1.0 with keep-alive is told so, and the connection goes on.
    let mut c = s.client();
    let old =
        head("/up/", body.len()).replace("HTTP/1.1\r\n", "HTTP/1.0\r\nConnection: keep-alive\r\n");
    for _ in 0..2 {
        c.send(old.as_bytes());
        c.send(&body);
        let r = c.response();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    assert!(names(&dir).is_empty());
}

#[test]
fn stored_names_are_made_up_and_client_names_sanitised() {
    let up = TempDir::new("mp-names");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let body = form(&[
        ("p", Some(b"../../etc/passwd"), b"1"),
        ("n", Some(b"a\0b\rc\x01.txt"), b"2"),
        ("e", Some(b""), b"3"),
        ("w", Some(b"..\\\\..\\\\win.ini"), b"4"),
        ("d", Some(b".."), b"5"),
    ]);
    let r = s.raw(&[head("/up/", body.len()).as_bytes(), &body].concat());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let got: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["passwd", "abc.txt", "", "win.ini", ""]);
    for f in v["files"].as_array().unwrap() {
        let path = Path::new(f["path"].as_str().unwrap());
        assert_eq!(path.parent(), Some(dir.as_path()));
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("upload-"));
    }
    assert!(names(&dir).is_empty());
    assert!(!up.path.join("etc").exists());
}

#[test]
fn a_kept_upload_stays_and_remove_false_keeps_all() {
    let up = TempDir::new("mp-keep");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let body = two_files_and_a_field();
    let r = s.raw(&[head("/up/?keep=kept.txt", body.len()).as_bytes(), &body].concat());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        fs::read(up.path.join("kept.txt")).unwrap(),
        b"first file\r\n-"
    );
    assert!(names(&dir).is_empty(), "the other file is removed");
    drop(s);

    let web = format!(
        "upload: {{ dir: '{}', remove: false }}, routes: [{{ match: '/up/', handler: 'action' }}]",
        dir.display()
    );
    let s = TestServer::start(&web, |_| {}, setup);
    let r = s.raw(&[head("/up/", body.len()).as_bytes(), &body].concat());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(names(&dir).len(), 2);
}

#[test]
fn over_limits_upload_is_413_while_streaming_and_leaves_no_file() {
    let up = TempDir::new("mp-413");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "upload: '64K'");
    // Chunked, so the size is only known as it arrives.
    let mut c = s.client();
    c.send(
        format!(
            "POST /up/ HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    );
    let start =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n");
    let chunk = |data: &[u8]| [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
    c.send(&chunk(start.as_bytes()));
    c.send(&chunk(&[b'x'; 30_000]));
    eventually("the file is being written", || names(&dir).len() == 1);
    let mut refused = false;
    for _ in 0..10 {
        if c.stream.write_all(&chunk(&[b'y'; 30_000])).is_err() {
            refused = true;
            break;
        }
    }
    let _ = refused;
    c.last_response(413, "a 300K upload over a 64K limit");
    eventually("the partial file is removed", || names(&dir).is_empty());

    // Declared too large: refused before any of it is read.
    let mut c = s.client();
    c.send(head("/up/", 100_000).as_bytes());
    c.last_response(413, "Content-Length over limits.upload");
    assert!(names(&dir).is_empty());
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_no_file() {
    let up = TempDir::new("mp-vanish");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let body = two_files_and_a_field();
    let mut c = s.client();
    c.send(head("/up/", body.len() + 1000).as_bytes());
    c.send(&body[..body.len() - 20]);
    eventually("the files are being written", || names(&dir).len() == 2);
    drop(c);
    eventually("the partial files are removed", || names(&dir).is_empty());
    // The server goes on.
    assert_eq!(s.get("/up/x").status, 200);
}

#[test]
fn bad_framing_is_400_and_leaves_no_file() {
    let up = TempDir::new("mp-400");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let good = two_files_and_a_field();
    let cases: Vec<Vec<u8>> = vec![
        // Truncated before the close delimiter (the length says so).
        good[..good.len() - 8].to_vec(),
        // A part without Content-Disposition.
        format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n")
            .into_bytes(),
        // Text after a delimiter.
        format!("--{BOUNDARY}junk\r\n\r\n--{BOUNDARY}--").into_bytes(),
        // A header line without a colon, after a file part began.
        [
            &good[..good.len() / 2],
            format!("\r\n--{BOUNDARY}\r\nbroken\r\n\r\n").as_bytes(),
        ]
        .concat(),
    ];
    for body in cases {
        let mut c = s.client();
        c.send(head("/up/", body.len()).as_bytes());
        c.send(&body);
        c.last_response(400, &String::from_utf8_lossy(&body));
        eventually("no file is left", || names(&dir).is_empty());
    }
    // A multipart type without a boundary.
    let r = s.raw(
        b"POST /up/ HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn a_64_mib_body_streams_to_the_action_in_chunks() {
    let _alone = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let up = TempDir::new("mp-stream");
    let s = upload_server(&up.path, "upload: '100MB', body: '10K'");
    const TOTAL: usize = 64 * 1024 * 1024;
    let mut c = s.client();
    c.send(
        format!(
            "PUT /stream/fw HTTP/1.1\r\nHost: t\r\nContent-Length: {TOTAL}\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.response();
    assert_eq!(r.status, 100, "100 Continue once the head is accepted");
    // The server runs in this process: its memory is ours.
    let rss_before = rss_kib();
    let mut sum = 0;
    let mut piece = vec![0u8; 256 * 1024];
    for n in 0..TOTAL / piece.len() {
        for (i, b) in piece.iter_mut().enumerate() {
            *b = ((n * 7 + i) % 253) as u8;
        }
        sum = checksum(sum, &piece);
        c.send(&piece);
    }
    let r = c.response();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["bytes"], TOTAL as u64);
    assert_eq!(v["sum"], sum);
    let chunks = v["chunks"].as_u64().unwrap();
    let largest = v["largest"].as_u64().unwrap();
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!("64 MiB in {chunks} chunks, the largest {largest} bytes; RSS +{grown} KiB");
    assert!(chunks >= 512, "{chunks} chunks");
    // One read buffer (64 KiB) and what the read before left over.
    assert!(
        largest <= 128 * 1024,
        "one read's worth at a time: {largest}"
    );
    // Gathered, it would be 64 MiB; other tests of this file run meanwhile.
    assert!(grown < 16 * 1024, "the process grew by {grown} KiB");
    // The connection goes on.
    c.send(b"GET /stream/x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(json(&c.response())["bytes"], 0);
}

/// Held by the test that measures this process's memory and by the one
/// whose panic would swell it.
static MEMORY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This process's resident memory (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_refused_stream_answers_before_the_body_and_closes() {
    // Its panic's backtrace (with RUST_BACKTRACE) maps the debug info: tens of MiB.
    let _alone = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let up = TempDir::new("mp-refuse");
    let s = upload_server(&up.path, "upload: '1MB'");
    let mut c = s.client();
    c.send(b"POST /stream/?refuse=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\nExpect: 100-continue\r\n\r\n");
    let r = c.last_response(403, "a refused stream");
    assert_eq!(r.body, b"no");
    // Over limits.upload: 413 before reading.
    let mut c = s.client();
    c.send(b"POST /stream/ HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n");
    c.last_response(413, "a stream over limits.upload");
    // Chunked over the limit: 413 while streaming.
    let mut c = s.client();
    c.send(b"POST /stream/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let piece = [b"40000\r\n".as_slice(), &[b'z'; 0x40000], b"\r\n"].concat();
    for _ in 0..5 {
        if c.stream.write_all(&piece).is_err() {
            break;
        }
    }
    c.last_response(413, "a chunked stream over limits.upload");
    // Refused by on_body midway: its response, and the connection closes.
    let mut c = s.client();
    c.send(b"POST /stream/?cap=100000 HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n");
    for _ in 0..10 {
        if c.stream.write_all(&[b'q'; 30_000]).is_err() {
            break;
        }
    }
    assert_eq!(c.last_response(422, "refused by on_body").body, b"enough");
    // A panic in on_body: 500, that connection closed, the server goes on.
    let mut c = s.client();
    c.send(b"POST /stream/?panic=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n");
    c.send(b"abc");
    c.last_response(500, "a panic in on_body");
    let r = s.raw(b"POST /stream/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(json(&r)["bytes"], 3);
}

#[test]
fn curl_uploads_a_file() {
    let up = TempDir::new("mp-curl");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let file = up.path.join("report.txt");
    fs::write(&file, b"from curl\n").unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-F", "note=hi there"])
        .arg("-F")
        .arg(format!("doc=@{};type=text/plain", file.display()))
        .arg(format!("http://{}/up/", s.addr))
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: curl is not runnable here: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["note"], "hi there");
    assert_eq!(v["files"][0]["filename"], "report.txt");
    assert_eq!(v["files"][0]["content"], "from curl\n");
    assert_eq!(v["files"][0]["type"], "text/plain");
    assert!(names(&dir).is_empty());
}

#[test]
fn python_aiohttp_uploads_a_file() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-venv/bin/python");
    let has_aiohttp = std::process::Command::new(&python)
        .args(["-c", "import aiohttp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_aiohttp {
        eprintln!("SKIPPED: no aiohttp in target/python-venv (scripts/python-env makes it)");
        return;
    }
    let up = TempDir::new("mp-aiohttp");
    let dir = up.path.join("files");
    let s = upload_server(&dir, "");
    let script = r#"
import aiohttp, asyncio, sys
async def main():
    form = aiohttp.FormData()
    form.add_field("note", "from python")
    form.add_field("blob", b"\x00\x01binary\r\n--", filename="../x.bin", content_type="application/x-test")
    async with aiohttp.ClientSession() as s:
        async with s.post(sys.argv[1], data=form) as r:
            print(r.status)
            print(await r.text())
asyncio.run(main())
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script, &format!("http://{}/up/", s.addr)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, body) = text.split_once('\n').unwrap();
    assert_eq!(status, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["note"], "from python");
    // aiohttp percent-encodes the '/' (as browsers do '"', CR and LF); the
    // name is kept as sent, without folders either way.
    let name = v["files"][0]["filename"].as_str().unwrap();
    assert!(name.ends_with("x.bin") && !name.contains('/'), "{name}");
    assert_eq!(v["files"][0]["size"], 12);
    assert_eq!(v["files"][0]["type"], "application/x-test");
    assert!(names(&dir).is_empty());
}
