//! Per-direction SRTP/SRTCP state and the packet transforms of RFC 3711
//! §3.3 (SRTP) and §3.4 (SRTCP).

use std::fmt;

use subtle::ConstantTimeEq;

use super::keys::{
    SessionKeys, LABEL_RTCP_AUTH, LABEL_RTCP_ENCRYPTION, LABEL_RTCP_SALT, LABEL_RTP_AUTH, LABEL_RTP_ENCRYPTION,
    LABEL_RTP_SALT, MASTER_KEY_LEN, MASTER_SALT_LEN,
};
use super::replay::{estimate_rtp_index, roc_of, ReplayWindow};
use super::{SrtpError, Suite};

/// SSRCs one context tracks. Entries are never evicted: forgetting a stream
/// would reopen its replay window, so a peer that outgrows the table has to
/// be rekeyed instead. Sixteen covers audio, video, RTX and a few SSRC
/// changes from re-INVITEs.
pub const MAX_SSRCS: usize = 16;

/// Most bytes protect appends (SRTCP index + 80-bit tag). A buffer with this
/// much spare capacity never reallocates in `protect_*`.
pub const MAX_TRAILER_LEN: usize = SRTCP_INDEX_LEN + 10;

const RTP_HEADER_LEN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;
const SRTCP_INDEX_LEN: usize = 4;
const SRTCP_E_FLAG: u32 = 1 << 31;
const MAX_SRTCP_INDEX: u32 = SRTCP_E_FLAG - 1;

/// Sending and receiving state are kept apart: a context should only ever
/// be used one way, but if it is not, its own packets must not be able to
/// advance the window that guards the peer's.
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    rtp_sent: Option<ReplayWindow>,
    rtp_received: Option<ReplayWindow>,
    rtcp_next: u32,
    rtcp_received: Option<ReplayWindow>,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Stream {
            ssrc,
            rtp_sent: None,
            rtp_received: None,
            rtcp_next: 0,
            rtcp_received: None,
        }
    }
}

/// SRTP + SRTCP crypto context for one master key (one direction of a call).
pub struct SrtpContext {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    // Capacity reserved up front so that adding a stream never allocates.
    streams: Vec<Stream>,
}

impl SrtpContext {
    pub fn new(suite: Suite, master_key: &[u8; MASTER_KEY_LEN], master_salt: &[u8; MASTER_SALT_LEN]) -> Self {
        SrtpContext {
            suite,
            rtp: SessionKeys::derive(
                master_key,
                master_salt,
                [LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT],
            ),
            rtcp: SessionKeys::derive(
                master_key,
                master_salt,
                [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT],
            ),
            streams: Vec::with_capacity(MAX_SSRCS),
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts and authenticates the RTP packet in `packet`, appending the
    /// tag. Reserve [`MAX_TRAILER_LEN`] spare capacity to avoid reallocation.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let len = packet.len();
        packet.resize(len + self.suite.rtp_tag_len(), 0);
        let result = self.protect_rtp_in_place(packet, len);
        finish_grow(packet, len, result)
    }

    /// Verifies and decrypts the SRTP packet in `packet`, removing the tag.
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let len = self.unprotect_rtp_in_place(packet)?;
        packet.truncate(len);
        Ok(())
    }

