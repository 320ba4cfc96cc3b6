//! What crosses between connections and handlers: a connection's id, a
//! message, a streamed piece of one, and what became of a send.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::time::Instant;

/// A whole message, borrowed: no copy is made to hand it to you.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8 unless `webSockets.validateUTF` is off,
    /// in which case invalid sequences were replaced with U+FFFD).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }
}

/// A piece of a message as it arrived, for handlers that stream
/// ([`Handler::streaming`](crate::Handler::streaming)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The message is text (the bytes so far are valid UTF-8, but a piece may
    /// end inside a character).
    pub text: bool,
    /// The bytes of this piece.
    pub data: &'a [u8],
    /// The first piece of its message.
    pub first: bool,
    /// The last piece of its message.
    pub last: bool,
}

/// Identifies one connection for the life of the process: a reused slot gets
/// a new id.
///
/// With several workers (`web.workers`) the id also says which worker
/// owns the connection ([`ConnId::worker`]), and with a backplane which
/// node ([`ConnId::node`]), so a send to it from anywhere finds it. Its text
/// form is `#42` on a single worker without a backplane, `w1#42` on worker
/// 1, and `device-a/w1#42` with a backplane; [`str::parse`] reads any of
/// them back (a handler may hand ids to clients and take them back).
#[derive(Debug, Clone, Copy)]
pub struct ConnId {
    /// The slab key; `usize::MAX` for an id read from text (the owner
    /// finds the slot by `serial`).
    pub(crate) key: usize,
    /// Unique in the process: node index, worker and count (see `serial`).
    pub(crate) serial: u64,
}

/// How a serial is laid out: the node's index in this process's table of
/// node names, the worker, then a count of that worker's connections.
pub(crate) mod serial {
    /// Bits of the count.
    pub const COUNT_BITS: u32 = 40;
    /// Bits of the worker index (so at most 256 workers).
    pub const WORKER_BITS: u32 = 8;
    /// The most workers a server runs.
    pub const MAX_WORKERS: usize = 1 << WORKER_BITS;

    /// The first serial of a worker's connections (the count starts after it).
    pub fn base(node: u16, worker: usize) -> u64 {
        (u64::from(node) << (COUNT_BITS + WORKER_BITS)) | ((worker as u64) << COUNT_BITS)
    }

    pub fn worker(serial: u64) -> usize {
        ((serial >> COUNT_BITS) & ((1 << WORKER_BITS) - 1)) as usize
    }

    pub fn node(serial: u64) -> u16 {
        (serial >> (COUNT_BITS + WORKER_BITS)) as u16
    }

    pub fn count(serial: u64) -> u64 {
        serial & ((1 << COUNT_BITS) - 1)
    }
}

/// The node names this process knows (its own, and those read from ids and
/// the backplane), so an id carries a node in 16 bits. Index 0 is "no node".
static NODES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
/// Names kept at most: a peer cannot grow the table without bound.
const MAX_NODES: usize = 1024;

/// The index of a node name, entered in the table if new; `None` when the
/// table is full.
pub(crate) fn node_index(name: &str) -> Option<u16> {
    let mut nodes = NODES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = nodes.iter().position(|n| n == name) {
        return u16::try_from(i + 1).ok();
    }
    if nodes.len() >= MAX_NODES {
        return None;
    }
    nodes.push(name.to_string());
    u16::try_from(nodes.len()).ok()
}

/// The name of a node index (`None` for 0, "no node").
pub(crate) fn node_name(index: u16) -> Option<String> {
    let i = usize::from(index).checked_sub(1)?;
    let nodes = NODES.lock().unwrap_or_else(|e| e.into_inner());
    nodes.get(i).cloned()
}

impl ConnId {
    /// The worker that owns the connection (0 with a single worker).
    pub fn worker(&self) -> usize {
        serial::worker(self.serial)
    }

    /// The node that owns the connection (`web.backplane.node`); `None`
    /// without a backplane.
    pub fn node(&self) -> Option<String> {
        node_name(serial::node(self.serial))
    }

    /// An id read from text: the owner finds its slot by serial.
    pub(crate) fn from_serial(serial: u64) -> ConnId {
        ConnId {
            key: usize::MAX,
            serial,
        }
    }
}

// The serial alone says which connection it is (the key only finds it).
impl PartialEq for ConnId {
    fn eq(&self, other: &Self) -> bool {
        self.serial == other.serial
    }
}

impl Eq for ConnId {}

impl std::hash::Hash for ConnId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.serial.hash(state);
    }
}

impl PartialOrd for ConnId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConnId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.serial.cmp(&other.serial)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (node, worker) = (serial::node(self.serial), self.worker());
        if let Some(name) = node_name(node) {
            write!(f, "{name}/")?;
        }
        if node != 0 || worker != 0 {
            write!(f, "w{worker}")?;
        }
        write!(f, "#{}", serial::count(self.serial))
    }
}

/// Why a text is not a [`ConnId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConnIdError;

impl fmt::Display for ParseConnIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a connection id (like #42, w1#42 or node/w1#42)")
    }
}

impl std::error::Error for ParseConnIdError {}

