//! SRTP/SRTCP (RFC 3711) keyed by SDES (RFC 4568), for the SIP leg.
//!
//! Only the AES-CM + HMAC-SHA1 suites that SIP endpoints actually offer are
//! supported, with key_derivation_rate 0 and no MKI. The transforms are the
//! maintained `rtc-srtp` crate's (webrtc-rs, the same code that protects the
//! WebRTC legs); this module keys it from `a=crypto` and puts our error type
//! and bounds around it. Pure: no I/O, no clock. Packets are hostile input, so
//! every failure is a [`SrtpError`], never a panic.
//!
//! Typical use on an incoming offer:
//! ```text
//! let keys = SdesKeys::answer(offer_crypto_values)?;    // picks the first usable line
//! let answer_value = keys.local.to_sdp_value();          // goes into our a=crypto:
//! let (mut outbound, mut inbound) = keys.contexts();
//! ```
//!
//! One [`SrtpContext`] per direction: RFC 3711 forbids sharing a master key
//! between directions, and SDES gives each side its own key anyway.

mod context;
mod crypto;
mod sdes;
#[cfg(test)]
mod tests;

use std::fmt;

/// AES-128 master key and the 112-bit master salt of RFC 3711 §8.2.
pub(crate) const MASTER_KEY_LEN: usize = 16;
pub(crate) const MASTER_SALT_LEN: usize = 14;

pub use context::{SrtpContext, MAX_SSRCS, MAX_TRAILER_LEN};
pub use sdes::{select_supported, CryptoAttribute, SdesError, SdesKeys};

/// Crypto suites of RFC 4568 §6.2 that we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Both suites, in the order we prefer to offer them.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The SDP name, as used in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// ABNF string literals are case-insensitive (RFC 5234 §2.3), and some
    /// endpoints do send lower case.
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of SRTP authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Bytes of SRTCP authentication tag: RFC 4568 §6.2.2 keeps 80 bits for
    /// SRTCP even in the _32 suite, and libsrtp does the same.
    pub fn rtcp_tag_len(self) -> usize {
        10
    }
}

/// Why a packet could not be protected or unprotected. The packet buffer is
/// left as it was on every error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than the fixed header plus trailer.
    TooShort,
    /// Not RTP/RTCP version 2, or CSRCs / header extension run past the end.
    Malformed,
    /// The caller's buffer has no room for the SRTP/SRTCP trailer.
    BufferTooSmall,
    /// Authentication tag mismatch: forged, corrupted, or the wrong key.
    AuthFailed,
    /// Index already seen or older than the replay window. On protect: the
    /// index was already used with this key, which would reuse keystream.
    Replay,
    /// A new SSRC would exceed [`MAX_SSRCS`]; rekey (new context) instead.
    TooManySsrcs,
    /// The 2^48 SRTP or 2^31 SRTCP index space of this key is used up.
    KeyExhausted,
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SrtpError::TooShort => "SRTP packet too short",
            SrtpError::Malformed => "malformed RTP/RTCP header",
            SrtpError::BufferTooSmall => "buffer too small for the SRTP trailer",
            SrtpError::AuthFailed => "SRTP authentication failed",
            SrtpError::Replay => "SRTP replay or packet too old",
            SrtpError::TooManySsrcs => "too many SSRCs for one SRTP context",
            SrtpError::KeyExhausted => "SRTP master key exhausted, rekey needed",
        })
    }
}

impl std::error::Error for SrtpError {}
