//! TLS from a hostile peer (`tls`): the server's side of the transport
//! seam, `transport::tls::TlsConn`, over a real socket, with the
//! configuration `tls::load` builds for an `https://` listener.
//!
//! The socket is one end of a Unix socket pair, typed as the TCP stream
//! `TlsConn` takes: every call it makes (`recv` with `MSG_PEEK`, `read`,
//! `send`, `sendmsg`, `shutdown`) means the same on both, and bytes written
//! to the other end are there to read at once, so a run does not depend on
//! timing.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

use super::pieces;
use crate::config::Tls;
use crate::transport::tls::TlsConn;
use crate::transport::Wire;

/// The server's plaintext read buffer, as a connection's.
const READ_BUFFER: usize = 16 * 1024;

/// The most a hostile input is taken: the socket pair's buffer holds it.
const MAX_INPUT: usize = 64 * 1024;

/// What the server may send to a peer that never finishes a handshake: its
/// first flight (certificate included) and an alert.
const MAX_ANSWER: usize = 16 * 1024;

/// Drives the server's side of TLS.
///
/// Bit 0 of the first byte picks what the rest is. Clear: the bytes a
/// hostile client sends (a ClientHello, records, or anything at all), then
/// the end of its stream; bit 1 makes the server ask for a client
/// certificate (`tls.authority`), so that a Certificate message is read
/// too. They are fed whole and cut into pieces by the second byte, the
/// server reading after each piece until it would block, as the loop does;
/// the verdict — still waiting, ended (a plain HTTP request is answered
/// and ended), or failed with an error of some kind — and the plaintext
/// must agree, and the server must answer with a bounded number of bytes.
///
/// Set: a real client (rustls, TLS 1.2 with bit 1, else 1.3) finishes a
/// handshake, then the rest is a script (see [`script`]) of plaintext in
/// both directions, reads with buffers of several sizes, key updates and
/// stray bytes. Properties: the server reads exactly what the client sent,
/// in order, and the client what the server wrote; a read never returns
/// more than the buffer holds, and a short one means nothing more is
/// there for now (the loop's polling is edge-triggered); after the
/// client's `close_notify` the server reads the end of the stream.
pub fn tls(data: &[u8]) {
    let [options, cuts, stream @ ..] = data else {
        return;
    };
    let setup = setup();
    if options & 1 == 0 {
        let config = if options & 2 == 0 {
            &setup.plain
        } else {
            &setup.mutual
        };
        let stream = &stream[..stream.len().min(MAX_INPUT)];
        let whole = hostile(config, [stream]);
        assert!(
            whole.answered <= MAX_ANSWER,
            "answered {} bytes",
            whole.answered
        );
        let split = hostile(config, pieces(stream, *cuts));
        assert_eq!(split.verdict, whole.verdict);
        assert_eq!(split.plaintext, whole.plaintext);
        assert!(
            split.answered <= MAX_ANSWER,
            "answered {} bytes",
            split.answered
        );
    } else {
        let client = if options & 2 == 0 {
            &setup.client13
        } else {
            &setup.client12
        };
        script(&setup.plain, client, stream);
    }
}

/// The configurations, made once: a self-signed certificate for
/// `localhost` written to a temporary folder and loaded as `web.tls` would
/// be, with and without client certificates, and clients that trust it.
struct Setup {
    plain: Arc<ServerConfig>,
    mutual: Arc<ServerConfig>,
    client13: Arc<ClientConfig>,
    client12: Arc<ClientConfig>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a certificate");
        let dir = std::env::temp_dir().join(format!("wisp-fuzz-tls-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("a temporary folder");
        let cert: PathBuf = dir.join("cert.pem");
        let key: PathBuf = dir.join("key.pem");
        fs::write(&cert, made.cert.pem()).expect("the certificate written");
        fs::write(&key, made.key_pair.serialize_pem()).expect("the key written");
        let tls = Tls {
            certificate: Some(cert.clone()),
            key: Some(key),
            ..Tls::default()
        };
        let plain = crate::tls::server_config(&tls).expect("a server configuration");
        let mutual = crate::tls::server_config(&Tls {
            authority: Some(cert),
            ..tls
        })
        .expect("a server configuration asking for client certificates");
        let _ = fs::remove_dir_all(&dir);
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(made.cert.der().to_vec()))
            .expect("our own certificate as a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = |version: &'static rustls::SupportedProtocolVersion| {
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[version])
                .expect("a protocol version")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            Arc::new(config)
        };
        Setup {
            plain,
            mutual,
            client13: client(&rustls::version::TLS13),
            client12: client(&rustls::version::TLS12),
        }
    })
}

/// A connected pair: the server's `TlsConn` on one end and the peer's end.
fn connect(config: &Arc<ServerConfig>) -> (TlsConn, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    ours.set_nonblocking(true).expect("non-blocking");
    theirs.set_nonblocking(true).expect("non-blocking");
    let sock = mio::net::TcpStream::from_std(std::net::TcpStream::from(OwnedFd::from(ours)));
    let conn = TlsConn::new(sock, config.clone(), Instant::now()).expect("a TLS connection");
    (conn, theirs)
}

