//! The browser leg (`connection.rs`), driven by the media worker that owns the shared ICE port.
//! The only module that imports rtc. rtc's peer connection writes and reads the descriptions
//! and is then dropped; the connection is rtc's ICE agent and DTLS endpoint (`transport.rs`),
//! and media is SRTP under keys exported from DTLS, applied in the worker's packet buffer. The
//! media engine sees plain events (local candidates, state), datagrams and bytes, never an rtc
//! type.
//!
//! Pitfalls from ../shared/NOTES.md handled here: telephone-event must be registered by hand; as
//! answerer the local track is added after the remote offer so it reuses the offered
//! transceiver; the payload numbers are the ones the sender really negotiated; the candidates we
//! trickle carry the real mid. mDNS is off (no multicast route in containers).

mod addresses;
mod connection;
mod remote;
mod transport;
#[cfg(test)]
mod pair_tests;

pub use connection::{Datagram, LegIdentity, WebRtcLeg};
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    #[error("WebRTC: {0}")]
    Engine(String),
    #[error("the offer has no audio codec we support")]
    NoCommonCodec,
    #[error("DTLS is not up yet")]
    NotConnected,
    /// A DTLS record after the handshake that the association discarded without a word (forged,
    /// stale or replayed, RFC 6347 §4.1.2.7): the worker counts it.
    #[error("a DTLS record the established association discarded")]
    DtlsDiscarded,
}

/// A DTLS record by its first byte (RFC 7983 §7: 20 to 63).
fn is_dtls(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(20..=63))
}

fn engine_error(e: impl std::fmt::Display) -> WebRtcError {
    WebRtcError::Engine(e.to_string())
}

/// The addresses a browser leg bound to `bind` offers as host candidates on this host now.
pub fn host_candidate_addresses(bind: std::net::IpAddr) -> Vec<std::net::IpAddr> {
    shared_socket_addresses(SocketAddr::new(bind, 0)).into_iter().map(|a| a.ip()).collect()
}

/// What a media worker binds for its shared WebRTC port `bind`: a concrete address as is, a
/// wildcard as each usable interface address of its family (loopback only when that is all).
pub fn shared_socket_addresses(bind: SocketAddr) -> Vec<SocketAddr> {
    addresses::bind_addresses(bind, &addresses::interface_addresses())
}

/// What the leg reports.
#[derive(Debug)]
pub enum LegEvent {
    /// A local ICE candidate to trickle to the browser; `None` is end-of-candidates.
    LocalCandidate(Option<serde_json::Value>),
    Connected,
    /// ICE or DTLS failed, or the connection closed: the call should end with this reason.
    Failed(String),
}

/// An audio codec negotiated on the browser leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserCodec {
    pub mime_type: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: u16,
}

/// What the browser leg negotiated, with the browser leg's own payload numbers: the media engine
/// must stamp exactly these, whatever numbers the SIP leg uses (webrtc-rs drops any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserMedia {
    pub codec: BrowserCodec,
    /// telephone-event payload type and clock rate, when the browser negotiated it.
    pub telephone_event: Option<(u8, u32)>,
}

#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// Advertised instead of the bound address (NAT 1:1).
    pub public_ip: Option<std::net::IpAddr>,
    pub lite: bool,
    pub failed_timeout: std::time::Duration,
}

/// One DTLS certificate for every leg of a worker, as a browser keeps one per origin: an ECDSA
/// key and a self-signed certificate per call would be call setup time spent for nothing.
#[derive(Clone)]
pub struct DtlsCertificate(RTCCertificate);

impl DtlsCertificate {
    pub fn generate() -> Result<DtlsCertificate, WebRtcError> {
        let provider = rtc::crypto::default_provider().map_err(engine_error)?;
        let params = CertificateParams::new(vec!["sipbridge".to_owned()]).map_err(engine_error)?;
        let certificate = RTCCertificate::generate(provider.crypto(), rtc::crypto::SignatureScheme::EcdsaP256Sha256, params).map_err(engine_error)?;
        Ok(DtlsCertificate(certificate))
    }
}

/// The codecs we accept from browsers, in preference order, plus telephone-event at both rates.
pub fn media_engine() -> Result<MediaEngine, WebRtcError> {
    let mut engine = MediaEngine::default();
    let codecs = [
        ("audio/opus", 111, 48_000, 2, "minptime=10;useinbandfec=1"),
        ("audio/G722", 9, 8_000, 1, ""),
        ("audio/PCMU", 0, 8_000, 1, ""),
        ("audio/PCMA", 8, 8_000, 1, ""),
        ("audio/telephone-event", 110, 48_000, 1, "0-15"),
        ("audio/telephone-event", 101, 8_000, 1, "0-15"),
    ];
    for (mime, payload_type, clock_rate, channels, fmtp) in codecs {
        let parameters = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_string(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_string(),
                rtcp_feedback: vec![],
            },
            payload_type,
            ..Default::default()
        };
        engine.register_codec(parameters, RtpCodecKind::Audio).map_err(engine_error)?;
    }
    Ok(engine)
}

