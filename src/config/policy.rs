//! Who may connect and how fast: route authentication and WebSocket rate limits.

use serde_json::Value;

use super::read::{self, fail, Obj};
use super::units::{parse_size, UnitError};

/// A route's `auth`: who may use it.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `{ type: 'bearer', tokens: ['…'] }`: one of these tokens.
    Bearer {
        /// The accepted tokens.
        tokens: Vec<String>,
    },
    /// `{ type: 'jwt', secret: '…', issuer?, audience? }`: a JSON Web Token
    /// signed with HS256 under `secret`, within its `exp` and `nbf`.
    Jwt {
        /// The HMAC key.
        secret: String,
        /// If set, the token's `iss` must equal it.
        issuer: Option<String>,
        /// If set, the token's `aud` must be or contain it.
        audience: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    // Secrets stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer { tokens } => write!(f, "Bearer({} tokens)", tokens.len()),
            Auth::Jwt {
                issuer, audience, ..
            } => {
                write!(f, "Jwt {{ issuer: {issuer:?}, audience: {audience:?} }}")
            }
        }
    }
}

/// What happens to a message over the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAction {
    /// Drop it (counted in the stats) and keep the connection.
    Drop,
    /// Close the connection with 1008.
    Close,
}

/// `limits.rate`: a token bucket per WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Messages per second (`messages: '100/sec'`), if limited.
    pub messages: Option<f64>,
    /// Payload bytes per second (`bytes: '1MB/sec'`), if limited.
    pub bytes: Option<f64>,
    /// How many messages may come at once before the rate applies (`burst`,
    /// default one second's worth); the byte bucket holds one second's worth.
    pub burst: Option<f64>,
    /// `action: 'drop'` (the default) or `'close'`.
    pub action: RateAction,
}

pub(super) fn auth(path: &str, v: &Value) -> read::Result<Auth> {
    let o = Obj::new(path, v, &["type", "tokens", "secret", "issuer", "audience"])?;
    let kind = o.string("type")?.unwrap_or_default();
    let forbid = |keys: &[&str]| -> read::Result<()> {
        match keys.iter().find(|k| o.get(k).is_some()) {
            Some(k) => fail(&o.path_of(k), format!("does not apply to type '{kind}'")),
            None => Ok(()),
        }
    };
    match kind.as_str() {
        "bearer" => {
            forbid(&["secret", "issuer", "audience"])?;
            let tokens = o.strings("tokens")?.unwrap_or_default();
            if tokens.is_empty() {
                return fail(&o.path_of("tokens"), "needs at least one token");
            }
            let tokens = tokens
                .iter()
                .map(|t| secret_value(&o.path_of("tokens"), t))
                .collect::<read::Result<_>>()?;
            Ok(Auth::Bearer { tokens })
        }
        "jwt" => {
            forbid(&["tokens"])?;
            let secret = match o.string("secret")? {
                Some(s) => secret_value(&o.path_of("secret"), &s)?,
                None => return fail(&o.path_of("secret"), "is required"),
            };
            if secret.len() < 16 {
                return fail(&o.path_of("secret"), "must be at least 16 bytes");
            }
            Ok(Auth::Jwt {
                secret,
                issuer: o.string("issuer")?,
                audience: o.string("audience")?,
            })
        }
        other => fail(
            &o.path_of("type"),
            format!("{other:?} is not 'bearer' or 'jwt'"),
        ),
    }
}

/// A secret written inline, or `'env:NAME'` to read it from the environment.
fn secret_value(path: &str, text: &str) -> read::Result<String> {
    let Some(name) = text.strip_prefix("env:") else {
        return Ok(text.to_string());
    };
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => fail(path, format!("environment variable {name} is not set")),
    }
}

