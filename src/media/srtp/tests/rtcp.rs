//! SRTCP behaviour: trailer layout, tampering, replay, E flag.

use super::super::{SrtpContext, SrtpError, Suite};
use super::{pair, rtcp_packet};

const SSRC: u32 = 0xcafe_babe;

fn protect(tx: &mut SrtpContext, ssrc: u32) -> Vec<u8> {
    let mut p = rtcp_packet(ssrc);
    tx.protect_rtcp(&mut p).unwrap();
    p
}

#[test]
fn round_trip_and_trailer_layout() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let plain = rtcp_packet(SSRC);
        // rtc-srtp numbers SRTCP packets from 1 (any unique index will do, RFC 3711 §3.4).
        for index in 1u32..4 {
            let mut p = plain.clone();
            tx.protect_rtcp(&mut p).unwrap();
            // 80-bit tag in both suites (RFC 4568 §6.2.2).
            assert_eq!(p.len(), plain.len() + 4 + 10);
            assert_eq!(p[..8], plain[..8], "first header and SSRC stay clear");
            assert_ne!(p[8..plain.len()], plain[8..]);
            let e_index = u32::from_be_bytes(p[plain.len()..plain.len() + 4].try_into().unwrap());
            assert_eq!(e_index, 0x8000_0000 | index);
            rx.unprotect_rtcp(&mut p).unwrap();
            assert_eq!(p, plain);
        }
    }
}

#[test]
fn any_flipped_bit_fails_authentication() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let good = protect(&mut tx, SSRC);
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        // rtc-srtp checks the replay window before the tag, so a flipped SRTCP index bit may
        // fail as a replay: dropped all the same.
        let index_bits = (good.len() - 14) * 8..(good.len() - 10) * 8;
        let got = rx.unprotect_rtcp(&mut bad).err().unwrap_or_else(|| panic!("bit {bit} of {}: tampered packet accepted", good.len() * 8));
        assert!(got == SrtpError::AuthFailed || (index_bits.contains(&bit) && got == SrtpError::Replay), "bit {bit}: {got:?}");
    }
    rx.unprotect_rtcp(&mut good.clone()).unwrap();
}

#[test]
fn replay_rejected_and_reordering_accepted() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let packets: Vec<Vec<u8>> = (0..200).map(|_| protect(&mut tx, SSRC)).collect();
    rx.unprotect_rtcp(&mut packets[5].clone()).unwrap();
    assert_eq!(rx.unprotect_rtcp(&mut packets[5].clone()), Err(SrtpError::Replay));
    rx.unprotect_rtcp(&mut packets[3].clone()).unwrap();
    rx.unprotect_rtcp(&mut packets[199].clone()).unwrap();
    assert_eq!(
        rx.unprotect_rtcp(&mut packets[199 - 128].clone()),
        Err(SrtpError::Replay)
    );
    rx.unprotect_rtcp(&mut packets[199 - 127].clone()).unwrap();
}

#[test]
fn rtcp_and_rtp_windows_are_separate() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let mut rtp = super::rtp_packet(SSRC, 0, 40);
    tx.protect_rtp(&mut rtp).unwrap();
    rx.unprotect_rtcp(&mut protect(&mut tx, SSRC)).unwrap();
    rx.unprotect_rtp(&mut rtp).unwrap();
}

/// rtc-srtp 0.21.1 hands back an E=0 packet without checking its tag; the wrapper refuses it
/// (we never agree to UNENCRYPTED_SRTCP), forged or not.
#[test]
fn unencrypted_srtcp_is_refused() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let mut forged = rtcp_packet(SSRC);
    forged.extend_from_slice(&7u32.to_be_bytes());
    forged.extend_from_slice(&[0; 10]);
    assert_eq!(rx.unprotect_rtcp(&mut forged), Err(SrtpError::AuthFailed));
    let mut genuine = protect(&mut tx, SSRC);
    let e_flag_at = genuine.len() - 14;
    genuine[e_flag_at] &= 0x7f;
    assert_eq!(rx.unprotect_rtcp(&mut genuine), Err(SrtpError::AuthFailed));
}

#[test]
fn short_and_malformed_rtcp() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let mut tiny = vec![0x80, 0xc9, 0, 1, 0, 0, 0];
    assert_eq!(tx.protect_rtcp(&mut tiny), Err(SrtpError::TooShort));
    assert_eq!(tiny.len(), 7);
    let mut v0 = rtcp_packet(SSRC);
    v0[0] &= 0x3f;
    assert_eq!(tx.protect_rtcp(&mut v0), Err(SrtpError::Malformed));
    for len in 0..22 {
        let mut p = vec![0x80; len];
        assert!(rx.unprotect_rtcp(&mut p).is_err());
    }
    // Header-only SR (8 bytes) is the shortest valid RTCP.
    let mut bare = rtcp_packet(SSRC)[..8].to_vec();
    tx.protect_rtcp(&mut bare).unwrap();
    assert_eq!(bare.len(), 22);
    rx.unprotect_rtcp(&mut bare).unwrap();
    assert_eq!(bare.len(), 8);
}