/// Picks the first audio codec in the browser's offer that we support (offer order), optionally
/// restricted to one codec (echo through a transcoder, or an operator's choice).
pub fn choose_codec(offer_sdp: &str, forced: Option<&str>) -> Result<(BrowserCodec, String), WebRtcError> {
    let offer = crate::sdp::SessionDescription::parse(offer_sdp).map_err(|e| WebRtcError::Engine(e.to_string()))?;
    let audio = offer.media.iter().find(|m| m.kind == "audio").ok_or(WebRtcError::NoCommonCodec)?;
    let mid = audio.attribute("mid").and_then(|a| a.value.clone()).unwrap_or_else(|| "0".into());
    let supported = ["opus", "g722", "pcmu", "pcma"];
    let codec = audio
        .rtpmaps()
        .into_iter()
        .filter(|m| supported.contains(&m.encoding.to_ascii_lowercase().as_str()))
        .find(|m| forced.is_none_or(|f| f.eq_ignore_ascii_case(&m.encoding)))
        .ok_or(WebRtcError::NoCommonCodec)?;
    Ok((
        BrowserCodec {
            mime_type: format!("audio/{}", codec.encoding),
            payload_type: codec.payload_type,
            clock_rate: codec.clock_rate,
            channels: u16::from(codec.channels.max(1)),
        },
        mid,
    ))
}

/// One negotiated codec as the sender lists it: (MIME type, clock rate, channels, payload type).
pub type SenderCodec = (String, u32, u16, u8);

/// The intended codec under the number the sender negotiated, and the telephone-event at its
/// clock rate (or at any rate: the media engine converts event clocks).
pub fn media_from_codecs(codecs: &[SenderCodec], intended: &BrowserCodec) -> Option<BrowserMedia> {
    let (mime, clock_rate, channels, payload_type) = codecs
        .iter()
        .find(|(mime, rate, _, _)| mime.eq_ignore_ascii_case(&intended.mime_type) && *rate == intended.clock_rate)?;
    let events = codecs.iter().filter(|(mime, ..)| mime.eq_ignore_ascii_case("audio/telephone-event"));
    let mut telephone_event = None;
    for (_, rate, _, pt) in events {
        if telephone_event.is_none() || *rate == *clock_rate {
            telephone_event = Some((*pt, *rate));
        }
    }
    let codec = BrowserCodec { mime_type: mime.clone(), payload_type: *payload_type, clock_rate: *clock_rate, channels: *channels };
    Some(BrowserMedia { codec, telephone_event })
}

/// Our audio track: one encoding under `ssrc`, in `codec`.
pub fn local_track(codec: &BrowserCodec, ssrc: u32) -> rtc::media_stream::MediaStreamTrack {
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
    rtc::media_stream::MediaStreamTrack::new(
        "sipbridge".to_string(),
        "sipbridge-audio".to_string(),
        "sipbridge-audio".to_string(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: RTCRtpCodec { mime_type: codec.mime_type.clone(), clock_rate: codec.clock_rate, channels: codec.channels, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] },
            ..Default::default()
        }],
    )
}

/// A host candidate on `address`, as the ICE agent and browsers read it.
fn candidate_init(index: usize, address: SocketAddr, mid: &str) -> RTCIceCandidateInit {
    // RFC 8445 §5.1.2.1 host priority: type preference 126, local preference 65535 - index.
    let local_preference = 65_535u32.saturating_sub(index as u32);
    let priority = (126u32 << 24) | (local_preference << 8) | 255;
    RTCIceCandidateInit {
        candidate: format!("candidate:{} 1 udp {priority} {} {} typ host", index + 1, address.ip(), address.port()),
        sdp_mid: Some(mid.to_string()),
        sdp_mline_index: Some(0),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(mime: &str, rate: u32, channels: u16, pt: u8) -> SenderCodec {
        (mime.to_string(), rate, channels, pt)
    }

    #[test]
    fn the_browser_leg_uses_the_senders_numbers_not_the_sip_legs() {
        // Offered to the browser as "Opus, like the SIP side's PT 96": the sender says 111.
        let intended = BrowserCodec { mime_type: "audio/opus".into(), payload_type: 96, clock_rate: 48_000, channels: 2 };
        let sender = [codec("audio/opus", 48_000, 2, 111), codec("audio/telephone-event", 8_000, 1, 101), codec("audio/telephone-event", 48_000, 1, 110)];
        let media = media_from_codecs(&sender, &intended).expect("negotiated");
        assert_eq!(media.codec.payload_type, 111);
        assert_eq!(media.telephone_event, Some((110, 48_000)), "the event clock follows the audio clock");
        let pcmu = BrowserCodec { mime_type: "audio/PCMU".into(), payload_type: 0, clock_rate: 8_000, channels: 1 };
        let sender = [codec("audio/PCMU", 8_000, 1, 0), codec("audio/telephone-event", 48_000, 1, 126)];
        let media = media_from_codecs(&sender, &pcmu).expect("negotiated");
        assert_eq!((media.codec.payload_type, media.telephone_event), (0, Some((126, 48_000))));
        assert!(media_from_codecs(&sender[1..], &pcmu).is_none(), "a codec the sender lacks is not invented");
    }
}