/// Where the server's reading ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// It would block: it waits for more.
    Waiting,
    /// The end of the stream (`Ok(0)`).
    Ended,
    /// An error: the connection closes.
    Failed(io::ErrorKind),
}

/// What the server made of a hostile peer's bytes.
#[derive(Debug)]
struct Hostile {
    verdict: Verdict,
    plaintext: Vec<u8>,
    /// Bytes the server sent back.
    answered: usize,
}

/// Feeds `pieces` to the server, each followed by reads until it would
/// block, then ends the stream.
fn hostile<'p>(config: &Arc<ServerConfig>, pieces: impl IntoIterator<Item = &'p [u8]>) -> Hostile {
    let (mut conn, mut theirs) = connect(config);
    let mut plaintext = Vec::new();
    let mut answered = 0;
    let mut verdict = Verdict::Waiting;
    for piece in pieces {
        theirs.write_all(piece).expect("the socket pair takes it");
        verdict = read_all(&mut conn, &mut plaintext);
        answered += drain(&mut theirs);
        if verdict != Verdict::Waiting {
            break;
        }
    }
    if verdict == Verdict::Waiting {
        theirs
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        verdict = read_all(&mut conn, &mut plaintext);
        answered += drain(&mut theirs);
    }
    conn.shutdown_write();
    answered += drain(&mut theirs);
    Hostile {
        verdict,
        plaintext,
        answered,
    }
}

/// Reads until the server would block, the stream ends or it fails.
fn read_all(conn: &mut TlsConn, plaintext: &mut Vec<u8>) -> Verdict {
    let mut buf = Vec::with_capacity(READ_BUFFER);
    loop {
        match conn.read_spare(&mut buf) {
            Ok(0) => return Verdict::Ended,
            Ok(n) => {
                assert_eq!(n, buf.len());
                plaintext.extend_from_slice(&buf);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Verdict::Waiting,
            Err(e) => return Verdict::Failed(e.kind()),
        }
    }
}

/// Reads what the server sent to the peer's end; the byte count.
fn drain(theirs: &mut UnixStream) -> usize {
    let mut sink = [0u8; 4096];
    let mut total = 0;
    while let Ok(n @ 1..) = theirs.read(&mut sink) {
        total += n;
    }
    total
}

/// Moves records between a rustls client and the server until the
/// handshake is done (false if it never is).
fn handshake(client: &mut ClientConnection, conn: &mut TlsConn, theirs: &mut UnixStream) -> bool {
    let mut plaintext = Vec::new();
    for _ in 0..16 {
        while client.wants_write() {
            client.write_tls(theirs).expect("the socket pair takes it");
        }
        if read_all(conn, &mut plaintext) != Verdict::Waiting {
            return false;
        }
        if !client_reads(client, theirs, &mut plaintext) {
            return false;
        }
        if !client.is_handshaking() && conn.handshake_from().is_none() {
            assert!(plaintext.is_empty(), "plaintext during the handshake");
            return true;
        }
    }
    false
}

/// The client reads the server's records and their plaintext; false if
/// it found them bad.
fn client_reads(client: &mut ClientConnection, theirs: &mut UnixStream, out: &mut Vec<u8>) -> bool {
    loop {
        match client.read_tls(theirs) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("the client's socket: {e}"),
        }
        if client.process_new_packets().is_err() {
            return false;
        }
    }
    if client.process_new_packets().is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    loop {
        match client.reader().read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return true,
        }
    }
}

