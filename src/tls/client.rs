//! TLS towards a gateway's `wss`/`https` downstreams: the rustls client
//! configuration of one proxy route, made once at start.
//!
//! The downstream's certificate is checked against the route's
//! `authority` bundle, or the system's roots (Debian's, Red Hat's or
//! Alpine's bundle file, whichever exists). `acceptAnyCertificate` turns
//! the check off, as Ocelot's `DangerousAcceptAnyServerCertificateValidator`
//! does: the handshake's signatures are still verified, the certificate's
//! chain and name are not.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::ring as provider;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{certificates, TlsError};
use crate::config::ProxyConfig;

/// Where distributions keep the system's CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The client configuration a proxy route's TLS downstream legs share.
pub(crate) fn client_config(proxy: &ProxyConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(provider::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = if proxy.accept_any_certificate {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(proxy.authority.as_deref())?)
            .with_no_client_auth()
    };
    // The downstream leg speaks HTTP/1.1 (and upgrades from it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name a downstream's certificate must carry: the host of `host:port`.
pub(crate) fn server_name(host_port: &str) -> Option<ServerName<'static>> {
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

/// The CAs in `authority`, or the system's.
fn roots(authority: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let path = match authority {
        Some(path) => path,
        None => SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or(TlsError::Missing(
                "proxy.authority: no system CA bundle found; name one",
            ))?,
    };
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates(path, "CA certificate")?);
    if added == 0 {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
            what: "CA certificate",
        });
    }
    Ok(roots)
}

/// Accepts any certificate (`acceptAnyCertificate`); the handshake's
/// signatures are still checked, so the connection is at least encrypted
/// to whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_host_of_host_and_port() {
        let name = |s| server_name(s).map(|n| n.to_str().into_owned());
        assert_eq!(name("example.com:443").as_deref(), Some("example.com"));
        assert_eq!(name("127.0.0.1:8443").as_deref(), Some("127.0.0.1"));
        assert_eq!(name("[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(name("bad name:1"), None);
    }

    #[test]
    fn system_roots_load_and_a_missing_authority_is_an_error() {
        if SYSTEM_BUNDLES.iter().any(|p| Path::new(p).exists()) {
            assert!(roots(None).is_ok());
        }
        let err = roots(Some(Path::new("/no/such/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
    }
}
