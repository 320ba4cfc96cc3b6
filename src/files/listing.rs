//! A folder's list of files, for a file route with `listing: true` and a
//! folder without an index file.
//!
//! The same names a request could reach are listed: dot files and anything
//! but files and folders are left out, and a folder is listed only if the
//! path check that guards files (`path::resolve`) finds it inside the root.
//! Names are HTML-escaped in the text and percent-encoded in the links.

use std::fmt::Write as _;

use super::path::resolve;
use super::{FileSite, Sink};
use crate::http::error::HttpError;
use crate::http::head::Head;
use crate::http::response::HeadWriter;

/// The most entries listed; a folder with more says how many were left out.
const MAX_ENTRIES: usize = 1000;

/// Writes the listing of the folder `relative` (as `normalize` returned it).
pub(super) fn write(
    site: &FileSite<'_>,
    head: &Head<'_>,
    relative: &str,
    sink: &mut Sink<'_>,
) -> Result<(), HttpError> {
    let found = resolve(site.docs.root(), relative)?;
    if !found.is_dir {
        return Err(HttpError::NotFound);
    }
    let mut entries: Vec<(bool, String)> = std::fs::read_dir(&found.path)
        .map_err(|_| HttpError::Forbidden)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kind = e.file_type().ok()?;
            // A symlink is listed as what it points to, if that is a file or folder.
            let is_dir = if kind.is_symlink() {
                std::fs::metadata(e.path()).ok()?.is_dir()
            } else {
                kind.is_dir()
            };
            let listed = is_dir || kind.is_file() || kind.is_symlink();
            (listed && !name.starts_with('.')).then_some((is_dir, name))
        })
        .collect();
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let body = page(relative, &entries);
    let mut w = HeadWriter::start(sink.out, 200, sink.date, sink.extra);
    w.header("Content-Type", "text/html; charset=utf-8");
    w.header("Cache-Control", "no-cache");
    w.finish(Some(body.len() as u64), sink.close);
    if head.method != "HEAD" {
        sink.out.extend_from_slice(body.as_bytes());
    }
    Ok(())
}

/// The HTML page: folders first, then files, each a relative link.
fn page(relative: &str, entries: &[(bool, String)]) -> String {
    let title = escape(&format!(
        "/{relative}{}",
        if relative.is_empty() { "" } else { "/" }
    ));
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if !relative.is_empty() {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (is_dir, name) in entries.iter().take(MAX_ENTRIES) {
        let slash = if *is_dir { "/" } else { "" };
        let _ = writeln!(
            html,
            "<li><a href=\"./{}{slash}\">{}{slash}</a></li>",
            encode(name),
            escape(name)
        );
    }
    if entries.len() > MAX_ENTRIES {
        let _ = writeln!(html, "<li>… and {} more</li>", entries.len() - MAX_ENTRIES);
    }
    html.push_str("</ul></body></html>\n");
    html
}

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as one path segment of a URL: everything but RFC 3986's
/// unreserved characters percent-encoded.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_links() {
        let html = page(
            "a b",
            &[(true, "sub".into()), (false, "<x>&\"'.txt".into())],
        );
        assert!(html.contains("<title>Index of /a b/</title>"));
        assert!(html.contains("<a href=\"../\">"));
        assert!(html.contains("<a href=\"./sub/\">sub/</a>"));
        assert!(
            html.contains("<a href=\"./%3Cx%3E%26%22%27.txt\">&lt;x&gt;&amp;&quot;&#39;.txt</a>")
        );
        assert!(!page("", &[]).contains("../"), "no parent at the root");
    }

    #[test]
    fn a_long_folder_says_how_many_were_left_out() {
        let many: Vec<(bool, String)> = (0..MAX_ENTRIES + 5)
            .map(|i| (false, format!("f{i}")))
            .collect();
        let html = page("", &many);
        assert_eq!(html.matches("<li>").count(), MAX_ENTRIES + 1);
        assert!(html.contains("… and 5 more"));
    }
}
