//! Who a request comes from, sans I/O: bearer tokens and JWTs for a
//! route's `auth` ([`token`]), and for `web.auth` the users' passwords
//! ([`password`]), HTTP Basic credentials, cookies and login forms
//! ([`credentials`]), login sessions with their XSRF tokens ([`sessions`]),
//! and the per-address limit on login attempts ([`attempts`]).
//!
//! Depends on `config`, `http` and `entropy`; `app` calls it.

pub(crate) mod attempts;
pub(crate) mod credentials;
pub(crate) mod gate;
pub(crate) mod password;
pub(crate) mod sessions;
mod token;

pub(crate) use token::check;

/// Compares without an early exit (the lengths may differ).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}
