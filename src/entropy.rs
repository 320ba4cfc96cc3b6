//! Unpredictable bytes: WebSocket masking keys (RFC 6455 §5.3 asks for "a
//! strong source of entropy"), `Sec-WebSocket-Key`s, request ids and cookie
//! values.
//!
//! Each thread keeps a pool of 4 KiB read from the kernel with `getrandom(2)`
//! (or `/dev/urandom` where that system call is missing or filtered), so a
//! mask costs a copy most of the time: one refill serves about a thousand.
//! A byte is handed out once and zeroed in the pool as it goes.
//!
//! The kernel's source fails, in practice, only in a sandbox that denies both
//! the system call and the device. A server must not panic for that, and the
//! callers (framing, handshakes) have no better answer than to go on, so
//! [`fill`] cannot fail: each refill keeps 32 bytes of what the kernel gave as
//! a key, and while the kernel gives nothing the pool is refilled by hashing
//! that key with a counter and the clock (SHA-256 as a hash chain), logged
//! once per outage. Every refill tries the kernel again first. If the kernel
//! never gave anything, the key holds only the clock, the process id and an
//! address: such bytes are unique, not secret.
//!
//! `getrandom(2)` without flags blocks until the kernel's generator is first
//! seeded, which only an early-boot start on a device with no entropy source
//! can notice.

// The gateway (the lead's branch) is the first caller.
#![cfg_attr(not(test), allow(dead_code))]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Read as _};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustix::rand::{getrandom, GetRandomFlags};
use sha2::{Digest as _, Sha256};

/// The bytes one refill brings: a page.
const POOL: usize = 4096;

/// The front of each refill kept back as the hash chain's key.
const KEY: usize = 32;

/// One thread's supply.
struct Pool {
    /// The current refill; bytes before `used` are gone (zeroed).
    bytes: [u8; POOL],
    /// How many of `bytes` are handed out or kept back; `POOL` when empty.
    used: usize,
    /// The hash chain's key: the front of the latest refill.
    key: [u8; KEY],
    /// Refills made by hashing, so no two give the same bytes.
    counter: u64,
    /// The kernel failed at the last refill (to log an outage once).
    degraded: bool,
}

thread_local! {
    static SUPPLY: RefCell<Pool> = const { RefCell::new(Pool::EMPTY) };
}

/// Fills `buf` with unpredictable bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    SUPPLY.with_borrow_mut(|pool| pool.take(buf));
}

/// A fresh masking key for one client frame.
pub(crate) fn mask() -> [u8; 4] {
    let mut key = [0; 4];
    fill(&mut key);
    key
}

/// Masking keys by the batch, for a hot path that masks every frame: 64
/// keys drawn from the pool at once and handed out from a plain array,
/// without the thread-local pool's borrow on each.
#[derive(Debug)]
pub(crate) struct Masks {
    keys: [[u8; 4]; MASKS],
    next: usize,
}

/// Keys drawn at once.
const MASKS: usize = 64;

impl Default for Masks {
    fn default() -> Masks {
        Masks {
            keys: [[0; 4]; MASKS],
            next: MASKS,
        }
    }
}

impl Masks {
    /// A fresh masking key; each is used once.
    #[inline]
    pub fn next(&mut self) -> [u8; 4] {
        if self.next == MASKS {
            self.refill();
        }
        let key = self.keys[self.next];
        self.keys[self.next] = [0; 4];
        self.next += 1;
        key
    }

    #[cold]
    fn refill(&mut self) {
        fill(self.keys.as_flattened_mut());
        self.next = 0;
    }
}

/// A fresh `Sec-WebSocket-Key`: the base64 of 16 random bytes (24 characters).
pub(crate) fn ws_key() -> String {
    let mut nonce = [0; 16];
    fill(&mut nonce);
    STANDARD.encode(nonce)
}

