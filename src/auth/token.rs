//! Route authentication (`routes[].auth`): a bearer token from the
//! `Authorization` header or, because browsers cannot set headers on a
//! WebSocket, from an `access_token` query parameter; checked against a
//! list of tokens or as an HS256 JSON Web Token.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::constant_time_eq;
use crate::config::Auth;
use crate::http::fields::{find_header, trim};
use crate::http::head::Head;

/// Why a request was not let in; answered 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No token was sent.
    Missing,
    /// The token is not one of the accepted ones, or not a valid JWT for this route.
    Invalid(&'static str),
}

impl AuthError {
    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn challenge(self) -> &'static str {
        match self {
            AuthError::Missing => "Bearer",
            AuthError::Invalid(_) => "Bearer error=\"invalid_token\"",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("a bearer token is required"),
            AuthError::Invalid(why) => write!(f, "invalid token: {why}"),
        }
    }
}

/// Checks a request against a route's `auth`; returns the verified JWT
/// claims (`None` for plain bearer tokens).
pub(crate) fn check(
    auth: &Auth,
    head: &Head<'_>,
    now: SystemTime,
) -> Result<Option<Value>, AuthError> {
    let token = token(head).ok_or(AuthError::Missing)?;
    match auth {
        Auth::Bearer { tokens } => {
            // Every token is compared in full, so timing tells nothing about which or how much matched.
            let matched = tokens.iter().fold(false, |any, t| {
                any | constant_time_eq(t.as_bytes(), token.as_bytes())
            });
            if matched {
                Ok(None)
            } else {
                Err(AuthError::Invalid("not an accepted token"))
            }
        }
        Auth::Jwt {
            secret,
            issuer,
            audience,
        } => verify_jwt(
            &token,
            secret.as_bytes(),
            issuer.as_deref(),
            audience.as_deref(),
            now,
        )
        .map(Some)
        .map_err(AuthError::Invalid),
    }
}

/// The token: `Authorization: Bearer …`, else the `access_token` query parameter.
fn token<'h>(head: &Head<'h>) -> Option<Cow<'h, str>> {
    if let Some(value) = find_header(head.headers, "authorization") {
        let value = std::str::from_utf8(trim(value)).ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .then(|| Cow::Borrowed(token.trim()));
    }
    head.query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("access_token=")?;
        crate::http::request::decode_component(value).map(Cow::Owned)
    })
}

