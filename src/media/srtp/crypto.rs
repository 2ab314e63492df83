//! The cryptography `rtc-srtp` runs on: ring's provider from `rtc-crypto`, except for AES-128 in
//! counter mode, which keeps its expanded key.
//!
//! Why: `rtc-crypto` 0.21.1's counter-mode cipher holds the raw session key and builds a new AES
//! cipher, both encryption and decryption round keys, for every packet. Our profile of a relayed
//! call put that key expansion at about 2 % of the gateway's CPU. The session key never changes
//! within a context, so it is expanded once here and each packet only clones the 176-byte
//! encryption schedule into a fresh counter. The transform itself stays the RustCrypto `aes` and
//! `ctr` crates' (AES-NI when the CPU has it), the same code `rtc-crypto` calls.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher as _};
use aes::Aes128Enc;
use rtc_srtp::crypto::providers::RingCrypto;
use rtc_srtp::crypto::{BlockCipherAlgorithm, CryptoAlgorithm, CryptoError, HmacAlgorithm, Mac, RTCCrypto, StreamCipher, StreamCipherAlgorithm};

/// SRTP's counter (RFC 3711 §4.1.1): AES-CTR over a big-endian 128-bit block counter.
type Aes128Counter = ctr::Ctr128BE<Aes128Enc>;

const AES_128_KEY_LEN: usize = 16;
const AES_BLOCK_LEN: usize = 16;

/// The provider handed to every `rtc_srtp::Context` we create.
pub(super) struct SrtpCrypto;

impl RTCCrypto for SrtpCrypto {
    fn supports(&self, algorithm: CryptoAlgorithm) -> bool {
        RingCrypto.supports(algorithm)
    }

    fn block_encrypt(&self, algorithm: BlockCipherAlgorithm, key: &[u8], block: &mut [u8]) -> Result<(), CryptoError> {
        RingCrypto.block_encrypt(algorithm, key, block)
    }

    fn new_hmac(&self, algorithm: HmacAlgorithm, key: &[u8]) -> Result<Box<dyn Mac>, CryptoError> {
        RingCrypto.new_hmac(algorithm, key)
    }

    fn new_stream_cipher(&self, algorithm: StreamCipherAlgorithm, key: &[u8]) -> Result<Box<dyn StreamCipher>, CryptoError> {
        match algorithm {
            StreamCipherAlgorithm::Aes128Ctr => Ok(Box::new(KeyedAes128Counter::new(key)?)),
            other => RingCrypto.new_stream_cipher(other, key),
        }
    }
}

/// AES-128-CTR whose key schedule is expanded once, when the context is keyed.
struct KeyedAes128Counter {
    schedule: Aes128Enc,
}

impl KeyedAes128Counter {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let schedule = Aes128Enc::new_from_slice(key).map_err(|_| CryptoError::InvalidKeyLength { expected: AES_128_KEY_LEN, actual: key.len() })?;
        Ok(KeyedAes128Counter { schedule })
    }
}

impl StreamCipher for KeyedAes128Counter {
    fn apply_keystream(&mut self, iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        let iv: &[u8; AES_BLOCK_LEN] = iv.try_into().map_err(|_| CryptoError::InvalidNonceLength { expected: AES_BLOCK_LEN, actual: iv.len() })?;
        let mut counter = Aes128Counter::from_core(ctr::CtrCore::inner_iv_init(self.schedule.clone(), iv.into()));
        counter.apply_keystream(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keystream(crypto: &dyn RTCCrypto, key: &[u8], iv: &[u8], data: &mut [u8]) {
        crypto.new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, key).unwrap().apply_keystream(iv, data).unwrap();
    }

    fn bytes(hex_text: &str) -> Vec<u8> {
        hex::decode(hex_text).unwrap()
    }

    #[test]
    fn nist_counter_mode_vector() {
        // NIST SP 800-38A F.5.1, first block.
        let mut block = bytes("6bc1bee22e409f96e93d7e117393172a");
        keystream(&SrtpCrypto, &bytes("2b7e151628aed2a6abf7158809cf4f3c"), &bytes("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), &mut block);
        assert_eq!(block, bytes("874d6191b620e3261bef6864990db6ce"));
    }

    #[test]
    fn one_keyed_cipher_matches_a_fresh_ring_cipher_for_every_packet() {
        let key = [0x5au8; 16];
        let mut ours = SrtpCrypto.new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &key).unwrap();
        // Lengths across block boundaries, counters that carry across bytes, and the same IV
        // twice: no packet may inherit keystream position from the one before.
        for (n, len) in [0usize, 1, 15, 16, 17, 160, 172, 1200, 160].into_iter().enumerate() {
            let mut iv = [0xffu8; 16];
            iv[0] = n as u8;
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
            let mut expected = plain.clone();
            keystream(&RingCrypto, &key, &iv, &mut expected);
            let mut got = plain.clone();
            ours.apply_keystream(&iv, &mut got).unwrap();
            assert_eq!(got, expected, "packet {n} of {len} bytes");
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert!(matches!(SrtpCrypto.new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &[0; 15]), Err(CryptoError::InvalidKeyLength { expected: 16, actual: 15 })));
        let mut cipher = SrtpCrypto.new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &[0; 16]).unwrap();
        assert!(matches!(cipher.apply_keystream(&[0; 12], &mut [0; 4]), Err(CryptoError::InvalidNonceLength { expected: 16, actual: 12 })));
    }
}
