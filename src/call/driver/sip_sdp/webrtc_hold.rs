//! Hold and resume with a SIP peer whose media is WebRTC (JsSIP, SIP.js): the WebRTC leg is not
//! renegotiated, only the direction changes. The peer's re-offer (sendonly, inactive, back to
//! sendrecv) goes to the call like any other, so the browser on the other side hears
//! `remote_hold`; once the call agrees, the answer is our SDP with the direction mirrored and
//! the media session stops or resumes sending to the peer. Our own hold is our SDP with
//! `sendonly`, on the same ICE credentials and fingerprint.

use super::{Reoffer, SipSdp};
use crate::call::webrtc_sip::transport_identity;
use crate::media::engine::SessionHandle;
use crate::media::session::LegConfig;
use crate::sdp::{self, Attribute, Direction, SessionDescription};

/// The peer's re-offer, read and answered, waiting for the call's go-ahead.
pub(super) struct WebRtcPrepared {
    offer: SessionDescription,
    answer: SessionDescription,
    peer_receives: bool,
}

/// The audio direction an SDP states (`sendrecv` when it has no audio line).
fn audio_direction(sdp: &SessionDescription) -> Direction {
    sdp.media.iter().find(|m| m.is_audio()).map_or(Direction::SendRecv, |m| m.direction(sdp))
}

/// Our SDP as an answer: the mirrored `direction`, and a definite DTLS role where our SDP was
/// an offer (`actpass` is not allowed in an answer, RFC 5763 §5): the opposite of the role the
/// peer took in `peer`.
fn as_answer(local: &SessionDescription, direction: Direction, peer: Option<&SessionDescription>) -> SessionDescription {
    let mut answer = sdp::with_direction(local, direction);
    let peer_setup = peer.and_then(|p| {
        let audio = p.media.iter().find(|m| m.is_audio());
        audio.and_then(|m| m.attribute("setup")).or_else(|| p.attributes.iter().find(|a| a.name == "setup")).and_then(|a| a.value.clone())
    });
    let ours = match peer_setup.as_deref() {
        Some("active") => "passive",
        _ => "active",
    };
    let fix = |attributes: &mut Vec<Attribute>| {
        for attribute in attributes.iter_mut().filter(|a| a.name == "setup" && a.value.as_deref() == Some("actpass")) {
            attribute.value = Some(ours.to_string());
        }
    };
    fix(&mut answer.attributes);
    answer.media.iter_mut().for_each(|m| fix(&mut m.attributes));
    answer
}

impl SipSdp {
    /// A WebRTC peer's new offer on the same ICE credentials and fingerprint (hold, resume, or
    /// the update an ICE agent sends once checks pick a pair): prepared, with `hold` when the
    /// peer stops taking our audio. An ICE restart or a new fingerprint is refused with 488.
    pub(super) fn webrtc_reoffer(&mut self, offer: SessionDescription) -> Result<Reoffer, u16> {
        if self.remote.as_ref().map(transport_identity) != Some(transport_identity(&offer)) {
            tracing::info!("ICE restart or new DTLS fingerprint on a WebRTC SIP leg refused: 488");
            return Err(488);
        }
        let offered = audio_direction(&offer);
        let mut ours = offered.reversed();
        if self.holding {
            ours = ours.intersect(Direction::SendOnly);
        }
        let answer = as_answer(&self.local, ours, self.remote.as_ref());
        self.webrtc_prepared = Some(WebRtcPrepared { offer, answer, peer_receives: offered.receives() });
        Ok(Reoffer::New { hold: !offered.receives() })
    }

    /// Whether a re-offer of the WebRTC peer waits to be applied.
    pub fn webrtc_reoffer_prepared(&self) -> bool {
        self.webrtc_prepared.is_some()
    }

    /// Applies the prepared answer to the WebRTC peer's re-offer; the SDP to answer with.
    /// `leg` is the media session's view of the peer's WebRTC leg.
    pub async fn apply_webrtc_prepared(&mut self, media: Option<&SessionHandle>, leg: Option<&LegConfig>) -> Result<String, u16> {
        let Some(prepared) = self.webrtc_prepared.take() else { return Err(500) };
        self.peer_receives = prepared.peer_receives;
        self.local = prepared.answer;
        self.remote = Some(prepared.offer);
        self.update_webrtc_sending(media, leg).await.map_err(|_| 500u16)?;
        Ok(self.local.to_string())
    }