/// After a real handshake, plays `script` a byte at a time:
///
/// - `b % 5 == 0`: the client sends the next `b / 5` bytes of the script
///   (as few records as rustls makes of them);
/// - `1`: the server reads once, into a buffer of 1, 5, 100 or 16 KiB
///   (`b >> 6`); a read that comes back short is followed at once by
///   another, which must find nothing;
/// - `2`: the server writes `b` bytes, and the client reads them;
/// - `3`: the client updates its keys (TLS 1.3), at most 32 times between
///   two sends of data, as rustls allows;
/// - `4`: the next `b / 5` bytes go to the socket as they are: the
///   stream is broken from there, and the server must fail, not panic.
///
/// At the end the client sends `close_notify` and the server reads to
/// the end of the stream.
fn script(config: &Arc<ServerConfig>, client_config: &Arc<ClientConfig>, script: &[u8]) {
    let (mut conn, mut theirs) = connect(config);
    let name = ServerName::try_from("localhost").expect("a name");
    let mut client = ClientConnection::new(client_config.clone(), name).expect("a client");
    assert!(
        handshake(&mut client, &mut conn, &mut theirs),
        "no handshake"
    );
    let (mut sent, mut read) = (Vec::new(), Vec::new());
    let (mut written, mut got) = (Vec::new(), Vec::new());
    let mut broken = false;
    let mut verdict = Verdict::Waiting;
    // Key updates since the client last sent data: rustls refuses a 33rd
    // (`PeerMisbehaved::TooManyKeyUpdateRequests`), by design.
    let mut updates = 0;
    let mut at = 0;
    while let Some(&b) = script.get(at) {
        at += 1;
        if verdict != Verdict::Waiting {
            break;
        }
        match b % 5 {
            0 | 4 => {
                let n = usize::from(b / 5).min(script.len() - at);
                let bytes = &script[at..at + n];
                at += n;
                if b % 5 == 0 {
                    client
                        .writer()
                        .write_all(bytes)
                        .expect("the client takes it");
                    sent.extend_from_slice(bytes);
                    if !bytes.is_empty() {
                        updates = 0;
                    }
                    verdict = flush(&mut client, &mut theirs, &mut conn, &mut read);
                } else {
                    broken |= !bytes.is_empty();
                    let mut rest = bytes;
                    while !rest.is_empty() && verdict == Verdict::Waiting {
                        match theirs.write(rest) {
                            Ok(n) => rest = &rest[n..],
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                verdict = read_once(&mut conn, READ_BUFFER, &mut read);
                            }
                            Err(e) => panic!("the client's socket: {e}"),
                        }
                    }
                }
            }
            1 => {
                let capacity = [1, 5, 100, READ_BUFFER][usize::from(b >> 6)];
                verdict = read_once(&mut conn, capacity, &mut read);
            }
            2 => {
                let bytes: Vec<u8> = (0..b).map(|i| i ^ b).collect();
                let mut done = 0;
                while done < bytes.len() {
                    match conn.write(&bytes[done..]) {
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            let _ = client_reads(&mut client, &mut theirs, &mut got);
                        }
                        Err(e) => panic!("the server cannot write: {e}"),
                    }
                }
                written.extend_from_slice(&bytes);
                while !conn.drain().expect("the server's records go out") {
                    let _ = client_reads(&mut client, &mut theirs, &mut got);
                }
                assert!(
                    client_reads(&mut client, &mut theirs, &mut got),
                    "bad records"
                );
            }
            _ if updates == 32 => {}
            _ => {
                updates += 1;
                if client.refresh_traffic_keys().is_ok() {
                    verdict = flush(&mut client, &mut theirs, &mut conn, &mut read);
                }
            }
        }
    }
    if verdict == Verdict::Waiting {
        client.send_close_notify();
        verdict = flush(&mut client, &mut theirs, &mut conn, &mut read);
        for _ in 0..sent.len() + 2 {
            if verdict != Verdict::Waiting {
                break;
            }
            verdict = read_once(&mut conn, READ_BUFFER, &mut read);
        }
    }
    if broken {
        assert!(sent.starts_with(&read), "the server read what was not sent");
        return;
    }
    assert_eq!(verdict, Verdict::Ended, "after close_notify");
    assert_eq!(read, sent, "the server read otherwise than sent");
    assert_eq!(got, written, "the client read otherwise than written");
}

/// Writes the client's records to the socket. When it is full, the server
/// reads to make room, as the loop would when the socket says there is
/// something to read (many small records fill a socket's buffer long
/// before their bytes do). The server's verdict, if it came to one.
fn flush(
    client: &mut ClientConnection,
    theirs: &mut UnixStream,
    conn: &mut TlsConn,
    read: &mut Vec<u8>,
) -> Verdict {
    while client.wants_write() {
        match client.write_tls(theirs) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let verdict = read_once(conn, READ_BUFFER, read);
                if verdict != Verdict::Waiting {
                    return verdict;
                }
            }
            Err(e) => panic!("the client's socket: {e}"),
        }
    }
    Verdict::Waiting
}

/// One read by the server into a buffer of `capacity`; a short one is
/// checked to have left nothing.
fn read_once(conn: &mut TlsConn, capacity: usize, read: &mut Vec<u8>) -> Verdict {
    let mut buf = Vec::with_capacity(capacity);
    match conn.read_spare(&mut buf) {
        Ok(0) => Verdict::Ended,
        Ok(n) => {
            assert_eq!(n, buf.len());
            assert!(n <= capacity, "{n} bytes into a buffer of {capacity}");
            read.extend_from_slice(&buf);
            if n < buf.capacity() {
                // Short: nothing more is there until the socket says so.
                let mut again = Vec::with_capacity(capacity);
                match conn.read_spare(&mut again) {
                    Ok(0) => return Verdict::Ended,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Verdict::Failed(e.kind()),
                    Ok(m) => panic!("a short read of {n} left {m} more bytes"),
                }
            }
            Verdict::Waiting
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Verdict::Waiting,
        Err(e) => Verdict::Failed(e.kind()),
    }
}
