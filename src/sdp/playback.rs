//! How much audio an Opus sender should encode for us (RFC 7587 §6.1 `maxplaybackrate`).
//!
//! A browser bridged to a G.711 phone would otherwise encode fullband Opus at about 32 kbit/s,
//! which we decode only to keep its lowest 4 kHz. Asked for `maxplaybackrate=8000`, libwebrtc
//! caps its encoder at narrowband and lowers its bitrate: less upstream bandwidth for the browser,
//! and a decode that costs the gateway a third of a fullband one. The limit follows the other
//! leg's codec, so a call that relays Opus untouched asks for nothing.

use super::{Codec, SessionDescription};

/// The `maxplaybackrate` to ask of an Opus sender bridged to a leg that speaks `other_leg`: the
/// highest sample rate that codec carries, when it is below Opus's own.
pub fn playback_limit(other_leg: Codec) -> Option<u32> {
    match other_leg {
        Codec::Pcmu | Codec::Pcma => Some(8_000),
        Codec::G722 => Some(16_000),
        Codec::Opus => None,
    }
}

/// The codec a remote's SDP sends in: the first format we know on its first active audio m-line
/// (the first format of an answer is what its sender uses, RFC 3264 §6.1).
pub fn sending_codec(sdp: &str) -> Option<Codec> {
    let description = SessionDescription::parse(sdp).ok()?;
    let audio = description.media.iter().find(|m| m.is_audio() && m.port != 0)?;
    audio.rtpmaps().iter().find_map(Codec::from_rtpmap)
}

/// `sdp` with every Opus format asking for at most `rate_hz` (`maxplaybackrate`, and
/// `sprop-maxcapturerate` since what we send was captured at that rate too). Only the Opus `fmtp`
/// lines change, or one is added after an Opus `rtpmap` that has none: the rest of the text (ICE
/// and DTLS attributes written by the WebRTC stack) stays byte for byte. A parameter the line
/// already has is kept as it is.
pub fn with_opus_playback_limit(sdp: &str, rate_hz: u32) -> String {
    let opus: Vec<&str> = sdp.lines().filter_map(|line| opus_payload_type(line.trim_end())).collect();
    let has_fmtp = |pt: &str| sdp.lines().any(|line| fmtp_of(line.trim_end()).is_some_and(|(p, _)| p == pt));
    let limits = [("maxplaybackrate", rate_hz), ("sprop-maxcapturerate", rate_hz)];
    let mut out = String::with_capacity(sdp.len() + 64 * opus.len());
    for line in sdp.split_inclusive('\n') {
        let (text, ending) = split_ending(line);
        match fmtp_of(text) {
            Some((pt, params)) if opus.contains(&pt) => {
                out.push_str(text);
                let mut first = params.trim().is_empty();
                for (name, value) in limits {
                    if !has_parameter(params, name) {
                        out.push_str(if first { "" } else { ";" });
                        out.push_str(&format!("{name}={value}"));
                        first = false;
                    }
                }
                out.push_str(ending);
            }
            _ => {
                out.push_str(line);
                if let Some(pt) = opus_payload_type(text).filter(|pt| !has_fmtp(pt)) {
                    let ending = if ending.is_empty() { "\r\n" } else { ending };
                    out.push_str(&format!("a=fmtp:{pt} maxplaybackrate={rate_hz};sprop-maxcapturerate={rate_hz}{ending}"));
                }
            }
        }
    }
    out
}

/// `with_opus_playback_limit` on one of our own descriptions: printed, limited and read back. Our
/// SDP always reads back; if it ever did not, the description without the limit is still good.
pub fn limit_opus_playback(description: SessionDescription, rate_hz: u32) -> SessionDescription {
    SessionDescription::parse(&with_opus_playback_limit(&description.to_string(), rate_hz)).unwrap_or(description)
}

/// The line without its `\r\n` (or `\n`), and that ending.
fn split_ending(line: &str) -> (&str, &str) {
    let text = line.trim_end_matches(['\r', '\n']);
    (text, &line[text.len()..])
}

