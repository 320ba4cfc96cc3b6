//! Choosing a precompressed variant from Accept-Encoding (RFC 9110 §12.5.3).

use super::fields::trim;

/// A content coding we can serve: the file itself or a precompressed sibling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The file as it is.
    Identity,
    /// The `.gz` sibling.
    Gzip,
    /// The `.br` sibling.
    Brotli,
}

impl Encoding {
    /// The Content-Encoding token, if any.
    pub(crate) fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }

    /// The file name suffix of the precompressed sibling, if any.
    pub(crate) fn suffix(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some(".gz"),
            Encoding::Brotli => Some(".br"),
        }
    }
}

/// Picks the coding to serve from the Accept-Encoding value and the siblings
/// that exist.
///
/// Weights are in thousandths; a malformed weight counts as `q=0`. `*` stands
/// for every coding not listed by name, `x-gzip` for `gzip`; a coding listed
/// more than once gets its highest weight. Of the existing, acceptable
/// (`q > 0`) variants the highest weight wins, Brotli on a tie. Identity is
/// chosen when none qualifies, when there is no header, and when the client
/// names `identity` with a weight strictly above the best variant's.
pub(crate) fn choose_encoding(accept: Option<&[u8]>, have_br: bool, have_gz: bool) -> Encoding {
    let Some(accept) = accept else {
        return Encoding::Identity;
    };
    let weights = Weights::parse(accept);
    let star = weights.star.unwrap_or(0);
    let br = if have_br {
        weights.br.unwrap_or(star)
    } else {
        0
    };
    let gz = if have_gz {
        weights.gzip.unwrap_or(star)
    } else {
        0
    };
    let (best, q) = if br >= gz {
        (Encoding::Brotli, br)
    } else {
        (Encoding::Gzip, gz)
    };
    if q == 0 || weights.identity.is_some_and(|identity| identity > q) {
        Encoding::Identity
    } else {
        best
    }
}

/// The weights (in thousandths) an Accept-Encoding value gives the codings we
/// care about; `None` where a coding is not listed.
#[derive(Debug, Default)]
struct Weights {
    /// `br`.
    br: Option<u16>,
    /// `gzip` or `x-gzip`.
    gzip: Option<u16>,
    /// `identity`.
    identity: Option<u16>,
    /// `*`.
    star: Option<u16>,
}

