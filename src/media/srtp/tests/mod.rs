//! Tests for the SRTP module. Vectors come from RFC 3711 Appendix B, libsrtp's
//! own test driver, and packets produced with libsrtp 2.5.0 (see libsrtp.rs).

mod bench;
mod libsrtp;
mod rtcp;
mod rtp;
mod sdes;
mod vectors;

use super::{SrtpContext, Suite};

pub(super) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex length");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

pub(super) fn hex_array<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().unwrap()
}

/// RFC 3711 B.3 master key and salt, also libsrtp's test key.
pub(super) fn test_key() -> ([u8; 16], [u8; 14]) {
    (
        hex_array("E1F97A0D3E018BE0D64FA32C06DE4139"),
        hex_array("0EC675AD498AFEEBB6960B3AABE6"),
    )
}

pub(super) fn pair(suite: Suite) -> (SrtpContext, SrtpContext) {
    let (key, salt) = test_key();
    (
        SrtpContext::new(suite, &key, &salt),
        SrtpContext::new(suite, &key, &salt),
    )
}

/// Minimal RTP packet: V=2, PT 0, `payload_len` bytes derived from `seq`.
pub(super) fn rtp_packet(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload_len + super::MAX_TRAILER_LEN);
    p.extend_from_slice(&[0x80, 0x00]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seq as u8)));
    p
}

/// A receiver report followed by an SDES CNAME, sender `ssrc`.
pub(super) fn rtcp_packet(ssrc: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&[0x81, 0xc9, 0x00, 0x07]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&hex("12345678 01000002 0000fffe 00000010 00000000 00000000"));
    p.extend_from_slice(&[0x81, 0xca, 0x00, 0x03]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&hex("01037369 70000000"));
    p
}
