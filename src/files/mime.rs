//! Content types by file extension: a built-in table, overridable from the config.

use std::cmp::Ordering;

/// The type sent for unknown extensions and names without one.
const DEFAULT_TYPE: &str = "application/octet-stream";

/// The built-in table: lowercase extension (no dot) → content type.
///
/// Kept sorted by extension (byte order) and free of duplicates so lookups can binary
/// search it; a unit test checks both.
static BUILTIN: &[(&str, &str)] = &[
    ("7z", "application/x-7z-compressed"),
    ("aac", "audio/aac"),
    ("apng", "image/apng"),
    ("atom", "application/atom+xml"),
    ("avi", "video/x-msvideo"),
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/bmp"),
    ("bz2", "application/x-bzip2"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("eot", "application/vnd.ms-fontobject"),
    ("epub", "application/epub+zip"),
    ("flac", "audio/flac"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("heic", "image/heic"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("ics", "text/calendar; charset=utf-8"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("jsonld", "application/ld+json"),
    ("jxl", "image/jxl"),
    ("log", "text/plain; charset=utf-8"),
    ("m4a", "audio/mp4"),
    ("m4v", "video/mp4"),
    ("map", "application/json"),
    ("md", "text/markdown; charset=utf-8"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("rss", "application/rss+xml"),
    ("rtf", "application/rtf"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("toml", "application/toml"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("weba", "audio/webm"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "application/xml"),
    ("xz", "application/x-xz"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("zip", "application/zip"),
    ("zst", "application/zstd"),
];

/// Maps file extensions to content types: the config's entries over the built-in table.
#[derive(Debug)]
pub(crate) struct MimeTable {
    /// The configured entries: lowercase extension without dot → type, sorted and unique.
    extra: Vec<(String, String)>,
}

impl MimeTable {
    /// Builds the table from the config's `mime` pairs (extension, type), which win over
    /// the built-in entries. Extensions may carry a leading dot and any ASCII case; when
    /// two spell the same extension, the later one wins. Empty extensions are ignored.
    pub(crate) fn new(extra: &[(String, String)]) -> MimeTable {
        let mut entries: Vec<(String, String)> = Vec::with_capacity(extra.len());
        for (ext, ty) in extra {
            let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
            if ext.is_empty() {
                continue;
            }
            entries.push((ext, ty.clone()));
        }
        // A stable sort keeps equal keys in config order; keep the last of each run.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        MimeTable { extra: unique }
    }

    /// The content type for a request path (or file name), by the extension of its last
    /// segment, compared case-insensitively (ASCII). Names without an extension, names
    /// whose only dot leads (`.htaccess`) and unknown extensions get
    /// `application/octet-stream`.
    pub(crate) fn for_path(&self, path: &str) -> &str {
        let Some(ext) = extension(path) else {
            return DEFAULT_TYPE;
        };
        if let Ok(i) = self.extra.binary_search_by(|(k, _)| cmp_folded(k, ext)) {
            return &self.extra[i].1;
        }
        match BUILTIN.binary_search_by(|(k, _)| cmp_folded(k, ext)) {
            Ok(i) => BUILTIN[i].1,
            Err(_) => DEFAULT_TYPE,
        }
    }
}

/// The extension of the last segment of `path`: what follows its last `.`, unless that
/// dot starts the name or ends it.
fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(0) | None => None,
        Some(dot) if dot + 1 == name.len() => None,
        Some(dot) => Some(&name[dot + 1..]),
    }
}

/// Compares a lowercase table key with `ext` as if `ext` were ASCII-lowercased, without
/// allocating.
fn cmp_folded(key: &str, ext: &str) -> Ordering {
    key.bytes().cmp(ext.bytes().map(|b| b.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(e, t)| (e.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn builtin_table_is_sorted_unique_lowercase_and_large() {
        assert!(BUILTIN.len() >= 50, "only {} entries", BUILTIN.len());
        for w in BUILTIN.windows(2) {
            assert!(w[0].0 < w[1].0, "{} must sort before {}", w[0].0, w[1].0);
        }
        for (ext, ty) in BUILTIN {
            assert_eq!(*ext, ext.to_ascii_lowercase());
            assert!(!ext.starts_with('.') && !ext.is_empty());
            assert!(ty.contains('/'), "{ext}: {ty}");
            if ty.starts_with("text/") {
                assert!(ty.ends_with("; charset=utf-8"), "{ext}: {ty}");
            }
        }
    }

    #[test]
    fn common_types() {
        let t = MimeTable::new(&[]);
        for (path, ty) in [
            ("/index.html", "text/html; charset=utf-8"),
            ("index.htm", "text/html; charset=utf-8"),
            ("a/style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json"),
            ("app.js.map", "application/json"),
            ("logo.svg", "image/svg+xml"),
            ("p.png", "image/png"),
            ("p.jpg", "image/jpeg"),
            ("p.jpeg", "image/jpeg"),
            ("favicon.ico", "image/x-icon"),
            ("m.wasm", "application/wasm"),
            ("f.woff2", "font/woff2"),
            ("site.webmanifest", "application/manifest+json"),
            ("README.md", "text/markdown; charset=utf-8"),
            ("data.bin", "application/octet-stream"),
            ("x.tar.gz", "application/gzip"),
            ("a.7z", "application/x-7z-compressed"),
            ("notes.txt", "text/plain; charset=utf-8"),
        ] {
            assert_eq!(t.for_path(path), ty, "{path}");
        }
    }

    #[test]
    fn extension_is_case_insensitive() {
        let t = MimeTable::new(&[]);
        assert_eq!(t.for_path("INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(t.for_path("photo.JpG"), "image/jpeg");
        assert_eq!(t.for_path("font.WOFF2"), "font/woff2");
    }

    #[test]
    fn no_extension_leading_dot_and_unknown_are_octet_stream() {
        let t = MimeTable::new(&[]);
        for path in [
            "noext",
            "/dir/noext",
            ".htaccess",
            "/a/.env",
            "trailing.",
            "/some.dir/file",
            "/some.html/",
            "",
            "/",
            "x.unknownext",
            "x.h\u{e9}",
        ] {
            assert_eq!(t.for_path(path), DEFAULT_TYPE, "{path:?}");
        }
    }

    #[test]
    fn extension_takes_the_last_dot_of_the_last_segment() {
        assert_eq!(extension("a.b/c.d.txt"), Some("txt"));
        assert_eq!(extension("a.b/c"), None);
        assert_eq!(extension(".profile"), None);
        assert_eq!(extension("..x"), Some("x"));
        assert_eq!(extension("x."), None);
    }

    #[test]
    fn configured_entries_override_and_extend() {
        let t = MimeTable::new(&pairs(&[
            ("md", "text/x-doc"),
            (".GLB", "model/gltf-binary"),
            ("Foo", "application/x-foo"),
            ("", "ignored/empty"),
            (".", "ignored/dot"),
        ]));
        assert_eq!(t.for_path("/README.md"), "text/x-doc");
        assert_eq!(t.for_path("/README.MD"), "text/x-doc");
        assert_eq!(t.for_path("/scene.glb"), "model/gltf-binary");
        assert_eq!(t.for_path("/x.FOO"), "application/x-foo");
        assert_eq!(t.for_path("/x.foo"), "application/x-foo");
        // Untouched built-ins still apply.
        assert_eq!(t.for_path("/style.css"), "text/css; charset=utf-8");
        assert_eq!(t.for_path("/noext"), DEFAULT_TYPE);
        assert_eq!(t.for_path("/trailing."), DEFAULT_TYPE);
    }

    #[test]
    fn later_spelling_of_the_same_extension_wins() {
        let t = MimeTable::new(&pairs(&[
            ("txt", "text/first"),
            (".TXT", "text/second"),
            ("Txt", "text/third"),
        ]));
        assert_eq!(t.for_path("a.txt"), "text/third");
    }
}
