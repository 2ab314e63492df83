//! One direction's SRTP/SRTCP state, over the maintained `rtc-srtp` crate (webrtc-rs), which
//! does the RFC 3711 transforms, key derivation, ROC tracking and replay windows.
//!
//! What this wrapper adds: our error type, the `Vec` API the media session uses (the packet is
//! rewritten in its own buffer), and a bound on the SSRCs a context tracks. `rtc-srtp` creates
//! per-SSRC state before it checks the tag, so without the bound forged packets under random
//! SSRCs would grow its tables without limit.
//!
//! Cost: `rtc-srtp` returns every transformed packet in a new `BytesMut`, so each protect and
//! unprotect allocates once (copied back into the caller's buffer, which keeps its capacity).

use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use rtc_shared::error::Error as CrateError;

use super::crypto::SrtpCrypto;
use super::{SrtpError, Suite, MASTER_KEY_LEN, MASTER_SALT_LEN};

/// Authenticated SSRCs one context tracks; beyond them a new SSRC needs a rekey (re-INVITE).
/// Sixteen covers audio, RTX and a few SSRC changes from re-INVITEs.
pub const MAX_SSRCS: usize = 16;
/// Distinct SSRCs that never authenticated, allowed to reach `rtc-srtp` (which keeps state for
/// each): after this many, a packet under yet another new SSRC is refused unread.
const MAX_UNAUTHENTICATED_SSRCS: usize = 64;

/// Most bytes protect appends (SRTCP index + 80-bit tag). A buffer with this much spare
/// capacity never reallocates in `protect_*`.
pub const MAX_TRAILER_LEN: usize = 4 + 10;

/// Packets the receive windows cover behind the newest (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

const RTP_HEADER_LEN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;

/// SRTP + SRTCP crypto context for one master key (one direction of a call).
pub struct SrtpContext {
    suite: Suite,
    inner: Context,
    authenticated: [u32; MAX_SSRCS],
    authenticated_len: usize,
    /// SSRCs whose packets failed and never authenticated: `rtc-srtp` holds state for them.
    unauthenticated: [u32; MAX_UNAUTHENTICATED_SSRCS],
    unauthenticated_len: usize,
}

impl SrtpContext {
    pub fn new(suite: Suite, master_key: &[u8; MASTER_KEY_LEN], master_salt: &[u8; MASTER_SALT_LEN]) -> Self {
        let profile = match suite {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        };
        let inner = Context::new(
            master_key,
            master_salt,
            profile,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
            &SrtpCrypto,
        )
        // Cannot fail: the key and salt lengths are those of the profile by type, and the
        // provider implements both AES-CM profiles. Nothing here depends on peer input.
        .expect("rtc-srtp accepts AES-CM-128 keys of the profile's length"); // ok: lengths fixed by the type
        SrtpContext {
            suite,
            inner,
            authenticated: [0; MAX_SSRCS],
            authenticated_len: 0,
            unauthenticated: [0; MAX_UNAUTHENTICATED_SSRCS],
            unauthenticated_len: 0,
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts and authenticates the RTP packet in `packet`, appending the tag.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header = transform_header(packet)?;
        self.admit_sent(header.ssrc)?;
        let protected = self.inner.encrypt_rtp_with_header(packet, &header).map_err(map_error)?;
        replace(packet, &protected);
        Ok(())
    }

    /// Verifies and decrypts the SRTP packet in `packet`, removing the tag. `packet` is only
    /// modified on success.
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < RTP_HEADER_LEN + self.suite.rtp_tag_len() {
            return Err(SrtpError::TooShort);
        }
        let ssrc = read_u32(packet, 8)?;
        let known = self.check_received(ssrc)?;
        // A header that does not fit the packet is as unauthentic as a bad tag.
        let decrypted = transform_header(packet).map_err(|_| SrtpError::AuthFailed).and_then(|header| self.inner.decrypt_rtp_with_header(packet, &header).map_err(received_error));
        match decrypted {
            Ok(plain) => {
                self.note_authenticated(ssrc, known);
                replace(packet, &plain);
                Ok(())
            }
            Err(e) => Err(self.note_failure(ssrc, known, e)),
        }
    }

