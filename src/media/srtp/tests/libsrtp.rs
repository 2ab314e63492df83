//! Interop with libsrtp 2.5.0 (Debian libsrtp2-1 2.5.0-3).
//!
//! The libsrtp bytes below were produced by `libsrtp_gen.c` beside this file
//! (`gcc libsrtp_gen.c -lsrtp2 && ./a.out`): srtp_create() with the RFC 3711 B.3 master key/salt,
//! `srtp_crypto_policy_set_aes_cm_128_hmac_sha1_{80,32}` for RTP and `_80` for
//! RTCP, `ssrc_any_outbound`, window 128; then srtp_protect() /
//! srtp_protect_rtcp() on the plaintexts below, in the order listed.
//! `OURS_SRTCP` goes the other way: produced by this module, then
//! `./a.out check rtcp <hex>` ran srtp_unprotect_rtcp() on it, which accepted
//! it and returned `RTCP_PLAIN` (and refused it with one byte changed). Our
//! RTP output needs no such check: it is byte-identical to libsrtp's.

use super::super::{SrtpContext, SrtpError, Suite};
use super::{hex, pair, test_key};

/// (plaintext, libsrtp output) for SSRC cafebabe across the ROC rollover.
const RTP80: [(&str, &str); 5] = [
    (
        "8000fffe009ffec0cafebabefe050c131a21282f363d444b525960676e757c83",
        "8000fffe009ffec0cafebabe8f461766324233ca0b64a5c4dc4e23d258682720f1afc3005926c8be5fbe",
    ),
    (
        "8000ffff009fff60cafebabeff060d141b222930373e454c535a61686f767d84",
        "8000ffff009fff60cafebabea7c33043372583ee107fb17342e6d77b8759e59913014447675a624e09ab",
    ),
    (
        "8000000000000000cafebabe00070e151c232a31383f464d545b626970777e85",
        "8000000000000000cafebabe8f405c932b1f3eb055ed5a70020dff98510b4920597a9f7b448712ca2709",
    ),
    (
        "80000001000000a0cafebabe01080f161d242b323940474e555c636a71787f86",
        "80000001000000a0cafebabe1c525419ee2db835afc4b9499b917a9da33fa2b7b41818499d52857b6ca0",
    ),
    // One CSRC and a one-byte header extension, both left in the clear.
    (
        "9100000200000140cafebabe11223344bede0001107f0000020910171e252c333a41484f565d646b72798087",
        "9100000200000140cafebabe11223344bede0001107f0000ca7dc9fa89f90181134163b69b94679871dc5db7\
         5077e2764f8045e6ae9a",
    ),
];

const RTP32: (&str, &str) = (
    "800003e800027100cafebabee8eff6fd040b121920272e353c434a51585f666d",
    "800003e800027100cafebabe2ac19350a5211784b9b90ce9933485995a57b268a13af217",
);

const RTCP_PLAIN: &str =
    "81c90007cafebabe12345678010000020000fffe00000010000000000000000081ca0003cafebabe0103736970000000";

/// libsrtp starts SRTCP indices at 1 (it increments before use).
const LIBSRTP_SRTCP: [&str; 2] = [
    "81c90007cafebabec8b7fe884e2c12141553c41452dc0e137e44132ac1142d271e6ffb2adf4b81dfc175e957912a0fd6\
     80000001689fd3643fe071778c47",
    "81c90007cafebabedb86c93935d32773793ee7f0b97317e494f096b7142e999b570c7f864835b977eb8e88a58b17b80b\
     80000002350bd4d6ff4565f2bf17",
];

/// Ours starts at 0 as RFC 3711 §3.4 says; libsrtp accepted it.
const OURS_SRTCP: &str =
    "81c90007cafebabe0803dc49a2c0c7d34db6da5e551f15842f36a2e29b8f0c698f48fa14c054a5edd5e81cbea4c835d0\
     80000000af62b7673bbd6f324f44";

#[test]
fn we_protect_rtp_exactly_like_libsrtp() {
    let (mut tx, _) = pair(Suite::AesCm128HmacSha1_80);
    for (plain, srtp) in RTP80 {
        let mut packet = hex(plain);
        tx.protect_rtp(&mut packet).unwrap();
        assert_eq!(packet, hex(srtp));
    }
    let (mut tx32, _) = pair(Suite::AesCm128HmacSha1_32);
    let mut packet = hex(RTP32.0);
    tx32.protect_rtp(&mut packet).unwrap();
    assert_eq!(packet, hex(RTP32.1));
}

#[test]
fn we_unprotect_libsrtp_rtp() {
    let (_, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    for (plain, srtp) in RTP80 {
        let mut packet = hex(srtp);
        rx.unprotect_rtp(&mut packet).unwrap();
        assert_eq!(packet, hex(plain));
    }
    let mut again = hex(RTP80[4].1);
    assert_eq!(rx.unprotect_rtp(&mut again), Err(SrtpError::Replay));

    let (_, mut rx32) = pair(Suite::AesCm128HmacSha1_32);
    let mut packet = hex(RTP32.1);
    rx32.unprotect_rtp(&mut packet).unwrap();
    assert_eq!(packet, hex(RTP32.0));
}

#[test]
fn we_unprotect_libsrtp_rtcp() {
    let (_, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    for srtcp in LIBSRTP_SRTCP {
        let mut packet = hex(srtcp);
        rx.unprotect_rtcp(&mut packet).unwrap();
        assert_eq!(packet, hex(RTCP_PLAIN));
    }
}

/// `OURS_SRTCP` came from this module's earlier (hand-written) transform with SRTCP index 0 and
/// libsrtp accepted it; `rtc-srtp` starts its SRTCP index at 1, so the same plaintext now comes
/// out with index 1 and another keystream. Both must read back.
#[test]
fn our_srtcp_is_what_libsrtp_accepted() {
    let (key, salt) = test_key();
    let mut rx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key, &salt);
    let mut accepted = hex(OURS_SRTCP);
    rx.unprotect_rtcp(&mut accepted).unwrap();
    assert_eq!(accepted, hex(RTCP_PLAIN));
    let mut tx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key, &salt);
    let mut packet = hex(RTCP_PLAIN);
    tx.protect_rtcp(&mut packet).unwrap();
    let ours = hex(OURS_SRTCP);
    assert_eq!(packet.len(), ours.len());
    let index_at = packet.len() - 14;
    assert_eq!(packet[index_at..index_at + 4], [0x80, 0, 0, 1], "E flag and the first SRTCP index");
    rx.unprotect_rtcp(&mut packet).unwrap();
    assert_eq!(packet, hex(RTCP_PLAIN));
}
