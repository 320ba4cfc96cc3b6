//! Password hashes: Argon2id (RFC 9106) in PHC form, from RustCrypto's
//! `argon2`. The parameters are modest for a small device: 7 MiB and 5
//! passes (one of OWASP's recommended Argon2id settings), about 25 ms per
//! verify on the development machine (README "Dependencies"). A verify
//! takes the parameters written in the hash, so hashes made with other
//! settings keep working.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory per hash or verify, in KiB.
pub(crate) const MEMORY_KIB: u32 = 7 * 1024;
/// Passes over that memory.
pub(crate) const PASSES: u32 = 5;

/// The hasher `wisp --hash-password` uses.
fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` for a user's `password` in `web.auth.users` (what
/// `wisp --hash-password` prints): Argon2id with 7 MiB and 5 passes, a
/// fresh random salt, in PHC form (`$argon2id$v=19$m=7168,t=5,p=1$…`).
///
/// ```
/// let hash = wisp::hash_password("wisp-demo");
/// assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
/// ```
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    crate::entropy::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a salt");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashes any password")
        .to_string()
}

/// True when `hash` is a hash `verify` can use (checked at start).
pub(crate) fn is_valid(hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| h.hash.is_some() && h.salt.is_some() && Params::try_from(&h).is_ok())
}

/// True when `password` is the one `hash` was made from. The comparison of
/// the computed hash is constant-time (`argon2`'s own).
pub(crate) fn verify(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash that matches no password, verified when the user name is unknown
/// so that a wrong name takes as long as a wrong password.
pub(crate) fn decoy() -> &'static str {
    use std::sync::OnceLock;
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::entropy::token()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("wisp-demo");
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(is_valid(&h));
        assert!(verify("wisp-demo", &h));
        assert!(!verify("wisp-demO", &h));
        assert!(!verify("", &h));
        // A fresh salt each time.
        assert_ne!(h, hash("wisp-demo"));
        assert!(!is_valid("$argon2id$nonsense"));
        assert!(!verify("x", "$argon2id$nonsense"));
        assert!(!verify("x", decoy()));
    }
}
