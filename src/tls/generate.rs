//! `certificate: 'generate'`: a device's first certificate, made at start
//! and kept in `tls.store` so that every later start (and every client that
//! pinned it) sees the same one.
//!
//! ECDSA P-256, self-signed, for `localhost`, `127.0.0.1` and each `https://`
//! listen address that names one interface. Valid from 1970 to the end of
//! 9999 (RFC 5280's "no well-defined expiration"): a board without a clock
//! may boot in 1970, and a certificate it made then must not expire when
//! the clock is set.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

use super::TlsError;
use crate::config::Config;

/// The certificate's file in the store.
pub(crate) const CERTIFICATE_FILE: &str = "tls-certificate.pem";
/// The key's file in the store (mode 0600).
pub(crate) const KEY_FILE: &str = "tls-key.pem";

/// The certificate and key files of a store.
pub(crate) fn files(store: &Path) -> (PathBuf, PathBuf) {
    (store.join(CERTIFICATE_FILE), store.join(KEY_FILE))
}

/// The names a generated certificate is for: `localhost`, `127.0.0.1`, and
/// the address of each `https://` listener bound to one interface.
pub(crate) fn names(config: &Config) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        IpAddr::from(Ipv4Addr::LOCALHOST).to_string(),
    ];
    if let Some(name) = &config.name {
        names.push(name.clone());
    }
    for addr in &config.listen_tls {
        let ip = addr.ip().to_string();
        if !addr.ip().is_unspecified() && !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// True when a certificate for `have` serves every name of `want`.
pub(crate) fn covers(have: &[String], want: &[String]) -> bool {
    want.iter()
        .all(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)))
}

/// Makes a new pair for `names` and writes it into `store` (created if
/// missing): the key first, mode 0600, then the certificate, each through a
/// temporary file renamed into place, so a crash leaves the old pair or a
/// pair that does not match (which the next start replaces), never half a
/// file.
pub(crate) fn write(store: &Path, names: &[String]) -> Result<(), TlsError> {
    let failed = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "wisp self-signed");
    params.distinguished_name = subject;
    params.not_before = date_time_ymd(1970, 1, 1);
    params.not_after = date_time_ymd(9999, 12, 31);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(failed)?;
    let stored = |path: PathBuf| move |source| TlsError::Store { path, source };
    fs::create_dir_all(store).map_err(stored(store.to_path_buf()))?;
    let (cert_path, key_path) = files(store);
    replace(&key_path, key.serialize_pem().as_bytes(), 0o600).map_err(stored(key_path))?;
    replace(&cert_path, cert.pem().as_bytes(), 0o644).map_err(stored(cert_path))?;
    Ok(())
}

/// Writes `path` anew with `mode`, through `path.tmp`.
fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A temporary file left by a crash may have another mode: start afresh.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_localhost_and_the_https_addresses_of_one_interface() {
        let mut config = Config::default();
        config.listen_on("https://:8443").unwrap();
        assert_eq!(names(&config), ["localhost", "127.0.0.1"]);
        config
            .also_listen_on("https://192.0.2.7:443")
            .unwrap()
            .also_listen_on("https://127.0.0.1:9443")
            .unwrap()
            .also_listen_on("https://[::1]:443")
            .unwrap()
            .also_listen_on("http://198.51.100.1:80")
            .unwrap();
        assert_eq!(
            names(&config),
            ["localhost", "127.0.0.1", "192.0.2.7", "::1"]
        );
        let have: Vec<String> = ["LOCALHOST", "127.0.0.1"].map(String::from).to_vec();
        assert!(covers(&have, &names(&Config::default())));
        assert!(!covers(&have, &names(&config)));
    }

    #[test]
    fn the_device_name_is_one_of_the_names() {
        let config = Config::parse(
            "{ web: { name: 'camera.local', listen: ['https://:8443'],
                      tls: { certificate: 'generate' } } }",
            ".".as_ref(),
        )
        .unwrap();
        assert_eq!(names(&config), ["localhost", "127.0.0.1", "camera.local"]);
        for bad in ["''", "'a b'", "'x/y'", "3"] {
            let text = format!("{{ web: {{ name: {bad} }} }}");
            let err = Config::parse(&text, ".".as_ref()).unwrap_err().to_string();
            assert!(err.starts_with("web.name:"), "{bad}: {err}");
        }
    }
}
