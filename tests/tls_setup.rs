//! Setting TLS up on a device: a certificate generated at the first start and
//! kept, reloading the certificate while serving, and plain http redirected
//! to https.
#![cfg(feature = "tls")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use sha2::Digest;
use support::{parse_head, Client, TempDir, IO_TIMEOUT};
use wisp::{Config, Server, ServerHandle, Stats};

/// A server on its own thread, stopped and joined on drop.
struct Running {
    plain: Option<SocketAddr>,
    tls: SocketAddr,
    fingerprint: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(config: Config) -> Running {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let server = Server::bind(config).unwrap_or_else(|e| panic!("{e}"));
            let tls = server.tls_addrs()[0];
            let plain = server.local_addrs().into_iter().find(|a| *a != tls);
            let fingerprint = server.tls_fingerprint().expect("an https listener");
            tx.send((plain, tls, fingerprint, server.handle())).unwrap();
            server.run().expect("the loop runs");
        });
        let (plain, tls, fingerprint, handle) = rx.recv().expect("the server started");
        Running {
            plain,
            tls,
            fingerprint,
            handle,
            thread: Some(thread),
        }
    }

    /// The counters, once the loop has answered.
    fn stats(&self) -> Stats {
        self.handle.stats().expect("the server answers")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if !std::thread::panicking() {
                joined.expect("server thread panicked");
            }
        }
    }
}

/// A config from the inside of `web: { … }`, paths relative to `base`.
fn config(base: &Path, web: &str) -> Config {
    std::fs::create_dir_all(base.join("site")).unwrap();
    std::fs::write(base.join("site/index.html"), "hello").unwrap();
    let text = format!("{{ web: {{ documents: 'site', {web} }} }}");
    Config::parse(&text, base).unwrap_or_else(|e| panic!("{e}"))
}