impl Weights {
    /// Reads every member of the list; members that are not
    /// `coding *( OWS ";" OWS param )` are skipped.
    fn parse(accept: &[u8]) -> Weights {
        let mut w = Weights::default();
        for member in accept.split(|&b| b == b',') {
            let mut pieces = member.split(|&b| b == b';');
            let coding = trim(pieces.next().unwrap_or_default());
            if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                continue;
            }
            let q = weight(pieces);
            let slot = if coding.eq_ignore_ascii_case(b"br") {
                &mut w.br
            } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
            {
                &mut w.gzip
            } else if coding.eq_ignore_ascii_case(b"identity") {
                &mut w.identity
            } else if coding == b"*" {
                &mut w.star
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        w
    }
}

/// The weight given by a member's parameters: 1000 without a `q`, 0 if the
/// first `q` (or any parameter) is malformed. Other parameters are ignored,
/// and OWS around `=` is tolerated.
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> u16 {
    for param in params {
        let param = trim(param);
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            return 0;
        };
        let (name, value) = (trim(&param[..eq]), trim(&param[eq + 1..]));
        if name.eq_ignore_ascii_case(b"q") {
            return qvalue(value).unwrap_or(0);
        }
    }
    1000
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |&b| u16::from(b - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `b` is a token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(accept: &str) -> Encoding {
        choose_encoding(Some(accept.as_bytes()), true, true)
    }

    #[test]
    fn tokens_and_suffixes() {
        assert_eq!(Encoding::Identity.token(), None);
        assert_eq!(Encoding::Gzip.token(), Some("gzip"));
        assert_eq!(Encoding::Brotli.token(), Some("br"));
        assert_eq!(Encoding::Identity.suffix(), None);
        assert_eq!(Encoding::Gzip.suffix(), Some(".gz"));
        assert_eq!(Encoding::Brotli.suffix(), Some(".br"));
    }

    #[test]
    fn no_header_means_identity() {
        assert_eq!(choose_encoding(None, true, true), Encoding::Identity);
        assert_eq!(choose(""), Encoding::Identity);
    }

    #[test]
    fn weights_decide() {
        assert_eq!(choose("gzip, br"), Encoding::Brotli);
        assert_eq!(choose("br, gzip"), Encoding::Brotli);
        assert_eq!(choose("gzip"), Encoding::Gzip);
        assert_eq!(choose("br"), Encoding::Brotli);
        assert_eq!(choose("gzip;q=1, br;q=0.5"), Encoding::Gzip);
        assert_eq!(choose("gzip;q=0.5, br;q=0.5"), Encoding::Brotli);
        assert_eq!(choose("gzip;q=0.501, br;q=0.5"), Encoding::Gzip);
        assert_eq!(choose("gzip;q=0.001"), Encoding::Gzip);
        assert_eq!(choose("br;q=0, gzip;q=0"), Encoding::Identity);
        assert_eq!(choose("br;q=0"), Encoding::Identity);
        assert_eq!(choose("br;q=0.000, gzip"), Encoding::Gzip);
        assert_eq!(choose("deflate, compress"), Encoding::Identity);
        assert_eq!(choose("identity"), Encoding::Identity);
    }

    #[test]
    fn star_covers_unlisted_codings() {
        assert_eq!(choose("*"), Encoding::Brotli);
        assert_eq!(choose("*;q=0, gzip"), Encoding::Gzip);
        assert_eq!(choose("gzip, *;q=0"), Encoding::Gzip);
        assert_eq!(choose("br;q=0, *"), Encoding::Gzip);
        assert_eq!(choose("*;q=0.5, gzip;q=0.6"), Encoding::Gzip);
        assert_eq!(choose("*;q=0.7, gzip;q=0.6"), Encoding::Brotli);
        assert_eq!(choose("*;q=0"), Encoding::Identity);
    }

    #[test]
    fn x_gzip_is_gzip() {
        assert_eq!(choose("x-gzip"), Encoding::Gzip);
        assert_eq!(choose("X-GZIP;q=0.9, br;q=0.8"), Encoding::Gzip);
        assert_eq!(choose("gzip;q=0, x-gzip"), Encoding::Gzip);
    }

    #[test]
    fn only_existing_variants() {
        let br_only = Some(&b"br"[..]);
        assert_eq!(choose_encoding(br_only, false, true), Encoding::Identity);
        assert_eq!(choose_encoding(br_only, true, false), Encoding::Brotli);
        let both = Some(&b"gzip, br"[..]);
        assert_eq!(choose_encoding(both, false, true), Encoding::Gzip);
        assert_eq!(choose_encoding(both, true, false), Encoding::Brotli);
        assert_eq!(choose_encoding(both, false, false), Encoding::Identity);
        let star = Some(&b"*"[..]);
        assert_eq!(choose_encoding(star, false, true), Encoding::Gzip);
        let prefers_br = Some(&b"br, gzip;q=0.1"[..]);
        assert_eq!(choose_encoding(prefers_br, false, true), Encoding::Gzip);
    }

    #[test]
    fn identity_wins_only_when_preferred_explicitly() {
        assert_eq!(choose("gzip;q=0.5, identity"), Encoding::Identity);
        assert_eq!(choose("gzip, identity"), Encoding::Gzip);
        assert_eq!(choose("gzip, identity;q=0"), Encoding::Gzip);
        assert_eq!(choose("*;q=0.5, identity;q=0.6"), Encoding::Identity);
    }

    #[test]
    fn case_and_whitespace() {
        assert_eq!(choose("GZIP"), Encoding::Gzip);
        assert_eq!(choose("Br"), Encoding::Brotli);
        assert_eq!(choose("  gzip ,\tBR ; Q=0.5 "), Encoding::Gzip);
        assert_eq!(choose("gzip ;q=0.4,br\t;\tq=0.3"), Encoding::Gzip);
        assert_eq!(choose(",, gzip ,,"), Encoding::Gzip);
        assert_eq!(choose("br;q=1.000"), Encoding::Brotli);
        assert_eq!(choose("br;q=1., gzip;q=0.9"), Encoding::Brotli);
        assert_eq!(choose("br;foo=bar;q=0.2, gzip;q=0.1"), Encoding::Brotli);
        assert_eq!(choose("br ; q = 0.2 , gzip;q=0.1"), Encoding::Brotli);
    }

    #[test]
    fn malformed_weights_count_as_zero() {
        for bad in [
            "br;q=2",
            "br;q=1.001",
            "br;q=0.1234",
            "br;q=-1",
            "br;q=",
            "br;q=.5",
            "br;q=0,5",
            "br;q=0.5x",
            "br;q=abc",
            "br;q",
            "br;q=\"0.5\"",
            "br;q=01",
        ] {
            let accept = format!("{bad}, gzip;q=0.001");
            assert_eq!(choose(&accept), Encoding::Gzip, "{accept}");
        }
        assert_eq!(choose("br;q=2"), Encoding::Identity);
    }

    #[test]
    fn garbage_is_ignored() {
        assert_eq!(choose("\u{1}\u{2}"), Encoding::Identity);
        assert_eq!(choose(";;;,,,;q=1"), Encoding::Identity);
        assert_eq!(choose("br gzip"), Encoding::Identity);
        assert_eq!(choose("b r, gzip"), Encoding::Gzip);
        assert_eq!(choose("brotli, gz"), Encoding::Identity);
        assert_eq!(
            choose_encoding(Some(b"\xff\xfe, br"), true, true),
            Encoding::Brotli
        );
        assert_eq!(choose("**"), Encoding::Identity);
    }
}
