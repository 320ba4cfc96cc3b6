//! The static file handler: a confined path, validators, ranges and precompressed variants.

pub(crate) mod cache;
mod listing;
pub(crate) mod mime;
pub(crate) mod path;
#[cfg(test)]
mod scratch;
pub(crate) mod store;
pub(crate) mod uploads;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::SystemTime;

use crate::config::RouteConfig;
use crate::http::conditional::{
    if_range_holds, match_strong, modified_since, none_match, not_modified_since,
};
use crate::http::encoding::{choose_encoding, Encoding};
use crate::http::error::HttpError;
use crate::http::head::Head;
use crate::http::range::{parse_range, ByteRange, Multipart, RangeRequest};
use crate::http::response::HeadWriter;
use crate::output::{FileBody, Segment};
pub(crate) use cache::Documents;
use cache::{Found, OpenFile};
use mime::MimeTable;
use path::PathError;

/// Files up to this size are read whole into the response; larger ones stream.
pub(crate) const INLINE_LIMIT: u64 = 64 * 1024;
/// The most ranges one request may ask for before the Range header is ignored.
const MAX_RANGES: usize = 16;

/// What the file handler needs besides the request.
pub(crate) struct FileSite<'a> {
    /// The documents folder of the route, with the files it keeps open.
    pub docs: &'a Documents,
    pub index: &'a str,
    pub mime: &'a MimeTable,
    pub route: &'a RouteConfig,
}

/// Where a response goes: the head and small bodies into `out`, a large body into `file`.
pub(crate) struct Sink<'o> {
    pub out: &'o mut Vec<u8>,
    pub file: Option<FileBody>,
    pub date: &'o str,
    pub extra: &'o [(String, String)],
    pub close: bool,
}

