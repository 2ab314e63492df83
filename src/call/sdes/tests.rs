use super::*;
use crate::sdp::{self, Codec, LocalCapabilities};
use std::net::{IpAddr, Ipv4Addr};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const KEY_80: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
const KEY_32: &str = "2 AES_CM_128_HMAC_SHA1_32 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB";
const UNKNOWN_SUITE: &str = "1 AEAD_AES_256_GCM inline:MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eXw==";

fn phone_offer(protocol: &str, crypto: &[&str], version: u64) -> SessionDescription {
    let mut text = format!("v=0\r\no=- 7 {version} IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 40000 {protocol} 0 101\r\n");
    for line in crypto {
        text.push_str(&format!("a=crypto:{line}\r\n"));
    }
    text.push_str("a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
    SessionDescription::parse(&text).expect("test SDP")
}

/// Runs our answerer on an offer: the answer's text and the keys.
fn answer(policy: SrtpPolicy, offer: &SessionDescription, current: Option<&SdesKeys>) -> Result<(SessionDescription, Option<SdesKeys>), SdpError> {
    let (mut answer, negotiated) = sdp::answer(offer, &LocalCapabilities::new(vec![Codec::Pcmu]), US, 4000, 1)?;
    let keys = answer_offer(policy, offer, &negotiated, &mut answer, current)?;
    Ok((answer, keys))
}

#[test]
fn a_savp_offer_is_answered_with_our_own_key_under_the_chosen_tag_and_suite() {
    for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
        let (sdp, keys) = answer(policy, &phone_offer("RTP/SAVP", &[KEY_32, KEY_80], 1), None).expect("answered");
        let keys = keys.expect("SRTP");
        assert_eq!((keys.remote.tag, keys.remote.suite), (2, Suite::AesCm128HmacSha1_32), "the first usable line");
        assert_eq!((keys.local.tag, keys.local.suite), (2, Suite::AesCm128HmacSha1_32));
        assert_ne!(keys.local.key(), keys.remote.key(), "our key is our own");
        let media = &sdp.media[0];
        assert_eq!(media.protocol, "RTP/SAVP");
        assert_eq!(media.crypto_lines(), vec![keys.local.to_sdp_value()]);
    }
}

#[test]
fn lines_we_cannot_use_are_skipped_and_only_unusable_ones_refuse() {
    let (_, keys) = answer(SrtpPolicy::Optional, &phone_offer("RTP/SAVP", &[UNKNOWN_SUITE, KEY_80], 1), None).expect("answered");
    assert_eq!(keys.expect("SRTP").remote.tag, 1);
    let refused = answer(SrtpPolicy::Optional, &phone_offer("RTP/SAVP", &[UNKNOWN_SUITE], 1), None).expect_err("refused");
    assert!(matches!(refused, SdpError::NoUsableCrypto(_)));
    assert_eq!(refused.sip_status(), 488);
    let no_lines = answer(SrtpPolicy::Mandatory, &phone_offer("RTP/SAVP", &[], 1), None).expect_err("refused");
    assert!(matches!(no_lines, SdpError::NoUsableCrypto(_)));
}

#[test]
fn best_effort_crypto_on_rtp_avp_is_answered_in_kind() {
    let (sdp, keys) = answer(SrtpPolicy::Optional, &phone_offer("RTP/AVP", &[KEY_80], 1), None).expect("answered");
    assert!(keys.is_some());
    assert_eq!(sdp.media[0].protocol, "RTP/AVP", "the profile is echoed");
    assert_eq!(sdp.media[0].crypto_lines().len(), 1);
    // Unusable best-effort lines leave the plain call the offer also allows.
    let (sdp, keys) = answer(SrtpPolicy::Optional, &phone_offer("RTP/AVP", &[UNKNOWN_SUITE], 1), None).expect("answered");
    assert!(keys.is_none() && sdp.media[0].crypto_lines().is_empty());
    // With SRTP off, best effort is ignored.
    let (sdp, keys) = answer(SrtpPolicy::Off, &phone_offer("RTP/AVP", &[KEY_80], 1), None).expect("answered");
    assert!(keys.is_none() && sdp.media[0].crypto_lines().is_empty());
}

