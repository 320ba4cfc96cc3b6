//! TLS for the `https://` listeners: `web.tls` turned, once at start, into
//! the rustls configuration every TLS connection shares.
//!
//! rustls with the `ring` provider: TLS 1.3 and 1.2 only, ALPN `http/1.1`,
//! session resumption by tickets (a rotating key) and a bounded session
//! cache, and client certificates checked against `authority` when asked.
//! The connections themselves live in `transport/tls.rs`.
//!
//! `certificate: 'generate'` (`generate.rs`) makes and keeps a self-signed
//! pair. [`load`] is called at start and again on each reload, on the loop
//! thread; what it returns replaces the configuration of every `https://`
//! listener, while open connections keep the one they began with.

pub(crate) mod client;
pub(crate) mod der;
mod generate;
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

use crate::config::{Config, Tls};

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
    /// `certificate: 'generate'`: the folder or a file of `tls.store` could
    /// not be written.
    Store {
        /// The folder or file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// `certificate: 'generate'`: no certificate could be made.
    Generate(String),
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
            TlsError::Store { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            TlsError::Generate(reason) => {
                write!(f, "cannot generate a certificate: {reason}")
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } | TlsError::Store { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A configuration for the `https://` listeners, and what the binary and
/// the tests want to know of its certificate.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, as `AB:CD:…`.
    pub fingerprint: String,
    /// The leaf's DNS and IP names.
    names: Vec<String>,
}

/// Builds the configuration of the `https://` listeners from `web.tls`.
///
/// With `certificate: 'generate'` it reads the pair in `tls.store`; when
/// `may_generate` (at start) and that pair is missing, broken or not for
/// every name the listeners need, it makes a new one there first. A reload
/// passes false: a broken pair is then an error, and the old one stays.
pub(crate) fn load(config: &Config, may_generate: bool) -> Result<Loaded, TlsError> {
    let tls = &config.tls;
    if !tls.generate {
        return build(tls);
    }
    let (certificate, key) = generate::files(&tls.store);
    let files = Tls {
        certificate: Some(certificate.clone()),
        key: Some(key.clone()),
        generate: false,
        ..tls.clone()
    };
    if !may_generate {
        return build(&files);
    }
    let names = generate::names(config);
    match build(&files) {
        Ok(loaded) if generate::covers(&loaded.names, &names) => return Ok(loaded),
        Ok(_) => log::warn!(
            "{}: not for all of {}; making a new certificate",
            certificate.display(),
            names.join(", ")
        ),
        // The other settings are wrong whichever pair is used.
        Err(e) if !of_the_pair(&e, &certificate, &key) => return Err(e),
        Err(TlsError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            log::info!(
                "tls: making a self-signed certificate for {} in {}",
                names.join(", "),
                tls.store.display()
            );
        }
        // A file that is there but unreadable is not ours to overwrite.
        Err(e @ TlsError::Read { .. }) => return Err(e),
        Err(e) => log::warn!("{e}; making a new certificate"),
    }
    generate::write(&tls.store, &names)?;
    build(&files)
}

/// True when `e` is about the stored certificate or key themselves.
fn of_the_pair(e: &TlsError, certificate: &Path, key: &Path) -> bool {
    match e {
        TlsError::Read { path, .. }
        | TlsError::Empty { path, .. }
        | TlsError::BadCertificate(path)
        | TlsError::Expired(path) => path == certificate || path == key,
        TlsError::KeyMismatch { .. } => true,
        _ => false,
    }
}

/// SHA-256 of `der` as upper-case hex pairs joined by colons.
fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(der);
    let mut text = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

/// Builds the configuration every TLS connection shares from the files
/// `tls` names (no generating): for tests and the `tls` fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
#[allow(dead_code)] // The tests module's, when it wants one.
pub(crate) fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    build(tls).map(|loaded| loaded.config)
}

/// Builds from the files `tls` names.
fn build(tls: &Tls) -> Result<Loaded, TlsError> {
    let cert_path = tls
        .certificate
        .as_deref()
        .ok_or(TlsError::Missing("certificate"))?;
    let key_path = tls.key.as_deref().ok_or(TlsError::Missing("key"))?;
    let chain = certificates(cert_path, "certificate")?;
    let names = check_validity(cert_path, &chain[0], tls.allow_expired)?;
    let fingerprint = fingerprint(&chain[0]);
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
    Ok(Loaded {
        config: Arc::new(config),
        fingerprint,
        names,
    })
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
/// it is a warning); returns its names.
fn check_validity(
    path: &Path,
    leaf: &CertificateDer<'_>,
    allow: bool,
) -> Result<Vec<String>, TlsError> {
    let info = der::cert_info(leaf).ok_or_else(|| TlsError::BadCertificate(path.to_path_buf()))?;
    let now = SystemTime::now();
    if now >= info.not_before && now <= info.not_after {
        return Ok(info.names);
    }
    if !allow {
        return Err(TlsError::Expired(path.to_path_buf()));
    }
    log::warn!(
        "{}: the certificate is not valid now; starting anyway (web.tls.allowExpired)",
        path.display()
    );
    Ok(info.names)
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
