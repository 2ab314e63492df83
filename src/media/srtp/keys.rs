//! RFC 3711 §4.3 key derivation and the AES-CM / HMAC-SHA1 primitives.

use std::fmt;

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::Aes128Enc;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub(super) const MASTER_KEY_LEN: usize = 16;
pub(super) const MASTER_SALT_LEN: usize = 14;
pub(super) const AUTH_KEY_LEN: usize = 20;
pub(super) const FULL_TAG_LEN: usize = 20;

/// RFC 3711 §4.3.2 labels; SRTCP uses the next three.
pub(super) const LABEL_RTP_ENCRYPTION: u8 = 0;
pub(super) const LABEL_RTP_AUTH: u8 = 1;
pub(super) const LABEL_RTP_SALT: u8 = 2;
pub(super) const LABEL_RTCP_ENCRYPTION: u8 = 3;
pub(super) const LABEL_RTCP_AUTH: u8 = 4;
pub(super) const LABEL_RTCP_SALT: u8 = 5;

// Borrowing the key schedule keeps per-packet setup to a 16-byte counter.
type Aes128CtrCore<'a> = ctr::CtrCore<&'a Aes128Enc, ctr::flavors::Ctr128BE>;

/// XORs the AES-CM keystream starting at counter block `iv` into `data`.
///
/// A full 128-bit counter is used where RFC 3711 only increments the low 16
/// bits; every IV built here has those bits zero, so the two agree for any
/// input shorter than 2^16 blocks (1 MiB), far beyond an IP datagram.
pub(super) fn aes_cm_xor(cipher: &Aes128Enc, iv: &[u8; 16], data: &mut [u8]) {
    let core = Aes128CtrCore::inner_iv_init(cipher, iv.into());
    let mut ctr = StreamCipherCoreWrapper::from_core(core);
    ctr.apply_keystream(data);
}

/// AES-CM PRF of §4.3.3 with key_derivation_rate 0, so r = 0 and only the
/// label is mixed into the salt (at byte 7, the top of the 56-bit key_id).
pub(super) fn derive(master: &Aes128Enc, master_salt: &[u8; MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    for (dst, src) in iv.iter_mut().zip(master_salt) {
        *dst = *src;
    }
    iv[7] ^= label;
    out.fill(0);
    aes_cm_xor(master, &iv, out);
}

/// Session keys for one of SRTP or SRTCP.
pub(super) struct SessionKeys {
    cipher: Aes128Enc,
    // Salt pre-shifted into IV position (k_s * 2^16) so the per-packet IV is
    // three XORs on a u128.
    salt_iv: u128,
    // Keyed once: cloning the precomputed inner/outer SHA-1 states is cheaper
    // than re-running the HMAC key schedule for every packet.
    mac: Hmac<Sha1>,
}

impl SessionKeys {
    pub(super) fn derive(
        master_key: &[u8; MASTER_KEY_LEN],
        master_salt: &[u8; MASTER_SALT_LEN],
        labels: [u8; 3],
    ) -> Self {
        let [enc_label, auth_label, salt_label] = labels;
        let master = Aes128Enc::new(master_key.into());

        let mut enc_key = [0u8; MASTER_KEY_LEN];
        derive(&master, master_salt, enc_label, &mut enc_key);
        // HMAC zero-pads keys shorter than the 64-byte SHA-1 block, so a padded
        // block-size key is the same HMAC key without the fallible slice API.
        let mut auth_block = [0u8; 64];
        if let Some(head) = auth_block.get_mut(..AUTH_KEY_LEN) {
            derive(&master, master_salt, auth_label, head);
        }
        let mut salt = [0u8; MASTER_SALT_LEN];
        derive(&master, master_salt, salt_label, &mut salt);

        let mut salt_block = [0u8; 16];
        for (dst, src) in salt_block.iter_mut().zip(&salt) {
            *dst = *src;
        }
        SessionKeys {
            cipher: Aes128Enc::new(&enc_key.into()),
            salt_iv: u128::from_be_bytes(salt_block),
            mac: <Hmac<Sha1> as KeyInit>::new(&auth_block.into()),
        }
    }

    /// RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
    pub(super) fn xor_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let iv = self.salt_iv ^ (u128::from(ssrc) << 64) ^ (u128::from(index) << 16);
        aes_cm_xor(&self.cipher, &iv.to_be_bytes(), data);
    }

    /// Full 160-bit HMAC-SHA1 over `data || trailer`; callers truncate.
    pub(super) fn full_tag(&self, data: &[u8], trailer: &[u8]) -> [u8; FULL_TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.update(trailer);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; FULL_TAG_LEN];
        for (dst, src) in out.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        out
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys { <redacted> }")
    }
}
