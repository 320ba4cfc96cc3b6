//! TLS for the integration tests: certificates made at test time with
//! rcgen and written as PEM into a [`TempDir`], and a rustls client over a
//! blocking `TcpStream` that the shared [`Client`] and [`Ws`] run on, so
//! https and wss tests use the same client code as http and ws ones.
//!
//! The handshake is driven to its end before a client is handed out;
//! every read after it goes through [`super::read_retrying`] like a plain
//! one, and [`IO_TIMEOUT`] on the socket is the safety net.

use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use wisp::Server;

use super::ws::Ws;
use super::{read_retrying, tcp_connect, Client, Resp, TempDir, TestServer};

/// A TLS client connection over a blocking TCP socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A certificate and its key: PEM files, and the DER rustls takes.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A CA: its certificate and the key it signs with.
struct Authority {
    cert: Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }
}

/// Every certificate a TLS test needs, written into `dir`.
pub struct Pki {
    pub dir: TempDir,
    /// The test CA, PEM (`tls.authority`).
    pub ca: PathBuf,
    ca_der: CertificateDer<'static>,
    /// `localhost` and `127.0.0.1`, signed by the CA.
    pub server: Identity,
    /// The same names, valid only in 2000.
    pub expired_server: Identity,
    /// A client certificate signed by the CA.
    pub client: Identity,
    /// A client certificate signed by another CA.
    pub stranger: Identity,
    /// A client certificate signed by the CA, valid only in 2000.
    pub expired_client: Identity,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let ca = Authority::new("wisp test CA");
        let other = Authority::new("another CA");
        let server = |name: &str, expired: bool| {
            let params = leaf(&["localhost", "127.0.0.1"], "localhost", true, expired);
            issue(&dir, name, params, &ca)
        };
        let client = |name: &str, by: &Authority, expired: bool| {
            let dns = format!("{name}.test");
            issue(&dir, name, leaf(&[&dns], name, false, expired), by)
        };
        Pki {
            ca: dir.write("ca.pem", ca.cert.pem()),
            ca_der: ca.cert.der().clone(),
            server: server("server", false),
            expired_server: server("expired-server", true),
            client: client("client", &ca, false),
            stranger: client("stranger", &other, false),
            expired_client: client("expired-client", &ca, true),
            dir,
        }
    }

    /// A client that trusts the test CA and, when asked for one, presents
    /// `identity`.
    pub fn client_config(&self, identity: Option<&Identity>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(id) => builder
                .with_client_auth_cert(vec![id.cert_der.clone()], id.key_der())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A leaf certificate's parameters: server or client use, and valid now or
/// only in the year 2000.
fn leaf(names: &[&str], cn: &str, server: bool, expired: bool) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 12, 31);
    }
    params
}