/// Verifies an HS256 JWT (RFC 7519): signature, `exp`, `nbf`, and the
/// issuer and audience when the route asks for them.
fn verify_jwt(
    token: &str,
    secret: &[u8],
    issuer: Option<&str>,
    audience: Option<&str>,
    now: SystemTime,
) -> Result<Value, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let signed_len = header.len() + 1 + payload.len();
    let header: Value = decode_json(header).ok_or("bad JWT header")?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err("only HS256 is accepted");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "bad signature encoding")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad secret")?;
    // The signed input is `header.payload`, exactly as sent.
    mac.update(&token.as_bytes()[..signed_len]);
    mac.verify_slice(&signature).map_err(|_| "bad signature")?;
    let claims: Value = decode_json(payload).ok_or("bad JWT payload")?;
    if !claims.is_object() {
        return Err("bad JWT payload");
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match claims.get("exp") {
        None => {}
        Some(exp) => match exp.as_f64() {
            Some(exp) if now < exp => {}
            Some(_) => return Err("expired"),
            None => return Err("bad exp"),
        },
    }
    match claims.get("nbf") {
        None => {}
        Some(nbf) => match nbf.as_f64() {
            Some(nbf) if now >= nbf => {}
            Some(_) => return Err("not valid yet"),
            None => return Err("bad nbf"),
        },
    }
    if let Some(issuer) = issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err("wrong issuer");
        }
    }
    if let Some(audience) = audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err("wrong audience");
        }
    }
    Ok(claims)
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{header_storage, parse_head, HeadLimits};
    use std::time::Duration;

    const SECRET: &str = "0123456789abcdef-test-secret";

    fn sign(header: &str, claims: &Value, secret: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{h}.{p}.{s}")
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn a_good_jwt_gives_its_claims() {
        let claims = serde_json::json!({ "sub": "ann", "iss": "me", "aud": ["x", "dev"], "exp": 2000, "nbf": 1000 });
        let token = sign(HS256, &claims, SECRET);
        let got = verify_jwt(&token, SECRET.as_bytes(), Some("me"), Some("dev"), at(1500));
        assert_eq!(got, Ok(claims));
    }

    #[test]
    fn bad_jwts_are_refused_with_a_reason() {
        let claims = serde_json::json!({ "sub": "ann", "iss": "me", "aud": "dev", "exp": 2000, "nbf": 1000 });
        let good = sign(HS256, &claims, SECRET);
        let v = |t: &str, now| verify_jwt(t, SECRET.as_bytes(), Some("me"), Some("dev"), at(now));
        assert_eq!(v(&good, 2000), Err("expired"));
        assert_eq!(v(&good, 999), Err("not valid yet"));
        assert_eq!(
            v(&sign(HS256, &claims, "another-secret-of-16+"), 1500),
            Err("bad signature")
        );
        assert_eq!(
            v(&sign(r#"{"alg":"none"}"#, &claims, SECRET), 1500),
            Err("only HS256 is accepted")
        );
        assert_eq!(
            v(&sign(r#"{"alg":"HS512"}"#, &claims, SECRET), 1500),
            Err("only HS256 is accepted")
        );
        let other = serde_json::json!({ "iss": "you", "aud": "dev" });
        assert_eq!(v(&sign(HS256, &other, SECRET), 1500), Err("wrong issuer"));
        let other = serde_json::json!({ "iss": "me", "aud": "tv" });
        assert_eq!(v(&sign(HS256, &other, SECRET), 1500), Err("wrong audience"));
        let other = serde_json::json!({ "iss": "me", "aud": "dev", "exp": "soon" });
        assert_eq!(v(&sign(HS256, &other, SECRET), 1500), Err("bad exp"));
        let mut tampered = good.clone();
        tampered.insert(good.find('.').unwrap() + 2, 'x');
        assert!(v(&tampered, 1500).is_err());
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            "..",
            &good[..good.len() - 3],
        ] {
            assert!(v(junk, 1500).is_err(), "{junk:?}");
        }
    }

    fn check_request(auth: &Auth, request: &str) -> Result<Option<Value>, AuthError> {
        let limits = HeadLimits {
            header: 4096,
            headers: 16,
            uri: 2048,
            body: 0,
        };
        let mut storage = header_storage();
        let head = parse_head(request.as_bytes(), &mut storage, &limits)
            .unwrap()
            .unwrap();
        check(auth, &head, at(1500))
    }

    #[test]
    fn tokens_come_from_the_header_or_the_query() {
        let auth = Auth::Bearer {
            tokens: vec!["s3cret".into(), "other".into()],
        };
        let ok = check_request(
            &auth,
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: bearer s3cret\r\n\r\n",
        );
        assert_eq!(ok, Ok(None));
        let ok = check_request(
            &auth,
            "GET /ws?x=1&access_token=s3cret HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(ok, Ok(None));
        let missing = check_request(&auth, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(missing, Err(AuthError::Missing));
        let wrong = check_request(
            &auth,
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cre\r\n\r\n",
        );
        assert!(matches!(wrong, Err(AuthError::Invalid(_))));
        let basic = check_request(
            &auth,
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic czNjcmV0\r\n\r\n",
        );
        assert_eq!(basic, Err(AuthError::Missing));
        let jwt = Auth::Jwt {
            secret: SECRET.into(),
            issuer: None,
            audience: None,
        };
        let token = sign(HS256, &serde_json::json!({ "sub": "bob" }), SECRET);
        let got = check_request(
            &jwt,
            &format!("GET /?access_token={token} HTTP/1.1\r\nHost: h\r\n\r\n"),
        );
        assert_eq!(got, Ok(Some(serde_json::json!({ "sub": "bob" }))));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
