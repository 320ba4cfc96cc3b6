//! Unit tests of the TLS set-up and of the certificate fields read from DER.
//!
//! Certificates are made here with rcgen; files go to a [`TempDir`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{Certificate, CertificateParams, DnType, KeyPair};

use super::der::cert_info;
use super::{server_config, TlsError};
use crate::config::{Config, ConfigError, Tls};
use crate::testing::TempDir;

// ---------------------------------------------------------------------------
// Certificates

/// A self-signed certificate for `names` (DNS names and IP addresses),
/// valid from `from` to `until` (year, month, day), with its key.
fn certificate(
    names: &[&str],
    from: (i32, u8, u8),
    until: (i32, u8, u8),
) -> (Certificate, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "wisp unit");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

/// A certificate valid now for `localhost`.
fn current() -> (Certificate, KeyPair) {
    certificate(&["localhost"], (2020, 1, 1), (2999, 1, 1))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

// ---------------------------------------------------------------------------
// der::cert_info

#[test]
fn cert_info_reads_validity_subject_and_alt_names() {
    let (der, _) = certificate(
        &["localhost", "example.test", "127.0.0.1", "::1"],
        (2024, 1, 2),
        (2049, 12, 31),
    );
    let info = cert_info(der.der()).expect("a certificate");
    // rcgen writes UTCTime before 2050.
    assert_eq!(info.not_before, at(1_704_153_600)); // 2024-01-02T00:00:00Z
    assert_eq!(info.not_after, at(2_524_521_600)); // 2049-12-31T00:00:00Z
    assert_eq!(info.subject, "CN=wisp unit, O=Acme");
    assert_eq!(
        info.names,
        ["localhost", "example.test", "127.0.0.1", "::1"]
    );
}

#[test]
fn cert_info_reads_generalized_time_from_2050_on() {
    let (der, _) = certificate(&["localhost"], (1999, 12, 31), (2051, 6, 1));
    let info = cert_info(der.der()).expect("a certificate");
    assert_eq!(info.not_before, at(946_598_400)); // 1999-12-31T00:00:00Z
    assert_eq!(info.not_after, at(2_569_190_400)); // 2051-06-01T00:00:00Z
}

#[test]
fn cert_info_of_a_certificate_without_alt_names_has_none() {
    let (der, _) = certificate(&[], (2020, 1, 1), (2030, 1, 1));
    let info = cert_info(der.der()).expect("a certificate");
    assert!(info.names.is_empty(), "{:?}", info.names);
    assert_eq!(info.subject, "CN=wisp unit, O=Acme");
}

#[test]
fn cert_info_refuses_every_truncation() {
    let (cert, _) = current();
    let der = cert.der();
    for n in 0..der.len() {
        assert_eq!(cert_info(&der[..n]), None, "prefix of {n} bytes");
    }
}

#[test]
fn cert_info_survives_every_single_byte_change() {
    let (cert, _) = current();
    let der = cert.der().to_vec();
    let mut changed = der.clone();
    for i in 0..der.len() {
        for value in [
            0x00,
            0x01,
            0x7f,
            0x80,
            0x81,
            0x84,
            0x85,
            0xff,
            der[i] ^ 0x20,
        ] {
            changed[i] = value;
            let _ = cert_info(&changed); // anything but a panic
        }
        changed[i] = der[i];
    }
}

#[test]
fn cert_info_refuses_garbage() {
    for n in [0, 1, 2, 10, 100, 1000] {
        assert_eq!(cert_info(&crate::testing::noise(n, 0x9e37_79b9)), None);
    }
    let hostile: [&[u8]; 6] = [
        b"",
        &[0x30],
        &[0x30, 0x80, 0x00, 0x00],             // indefinite length (BER)
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], // longer than the input
        &[0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00], // a 5-byte length
        &[0x30, 0x03, 0x30, 0x01, 0x30],       // nested, cut short
    ];
    for der in hostile {
        assert_eq!(cert_info(der), None, "{der:?}");
    }
}

// ---------------------------------------------------------------------------
// server_config

/// `web.tls` with these files (in `dir`) and otherwise the defaults.
fn tls(dir: &TempDir, certificate: &str, key: &str) -> Tls {
    Tls {
        certificate: Some(dir.path.join(certificate)),
        key: Some(dir.path.join(key)),
        ..Tls::default()
    }
}

