//! What the transport needs from the browser's description: its ICE credentials, the
//! certificate fingerprints DTLS must see, its DTLS role, and any candidates it carried (a
//! client that does not trickle puts them all in the SDP). Read from the audio section, or the
//! session level where a browser puts them there.

use super::WebRtcError;
use crate::sdp::{Attribute, SessionDescription};

/// The DTLS role a description's `a=setup` claims (RFC 4145, RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParameters {
    pub ufrag: String,
    pub pwd: String,
    /// `sha-256` fingerprints, lower-case hex with colons.
    pub fingerprints: Vec<String>,
    pub setup: Setup,
    /// `a=candidate` values (without the `candidate:` prefix).
    pub candidates: Vec<String>,
    pub lite: bool,
}

fn find<'a>(session: &'a [Attribute], media: &'a [Attribute], name: &str) -> Option<&'a str> {
    media.iter().chain(session).find(|a| a.is(name)).and_then(|a| a.value.as_deref())
}

/// Reads the transport parameters of `sdp`; an offer or answer without them cannot connect.
pub fn parse(sdp: &str) -> Result<RemoteParameters, WebRtcError> {
    let description = SessionDescription::parse(sdp).map_err(|e| WebRtcError::Engine(e.to_string()))?;
    let audio = description.media.iter().find(|m| m.kind == "audio").ok_or(WebRtcError::NoCommonCodec)?;
    let (session, media) = (&description.attributes[..], &audio.attributes[..]);
    let missing = |what: &str| WebRtcError::Engine(format!("the description has no {what}"));
    let ufrag = find(session, media, "ice-ufrag").ok_or_else(|| missing("a=ice-ufrag"))?.trim().to_string();
    let pwd = find(session, media, "ice-pwd").ok_or_else(|| missing("a=ice-pwd"))?.trim().to_string();
    let fingerprints: Vec<String> = media
        .iter()
        .chain(session)
        .filter(|a| a.is("fingerprint"))
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| v.trim().split_once(' '))
        .filter(|(algorithm, _)| algorithm.eq_ignore_ascii_case("sha-256"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .collect();
    if fingerprints.is_empty() {
        return Err(missing("sha-256 a=fingerprint"));
    }
    let setup = match find(session, media, "setup").map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("active") => Setup::Active,
        Some(s) if s.eq_ignore_ascii_case("passive") => Setup::Passive,
        // RFC 8842 §5.2: an offer without a=setup is actpass.
        _ => Setup::ActPass,
    };
    let candidates = media.iter().filter(|a| a.is("candidate")).filter_map(|a| a.value.clone()).collect();
    let lite = session.iter().chain(media).any(|a| a.is("ice-lite"));
    Ok(RemoteParameters { ufrag, pwd, fingerprints, setup, candidates, lite })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        a=fingerprint:sha-256 AB:CD:EF\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\na=setup:actpass\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn credentials_fingerprint_role_and_candidates_are_read_from_either_level() {
        let remote = parse(OFFER).expect("parsed");
        assert_eq!((remote.ufrag.as_str(), remote.pwd.as_str()), ("abcd", "0123456789abcdefghijkl"));
        assert_eq!(remote.fingerprints, vec!["ab:cd:ef".to_string()], "session-level, lower-cased");
        assert_eq!(remote.setup, Setup::ActPass);
        assert_eq!(remote.candidates, vec!["1 1 udp 2122260223 127.0.0.1 50000 typ host".to_string()]);
        assert!(!remote.lite);
        let active = OFFER.replace("a=setup:actpass", "a=setup:active");
        assert_eq!(parse(&active).expect("parsed").setup, Setup::Active);
    }

    #[test]
    fn a_description_without_credentials_or_fingerprint_is_refused() {
        assert!(parse(&OFFER.replace("a=ice-pwd:0123456789abcdefghijkl\r\n", "")).is_err());
        assert!(parse(&OFFER.replace("a=fingerprint:sha-256 AB:CD:EF\r\n", "")).is_err());
        assert!(parse(&OFFER.replace("sha-256 AB", "sha-1 AB")).is_err(), "only sha-256 is checked");
    }
}