    /// The WebRTC peer answered our hold or resume offer (same transport, or it is refused).
    pub async fn webrtc_offer_answered(&mut self, media: Option<&SessionHandle>, leg: Option<&LegConfig>, sdp_text: &str) -> Result<(), String> {
        let Some((offer, hold)) = self.our_offer.take() else { return Err("no offer of ours was pending".into()) };
        let answer = SessionDescription::parse(sdp_text).map_err(|e| e.to_string())?;
        if self.remote.as_ref().map(transport_identity) != Some(transport_identity(&answer)) {
            return Err("the WebRTC peer's answer changed its ICE credentials or fingerprint".into());
        }
        self.holding = hold;
        self.peer_receives = audio_direction(&answer).receives();
        self.local = offer;
        self.remote = Some(answer);
        self.update_webrtc_sending(media, leg).await
    }

    /// Sends to the WebRTC peer only while it takes our audio and we do not hold it; the media
    /// session counts a leg it sends nothing to as held (`rtp_hold_timeout_secs`).
    async fn update_webrtc_sending(&self, media: Option<&SessionHandle>, leg: Option<&LegConfig>) -> Result<(), String> {
        let (Some(media), Some(leg)) = (media, leg) else { return Ok(()) };
        let mut config = leg.clone();
        config.send = self.peer_receives && !self.holding;
        tracing::info!(sending = config.send, "the WebRTC SIP peer's hold state changed");
        media.update_leg(self.side, config).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SrtpPolicy;
    use crate::media::session::Side;
    use crate::sdp::Codec;

    const OURS: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=ice-ufrag:ours\r\na=ice-pwd:ourpassword0123456789\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";
    const PEER: &str = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=ice-ufrag:peer\r\na=ice-pwd:peerpassword0123456789\r\na=fingerprint:sha-256 CC:DD\r\na=setup:active\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text).expect("sdp")
    }

    /// Our offer was answered by the peer (it took the DTLS client role).
    fn answered_sdp() -> SipSdp {
        let mut sdp = SipSdp::new(Side::B, "127.0.0.1".parse().unwrap(), 4000, parse(OURS), None, Codec::Opus, SrtpPolicy::default(), None);
        sdp.webrtc = true;
        sdp.webrtc_answered(parse(PEER), Codec::Opus);
        sdp
    }

    fn reoffer(direction: &str, version: u32) -> SessionDescription {
        parse(&PEER.replace("a=sendrecv", direction).replace("o=- 7 1", &format!("o=- 7 {version}")).replace("a=setup:active", "a=setup:actpass"))
    }

    fn line<'a>(sdp: &'a str, prefix: &str) -> Vec<&'a str> {
        sdp.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[tokio::test]
    async fn a_sendonly_reoffer_is_a_hold_answered_recvonly_with_a_definite_dtls_role() {
        let mut sdp = answered_sdp();
        assert!(matches!(sdp.prepare_reoffer(&reoffer("a=sendonly", 2).to_string()), Ok(Reoffer::New { hold: true })));
        let answer = sdp.apply_webrtc_prepared(None, None).await.expect("answer");
        assert_eq!(line(&answer, "a=recvonly").len(), 1, "{answer}");
        assert_eq!(line(&answer, "a=setup:"), ["a=setup:passive"], "{answer}");
        assert!(!sdp.peer_receives);
        assert!(matches!(sdp.prepare_reoffer(&reoffer("a=sendrecv", 3).to_string()), Ok(Reoffer::New { hold: false })));
        let answer = sdp.apply_webrtc_prepared(None, None).await.expect("answer");
        assert_eq!(line(&answer, "a=sendrecv").len(), 1, "{answer}");
        assert!(sdp.peer_receives);
    }

    #[tokio::test]
    async fn an_ice_restart_is_refused_and_our_hold_keeps_the_transport() {
        let mut sdp = answered_sdp();
        let restart = reoffer("a=sendonly", 2).to_string().replace("ice-ufrag:peer", "ice-ufrag:new");
        assert_eq!(sdp.prepare_reoffer(&restart).err(), Some(488));
        let offer = sdp.hold_offer(true);
        assert_eq!(line(&offer, "a=sendonly").len(), 1, "{offer}");
        assert_eq!(line(&offer, "a=ice-ufrag:"), ["a=ice-ufrag:ours"], "{offer}");
        let answer = PEER.replace("a=sendrecv", "a=recvonly").replace("o=- 7 1", "o=- 7 2");
        sdp.webrtc_offer_answered(None, None, &answer).await.expect("hold answered");
        assert!(sdp.holding);
        // Held by us, a sendrecv offer from the peer is answered sendonly.
        assert!(matches!(sdp.prepare_reoffer(&reoffer("a=sendrecv", 3).to_string()), Ok(Reoffer::New { hold: false })));
        let answer = sdp.apply_webrtc_prepared(None, None).await.expect("answer");
        assert_eq!(line(&answer, "a=sendonly").len(), 1, "{answer}");
        let changed = PEER.replace("CC:DD", "EE:FF").replace("o=- 7 1", "o=- 7 4");
        sdp.hold_offer(false);
        assert!(sdp.webrtc_offer_answered(None, None, &changed).await.is_err());
    }
}