/// A folder with `cert.pem` and `key.pem` of a current certificate, and
/// `other-key.pem`, a key of another one.
fn pair() -> TempDir {
    let dir = TempDir::new("tls");
    let (der, key) = current();
    dir.write("cert.pem", der.pem().as_bytes());
    dir.write("key.pem", key.serialize_pem().as_bytes());
    let (_, other) = current();
    dir.write("other-key.pem", other.serialize_pem().as_bytes());
    dir
}

fn error_of(tls: &Tls) -> TlsError {
    match server_config(tls) {
        Ok(_) => panic!("built a configuration from {tls:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_valid_pair_builds() {
    let dir = pair();
    let config = server_config(&tls(&dir, "cert.pem", "key.pem")).expect("a configuration");
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn a_valid_pair_with_an_authority_and_client_verification_builds() {
    let dir = pair();
    let mut settings = tls(&dir, "cert.pem", "key.pem");
    settings.authority = Some(dir.path.join("cert.pem"));
    settings.verify_client = true;
    server_config(&settings).expect("a configuration");
    settings.verify_client = false;
    server_config(&settings).expect("a configuration asking for optional certificates");
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let dir = pair();
    for (certificate, key, missing) in [
        ("nope.pem", "key.pem", "nope.pem"),
        ("cert.pem", "nokey.pem", "nokey.pem"),
    ] {
        match error_of(&tls(&dir, certificate, key)) {
            TlsError::Read { path, .. } => {
                assert_eq!(path, dir.path.join(missing));
                let e = error_of(&tls(&dir, certificate, key)).to_string();
                assert!(e.contains(&path.display().to_string()), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_file_without_pem_is_empty() {
    let dir = pair();
    dir.write("text.pem", b"just some text\n");
    let empty = |e: TlsError| match e {
        TlsError::Empty { path, what } => (path, what),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        empty(error_of(&tls(&dir, "text.pem", "key.pem"))),
        (dir.path.join("text.pem"), "certificate")
    );
    assert_eq!(
        empty(error_of(&tls(&dir, "cert.pem", "text.pem"))),
        (dir.path.join("text.pem"), "private key")
    );
    // A key file is not a certificate either.
    assert_eq!(
        empty(error_of(&tls(&dir, "key.pem", "key.pem"))),
        (dir.path.join("key.pem"), "certificate")
    );
    let mut settings = tls(&dir, "cert.pem", "key.pem");
    settings.authority = Some(dir.path.join("text.pem"));
    assert_eq!(
        empty(error_of(&settings)),
        (dir.path.join("text.pem"), "CA certificate")
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_a_mismatch() {
    let dir = pair();
    match error_of(&tls(&dir, "cert.pem", "other-key.pem")) {
        TlsError::KeyMismatch {
            key, certificate, ..
        } => {
            assert_eq!(key, dir.path.join("other-key.pem"));
            assert_eq!(certificate, dir.path.join("cert.pem"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_certificate_is_refused_unless_allowed() {
    let dir = TempDir::new("tls-expired");
    let (der, key) = certificate(&["localhost"], (2000, 1, 1), (2000, 12, 31));
    dir.write("old.pem", der.pem().as_bytes());
    dir.write("old-key.pem", key.serialize_pem().as_bytes());
    let mut settings = tls(&dir, "old.pem", "old-key.pem");
    match error_of(&settings) {
        TlsError::Expired(path) => assert_eq!(path, dir.path.join("old.pem")),
        other => panic!("{other:?}"),
    }
    settings.allow_expired = true;
    server_config(&settings).expect("allowExpired starts anyway");
}

#[test]
fn a_certificate_not_valid_yet_is_refused_too() {
    let dir = TempDir::new("tls-future");
    let (der, key) = certificate(&["localhost"], (2990, 1, 1), (2999, 1, 1));
    dir.write("new.pem", der.pem().as_bytes());
    dir.write("new-key.pem", key.serialize_pem().as_bytes());
    assert!(matches!(
        error_of(&tls(&dir, "new.pem", "new-key.pem")),
        TlsError::Expired(_)
    ));
}

#[test]
fn an_unknown_cipher_name_is_refused_by_name() {
    let dir = pair();
    let mut settings = tls(&dir, "cert.pem", "key.pem");
    settings.ciphers = vec!["TLS13_AES_128_GCM_SHA256".into(), "TLS_NULL_NULL".into()];
    match error_of(&settings) {
        TlsError::UnknownCipher(name) => assert_eq!(name, "TLS_NULL_NULL"),
        other => panic!("{other:?}"),
    }
    // Known names are matched whatever their case.
    settings.ciphers = vec!["tls13_aes_256_gcm_sha384".into()];
    server_config(&settings).expect("a known cipher");
}

#[test]
fn no_certificate_or_key_is_missing() {
    let dir = pair();
    let mut settings = tls(&dir, "cert.pem", "key.pem");
    settings.key = None;
    assert!(matches!(error_of(&settings), TlsError::Missing("key")));
    settings.certificate = None;
    assert!(matches!(
        error_of(&settings),
        TlsError::Missing("certificate")
    ));
}

// ---------------------------------------------------------------------------
// Config::parse of web.tls

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/wisp"))
}

/// The key and message of a config error.
fn invalid(text: &str) -> (String, String) {
    match parse(text) {
        Err(ConfigError::Invalid { key, message, .. }) => (key, message),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn web_tls_keys_are_read_with_paths_relative_to_the_config() {
    let config = parse(
        "{ web: { listen: ['http://:80', 'https://:443'], tls: {
            certificate: 'cert.pem', key: '/keys/key.pem', authority: 'ca.pem',
            verify: { client: true }, ciphers: ['TLS13_AES_128_GCM_SHA256'],
            allowExpired: true,
        } } }",
    )
    .unwrap();
    assert_eq!(
        config.tls,
        Tls {
            certificate: Some(PathBuf::from("/etc/wisp/cert.pem")),
            key: Some(PathBuf::from("/keys/key.pem")),
            authority: Some(PathBuf::from("/etc/wisp/ca.pem")),
            verify_client: true,
            ciphers: vec!["TLS13_AES_128_GCM_SHA256".into()],
            allow_expired: true,
            generate: false,
            store: PathBuf::from("/etc/wisp/state"),
        }
    );
    assert_eq!(config.listen_tls, ["0.0.0.0:443".parse().unwrap()]);
}

#[test]
fn web_tls_defaults_ask_for_nothing() {
    let config = parse("{ web: { tls: {} } }").unwrap();
    let want = Tls {
        store: PathBuf::from("/etc/wisp/state"),
        ..Tls::default()
    };
    assert_eq!(config.tls, want, "the store is beside the config");
    assert!(!config.tls.verify_client && !config.tls.allow_expired);
}

#[test]
fn an_unknown_web_tls_key_is_an_error_naming_it() {
    let (key, message) = invalid("{ web: { tls: { certficate: 'c.pem' } } }");
    assert_eq!(key, "web.tls.certficate");
    assert!(message.contains("certificate"), "{message}");
    let (key, _) = invalid("{ web: { tls: { authority: 'ca.pem', verify: { server: true } } } }");
    assert_eq!(key, "web.tls.verify.server");
}

#[test]
fn verify_client_without_an_authority_is_an_error_naming_web_tls_verify() {
    let (key, message) = invalid("{ web: { tls: { verify: { client: true } } } }");
    assert_eq!(key, "web.tls.verify");
    assert!(message.contains("authority"), "{message}");
}

#[test]
fn an_https_address_without_certificate_and_key_is_an_error() {
    for tls in [
        "",
        "tls: { certificate: 'c.pem' },",
        "tls: { key: 'k.pem' },",
    ] {
        let (key, message) = invalid(&format!("{{ web: {{ {tls} listen: ['https://:443'] }} }}"));
        assert_eq!(key, "web.listen", "{tls}");
        assert!(message.contains("web.tls.certificate"), "{message}");
    }
}

#[test]
fn wrong_types_and_empty_names_in_web_tls_are_errors() {
    for (text, path) in [
        (
            "{ web: { tls: { certificate: '' } } }",
            "web.tls.certificate",
        ),
        ("{ web: { tls: { key: 7 } } }", "web.tls.key"),
        ("{ web: { tls: { ciphers: [1] } } }", "web.tls.ciphers[0]"),
        (
            "{ web: { tls: { allowExpired: 'yes' } } }",
            "web.tls.allowExpired",
        ),
        ("{ web: { tls: { verify: true } } }", "web.tls.verify"),
    ] {
        assert_eq!(invalid(text).0, path, "{text}");
    }
    // One cipher may be named without a list.
    let config = parse("{ web: { tls: { ciphers: 'TLS13_AES_128_GCM_SHA256' } } }").unwrap();
    assert_eq!(config.tls.ciphers, ["TLS13_AES_128_GCM_SHA256"]);
}
