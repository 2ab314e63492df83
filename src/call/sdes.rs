//! SDES-SRTP on the SIP leg (RFC 4568): a profile's `srtp` policy applied to the offers and
//! answers of one call. Pure: takes SDP, returns SDP changes and keys; the call tasks install the
//! keys in the media session.
//!
//! Keying stays stable across re-INVITEs: a re-offer that repeats the peer's key keeps ours too,
//! a new peer key gets a new key of ours as well (RFC 4568 §7.1.4), and our own re-offers (hold,
//! resume) repeat the `a=crypto` lines of our last SDP. A call that started with SRTP never
//! falls back to plain RTP.

use std::collections::HashMap;

use crate::config::{Profile, ProfileKind, SrtpPolicy};
use crate::media::srtp::{select_supported, CryptoAttribute, SdesKeys, Suite};
use crate::sdp::{Attribute, NegotiatedAudio, SdpError, SessionDescription};

const SAVP: &str = "RTP/SAVP";

/// Every profile's policy, and the local domain's for registered phones.
#[derive(Debug, Clone, Default)]
pub struct SrtpPolicies {
    by_profile: HashMap<String, SrtpPolicy>,
    local: SrtpPolicy,
}

impl SrtpPolicies {
    pub fn from_profiles(profiles: &[Profile]) -> SrtpPolicies {
        let local = profiles.iter().find(|p| p.kind == ProfileKind::Local).map(|p| p.srtp).unwrap_or_default();
        SrtpPolicies { by_profile: profiles.iter().map(|p| (p.name.clone(), p.srtp)).collect(), local }
    }

    /// The policy of a trunk or PBX profile; `None` means a phone registered to the local domain.
    pub fn for_profile(&self, profile: Option<&str>) -> SrtpPolicy {
        profile.and_then(|p| self.by_profile.get(p).copied()).unwrap_or(self.local)
    }
}

/// RTP/SAVP and RTP/SAVPF key in the SDP; UDP/TLS/RTP/SAVP is DTLS-SRTP, which SIP peers do not
/// get from us (it never reaches here: only RTP/AVP(F) and RTP/SAVP(F) are answered as SIP audio).
fn is_sdes_protocol(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case(SAVP) || protocol.eq_ignore_ascii_case("RTP/SAVPF")
}

fn no_usable(e: impl std::fmt::Display) -> SdpError {
    SdpError::NoUsableCrypto(e.to_string())
}

/// Answerer side: whether the call is SRTP and with which keys. Adds our `a=crypto` (same tag
/// and suite as the line we chose) to the audio m-line of `answer`, whose protocol already
/// echoes the offer's. `current` are the keys in use when this is a re-offer.
pub fn answer_offer(
    policy: SrtpPolicy,
    offer: &SessionDescription,
    negotiated: &NegotiatedAudio,
    answer: &mut SessionDescription,
    current: Option<&SdesKeys>,
) -> Result<Option<SdesKeys>, SdpError> {
    let offered = offer.media.get(negotiated.media_index).ok_or(SdpError::NoAudio)?;
    let savp = is_sdes_protocol(&offered.protocol);
    let keys = match (policy, savp, negotiated.crypto.is_empty()) {
        (SrtpPolicy::Off, true, _) => return Err(SdpError::SrtpNotAllowed),
        // Best effort (a=crypto on RTP/AVP) is ignored when SRTP is off: plain answer.
        (SrtpPolicy::Off, false, _) => None,
        (_, false, true) if current.is_some() => return Err(SdpError::SrtpRequired),
        (SrtpPolicy::Mandatory, false, true) => return Err(SdpError::SrtpRequired),
        (SrtpPolicy::Optional | SrtpPolicy::Dtls, false, true) => None,
        (_, _, true) => return Err(no_usable("no a=crypto attribute")),
        (policy, savp, false) => match select_supported(negotiated.crypto.iter().map(String::as_str)) {
            Ok(remote) => Some(keys_for(remote, current)?),
            // An RTP/AVP offer may carry lines we cannot use: plain RTP is what it asked for.
            Err(_) if !savp && matches!(policy, SrtpPolicy::Optional | SrtpPolicy::Dtls) && current.is_none() => None,
            Err(e) => return Err(no_usable(e)),
        },
    };
    if let Some(keys) = &keys {
        let media = answer.media.get_mut(negotiated.media_index).ok_or(SdpError::NoAudio)?;
        media.attributes.push(Attribute::new("crypto", keys.local.to_sdp_value()));
    }
    Ok(keys)
}

/// Our key for the peer's chosen line: the one in use when the peer kept its own.
fn keys_for(remote: CryptoAttribute, current: Option<&SdesKeys>) -> Result<SdesKeys, SdpError> {
    if let Some(current) = current.filter(|c| c.remote == remote) {
        return Ok(current.clone());
    }
    let local = CryptoAttribute::generate(remote.tag, remote.suite).map_err(no_usable)?;
    Ok(SdesKeys { local, remote })
}

/// Offerer side: with `mandatory`, the audio m-line becomes RTP/SAVP with one `a=crypto` per
/// suite (each its own key). `optional` and `off` offer plain RTP, which every trunk takes.
pub fn secure_offer(policy: SrtpPolicy, offer: &mut SessionDescription) -> Result<(), SdpError> {
    if policy != SrtpPolicy::Mandatory {
        return Ok(());
    }
    let lines = CryptoAttribute::generate_offer(&Suite::ALL).map_err(no_usable)?;
    for media in offer.media.iter_mut().filter(|m| m.port != 0 && m.is_audio()) {
        media.protocol = SAVP.to_string();
        media.attributes.extend(lines.iter().map(|line| Attribute::new("crypto", line.to_sdp_value())));
    }
    Ok(())
}

/// Offerer side, reading the answer to `our_offer`: the keys when we offered `a=crypto`. An
/// answer that drops SRTP we asked for is refused, as is one naming a tag we never offered.
pub fn read_answer(our_offer: &SessionDescription, negotiated: &NegotiatedAudio) -> Result<Option<SdesKeys>, SdpError> {
    let offered = offered_lines(our_offer, negotiated.media_index);
    if offered.is_empty() {
        return Ok(None);
    }
    let answer = negotiated.crypto.first().ok_or(SdpError::SrtpRequired)?;
    SdesKeys::from_answer(&offered, answer).map(Some).map_err(no_usable)
}

/// The `a=crypto` lines of our own SDP: what a re-offer built from it (hold, resume) offers.
fn offered_lines(ours: &SessionDescription, media_index: usize) -> Vec<CryptoAttribute> {
    let Some(media) = ours.media.get(media_index) else { return Vec::new() };
    media.crypto_lines().into_iter().filter_map(|line| CryptoAttribute::parse(line).ok()).collect()
}

#[cfg(test)]
#[path = "sdes/tests.rs"]
mod tests;
