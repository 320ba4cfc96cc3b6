//! Which `permessage-deflate` offer to accept (RFC 7692 §5–§7), and the
//! answer's `Sec-WebSocket-Extensions` value.
//!
//! Sections are RFC 7692's unless another RFC is named.
//!
//! Reading the header (RFC 6455 §9.1): each header value is a list of
//! extensions, `name *( ";" param [ "=" (token | quoted-string) ] )`, with
//! optional spaces and tabs around `,`, `;` and `=`, and empty list elements
//! allowed. Several header lines read as one list, in order. A quoted value
//! counts as what it unescapes to, which must itself be a token: the values
//! read here must be digits, so `"10"` is 10 and `"1 0"` is invalid. Other
//! extensions' values are only skipped, whatever their text.
//!
//! Names compare byte for byte: RFC 6455 gives extension tokens no case
//! folding, RFC 7692 §7 registers every name in lowercase, and every client
//! known sends it so. `Permessage-Deflate` is some other extension (skipped);
//! `Server_No_Context_Takeover` is an unknown parameter (declined).
//!
//! An element that breaks the grammar is declined like any bad offer. The
//! list goes on at the next comma when nothing between the fault and that
//! comma could hide one (a quote or a backslash); a fault inside a quoted
//! string, or a quote or backslash before the next comma, leaves no safe
//! place to resume, and the rest of that header value is declined. Later
//! header values are still read: each is delimited by the HTTP layer.
//!
//! Declining (§5): an offer naming an unknown parameter, a value a parameter
//! cannot take, or one parameter twice is declined and the next one is
//! tried; so is one with more than [`MAX_PARAMS`] parameters. Only the first
//! [`MAX_EXTENSIONS`] extensions over all header values are looked at.
//! Declining every offer answers without the header; the handshake itself
//! never fails over it.
//!
//! Agreeing (§7.1), the first acceptable offer within the [`Policy`]:
//! - `server_no_context_takeover` (§7.1.1.1): named when offered (accepting
//!   requires it), and always when the policy forbids our takeover.
//! - `client_no_context_takeover` (§7.1.1.2): the server may name it either
//!   way; named when offered (the client resets anyway, so our inflater may
//!   too) and always when the policy forbids the client's takeover.
//! - `server_max_window_bits=N` (§7.1.2.1): accepting requires naming a value
//!   no larger than N; we name min(N, policy). Unoffered, §7.1.2.1 lets the
//!   answer name it anyway, but we do not: an unconstrained client can
//!   inflate any window, naming it tells it only how much memory it could
//!   save, and some clients fail a handshake over a parameter they did not
//!   offer. Our compressor still keeps to the policy's window.
//! - `client_max_window_bits[=N]` (§7.1.2.2): never named unless offered
//!   (MUST NOT). Offered, the answer may name a value no larger than N (15
//!   without a value); we name min(N, policy) whenever that is below 15. An
//!   offered N already binds the client when the answer is silent (§7.1.2.2's
//!   hint); naming it as well costs nothing and leaves no doubt.
//! - Window values are `1*DIGIT` without leading zeros, 8..=15
//!   (§7.1.2.1, §7.1.2.2): `08`, `010`, `7`, `16` are invalid.

use super::{Agreed, Echo, Policy};

/// The extension's registered name (§7).
const NAME: &[u8] = b"permessage-deflate";
/// Our compressor starts every message afresh (§7.1.1.1).
const SERVER_NO_CONTEXT_TAKEOVER: &[u8] = b"server_no_context_takeover";
/// The client's compressor starts every message afresh (§7.1.1.2).
const CLIENT_NO_CONTEXT_TAKEOVER: &[u8] = b"client_no_context_takeover";
/// The largest window our compressor may use (§7.1.2.1).
const SERVER_MAX_WINDOW_BITS: &[u8] = b"server_max_window_bits";
/// The largest window the client's compressor may use (§7.1.2.2).
const CLIENT_MAX_WINDOW_BITS: &[u8] = b"client_max_window_bits";

/// The smallest window a parameter may name, as a base-2 logarithm.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest window, and the one used when nothing is named.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window the policy may hold either side to: zlib cannot
/// compress with 256 bytes, so we never ask a client to.
const MIN_POLICY_BITS: u8 = 9;

/// Extensions looked at over all header values; later ones are declined.
const MAX_EXTENSIONS: usize = 32;
/// Parameters read per extension; one with more is declined (a valid offer
/// has at most four).
const MAX_PARAMS: usize = 16;

/// The first acceptable `permessage-deflate` offer among every
/// `Sec-WebSocket-Extensions` header value (in the order received), agreed
/// within `policy`; `None` declines them all.
pub(crate) fn negotiate<'h>(
    offers: impl IntoIterator<Item = &'h [u8]>,
    policy: &Policy,
) -> Option<Agreed> {
    let mut budget = MAX_EXTENSIONS;
    for value in offers {
        for element in List::new(value) {
            budget = budget.checked_sub(1)?;
            let Ok(extension) = element else { continue };
            if extension.name != NAME {
                continue;
            }
            if let Some(offer) = Offer::read(&extension) {
                return Some(agree(&offer, policy));
            }
        }
    }
    None
}

impl Agreed {
    /// The answer's `Sec-WebSocket-Extensions` value.
    pub(crate) fn header_value(&self) -> String {
        let mut value = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.echo.server_max_window_bits {
            value.push_str("; server_max_window_bits=");
            value.push_str(&self.server_max_window_bits.to_string());
        }
        if self.echo.client_max_window_bits {
            value.push_str("; client_max_window_bits=");
            value.push_str(&self.client_max_window_bits.to_string());
        }
        value
    }
}

