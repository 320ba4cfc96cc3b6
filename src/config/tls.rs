//! `web.tls`: the certificate, key and client authentication of the
//! `https://` listeners, with EmbedThis Ioto's key names.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::read::{self, fail, Obj};

/// The TLS settings (`web.tls`). They matter only when `listen` has an
/// `https://` address; such a listener without a certificate and key is a
/// start-up error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain, PEM, leaf first (`certificate`).
    pub certificate: Option<PathBuf>,
    /// The private key, PEM: PKCS#8, PKCS#1 RSA or SEC1 EC (`key`).
    pub key: Option<PathBuf>,
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

/// Reads `web.tls`; paths are relative to `base`, the config's folder.
pub(super) fn tls(path: &str, v: &Value, base: &Path) -> read::Result<Tls> {
    let keys = [
        "certificate",
        "key",
        "authority",
        "verify",
        "ciphers",
        "allowExpired",
    ];
    let o = Obj::new(path, v, &keys)?;
    let file = |key: &str| -> read::Result<Option<PathBuf>> {
        match o.string(key)? {
            Some(p) if p.is_empty() => fail(&o.path_of(key), "must be a file name"),
            Some(p) => Ok(Some(base.join(p))),
            None => Ok(None),
        }
    };
    let mut tls = Tls {
        certificate: file("certificate")?,
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
    if tls.verify_client && tls.authority.is_none() {
        return fail(
            &o.path_of("verify"),
            "client: true needs an authority (the CAs that sign client certificates)",
        );
    }
    Ok(tls)
}
