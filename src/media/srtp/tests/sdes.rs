//! SDES attribute parsing, formatting and offer/answer.

use super::super::{select_supported, CryptoAttribute, SdesError, SdesKeys, Suite};
use super::{hex, rtp_packet};

/// RFC 4568 §5.1's example key (40 base64 characters, 30 bytes).
const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

#[test]
fn parses_the_rfc_example_with_and_without_prefix() {
    let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4");
    assert_eq!(CryptoAttribute::parse(&value), Err(SdesError::MkiUnsupported));

    for line in [
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20"),
        format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20\r\n"),
        format!("crypto:1  aes_cm_128_hmac_sha1_80  INLINE:{KEY}|2^20"),
    ] {
        let attr = CryptoAttribute::parse(&line).unwrap();
        assert_eq!(attr.tag, 1);
        assert_eq!(attr.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(attr.lifetime(), Some(1 << 20));
        let raw = [attr.key().as_slice(), attr.salt().as_slice()].concat();
        assert_eq!(raw, b"=-n@%^x!Bjufr9)?,#5h\\`=&]{qiPQ".to_vec());
    }
}

#[test]
fn format_round_trips() {
    let key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
    let salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap();
    let attr = CryptoAttribute::new(7, Suite::AesCm128HmacSha1_32, key, salt);
    let value = attr.to_sdp_value();
    assert_eq!(
        value,
        "7 AES_CM_128_HMAC_SHA1_32 inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm"
    );
    assert_eq!(attr.to_sdp_line(), format!("a=crypto:{value}"));
    assert_eq!(CryptoAttribute::parse(&value).unwrap(), attr);

    for lifetime in [1u64 << 31, 1 << 48, 1_000_000] {
        let with = attr.clone().with_lifetime(Some(lifetime));
        let parsed = CryptoAttribute::parse(&with.to_sdp_line()).unwrap();
        assert_eq!(parsed, with);
    }
    assert!(attr
        .clone()
        .with_lifetime(Some(1 << 31))
        .to_sdp_value()
        .ends_with("|2^31"));
}

#[test]
fn lifetime_and_mki_handling() {
    let ok = |suffix: &str| CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}{suffix}"));
    assert_eq!(ok("").unwrap().lifetime(), None);
    assert_eq!(ok("|2^31").unwrap().lifetime(), Some(1 << 31));
    assert_eq!(ok("|12345").unwrap().lifetime(), Some(12345));
    for bad in [
        "|2^49",
        "|0",
        "|2^",
        "|2^x",
        "|-5",
        "|",
        "|2^20|2^20",
        "|99999999999999999999",
    ] {
        assert!(matches!(ok(bad), Err(SdesError::Malformed(_))), "{bad}");
    }
    for mki in ["|1:4", "|2^20|1:4", "|1:4|2^20", "|255:1"] {
        assert_eq!(ok(mki), Err(SdesError::MkiUnsupported), "{mki}");
    }
    let two_keys = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4;inline:{KEY}|2^20|2:4");
    assert_eq!(CryptoAttribute::parse(&two_keys), Err(SdesError::MkiUnsupported));
}

#[test]
fn session_parameters() {
    let with = |params: &str| CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} {params}"));
    assert!(with("WSH=64").is_ok());
    assert!(with("FEC_ORDER=FEC_SRTP WSH=128").is_ok());
    for refused in [
        "KDR=0",
        "KDR=10",
        "UNENCRYPTED_SRTP",
        "UNENCRYPTED_SRTCP",
        "UNAUTHENTICATED_SRTP",
        "FOO",
    ] {
        assert!(
            matches!(with(refused), Err(SdesError::UnsupportedSessionParam(_))),
            "{refused}"
        );
    }
}

