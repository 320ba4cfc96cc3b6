//! A soak load against a running wisp: rounds of many connections that open,
//! talk HTTP and WebSocket, and close — half cleanly, half abruptly — for a
//! bounded time. Half the WebSockets negotiate permessage-deflate (the server
//! needs `webSockets.compression`): their messages go compressed both ways,
//! and their abrupt end comes in the middle of a compressed message. Loopback
//! only. Every answer must carry the status the soak expects (200 for
//! `/favicon.svg`, 101 for the upgrade to `/ws/echo`): any other is counted,
//! the first few are shown, and the soak exits non-zero. `scripts/soak` runs it
//! against the binary and checks the server's descriptors and memory come back
//! to their baseline.
//!
//! ```text
//! cargo run --release --example soak -- ADDR SECONDS [CONNECTIONS]
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// How long one read may take before the soak calls the server stuck.
const STUCK: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .ok_or("usage: soak ADDR SECONDS [CONNECTIONS]")?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("soak only targets loopback addresses".into());
    }
    let seconds: u64 = args
        .next()
        .ok_or("usage: soak ADDR SECONDS [CONNECTIONS]")?
        .parse()?;
    let per_round: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut totals = Totals::default();
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        soak_round(addr, per_round, round, &mut totals)?;
    }
    println!(
        "soak: {round} rounds, {} connections ({} clean, {} abrupt), {} HTTP requests, {} WebSocket echoes ({} compressed), {} unexpected statuses",
        totals.connections,
        totals.clean,
        totals.abrupt,
        totals.requests,
        totals.echoes,
        totals.compressed,
        totals.wrong_status
    );
    if totals.wrong_status > 0 {
        return Err(format!(
            "{} of {} answers had an unexpected status",
            totals.wrong_status, totals.answers
        )
        .into());
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    connections: u64,
    clean: u64,
    abrupt: u64,
    requests: u64,
    echoes: u64,
    compressed: u64,
    /// Answers read (HTTP responses and upgrade answers).
    answers: u64,
    /// Answers whose status was not the one expected.
    wrong_status: u64,
}

impl Totals {
    /// Counts an answer, and a miss when its status is not `want`; shows the
    /// first few misses. Whether the status was `want`.
    fn check_status(&mut self, answer: &[u8], want: u16, request: &str) -> bool {
        self.answers += 1;
        let got = status(answer);
        if got == Some(want) {
            return true;
        }
        self.wrong_status += 1;
        if self.wrong_status <= 5 {
            let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
            eprintln!(
                "soak: {request}: want {want}, got {:?}",
                String::from_utf8_lossy(line)
            );
        }
        false
    }
}

/// The status code of an `HTTP/1.1 NNN ...` answer.
fn status(answer: &[u8]) -> Option<u16> {
    let rest = answer.strip_prefix(b"HTTP/1.1 ")?;
    let code = rest.get(..3)?;
    if rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The status the soak expects for `GET /favicon.svg` (a file of `site/`).
const FILE_STATUS: u16 = 200;
/// The status the soak expects for the upgrade to `/ws/echo`.
const UPGRADE_STATUS: u16 = 101;

/// Opens `n` connections at once, uses each, and closes them in four different ways.
fn soak_round(
    addr: SocketAddr,
    n: usize,
    round: u64,
    totals: &mut Totals,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(STUCK))?;
        stream.set_nodelay(true)?;
        open.push((i, stream));
    }
    totals.connections += n as u64;
    for (i, stream) in &mut open {
        if *i % 2 == 0 {
            http_requests(stream, 3, totals)?;
            totals.requests += 3;
        } else {
            let deflate = deflates(*i);
            websocket_echoes(stream, round, 3, deflate, totals)?;
            totals.echoes += 3;
            totals.compressed += if deflate { 3 } else { 0 };
        }
    }
    for (i, stream) in open {
        match i % 4 {
            // Clean: HTTP asks to close; WebSocket does the closing handshake.
            0 => {
                stream_close_http(stream, totals)?;
                totals.clean += 1;
            }
            1 => {
                websocket_close(stream)?;
                totals.clean += 1;
            }
            // Abrupt: half a request, or half a frame, then gone.
            2 => {
                let mut s = stream;
                s.write_all(b"GET /index.html HTTP/1.1\r\nHos")?;
                drop(s);
                totals.abrupt += 1;
            }
            // A compressed WebSocket goes in the middle of a compressed
            // message: its first frame (RSV1, no FIN), then gone.
            _ if deflates(i) => {
                let mut s = stream;
                let payload = deflate(&message_text(round, 99));
                s.write_all(&masked(0x40 | 0x01, &payload[..payload.len() / 2]))?;
                let _ = s.shutdown(Shutdown::Both);
                totals.abrupt += 1;
            }
            _ => {
                let mut s = stream;
                s.write_all(&[0x81, 0x85, 1, 2, 3])?;
                let _ = s.shutdown(Shutdown::Both);
                totals.abrupt += 1;
            }
        }
    }
    Ok(())
}

