//! SIP peers whose SDP is WebRTC (ICE, DTLS-SRTP, rtcp-mux), as WebSocket SIP clients send it:
//! which offers are WebRTC, which are refused, and the SDP edits between SIP and the WebRTC leg.
//!
//! SIP has no trickle: our candidates go inline in the SDP, with `a=end-of-candidates`, and the
//! m-line and `c=` name the first of them (RFC 8839 §4.2.1.1, the default candidate). The WebRTC
//! leg (the only importer of rtc) needs an `a=mid` on every m-line; SIP peers often send none,
//! so one is added before the offer reaches it. Text only: no rtc type crosses this file.

use crate::sdp::{Attribute, Codec, Connection, MediaDescription, SessionDescription};
use crate::webrtc_leg::BrowserCodec;
use std::net::SocketAddr;

/// What the peer's SDP asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// RTP, or SDES-SRTP, on the SIP-side port range (ICE attributes, if any, are ignored, as an
    /// RFC 8445 agent talking to one without ICE does).
    Rtp,
    /// ICE + DTLS-SRTP (UDP/TLS/RTP/SAVP or SAVPF): terminated by a WebRTC leg on a media worker.
    WebRtc,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcSdpError {
    #[error("DTLS-SRTP offered without ICE (no ice-ufrag/ice-pwd)")]
    DtlsWithoutIce,
    #[error("UDP/TLS/RTP offered without a DTLS fingerprint")]
    NoFingerprint,
    #[error("media profile {0} is not supported")]
    UnsupportedProfile(String),
    #[error("the SDP cannot be read: {0}")]
    Unreadable(String),
    #[error("DTLS fingerprint hash {0} is not supported (sha-256 is)")]
    UnsupportedFingerprint(String),
    #[error("the WebRTC leg gave no usable candidate")]
    NoCandidate,
}

impl WebRtcSdpError {
    /// Every one of them refuses the offer: "not acceptable here".
    pub fn sip_status(&self) -> u16 {
        488
    }
}

fn session_has(sdp: &SessionDescription, name: &str) -> bool {
    sdp.attributes.iter().any(|a| a.name.eq_ignore_ascii_case(name))
}

fn media_has(media: &MediaDescription, name: &str) -> bool {
    media.attribute(name).is_some()
}

/// Classifies the first active audio m-line. A DTLS profile needs ICE and a fingerprint; a
/// DTLS or TLS profile other than UDP/TLS/RTP/SAVP(F) (over TCP, or SCTP) is refused.
pub fn classify(sdp: &SessionDescription) -> Result<MediaKind, WebRtcSdpError> {
    let Some(audio) = sdp.media.iter().find(|m| m.is_audio() && m.port != 0) else { return Ok(MediaKind::Rtp) };
    let protocol = audio.protocol.to_ascii_uppercase();
    let dtls_profile = protocol == "UDP/TLS/RTP/SAVPF" || protocol == "UDP/TLS/RTP/SAVP";
    if !dtls_profile {
        if protocol.contains("TLS") || protocol.contains("DTLS") {
            return Err(WebRtcSdpError::UnsupportedProfile(audio.protocol.clone()));
        }
        return Ok(MediaKind::Rtp);
    }
    let has = |name: &str| session_has(sdp, name) || media_has(audio, name);
    if !has("fingerprint") {
        return Err(WebRtcSdpError::NoFingerprint);
    }
    if !(has("ice-ufrag") && has("ice-pwd")) {
        return Err(WebRtcSdpError::DtlsWithoutIce);
    }
    // The WebRTC leg checks sha-256 fingerprints only: anything else would fail the handshake.
    let fingerprints = sdp.attributes.iter().chain(&audio.attributes).filter(|a| a.name.eq_ignore_ascii_case("fingerprint"));
    for hash in fingerprints.map(|a| a.value.as_deref().unwrap_or("").split_whitespace().next().unwrap_or("").to_string()) {
        if !hash.eq_ignore_ascii_case("sha-256") {
            return Err(WebRtcSdpError::UnsupportedFingerprint(hash));
        }
    }
    Ok(MediaKind::WebRtc)
}

/// What identifies a WebRTC peer's transport: its ICE credentials and DTLS fingerprint (session
/// or audio level). A re-offer that changes them is an ICE restart or a new DTLS association.
pub fn transport_identity(sdp: &SessionDescription) -> [Option<String>; 3] {
    let audio = sdp.media.iter().find(|m| m.is_audio());
    ["ice-ufrag", "ice-pwd", "fingerprint"].map(|name| {
        let session = sdp.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name));
        let found = audio.and_then(|m| m.attribute(name)).or(session);
        found.and_then(|a| a.value.as_deref()).map(str::to_ascii_lowercase)
    })
}

