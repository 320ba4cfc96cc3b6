//! Validators and conditional requests (RFC 9110 §8.8, §13).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::date::parse_http_date;
use super::fields::{trim, trim_start};

/// A strong entity-tag for a file, quoted: `"<ino>-<size>-<mtime ns>"`, all in
/// lowercase hex.
///
/// Between the quotes there are only hex digits and `-`, so the tag can also go
/// into a multipart boundary. An mtime before the epoch is written as the two's
/// complement of its (negative) nanosecond count, so it stays distinct.
pub(crate) fn file_etag(ino: u64, size: u64, mtime: SystemTime) -> String {
    let nanos: i128 = match mtime.duration_since(UNIX_EPOCH) {
        // A Duration holds at most ~1.8e28 ns, well inside i128.
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    format!("\"{ino:x}-{size:x}-{nanos:x}\"")
}

/// If-None-Match (RFC 9110 §13.1.2): whether `header` matches `etag`.
///
/// `*` matches any current representation. Otherwise `header` is a list of
/// entity-tags compared weakly (`W/"x"` matches `"x"`); empty list elements
/// and OWS around commas are fine, and a malformed member matches nothing.
pub(crate) fn none_match(header: &[u8], etag: &str) -> bool {
    list_matches(header, etag, false)
}

/// If-Match (RFC 9110 §13.1.1): whether `header` matches `etag`, so the
/// request may go on; when it does not, the answer is 412.
///
/// `*` matches any current representation. Otherwise the list's
/// entity-tags are compared strongly: a weak tag never matches.
pub(crate) fn match_strong(header: &[u8], etag: &str) -> bool {
    list_matches(header, etag, true)
}

/// Whether the list of entity-tags in `header` (or `*`) matches `etag`,
/// comparing strongly (both tags strong and equal) or weakly.
fn list_matches(header: &[u8], etag: &str, strong: bool) -> bool {
    let header = trim(header);
    if header == b"*" {
        return true;
    }
    let Some((ours_weak, ours)) = parse_entity_tag(etag.as_bytes()) else {
        return false;
    };
    let mut rest = header;
    loop {
        rest = trim_start_list(rest);
        if rest.is_empty() {
            return false;
        }
        match parse_entity_tag_prefix(rest) {
            Some((weak, opaque, after)) if at_member_end(after) => {
                if opaque == ours && !(strong && (weak || ours_weak)) {
                    return true;
                }
                rest = after;
            }
            // Malformed: skip to the next comma.
            _ => match rest.iter().position(|&b| b == b',') {
                Some(comma) => rest = &rest[comma + 1..],
                None => return false,
            },
        }
    }
}

/// If-Unmodified-Since (RFC 9110 §13.1.4): whether the file, last modified
/// at `mtime`, changed after the date in `header`, so the answer is 412.
///
/// A header that is not a valid HTTP date is ignored (gives `false`).
pub(crate) fn modified_since(header: &[u8], mtime: SystemTime) -> bool {
    parse_http_date(header).is_some_and(|since| whole_seconds(mtime) > since)
}

/// If-Modified-Since (RFC 9110 §13.1.3): whether the file, last modified at
/// `mtime`, is unchanged since the date in `header`.
///
/// The mtime is compared in whole seconds, as it was sent in Last-Modified.
/// A header that is not a valid HTTP date gives `false`.
pub(crate) fn not_modified_since(header: &[u8], mtime: SystemTime) -> bool {
    parse_http_date(header).is_some_and(|since| whole_seconds(mtime) <= since)
}

/// If-Range (RFC 9110 §13.1.5): whether a Range request may be honoured.
///
/// An entity-tag must match `etag` by strong comparison (a weak tag never
/// holds); an HTTP date must equal `mtime` truncated to whole seconds
/// exactly, and only counts when that Last-Modified is a strong validator:
/// at least one second older than `now` (§8.8.2.2), since a file changed
/// twice within its last second would otherwise look unchanged. Anything
/// else gives `false`, so the full representation is sent.
pub(crate) fn if_range_holds(
    header: &[u8],
    etag: &str,
    mtime: SystemTime,
    now: SystemTime,
) -> bool {
    let header = trim(header);
    if header.starts_with(b"W/") || header.starts_with(b"\"") {
        return match (parse_entity_tag(header), parse_entity_tag(etag.as_bytes())) {
            (Some((false, theirs)), Some((false, ours))) => theirs == ours,
            _ => false,
        };
    }
    let strong = whole_seconds(mtime) + Duration::from_secs(1) <= whole_seconds(now);
    strong && parse_http_date(header).is_some_and(|date| date == whole_seconds(mtime))
}

/// `t` rounded down to a whole second (towards the past, also before the epoch).
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(e) => {
            let before = e.duration();
            let secs = before.as_secs() + u64::from(before.subsec_nanos() > 0);
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs))
                .unwrap_or(t)
        }
    }
}