#[test]
fn policy_and_offer_that_cannot_meet_get_488() {
    let off = answer(SrtpPolicy::Off, &phone_offer("RTP/SAVP", &[KEY_80], 1), None).expect_err("refused");
    assert_eq!((off.clone(), off.sip_status()), (SdpError::SrtpNotAllowed, 488));
    let mandatory = answer(SrtpPolicy::Mandatory, &phone_offer("RTP/AVP", &[], 1), None).expect_err("refused");
    assert_eq!((mandatory.clone(), mandatory.sip_status()), (SdpError::SrtpRequired, 488));
    let (_, plain) = answer(SrtpPolicy::Optional, &phone_offer("RTP/AVP", &[], 1), None).expect("answered");
    assert!(plain.is_none());
}

#[test]
fn a_reoffer_keeps_the_keys_when_the_peer_keeps_its_own_and_rekeys_otherwise() {
    let (_, first) = answer(SrtpPolicy::Optional, &phone_offer("RTP/SAVP", &[KEY_80], 1), None).expect("answered");
    let first = first.expect("SRTP");
    let (sdp, kept) = answer(SrtpPolicy::Optional, &phone_offer("RTP/SAVP", &[KEY_80], 2), Some(&first)).expect("answered");
    assert_eq!(kept.as_ref(), Some(&first));
    assert_eq!(sdp.media[0].crypto_lines(), vec![first.local.to_sdp_value()]);
    let (_, rekeyed) = answer(SrtpPolicy::Optional, &phone_offer("RTP/SAVP", &[KEY_32], 3), Some(&first)).expect("answered");
    let rekeyed = rekeyed.expect("SRTP");
    assert_ne!(rekeyed.local.key(), first.local.key(), "a new peer key gets a new key of ours");
    let downgrade = answer(SrtpPolicy::Optional, &phone_offer("RTP/AVP", &[], 4), Some(&first)).expect_err("refused");
    assert_eq!(downgrade, SdpError::SrtpRequired, "an SRTP call stays SRTP");
}

#[test]
fn mandatory_offers_savp_and_reads_the_peers_key_back() {
    let mut offer = sdp::offer(&LocalCapabilities::new(vec![Codec::Pcmu]), US, 4000, 1, 1);
    secure_offer(SrtpPolicy::Optional, &mut offer).expect("plain");
    assert_eq!(offer.media[0].protocol, "RTP/AVP");
    secure_offer(SrtpPolicy::Mandatory, &mut offer).expect("secured");
    assert_eq!(offer.media[0].protocol, "RTP/SAVP");
    assert_eq!(offer.media[0].crypto_lines().len(), Suite::ALL.len());

    // The peer answers it as our own answerer would.
    let (peer_answer, peer_keys) = answer(SrtpPolicy::Mandatory, &offer, None).expect("answered");
    let peer_keys = peer_keys.expect("SRTP");
    let negotiated = sdp::read_answer(&offer, &peer_answer).expect("answer");
    let ours = read_answer(&offer, &negotiated).expect("keys").expect("SRTP");
    assert_eq!(ours.local, peer_keys.remote);
    assert_eq!(ours.remote, peer_keys.local);

    // Hold: the re-offer built from our SDP repeats our lines, so the same answer still fits.
    let hold = sdp::with_direction(&offer, crate::sdp::Direction::SendOnly);
    assert_eq!(read_answer(&hold, &negotiated).expect("keys"), Some(ours));

    // A plain answer to SAVP is refused.
    let plain = phone_offer("RTP/SAVP", &[], 1);
    let negotiated = sdp::read_answer(&offer, &plain).expect("codecs fit");
    assert_eq!(read_answer(&offer, &negotiated), Err(SdpError::SrtpRequired));
}

#[test]
fn policies_come_from_the_profile_and_phones_from_the_local_domain() {
    let mut policies = SrtpPolicies::default();
    policies.by_profile.insert("trunk".into(), SrtpPolicy::Off);
    policies.local = SrtpPolicy::Mandatory;
    assert_eq!(policies.for_profile(Some("trunk")), SrtpPolicy::Off);
    assert_eq!(policies.for_profile(None), SrtpPolicy::Mandatory);
    assert_eq!(SrtpPolicies::default().for_profile(Some("unknown")), SrtpPolicy::Optional);
}