/// The media session's view of a SIP peer's WebRTC leg: a browser leg, except that digits go to
/// it as SIP INFO (`application/dtmf-relay`): a browser plays the RFC 4733 events it receives to
/// nobody (WebRTC has no API for them), while JsSIP and SIP.js report INFO digits to the app.
/// Digits the peer sends either way (its RFC 4733 events, its INFO) still reach the other side.
pub fn sip_peer_leg(media: &crate::webrtc_leg::BrowserMedia) -> Option<(crate::media::session::LegConfig, crate::media::handler::PayloadFormat)> {
    let (mut config, format) = super::legs::browser_leg(media)?;
    config.dtmf = crate::media::session::DtmfMode::Info;
    Some((config, format))
}

/// The codec a WebRTC leg offers a SIP peer: `codec` under the leg's registered number.
pub fn offered_codec(codec: Codec) -> BrowserCodec {
    BrowserCodec {
        mime_type: format!("audio/{}", codec.encoding_name()),
        payload_type: codec.static_payload_type().unwrap_or(111),
        clock_rate: codec.clock_rate(),
        channels: if codec == Codec::Opus { 2 } else { 1 },
    }
}

/// The peer's SDP as the WebRTC leg takes it: every m-line gets an `a=mid` if it has none, and
/// fingerprint hash names are lower-cased (RFC 8122 makes them case-insensitive; the leg
/// compares `sha-256` exactly, and baresip writes `SHA-256`).
pub fn offer_for_leg(sdp: &SessionDescription) -> String {
    let mut sdp = sdp.clone();
    let lower_hash = |attributes: &mut Vec<Attribute>| {
        for attribute in attributes.iter_mut().filter(|a| a.name.eq_ignore_ascii_case("fingerprint")) {
            if let Some((hash, value)) = attribute.value.as_deref().and_then(|v| v.split_once(' ')) {
                attribute.value = Some(format!("{} {value}", hash.to_ascii_lowercase()));
            }
        }
    };
    lower_hash(&mut sdp.attributes);
    for (index, media) in sdp.media.iter_mut().enumerate() {
        lower_hash(&mut media.attributes);
        if !media_has(media, "mid") {
            media.attributes.push(Attribute::new("mid", index.to_string()));
        }
    }
    sdp.to_string()
}

/// An `a=candidate` value from a candidate the leg announced (`{"candidate": "candidate:..."}`).
pub fn candidate_value(candidate: &serde_json::Value) -> Option<String> {
    let line = candidate.get("candidate")?.as_str()?;
    let value = line.strip_prefix("a=").unwrap_or(line);
    value.strip_prefix("candidate:").filter(|v| !v.is_empty()).map(str::to_string)
}

/// How long a new WebRTC leg may take to announce its host candidates (it does so at once).
const GATHER_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The candidates a new WebRTC leg announces, up to its end-of-candidates, as `a=candidate`
/// values. Anything else it reports this early (it cannot be connected yet) is dropped.
pub async fn gather_candidates(events: &mut tokio::sync::mpsc::Receiver<crate::webrtc_leg::LegEvent>) -> Vec<String> {
    use crate::webrtc_leg::LegEvent;
    let mut candidates = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER_LIMIT;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            LegEvent::LocalCandidate(Some(candidate)) => candidates.extend(candidate_value(&candidate)),
            LegEvent::LocalCandidate(None) => break,
            other => tracing::debug!(?other, "WebRTC leg event before the answer"),
        }
    }
    candidates
}

/// The transport address a candidate value names (`foundation component transport priority
/// address port typ ...`).
fn candidate_address(value: &str) -> Option<SocketAddr> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let ip: std::net::IpAddr = fields.get(4)?.parse().ok()?;
    let port: u16 = fields.get(5)?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The WebRTC leg's SDP with its candidates inline, for a SIP peer: the audio m-line and its
