//! `web.tls`: the certificate, key and client authentication of the
//! `https://` listeners, with EmbedThis Ioto's key names.
//!
//! ```json5
//! tls: {
//!     certificate: 'certs/device.crt',  // PEM chain, leaf first; or 'generate'
//!     key: 'certs/device.key',          // PEM key (not needed with 'generate')
//!     authority: 'certs/ca.crt',        // CAs of client certificates (optional)
//!     verify: { client: false },        // require a client certificate
//!     ciphers: [],                      // IANA suite names; [] for rustls' defaults
//!     allowExpired: false,              // start with an expired certificate
//!     store: './state/',                // where 'generate' keeps its pair
//! }
//! ```
//!
//! `certificate: 'generate'` is for a device's first boot: the server makes a
//! self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and the
//! `https://` listen addresses, writes it and its key as PEM into `store`
//! (created if missing; the key with mode 0600), and uses the same pair on
//! every later start while it is there and valid. Its SHA-256 fingerprint is
//! [`Server::tls_fingerprint`](crate::Server::tls_fingerprint), for a client
//! to pin.
//!
//! The files are read again, and new handshakes use them, on
//! [`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls) (the `wisp`
//! binary: on SIGHUP); a pair that does not load keeps the old one.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::read::{self, fail, Obj};

/// The TLS settings (`web.tls`). They matter only when `listen` has an
/// `https://` address; such a listener without a certificate and key is a
/// start-up error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain, PEM, leaf first (`certificate`).
    pub certificate: Option<PathBuf>,
    /// The private key, PEM: PKCS#8, PKCS#1 RSA or SEC1 EC (`key`).
    pub key: Option<PathBuf>,
    /// `certificate: 'generate'`: a self-signed certificate made at the first
    /// start and kept in [`Tls::store`]; `certificate` and `key` are then
    /// `None`.
    pub generate: bool,
    /// The folder where a generated certificate and its key are kept
    /// (`store`, default `./state/`, relative to the config's folder),
    /// as `tls-certificate.pem` and `tls-key.pem`.
    pub store: PathBuf,
    /// A PEM bundle of the CAs whose client certificates are accepted
    /// (`authority`).
    pub authority: Option<PathBuf>,
    /// Mutual TLS (`verify: { client: true }`): a client without a
    /// certificate signed by `authority` is refused in the handshake.
    /// Without it, a client certificate is asked for only when `authority`
    /// is set, and not required.
    pub verify_client: bool,
    /// The cipher suites to offer, by their IANA names
    /// (`TLS13_AES_128_GCM_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`,
    /// …); empty (the default) for rustls' safe defaults (`ciphers`).
    pub ciphers: Vec<String>,
    /// Start even when the certificate has expired, with a warning
    /// (`allowExpired`, default false).
    pub allow_expired: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            certificate: None,
            key: None,
            generate: false,
            store: PathBuf::from("./state"),
            authority: None,
            verify_client: false,
            ciphers: Vec::new(),
            allow_expired: false,
        }
    }
}

/// The `certificate` value that asks for a generated certificate.
const GENERATE: &str = "generate";

/// Reads `web.tls`; paths are relative to `base`, the config's folder.
pub(super) fn tls(path: &str, v: &Value, base: &Path) -> read::Result<Tls> {
    let keys = [
        "certificate",
        "key",
        "authority",
        "verify",
        "ciphers",
        "allowExpired",
        "store",
    ];
    let o = Obj::new(path, v, &keys)?;
    let file = |key: &str| -> read::Result<Option<PathBuf>> {
        match o.string(key)? {
            Some(p) if p.is_empty() => fail(&o.path_of(key), "must be a file name"),
            Some(p) => Ok(Some(base.join(p))),
            None => Ok(None),
        }
    };
    let generate = o.string("certificate")?.as_deref() == Some(GENERATE);
    let mut tls = Tls {
        certificate: if generate { None } else { file("certificate")? },
        generate,
        store: base.join(o.string("store")?.unwrap_or_else(|| "state".into())),
        key: file("key")?,
        authority: file("authority")?,
        ciphers: o.strings("ciphers")?.unwrap_or_default(),
        allow_expired: o.boolean("allowExpired")?.unwrap_or(false),
        ..Tls::default()
    };
    if let Some((vpath, v)) = o.get("verify") {
        let verify = Obj::new(&vpath, v, &["client"])?;
        tls.verify_client = verify.boolean("client")?.unwrap_or(false);
    }
    if generate && tls.key.is_some() {
        return fail(
            &o.path_of("key"),
            "certificate: 'generate' makes its own key (in store); leave key out",
        );
    }
    if o.string("store")?.is_some_and(|s| s.is_empty()) {
        return fail(&o.path_of("store"), "must be a folder name");
    }
    if tls.verify_client && tls.authority.is_none() {
        return fail(
            &o.path_of("verify"),
            "client: true needs an authority (the CAs that sign client certificates)",
        );
    }
    Ok(tls)
}