/// Serves a GET or HEAD for a file route.
///
/// An `Err` is an error response the caller writes in its generic form; the
/// connection stays open.
///
/// `path` is the request path as [`normalize`](path::normalize) returned it — the relative
/// path and whether it names a directory — normalised once, for routing.
pub(crate) fn serve(
    site: &FileSite<'_>,
    head: &Head<'_>,
    path: (&str, bool),
    sink: &mut Sink<'_>,
) -> Result<(), HttpError> {
    let (relative, trailing_slash) = path;
    if trailing_slash {
        let index = join(relative, site.index);
        // The common case first: an index file served before, checked with one stat.
        if let Some(file) = site.docs.cached(&index) {
            return serve_file(site, head, &index, file, sink);
        }
        return match site.docs.find(relative)? {
            Found::File(_) => Err(HttpError::NotFound),
            Found::Dir => match site.docs.find(&index) {
                Ok(Found::File(file)) => serve_file(site, head, &index, file, sink),
                Ok(Found::Dir) | Err(PathError::NotFound) if site.route.listing => {
                    listing::write(site, head, relative, sink)
                }
                Ok(Found::Dir) => Err(HttpError::NotFound),
                Err(e) => Err(e.into()),
            },
        };
    }
    match site.docs.find(relative)? {
        Found::File(file) => serve_file(site, head, relative, file, sink),
        Found::Dir => redirect_to_slash(site, head, sink),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A directory asked for without its slash: 301 to `path/`, keeping the query.
///
/// A 301 is cached by browsers as long as they like unless told: it says the
/// route's `cache.maxAge` like its files, or else to check again (the folder
/// may become a file).
fn redirect_to_slash(
    site: &FileSite<'_>,
    head: &Head<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), HttpError> {
    // One leading slash only: `//host` in a Location is another site (open redirect).
    let path = head.path.trim_start_matches('/');
    let mut location = String::with_capacity(path.len() + head.query.len() + 3);
    location.push('/');
    location.push_str(path);
    location.push('/');
    if !head.query.is_empty() {
        location.push('?');
        location.push_str(head.query);
    }
    let mut w = HeadWriter::start(sink.out, 301, sink.date, sink.extra);
    w.header("Location", &location);
    match site.route.cache_max_age {
        Some(age) => w.header("Cache-Control", &format!("max-age={}", age.as_secs())),
        None => w.header("Cache-Control", "no-cache"),
    };
    w.finish(Some(0), sink.close);
    Ok(())
}

/// The representation chosen for a request: the file or one of its precompressed siblings.
struct Chosen {
    file: Rc<OpenFile>,
    encoding: Encoding,
}

fn serve_file(
    site: &FileSite<'_>,
    head: &Head<'_>,
    relative: &str,
    found: Rc<OpenFile>,
    sink: &mut Sink<'_>,
) -> Result<(), HttpError> {
    let content_type = site.mime.for_path(relative);
    let chosen = choose_variant(site, head, relative, found);
    let open = &*chosen.file;
    let (size, mtime, etag) = (open.metadata.len(), open.mtime, open.etag.as_str());

    let validators = Validators {
        etag,
        last_modified: &open.last_modified,
        encoding: chosen.encoding,
        compressed_route: site.route.compressed,
        max_age: site.route.cache_max_age.map(|d| d.as_secs()),
    };
    if precondition_failed(head, etag, mtime) {
        return Err(HttpError::PreconditionFailed);
    }
    if not_modified(head, etag, mtime) {
        let mut w = HeadWriter::start(sink.out, 304, sink.date, sink.extra);
        validators.write(&mut w);
        w.finish(None, sink.close);
        return Ok(());
    }
    let ranges = match head.header("range") {
        Some(range) if head.method == "GET" && range_allowed(head, etag, mtime) => {
            parse_range(range, size, MAX_RANGES)
        }
        _ => RangeRequest::Full,
    };
    let file = &open.file;
    let send_body = head.method != "HEAD";
    // Where this response starts, so a failed read can take its head back.
    let mark = sink.out.len();
    match ranges {
        RangeRequest::Full => {
            let mut w = HeadWriter::start(sink.out, 200, sink.date, sink.extra);
            w.header("Content-Type", content_type);
            validators.write(&mut w);
            w.finish(Some(size), sink.close);
            if send_body {
                let whole = ByteRange {
                    start: 0,
                    end: size.saturating_sub(1),
                };
                body_range(file, whole, size, sink).inspect_err(|_| sink.out.truncate(mark))?;
            }
        }
        RangeRequest::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            let mut w = HeadWriter::start(sink.out, 206, sink.date, sink.extra);
            w.header("Content-Type", content_type);
            w.header(
                "Content-Range",
                &format!("bytes {}-{}/{size}", r.start, r.end),
            );
            validators.write(&mut w);
            w.finish(Some(r.len()), sink.close);
            if send_body {
                body_range(file, r, size, sink).inspect_err(|_| sink.out.truncate(mark))?;
            }
        }
        RangeRequest::Partial(ranges) => {
            let boundary = format!("wisp-{}", etag.trim_matches('"'));
            let multipart = Multipart::new(&ranges, size, content_type, boundary);
            let mut w = HeadWriter::start(sink.out, 206, sink.date, sink.extra);
            w.header("Content-Type", &multipart.content_type());
            validators.write(&mut w);
            w.finish(Some(multipart.content_length()), sink.close);
            if send_body {
                let mut segments = std::collections::VecDeque::new();
                for (part_head, r) in multipart.parts {
                    segments.push_back(Segment::Bytes(part_head));
                    segments.push_back(Segment::Range {
                        offset: r.start,
                        remaining: r.len(),
                    });
                }
                segments.push_back(Segment::Bytes(multipart.closing));
                sink.file = Some(FileBody::new(Rc::clone(file), segments));
            }
        }
        RangeRequest::Unsatisfiable => {
            let mut w = HeadWriter::start(sink.out, 416, sink.date, sink.extra);
            w.header("Content-Range", &format!("bytes */{size}"));
            validators.write(&mut w);
            w.finish(Some(0), sink.close);
        }
    }
    Ok(())
}

/// The validators and caching headers every file response carries.
struct Validators<'v> {
    etag: &'v str,
    last_modified: &'v str,
    encoding: Encoding,
    compressed_route: bool,
    max_age: Option<u64>,
}