/// `c=` name the first candidate, and `a=end-of-candidates` closes the list.
pub fn with_candidates(leg_sdp: &str, candidates: &[String]) -> Result<SessionDescription, WebRtcSdpError> {
    let mut sdp = SessionDescription::parse(leg_sdp).map_err(|e| WebRtcSdpError::Unreadable(e.to_string()))?;
    let default = candidates.iter().find_map(|c| candidate_address(c)).ok_or(WebRtcSdpError::NoCandidate)?;
    // The leg writes port 0 on its one audio m-line (its candidates say where it is).
    let audio = sdp.media.iter_mut().find(|m| m.is_audio()).ok_or_else(|| WebRtcSdpError::Unreadable("no audio m-line".into()))?;
    audio.port = default.port();
    audio.connection = Some(Connection::from_ip(default.ip()));
    audio.attributes.retain(|a| !a.name.eq_ignore_ascii_case("candidate") && !a.name.eq_ignore_ascii_case("end-of-candidates"));
    // `a=rtcp` names the RTCP port; with rtcp-mux it is the RTP one.
    if let Some(rtcp) = audio.attributes.iter_mut().find(|a| a.name.eq_ignore_ascii_case("rtcp")) {
        let family = if default.is_ipv4() { "IP4" } else { "IP6" };
        rtcp.value = Some(format!("{} IN {family} {}", default.port(), default.ip()));
    }
    for candidate in candidates {
        audio.attributes.push(Attribute::new("candidate", candidate.clone()));
    }
    audio.attributes.push(Attribute::flag("end-of-candidates"));
    if sdp.connection.is_some() {
        sdp.connection = Some(Connection::from_ip(default.ip()));
    }
    Ok(sdp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
a=ice-ufrag:zTcDvVD\r\na=ice-pwd:Cr3uOkuhovDUUFg87cFGV3X0YsOHqqb\r\na=setup:actpass\r\n\
a=fingerprint:SHA-256 EA:BF:DD:27:58:4C:AC:E8:B9:13:0F:3F:EB:4C:80:0A:66:7E:D2:16:34:29:E2:A0:A8:A1:EE:8C:58:1C:1A:01\r\n\
m=audio 4070 UDP/TLS/RTP/SAVPF 96 0 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=candidate:c0000202 1 UDP 2113929471 127.0.0.1 4070 typ host\r\n";

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text).expect("sdp")
    }

    #[test]
    fn an_offer_with_ice_and_a_fingerprint_is_webrtc() {
        assert_eq!(classify(&parse(BARESIP)), Ok(MediaKind::WebRtc));
        let avp = BARESIP.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP");
        assert_eq!(classify(&parse(&avp)), Ok(MediaKind::Rtp), "plain RTP with ICE attributes stays RTP");
    }

    #[test]
    fn dtls_without_ice_or_a_fingerprint_or_over_tcp_is_refused() {
        let no_ice = BARESIP.replace("a=ice-ufrag:zTcDvVD\r\n", "");
        assert_eq!(classify(&parse(&no_ice)), Err(WebRtcSdpError::DtlsWithoutIce));
        let no_fingerprint: String = BARESIP.lines().filter(|l| !l.starts_with("a=fingerprint")).map(|l| format!("{l}\r\n")).collect();
        assert_eq!(classify(&parse(&no_fingerprint)), Err(WebRtcSdpError::NoFingerprint));
        let sha1 = BARESIP.replace("SHA-256", "sha-1");
        assert_eq!(classify(&parse(&sha1)), Err(WebRtcSdpError::UnsupportedFingerprint("sha-1".into())));
        let tcp = BARESIP.replace("UDP/TLS/RTP/SAVPF", "TCP/TLS/RTP/SAVPF");
        assert_eq!(classify(&parse(&tcp)), Err(WebRtcSdpError::UnsupportedProfile("TCP/TLS/RTP/SAVPF".into())));
        for error in [WebRtcSdpError::DtlsWithoutIce, WebRtcSdpError::NoFingerprint] {
            assert_eq!(error.sip_status(), 488);
        }
    }

    #[test]
    fn a_mid_is_added_where_missing() {
        let text = offer_for_leg(&parse(BARESIP));
        assert!(text.contains("a=mid:0\r\n"), "{text}");
        assert!(text.contains("a=fingerprint:sha-256 EA:BF:"), "the hash name is lower-cased: {text}");
        assert_eq!(offer_for_leg(&parse(&text)).matches("a=mid:").count(), 1, "never twice");
    }

    #[test]
    fn candidates_go_inline_and_the_m_line_names_the_first() {
        let leg = "v=0\r\no=- 5 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-mux\r\na=setup:active\r\n\
a=candidate:1 2 udp 2130706431 127.0.0.1 40002 typ host\r\n";
        let candidate = serde_json::json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40002 typ host", "sdpMid": "0"});
        let value = candidate_value(&candidate).expect("value");
        let sdp = with_candidates(leg, &[value]).expect("sdp");
        let text = sdp.to_string();
        assert!(text.contains("m=audio 40002 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("a=rtcp:40002 IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40002 typ host\r\na=end-of-candidates\r\n"), "{text}");
        assert_eq!(text.matches("a=candidate:").count(), 1, "the leg's own candidate lines are replaced: {text}");
        assert_eq!(with_candidates(leg, &[]).err(), Some(WebRtcSdpError::NoCandidate));
        assert_eq!(candidate_value(&serde_json::json!({"candidate": ""})), None);
    }
}
