//! The client's side of the opening handshake (RFC 6455 §4.1), sans-IO: the
//! gateway sends an upgrade request with a key it drew, and this judges the
//! downstream server's answer by the client's rules.
//!
//! Like every parser here it is resumable: `Ok(None)` until the head is
//! complete, and nothing is consumed until then.

// The gateway (the lead's branch) is the first caller.
#![cfg_attr(not(test), allow(dead_code))]

use std::fmt;

use super::handshake::accept_key;
use crate::http::fields::{trim, Tokens};

/// Header lines a 101 answer may carry: far more than any server sends.
const MAX_HEADERS: usize = 64;

/// What the downstream answered to our upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switched {
    /// Bytes of the response head; frames may follow them in the buffer.
    pub len: usize,
    /// The subprotocol the server chose among those offered, if any.
    pub protocol: Option<String>,
}

/// Why the downstream's answer does not open a WebSocket; the connection is
/// given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientError {
    /// A status other than 101 Switching Protocols.
    Status(u16),
    /// `Upgrade: websocket` or `Connection: Upgrade` missing or wrong.
    NotWebSocket,
    /// `Sec-WebSocket-Accept` missing, repeated or not the one our key asks for.
    Accept,
    /// A subprotocol we did not offer, several, or one when we offered none.
    Protocol,
    /// Any `Sec-WebSocket-Extensions`: we offer none.
    Extension,
    /// Not an HTTP/1.x response head.
    Malformed,
    /// A head over the limit, or with more than 64 header lines.
    TooLarge,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Status(code) => write!(f, "upgrade answered with status {code}, not 101"),
            ClientError::NotWebSocket => {
                f.write_str("upgrade answer without Upgrade: websocket and Connection: Upgrade")
            }
            ClientError::Accept => {
                f.write_str("upgrade answer with a missing or wrong Sec-WebSocket-Accept")
            }
            ClientError::Protocol => {
                f.write_str("upgrade answer with a subprotocol that was not offered")
            }
            ClientError::Extension => {
                f.write_str("upgrade answer with an extension that was not offered")
            }
            ClientError::Malformed => f.write_str("malformed upgrade answer"),
            ClientError::TooLarge => f.write_str("upgrade answer head too large"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Reads the response to an upgrade sent with `key`, offering `offered`
/// subprotocols. `Ok(None)`: need more bytes (nothing consumed). `limit`
/// bounds the head's size: `TooLarge` beyond it even while incomplete.
pub(crate) fn read_answer(
    buf: &[u8],
    key: &str,
    offered: &[&str],
    limit: usize,
) -> Result<Option<Switched>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limit => len,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Err(ClientError::TooLarge)
        }
        // A head still incomplete at `limit` bytes will be longer.
        Ok(httparse::Status::Partial) if buf.len() >= limit => return Err(ClientError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ClientError::Malformed),
    };
    let status = response.code.ok_or(ClientError::Malformed)?;
    if status != 101 {
        return Err(ClientError::Status(status));
    }
    let protocol = check_headers(response.headers, key, offered)?;
    Ok(Some(Switched { len, protocol }))
}

/// §4.1's checks of a 101's headers, in its order; returns the subprotocol.
fn check_headers(
    headers: &[httparse::Header<'_>],
    key: &str,
    offered: &[&str],
) -> Result<Option<String>, ClientError> {
    // The Upgrade value is one token; Connection is a list that must hold one.
    let upgrade = Tokens::of(headers, "upgrade");
    let mut upgrade = upgrade.iter();
    let is_websocket = upgrade
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"websocket"));
    if !is_websocket
        || upgrade.next().is_some()
        || !Tokens::of(headers, "connection").has("upgrade")
    {
        return Err(ClientError::NotWebSocket);
    }
    check_accept(headers, key)?;
    if Tokens::of(headers, "sec-websocket-extensions")
        .iter()
        .next()
        .is_some()
    {
        return Err(ClientError::Extension);
    }
    chosen_protocol(headers, offered)
}