/// The parameters both sides keep to, given an acceptable offer (§7.1).
fn agree(offer: &Offer, policy: &Policy) -> Agreed {
    let ours = policy_bits(policy.server_window_bits);
    let theirs = policy_bits(policy.client_window_bits);
    let server_max_window_bits = offer.server_max_window_bits.map_or(ours, |n| n.min(ours));
    // Unoffered, the client may use the largest window whatever we say.
    let client_max_window_bits = match offer.client_max_window_bits {
        None => MAX_WINDOW_BITS,
        Some(n) => n.unwrap_or(MAX_WINDOW_BITS).min(theirs),
    };
    Agreed {
        server_no_context_takeover: offer.server_no_context_takeover || !policy.server_takeover,
        client_no_context_takeover: offer.client_no_context_takeover || !policy.client_takeover,
        server_max_window_bits,
        client_max_window_bits,
        echo: Echo {
            server_max_window_bits: offer.server_max_window_bits.is_some(),
            client_max_window_bits: client_max_window_bits < MAX_WINDOW_BITS,
        },
    }
}

/// A policy's window, held to the range the server can work with.
fn policy_bits(bits: u8) -> u8 {
    bits.clamp(MIN_POLICY_BITS, MAX_WINDOW_BITS)
}

/// What one `permessage-deflate` offer asks for (§7.1).
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    /// `server_no_context_takeover` was named.
    server_no_context_takeover: bool,
    /// `client_no_context_takeover` was named.
    client_no_context_takeover: bool,
    /// `server_max_window_bits=N`.
    server_max_window_bits: Option<u8>,
    /// `client_max_window_bits`, with its value if it has one.
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// The offer `extension` makes, or `None` when it must be declined (§5).
    fn read(extension: &Extension<'_>) -> Option<Offer> {
        let mut offer = Offer::default();
        for param in extension.params()? {
            offer.add(param)?;
        }
        Some(offer)
    }

    /// Adds one parameter; `None` for an unknown, repeated or invalid one.
    fn add(&mut self, param: &Param<'_>) -> Option<()> {
        match param.name {
            SERVER_NO_CONTEXT_TAKEOVER => flag(&mut self.server_no_context_takeover, param.value),
            CLIENT_NO_CONTEXT_TAKEOVER => flag(&mut self.client_no_context_takeover, param.value),
            SERVER_MAX_WINDOW_BITS => {
                let bits = window_bits(param.value?)?;
                once(&mut self.server_max_window_bits, bits)
            }
            CLIENT_MAX_WINDOW_BITS => {
                // Without a value the client only says it can keep to one.
                let bits = match param.value {
                    None => None,
                    Some(value) => Some(window_bits(value)?),
                };
                once(&mut self.client_max_window_bits, bits)
            }
            _ => None,
        }
    }
}

/// Sets a flag parameter, which takes no value and comes once.
fn flag(seen: &mut bool, value: Option<Value<'_>>) -> Option<()> {
    if *seen || value.is_some() {
        return None;
    }
    *seen = true;
    Some(())
}

/// Fills a parameter's slot unless it is already taken.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// A window size value: decimal without leading zeros, 8..=15 (§7.1.2.1).
fn window_bits(value: Value<'_>) -> Option<u8> {
    let mut bits: u8 = 0;
    for (i, digit) in value.unescaped().enumerate() {
        if !digit.is_ascii_digit() || (i == 0 && digit == b'0') {
            return None;
        }
        bits = bits * 10 + (digit - b'0');
        // Stop before a long run of digits can overflow.
        if bits > MAX_WINDOW_BITS {
            return None;
        }
    }
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// One extension of a list, well formed: its name and parameters.
struct Extension<'a> {
    /// The extension token.
    name: &'a [u8],
    /// The first [`MAX_PARAMS`] parameters, in order.
    params: [Param<'a>; MAX_PARAMS],
    /// How many parameters there were, possibly more than were kept.
    count: usize,
}

impl<'a> Extension<'a> {
    /// An extension with no parameters yet.
    fn new(name: &'a [u8]) -> Extension<'a> {
        Extension {
            name,
            params: [Param::default(); MAX_PARAMS],
            count: 0,
        }
    }

    /// Keeps a parameter, or only counts it once the array is full.
    fn push(&mut self, param: Param<'a>) {
        if let Some(slot) = self.params.get_mut(self.count) {
            *slot = param;
        }
        self.count = self.count.saturating_add(1);
    }

    /// The parameters, or `None` when there were too many to look at.
    fn params(&self) -> Option<&[Param<'a>]> {
        self.params.get(..self.count)
    }
}

/// One extension parameter.
#[derive(Debug, Clone, Copy, Default)]
struct Param<'a> {
    /// The parameter token.
    name: &'a [u8],
    /// What follows `=`, if anything does.
    value: Option<Value<'a>>,
}

/// A parameter's value as written.
#[derive(Debug, Clone, Copy)]
struct Value<'a> {
    /// A token, or a quoted string's text between its quotes (still escaped).
    text: &'a [u8],
    /// Whether `text` came from a quoted string.
    quoted: bool,
}

impl<'a> Value<'a> {
    /// The value's bytes with quoted-pair escapes undone.
    fn unescaped(self) -> Unescaped<'a> {
        Unescaped {
            bytes: self.text.iter(),
            quoted: self.quoted,
        }
    }
}

/// The bytes of a [`Value`], unescaped as they are read.
struct Unescaped<'a> {
    /// What is left of the value.
    bytes: std::slice::Iter<'a, u8>,
    /// Whether a backslash escapes the byte after it.
    quoted: bool,
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let byte = *self.bytes.next()?;
        if self.quoted && byte == b'\\' {
            // The parser let no backslash end a quoted string's text.
            return self.bytes.next().copied();
        }
        Some(byte)
    }
}