fn http_requests(
    stream: &mut TcpStream,
    count: usize,
    totals: &mut Totals,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..count {
        stream.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: soak\r\n\r\n")?;
        let answer = read_response(stream)?;
        totals.check_status(&answer, FILE_STATUS, "GET /favicon.svg");
    }
    Ok(())
}

/// Reads one response with a Content-Length body.
fn read_response(stream: &mut TcpStream) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("the server closed a keep-alive connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("the server closed inside a body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

fn stream_close_http(
    mut stream: TcpStream,
    totals: &mut Totals,
) -> Result<(), Box<dyn std::error::Error>> {
    stream.write_all(b"GET /favicon.svg HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
    let answer = read_response(&mut stream)?;
    totals.check_status(&answer, FILE_STATUS, "GET /favicon.svg (Connection: close)");
    Ok(())
}

/// Whether WebSocket connection `i` (odd) negotiates permessage-deflate: half of them.
fn deflates(i: usize) -> bool {
    i % 8 >= 4
}

/// A text of a few hundred bytes, over the server's default compression threshold (256).
fn message_text(round: u64, k: usize) -> Vec<u8> {
    format!("round {round} message {k}; ")
        .repeat(16)
        .into_bytes()
}

/// One message as permessage-deflate sends it (RFC 7692 §7.2.1): a raw
/// deflate stream from a fresh compressor (no context takeover), sync-flushed,
/// without its final `00 00 ff ff`.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync)
        .expect("deflate");
    assert!(
        out.ends_with(&[0, 0, 0xff, 0xff]),
        "a short message is flushed whole"
    );
    out.truncate(out.len() - 4);
    out
}

/// A server message's payload inflated, its tail put back.
fn inflate(payload: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let input = [payload, &[0, 0, 0xff, 0xff]].concat();
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(64 * 1024);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)?;
    Ok(out)
}

fn websocket_echoes(
    stream: &mut TcpStream,
    round: u64,
    count: usize,
    deflate_on: bool,
    totals: &mut Totals,
) -> Result<(), Box<dyn std::error::Error>> {
    let offer = if deflate_on {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    stream.write_all(
        format!(
            "GET /ws/echo HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )
        .as_bytes(),
    )?;
    let head = read_response(stream)?;
    if !totals.check_status(&head, UPGRADE_STATUS, "GET /ws/echo (upgrade)") {
        return Err(format!("upgrade refused: {}", String::from_utf8_lossy(&head)).into());
    }
    let agreed = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("sec-websocket-extensions: permessage-deflate");
    if agreed != deflate_on {
        return Err(format!(
            "permessage-deflate offered: {deflate_on}, agreed: {agreed}: {}",
            String::from_utf8_lossy(&head)
        )
        .into());
    }
    for k in 0..count {
        let text = if deflate_on {
            message_text(round, k)
        } else {
            format!("round {round} message {k}").into_bytes()
        };
        if deflate_on {
            stream.write_all(&masked(0x80 | 0x40 | 0x01, &deflate(&text)))?;
        } else {
            stream.write_all(&masked(0x81, &text))?;
        }
        let mut header = [0u8; 2];
        stream.read_exact(&mut header)?;
        let len = match header[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                stream.read_exact(&mut n)?;
                usize::from(u16::from_be_bytes(n))
            }
            127 => return Err("a 64-bit length on a short echo".into()),
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload)?;
        // Over the threshold, a compressed connection's echo is compressed (RSV1).
        let echoed = match header[0] {
            0xC1 if deflate_on => inflate(&payload)?,
            0x81 if !deflate_on => payload,
            other => return Err(format!("an echo with first byte {other:#04x}").into()),
        };
        if echoed != text {
            return Err("a WebSocket echo came back wrong".into());
        }
    }
    Ok(())
}

fn websocket_close(mut stream: TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    stream.write_all(&masked(0x88, &1000u16.to_be_bytes()))?;
    let mut rest = Vec::new();
    // The server echoes the close and then closes the TCP connection.
    stream.read_to_end(&mut rest)?;
    if rest.first() != Some(&0x88) {
        return Err("no close frame in answer to ours".into());
    }
    Ok(())
}

/// A masked client frame (payload under 64 KiB).
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x2e];
    let mut frame = vec![first];
    match u16::try_from(payload.len()) {
        Ok(n @ 0..=125) => frame.push(0x80 | n as u8),
        Ok(n) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => panic!("a soak frame over 64 KiB"),
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}
