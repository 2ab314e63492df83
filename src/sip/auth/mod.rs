//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).
//!
//! Two roles:
//! * [`DigestServer`] challenges phones that register with / call through us;
//! * [`DigestClient`] answers 401/407 challenges from upstream PBXs.
//!
//! The module is pure: it does no I/O and never reads the clock. Every
//! time-dependent call takes `now: SystemTime` so the owner decides which
//! clock is authoritative and tests can move time freely. Times before the
//! Unix epoch are treated as the epoch. Randomness (nonces, cnonces, the
//! default server key) comes from `rand::thread_rng`, a CSPRNG.
//!
//! Header values here are always the part after the colon. Which header name
//! carries them (`WWW-` vs `Proxy-`) is the owner's decision; see
//! [`ChallengeKind`].

mod client;
mod header;
mod server;
#[cfg(test)]
mod tests;

pub use client::{answer_challenge, AuthHeader, ChallengeKind, ClientError, DigestClient};
pub use header::{Challenge, Credentials, ParseError};
pub use server::{
    AuthFailure, AuthResult, DigestServer, DEFAULT_MAX_TRACKED_NONCES, DEFAULT_NONCE_LIFETIME,
};

use md5::Md5;
use sha2::{Digest, Sha256};
use std::fmt;

/// Digest hash algorithms we implement. SHA-512-256 (RFC 7616) is left out:
/// no SIP peer we talk to offers it, and its absence is reported cleanly as
/// an unsupported algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Case-insensitive, as RFC 7616 §3.3 asks.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    pub fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// The non-`-sess` algorithm: user stores keep one HA1 per hash function,
    /// and the `-sess` HA1 is derived from it per nonce.
    pub fn base(self) -> Self {
        match self {
            Self::Md5 | Self::Md5Sess => Self::Md5,
            Self::Sha256 | Self::Sha256Sess => Self::Sha256,
        }
    }

    /// Preference when several are offered: RFC 8760 wants SHA-256 before
    /// MD5; plain before `-sess` because more peers implement it correctly.
    fn rank(self) -> u8 {
        match self {
            Self::Sha256 => 4,
            Self::Sha256Sess => 3,
            Self::Md5 => 2,
            Self::Md5Sess => 1,
        }
    }

    /// Lower-case hex of H(p1 ":" p2 ":" ...), the only shape digest auth uses.
    fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self.base() {
            Self::Sha256 => run::<Sha256>(parts),
            _ => run::<Md5>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection. `auth-int` is only used on the client side, when a
/// server offers nothing else; our server offers `auth` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// What the owner's user store returns for a (username, realm).
#[derive(Clone)]
pub enum Secret {
    Password(String),
    /// Pre-hashed HA1 = H(username:realm:password) in hex, per hash function,
    /// so stores need not keep plaintext. A client choosing an algorithm whose
    /// HA1 is missing gets [`AuthFailure::UnsupportedAlgorithm`]; offer only
    /// what the store can serve.
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl Secret {
    fn base_ha1(&self, alg: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Self::Password(p) => Some(ha1(alg, username, realm, p)),
            Self::Ha1 { md5, sha256 } => {
                let stored = match alg.base() {
                    Algorithm::Sha256 => sha256.as_ref(),
                    _ => md5.as_ref(),
                };
                // Stores often keep upper-case hex; the digest formula is
                // defined over lower-case.
                stored.map(|h| h.trim().to_ascii_lowercase())
            }
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Secret::Password(<redacted>)"),
            Self::Ha1 { .. } => f.write_str("Secret::Ha1(<redacted>)"),
        }
    }
}

/// HA1 = H(username:realm:password), the value a user store may keep instead
/// of the password (for the `-sess` variants pass the base algorithm's HA1).
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.base()
        .hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `response` value. `qop` carries (qop, nc, cnonce); `None` is the
/// RFC 2069 form. Returns `None` for `-sess` without qop, which has no cnonce
/// to derive the session key from.
fn request_digest(
    alg: Algorithm,
    base_ha1: &str,
    nonce: &str,
    qop: Option<(Qop, u32, &str)>,
    method: &str,
    uri: &str,
    body: &[u8],
) -> Option<String> {
    let ha1 = if alg.is_sess() {
        let (_, _, cnonce) = qop?;
        alg.hash(&[base_ha1.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()])
    } else {
        base_ha1.to_owned()
    };
    let ha2 = match qop {
        Some((Qop::AuthInt, _, _)) => {
            let body_hash = alg.hash(&[body]);
            alg.hash(&[method.as_bytes(), uri.as_bytes(), body_hash.as_bytes()])
        }
        _ => alg.hash(&[method.as_bytes(), uri.as_bytes()]),
    };
    Some(match qop {
        Some((q, nc, cnonce)) => alg.hash(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            format!("{nc:08x}").as_bytes(),
            cnonce.as_bytes(),
            q.as_str().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    })
}

/// Equality whose timing does not depend on where the inputs differ, so a
/// caller cannot learn the expected response byte by byte. Lengths are fixed
/// by the algorithm and not secret, so an early length check leaks nothing.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