/// A malformed list element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Broken;

/// Where a syntax error was found, which says whether the list can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Outside any quoted string: the element ends at the next comma,
    /// unless a quote or backslash comes first.
    Outside,
    /// Inside a quoted string, whose end (and any comma in it) is unknown.
    InQuotes,
}

/// One header value read as an extension list, an element at a time.
/// Empty elements are skipped; a malformed one comes out as [`Broken`].
struct List<'a> {
    /// The header value.
    bytes: &'a [u8],
    /// Where reading goes on; never past the end.
    pos: usize,
}

impl<'a> List<'a> {
    /// A list over one header value.
    fn new(bytes: &'a [u8]) -> List<'a> {
        List { bytes, pos: 0 }
    }

    /// The byte at the cursor.
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Moves past one byte (only ever one that `peek` returned).
    fn bump(&mut self) {
        self.pos = (self.pos + 1).min(self.bytes.len());
    }

    /// Moves past `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        if next {
            self.bump();
        }
        next
    }

    /// Moves past spaces and tabs.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// The bytes from `start` to the cursor.
    fn since(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    /// One extension: a token and its parameters, up to a comma or the end.
    fn extension(&mut self) -> Result<Extension<'a>, Fault> {
        let mut extension = Extension::new(self.token()?);
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Ok(extension),
                Some(b';') => {
                    self.bump();
                    extension.push(self.param()?);
                }
                Some(_) => return Err(Fault::Outside),
            }
        }
    }

    /// One parameter after its `;`: a token, then maybe `=` and a value.
    fn param(&mut self) -> Result<Param<'a>, Fault> {
        self.skip_ows();
        let name = self.token()?;
        self.skip_ows();
        if !self.eat(b'=') {
            return Ok(Param { name, value: None });
        }
        self.skip_ows();
        let value = if self.eat(b'"') {
            Value {
                text: self.quoted()?,
                quoted: true,
            }
        } else {
            Value {
                text: self.token()?,
                quoted: false,
            }
        };
        Ok(Param {
            name,
            value: Some(value),
        })
    }

    /// A non-empty run of token characters.
    fn token(&mut self) -> Result<&'a [u8], Fault> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.bump();
        }
        let token = self.since(start);
        if token.is_empty() {
            return Err(Fault::Outside);
        }
        Ok(token)
    }

    /// A quoted string's text, its opening quote already read; the cursor
    /// ends past the closing quote.
    fn quoted(&mut self) -> Result<&'a [u8], Fault> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'"') => {
                    let text = self.since(start);
                    self.bump();
                    return Ok(text);
                }
                Some(b'\\') => {
                    self.bump();
                    if !self.peek().is_some_and(is_escapable) {
                        return Err(Fault::InQuotes);
                    }
                    self.bump();
                }
                Some(byte) if is_qdtext(byte) => self.bump(),
                _ => return Err(Fault::InQuotes),
            }
        }
    }

    /// After a fault at the cursor: resume at the next comma if the
    /// element's end is certain, else give up on the rest of the value.
    fn recover(&mut self, fault: Fault) {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let comma = match fault {
            Fault::InQuotes => None,
            Fault::Outside => rest
                .iter()
                .position(|&b| matches!(b, b',' | b'"' | b'\\'))
                .filter(|&i| rest.get(i) == Some(&b',')),
        };
        self.pos = comma.map_or(self.bytes.len(), |i| self.pos + i);
    }
}

impl<'a> Iterator for List<'a> {
    type Item = Result<Extension<'a>, Broken>;

    fn next(&mut self) -> Option<Self::Item> {
        // Empty elements (`a, , b`) are allowed by the `#` rule.
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.bump();
        }
        self.peek()?;
        match self.extension() {
            Ok(extension) => Some(Ok(extension)),
            Err(fault) => {
                self.recover(fault);
                Some(Err(Broken))
            }
        }
    }
}

/// A token character (RFC 9110 §5.6.2; RFC 2616's `token`, which RFC 6455
/// cites, allows the same set).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte that may stand unescaped in a quoted string (RFC 9110 §5.6.4).
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\')
}

