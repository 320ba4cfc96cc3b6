//! Ioto's value syntax: sizes (`'100K'`), durations (`'5 secs'`, `'never'`) and listen URLs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A value that does not parse. Each names the text as given and prints as
/// one line; the configuration reader puts the key in front of it
/// (a [`ConfigError::Invalid`](super::ConfigError::Invalid)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// Not a number of bytes or a size such as `'10K'`.
    NotASize(String),
    /// A size with a unit other than bytes, K, MB or GB: the text, the unit.
    SizeUnit(String, String),
    /// A size beyond `u64::MAX` bytes.
    SizeTooLarge(String),
    /// Not a number of seconds or a duration such as `'5 secs'`.
    NotADuration(String),
    /// A duration with an unknown unit: the text, the unit.
    TimeUnit(String, String),
    /// A duration beyond `u64::MAX` milliseconds.
    DurationTooLong(String),
    /// An `https://` address where only plain ones are taken: given to
    /// [`parse_listen`], or to a server built without the `tls` feature.
    Https(String),
    /// A listen address with a scheme other than `http`: the text, the scheme.
    Scheme(String, String),
    /// Not a listen address.
    NotAnAddress(String),
    /// Not a rate such as `'100/sec'` or `'1MB/sec'`.
    NotARate(String),
    /// A rate of zero.
    ZeroRate(String),
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::NotASize(text) => write!(
                f,
                "{text:?} is not a size (try 1024, '10K', '1MB' or 'unlimited')"
            ),
            UnitError::SizeUnit(text, unit) => {
                write!(f, "{text:?}: unknown size unit {unit:?} (use K, MB or GB)")
            }
            UnitError::SizeTooLarge(text) => write!(f, "{text:?} is too large"),
            UnitError::NotADuration(text) => write!(
                f,
                "{text:?} is not a duration (try 30, '5 secs', '10 mins' or 'never')"
            ),
            UnitError::TimeUnit(text, unit) => write!(
                f,
                "{text:?}: unknown time unit {unit:?} (use ms, secs, mins, hrs or days)"
            ),
            UnitError::DurationTooLong(text) => write!(f, "{text:?} is too long"),
            UnitError::Https(text) if cfg!(feature = "tls") => {
                write!(f, "{text:?}: an https address is not a plain one")
            }
            UnitError::Https(text) => write!(
                f,
                "{text:?}: https needs wisp built with its `tls` feature (on by default)"
            ),
            UnitError::Scheme(text, scheme) => write!(f, "{text:?}: unknown scheme {scheme:?}"),
            UnitError::NotAnAddress(text) => write!(
                f,
                "{text:?} is not a listen address (try 'http://:8080' or 'http://127.0.0.1:8080')"
            ),
            UnitError::NotARate(text) => {
                write!(f, "{text:?} is not a rate (try '100/sec' or '1MB/sec')")
            }
            UnitError::ZeroRate(text) => write!(f, "{text:?} must be more than zero"),
        }
    }
}

impl std::error::Error for UnitError {}

/// Parses a size: a whole number of bytes or a string such as `'10K'`, `'1 MB'`,
/// `'2GB'` (binary multiples) or `'unlimited'` (→ `u64::MAX`).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    if is_unlimited(t) {
        return Ok(u64::MAX);
    }
    let (number, unit) = split_number(t);
    let n: u64 = number
        .parse()
        .map_err(|_| UnitError::NotASize(text.into()))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(UnitError::SizeUnit(text.into(), unit.into())),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| UnitError::SizeTooLarge(text.into()))
}

/// Parses a duration: seconds as a number, or a string such as `'500 ms'`,
/// `'5 secs'`, `'10 mins'`, `'1 hr'`, `'2 days'`. `'never'`, `'infinite'` and
/// `'unlimited'` mean no limit (`None`).
pub fn parse_duration(text: &str) -> Result<Option<Duration>, UnitError> {
    let t = text.trim();
    if is_unlimited(t) {
        return Ok(None);
    }
    let (number, unit) = split_number(t);
    let n: u64 = number
        .parse()
        .map_err(|_| UnitError::NotADuration(text.into()))?;
    let millis_per: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(UnitError::TimeUnit(text.into(), unit.into())),
    };
    n.checked_mul(millis_per)
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| UnitError::DurationTooLong(text.into()))
}

fn is_unlimited(t: &str) -> bool {
    ["unlimited", "never", "infinite", "forever"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w))
}

/// Splits `"10 K"` into `("10", "K")`.
fn split_number(t: &str) -> (&str, &str) {
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    (&t[..end], t[end..].trim())
}

/// Parses a plain listen address: `'http://:8080'` (every IPv4 interface),
/// `'http://127.0.0.1:9000'`, `'http://[::1]:8080'`, `'http://localhost:80'`,
/// or the same without the scheme (`'127.0.0.1:0'`, `':8080'`, `'8080'`).
/// A missing port means 80. An `https://` address is refused here; see
/// [`parse_listen_url`].
pub fn parse_listen(text: &str) -> Result<SocketAddr, UnitError> {
    match parse_listen_url(text)? {
        (addr, false) => Ok(addr),
        (_, true) => Err(UnitError::Https(text.into())),
    }
}

