//! The few fields of an X.509 certificate the server reads itself: its
//! validity, its subject and its DNS and IP names. A bounded walk over DER
//! (ITU-T X.690) that refuses what it does not understand; rustls and
//! webpki do the verifying.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::http::date::instant_of;

/// What a certificate says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The subject as `CN=…, O=…` (the attributes the server knows by name;
    /// others are left out).
    pub subject: String,
    /// The subject alternative names: `dNSName`s and `iPAddress`es, as text.
    pub names: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` constructed: the version in front of the serial number.
const VERSION: u8 = 0xa0;
/// `[3]` constructed: the extensions.
const EXTENSIONS: u8 = 0xa3;
/// `[2]` and `[7]` primitive, inside GeneralNames.
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads one tag-length-value: the tag, the contents, and what follows.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        }
        // Indefinite lengths are BER, not DER; longer ones are not certificates.
        _ => return None,
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, &rest[len..]))
}

/// Reads one value that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

/// Reads what a certificate (DER) says of itself.
pub(crate) fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((VERSION, _, after)) = tlv(rest) {
        rest = after;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, rest) = expect(rest, SEQUENCE)?;
    let (_key, mut rest) = expect(rest, SEQUENCE)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    let mut names = Vec::new();
    while let Some((tag, contents, after)) = tlv(rest) {
        if tag == EXTENSIONS {
            names = alt_names(contents)?;
        }
        rest = after;
    }
    Some(CertInfo {
        not_before,
        not_after,
        subject: name(subject)?,
        names,
    })
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(input: &[u8]) -> Option<(SystemTime, &[u8])> {
    let (tag, text, rest) = tlv(input)?;
    let digits = text.strip_suffix(b"Z")?;
    let (year, digits) = match tag {
        // RFC 5280 §4.1.2.5.1: 50–99 are 19xx, 00–49 are 20xx.
        UTC_TIME if digits.len() == 12 => {
            let yy = i64::from(number(&digits[..2])?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        GENERALIZED_TIME if digits.len() == 14 => (i64::from(number(&digits[..4])?), &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| number(&digits[i..i + 2]);
    let time = (field(4)?, field(6)?, field(8)?);
    Some((instant_of(year, field(0)?, field(2)?, time)?, rest))
}

fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

/// A Name as `CN=…, O=…`: every attribute the server knows by name.
fn name(mut input: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !input.is_empty() {
        let (set, rest) = expect(input, SET)?;
        input = rest;
        let (attribute, _) = expect(set, SEQUENCE)?;
        let (oid, value) = expect(attribute, OID)?;
        let (_, text, _) = tlv(value)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            _ => continue,
        };
        parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
    }
    Some(parts.join(", "))
}

/// The DNS names and IP addresses of the subjectAltName extension.
fn alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let (mut list, _) = expect(extensions, SEQUENCE)?;
    while !list.is_empty() {
        let (extension, rest) = expect(list, SEQUENCE)?;
        list = rest;
        let (oid, mut value) = expect(extension, OID)?;
        if let Some((BOOLEAN, _, after)) = tlv(value) {
            value = after;
        }
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let (octets, _) = expect(value, OCTET_STRING)?;
        let (mut general_names, _) = expect(octets, SEQUENCE)?;
        let mut names = Vec::new();
        while let Some((tag, contents, rest)) = tlv(general_names) {
            general_names = rest;
            match tag {
                DNS_NAME => names.push(String::from_utf8_lossy(contents).into_owned()),
                IP_ADDRESS => {
                    if let Ok(v4) = <[u8; 4]>::try_from(contents) {
                        names.push(IpAddr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(contents) {
                        names.push(IpAddr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}