/// A byte that may follow a backslash in a quoted string (RFC 9110 §5.6.4).
fn is_escapable(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// The default policy: no takeover either side, the largest windows.
    const FRESH: Policy = Policy {
        server_takeover: false,
        client_takeover: false,
        server_window_bits: 15,
        client_window_bits: 15,
    };

    /// A policy that asks nothing: the answer names only what the offer
    /// makes it name.
    const LAX: Policy = Policy {
        server_takeover: true,
        client_takeover: true,
        server_window_bits: 15,
        client_window_bits: 15,
    };

    /// `LAX` with both windows held to `server` and `client` bits.
    fn windows(server: u8, client: u8) -> Policy {
        Policy {
            server_window_bits: server,
            client_window_bits: client,
            ..LAX
        }
    }

    /// Negotiates over header lines given as text.
    fn agreed(policy: &Policy, lines: &[&str]) -> Option<Agreed> {
        negotiate(lines.iter().map(|line| line.as_bytes()), policy)
    }

    /// The answer's header value for one header line, or `None` if declined.
    fn answer(policy: &Policy, line: &str) -> Option<String> {
        answer_lines(policy, &[line])
    }

    /// The answer's header value for several header lines.
    fn answer_lines(policy: &Policy, lines: &[&str]) -> Option<String> {
        agreed(policy, lines).map(|a| a.header_value())
    }

    /// Checks one line's answer under a policy, naming the line on failure.
    fn check(policy: &Policy, cases: &[(&str, Option<&str>)]) {
        for &(line, want) in cases {
            assert_eq!(
                answer(policy, line).as_deref(),
                want,
                "offer {line:?} under {policy:?}"
            );
        }
    }

    const PMD: &str = "permessage-deflate";
    const BOTH_FRESH: &str =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn real_clients_offers() {
        // (offer, answer under the default policy, answer under LAX)
        let cases = [
            // Chromium, Python websockets (default), Node ws (default).
            (
                "permessage-deflate; client_max_window_bits",
                BOTH_FRESH,
                PMD,
            ),
            // Firefox.
            ("permessage-deflate", BOTH_FRESH, PMD),
            // aiohttp's client, compress=15 (it always names
            // client_max_window_bits); with notakeover; with compress=10.
            (
                "permessage-deflate; client_max_window_bits",
                BOTH_FRESH,
                PMD,
            ),
            (
                "permessage-deflate; client_max_window_bits; server_no_context_takeover",
                BOTH_FRESH,
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10",
                "permessage-deflate; server_max_window_bits=10",
            ),
            // Autobahn TestSuite section 13's offers.
            (
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                BOTH_FRESH,
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=15",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                 server_no_context_takeover; server_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8",
            ),
            // 13.7: three offers in one header; the first acceptable wins.
            (
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8, \
                 permessage-deflate; client_no_context_takeover, permessage-deflate",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
            ),
        ];
        for (offer, fresh, lax) in cases {
            assert_eq!(answer(&FRESH, offer).as_deref(), Some(fresh), "{offer:?}");
            assert_eq!(answer(&LAX, offer).as_deref(), Some(lax), "{offer:?}");
        }
    }

    #[test]
    fn nothing_offered_is_nothing_agreed() {
        assert_eq!(agreed(&FRESH, &[]), None);
        check(
            &FRESH,
            &[("", None), ("  \t", None), (",", None), (" , ,", None)],
        );
    }

    #[test]
    fn the_default_policy_agrees_fresh_contexts_and_full_windows() {
        assert_eq!(Policy::default(), FRESH);
        assert_eq!(
            agreed(&FRESH, &["permessage-deflate"]),
            Some(Agreed {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
                echo: Echo::default(),
            })
        );
    }

    #[test]
    fn server_no_context_takeover() {
        let offer = "permessage-deflate; server_no_context_takeover";
        // Offered, it is named even when we could take over (§7.1.1.1).
        let a = agreed(&LAX, &[offer]).unwrap();
        assert!(a.server_no_context_takeover);
        assert!(!a.client_no_context_takeover);
        assert_eq!(a.header_value(), offer);
        // Not offered: named exactly when the policy forbids our takeover.
        check(&LAX, &[(PMD, Some(PMD))]);
        let no_server = Policy {
            server_takeover: false,
            ..LAX
        };
        check(&no_server, &[(PMD, Some(offer)), (offer, Some(offer))]);
        // It takes no value.
        for bad in ["=1", "=true", "=\"\"", "=\"x\"", " = x"] {
            check(&LAX, &[(&format!("{offer}{bad}"), None)]);
        }
    }

    #[test]
    fn client_no_context_takeover() {
        let offer = "permessage-deflate; client_no_context_takeover";
        // Offered: named, and our inflater may reset per message.
        let a = agreed(&LAX, &[offer]).unwrap();
        assert!(a.client_no_context_takeover);
        assert!(!a.server_no_context_takeover);
        assert_eq!(a.header_value(), offer);
        // Not offered: named exactly when the policy forbids the client's
        // takeover (§7.1.1.2 lets the answer name it unasked).
        let no_client = Policy {
            client_takeover: false,
            ..LAX
        };
        check(&no_client, &[(PMD, Some(offer)), (offer, Some(offer))]);
        check(&LAX, &[(PMD, Some(PMD))]);
        for bad in ["=1", "=\"\"", "=client"] {
            check(&LAX, &[(&format!("{offer}{bad}"), None)]);
        }
    }

    /// Every valid way to write a window value, with the value it means.
    const GOOD_BITS: [(&str, u8); 12] = [
        ("8", 8),
        ("9", 9),
        ("10", 10),
        ("11", 11),
        ("12", 12),
        ("13", 13),
        ("14", 14),
        ("15", 15),
        ("\"10\"", 10),
        ("\"8\"", 8),
        // A quoted-pair unescapes to the character itself.
        ("\"1\\2\"", 12),
        ("\"\\9\"", 9),
    ];

    /// Values no window parameter takes.
    const BAD_BITS: [&str; 22] = [
        "7",
        "16",
        "0",
        "1",
        "08",
        "010",
        "015",
        "99",
        "255",
        "256",
        "99999999999999999999",
        "1a",
        "a",
        "-9",
        "+9",
        "9.0",
        "0x9",
        "\"1 0\"",
        "\"abc\"",
        "\"\"",
        "\" 9\"",
        "\"9 \"",
    ];

    #[test]
    fn server_max_window_bits_values() {
        for (text, bits) in GOOD_BITS {
            let offer = format!("permessage-deflate; server_max_window_bits={text}");
            let a = agreed(&LAX, &[&offer]).unwrap();
            assert_eq!(a.server_max_window_bits, bits, "{offer}");
            assert!(a.echo.server_max_window_bits);
            assert_eq!(
                a.header_value(),
                format!("permessage-deflate; server_max_window_bits={bits}")
            );
        }
        for text in BAD_BITS {
            let offer = format!("permessage-deflate; server_max_window_bits={text}");
            check(&LAX, &[(&offer, None)]);
        }
        // The value is required.
        check(
            &LAX,
            &[("permessage-deflate; server_max_window_bits", None)],
        );
    }

    #[test]
    fn server_max_window_bits_within_the_policy() {
        // Accepting names a value no larger than offered: ours if smaller.
        let policy = windows(10, 15);
        for (offered, named) in [(8, 8), (9, 9), (10, 10), (11, 10), (15, 10)] {
            let offer = format!("permessage-deflate; server_max_window_bits={offered}");
            let a = agreed(&policy, &[&offer]).unwrap();
            assert_eq!(a.server_max_window_bits, named);
            assert_eq!(
                a.header_value(),
                format!("permessage-deflate; server_max_window_bits={named}")
            );
        }
        // Not offered: our compressor keeps to the policy, the answer is
        // silent (§7.1.2.1 allows naming it; we do not).
        let a = agreed(&policy, &[PMD]).unwrap();
        assert_eq!(a.server_max_window_bits, 10);
        assert!(!a.echo.server_max_window_bits);
        assert_eq!(a.header_value(), PMD);
        // A policy outside 9..=15 is held to it.
        for (bits, held) in [(0, 9), (8, 9), (16, 15), (255, 15)] {
            let a = agreed(&windows(bits, 15), &[PMD]).unwrap();
            assert_eq!(a.server_max_window_bits, held);
        }
    }

    #[test]
    fn client_max_window_bits_values() {
        for (text, bits) in GOOD_BITS {
            let offer = format!("permessage-deflate; client_max_window_bits={text}");
            let a = agreed(&LAX, &[&offer]).unwrap();
            assert_eq!(a.client_max_window_bits, bits, "{offer}");
            // Named whenever it holds the client below the largest window.
            assert_eq!(a.echo.client_max_window_bits, bits < 15);
            let want = if bits < 15 {
                format!("permessage-deflate; client_max_window_bits={bits}")
            } else {
                PMD.to_string()
            };
            assert_eq!(a.header_value(), want);
        }
        for text in BAD_BITS {
            let offer = format!("permessage-deflate; client_max_window_bits={text}");
            check(&LAX, &[(&offer, None)]);
        }
    }

    #[test]
    fn client_max_window_bits_within_the_policy() {
        let no_value = "permessage-deflate; client_max_window_bits";
        // Not offered: never named, whatever the policy (§7.1.2.2 MUST NOT).
        for client in [9, 12, 15] {
            let a = agreed(&windows(15, client), &[PMD]).unwrap();
            assert_eq!(a.client_max_window_bits, 15);
            assert!(!a.echo.client_max_window_bits);
            assert_eq!(a.header_value(), PMD);
        }
        // Offered without a value: the policy's window if it asks one.
        check(&windows(15, 15), &[(no_value, Some(PMD))]);
        check(
            &windows(15, 12),
            &[(
                no_value,
                Some("permessage-deflate; client_max_window_bits=12"),
            )],
        );
        check(
            &windows(15, 9),
            &[(
                no_value,
                Some("permessage-deflate; client_max_window_bits=9"),
            )],
        );
        // Offered with N: min(N, policy), named below 15.
        let policy = windows(15, 10);
        for (offered, named) in [(8, 8), (9, 9), (10, 10), (12, 10), (15, 10)] {
            let offer = format!("permessage-deflate; client_max_window_bits={offered}");
            let a = agreed(&policy, &[&offer]).unwrap();
            assert_eq!(a.client_max_window_bits, named);
            assert_eq!(
                a.header_value(),
                format!("permessage-deflate; client_max_window_bits={named}")
            );
        }
        // A policy below 9 is held to 9: a client is never asked for 8.
        check(
            &windows(15, 0),
            &[(
                no_value,
                Some("permessage-deflate; client_max_window_bits=9"),
            )],
        );
    }

    #[test]
    fn every_parameter_at_once() {
        let offer = "permessage-deflate; server_no_context_takeover; \
                     client_no_context_takeover; server_max_window_bits=12; \
                     client_max_window_bits=11";
        let a = agreed(&windows(13, 10), &[offer]).unwrap();
        assert_eq!(
            a,
            Agreed {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 12,
                client_max_window_bits: 10,
                echo: Echo {
                    server_max_window_bits: true,
                    client_max_window_bits: true,
                },
            }
        );
        assert_eq!(
            a.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=10"
        );
        // Parameter order does not matter.
        let reordered = "permessage-deflate;client_max_window_bits=11;server_max_window_bits=12;\
                         client_no_context_takeover;server_no_context_takeover";
        assert_eq!(agreed(&windows(13, 10), &[reordered]), Some(a));
    }

    #[test]
    fn a_repeated_parameter_declines_the_offer() {
        check(
            &LAX,
            &[
                (
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    None,
                ),
                (
                    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                    None,
                ),
                (
                    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
                    None,
                ),
                (
                    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=9",
                    None,
                ),
                (
                    "permessage-deflate; client_max_window_bits; client_max_window_bits",
                    None,
                ),
                (
                    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
                    None,
                ),
                (
                    "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
                    None,
                ),
                // ...and the next offer is tried.
                (
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover, \
                     permessage-deflate; client_no_context_takeover",
                    Some("permessage-deflate; client_no_context_takeover"),
                ),
            ],
        );
    }

    #[test]
    fn an_unknown_parameter_declines_the_offer() {
        check(
            &LAX,
            &[
                ("permessage-deflate; x", None),
                ("permessage-deflate; x=1", None),
                (
                    "permessage-deflate; client_max_window_bits; foo=\"bar\"",
                    None,
                ),
                ("permessage-deflate; server_max_window", None),
                ("permessage-deflate; server_max_window_bits_=10", None),
                ("permessage-deflate; client_max_compress_level=9", None),
                // Names are compared byte for byte.
                ("permessage-deflate; Server_No_Context_Takeover", None),
                ("permessage-deflate; CLIENT_MAX_WINDOW_BITS", None),
                (
                    "permessage-deflate; x, permessage-deflate",
                    Some("permessage-deflate"),
                ),
            ],
        );
    }

    #[test]
    fn other_extensions_are_skipped() {
        check(
            &LAX,
            &[
                ("x-webkit-deflate-frame", None),
                ("deflate-frame; no_context_takeover", None),
                ("permessage-deflate-x", None),
                ("Permessage-Deflate", None),
                ("PERMESSAGE-DEFLATE", None),
                ("x-webkit-deflate-frame, permessage-deflate", Some(PMD)),
                (
                    "foo; bar=1, permessage-deflate; client_no_context_takeover",
                    Some("permessage-deflate; client_no_context_takeover"),
                ),
                // A comma inside a quoted string does not split the list.
                ("foo; bar=\"a, permessage-deflate\"", None),
                ("foo; bar=\"a, b\\\", c\", permessage-deflate", Some(PMD)),
                // Another extension may use a quoted value of any text.
                ("foo; bar=\"ü \\\" ;=,\", permessage-deflate", Some(PMD)),
            ],
        );
    }

    #[test]
    fn the_first_acceptable_offer_wins() {
        let policy = windows(12, 15);
        let cases = [
            (
                vec!["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                vec!["permessage-deflate, permessage-deflate; server_max_window_bits=10"],
                "permessage-deflate",
            ),
            (
                vec!["permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9"],
                "permessage-deflate; server_max_window_bits=9",
            ),
            // Over several header lines, in the order received.
            (
                vec![
                    "permessage-deflate; client_no_context_takeover",
                    "permessage-deflate",
                ],
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                vec![
                    "x-webkit-deflate-frame",
                    "permessage-deflate; bogus",
                    "permessage-deflate; server_max_window_bits=14",
                    "permessage-deflate",
                ],
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                vec!["", "permessage-deflate; x=1", " , ", "permessage-deflate"],
                "permessage-deflate",
            ),
        ];
        for (lines, want) in cases {
            assert_eq!(
                answer_lines(&policy, &lines).as_deref(),
                Some(want),
                "{lines:?}"
            );
        }
        assert_eq!(
            answer_lines(
                &policy,
                &["permessage-deflate; x", "foo", "permessage-deflate; y"]
            ),
            None
        );
    }

    #[test]
    fn whitespace_and_empty_elements() {
        let full = "permessage-deflate; client_no_context_takeover; server_max_window_bits=10";
        check(
            &LAX,
            &[
                (
                    "permessage-deflate;client_no_context_takeover;server_max_window_bits=10",
                    Some(full),
                ),
                (
                    " \tpermessage-deflate \t; \tclient_no_context_takeover\t ;server_max_window_bits \t= \t10 \t",
                    Some(full),
                ),
                (
                    ", ,\t,permessage-deflate; client_no_context_takeover; server_max_window_bits=10,, ,",
                    Some(full),
                ),
                (
                    "foo,,permessage-deflate ; server_max_window_bits = \"10\" ; client_no_context_takeover",
                    Some(full),
                ),
            ],
        );
    }

    #[test]
    fn a_broken_element_is_declined_and_the_list_resumes_where_safe() {
        let cnct = Some("permessage-deflate; client_no_context_takeover");
        check(
            &LAX,
            &[
                // A parameter with no name, a value with no text.
                ("permessage-deflate;", None),
                ("permessage-deflate; ; client_no_context_takeover", None),
                ("permessage-deflate;; client_no_context_takeover", None),
                ("permessage-deflate; =10", None),
                ("permessage-deflate; server_max_window_bits=", None),
                ("permessage-deflate; server_max_window_bits= ;", None),
                ("; permessage-deflate", None),
                ("=, permessage-deflate", Some(PMD)),
                // Bad token characters, a missing `;`, junk after a value.
                ("permessage-deflate; client@no_context_takeover", None),
                ("permessage-deflate client_max_window_bits", None),
                ("permessage-deflate; server_max_window_bits=10 11", None),
                ("permessage-deflate; server_max_window_bits=(10)", None),
                ("permessage-deflate/1", None),
                ("permessage-deflate\u{0}", None),
                ("permessage-deflate\r\n", None),
                ("ü", None),
                // The broken element ends at the next comma: the list goes on.
                ("permessage-deflate; a@b, permessage-deflate; client_no_context_takeover", cnct),
                ("permessage-deflate client_max_window_bits, permessage-deflate; client_no_context_takeover", cnct),
                ("ü, permessage-deflate; client_no_context_takeover", cnct),
                ("x; y=\"a\"b, permessage-deflate; client_no_context_takeover", cnct),
                ("x; y=(1,2), permessage-deflate; client_no_context_takeover", cnct),
                // A quote or backslash before that comma might hide one, and
                // a fault inside a quoted string hides where it ends: the
                // rest of the value is declined.
                ("permessage-deflate; server_max_window_bits=\"10", None),
                ("permessage-deflate; server_max_window_bits=\"10, permessage-deflate", None),
                ("x; y=a\"b\", permessage-deflate", None),
                ("x; y=a\\b, permessage-deflate", None),
                ("x; y=\"a\u{1}\", permessage-deflate", None),
                ("x; y=\"a\\", None),
                ("x; y=\"a\\\u{7f}\", permessage-deflate", None),
                ("\"permessage-deflate\", permessage-deflate", None),
            ],
        );
        // The next header line is read all the same.
        let lines = [
            "permessage-deflate; x=\"",
            "permessage-deflate; client_no_context_takeover",
        ];
        assert_eq!(answer_lines(&LAX, &lines).as_deref(), cnct);
    }

    #[test]
    fn bytes_outside_ascii_do_not_break_the_parse() {
        let offers: [&[u8]; 4] = [
            b"\xff\xfe, permessage-deflate",
            b"x; y=\"\x80\xff\", permessage-deflate",
            b"permessage-deflate; server_max_window_bits=\"\xc2\xb9\"",
            b"permessage-deflate\xa0",
        ];
        let want = [Some(PMD.to_string()), Some(PMD.to_string()), None, None];
        for (offer, want) in offers.into_iter().zip(want) {
            let got = negotiate([offer], &LAX).map(|a| a.header_value());
            assert_eq!(got, want, "{offer:?}");
        }
    }

    #[test]
    fn only_so_many_extensions_are_looked_at() {
        let foreign = |n: usize| vec!["x"; n].join(", ");
        // The 32nd extension is looked at, the 33rd is not.
        let last = format!("{}, permessage-deflate", foreign(MAX_EXTENSIONS - 1));
        assert_eq!(answer(&LAX, &last).as_deref(), Some(PMD));
        let past = format!("{}, permessage-deflate", foreign(MAX_EXTENSIONS));
        assert_eq!(answer(&LAX, &past), None);
        // The count runs over every header line; broken elements count.
        let lines = [
            "x, y@, z",
            &foreign(MAX_EXTENSIONS - 3),
            "permessage-deflate",
        ];
        assert_eq!(answer_lines(&LAX, &lines), None);
        let lines = [
            "x, y@, z",
            &foreign(MAX_EXTENSIONS - 4),
            "permessage-deflate",
        ];
        assert_eq!(answer_lines(&LAX, &lines).as_deref(), Some(PMD));
        // Empty elements are free.
        let empties = format!("{}permessage-deflate", ", ".repeat(1000));
        assert_eq!(answer(&LAX, &empties).as_deref(), Some(PMD));
    }

    #[test]
    fn only_so_many_parameters_are_looked_at() {
        let params = |n: usize| "; a=1".repeat(n);
        // Another extension with many parameters is skipped like any other.
        let many = format!("x{}, permessage-deflate", params(100));
        assert_eq!(answer(&LAX, &many).as_deref(), Some(PMD));
        // An offer with more than MAX_PARAMS is declined without a look.
        let mut extension = Extension::new(NAME);
        for _ in 0..MAX_PARAMS {
            extension.push(Param::default());
        }
        assert_eq!(extension.params().map(<[_]>::len), Some(MAX_PARAMS));
        extension.push(Param::default());
        assert!(extension.params().is_none());
        let long = format!(
            "permessage-deflate{}",
            "; client_no_context_takeover".repeat(17)
        );
        assert_eq!(answer(&LAX, &long), None);
    }

    /// An extension as plain data: its name, and each parameter's name
    /// and value (text, quoted).
    type Plain<'a> = (&'a [u8], Vec<(&'a [u8], Option<(&'a [u8], bool)>)>);

    #[test]
    fn the_list_reads_elements_and_parameters() {
        let list: Vec<_> = List::new(b" a ; b ; c = \"d\\\"e\" , , f@, g;h=i ")
            .map(|e| {
                e.map(|x| {
                    let params: Vec<_> = x
                        .params()
                        .unwrap()
                        .iter()
                        .map(|p| (p.name, p.value.map(|v| (v.text, v.quoted))))
                        .collect();
                    (x.name, params)
                })
            })
            .collect();
        let want: Vec<Result<Plain<'_>, Broken>> = vec![
            Ok((b"a", vec![(b"b", None), (b"c", Some((b"d\\\"e", true)))])),
            Err(Broken),
            Ok((b"g", vec![(b"h", Some((b"i", false)))])),
        ];
        assert_eq!(list, want);
    }

    #[test]
    fn window_values_unescape() {
        let value = |text: &'static [u8], quoted| Value { text, quoted };
        assert_eq!(window_bits(value(b"12", false)), Some(12));
        assert_eq!(window_bits(value(b"1\\2", true)), Some(12));
        // Unquoted, a backslash is no escape (nor a token character).
        assert_eq!(window_bits(value(b"1\\2", false)), None);
        assert_eq!(window_bits(value(b"", true)), None);
        assert_eq!(window_bits(value(b"\\", true)), None);
    }

    #[test]
    fn header_values() {
        let flags = |server, client| Agreed {
            server_no_context_takeover: server,
            client_no_context_takeover: client,
            server_max_window_bits: 11,
            client_max_window_bits: 9,
            echo: Echo::default(),
        };
        let named = |server_max_window_bits, client_max_window_bits| Agreed {
            echo: Echo {
                server_max_window_bits,
                client_max_window_bits,
            },
            ..flags(false, false)
        };
        let cases = [
            (flags(false, false), "permessage-deflate"),
            (
                flags(true, false),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                flags(false, true),
                "permessage-deflate; client_no_context_takeover",
            ),
            (flags(true, true), BOTH_FRESH),
            (
                named(true, false),
                "permessage-deflate; server_max_window_bits=11",
            ),
            (
                named(false, true),
                "permessage-deflate; client_max_window_bits=9",
            ),
            (
                named(true, true),
                "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9",
            ),
            (
                Agreed {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    ..named(true, true)
                },
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=11; client_max_window_bits=9",
            ),
        ];
        for (agreed, want) in cases {
            assert_eq!(agreed.header_value(), want);
        }
    }

    // Properties.

    /// Cases per property, unless `PROPTEST_CASES` asks for more (or fewer).
    fn config() -> ProptestConfig {
        if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default()
        } else {
            ProptestConfig::with_cases(256)
        }
    }

    /// Any policy, windows out of range included.
    fn policy() -> impl Strategy<Value = Policy> {
        (any::<bool>(), any::<bool>(), 0..=20u8, 0..=20u8).prop_map(
            |(server_takeover, client_takeover, server_window_bits, client_window_bits)| Policy {
                server_takeover,
                client_takeover,
                server_window_bits,
                client_window_bits,
            },
        )
    }

    /// A parameter an offer might carry, valid or not.
    fn param() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec![
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
            "x",
        ]);
        let value = prop::sample::select(vec![
            "", "=8", "=9", "=10", "=12", "=15", "=16", "=08", "= 11", "=\"13\"", "=\"1 0\"",
        ]);
        (name, value).prop_map(|(name, value)| format!("{name}{value}"))
    }

    /// One list element holding no comma outside a quoted string: offers,
    /// other extensions, empty and broken (but quote-free) elements.
    fn element() -> impl Strategy<Value = String> {
        let pad = prop::sample::select(vec!["", " ", "\t", " \t "]);
        let offer = (vec(param(), 0..4), pad.clone()).prop_map(|(params, pad)| {
            let mut text = String::from("permessage-deflate");
            for param in params {
                text.push_str(&format!("{pad};{pad}{param}"));
            }
            text
        });
        let other = prop::sample::select(vec![
            "x-webkit-deflate-frame",
            "foo; bar=\"a, b\"",
            "foo; q=\"\\\",\"",
            "Permessage-Deflate",
            "",
            "  ",
            "a@b",
            "permessage-deflate client_max_window_bits",
            "permessage-deflate;",
        ])
        .prop_map(str::to_string);
        (prop_oneof![3 => offer, 2 => other], pad.clone(), pad)
            .prop_map(|(element, before, after)| format!("{before}{element}{after}"))
    }

    /// Bytes shaped like an extension list, to reach deep into the parser.
    fn near_miss() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            &b"permessage-deflate"[..],
            b"server_no_context_takeover",
            b"client_no_context_takeover",
            b"server_max_window_bits",
            b"client_max_window_bits",
            b"x",
            b";",
            b",",
            b"=",
            b"\"",
            b"\\",
            b" ",
            b"\t",
            b"8",
            b"10",
            b"15",
            b"0",
            b"\x00",
            b"\xff",
            b"\r\n",
        ]);
        vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    /// What any agreement must satisfy, whatever the offers were.
    fn assert_sound(agreed: &Agreed, policy: &Policy, lines: &[Vec<u8>]) {
        let bits = MIN_WINDOW_BITS..=MAX_WINDOW_BITS;
        assert!(bits.contains(&agreed.server_max_window_bits));
        assert!(bits.contains(&agreed.client_max_window_bits));
        assert!(agreed.server_max_window_bits <= policy_bits(policy.server_window_bits));
        assert!(agreed.server_no_context_takeover || policy.server_takeover);
        assert!(agreed.client_no_context_takeover || policy.client_takeover);
        let named = |name: &[u8]| {
            lines
                .iter()
                .any(|line| line.windows(name.len()).any(|w| w == name))
        };
        if !named(CLIENT_MAX_WINDOW_BITS) {
            assert!(!agreed.echo.client_max_window_bits);
            assert_eq!(agreed.client_max_window_bits, MAX_WINDOW_BITS);
        }
        if !named(SERVER_MAX_WINDOW_BITS) {
            assert!(!agreed.echo.server_max_window_bits);
        }
        // The answer reads back as an offer of exactly what it names.
        let value = agreed.header_value();
        let again = negotiate([value.as_bytes()], &LAX).map(|a| a.header_value());
        assert_eq!(again.as_deref(), Some(value.as_str()));
    }

    proptest! {
        #![proptest_config(config())]

        /// One list split into header lines at any of its commas agrees
        /// exactly as it does on one line.
        #[test]
        fn splitting_at_commas_changes_nothing(
            elements in vec(element(), 1..10),
            cuts in vec(any::<bool>(), 10),
            policy in policy(),
        ) {
            let whole = elements.join(",");
            let want = agreed(&policy, &[&whole]);
            // At every single comma.
            for at in 1..elements.len() {
                let lines = [elements[..at].join(","), elements[at..].join(",")];
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                prop_assert_eq!(agreed(&policy, &lines), want, "split at {}", at);
            }
            // At every comma, and at a random choice of them.
            let lines: Vec<&str> = elements.iter().map(String::as_str).collect();
            prop_assert_eq!(agreed(&policy, &lines), want);
            let mut lines = vec![elements[0].clone()];
            for (element, cut) in elements[1..].iter().zip(&cuts) {
                match lines.last_mut() {
                    Some(last) if !cut => {
                        last.push(',');
                        last.push_str(element);
                    }
                    _ => lines.push(element.clone()),
                }
            }
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            prop_assert_eq!(agreed(&policy, &lines), want);
        }

        /// Garbage never panics, and whatever is agreed is sound.
        #[test]
        fn any_bytes_are_safe(
            lines in vec(vec(any::<u8>(), 0..64), 0..4),
            policy in policy(),
        ) {
            if let Some(a) = negotiate(lines.iter().map(Vec::as_slice), &policy) {
                assert_sound(&a, &policy, &lines);
            }
        }

        /// Near misses of the grammar never panic, and agreements are sound.
        #[test]
        fn near_misses_are_safe(
            lines in vec(near_miss(), 0..4),
            policy in policy(),
        ) {
            if let Some(a) = negotiate(lines.iter().map(Vec::as_slice), &policy) {
                assert_sound(&a, &policy, &lines);
            }
        }

        /// Well-formed lists of offers agree soundly.
        #[test]
        fn offers_agree_soundly(elements in vec(element(), 1..10), policy in policy()) {
            let lines = vec![elements.join(",").into_bytes()];
            if let Some(a) = negotiate(lines.iter().map(Vec::as_slice), &policy) {
                assert_sound(&a, &policy, &lines);
            }
        }
    }
}