/// Parses exactly one entity-tag: `(weak, opaque-tag with its quotes)`.
fn parse_entity_tag(v: &[u8]) -> Option<(bool, &[u8])> {
    match parse_entity_tag_prefix(v) {
        Some((weak, opaque, [])) => Some((weak, opaque)),
        _ => None,
    }
}

/// Parses an entity-tag at the start of `v`: `(weak, opaque-tag, rest)`.
///
/// `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`, with
/// `etagc = %x21 / %x23-7E / obs-text`.
fn parse_entity_tag_prefix(v: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (weak, v) = match v.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let inner = v.strip_prefix(b"\"")?;
    let close = inner.iter().position(|&b| !is_etagc(b))?;
    if inner[close] != b'"' {
        return None;
    }
    // The opaque tag keeps both quotes.
    Some((weak, &v[..close + 2], &v[close + 2..]))
}

/// Whether `b` may appear between an entity-tag's quotes.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Whether `v` is the end of a list member: only OWS before a comma or the end.
fn at_member_end(v: &[u8]) -> bool {
    matches!(trim_start(v).first(), None | Some(b','))
}

/// Skips OWS and empty list elements.
fn trim_start_list(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b','))
        .unwrap_or(v.len());
    &v[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// 1994-11-06 08:49:37 UTC.
    const T: u64 = 784_111_777;
    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    /// A `now` long after every modification time in these tests.
    fn later() -> SystemTime {
        at(2_000_000_000, 0)
    }

    #[test]
    fn etag_is_strong_quoted_hex() {
        let tag = file_etag(0x1234, 20, at(T, 5));
        assert_eq!(
            tag,
            format!("\"1234-14-{:x}\"", u128::from(T) * 1_000_000_000 + 5)
        );
        let inner = tag.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        assert!(inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        assert!(inner.bytes().all(|b| !b.is_ascii_uppercase()));
        // Any change to inode, size or mtime changes the tag.
        assert_ne!(tag, file_etag(0x1235, 20, at(T, 5)));
        assert_ne!(tag, file_etag(0x1234, 21, at(T, 5)));
        assert_ne!(tag, file_etag(0x1234, 20, at(T, 6)));
        let before = UNIX_EPOCH - Duration::from_secs(1);
        let old = file_etag(1, 1, before);
        assert_ne!(old, file_etag(1, 1, UNIX_EPOCH));
        assert_ne!(old, file_etag(1, 1, UNIX_EPOCH - Duration::from_secs(2)));
        let inner = old.trim_matches('"');
        assert!(inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }

    #[test]
    fn none_match_star_and_lists() {
        let etag = "\"abc-1\"";
        assert!(none_match(b"*", etag));
        assert!(none_match(b"  *  ", etag));
        assert!(none_match(b"\"abc-1\"", etag));
        assert!(none_match(b"W/\"abc-1\"", etag));
        assert!(none_match(b"\"x\", \"abc-1\"", etag));
        assert!(none_match(b"\"x\" ,\t W/\"abc-1\" , \"y\"", etag));
        assert!(none_match(b", ,\"x\",,\"abc-1\",", etag));
        assert!(none_match(b"\"a,b\", \"abc-1\"", etag));
        assert!(!none_match(b"\"abc-2\"", etag));
        assert!(!none_match(b"\"ABC-1\"", etag));
        assert!(!none_match(b"", etag));
        assert!(!none_match(b",,", etag));
        assert!(!none_match(b"**", etag));
        assert!(!none_match(b"*, \"abc-1x\"", etag));
    }

    #[test]
    fn none_match_malformed_members_do_not_match() {
        let etag = "\"abc-1\"";
        assert!(!none_match(b"abc-1", etag));
        assert!(!none_match(b"w/\"abc-1\"", etag));
        assert!(!none_match(b"\"abc-1", etag));
        assert!(!none_match(b"\"abc-1\"x", etag));
        assert!(!none_match(b"\"abc 1\"", etag));
        assert!(!none_match(b"W/ \"abc-1\"", etag));
        // A malformed member does not spoil the others.
        assert!(none_match(b"garbage, \"abc-1\"", etag));
        assert!(none_match(b"\"abc-1\"junk, W/\"abc-1\"", etag));
        assert!(none_match(b"\xff\xfe, \"abc-1\"", etag));
    }

    #[test]
    fn a_weak_etag_of_ours_compares_weakly() {
        assert!(none_match(b"\"v\"", "W/\"v\""));
        assert!(!if_range_holds(b"\"v\"", "W/\"v\"", UNIX_EPOCH, later()));
        assert!(!none_match(b"\"v\"", "not a tag"));
    }

    #[test]
    fn not_modified_since_compares_whole_seconds() {
        assert!(not_modified_since(DATE, at(T, 0)));
        assert!(not_modified_since(DATE, at(T, 999_999_999)));
        assert!(not_modified_since(DATE, at(T - 1, 0)));
        assert!(not_modified_since(DATE, UNIX_EPOCH));
        assert!(!not_modified_since(DATE, at(T + 1, 0)));
        assert!(not_modified_since(
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            at(T, 1)
        ));
        assert!(not_modified_since(b"Sun Nov  6 08:49:37 1994", at(T, 1)));
        assert!(not_modified_since(
            b" Sun, 06 Nov 1994 08:49:37 GMT ",
            at(T, 1)
        ));
        assert!(!not_modified_since(b"", at(T, 0)));
        assert!(!not_modified_since(b"yesterday", UNIX_EPOCH));
        assert!(!not_modified_since(
            b"Sun, 06 Nov 1994 08:49:37",
            UNIX_EPOCH
        ));
    }

    #[test]
    fn not_modified_since_before_the_epoch() {
        let mtime = UNIX_EPOCH - Duration::from_millis(500);
        assert!(!not_modified_since(b"Wed, 31 Dec 1969 23:59:58 GMT", mtime));
        assert!(not_modified_since(b"Wed, 31 Dec 1969 23:59:59 GMT", mtime));
        assert_eq!(whole_seconds(mtime), UNIX_EPOCH - Duration::from_secs(1));
        let exact = UNIX_EPOCH - Duration::from_secs(3);
        assert_eq!(whole_seconds(exact), exact);
    }

    #[test]
    fn if_range_with_an_entity_tag_is_strong() {
        let etag = "\"abc-1\"";
        let mtime = at(T, 0);
        assert!(if_range_holds(b"\"abc-1\"", etag, mtime, later()));
        assert!(if_range_holds(b"  \"abc-1\"\t", etag, mtime, later()));
        assert!(!if_range_holds(b"W/\"abc-1\"", etag, mtime, later()));
        assert!(!if_range_holds(b"\"abc-2\"", etag, mtime, later()));
        assert!(!if_range_holds(b"\"old\"", etag, mtime, later()));
        assert!(!if_range_holds(
            b"\"abc-1\", \"abc-1\"",
            etag,
            mtime,
            later()
        ));
        assert!(!if_range_holds(b"\"abc-1", etag, mtime, later()));
        assert!(!if_range_holds(b"*", etag, mtime, later()));
    }

    #[test]
    fn if_match_compares_strongly() {
        let etag = "\"abc-1\"";
        assert!(match_strong(b"\"abc-1\"", etag));
        assert!(match_strong(b"\"x\", \"abc-1\"", etag));
        assert!(match_strong(b" * ", etag));
        assert!(!match_strong(b"W/\"abc-1\"", etag));
        assert!(!match_strong(b"\"abc-1\"", "W/\"abc-1\""));
        assert!(!match_strong(b"\"abc-2\"", etag));
        assert!(!match_strong(b"", etag));
        assert!(!match_strong(b"abc-1", etag));
        assert!(match_strong(b"junk, \"abc-1\"", etag));
    }

    #[test]
    fn if_unmodified_since_fails_only_for_a_later_change() {
        assert!(!modified_since(DATE, at(T, 0)));
        assert!(!modified_since(DATE, at(T, 999_999_999)));
        assert!(!modified_since(DATE, at(T - 1, 0)));
        assert!(modified_since(DATE, at(T + 1, 0)));
        assert!(!modified_since(b"not a date", at(T + 1, 0)));
        assert!(!modified_since(b"", at(T + 1, 0)));
    }

    #[test]
    fn if_range_with_a_date_needs_a_strong_last_modified() {
        let etag = "\"abc-1\"";
        // Modified within the second before now: weak, so the range is not honoured.
        assert!(!if_range_holds(DATE, etag, at(T, 0), at(T, 900_000_000)));
        assert!(if_range_holds(DATE, etag, at(T, 0), at(T + 1, 0)));
    }

    #[test]
    fn if_range_with_a_date_must_be_exact() {
        let etag = "\"abc-1\"";
        assert!(if_range_holds(DATE, etag, at(T, 0), later()));
        assert!(if_range_holds(DATE, etag, at(T, 123_456_789), later()));
        assert!(if_range_holds(
            b"Sun Nov  6 08:49:37 1994",
            etag,
            at(T, 0),
            later()
        ));
        assert!(!if_range_holds(DATE, etag, at(T - 1, 0), later()));
        assert!(!if_range_holds(DATE, etag, at(T + 1, 0), later()));
        assert!(!if_range_holds(b"", etag, at(T, 0), later()));
        assert!(!if_range_holds(b"not a date", etag, at(T, 0), later()));
    }
}
