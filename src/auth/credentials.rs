//! What a request carries to say who sent it: HTTP Basic credentials
//! (RFC 7617), cookies (RFC 6265), a login form's fields
//! (`application/x-www-form-urlencoded`), and where to send it after.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::http::fields::trim;
use crate::http::head::Head;
use crate::http::request::decode_component;

/// `Authorization: Basic …`: `None` without one, `Some(None)` for one that
/// does not decode to `user:password`.
pub(crate) fn basic(head: &Head<'_>) -> Option<Option<(String, String)>> {
    let value = std::str::from_utf8(trim(head.header("authorization")?)).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok();
    let text = decoded.and_then(|d| String::from_utf8(d).ok());
    Some(text.and_then(|t| {
        let (user, password) = t.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }))
}

/// The value of cookie `name`, from any `Cookie` header.
pub(crate) fn cookie<'h>(head: &Head<'h>, name: &str) -> Option<&'h str> {
    head.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then(|| v.trim_matches('"'))
        })
}

/// The value of field `name` of a urlencoded form, decoded.
pub(crate) fn field(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(n)? == name).then(|| decode_component(v))?
    })
}

/// True for a body sent as `application/x-www-form-urlencoded`.
pub(crate) fn is_form(head: &Head<'_>) -> bool {
    head.header("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `next` if it is a path on this server (`/admin?x=1`), else `/`: a login
/// never sends the browser elsewhere (`//evil`, `/\evil`, `https://…`).
pub(crate) fn local_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

/// A browser's navigation: a `GET` or `HEAD` that accepts `text/html`.
pub(crate) fn wants_html(head: &Head<'_>) -> bool {
    matches!(head.method, "GET" | "HEAD")
        && head
            .header("accept")
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// Percent-encodes `text` for a query value.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_head;

    #[test]
    fn basic_credentials() {
        let got = |h: &str| with_head(&format!("GET / HTTP/1.1\r\nHost: h\r\n{h}\r\n\r\n"), basic);
        // alice:s3cret:with:colons
        let ok = format!("Authorization: Basic {}", STANDARD.encode("alice:s3:cret"));
        assert_eq!(got(&ok), Some(Some(("alice".into(), "s3:cret".into()))));
        assert_eq!(got("Authorization: basic !!!"), Some(None));
        let no_colon = format!("Authorization: Basic {}", STANDARD.encode("alice"));
        assert_eq!(got(&no_colon), Some(None));
        assert_eq!(got("Authorization: Bearer x"), None);
        assert_eq!(got("X: y"), None);
    }

    #[test]
    fn cookies_forms_and_next() {
        let head =
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; wisp-session=abc\r\nCookie: b=\"2\"\r\n\r\n";
        let got = |name: &str| with_head(head, |h| cookie(h, name).map(str::to_string));
        assert_eq!(got("wisp-session").as_deref(), Some("abc"));
        assert_eq!(got("b").as_deref(), Some("2"));
        assert_eq!(got("c"), None);
        let body = b"username=al%69ce&password=a+b%26c&next=%2Fadmin";
        assert_eq!(field(body, "username").as_deref(), Some("alice"));
        assert_eq!(field(body, "password").as_deref(), Some("a b&c"));
        assert_eq!(field(body, "next").as_deref(), Some("/admin"));
        assert_eq!(field(body, "other"), None);
        assert_eq!(local_next(Some("/admin?x=1")), "/admin?x=1");
        for bad in [
            "//evil.example",
            "/\\evil",
            "https://evil",
            "evil",
            "/a b",
            "",
        ] {
            assert_eq!(local_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_next(None), "/");
        assert_eq!(encode_component("/a b?c"), "/a%20b%3Fc");
    }
}