/// Exactly one `Sec-WebSocket-Accept`, the hash of our key (base64 is
/// case-sensitive, so it is compared exactly).
fn check_accept(headers: &[httparse::Header<'_>], key: &str) -> Result<(), ClientError> {
    let mut accepts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
    match (accepts.next(), accepts.next()) {
        (Some(h), None) if trim(h.value) == accept_key(key.as_bytes()).as_bytes() => Ok(()),
        _ => Err(ClientError::Accept),
    }
}

/// The subprotocol the server chose: none without the header, else exactly
/// one token that we offered (matched exactly: tokens are case-sensitive).
fn chosen_protocol(
    headers: &[httparse::Header<'_>],
    offered: &[&str],
) -> Result<Option<String>, ClientError> {
    let protocols = Tokens::of(headers, "sec-websocket-protocol");
    if !protocols.present {
        return Ok(None);
    }
    let mut tokens = protocols.iter();
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => offered
            .iter()
            .find(|p| p.as_bytes() == token)
            .map(|p| Some((*p).to_string()))
            .ok_or(ClientError::Protocol),
        _ => Err(ClientError::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of RFC 6455 §1.3 and its answer.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const LIMIT: usize = 8192;

    fn answer(headers: &[&str]) -> String {
        let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head + "\r\n"
    }

    /// A valid answer's lines, with `extra` added.
    fn valid(extra: &[&'static str]) -> String {
        let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
        let mut lines = vec!["Upgrade: websocket", "Connection: Upgrade", &accept];
        lines.extend_from_slice(extra);
        answer(&lines)
    }

    fn read(head: &str, offered: &[&str]) -> Result<Option<Switched>, ClientError> {
        read_answer(head.as_bytes(), KEY, offered, LIMIT)
    }

    fn switched(len: usize, protocol: Option<&str>) -> Result<Option<Switched>, ClientError> {
        Ok(Some(Switched {
            len,
            protocol: protocol.map(str::to_string),
        }))
    }

    #[test]
    fn the_rfc_example_split_at_every_byte() {
        let head = valid(&["Sec-WebSocket-Protocol: chat"]);
        let mut buf = head.clone().into_bytes();
        buf.extend_from_slice(b"\x81\x02hi"); // a frame right behind it
        let offered = ["chat", "superchat"];
        for cut in 0..head.len() {
            assert_eq!(
                read_answer(&buf[..cut], KEY, &offered, LIMIT),
                Ok(None),
                "cut {cut}"
            );
        }
        for end in head.len()..=buf.len() {
            assert_eq!(
                read_answer(&buf[..end], KEY, &offered, LIMIT),
                switched(head.len(), Some("chat")),
                "end {end}"
            );
        }
    }

    #[test]
    fn no_protocol_offered_and_none_chosen() {
        let head = valid(&[]);
        assert_eq!(read(&head, &[]), switched(head.len(), None));
        // The server may decline every offer.
        assert_eq!(read(&head, &["chat"]), switched(head.len(), None));
    }

    #[test]
    fn other_statuses() {
        let head = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read(head, &[]), Err(ClientError::Status(403)));
        let ok = valid(&[]).replace("101 Switching Protocols", "200 OK");
        assert_eq!(read(&ok, &[]), Err(ClientError::Status(200)));
    }

    #[test]
    fn upgrade_and_connection_are_case_insensitive_and_required() {
        let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
        let ok = answer(&[
            "upgrade: WebSocket",
            "CONNECTION: keep-alive, upgrade",
            &accept,
        ]);
        assert_eq!(read(&ok, &[]), switched(ok.len(), None));
        for lines in [
            vec!["Connection: Upgrade", &accept],
            vec!["Upgrade: websocket", &accept],
            vec!["Upgrade: h2c", "Connection: Upgrade", &accept],
            vec!["Upgrade: websocket, h2c", "Connection: Upgrade", &accept],
            vec!["Upgrade: websocket", "Connection: keep-alive", &accept],
        ] {
            assert_eq!(
                read(&answer(&lines), &[]),
                Err(ClientError::NotWebSocket),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn the_accept_must_be_our_keys() {
        let wrong = valid(&[]).replace(ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOO=");
        assert_eq!(read(&wrong, &[]), Err(ClientError::Accept));
        let missing = answer(&["Upgrade: websocket", "Connection: Upgrade"]);
        assert_eq!(read(&missing, &[]), Err(ClientError::Accept));
        let twice = valid(&["Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]);
        assert_eq!(read(&twice, &[]), Err(ClientError::Accept));
        let other_key = read_answer(
            valid(&[]).as_bytes(),
            "AAAAAAAAAAAAAAAAAAAAAA==",
            &[],
            LIMIT,
        );
        assert_eq!(other_key, Err(ClientError::Accept));
    }

    #[test]
    fn extensions_are_refused() {
        let head = valid(&["Sec-WebSocket-Extensions: permessage-deflate"]);
        assert_eq!(read(&head, &[]), Err(ClientError::Extension));
        // An empty list names no extension.
        let empty = valid(&["Sec-WebSocket-Extensions: "]);
        assert_eq!(read(&empty, &[]), switched(empty.len(), None));
    }

    #[test]
    fn only_an_offered_protocol_may_come_back() {
        let chat = valid(&["Sec-WebSocket-Protocol: chat"]);
        assert_eq!(read(&chat, &[]), Err(ClientError::Protocol));
        assert_eq!(read(&chat, &["superchat"]), Err(ClientError::Protocol));
        assert_eq!(read(&chat, &["Chat"]), Err(ClientError::Protocol));
        let two = valid(&["Sec-WebSocket-Protocol: chat, superchat"]);
        assert_eq!(
            read(&two, &["chat", "superchat"]),
            Err(ClientError::Protocol)
        );
        let empty = valid(&["Sec-WebSocket-Protocol: "]);
        assert_eq!(read(&empty, &["chat"]), Err(ClientError::Protocol));
    }

    #[test]
    fn malformed_heads() {
        for head in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 1O1 Nope\r\n\r\n",
            "HTTP/1.1 101 OK\r\nno colon\r\n\r\n",
        ] {
            assert_eq!(read(head, &[]), Err(ClientError::Malformed), "{head:?}");
        }
    }

    #[test]
    fn the_head_limit_holds_even_before_it_ends() {
        let head = valid(&[]);
        let at = |limit| read_answer(head.as_bytes(), KEY, &[], limit);
        assert_eq!(at(head.len()), switched(head.len(), None));
        assert_eq!(at(head.len() - 1), Err(ClientError::TooLarge));
        let cut = &head.as_bytes()[..20];
        assert_eq!(read_answer(cut, KEY, &[], 21), Ok(None));
        assert_eq!(read_answer(cut, KEY, &[], 20), Err(ClientError::TooLarge));
        let many: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(read(&answer(&many), &[]), Err(ClientError::TooLarge));
    }

    #[test]
    fn messages_are_one_line() {
        for e in [
            ClientError::Status(404),
            ClientError::NotWebSocket,
            ClientError::TooLarge,
        ] {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        assert_eq!(
            ClientError::Status(404).to_string(),
            "upgrade answered with status 404, not 101"
        );
    }
}