/// `AB:CD:…` of the SHA-256 of `der`.
fn fingerprint(der: &[u8]) -> String {
    let digest = sha2::Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A self-signed pair for localhost: (certificate PEM, key PEM, certificate DER).
fn pair() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Accepts any server certificate: the tests look at which one was sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr`, handshake done.
fn connect(addr: SocketAddr) -> TlsStream {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The fingerprint of the certificate the server sent.
fn seen(tls: &TlsStream) -> String {
    let chain = tls.conn.peer_certificates().expect("the server sent one");
    fingerprint(&chain[0])
}

/// One GET on an open TLS connection: the status and the body.
fn get(tls: &mut TlsStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(head)) = parse_head(&bytes) {
            let len: usize = head
                .resp
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            if bytes.len() >= head.len + len {
                let body = String::from_utf8_lossy(&bytes[head.len..head.len + len]);
                return (head.resp.status, body.into_owned());
            }
        }
        let n = tls.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the response was whole");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_generated_certificate_is_kept_and_used_again() {
    let dir = TempDir::new("tls-generate");
    let web =
        "listen: ['https://127.0.0.1:0'], tls: { certificate: 'generate', store: 'state/tls' }";
    let store = dir.path.join("state/tls");
    assert!(!store.exists());

    let first = Server::bind(config(&dir.path, web)).unwrap_or_else(|e| panic!("{e}"));
    let fp = first.tls_fingerprint().expect("a fingerprint");
    drop(first);
    assert!(store.is_dir(), "the store was created");
    let key = store.join("tls-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's alone");
    let pem = std::fs::read(store.join("tls-certificate.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|c: CertificateDer<'_>| c.to_vec())
        .unwrap();
    assert_eq!(
        fp,
        fingerprint(&der),
        "the fingerprint is of the stored DER"
    );
    assert_eq!(fp.len(), 32 * 3 - 1);

    // A restart loads the same pair, and serves it.
    let second = Running::start(config(&dir.path, web));
    assert_eq!(
        second.fingerprint, fp,
        "the same certificate across restarts"
    );
    let mut tls = connect(second.tls);
    assert_eq!(seen(&tls), fp);
    assert_eq!(get(&mut tls, "/"), (200, "hello".to_string()));
}

#[test]
fn a_broken_stored_pair_is_replaced_at_start() {
    let dir = TempDir::new("tls-generate-broken");
    let web = "listen: ['https://127.0.0.1:0'], tls: { certificate: 'generate' }";
    let fp = Server::bind(config(&dir.path, web))
        .unwrap()
        .tls_fingerprint()
        .unwrap();
    dir.write("state/tls-certificate.pem", "not a certificate");
    let again = Server::bind(config(&dir.path, web)).unwrap_or_else(|e| panic!("{e}"));
    let new = again.tls_fingerprint().unwrap();
    assert_ne!(new, fp, "a new certificate was made");
    drop(again);
    let third = Server::bind(config(&dir.path, web)).unwrap();
    assert_eq!(third.tls_fingerprint().unwrap(), new, "and kept");
}

#[test]
fn reload_takes_a_new_pair_and_keeps_the_old_one_when_the_new_is_bad() {
    let dir = TempDir::new("tls-reload");
    let (cert_a, key_a, der_a) = pair();
    dir.write("cert.pem", &cert_a);
    dir.write("key.pem", &key_a);
    let web = "listen: ['https://127.0.0.1:0'], tls: { certificate: 'cert.pem', key: 'key.pem' }";
    let server = Running::start(config(&dir.path, web));
    assert_eq!(server.fingerprint, fingerprint(&der_a));

    let mut old = connect(server.tls);
    assert_eq!(seen(&old), fingerprint(&der_a));
    assert_eq!(get(&mut old, "/").0, 200);

    // A good new pair: new handshakes get it.
    let (cert_b, key_b, der_b) = pair();
    dir.write("cert.pem", &cert_b);
    dir.write("key.pem", &key_b);
    assert!(server.handle.reload_tls());
    let stats = server.stats();
    assert_eq!((stats.tls_reloads, stats.tls_reload_failures), (1, 0));
    let mut new = connect(server.tls);
    assert_eq!(seen(&new), fingerprint(&der_b));
    assert_eq!(get(&mut new, "/").0, 200);
    // The connection made before goes on with the old one.
    assert_eq!(get(&mut old, "/"), (200, "hello".to_string()));

    // A bad one (B's certificate with A's key): refused, B stays.
    dir.write("key.pem", &key_a);
    assert!(server.handle.reload_tls());
    let stats = server.stats();
    assert_eq!((stats.tls_reloads, stats.tls_reload_failures), (1, 1));
    let mut after = connect(server.tls);
    assert_eq!(seen(&after), fingerprint(&der_b));
    assert_eq!(get(&mut after, "/").0, 200);

    // A missing file: the same.
    std::fs::remove_file(dir.path.join("cert.pem")).unwrap();
    assert!(server.handle.reload_tls());
    assert_eq!(server.stats().tls_reload_failures, 2);
    assert_eq!(seen(&connect(server.tls)), fingerprint(&der_b));
}

#[test]
fn reload_of_a_generated_certificate_reads_the_store_again() {
    let dir = TempDir::new("tls-reload-generated");
    let web = "listen: ['https://127.0.0.1:0'], tls: { certificate: 'generate' }";
    let server = Running::start(config(&dir.path, web));
    let (cert, key, der) = pair();
    dir.write("state/tls-key.pem", &key);
    dir.write("state/tls-certificate.pem", &cert);
    assert!(server.handle.reload_tls());
    assert_eq!(server.stats().tls_reloads, 1);
    assert_eq!(seen(&connect(server.tls)), fingerprint(&der));
    // A broken store at reload is refused, not replaced.
    dir.write("state/tls-certificate.pem", "garbage");
    assert!(server.handle.reload_tls());
    assert_eq!(server.stats().tls_reload_failures, 1);
    assert_eq!(seen(&connect(server.tls)), fingerprint(&der));
}

#[test]
fn a_plain_listener_redirects_every_request_to_https() {
    let dir = TempDir::new("tls-redirect");
    let web = "listen: ['http://127.0.0.1:0', 'https://127.0.0.1:0'], \
               tls: { certificate: 'generate' }, \
               redirect: [ { status: 301, from: 'http://127.0.0.1:0', to: 'https://:0' }, \
                           { from: '/old', to: '/index.html' } ]";
    let server = Running::start(config(&dir.path, web));
    let plain = server.plain.expect("a plain listener");
    let port = server.tls.port();

    let mut c = Client::connect(plain);
    c.send(b"GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: device.local:8080\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://device.local:{port}/a/b%20c?x=1&y=2").as_str())
    );
    // Keep-alive: the next request on it is redirected too, even a path redirect's.
    c.send(b"GET /old HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://[::1]:{port}/old").as_str())
    );
    // No host to send the client to.
    let mut c = Client::connect(plain);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().status, 400);

    // The https listener serves, path redirects included.
    let mut tls = connect(server.tls);
    assert_eq!(get(&mut tls, "/"), (200, "hello".to_string()));
    assert_eq!(get(&mut tls, "/old").0, 301);
}

#[test]
fn the_binary_prints_the_fingerprint_and_reloads_on_sighup() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = TempDir::new("tls-binary");
    dir.write("site/index.html", "hello");
    let config = dir.write(
        "web.json5",
        "{ web: { listen: ['https://127.0.0.1:0'], tls: { certificate: 'generate' } } }",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Kill(child);
    // Lines from both streams, read on threads so a missing one fails the
    // test after the safety net instead of hanging it.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(stdout) as Box<dyn Read + Send>,
        Box::new(stderr) as Box<dyn Read + Send>,
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
    }
    let wait_for = |prefix: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(IO_TIMEOUT)
                .unwrap_or_else(|_| panic!("no line starting {prefix:?}"));
            if let Some(i) = line.find(prefix) {
                return line[i + prefix.len()..].to_string();
            }
        }
    };
    let fp = wait_for("tls: certificate SHA-256 ");
    let pem = std::fs::read(dir.path.join("state/tls-certificate.pem")).unwrap();
    let der: CertificateDer<'_> = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    assert_eq!(fp, fingerprint(&der));

    let (cert, key, der) = pair();
    dir.write("state/tls-key.pem", key);
    dir.write("state/tls-certificate.pem", cert);
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        wait_for("tls: reloaded; certificate SHA-256 "),
        fingerprint(&der)
    );

    // A bad pair: one error line that says why.
    dir.write("state/tls-certificate.pem", "garbage");
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success())
    };
    hup();
    let why = wait_for("error: tls: reload failed, keeping the old certificate: ");
    assert!(
        why.ends_with("tls-certificate.pem: no PEM certificate in it"),
        "{why}"
    );
}

#[test]
fn a_wrong_setting_beside_a_generated_pair_does_not_replace_it() {
    let dir = TempDir::new("tls-generate-authority");
    let web = "listen: ['https://127.0.0.1:0'], tls: { certificate: 'generate' }";
    let fp = Server::bind(config(&dir.path, web))
        .unwrap()
        .tls_fingerprint()
        .unwrap();
    let wrong = "listen: ['https://127.0.0.1:0'], \
                 tls: { certificate: 'generate', authority: 'missing-ca.pem' }";
    let err = Server::bind(config(&dir.path, wrong))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing-ca.pem"), "{err}");
    let again = Server::bind(config(&dir.path, web)).unwrap();
    assert_eq!(again.tls_fingerprint().unwrap(), fp, "the pair was kept");
}