impl std::str::FromStr for ConnId {
    type Err = ParseConnIdError;

    fn from_str(s: &str) -> Result<ConnId, ParseConnIdError> {
        let (node, rest) = match s.rsplit_once('/') {
            Some((name, rest)) if is_node_name(name) => {
                (node_index(name).ok_or(ParseConnIdError)?, rest)
            }
            Some(_) => return Err(ParseConnIdError),
            None => (0, s),
        };
        let (worker, count) = rest.split_once('#').ok_or(ParseConnIdError)?;
        let worker = match worker.strip_prefix('w') {
            Some(w) => digits(w).ok_or(ParseConnIdError)?,
            None if worker.is_empty() && node == 0 => 0,
            None => return Err(ParseConnIdError),
        };
        let count = digits(count).ok_or(ParseConnIdError)?;
        if worker >= serial::MAX_WORKERS as u64 || count >> serial::COUNT_BITS != 0 {
            return Err(ParseConnIdError);
        }
        Ok(ConnId::from_serial(
            serial::base(node, worker as usize) | count,
        ))
    }
}

/// Plain decimal digits (no sign, no spaces), as a number.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A node name: letters, digits, `-`, `_` and `.`, 1 to 64 of them.
pub(crate) fn is_node_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendStatus {
    /// Queued; it goes out when the callback returns, in one write with
    /// everything else sent in it.
    Queued,
    /// Not sent: a close frame has been sent or received already.
    Closed,
    /// Not sent, because the call was invalid: a control payload over 125
    /// bytes, or a message begun while a [`WebSocket::send_block`](crate::WebSocket::send_block) message is
    /// unfinished.
    Refused,
    /// Not sent: the connection's output is over `webSockets.maxBackpressure`
    /// (a slow reader). [`Handler::on_drain`](crate::Handler::on_drain) tells when it has room again.
    Dropped,
}

/// A connection's peer address in 16 bytes, where a `SocketAddr` takes 32:
/// an IPv4 address and port in place, an IPv6 one (with its flow label and
/// scope id) boxed. Every connection keeps one; nothing is lost.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    V4([u8; 4], u16),
    V6(Box<SocketAddrV6>),
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) => Peer::V4(a.ip().octets(), a.port()),
            SocketAddr::V6(a) => Peer::V6(Box::new(a)),
        }
    }

    /// The address, as accepted.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Peer::V4(ip, port) => SocketAddr::from((Ipv4Addr::from(*ip), *port)),
            Peer::V6(a) => SocketAddr::V6(**a),
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.addr().ip()
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.addr(), f)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.addr(), f)
    }
}

/// Who a request came from, for handlers that want to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub now: Instant,
    /// When the request's first byte arrived (for the access log's duration).
    pub started: Instant,
    /// The connection is TLS.
    pub tls: bool,
    /// The listener it was accepted on: its index in the server's listeners
    /// (`listen`, then `listen_tls`), for the listener-wide redirects.
    pub listener: u16,
}

/// The certificate a TLS client presented and the server verified (mutual
/// TLS, `tls.authority`): what a handler may want to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject, as `CN=…, O=…` (common name, organisation, unit,
    /// country, locality, state; other attributes are left out).
    pub subject: String,
    /// The subject alternative names: DNS names and IP addresses, as text.
    pub names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_keeps_its_whole_address() {
        for text in [
            "192.0.2.7:443",
            "0.0.0.0:0",
            "[2001:db8::1]:8080",
            "[fe80::1%7]:9",
        ] {
            let addr: SocketAddr = text.parse().expect("an address");
            let peer = Peer::new(addr);
            assert_eq!(peer.addr(), addr);
            assert_eq!(peer.ip(), addr.ip());
            assert_eq!(peer.to_string(), addr.to_string());
            assert_eq!(format!("{peer:?}"), format!("{addr:?}"));
        }
        let v6 = SocketAddrV6::new("fe80::2".parse().expect("an address"), 1, 0x12345, 3);
        assert_eq!(Peer::new(SocketAddr::V6(v6)).addr(), SocketAddr::V6(v6));
        assert_eq!(std::mem::size_of::<Peer>(), 16);
    }

    #[test]
    fn ids_read_back_from_their_text() {
        let node = node_index("device-a").unwrap();
        for (serial, text) in [
            (serial::base(0, 0) | 42, "#42"),
            (serial::base(0, 1) | 42, "w1#42"),
            (serial::base(node, 3) | 7, "device-a/w3#7"),
        ] {
            let id = ConnId::from_serial(serial);
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<ConnId>(), Ok(id));
        }
        assert_eq!("device-a/w3#7".parse::<ConnId>().unwrap().worker(), 3);
        assert_eq!(
            "device-a/w3#7".parse::<ConnId>().unwrap().node().as_deref(),
            Some("device-a")
        );
        for bad in [
            "", "#", "42", "#-1", "w#1", "w999#1", "a b/w1#1", "/w1#1", "x/#1", "#1 ",
        ] {
            assert_eq!(bad.parse::<ConnId>(), Err(ParseConnIdError), "{bad:?}");
        }
    }
}
