//! The static file handler over real sockets: index, types, redirects, validators,
//! ranges, precompressed variants, path confinement and streaming.

mod support;

use support::{find, Client, TestServer};

fn site() -> TestServer {
    TestServer::files(|d| {
        d.write("index.html", "<h1>home</h1>");
        d.write("style.css", "body{}");
        d.write("app.js", "let x=1;");
        d.write("docs/index.html", "docs home");
        d.write("docs/guide.txt", "0123456789abcdefghij");
        d.write("data.bin", [0u8, 1, 2, 3]);
        d.write("noext", "x");
        d.write("empty.txt", "");
    })
}

#[test]
fn root_serves_index_with_type_length_and_validators() {
    let s = site();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("date").is_some());
}

#[test]
fn mime_types_follow_the_extension() {
    let s = site();
    assert_eq!(
        s.get("/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert!(s
        .get("/app.js")
        .header("content-type")
        .unwrap()
        .contains("javascript"));
    assert_eq!(
        s.get("/data.bin").header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        s.get("/noext").header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn configured_mime_and_headers_and_cache_apply() {
    let s = TestServer::start(
        "mime: { md: 'text/x-doc' }, headers: { 'X-Device': 'thermostat' }, \
         routes: [ { match: '', handler: 'file', cache: { maxAge: '1 hr' } } ]",
        |d| {
            d.write("README.md", "# hi");
            d.write("docs/index.html", "docs");
        },
        |_| {},
    );
    let r = s.get("/README.md");
    assert_eq!(r.header("content-type"), Some("text/x-doc"));
    assert_eq!(r.header("x-device"), Some("thermostat"));
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    // The folder's redirect says so too.
    let r = s.get("/docs");
    assert_eq!(
        (r.status, r.header("cache-control")),
        (301, Some("max-age=3600"))
    );
}

#[test]
fn missing_file_is_404_and_directory_without_slash_is_301_keeping_query() {
    let s = site();
    assert_eq!(s.get("/nope.html").status, 404);
    assert_eq!(s.get("/index.html/").status, 404);
    let r = s.get("/docs?x=1&y=2");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?x=1&y=2"));
    // Without a `cache.maxAge`, a browser must not keep it for ever.
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let r = s.get("/docs/");
    assert_eq!((r.status, r.text().as_str()), (200, "docs home"));
    // `//docs` must not become `Location: //docs/`, which a browser reads as another host.
    let r = s.get("//docs");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
}

#[test]
fn head_has_headers_but_no_body() {
    let s = site();
    let mut c = s.client();
    c.send(b"HEAD /docs/guide.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20"));
    // The connection is still in sync: the next response follows directly.
    c.send(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "body{}");
}

#[test]
fn if_none_match_and_if_modified_since_give_304() {
    let s = site();
    let r = s.get("/style.css");
    let etag = r.header("etag").unwrap().to_string();
    let modified = r.header("last-modified").unwrap().to_string();
    let cases = [
        format!("If-None-Match: {etag}"),
        format!("If-None-Match: \"nope\", {etag}"),
        format!("If-None-Match: W/{etag}"),
        "If-None-Match: *".to_string(),
        format!("If-Modified-Since: {modified}"),
    ];
    for h in cases {
        let r = s.raw(format!("GET /style.css HTTP/1.1\r\nHost: t\r\n{h}\r\n\r\n").as_bytes());
        assert_eq!(r.status, 304, "{h}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = s.raw(b"GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = s.raw(b"GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    assert_eq!(r.status, 200);
    // If-None-Match takes precedence over If-Modified-Since.
    let r = s.raw(
        format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\nIf-Modified-Since: {modified}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let s = site();
    let r = s.get("/style.css");
    let etag = r.header("etag").unwrap().to_string();
    let modified = r.header("last-modified").unwrap().to_string();
    let old = "Sun, 06 Nov 1994 08:49:37 GMT";
    let request = |headers: &str| {
        s.raw(format!("GET /style.css HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
    };
    for h in [
        format!("If-Match: {etag}\r\n"),
        format!("If-Match: \"nope\", {etag}\r\n"),
        "If-Match: *\r\n".to_string(),
        format!("If-Unmodified-Since: {modified}\r\n"),
        "If-Unmodified-Since: not a date\r\n".to_string(),
        // If-Match decides; If-Unmodified-Since is then not looked at.
        format!("If-Match: {etag}\r\nIf-Unmodified-Since: {old}\r\n"),
    ] {
        let r = request(&h);
        assert_eq!(r.status, 200, "{h}");
        assert_eq!(r.text(), "body{}", "{h}");
    }
    for h in [
        "If-Match: \"nope\"\r\n".to_string(),
        // If-Match compares strongly: a weak tag never matches.
        format!("If-Match: W/{etag}\r\n"),
        format!("If-Unmodified-Since: {old}\r\n"),
        // A failed precondition comes before If-None-Match's 304.
        format!("If-Match: \"nope\"\r\nIf-None-Match: {etag}\r\n"),
    ] {
        let r = request(&h);
        assert_eq!(r.status, 412, "{h}");
        assert_eq!(r.header("connection"), None, "{h}: keep-alive stays");
    }
    // HEAD too, and the connection stays in sync after a 412.
    let mut c = s.client();
    c.send(b"HEAD /style.css HTTP/1.1\r\nHost: t\r\nIf-Match: \"nope\"\r\n\r\n");
    assert_eq!(c.head_response().status, 412);
    c.send(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().text(), "body{}");
}

#[test]
fn a_refused_head_has_no_body_and_keeps_the_connection_in_sync() {
    let s = site();
    let mut c = s.client();
    for path in ["/missing.txt", "/%00", "/style.css/"] {
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.head_response();
        assert!(r.status >= 400, "{path}: {}", r.status);
        // The length a GET would have had, and no body: the next answer follows at once.
        assert!(r.header("content-length").is_some(), "{path}");
        if r.header("connection") == Some("close") {
            // A refusal that ends the connection: nothing (no body) follows its head,
            // and the rest of the table goes on over a new connection.
            assert!(c.is_closed(), "{path}: closed right after the head");
            c = s.client();
        }
        c.send(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().text(), "body{}", "after HEAD {path}");
    }
}

fn range(s: &TestServer, spec: &str) -> support::Resp {
    s.raw(format!("GET /docs/guide.txt HTTP/1.1\r\nHost: t\r\nRange: {spec}\r\n\r\n").as_bytes())
}

#[test]
fn single_ranges_give_206_with_content_range() {
    let s = site();
    for (spec, body, cr) in [
        ("bytes=0-4", "01234", "bytes 0-4/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=18-100", "ij", "bytes 18-19/20"),
    ] {
        let r = range(&s, spec);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.text(), body, "{spec}");
        assert_eq!(r.header("content-range"), Some(cr), "{spec}");
    }
}

#[test]
fn multiple_ranges_are_multipart_byteranges() {
    let s = site();
    let r = range(&s, "bytes=0-1, 10-11");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let body = r.text();
    assert_eq!(body.matches(&format!("--{boundary}\r\n")).count(), 2);
    assert!(body.contains("Content-Range: bytes 0-1/20\r\n\r\n01"));
    assert!(body.contains("Content-Range: bytes 10-11/20\r\n\r\nab"));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
}

#[test]
fn unsatisfiable_range_is_416_and_bad_syntax_is_ignored() {
    let s = site();
    let r = range(&s, "bytes=50-60");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));
    let r = range(&s, "bytes=5-2");
    assert_eq!((r.status, r.body.len()), (200, 20));
    let r = range(&s, "lines=1-2");
    assert_eq!(r.status, 200);
    let many: Vec<String> = (0..20).map(|i| format!("{i}-{i}")).collect();
    let r = range(&s, &format!("bytes={}", many.join(",")));
    // Non-overlapping single bytes: more than the cap → served whole.
    assert!(r.status == 200 || r.status == 206);
}

#[test]
fn if_range_honours_range_only_for_the_current_validator() {
    let s = site();
    let etag = s.get("/docs/guide.txt").header("etag").unwrap().to_string();
    let ok = s.raw(format!("GET /docs/guide.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\nIf-Range: {etag}\r\n\r\n").as_bytes());
    assert_eq!((ok.status, ok.text().as_str()), (206, "0"));
    let stale = s.raw(
        b"GET /docs/guide.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\nIf-Range: \"old\"\r\n\r\n",
    );
    assert_eq!((stale.status, stale.body.len()), (200, 20));
}

#[test]
fn precompressed_variants_follow_accept_encoding() {
    let s = TestServer::start(
        "routes: [ { match: '', handler: 'file', compressed: true } ]",
        |d| {
            d.write("app.js", "plain");
            d.write("app.js.gz", "GZ");
            d.write("app.js.br", "BR");
            d.write("only.css", "plain css");
            d.write("only.css.gz", "GZ css");
        },
        |_| {},
    );
    let get = |ae: &str, path: &str| {
        s.raw(format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {ae}\r\n\r\n").as_bytes())
    };
    let r = get("gzip, br", "/app.js");
    assert_eq!(
        (r.text().as_str(), r.header("content-encoding")),
        ("BR", Some("br"))
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.header("content-type").unwrap().contains("javascript"));
    let r = get("gzip;q=1, br;q=0.5", "/app.js");
    assert_eq!(r.text(), "GZ");
    let r = get("br;q=0, gzip;q=0", "/app.js");
    assert_eq!(
        (r.text().as_str(), r.header("content-encoding")),
        ("plain", None)
    );
    let r = get("br", "/only.css");
    assert_eq!(r.text(), "plain css");
    let r = s.get("/app.js");
    assert_eq!(r.text(), "plain");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn traversal_spellings_never_leave_the_root() {
    let outside = support::TempDir::new("outside");
    outside.write("secret.txt", "SECRET");
    let s = site();
    let name = outside.name();
    let attempts = [
        format!("/../{name}/secret.txt"),
        format!("/%2e%2e/{name}/secret.txt"),
        format!("/docs/..%2f..%2f{name}/secret.txt"),
        format!("/%2E%2E%2F{name}%2Fsecret.txt"),
        format!("/docs/../../{name}/secret.txt"),
        "/..\\..\\etc\\passwd".to_string(),
        "/%5c..%5cetc/passwd".to_string(),
        "/index.html%00.txt".to_string(),
        "/../../../../../../etc/passwd".to_string(),
    ];
    for a in &attempts {
        let r = s.get(a);
        assert!(
            r.status == 400 || r.status == 404 || r.status == 403,
            "{a}: {}",
            r.status
        );
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("root:"),
            "{a}"
        );
    }
    // Dot segments that stay inside are fine.
    assert_eq!(s.get("/docs/../style.css").text(), "body{}");
    assert_eq!(s.get("/docs/%2e%2e/style.css").text(), "body{}");
}

#[test]
fn symlinks_that_escape_the_root_are_not_served() {
    let outside = support::TempDir::new("outside-link");
    let secret = outside.write("secret.txt", "SECRET");
    let s = TestServer::files(|d| {
        d.write("real.txt", "inside");
        std::os::unix::fs::symlink(&secret, d.path.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(&outside.path, d.path.join("leakdir")).unwrap();
        std::os::unix::fs::symlink(d.path.join("real.txt"), d.path.join("alias.txt")).unwrap();
    });
    assert_eq!(s.get("/leak.txt").status, 404);
    assert_eq!(s.get("/leakdir/secret.txt").status, 404);
    assert_eq!(s.get("/alias.txt").text(), "inside");
}

#[test]
fn empty_file_is_200_with_zero_length() {
    let s = site();
    let r = s.get("/empty.txt");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

#[test]
fn large_file_streams_to_a_slow_reader_without_blocking_others() {
    const SIZE: usize = 8 * 1024 * 1024;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let s = TestServer::files(move |d| {
        d.write("big.bin", &data);
        d.write("small.txt", "small");
    });
    // A reader that takes the head and then stops reading for a while.
    let mut slow = Client::connect(s.addr);
    slow.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(slow.read_more(), "closed before the head");
    assert!(find(slow.buffered(), b"200 OK").is_some());
    // Meanwhile other clients are served promptly.
    for _ in 0..20 {
        assert_eq!(s.get("/small.txt").text(), "small");
    }
    // Now read the rest and check every byte.
    let r = slow.response();
    assert!(r.body == expected, "streamed bytes differ");
}

#[test]
fn large_file_ranges_stream_too() {
    const SIZE: usize = 300 * 1024;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let expected = data.clone();
    let s = TestServer::files(move |d| {
        d.write("big.bin", &data);
    });
    let r = s.raw(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-200999\r\n\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, expected[1000..201000]);
    let r =
        s.raw(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-99999,200000-299999\r\n\r\n");
    assert_eq!(r.status, 206);
    assert!(find(&r.body, &expected[200000..299999]).is_some());
}

#[test]
fn a_file_changed_after_it_was_served_is_served_as_it_is_now() {
    let s = TestServer::files(|d| {
        d.write("page.html", "first");
        d.write("gone.txt", "here");
    });
    let before = s.get("/page.html");
    assert_eq!(before.text(), "first");
    // Edited in place: new length, new validators.
    s.docs.write("page.html", "second, longer");
    let edited = s.get("/page.html");
    assert_eq!(edited.text(), "second, longer");
    assert_eq!(edited.header("content-length"), Some("14"));
    assert_ne!(edited.header("etag"), before.header("etag"));
    // Replaced the way editors and deployments do: a new file renamed over it.
    let fresh = s.docs.write("page.tmp", "third");
    std::fs::rename(fresh, s.docs.path.join("page.html")).unwrap();
    let replaced = s.get("/page.html");
    assert_eq!(replaced.text(), "third");
    assert_ne!(replaced.header("etag"), edited.header("etag"));
    // Removed.
    assert_eq!(s.get("/gone.txt").status, 200);
    std::fs::remove_file(s.docs.path.join("gone.txt")).unwrap();
    assert_eq!(s.get("/gone.txt").status, 404);
}

#[test]
fn a_symlink_pointed_out_of_the_root_after_it_was_served_is_not_served() {
    let outside = support::TempDir::new("outside-relink");
    let secret = outside.write("secret.txt", "SECRET");
    let s = TestServer::files(|d| {
        d.write("real.txt", "inside");
        std::os::unix::fs::symlink(d.path.join("real.txt"), d.path.join("alias.txt")).unwrap();
    });
    assert_eq!(s.get("/alias.txt").text(), "inside");
    let alias = s.docs.path.join("alias.txt");
    std::fs::remove_file(&alias).unwrap();
    std::os::unix::fs::symlink(&secret, &alias).unwrap();
    let r = s.get("/alias.txt");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("SECRET"));
}

#[test]
fn a_file_swapped_for_a_fifo_is_refused_without_blocking_the_server() {
    let s = site();
    assert_eq!(s.get("/style.css").status, 200);
    let path = s.docs.path.join("style.css");
    std::fs::remove_file(&path).unwrap();
    // With mknod (no `mkfifo` program needed); failing is a test failure, not a skip.
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
        .unwrap_or_else(|e| panic!("cannot make a FIFO at {}: {e}", path.display()));
    assert_eq!(s.get("/style.css").status, 404);
    // The loop is not stuck on the FIFO.
    assert_eq!(s.get("/app.js").text(), "let x=1;");
}

#[test]
fn pipelined_requests_around_large_files_are_answered_in_order() {
    const SIZE: usize = 1024 * 1024 + 7;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 249) as u8).collect();
    let expected = data.clone();
    let s = TestServer::files(move |d| {
        d.write("big.bin", &data);
        d.write("small.txt", "small");
    });
    let mut c = s.client();
    c.send(
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-200099\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,-70000\r\n\r\n\
          GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.body == expected, "the whole file differs");
    assert_eq!(c.response().text(), "small");
    let r = c.head_response();
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    let r = c.response();
    assert_eq!(r.status, 206);
    assert!(r.body == expected[100..200_100], "the range differs");
    let r = c.response();
    assert_eq!(r.status, 206);
    let boundary = r
        .header("content-type")
        .unwrap()
        .split("boundary=")
        .nth(1)
        .unwrap()
        .to_string();
    let mut want = format!(
        "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/{SIZE}\r\n\r\n"
    )
    .into_bytes();
    want.extend_from_slice(&expected[..1]);
    want.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/{SIZE}\r\n\r\n",
            SIZE - 70_000,
            SIZE - 1
        )
        .as_bytes(),
    );
    want.extend_from_slice(&expected[SIZE - 70_000..]);
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(r.body == want, "the multipart body differs");
    assert_eq!(c.response().text(), "small");
}

#[test]
fn error_pages_are_served_with_their_status() {
    let s = TestServer::start(
        "errors: { '404': '/errors/404.html', '405': '/errors/405.txt' }, \
         routes: [ { match: '/api/', handler: 'action' }, { match: '' } ]",
        |d| {
            d.write("errors/404.html", "<h1>Not here</h1>");
            d.write("errors/405.txt", "not like that");
            d.write("a.txt", "A");
        },
        |_| {},
    );
    let r = s.get("/missing");
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>Not here</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // An action path with no handler is a 404 too.
    assert_eq!(s.get("/api/none").text(), "<h1>Not here</h1>");
    let mut c = s.client();
    c.send(b"HEAD /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_response();
    assert_eq!((r.status, r.header("content-length")), (404, Some("17")));
    // The connection goes on after a HEAD's bodiless page.
    c.send(b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (405, "not like that"));
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // Statuses without a page keep the plain one.
    let r = s.raw(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("400 Bad Request"), "{}", r.text());
}

#[test]
fn a_missing_error_page_stops_the_start() {
    let config = wisp::Config::parse(
        "{ web: { listen: ['http://127.0.0.1:0'], documents: '/', errors: { '404': '/no/such/page.html' } } }",
        "/".as_ref(),
    )
    .unwrap();
    let Err(err) = wisp::Server::bind(config) else {
        panic!("a missing error page was accepted");
    };
    let err = err.to_string();
    assert!(
        err.starts_with("web.errors.404: cannot read /no/such/page.html"),
        "{err}"
    );
}

#[test]
fn a_folder_without_index_is_listed_only_where_listing_is_on() {
    let s = TestServer::start(
        "routes: [ { match: '/pub/', listing: true }, { match: '' } ]",
        |d| {
            d.write("pub/b.txt", "B");
            d.write("pub/<a&b>.txt", "AB");
            d.write("pub/sub/c.txt", "C");
            d.write("pub/.secret", "S");
            d.write("other/d.txt", "D");
        },
        |_| {},
    );
    let r = s.get("/pub/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    let links: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .map(|l| &l[..l.find('"').unwrap()])
        .collect();
    assert_eq!(
        links,
        ["../", "./sub/", "./%3Ca%26b%3E.txt", "./b.txt"],
        "{html}"
    );
    assert!(html.contains("&lt;a&amp;b&gt;.txt"), "{html}");
    assert!(!html.contains("secret"), "dot files are not listed");
    // A link leads where it says.
    assert_eq!(s.get("/pub/%3Ca%26b%3E.txt").text(), "AB");
    assert_eq!(s.get("/pub/sub/").status, 200);
    // Off by default.
    assert_eq!(s.get("/other/").status, 404);
}