impl Validators<'_> {
    fn write(&self, w: &mut HeadWriter<'_>) {
        w.header("ETag", self.etag);
        w.header("Last-Modified", self.last_modified);
        w.header("Accept-Ranges", "bytes");
        if let Some(token) = self.encoding.token() {
            w.header("Content-Encoding", token);
        }
        if self.compressed_route {
            w.header("Vary", "Accept-Encoding");
        }
        if let Some(secs) = self.max_age {
            w.header("Cache-Control", &format!("max-age={secs}"));
        }
    }
}

/// RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
/// If-Match, or else If-Unmodified-Since, does not hold (RFC 9110 §13.2.2:
/// evaluated before If-None-Match and If-Modified-Since).
fn precondition_failed(head: &Head<'_>, etag: &str, mtime: SystemTime) -> bool {
    match head.header("if-match") {
        Some(v) => !match_strong(v, etag),
        None => head
            .header("if-unmodified-since")
            .is_some_and(|v| modified_since(v, mtime)),
    }
}

fn not_modified(head: &Head<'_>, etag: &str, mtime: SystemTime) -> bool {
    match head.header("if-none-match") {
        Some(v) => none_match(v, etag),
        None => head
            .header("if-modified-since")
            .is_some_and(|v| not_modified_since(v, mtime)),
    }
}

fn range_allowed(head: &Head<'_>, etag: &str, mtime: SystemTime) -> bool {
    head.header("if-range")
        .is_none_or(|v| if_range_holds(v, etag, mtime, SystemTime::now()))
}

/// Picks a precompressed sibling (`.br`, `.gz`) on compressed routes when the client accepts it.
fn choose_variant(
    site: &FileSite<'_>,
    head: &Head<'_>,
    relative: &str,
    found: Rc<OpenFile>,
) -> Chosen {
    if !site.route.compressed {
        return Chosen {
            file: found,
            encoding: Encoding::Identity,
        };
    }
    let sibling = |enc: Encoding| {
        let suffix = enc.suffix()?;
        match site.docs.find(&format!("{relative}{suffix}")) {
            Ok(Found::File(file)) => Some(file),
            _ => None,
        }
    };
    let br = sibling(Encoding::Brotli);
    let gz = sibling(Encoding::Gzip);
    let encoding = choose_encoding(head.header("accept-encoding"), br.is_some(), gz.is_some());
    let file = match encoding {
        Encoding::Brotli => br,
        Encoding::Gzip => gz,
        Encoding::Identity => None,
    };
    match file {
        Some(file) => Chosen { file, encoding },
        None => Chosen {
            file: found,
            encoding: Encoding::Identity,
        },
    }
}

/// Puts one byte range of the file into the response: inline when small, else streamed.
fn body_range(
    file: &Rc<File>,
    r: ByteRange,
    size: u64,
    sink: &mut Sink<'_>,
) -> Result<(), HttpError> {
    if size == 0 {
        return Ok(());
    }
    let len = r.len();
    if len > INLINE_LIMIT {
        let segments = std::iter::once(Segment::Range {
            offset: r.start,
            remaining: len,
        })
        .collect();
        sink.file = Some(FileBody::new(Rc::clone(file), segments));
        return Ok(());
    }
    let start = sink.out.len();
    // len <= INLINE_LIMIT, so it fits in usize everywhere.
    sink.out.resize(start + len as usize, 0);
    if file.read_exact_at(&mut sink.out[start..], r.start).is_err() {
        // The file shrank between stat and read; the caller takes the head back and answers 500.
        return Err(HttpError::Internal);
    }
    Ok(())
}
