//! Leg set-up shared by every call kind: the media session's view of a SIP peer and of a browser,
//! and the addresses SDP names for media.

use crate::media::engine::{MediaEngine, INTERNAL_PEER};
use crate::media::handler::{Encoding, PayloadFormat};
use crate::media::session::{DtmfMode, LegConfig, RtcpMode};
use crate::sdp::{Codec, NegotiatedAudio, SessionDescription};
use std::net::IpAddr;
use crate::webrtc_leg::BrowserMedia;

pub fn encoding_of_codec(codec: Codec) -> Encoding {
    match codec {
        Codec::Pcmu => Encoding::Pcmu,
        Codec::Pcma => Encoding::Pcma,
        Codec::G722 => Encoding::G722,
        Codec::Opus => Encoding::Opus,
    }
}

pub fn codec_of_encoding(encoding: Encoding) -> Codec {
    match encoding {
        Encoding::Pcmu => Codec::Pcmu,
        Encoding::Pcma => Codec::Pcma,
        Encoding::G722 => Codec::G722,
        Encoding::Opus => Codec::Opus,
    }
}

/// The SIP peer's leg as the offer/answer settled it: where to send, in which format, and how.
pub fn sip_leg(negotiated: &NegotiatedAudio, format: PayloadFormat) -> LegConfig {
    LegConfig {
        formats: vec![format],
        telephone_event: negotiated.telephone_event,
        // A peer without telephone-event still gets the browser's digits, as SIP INFO.
        dtmf: if negotiated.telephone_event.is_some() { DtmfMode::Rfc4733 } else { DtmfMode::Info },
        ptime_ms: negotiated.ptime.unwrap_or(20),
        remote: negotiated.remote,
        send: negotiated.direction.receives(),
        rtcp: if negotiated.rtcp_mux { RtcpMode::Mux } else { RtcpMode::SeparatePort },
    }
}

/// For a leg that answered our offer: the peer sends under the answer's numbers or, as RFC 3264
/// §5.1 reads, under our offer's (which may differ: the answer's only SHOULD match). Both are
/// accepted; we send under the answer's, the first format.
pub fn accept_offered_numbers(config: &mut LegConfig, our_offer: &SessionDescription) {
    let Some(audio) = our_offer.media.iter().find(|m| m.is_audio() && m.port != 0) else { return };
    let offered = audio.rtpmaps();
    let mut aliases = Vec::new();
    for format in &config.formats {
        for map in &offered {
            let same_codec = Codec::from_rtpmap(map).map(encoding_of_codec) == Some(format.encoding);
            let number_free = !config.formats.iter().chain(&aliases).any(|f| f.payload_type == map.payload_type);
            if same_codec && number_free && config.telephone_event.is_none_or(|(pt, _)| pt != map.payload_type) {
                aliases.push(PayloadFormat { payload_type: map.payload_type, ..*format });
            }
        }
    }
    config.formats.extend(aliases);
}

/// A leg fed through a channel (a browser's WebRTC leg, or the echo loop): no socket, no RTCP.
pub fn internal_leg(formats: Vec<PayloadFormat>) -> LegConfig {
    LegConfig { formats, telephone_event: None, dtmf: DtmfMode::Rfc4733, ptime_ms: 20, remote: Some(INTERNAL_PEER), send: true, rtcp: RtcpMode::Off }
}

/// A browser's leg under its own payload numbers (e.g. Opus 111 while the SIP leg says 96): the
/// media session translates between the legs, and sends the leg RTCP reports. `None` when the browser's codec is not one the engine handles.
pub fn browser_leg(media: &BrowserMedia) -> Option<(LegConfig, PayloadFormat)> {
    let encoding = crate::call::echo::encoding_of(&media.codec.mime_type)?;
    let format = PayloadFormat { encoding, payload_type: media.codec.payload_type, channels: 1 };
    let mut config = internal_leg(vec![format]);
    config.telephone_event = media.telephone_event;
    // The worker protects the session's reports with the leg's SRTCP keys (rtcp-mux).
    config.rtcp = RtcpMode::Mux;
    Some((config, format))
}

/// The address our SDP gives a SIP peer for media: toward the address its offer names for RTP,
/// else toward its signalling address (the engine never returns a wildcard, which means hold).
pub fn sip_media_address(engine: &MediaEngine, offer: Option<&SessionDescription>, signalling: Option<IpAddr>) -> IpAddr {
    let offered = offer.and_then(|o| o.media.iter().find(|m| m.kind == "audio").and_then(|m| m.rtp_address(o))).map(|a| a.ip());
    engine.advertised_toward(offered.or(signalling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::LocalCapabilities;

    #[test]
    fn a_leg_that_renumbered_in_its_answer_is_also_heard_under_our_numbers() {
        let offer = crate::sdp::offer(&LocalCapabilities::new(vec![Codec::Opus, Codec::Pcmu]), "127.0.0.1".parse().expect("ip"), 4000, 1, 1);
        let mut config = internal_leg(vec![PayloadFormat { encoding: Encoding::Opus, payload_type: 96, channels: 1 }]);
        config.telephone_event = Some((97, 48_000));
        accept_offered_numbers(&mut config, &offer);
        let numbers: Vec<(Encoding, u8)> = config.formats.iter().map(|f| (f.encoding, f.payload_type)).collect();
        assert_eq!(numbers, vec![(Encoding::Opus, 96), (Encoding::Opus, 111)], "sent as 96, received as 96 or 111");
        let before = config.formats.clone();
        accept_offered_numbers(&mut config, &offer);
        assert_eq!(config.formats, before, "applying twice adds nothing");
    }
}