    /// Like [`Self::protect_rtp`], appending the E flag, SRTCP index and tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        check_rtcp_header(packet)?;
        let ssrc = read_u32(packet, 4)?;
        self.admit_sent(ssrc)?;
        let protected = self.inner.encrypt_rtcp(packet).map_err(map_error)?;
        replace(packet, &protected);
        Ok(())
    }

    /// Verifies and decrypts a compound SRTCP packet, removing the trailer.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < RTCP_HEADER_LEN + 4 + self.suite.rtcp_tag_len() {
            return Err(SrtpError::TooShort);
        }
        let ssrc = read_u32(packet, 4)?;
        let known = self.check_received(ssrc)?;
        // rtc-srtp 0.21.1 returns an E=0 (unencrypted) SRTCP packet without checking its tag.
        // We never agree to UNENCRYPTED_SRTCP (`sdes.rs` refuses the parameter), so such a
        // packet is not from our peer: refused here, before the crate sees it.
        let e_flag_at = packet.len() - self.suite.rtcp_tag_len() - 4;
        if packet.get(e_flag_at).is_none_or(|byte| byte & 0x80 == 0) {
            return Err(self.note_failure(ssrc, known, SrtpError::AuthFailed));
        }
        match self.inner.decrypt_rtcp(packet).map_err(received_error) {
            Ok(plain) => {
                self.note_authenticated(ssrc, known);
                replace(packet, &plain);
                Ok(())
            }
            Err(e) => Err(self.note_failure(ssrc, known, e)),
        }
    }

    fn is_known(&self, ssrc: u32) -> bool {
        self.authenticated[..self.authenticated_len].contains(&ssrc)
    }

    /// Our own streams: a sender that outgrows the table must be rekeyed.
    fn admit_sent(&mut self, ssrc: u32) -> Result<(), SrtpError> {
        if self.is_known(ssrc) {
            return Ok(());
        }
        let slot = self.authenticated.get_mut(self.authenticated_len).ok_or(SrtpError::TooManySsrcs)?;
        *slot = ssrc;
        self.authenticated_len += 1;
        Ok(())
    }

    fn was_tried(&self, ssrc: u32) -> bool {
        self.unauthenticated[..self.unauthenticated_len].contains(&ssrc)
    }

    /// Whether `ssrc` already authenticated; a new one is looked at only while the table and
    /// the budget for unauthenticated SSRCs have room.
    fn check_received(&self, ssrc: u32) -> Result<bool, SrtpError> {
        if self.is_known(ssrc) {
            return Ok(true);
        }
        if self.authenticated_len >= MAX_SSRCS || (self.unauthenticated_len >= MAX_UNAUTHENTICATED_SSRCS && !self.was_tried(ssrc)) {
            return Err(SrtpError::TooManySsrcs);
        }
        Ok(false)
    }

    fn note_authenticated(&mut self, ssrc: u32, known: bool) {
        if !known {
            if let Some(slot) = self.authenticated.get_mut(self.authenticated_len) {
                *slot = ssrc;
                self.authenticated_len += 1;
            }
        }
    }

    fn note_failure(&mut self, ssrc: u32, known: bool, error: SrtpError) -> SrtpError {
        if !known && !self.was_tried(ssrc) {
            if let Some(slot) = self.unauthenticated.get_mut(self.unauthenticated_len) {
                *slot = ssrc;
                self.unauthenticated_len += 1;
            }
        }
        error
    }
}

/// Only what is safe to log: the session keys stay inside `rtc-srtp`.
impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext").field("suite", &self.suite).field("keys", &"<redacted>").field("ssrcs", &self.authenticated_len).finish()
    }
}

/// The transformed packet back into the caller's buffer, which keeps its allocation when it has
/// room for the trailer.
fn replace(packet: &mut Vec<u8>, transformed: &[u8]) {
    packet.clear();
    packet.extend_from_slice(transformed);
}

fn read_u32(packet: &[u8], at: usize) -> Result<u32, SrtpError> {
    let bytes = packet.get(at..at + 4).ok_or(SrtpError::TooShort)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The header `rtc-srtp` transforms a packet with, read from the wire: version 2, CSRCs and header
/// extension within the packet, refused here with our own errors.
///
/// `rtc-srtp` reads only the sequence number, the SSRC and the header's size from it, and sizes
/// it by re-marshalling what `rtc-rtp` parsed. That parser stops at a one-byte extension element
/// with the reserved ID 15 (RFC 8285 §4.2) and leaves the rest of the block out of the size, so
/// the cipher would start inside the extension block, at an offset the receiver computes
/// differently from the encrypted bytes (found by the `srtp_unprotect` fuzz target). Here the
/// whole block is counted as `extensions_padding`, sized and never parsed, so the payload starts
/// where the wire says, and no extension is copied.
fn transform_header(packet: &[u8]) -> Result<rtc_rtp::Header, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::TooShort)?;
    if packet.len() < RTP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let csrc_count = usize::from(first & 0x0f);
    let mut len = RTP_HEADER_LEN + 4 * csrc_count;
    let mut extension_len = 0;
    let extension = first & 0x10 != 0;
    if extension {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        extension_len = 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        len += 4 + extension_len;
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(rtc_rtp::Header {
        version: 2,
        extension,
        sequence_number: u16::from_be_bytes([packet[2], packet[3]]),
        ssrc: read_u32(packet, 8)?,
        csrc: vec![0; csrc_count],
        extensions_padding: extension_len,
        ..Default::default()
    })
}

fn check_rtcp_header(packet: &[u8]) -> Result<(), SrtpError> {
    let first = *packet.first().ok_or(SrtpError::TooShort)?;
    if packet.len() < RTCP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(())
}

/// A received packet is either a replay or not what the peer sent: `rtc-srtp` parses the
/// header before it checks the tag, so a tampered header can fail as a parse error, and it is
/// as unauthentic as a bad tag.
fn received_error(error: CrateError) -> SrtpError {
    match map_error(error) {
        SrtpError::Replay => SrtpError::Replay,
        _ => SrtpError::AuthFailed,
    }
}

fn map_error(error: CrateError) -> SrtpError {
    match error {
        CrateError::ErrFailedToVerifyAuthTag
        | CrateError::RtpFailedToVerifyAuthTag
        | CrateError::RtcpFailedToVerifyAuthTag
        | CrateError::RtcpInvalidLengthAuthTag(..) => SrtpError::AuthFailed,
        CrateError::SrtpSsrcDuplicated(..) | CrateError::SrtcpSsrcDuplicated(..) | CrateError::ErrDuplicated => {
            SrtpError::Replay
        }
        CrateError::ErrExceededMaxPackets => SrtpError::KeyExhausted,
        CrateError::ErrTooShortRtp
        | CrateError::ErrTooShortRtcp
        | CrateError::SrtpTooSmall(..)
        | CrateError::SrtcpTooSmall(..)
        | CrateError::ErrHeaderSizeInsufficient
        | CrateError::ErrShortPacket => SrtpError::TooShort,
        _ => SrtpError::Malformed,
    }
}
