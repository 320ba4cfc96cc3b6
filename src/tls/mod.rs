//! TLS for the `https://` listeners: `web.tls` turned, once at start, into
//! the rustls configuration every TLS connection shares.
//!
//! rustls with the `ring` provider: TLS 1.3 and 1.2 only, ALPN `http/1.1`,
//! session resumption by tickets (a rotating key) and a bounded session
//! cache, and client certificates checked against `authority` when asked.
//! The connections themselves live in `transport/tls.rs`.

pub(crate) mod der;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::ring as provider;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

/// Sessions remembered for resumption by id (tickets need no memory here).
const SESSION_CACHE: usize = 256;

/// Why the TLS configuration could not be built. Each names the file or the
/// setting and prints as one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// An `https://` listener, but no `tls.certificate` or `tls.key`.
    Missing(&'static str),
    /// A file that could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file that holds no PEM item of the kind expected.
    Empty {
        /// The file.
        path: PathBuf,
        /// What it should hold: "certificate", "private key", "CA certificate".
        what: &'static str,
    },
    /// A certificate that is not X.509 DER the server can read.
    BadCertificate(PathBuf),
    /// The key is not the certificate's (or is of a kind rustls cannot use).
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate is not valid now, and `allowExpired` is not set.
    Expired(PathBuf),
    /// A name in `tls.ciphers` that is no cipher suite rustls offers.
    UnknownCipher(String),
    /// The CA bundle or the client verifier was refused.
    Authority {
        /// The bundle.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// Anything else rustls refused.
    Rustls(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Missing(key) => {
                write!(f, "an https listener needs web.tls.{key}")
            }
            TlsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsError::Empty { path, what } => {
                write!(f, "{}: no PEM {what} in it", path.display())
            }
            TlsError::BadCertificate(path) => {
                write!(f, "{}: not an X.509 certificate", path.display())
            }
            TlsError::KeyMismatch {
                key,
                certificate,
                reason,
            } => write!(
                f,
                "{} does not go with {}: {reason}",
                key.display(),
                certificate.display()
            ),
            TlsError::Expired(path) => write!(
                f,
                "{}: the certificate is not valid now (set web.tls.allowExpired to start anyway)",
                path.display()
            ),
            TlsError::UnknownCipher(name) => write!(
                f,
                "web.tls.ciphers: unknown cipher suite {name:?} (try TLS13_AES_128_GCM_SHA256)"
            ),
            TlsError::Authority { path, reason } => write!(f, "{}: {reason}", path.display()),
            TlsError::Rustls(reason) => write!(f, "TLS: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Builds the configuration every TLS connection shares.
pub(crate) fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = tls
        .certificate
        .as_deref()
        .ok_or(TlsError::Missing("certificate"))?;
    let key_path = tls.key.as_deref().ok_or(TlsError::Missing("key"))?;
    let chain = certificates(cert_path, "certificate")?;
    check_validity(cert_path, &chain[0], tls.allow_expired)?;
    let key = private_key(key_path)?;
    let provider = Arc::new(with_ciphers(provider::default_provider(), &tls.ciphers)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &tls.authority {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, tls, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::KeyMismatch {
            key: key_path.to_path_buf(),
            certificate: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = provider::Ticketer::new().map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file, in order.
fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::BadCertificate(path.to_path_buf()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Empty {
        path: path.to_path_buf(),
        what: "private key",
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a leaf certificate outside its validity, unless allowed (then
/// it is a warning).
fn check_validity(path: &Path, leaf: &CertificateDer<'_>, allow: bool) -> Result<(), TlsError> {
    let info = der::cert_info(leaf).ok_or_else(|| TlsError::BadCertificate(path.to_path_buf()))?;
    let now = SystemTime::now();
    if now >= info.not_before && now <= info.not_after {
        return Ok(());
    }
    if !allow {
        return Err(TlsError::Expired(path.to_path_buf()));
    }
    log::warn!(
        "{}: the certificate is not valid now; starting anyway (web.tls.allowExpired)",
        path.display()
    );
    Ok(())
}

/// The provider with only the cipher suites named (all of them when none is).
fn with_ciphers(
    mut provider: CryptoProvider,
    names: &[String],
) -> Result<CryptoProvider, TlsError> {
    if names.is_empty() {
        return Ok(provider);
    }
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let suite = provider
            .cipher_suites
            .iter()
            .find(|s| {
                s.suite()
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| TlsError::UnknownCipher(name.clone()))?;
        chosen.push(*suite);
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// Checks client certificates against the CAs in `path`: required with
/// `verify.client`, asked for but optional without.
fn client_verifier(
    path: &Path,
    tls: &Tls,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let refused = |reason: String| TlsError::Authority {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for ca in certificates(path, "CA certificate")? {
        roots.add(ca).map_err(|e| refused(e.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if tls.verify_client {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| refused(e.to_string()))
}