/// 16 random bytes as 32 lowercase hex digits: request ids, cookie values.
pub(crate) fn token() -> String {
    let mut bytes = [0; 16];
    fill(&mut bytes);
    bytes.iter().fold(String::with_capacity(32), |mut hex, b| {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

impl Pool {
    /// A pool with nothing in it: the first use refills it.
    const EMPTY: Pool = Pool {
        bytes: [0; POOL],
        used: POOL,
        key: [0; KEY],
        counter: 0,
        degraded: false,
    };

    /// Copies the next bytes into `buf`, refilling as often as needed.
    fn take(&mut self, mut buf: &mut [u8]) {
        while !buf.is_empty() {
            if self.used == POOL {
                self.refill();
            }
            let n = buf.len().min(POOL - self.used);
            let (now, rest) = buf.split_at_mut(n);
            let fresh = &mut self.bytes[self.used..self.used + n];
            now.copy_from_slice(fresh);
            fresh.fill(0);
            self.used += n;
            buf = rest;
        }
    }

    /// A new page from the kernel, or from the hash chain while it fails;
    /// its front becomes the next key.
    fn refill(&mut self) {
        match from_kernel(&mut self.bytes) {
            Ok(()) => self.degraded = false,
            Err(e) => {
                if !self.degraded {
                    log::error!("no random bytes from the kernel ({e}): hashing until it recovers");
                }
                self.degraded = true;
                self.stretch();
            }
        }
        self.key.copy_from_slice(&self.bytes[..KEY]);
        self.bytes[..KEY].fill(0);
        self.used = KEY;
    }

    /// Fills the page from the hash chain: SHA-256 of the key, a counter,
    /// the clock, the process and an address, once per 32 bytes.
    fn stretch(&mut self) {
        self.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let base = Sha256::new()
            .chain_update(self.key)
            .chain_update(self.counter.to_le_bytes())
            .chain_update(nanos.to_le_bytes())
            .chain_update(std::process::id().to_le_bytes())
            .chain_update((std::ptr::from_ref(self) as usize).to_le_bytes());
        for (i, block) in self.bytes.chunks_mut(KEY).enumerate() {
            let digest = base.clone().chain_update(i.to_le_bytes()).finalize();
            block.copy_from_slice(&digest[..block.len()]);
        }
    }
}

/// Fills `buf` from `getrandom(2)`, retrying when interrupted, or from
/// `/dev/urandom` if the system call fails otherwise.
fn from_kernel(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match getrandom(&mut buf[filled..], GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return std::fs::File::open("/dev/urandom")?.read_exact(&mut buf[filled..]),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_keys_are_24_chars_of_base64_for_16_bytes() {
        let (a, b) = (ws_key(), ws_key());
        assert_ne!(a, b);
        for key in [a, b] {
            assert_eq!(key.len(), 24, "{key}");
            assert_eq!(STANDARD.decode(&key).map(|k| k.len()), Ok(16), "{key}");
            assert!(crate::ws::handshake::valid_key(key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn tokens_are_32_lowercase_hex_digits() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        for t in [a, b] {
            assert_eq!(t.len(), 32, "{t}");
            assert!(
                t.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{t}"
            );
        }
    }

    #[test]
    fn successive_masks_differ() {
        let masks: Vec<[u8; 4]> = (0..64).map(|_| mask()).collect();
        // 64 draws of 32 bits: a repeat is a one-in-a-million chance.
        for (i, m) in masks.iter().enumerate() {
            assert!(!masks[..i].contains(m), "{m:x?} repeats");
        }
    }

    #[test]
    fn a_take_across_the_end_of_the_pool_refills_it() {
        let mut pool = Pool::EMPTY;
        pool.refill();
        assert_eq!(pool.used, KEY);
        pool.used = POOL - 3;
        let tail = pool.bytes[POOL - 3..].to_vec();
        let mut out = [0; 40];
        pool.take(&mut out);
        assert_eq!(out[..3], tail[..]);
        assert_eq!(pool.used, KEY + 37);
        assert!(out[3..].iter().any(|&b| b != 0), "{out:x?}");
        assert!(pool.bytes[..KEY + 37].iter().all(|&b| b == 0), "handed out");
    }

    #[test]
    fn more_than_a_pool_at_once() {
        let mut big = vec![0; 3 * POOL + 5];
        fill(&mut big);
        // No zeroed stretch (a page handed out twice would show as one).
        assert!(big.chunks(64).all(|c| c.iter().any(|&b| b != 0)));
    }

    #[test]
    fn the_hash_chain_never_repeats_a_page() {
        let mut pool = Pool::EMPTY;
        pool.stretch();
        let first = pool.bytes;
        pool.stretch();
        assert_ne!(first, pool.bytes);
        assert_ne!(first[..KEY], first[KEY..2 * KEY]);
    }
}