/// The payload type of an `a=rtpmap` line for Opus.
fn opus_payload_type(line: &str) -> Option<&str> {
    let (pt, encoding) = line.strip_prefix("a=rtpmap:")?.split_once(char::is_whitespace)?;
    let name = encoding.trim_start().split('/').next()?;
    name.eq_ignore_ascii_case("opus").then_some(pt)
}

/// The payload type and parameters of an `a=fmtp` line.
fn fmtp_of(line: &str) -> Option<(&str, &str)> {
    let value = line.strip_prefix("a=fmtp:")?;
    Some(value.split_once(char::is_whitespace).unwrap_or((value, "")))
}

fn has_parameter(params: &str, name: &str) -> bool {
    params.split(';').any(|p| p.split('=').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER_ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 110\r\n\
c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=fingerprint:sha-256 AA:BB\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-15\r\n";

    #[test]
    fn the_limit_follows_the_other_legs_codec() {
        assert_eq!(playback_limit(Codec::Pcmu), Some(8_000));
        assert_eq!(playback_limit(Codec::Pcma), Some(8_000));
        assert_eq!(playback_limit(Codec::G722), Some(16_000));
        assert_eq!(playback_limit(Codec::Opus), None, "Opus relayed untouched asks for nothing");
    }

    #[test]
    fn only_the_opus_fmtp_line_changes() {
        let limited = with_opus_playback_limit(BROWSER_ANSWER, 8_000);
        let expected = BROWSER_ANSWER.replace(
            "a=fmtp:111 minptime=10;useinbandfec=1\r\n",
            "a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000\r\n",
        );
        assert_eq!(limited, expected);
        let parsed = SessionDescription::parse(&limited).unwrap();
        assert_eq!(parsed.media[0].fmtp(111), Some("minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000"));
        assert_eq!(parsed.media[0].fmtp(110), Some("0-15"), "telephone-event keeps its events");
    }

    #[test]
    fn an_opus_format_without_fmtp_gets_one_and_a_set_limit_stays() {
        let bare = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96 0\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 OPUS/48000/2\r\n";
        let limited = with_opus_playback_limit(bare, 16_000);
        assert!(limited.ends_with("a=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 maxplaybackrate=16000;sprop-maxcapturerate=16000\r\n"), "{limited}");
        let chosen = "a=rtpmap:96 opus/48000/2\na=fmtp:96 maxplaybackrate=12000\n";
        assert_eq!(with_opus_playback_limit(chosen, 8_000), "a=rtpmap:96 opus/48000/2\na=fmtp:96 maxplaybackrate=12000;sprop-maxcapturerate=8000\n");
        let no_opus = BROWSER_ANSWER.replace("opus", "PCMU");
        assert_eq!(with_opus_playback_limit(&no_opus, 8_000), no_opus, "nothing to limit without Opus");
    }

    #[test]
    fn our_offer_asks_on_its_opus_line_only() {
        let capabilities = crate::sdp::LocalCapabilities::new(vec![Codec::Pcmu, Codec::Opus]);
        let offer = crate::sdp::offer(&capabilities, "192.0.2.1".parse().unwrap(), 4000, 7, 1);
        let limited = limit_opus_playback(offer.clone(), 8_000);
        let audio = &limited.media[0];
        let opus = audio.rtpmaps().into_iter().find(|m| m.encoding.eq_ignore_ascii_case("opus")).unwrap();
        assert_eq!(audio.fmtp(opus.payload_type), Some("minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000"));
        assert_eq!(limited.to_string(), with_opus_playback_limit(&offer.to_string(), 8_000), "nothing else moved");
        assert_eq!((audio.formats.clone(), audio.port), (offer.media[0].formats.clone(), 4000));
    }

    #[test]
    fn the_sending_codec_is_the_first_known_format_of_the_active_audio() {
        let answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 101 0 96\r\n\
c=IN IP4 127.0.0.1\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:96 opus/48000/2\r\n";
        assert_eq!(sending_codec(answer), Some(Codec::Pcmu));
        assert_eq!(sending_codec(BROWSER_ANSWER), Some(Codec::Opus));
        assert_eq!(sending_codec("not sdp"), None);
    }
}
