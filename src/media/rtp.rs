//! RTP packets (RFC 3550 §5.1) read and written in place: this sits on the per-packet hot path of
//! passthrough, so nothing here allocates. Every byte comes from the network, so every access is
//! bounds-checked and a malformed packet is an error value, never a panic.

use std::fmt;

pub const RTP_VERSION: u8 = 2;
pub const RTP_HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// The buffer ends before the header, CSRC list or extension it announces.
    Truncated,
    BadVersion(u8),
    /// Payload types 72-76 collide with RTCP SR/RR/SDES/BYE/APP once the marker bit is set
    /// (RFC 5761 §4), so the packet belongs to the RTCP path, not to a parse failure.
    RtcpPayloadType(u8),
    /// Padding count of zero, or larger than what follows the header.
    BadPadding,
    /// Writing a payload type that does not fit 7 bits or that RTCP demux would misroute.
    InvalidPayloadType(u8),
    BufferTooSmall,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpError::Truncated => write!(f, "truncated RTP packet"),
            RtpError::BadVersion(v) => write!(f, "RTP version {v}, expected 2"),
            RtpError::RtcpPayloadType(pt) => write!(f, "payload type {pt} is RTCP (RFC 5761)"),
            RtpError::BadPadding => write!(f, "invalid RTP padding"),
            RtpError::InvalidPayloadType(pt) => write!(f, "invalid RTP payload type {pt}"),
            RtpError::BufferTooSmall => write!(f, "output buffer too small"),
        }
    }
}

impl std::error::Error for RtpError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A validated borrow of one RTP packet; offsets are computed once so accessors cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct RtpView<'a> {
    packet: &'a [u8],
    header: RtpHeader,
    csrc_count: u8,
    extension: Option<(u16, usize, usize)>,
    header_len: usize,
    payload_end: usize,
}

impl<'a> RtpView<'a> {
    pub fn parse(packet: &'a [u8]) -> Result<RtpView<'a>, RtpError> {
        let first = *packet.first().ok_or(RtpError::Truncated)?;
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        // Checked before the length so a short RTCP packet (an empty RR is 8 bytes) is still
        // reported as RTCP rather than as a truncated RTP packet.
        if let Some(&second) = packet.get(1) {
            let pt = second & 0x7f;
            if (72..=76).contains(&pt) {
                return Err(RtpError::RtcpPayloadType(pt));
            }
        }
        let fixed: [u8; RTP_HEADER_LEN] = packet
            .get(..RTP_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtpError::Truncated)?;
        let [_, second, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = fixed;
        let header = RtpHeader {
            marker: second & 0x80 != 0,
            payload_type: second & 0x7f,
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
        };
        let csrc_count = first & 0x0f;
        let mut header_len = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if header_len > packet.len() {
            return Err(RtpError::Truncated);
        }
        let mut extension = None;
        if first & 0x10 != 0 {
            let profile = read_u16(packet, header_len).ok_or(RtpError::Truncated)?;
            let words = read_u16(packet, header_len + 2).ok_or(RtpError::Truncated)?;
            let start = header_len + 4;
            let end = start + 4 * usize::from(words);
            if end > packet.len() {
                return Err(RtpError::Truncated);
            }
            extension = Some((profile, start, end));
            header_len = end;
        }
        let mut payload_end = packet.len();
        if first & 0x20 != 0 {
            // The count includes itself (RFC 3550 §5.1), so zero can only be corruption.
            let count = usize::from(*packet.last().ok_or(RtpError::Truncated)?);
            if count == 0 || count > packet.len() - header_len {
                return Err(RtpError::BadPadding);
            }
            payload_end = packet.len() - count;
        }
        Ok(RtpView {
            packet,
            header,
            csrc_count,
            extension,
            header_len,
            payload_end,
        })
    }

    pub fn header(&self) -> RtpHeader {
        self.header
    }

    pub fn payload(&self) -> &'a [u8] {
        self.packet
            .get(self.header_len..self.payload_end)
            .unwrap_or(&[])
    }

    /// Fixed header, CSRCs and extension: where the payload starts.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn has_extension(&self) -> bool {
        self.extension.is_some()
    }

