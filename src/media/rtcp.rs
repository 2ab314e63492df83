//! RTCP compound packets (RFC 3550 §6). RTCP arrives a few times a second per stream, so parsed
//! packets own their data (Vec, String) for simplicity. Input is untrusted: every length is checked
//! against the datagram and a short or inconsistent packet is an error, never a panic.

use std::fmt;
use std::time::Duration;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

const SDES_CNAME: u8 = 1;
/// RC, SC and the SDES item length are 5- and 8-bit fields.
const MAX_COUNT: usize = 31;
const MAX_TEXT: usize = 255;
/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// The datagram ends before a header or before the length a header announces.
    Truncated,
    BadVersion(u8),
    /// A packet's own contents (report count, SDES items, BYE reason) overrun its length field.
    BadLength,
    /// Padding count of zero or larger than the packet body.
    BadPadding,
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcpError::Truncated => write!(f, "truncated RTCP packet"),
            RtcpError::BadVersion(v) => write!(f, "RTCP version {v}, expected 2"),
            RtcpError::BadLength => write!(f, "RTCP contents overrun the length field"),
            RtcpError::BadPadding => write!(f, "invalid RTCP padding"),
        }
    }
}

impl std::error::Error for RtcpError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire: duplicates can make it negative (RFC 3550 §6.4.1).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// Only CNAME is kept: it is the one item that ties SSRCs together; the rest is cosmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub cname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    pub ssrcs: Vec<u32>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    Sdes(Vec<SdesChunk>),
    Bye(Bye),
    /// APP, RTPFB, PSFB, XR...: framing validated, contents left to whoever needs them.
    Other {
        packet_type: u8,
    },
}

/// Parses every packet of a compound datagram. RFC 3550 wants an SR or RR first, but RFC 5506
/// reduced-size RTCP (common in WebRTC) sends lone feedback packets, so order is not enforced.
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::Truncated);
    }
    let mut packets = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let head: [u8; 4] = rest
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtcpError::Truncated)?;
        let [first, packet_type, len_hi, len_lo] = head;
        let version = first >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let total = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
        let (packet, tail) = rest.split_at_checked(total).ok_or(RtcpError::Truncated)?;
        rest = tail;
        let mut body = packet.get(4..).unwrap_or(&[]);
        if first & 0x20 != 0 {
            let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = body.get(..body.len() - pad).unwrap_or(&[]);
        }
        packets.push(parse_one(packet_type, usize::from(first & 0x1f), body)?);
    }
    Ok(packets)
}

fn parse_one(packet_type: u8, count: usize, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let mut r = Reader { buf: body, pos: 0 };
    // Bytes left after the announced items are profile extensions (RFC 3550 §6.4.1): ignored.
    Ok(match packet_type {
        PT_SR => RtcpPacket::SenderReport(SenderReport {
            ssrc: r.u32()?,
            ntp: r.u64()?,
            rtp_ts: r.u32()?,
            packets: r.u32()?,
            octets: r.u32()?,
            reports: read_blocks(&mut r, count)?,
        }),
        PT_RR => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: r.u32()?,
            reports: read_blocks(&mut r, count)?,
        }),
        PT_SDES => {
            let mut chunks = Vec::with_capacity(count);
            for _ in 0..count {
                chunks.push(read_sdes_chunk(&mut r)?);
            }
            RtcpPacket::Sdes(chunks)
        }
        PT_BYE => {
            let mut ssrcs = Vec::with_capacity(count);
            for _ in 0..count {
                ssrcs.push(r.u32()?);
            }
            let reason = if r.remaining() > 0 {
                let len = usize::from(r.u8()?);
                Some(String::from_utf8_lossy(r.take(len)?).into_owned())
            } else {
                None
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        packet_type => RtcpPacket::Other { packet_type },
    })
}

fn read_blocks(r: &mut Reader<'_>, count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let ssrc = r.u32()?;
        let lost_word = r.u32()?;
        blocks.push(ReportBlock {
            ssrc,
            fraction_lost: (lost_word >> 24) as u8,
            // Shifting the 24-bit field to the top and back sign-extends it.
            cumulative_lost: ((lost_word << 8) as i32) >> 8,
            highest_seq: r.u32()?,
            jitter: r.u32()?,
            lsr: r.u32()?,
            dlsr: r.u32()?,
        });
    }
    Ok(blocks)
}