#[test]
fn refuses_unsupported_and_malformed_lines() {
    let gcm = format!("1 AEAD_AES_256_GCM inline:{KEY}");
    assert_eq!(
        CryptoAttribute::parse(&gcm),
        Err(SdesError::UnsupportedSuite("AEAD_AES_256_GCM".into()))
    );
    for bad in [
        "".to_string(),
        "a=crypto:".to_string(),
        "1".to_string(),
        "1 AES_CM_128_HMAC_SHA1_80".to_string(),
        format!("x AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 {KEY}"),
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA".to_string(),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}!", &KEY[..39]),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}AAAA"),
    ] {
        assert!(
            matches!(CryptoAttribute::parse(&bad), Err(SdesError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn errors_never_carry_a_key_from_a_misordered_line() {
    for line in [
        format!("1 inline:{KEY} AES_CM_128_HMAC_SHA1_80"),
        format!("1 INLINE:{KEY}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} inline:{KEY}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} WSH=64 x-inline:{KEY}"),
    ] {
        let error = CryptoAttribute::parse(&line).expect_err("refused");
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(&KEY[..6]), "{shown}");
        }
    }
    assert_eq!(
        CryptoAttribute::parse(&format!("1 inline:{KEY}")),
        Err(SdesError::UnsupportedSuite("inline:(masked)".into()))
    );
}

#[test]
fn picks_the_first_supported_line() {
    let offer = [
        format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
        format!("3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
        format!("4 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
    ];
    let chosen = select_supported(offer.iter().map(String::as_str)).unwrap();
    assert_eq!((chosen.tag, chosen.suite), (3, Suite::AesCm128HmacSha1_32));

    let err = select_supported(offer[..2].iter().map(String::as_str)).unwrap_err();
    let SdesError::NoUsableCrypto(reasons) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(reasons.len(), 2);
    assert!(err.to_string().contains("AES_256_CM_HMAC_SHA1_80"), "{err}");
    assert_eq!(select_supported([]), Err(SdesError::NoUsableCrypto(vec![])));
}

#[test]
fn offer_answer_yields_working_context_pairs() {
    let offered = CryptoAttribute::generate_offer(&Suite::ALL).unwrap();
    assert_eq!(offered.len(), 2);
    assert_ne!(offered[0].key(), offered[1].key());
    let offer_values: Vec<String> = offered.iter().map(CryptoAttribute::to_sdp_value).collect();

    let answerer = SdesKeys::answer(offer_values.iter().map(String::as_str)).unwrap();
    assert_eq!(
        (answerer.local.tag, answerer.local.suite),
        (1, Suite::AesCm128HmacSha1_80)
    );
    assert_eq!(answerer.remote, offered[0]);
    assert_ne!(answerer.local.key(), offered[0].key(), "fresh key for our direction");

    let offerer = SdesKeys::from_answer(&offered, &answerer.local.to_sdp_line()).unwrap();
    let (mut a_out, mut a_in) = offerer.contexts();
    let (mut b_out, mut b_in) = answerer.contexts();
    let plain = rtp_packet(42, 1, 160);
    let mut p = plain.clone();
    a_out.protect_rtp(&mut p).unwrap();
    b_in.unprotect_rtp(&mut p).unwrap();
    assert_eq!(p, plain);
    b_out.protect_rtp(&mut p).unwrap();
    a_in.unprotect_rtp(&mut p).unwrap();
    assert_eq!(p, plain);

    let wrong_tag = answerer.local.clone();
    let mut wrong_tag_value = wrong_tag.to_sdp_value();
    wrong_tag_value.replace_range(..1, "9");
    assert_eq!(
        SdesKeys::from_answer(&offered, &wrong_tag_value),
        Err(SdesError::UnknownTag(9))
    );
    let swapped = wrong_tag.to_sdp_value().replace("SHA1_80", "SHA1_32");
    assert_eq!(SdesKeys::from_answer(&offered, &swapped), Err(SdesError::SuiteMismatch));
}

#[test]
fn debug_output_redacts_keys() {
    let attr = CryptoAttribute::generate(1, Suite::AesCm128HmacSha1_80).unwrap();
    let keys = SdesKeys {
        local: attr.clone(),
        remote: attr.clone(),
    };
    let encoded = attr.to_sdp_value();
    let b64 = encoded.split("inline:").nth(1).unwrap();
    for text in [
        format!("{attr:?}"),
        format!("{keys:?}"),
        format!("{:?}", attr.context()),
    ] {
        assert!(text.contains("redacted"), "{text}");
        assert!(!text.contains(b64), "{text}");
        assert!(!text.contains(&format!("{:?}", attr.key())), "{text}");
    }
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"aA0:| =^;/+\xc3\xa9inlecrypto12AES_CM_128_HMAC_SHA1_80\t";
    let mut line = String::new();
    for _ in 0..20_000 {
        line.clear();
        let mut bytes = Vec::new();
        let len = (state % 90) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        line.push_str(&String::from_utf8_lossy(&bytes));
        let _ = CryptoAttribute::parse(&line);
        let _ = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}{line}"));
        let _ = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {line}"));
    }
}