/// Signs `params` with `by` and writes `name.pem` and `name-key.pem`.
fn issue(dir: &TempDir, name: &str, params: CertificateParams, by: &Authority) -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &by.cert, &by.key).unwrap();
    Identity {
        cert: dir.write(&format!("{name}.pem"), cert.pem()),
        key: dir.write(&format!("{name}-key.pem"), key.serialize_pem()),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// Connects to `addr` as `localhost` and finishes the handshake; the error
/// the client saw when it fails.
pub fn handshake(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsStream> {
    let sock = tcp_connect(addr)?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(tls)
}

/// Sends a GET of `path` over a fresh TLS connection and reads until the
/// server closes: the bytes, or the first error (a refused handshake, an
/// alert, a reset).
pub fn try_get(addr: SocketAddr, config: Arc<ClientConfig>, path: &str) -> io::Result<Vec<u8>> {
    let mut tls = handshake(addr, config)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match read_retrying(&mut tls, &mut chunk)? {
            0 => return Ok(bytes),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What a TLS server sent back to bytes that are not a proper handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A TLS alert record: its level and description.
    Alert(u8, u8),
    /// The connection closed (EOF or reset) with nothing sent.
    Closed,
    /// Other bytes, then the close.
    Bytes(Vec<u8>),
    /// Nothing came and the connection stayed open.
    Hung,
}

/// Reads a raw connection until the server closes it or nothing comes for
/// `timeout`, and says what came.
pub fn answer(stream: &TcpStream, timeout: Duration) -> Answer {
    let reply = super::read_until_close(stream, timeout);
    match (&reply.bytes[..], reply.hung) {
        (_, true) => Answer::Hung,
        ([], false) => Answer::Closed,
        // Content type 21 (alert), any version, length 2.
        ([21, 3, _, 0, 2, level, description, ..], false) => Answer::Alert(*level, *description),
        (bytes, false) => Answer::Bytes(bytes.to_vec()),
    }
}

/// A server with a plain and an https listener, its certificates, and the
/// client configuration of a well-behaved client (which presents the CA's
/// client certificate when asked).
pub struct TlsServer {
    pub server: TestServer,
    pub pki: Pki,
    pub normal: Arc<ClientConfig>,
}

impl Deref for TlsServer {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

/// The file every TLS server serves, to check it still does.
pub const CHECK_FILE: &str = "/tls-check.txt";

impl TlsServer {
    /// Starts a server on `http://127.0.0.1:0` and `https://127.0.0.1:0`;
    /// `tls` is more of `web.tls` than the certificate and key (`authority:
    /// '{ca}'` names the test CA), `web_body` the rest of `web`, as for
    /// [`TestServer::start`]. The documents hold [`CHECK_FILE`] and what
    /// `fill` writes.
    pub fn start(
        tls: &str,
        web_body: &str,
        fill: impl FnOnce(&TempDir),
        setup: impl FnOnce(&mut Server) + Send + 'static,
    ) -> TlsServer {
        let pki = Pki::new();
        let tls = tls.replace("{ca}", &pki.ca.display().to_string());
        let body = format!(
            "tls: {{ certificate: '{}', key: '{}', {tls} }}, {web_body}",
            pki.server.cert.display(),
            pki.server.key.display()
        );
        let fill = |docs: &TempDir| {
            docs.write(&CHECK_FILE[1..], "still here\n");
            fill(docs);
        };
        let listen = "'http://127.0.0.1:0', 'https://127.0.0.1:0'";
        let server = TestServer::start_on(listen, &body, fill, setup);
        let normal = pki.client_config(Some(&pki.client));
        TlsServer {
            server,
            pki,
            normal,
        }
    }

    /// A static server over `fill`'s files.
    pub fn files(fill: impl FnOnce(&TempDir)) -> TlsServer {
        TlsServer::start("", "", fill, |_| {})
    }

    pub fn tls_addr(&self) -> SocketAddr {
        self.server.tls_addr.expect("an https listener")
    }

    /// A well-behaved https client, handshake done.
    pub fn https(&self) -> Client<TlsStream> {
        self.https_with(self.normal.clone())
    }

    /// An https client with its own configuration; panics unless the
    /// handshake succeeds.
    pub fn https_with(&self, config: Arc<ClientConfig>) -> Client<TlsStream> {
        let addr = self.tls_addr();
        let tls = handshake(addr, config).unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
        Client::over(tls)
    }

    /// One https GET on a fresh connection.
    pub fn https_get(&self, path: &str) -> Resp {
        let mut c = self.https();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        c.response()
    }

    /// A wss connection to `target`; panics unless the server answers 101.
    pub fn wss(&self, target: &str) -> Ws<TlsStream> {
        Ws::open_over(self.https(), target, "").1
    }

    /// A well-behaved client is still served: the other clients were not
    /// affected by whatever a test did.
    pub fn still_serves(&self) {
        let r = self.https_get(CHECK_FILE);
        assert_eq!((r.status, r.text().as_str()), (200, "still here\n"));
    }

    /// A raw TCP connection to the https port, for bytes made by hand.
    pub fn raw_tls_port(&self) -> TcpStream {
        tcp_connect(self.tls_addr()).unwrap()
    }
}

/// How long a bad-input test waits for the server to close at most.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);