fn read_sdes_chunk(r: &mut Reader<'_>) -> Result<SdesChunk, RtcpError> {
    let ssrc = r.u32()?;
    let mut cname = None;
    loop {
        let item_type = r.u8()?;
        if item_type == 0 {
            break;
        }
        let len = usize::from(r.u8()?);
        let text = r.take(len)?;
        if item_type == SDES_CNAME && cname.is_none() {
            cname = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    // The terminating null is followed by more nulls up to the next 32-bit boundary.
    r.take((4 - r.pos % 4) % 4)?;
    Ok(SdesChunk { ssrc, cname })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RtcpError> {
        let end = self.pos.checked_add(n).ok_or(RtcpError::BadLength)?;
        let bytes = self.buf.get(self.pos..end).ok_or(RtcpError::BadLength)?;
        self.pos = end;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn u8(&mut self) -> Result<u8, RtcpError> {
        self.take(1)?.first().copied().ok_or(RtcpError::BadLength)
    }

    fn u32(&mut self) -> Result<u32, RtcpError> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| RtcpError::BadLength)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, RtcpError> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| RtcpError::BadLength)?;
        Ok(u64::from_be_bytes(bytes))
    }
}

/// Appends SR + SDES(CNAME): RFC 3550 §6.1 requires every compound packet to carry a CNAME.
/// At most 31 report blocks fit the RC field; extra ones are left out.
pub fn write_sender_report(out: &mut Vec<u8>, sr: &SenderReport, cname: &str) {
    let start = begin_packet(out, sr.reports.len(), PT_SR);
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.extend_from_slice(&sr.ntp.to_be_bytes());
    out.extend_from_slice(&sr.rtp_ts.to_be_bytes());
    out.extend_from_slice(&sr.packets.to_be_bytes());
    out.extend_from_slice(&sr.octets.to_be_bytes());
    sr.reports
        .iter()
        .take(MAX_COUNT)
        .for_each(|b| write_block(out, b));
    finish_packet(out, start);
    write_sdes(out, sr.ssrc, cname);
}

/// Appends RR + SDES(CNAME). An RR with no blocks is still sent when nothing was received,
/// because a compound packet must start with SR or RR (RFC 3550 §6.1, §6.4).
pub fn write_receiver_report(out: &mut Vec<u8>, rr: &ReceiverReport, cname: &str) {
    let start = begin_packet(out, rr.reports.len(), PT_RR);
    out.extend_from_slice(&rr.ssrc.to_be_bytes());
    rr.reports
        .iter()
        .take(MAX_COUNT)
        .for_each(|b| write_block(out, b));
    finish_packet(out, start);
    write_sdes(out, rr.ssrc, cname);
}

/// Appends one SDES chunk carrying CNAME; a name over 255 bytes is cut at a char boundary.
pub fn write_sdes(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let start = begin_packet(out, 1, PT_SDES);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let cname = truncate_text(cname);
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname.as_bytes());
    // At least one null ends the item list; more pad the chunk to 32 bits.
    out.push(0);
    pad_to_word(out, start);
    finish_packet(out, start);
}

/// Appends a BYE. It belongs after an SR/RR (see `write_sender_report`) in the same datagram,
/// since a lone BYE is not a valid compound packet. At most 31 SSRCs fit the SC field.
pub fn write_bye(out: &mut Vec<u8>, ssrcs: &[u32], reason: Option<&str>) {
    let start = begin_packet(out, ssrcs.len(), PT_BYE);
    ssrcs
        .iter()
        .take(MAX_COUNT)
        .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
    if let Some(reason) = reason {
        let reason = truncate_text(reason);
        out.push(reason.len() as u8);
        out.extend_from_slice(reason.as_bytes());
        pad_to_word(out, start);
    }
    finish_packet(out, start);
}

fn write_block(out: &mut Vec<u8>, b: &ReportBlock) {
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.lsr.to_be_bytes());
    out.extend_from_slice(&b.dlsr.to_be_bytes());
}

/// Writes a header with a zero length, patched by `finish_packet` once the body size is known.
fn begin_packet(out: &mut Vec<u8>, count: usize, packet_type: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0x80 | (count.min(MAX_COUNT) as u8), packet_type, 0, 0]);
    start
}

fn finish_packet(out: &mut [u8], start: usize) {
    let words = (out.len().saturating_sub(start) / 4).saturating_sub(1);
    let len = u16::try_from(words).unwrap_or(u16::MAX).to_be_bytes();
    if let Some(field) = out.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&len);
    }
}

/// Alignment is relative to the packet start, so appending after unaligned bytes stays valid.
fn pad_to_word(out: &mut Vec<u8>, start: usize) {
    while (out.len() - start) % 4 != 0 {
        out.push(0);
    }
}

fn truncate_text(text: &str) -> &str {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// 64-bit NTP timestamp for a wall-clock time the caller read. Seconds wrap at the 2036 era
/// boundary as NTP's do (RFC 5905 §6), which keeps the middle 32 bits used by LSR/DLSR valid.
pub fn ntp_from_unix(unix: Duration) -> u64 {
    let secs = unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) as u32;
    let frac = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    (u64::from(secs) << 32) | frac
}

/// The compact 16.16 form RFC 3550 uses for LSR and for RTT arithmetic.
pub fn ntp_middle_32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
#[path = "rtcp/tests.rs"]
mod tests;