/// Parses a listen address of either scheme: the forms of [`parse_listen`],
/// and `'https://:8443'` and the like (a missing port means 443 there).
/// Returns the address and whether it is `https`. Without the `tls`
/// feature an `https` address is an error.
pub fn parse_listen_url(text: &str) -> Result<(SocketAddr, bool), UnitError> {
    let t = text.trim();
    let (rest, tls) = match t.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, false),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") && cfg!(feature = "tls") => {
            (rest, true)
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(UnitError::Https(text.into()))
        }
        Some((scheme, _)) => return Err(UnitError::Scheme(text.into(), scheme.into())),
        None => (t, false),
    };
    let default_port = if tls { "443" } else { "80" };
    host_port(text, rest, default_port).map(|addr| (addr, tls))
}

/// `host:port` (or a port alone, or a host alone with `default_port`) of
/// a listen address; `text` is the whole address, for the error.
fn host_port(text: &str, rest: &str, default_port: &str) -> Result<SocketAddr, UnitError> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || UnitError::NotAnAddress(text.into());
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    if let Ok(port) = rest.parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() || !p.is_empty() => {
            // "[::1]" alone has colons but no port.
            if h.starts_with('[') && !h.ends_with(']') {
                (rest, default_port)
            } else {
                (h, p)
            }
        }
        _ => (rest, default_port),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = match host {
        "" | "*" => Ipv4Addr::UNSPECIFIED.into(),
        h if h.eq_ignore_ascii_case("localhost") => Ipv4Addr::LOCALHOST.into(),
        h => h.parse().map_err(|_| bad())?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases = [
            ("1024", 1024),
            ("10K", 10 << 10),
            ("10k", 10 << 10),
            ("100KB", 100 << 10),
            ("1MB", 1 << 20),
            ("1 MB", 1 << 20),
            ("2GB", 2 << 30),
            ("unlimited", u64::MAX),
            ("0", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "K",
            "10X",
            "-1",
            "1.5MB",
            "99999999999999999999",
            "18014398509481984G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let s = |n| Some(Duration::from_secs(n));
        let cases = [
            ("30", s(30)),
            ("500 ms", Some(Duration::from_millis(500))),
            ("500ms", Some(Duration::from_millis(500))),
            ("5 secs", s(5)),
            ("1 sec", s(1)),
            ("10 mins", s(600)),
            ("1 hr", s(3600)),
            ("2 hours", s(7200)),
            ("1 day", s(86_400)),
            ("never", None),
            ("infinite", None),
            ("Never", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "soon", "5 fortnights", "-5 secs", "1.5 secs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_name_the_text() {
        fn message<T: fmt::Debug>(r: Result<T, UnitError>) -> String {
            r.unwrap_err().to_string()
        }
        let cases = [
            (
                message(parse_size("lots")),
                r#""lots" is not a size (try 1024, '10K', '1MB' or 'unlimited')"#,
            ),
            (
                message(parse_size("10X")),
                r#""10X": unknown size unit "X" (use K, MB or GB)"#,
            ),
            (
                message(parse_size("18014398509481984G")),
                r#""18014398509481984G" is too large"#,
            ),
            (
                message(parse_duration("soon")),
                r#""soon" is not a duration (try 30, '5 secs', '10 mins' or 'never')"#,
            ),
            (
                message(parse_duration("5 fortnights")),
                r#""5 fortnights": unknown time unit "fortnights" (use ms, secs, mins, hrs or days)"#,
            ),
            (
                message(parse_duration("18446744073709552 secs")),
                r#""18446744073709552 secs" is too long"#,
            ),
            (
                message(parse_listen("https://:443")),
                if cfg!(feature = "tls") {
                    r#""https://:443": an https address is not a plain one"#
                } else {
                    r#""https://:443": https needs wisp built with its `tls` feature (on by default)"#
                },
            ),
            (
                message(parse_listen("ftp://:21")),
                r#""ftp://:21": unknown scheme "ftp""#,
            ),
            (
                message(parse_listen("http://:80/path")),
                r#""http://:80/path" is not a listen address (try 'http://:8080' or 'http://127.0.0.1:8080')"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn listen_addresses() {
        let cases = [
            ("http://:8080", "0.0.0.0:8080"),
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("http://[::1]", "[::1]:80"),
            ("HTTP://localhost:81/", "127.0.0.1:81"),
            ("http://10.0.0.1", "10.0.0.1:80"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            (":8080", "0.0.0.0:8080"),
            ("8080", "0.0.0.0:8080"),
            ("http://*:80", "0.0.0.0:80"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_listen(text), Ok(want.parse().unwrap()), "{text}");
        }
        for bad in [
            "https://:443",
            "ftp://:21",
            "http://host.example:80",
            "http://:99999",
            "http://:80/path",
            "",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
