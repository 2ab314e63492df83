//! Published vectors: RFC 3711 Appendix B and libsrtp's srtp_driver.

use aes::cipher::KeyInit;
use aes::Aes128Enc;

use super::super::keys::{aes_cm_xor, derive};
use super::super::{SrtpContext, Suite};
use super::{hex, hex_array, test_key};

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let cipher = Aes128Enc::new(&hex_array::<16>("2B7E151628AED2A6ABF7158809CF4F3C").into());
    let iv: [u8; 16] = hex_array("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000");
    // B.2 lists the first three and last three blocks of a 0xFF02-block segment.
    let mut stream = vec![0u8; 0xFF02 * 16];
    aes_cm_xor(&cipher, &iv, &mut stream);
    let block = |n: usize| &stream[n * 16..(n + 1) * 16];
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xFEFF), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xFF00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xFF01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

#[test]
fn rfc3711_b3_key_derivation() {
    let (key, salt) = test_key();
    let master = Aes128Enc::new(&key.into());
    let label = |l: u8, n: usize| {
        let mut out = vec![0u8; n];
        derive(&master, &salt, l, &mut out);
        out
    };
    assert_eq!(label(0, 16), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(label(2, 14), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(label(1, 20), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
}

#[test]
fn srtcp_labels_match_independent_vectors() {
    // Labels 3-5 with the B.3 master key, as used by other SRTP test suites;
    // the libsrtp SRTCP interop test covers the same ground end to end.
    let (key, salt) = test_key();
    let master = Aes128Enc::new(&key.into());
    let mut enc = [0u8; 16];
    let mut auth = [0u8; 20];
    let mut salt_out = [0u8; 14];
    derive(&master, &salt, 3, &mut enc);
    derive(&master, &salt, 4, &mut auth);
    derive(&master, &salt, 5, &mut salt_out);
    assert_eq!(enc.to_vec(), hex("4c1aa45a81f73d61c800bbb00fbb1eaa"));
    assert_eq!(auth.to_vec(), hex("8d54534feb49ae8e7993a6bd0b844fc323a93dfd"));
    assert_eq!(salt_out.to_vec(), hex("9581c7ad87b3e530bf3e4454a8b3"));
}

#[test]
fn libsrtp_driver_reference_packet() {
    // srtp_driver.c's srtp_validate(): same key, seq 0x1234, SSRC cafebabe.
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let srtp = hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let (key, salt) = test_key();
    let mut tx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key, &salt);
    let mut packet = plain.clone();
    tx.protect_rtp(&mut packet).unwrap();
    assert_eq!(packet, srtp);
    let mut rx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key, &salt);
    rx.unprotect_rtp(&mut packet).unwrap();
    assert_eq!(packet, plain);
}