    /// Like [`Self::protect_rtp`], appending the E flag, SRTCP index and tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let len = packet.len();
        packet.resize(len + SRTCP_INDEX_LEN + self.suite.rtcp_tag_len(), 0);
        let result = self.protect_rtcp_in_place(packet, len);
        finish_grow(packet, len, result)
    }

    /// Verifies and decrypts a compound SRTCP packet, removing the trailer.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let len = self.unprotect_rtcp_in_place(packet)?;
        packet.truncate(len);
        Ok(())
    }

    /// Protects the RTP packet in `buf[..len]`; the rest of `buf` receives
    /// the tag. Returns the SRTP length.
    pub fn protect_rtp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let total = len.checked_add(tag_len).ok_or(SrtpError::BufferTooSmall)?;
        let packet = buf.get_mut(..total).ok_or(SrtpError::BufferTooSmall)?;
        let (body, tag_out) = packet.split_at_mut_checked(len).ok_or(SrtpError::BufferTooSmall)?;
        let header_len = rtp_header_len(body)?;
        let seq = read_u16(body, 2).ok_or(SrtpError::TooShort)?;
        let ssrc = read_u32(body, 8).ok_or(SrtpError::TooShort)?;

        let slot = self.stream_slot(ssrc)?;
        let sent = slot.and_then(|i| self.streams.get(i)).and_then(|s| s.rtp_sent);
        let index = estimate_rtp_index(sent.map(|w| w.top()), seq)?;
        if let Some(window) = sent {
            window.check(index)?;
        }

        let payload = body.get_mut(header_len..).ok_or(SrtpError::Malformed)?;
        self.rtp.xor_keystream(ssrc, index, payload);
        let tag = self.rtp.full_tag(body, &roc_of(index).to_be_bytes());
        copy_prefix(tag_out, &tag);

        let stream = self.insert_stream(slot, ssrc)?;
        match &mut stream.rtp_sent {
            Some(window) => window.accept(index),
            None => stream.rtp_sent = Some(ReplayWindow::starting_at(index)),
        }
        Ok(total)
    }

    /// Unprotects the whole SRTP packet in `buf`; returns the RTP length.
    /// `buf` is only modified on success.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let body_len = buf
            .len()
            .checked_sub(tag_len)
            .filter(|n| *n >= RTP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        let (body, tag) = buf.split_at_mut_checked(body_len).ok_or(SrtpError::TooShort)?;
        let seq = read_u16(body, 2).ok_or(SrtpError::TooShort)?;
        let ssrc = read_u32(body, 8).ok_or(SrtpError::TooShort)?;

        let slot = self.find_stream(ssrc);
        let received = slot.and_then(|i| self.streams.get(i)).and_then(|s| s.rtp_received);
        let index = estimate_rtp_index(received.map(|w| w.top()), seq)?;
        if let Some(window) = received {
            window.check(index)?;
        }
        // Authenticate before looking at the header layout, so that any
        // tampering (CC or X bits included) reads as AuthFailed.
        let expected = self.rtp.full_tag(body, &roc_of(index).to_be_bytes());
        verify_tag(&expected, tag)?;

        let header_len = rtp_header_len(body)?;
        self.ensure_room(slot)?;
        let payload = body.get_mut(header_len..).ok_or(SrtpError::Malformed)?;
        self.rtp.xor_keystream(ssrc, index, payload);
        let stream = self.insert_stream(slot, ssrc)?;
        match &mut stream.rtp_received {
            Some(window) => window.accept(index),
            None => stream.rtp_received = Some(ReplayWindow::starting_at(index)),
        }
        Ok(body_len)
    }

    /// Protects the compound RTCP packet in `buf[..len]`; returns the SRTCP
    /// length. The first 8 bytes (header and sender SSRC) stay in the clear.
    pub fn protect_rtcp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtcp_tag_len();
        let auth_len = len.checked_add(SRTCP_INDEX_LEN).ok_or(SrtpError::BufferTooSmall)?;
        let total = auth_len.checked_add(tag_len).ok_or(SrtpError::BufferTooSmall)?;
        let packet = buf.get_mut(..total).ok_or(SrtpError::BufferTooSmall)?;
        let (authed, tag_out) = packet.split_at_mut_checked(auth_len).ok_or(SrtpError::BufferTooSmall)?;
        let (body, index_out) = authed.split_at_mut_checked(len).ok_or(SrtpError::BufferTooSmall)?;
        check_rtcp_header(body)?;
        let ssrc = read_u32(body, 4).ok_or(SrtpError::TooShort)?;

        let slot = self.stream_slot(ssrc)?;
        let index = slot.and_then(|i| self.streams.get(i)).map_or(0, |s| s.rtcp_next);
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }

        let payload = body.get_mut(RTCP_HEADER_LEN..).ok_or(SrtpError::TooShort)?;
        self.rtcp.xor_keystream(ssrc, u64::from(index), payload);
        index_out.copy_from_slice(&(SRTCP_E_FLAG | index).to_be_bytes());
        let tag = self.rtcp.full_tag(authed, &[]);
        copy_prefix(tag_out, &tag);

        let stream = self.insert_stream(slot, ssrc)?;
        stream.rtcp_next = index + 1;
        Ok(total)
    }

    /// Unprotects the whole SRTCP packet in `buf`; returns the RTCP length.
    /// `buf` is only modified on success. Packets with the E flag clear
    /// (UNENCRYPTED_SRTCP peers) are authenticated but left as they are.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtcp_tag_len();
        let auth_len = buf
            .len()
            .checked_sub(tag_len)
            .filter(|n| *n >= RTCP_HEADER_LEN + SRTCP_INDEX_LEN)
            .ok_or(SrtpError::TooShort)?;
        let body_len = auth_len - SRTCP_INDEX_LEN;
        let (authed, tag) = buf.split_at_mut_checked(auth_len).ok_or(SrtpError::TooShort)?;
        let trailer = read_u32(authed, body_len).ok_or(SrtpError::TooShort)?;
        let ssrc = read_u32(authed, 4).ok_or(SrtpError::TooShort)?;
        let index = u64::from(trailer & MAX_SRTCP_INDEX);

        let slot = self.find_stream(ssrc);
        let received = slot.and_then(|i| self.streams.get(i)).and_then(|s| s.rtcp_received);
        if let Some(window) = received {
            window.check(index)?;
        }
        let expected = self.rtcp.full_tag(authed, &[]);
        verify_tag(&expected, tag)?;

        let body = authed.get_mut(..body_len).ok_or(SrtpError::TooShort)?;
        check_rtcp_header(body)?;
        self.ensure_room(slot)?;
        if trailer & SRTCP_E_FLAG != 0 {
            let payload = body.get_mut(RTCP_HEADER_LEN..).ok_or(SrtpError::TooShort)?;
            self.rtcp.xor_keystream(ssrc, index, payload);
        }
        let stream = self.insert_stream(slot, ssrc)?;
        match &mut stream.rtcp_received {
            Some(window) => window.accept(index),
            None => stream.rtcp_received = Some(ReplayWindow::starting_at(index)),
        }
        Ok(body_len)
    }

    fn find_stream(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// Looks `ssrc` up for sending; refuses a new one early when the table
    /// is full, so nothing is encrypted for a packet that cannot be tracked.
    fn stream_slot(&self, ssrc: u32) -> Result<Option<usize>, SrtpError> {
        let slot = self.find_stream(ssrc);
        self.ensure_room(slot)?;
        Ok(slot)
    }

    /// Checked before decrypting so that the buffer is untouched on error.
    fn ensure_room(&self, slot: Option<usize>) -> Result<(), SrtpError> {
        if slot.is_none() && self.streams.len() >= MAX_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        Ok(())
    }

    /// Returns the entry at `slot`, or creates it. Receivers call this only
    /// after authentication, so forged SSRCs cannot fill the table.
    fn insert_stream(&mut self, slot: Option<usize>, ssrc: u32) -> Result<&mut Stream, SrtpError> {
        let index = match slot {
            Some(i) => i,
            None => {
                if self.streams.len() >= MAX_SSRCS {
                    return Err(SrtpError::TooManySsrcs);
                }
                self.streams.push(Stream::new(ssrc));
                self.streams.len() - 1
            }
        };
        self.streams.get_mut(index).ok_or(SrtpError::TooManySsrcs)
    }
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("keys", &"<redacted>")
            .field("ssrcs", &self.streams.iter().map(|s| s.ssrc).collect::<Vec<_>>())
            .finish()
    }
}

/// Restores the caller's length on failure so that an error leaves the
/// packet exactly as it was handed in.
fn finish_grow(packet: &mut Vec<u8>, original_len: usize, result: Result<usize, SrtpError>) -> Result<(), SrtpError> {
    match result {
        Ok(len) => {
            packet.truncate(len);
            Ok(())
        }
        Err(e) => {
            packet.truncate(original_len);
            Err(e)
        }
    }
}

/// Fixed header + CSRCs + header extension: the part that stays in the
/// clear (§3.1). Also rejects anything that is not RTP version 2.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::TooShort)?;
    if packet.len() < RTP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = read_u16(packet, len + 2).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(words);
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
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

fn verify_tag(expected: &[u8], received: &[u8]) -> Result<(), SrtpError> {
    let expected = expected.get(..received.len()).ok_or(SrtpError::AuthFailed)?;
    if bool::from(expected.ct_eq(received)) {
        Ok(())
    } else {
        Err(SrtpError::AuthFailed)
    }
}

fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(bytes.try_into().ok()?))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}
