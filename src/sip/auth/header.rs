//! Parsing and printing of challenge and credentials header values.
//!
//! The parser is deliberately lenient about layout (order, case of names and
//! scheme, optional quotes, folding whitespace, unknown parameters, empty
//! list elements) because phones in the field are sloppy, and strict about
//! meaning (duplicates of a known parameter, unterminated quotes) because an
//! ambiguous header is one two parsers could read differently.
//!
//! One value holds one challenge; a header line carrying several challenges
//! joined by commas must be split by the owner's SIP parser first.

use super::{Algorithm, Qop};
use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A scheme other than Digest (Basic, Bearer, RFC 4475's
    /// `NoOneKnowsThisScheme`). A server answers with a fresh Digest
    /// challenge, not 400; a client skips the header.
    NotDigest(String),
    UnsupportedAlgorithm(String),
    UnsupportedQop(String),
    Malformed(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDigest(s) => write!(f, "unsupported auth scheme {s:?}"),
            Self::UnsupportedAlgorithm(a) => write!(f, "unsupported digest algorithm {a:?}"),
            Self::UnsupportedQop(q) => write!(f, "unsupported qop {q:?}"),
            Self::Malformed(why) => write!(f, "malformed digest header: {why}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A `WWW-Authenticate` / `Proxy-Authenticate` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// `MD5` when the parameter is absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// Lower-cased tokens; kept raw so unknown future qops survive a round
    /// trip. Empty means the RFC 2069 form.
    pub qop: Vec<String>,
    pub opaque: Option<String>,
    pub stale: bool,
    pub domain: Option<String>,
    pub userhash: bool,
}

/// An `Authorization` / `Proxy-Authorization` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    /// When present, `cnonce` and `nc` are guaranteed present by the parser.
    pub qop: Option<Qop>,
    pub nc: Option<u32>,
    pub opaque: Option<String>,
    pub userhash: bool,
}

impl Challenge {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let [realm, nonce, algorithm, qop, opaque, stale, domain, userhash] = collect_params(
            value,
            [
                "realm",
                "nonce",
                "algorithm",
                "qop",
                "opaque",
                "stale",
                "domain",
                "userhash",
            ],
        )?;
        Ok(Challenge {
            realm: realm.ok_or(ParseError::Malformed("challenge without realm"))?,
            nonce: nonce.ok_or(ParseError::Malformed("challenge without nonce"))?,
            algorithm: parse_algorithm(algorithm)?,
            qop: qop
                .map(|q| {
                    q.split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            opaque,
            stale: is_true(stale.as_deref()),
            domain,
            userhash: is_true(userhash.as_deref()),
        })
    }

    /// Whether `q` is among the offered qops.
    pub fn offers(&self, q: Qop) -> bool {
        self.qop.iter().any(|t| t == q.as_str())
    }
}

impl Credentials {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let [username, realm, nonce, uri, response, algorithm, cnonce, qop, nc, opaque, userhash] =
            collect_params(
                value,
                [
                    "username",
                    "realm",
                    "nonce",
                    "uri",
                    "response",
                    "algorithm",
                    "cnonce",
                    "qop",
                    "nc",
                    "opaque",
                    "userhash",
                ],
            )?;
        let qop = match qop {
            None => None,
            Some(q) => Some(Qop::parse(q.trim()).ok_or(ParseError::UnsupportedQop(q))?),
        };
        let nc = match nc {
            None => None,
            Some(n) => Some(parse_nc(&n).ok_or(ParseError::Malformed("nc is not 1-8 hex digits"))?),
        };
        if qop.is_some() && (cnonce.is_none() || nc.is_none()) {
            return Err(ParseError::Malformed("qop without cnonce or nc"));
        }
        Ok(Credentials {
            username: username.ok_or(ParseError::Malformed("credentials without username"))?,
            realm: realm.ok_or(ParseError::Malformed("credentials without realm"))?,
            nonce: nonce.ok_or(ParseError::Malformed("credentials without nonce"))?,
            uri: uri.ok_or(ParseError::Malformed("credentials without uri"))?,
            response: response.ok_or(ParseError::Malformed("credentials without response"))?,
            algorithm: parse_algorithm(algorithm)?,
            cnonce,
            qop,
            nc,
            opaque,
            userhash: is_true(userhash.as_deref()),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}",
            Q(&self.realm),
            Q(&self.nonce)
        )?;
        if let Some(d) = &self.domain {
            write!(f, ", domain={}", Q(d))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", Q(o))?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            write!(f, ", qop={}", Q(&self.qop.join(",")))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        Ok(())
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            Q(&self.username),
            Q(&self.realm),
            Q(&self.nonce),
            Q(&self.uri),
            Q(&self.response),
            self.algorithm
        )?;
        if let Some(c) = &self.cnonce {
            write!(f, ", cnonce={}", Q(c))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", Q(o))?;
        }
        // qop and nc are unquoted tokens in RFC 3261's grammar; some PBXs
        // reject the quoted form.
        if let Some(q) = self.qop {
            write!(f, ", qop={}", q.as_str())?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        Ok(())
    }
}

/// Prints a quoted-string. CR, LF and other controls cannot be carried in
/// one (RFC 3261 qdtext/quoted-pair exclude CR and LF), and letting them
/// through would allow header injection, so they are dropped: a value that
/// contained them then simply fails authentication.
struct Q<'a>(&'a str);

impl fmt::Display for Q<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_control() && c != '\t' => {}
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

fn parse_algorithm(raw: Option<String>) -> Result<Algorithm, ParseError> {
    match raw {
        None => Ok(Algorithm::Md5),
        Some(a) => Algorithm::parse(a.trim()).ok_or(ParseError::UnsupportedAlgorithm(a)),
    }
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `from_str_radix` alone would accept a leading '+'.
fn parse_nc(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Picks the values of the `N` known parameter names out of a header value.
/// A repeated known name is an error: which copy is authoritative would be a
/// guess, and a guess different from the peer's is an attack surface.
fn collect_params<const N: usize>(
    value: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], ParseError> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (name, v) in parse_params(value)? {
        if let Some(slot) = names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| out.get_mut(i))
        {
            if slot.is_some() {
                return Err(ParseError::Malformed("duplicate parameter"));
            }
            *slot = Some(v);
        }
    }
    Ok(out)
}

fn parse_params(input: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut it = input.chars().peekable();
    skip_ws(&mut it);
    let scheme = take_token(&mut it);
    if scheme.is_empty() {
        return Err(ParseError::Malformed("missing auth scheme"));
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(ParseError::NotDigest(scheme));
    }
    if it.peek().is_some_and(|c| !is_ws(*c)) {
        return Err(ParseError::Malformed("expected whitespace after scheme"));
    }
    let mut out = Vec::new();
    loop {
        // Empty list elements (",,") are allowed by the #rule.
        while it.peek().is_some_and(|c| is_ws(*c) || *c == ',') {
            it.next();
        }
        if it.peek().is_none() {
            break;
        }
        let name = take_token(&mut it);
        if name.is_empty() {
            return Err(ParseError::Malformed("expected parameter name"));
        }
        skip_ws(&mut it);
        if it.next() != Some('=') {
            return Err(ParseError::Malformed("expected '=' after parameter name"));
        }
        skip_ws(&mut it);
        let value = if it.peek() == Some(&'"') {
            it.next();
            take_quoted(&mut it)?
        } else {
            take_unquoted(&mut it)
        };
        out.push((name.to_ascii_lowercase(), value));
        skip_ws(&mut it);
        match it.next() {
            None | Some(',') => {}
            Some(_) => return Err(ParseError::Malformed("expected ',' between parameters")),
        }
    }
    Ok(out)
}

fn is_ws(c: char) -> bool {
    // CR and LF included so folded header lines parse.
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn skip_ws(it: &mut Peekable<Chars<'_>>) {
    while it.peek().is_some_and(|c| is_ws(*c)) {
        it.next();
    }
}

fn take_token(it: &mut Peekable<Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(&c) = it.peek() {
        if !(c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)) {
            break;
        }
        s.push(c);
        it.next();
    }
    s
}

/// Runs to the next comma: sloppy clients send unquoted values with ':' or
/// '@' (`uri=sip:a@b`) that are not token characters.
fn take_unquoted(it: &mut Peekable<Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(&c) = it.peek() {
        if c == ',' {
            break;
        }
        s.push(c);
        it.next();
    }
    s.truncate(s.trim_end().len());
    s
}

fn take_quoted(it: &mut Peekable<Chars<'_>>) -> Result<String, ParseError> {
    let mut s = String::new();
    loop {
        match it.next() {
            None => return Err(ParseError::Malformed("unterminated quoted string")),
            Some('"') => return Ok(s),
            Some('\\') => match it.next() {
                Some(c) => s.push(c),
                None => return Err(ParseError::Malformed("unterminated quoted string")),
            },
            Some(c) => s.push(c),
        }
    }
}
