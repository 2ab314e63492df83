//! Published vectors: libsrtp's srtp_driver reference packet, keyed with the RFC 3711 B.3 master
//! key and salt, checks key derivation (B.3), AES-CM (B.2) and HMAC-SHA1 end to end. The
//! primitives' own vectors are `rtc-srtp`'s tests.

use super::super::{SrtpContext, Suite};
use super::{hex, test_key};

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
