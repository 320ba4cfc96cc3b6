//! Header field values as RFC 9110 writes them: a header found by name,
//! optional whitespace (OWS) trimmed, comma-separated token lists and
//! decimal numbers. The one copy of each: the head parser, the body and
//! validator readers, the WebSocket handshake, the gateway and auth all
//! call these.

/// Finds the first header with this name (case-insensitive).
pub(crate) fn find_header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Parses 1*DIGIT without sign or spaces, refusing overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether `b` is optional whitespace: SP or HTAB (RFC 9110 §5.6.3 OWS).
fn is_ows(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Strips optional whitespace (SP / HTAB) from the start.
pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    &s[start..]
}

/// Strips optional whitespace (SP / HTAB) from both ends.
///
/// The one trim of header values: every HTTP and WebSocket parser calls it.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(0, |p| p + 1);
    &s[..end]
}

/// The comma-separated tokens of every header with one name.
pub(crate) struct Tokens<'h, 'a> {
    headers: &'h [httparse::Header<'a>],
    name: &'static str,
    pub present: bool,
}

impl<'h, 'a> Tokens<'h, 'a> {
    pub fn of(headers: &'h [httparse::Header<'a>], name: &'static str) -> Self {
        let present = headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
        Tokens {
            headers,
            name,
            present,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(self.name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .map(trim)
            .filter(|t| !t.is_empty())
    }

    pub fn has(&self, token: &str) -> bool {
        self.present
            && self
                .iter()
                .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    pub fn last(&self) -> Option<&'a [u8]> {
        self.iter().last()
    }

    pub fn count(&self) -> usize {
        self.iter().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), None); // 20 digits
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1 2"), None);
    }
}