    /// Profile identifier (0xBEDE for RFC 8285 one-byte headers) and the extension data.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        let (profile, start, end) = self.extension?;
        Some((profile, self.packet.get(start..end)?))
    }

    pub fn csrc_count(&self) -> u8 {
        self.csrc_count
    }

    pub fn csrc(&self, index: usize) -> Option<u32> {
        if index >= usize::from(self.csrc_count) {
            return None;
        }
        read_u32(self.packet, RTP_HEADER_LEN + 4 * index)
    }

    pub fn padding_len(&self) -> usize {
        self.packet.len() - self.payload_end
    }

    pub fn packet(&self) -> &'a [u8] {
        self.packet
    }
}

/// RFC 5761 §4: on a muxed port, RTCP packet types 192-223 occupy the second byte where RTP has
/// marker + payload type. The first byte is assumed already routed by [`classify`].
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// RFC 7983 §7 first-byte demultiplexing.
pub fn looks_like_stun(packet: &[u8]) -> bool {
    packet.first().is_some_and(|b| *b <= 3)
}

pub fn looks_like_dtls(packet: &[u8]) -> bool {
    packet.first().is_some_and(|b| (20..=63).contains(b))
}

pub fn looks_like_rtp_or_rtcp(packet: &[u8]) -> bool {
    packet.first().is_some_and(|b| (128..=191).contains(b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
    /// ZRTP, TURN channels and anything else RFC 7983 leaves to other layers: drop.
    Unknown,
}

pub fn classify(packet: &[u8]) -> PacketKind {
    if looks_like_stun(packet) {
        PacketKind::Stun
    } else if looks_like_dtls(packet) {
        PacketKind::Dtls
    } else if looks_like_rtp_or_rtcp(packet) {
        if is_rtcp(packet) {
            PacketKind::Rtcp
        } else {
            PacketKind::Rtp
        }
    } else {
        PacketKind::Unknown
    }
}

/// Re-stamps a forwarded packet for the egress leg. CSRCs, extensions, padding and the marker
/// are left as they are; the packet is validated first so junk is never forwarded re-stamped.
pub fn rewrite_in_place(
    packet: &mut [u8],
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
) -> Result<(), RtpError> {
    check_payload_type(payload_type)?;
    RtpView::parse(packet)?;
    let fixed: &mut [u8; RTP_HEADER_LEN] = packet
        .get_mut(..RTP_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(RtpError::Truncated)?;
    let marker = fixed[1] & 0x80 != 0;
    *fixed = encode_header(fixed[0], marker, payload_type, sequence, timestamp, ssrc);
    Ok(())
}

/// Writes a minimal packet (no CSRC, extension or padding): how a transcoded or extension-stripped
/// packet is produced without allocating. Returns the number of bytes written.
pub fn write_packet(out: &mut [u8], header: &RtpHeader, payload: &[u8]) -> Result<usize, RtpError> {
    check_payload_type(header.payload_type)?;
    let total = RTP_HEADER_LEN + payload.len();
    let (head, body) = out
        .split_at_mut_checked(RTP_HEADER_LEN)
        .ok_or(RtpError::BufferTooSmall)?;
    let body = body
        .get_mut(..payload.len())
        .ok_or(RtpError::BufferTooSmall)?;
    let head: &mut [u8; RTP_HEADER_LEN] = head.try_into().map_err(|_| RtpError::BufferTooSmall)?;
    *head = encode_header(
        RTP_VERSION << 6,
        header.marker,
        header.payload_type,
        header.sequence,
        header.timestamp,
        header.ssrc,
    );
    body.copy_from_slice(payload);
    Ok(total)
}

/// Byte 0 is passed through so a rewrite keeps the CSRC count and the X and P flags.
fn encode_header(
    first: u8,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) -> [u8; RTP_HEADER_LEN] {
    let [s0, s1] = sequence.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    let [c0, c1, c2, c3] = ssrc.to_be_bytes();
    let second = (u8::from(marker) << 7) | (payload_type & 0x7f);
    [first, second, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3]
}

fn check_payload_type(pt: u8) -> Result<(), RtpError> {
    if pt > 127 || (72..=76).contains(&pt) {
        return Err(RtpError::InvalidPayloadType(pt));
    }
    Ok(())
}

/// `a - b` on the 16-bit sequence circle: positive when `a` is newer.
pub fn seq_diff(a: u16, b: u16) -> i32 {
    i32::from(a.wrapping_sub(b) as i16)
}

/// `a - b` on the 32-bit timestamp circle: positive when `a` is later.
pub fn ts_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = buf.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
#[path = "rtp/tests.rs"]
mod tests;