pub(super) fn rate(path: &str, v: &Value) -> read::Result<Rate> {
    let o = Obj::new(path, v, &["messages", "bytes", "burst", "action"])?;
    let per_second = |key: &str, sized: bool| -> read::Result<Option<f64>> {
        match o.string(key)? {
            None => Ok(None),
            Some(text) => parse_rate(&text, sized)
                .map(Some)
                .or_else(|m| fail(&o.path_of(key), m)),
        }
    };
    let rate = Rate {
        messages: per_second("messages", false)?,
        bytes: per_second("bytes", true)?,
        burst: o.size("burst")?.map(|b| b as f64),
        action: match o.string("action")?.as_deref() {
            None | Some("drop") => RateAction::Drop,
            Some("close") => RateAction::Close,
            Some(other) => {
                return fail(
                    &o.path_of("action"),
                    format!("{other:?} is not 'drop' or 'close'"),
                )
            }
        },
    };
    if rate.messages.is_none() && rate.bytes.is_none() {
        return fail(path, "needs `messages` or `bytes`");
    }
    if rate.burst == Some(0.0) {
        return fail(&o.path_of("burst"), "must be at least 1");
    }
    Ok(rate)
}

/// Parses `'100/sec'`, `'6000/min'`, `'1MB/sec'` (sizes when `sized`) into a per-second rate.
fn parse_rate(text: &str, sized: bool) -> Result<f64, UnitError> {
    let bad = || UnitError::NotARate(text.into());
    let (amount, per) = text.split_once('/').ok_or_else(bad)?;
    let amount = if sized {
        parse_size(amount)? as f64
    } else {
        amount.trim().parse::<u64>().map_err(|_| bad())? as f64
    };
    let seconds = match per.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" => 1.0,
        "m" | "min" | "mins" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    if amount <= 0.0 {
        return Err(UnitError::ZeroRate(text.into()));
    }
    Ok(amount / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/sec", false), Ok(100.0));
        assert_eq!(parse_rate("6000/min", false), Ok(100.0));
        assert_eq!(parse_rate("1MB/sec", true), Ok(1_048_576.0));
        assert_eq!(parse_rate("2K / s", true), Ok(2048.0));
        for bad in ["100", "x/sec", "100/fortnight", "0/sec", "-1/sec"] {
            assert!(parse_rate(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_messages_name_the_text() {
        let message = |text, sized| parse_rate(text, sized).unwrap_err().to_string();
        assert_eq!(
            message("x/sec", false),
            r#""x/sec" is not a rate (try '100/sec' or '1MB/sec')"#
        );
        assert_eq!(message("0/sec", false), r#""0/sec" must be more than zero"#);
        assert_eq!(
            message("1Q/sec", true),
            r#""1Q": unknown size unit "Q" (use K, MB or GB)"#
        );
    }

    #[test]
    fn auth_kinds_and_env_secrets() {
        let v = serde_json::json!({ "type": "bearer", "tokens": ["a", "b"] });
        assert_eq!(
            auth("r", &v),
            Ok(Auth::Bearer {
                tokens: vec!["a".into(), "b".into()]
            })
        );
        std::env::set_var("WISP_TEST_JWT_SECRET", "0123456789abcdef-secret");
        let v = serde_json::json!({ "type": "jwt", "secret": "env:WISP_TEST_JWT_SECRET", "issuer": "me" });
        match auth("r", &v) {
            Ok(Auth::Jwt {
                secret,
                issuer,
                audience,
            }) => {
                assert_eq!(secret, "0123456789abcdef-secret");
                assert_eq!((issuer.as_deref(), audience), (Some("me"), None));
            }
            other => panic!("{other:?}"),
        }
        let cases = [
            (
                serde_json::json!({ "type": "bearer" }),
                "r.tokens: needs at least one token",
            ),
            (
                serde_json::json!({ "type": "jwt", "secret": "short" }),
                "r.secret: must be at least 16 bytes",
            ),
            (
                serde_json::json!({ "type": "jwt", "secret": "env:WISP_NO_SUCH_VAR_X" }),
                "r.secret: environment variable WISP_NO_SUCH_VAR_X is not set",
            ),
            (
                serde_json::json!({ "type": "basic" }),
                "r.type: \"basic\" is not 'bearer' or 'jwt'",
            ),
            (
                serde_json::json!({ "type": "bearer", "tokens": ["a"], "secret": "x" }),
                "r.secret: does not apply to type 'bearer'",
            ),
        ];
        for (v, want) in cases {
            let e = auth("r", &v).unwrap_err();
            assert_eq!(format!("{}: {}", e.key, e.message), want);
        }
    }
}
