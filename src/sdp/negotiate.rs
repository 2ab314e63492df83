//! Offer/answer for the one audio stream of a call (RFC 3264). Every other m-line is declined:
//! the gateway bridges audio only.
//!
//! What this does not write: `a=crypto` (keys come from `media::srtp`), ICE and DTLS attributes
//! (the WebRTC leg's stack writes its own). The caller adds those to the m-line at
//! `NegotiatedAudio::media_index`, whose protocol already matches the offer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{
    Attribute, Connection, ConnectionAddress, Direction, MediaDescription, Origin, RtpMap, SdpError,
    SessionDescription,
};

const OPUS_PT: u8 = 111;
const TELEPHONE_EVENT_8K_PT: u8 = 101;
const TELEPHONE_EVENT_48K_PT: u8 = 102;
/// What we ask to receive: 10 ms frames allowed, in-band FEC for lossy links (RFC 7587 §6.1).
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// DTMF 0-9 * # A-D and flash (RFC 4733 §3.2); other events are dropped by the media layer.
const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// The codecs the gateway can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl Codec {
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock, which for G.722 is 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub fn clock_rate(self) -> u32 {
        if self == Codec::Opus {
            48_000
        } else {
            8_000
        }
    }

    /// The RFC 3551 number, for the codecs that have one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// `opus/48000/2` whatever the real channel count (RFC 7587 §7); the rest are mono.
    fn rtpmap_value(self, pt: u8) -> String {
        match self {
            Codec::Opus => format!("{pt} opus/48000/2"),
            _ => format!("{pt} {}/{}", self.encoding_name(), self.clock_rate()),
        }
    }

    /// Opus is recognised whatever channel count the peer wrote, since some omit or get it wrong.
    pub fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]
            .into_iter()
            .find(|c| map.encoding.eq_ignore_ascii_case(c.encoding_name()) && map.clock_rate == c.clock_rate())?;
        (codec == Codec::Opus || map.channels == 1).then_some(codec)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCapabilities {
    /// Preference order, used for our offers. Answers keep the offer's order (RFC 3264 §6.1).
    pub codecs: Vec<Codec>,
    pub telephone_event: bool,
    pub ptime: Option<u32>,
    /// What we want for ourselves: `SendOnly` while we hold the peer (RFC 3264 §8.4).
    pub direction: Direction,
}

impl LocalCapabilities {
    pub fn new(codecs: Vec<Codec>) -> LocalCapabilities {
        LocalCapabilities { codecs, telephone_event: true, ptime: None, direction: Direction::SendRecv }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    pub codec: Codec,
    /// The remote's number for it: what we put in the RTP we send.
    pub payload_type: u8,
    pub clock_rate: u32,
    /// What the remote wants to receive; for Opus, 2 only with `stereo=1` (RFC 7587 §7.1).
    pub channels: u8,
    /// The remote's parameters, which bind what we send.
    pub fmtp: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// In the order the remote listed them; the first is what to send.
    pub codecs: Vec<NegotiatedCodec>,
    /// Payload type and clock rate.
    pub telephone_event: Option<(u8, u32)>,
    /// None on hold, with ICE, or with a host name for an address.
    pub remote: Option<SocketAddr>,
    /// The remote's side: `SendOnly` means it sends and we must not send to it.
    pub direction: Direction,
    /// The remote's packetisation wish, in ms.
    pub ptime: Option<u32>,
    pub rtcp_mux: bool,
    /// The remote's `a=crypto` values, for `media::srtp::sdes` to choose from.
    pub crypto: Vec<String>,
    /// The audio m-line in both offer and answer.
    pub media_index: usize,
}

/// By hand, because `crypto` holds SRTP master keys and this struct is the kind that gets logged.
impl fmt::Debug for NegotiatedAudio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NegotiatedAudio")
            .field("codecs", &self.codecs)
            .field("telephone_event", &self.telephone_event)
            .field("remote", &self.remote)
            .field("direction", &self.direction)
            .field("ptime", &self.ptime)
            .field("rtcp_mux", &self.rtcp_mux)
            .field("crypto", &format_args!("<{} redacted>", self.crypto.len()))
            .field("media_index", &self.media_index)
            .finish()
    }
}

/// Answers a remote offer (RFC 3264 §6): the first active RTP audio m-line gets the codecs we
/// share, in the offer's order and with the offer's payload types; every other m-line is declined.
/// The origin version is `session_id`: an answer to a later offer in the same dialog must carry a
/// higher version than our previous SDP, so the caller raises `origin.version` then.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalCapabilities,
    our_address: IpAddr,
    our_port: u16,
    session_id: u64,
) -> Result<(SessionDescription, NegotiatedAudio), SdpError> {
    let (index, offered) = active_audio(offer).ok_or(SdpError::NoAudio)?;
    let maps = offered.rtpmaps();
    let mut codecs: Vec<NegotiatedCodec> = Vec::new();
    for map in &maps {
        if let Some(codec) = Codec::from_rtpmap(map) {
            if local.codecs.contains(&codec) && !codecs.iter().any(|c| c.codec == codec) {
                codecs.push(negotiated(codec, map, offered.fmtp(map.payload_type)));
            }
        }
    }
    let lead_clock = codecs.first().ok_or(SdpError::NoCommonCodec)?.clock_rate;
    let event = if local.telephone_event { pick_telephone_event(&maps, lead_clock) } else { None };
    let remote_direction = effective_direction(offer, offered);
    let our_direction = remote_direction.reversed().intersect(local.direction);

    let mut attributes = Vec::new();
    let mut formats = Vec::new();
    for c in &codecs {
        formats.push(c.payload_type.to_string());
        attributes.push(Attribute::new("rtpmap", c.codec.rtpmap_value(c.payload_type)));
        if c.codec == Codec::Opus {
            attributes.push(Attribute::new("fmtp", format!("{} {OPUS_FMTP}", c.payload_type)));
        }
    }
    if let Some(event) = event {
        let pt = event.payload_type;
        formats.push(pt.to_string());
        attributes.push(Attribute::new("rtpmap", format!("{pt} telephone-event/{}", event.clock_rate)));
        let range = offered.fmtp(pt).filter(|r| !r.is_empty()).unwrap_or(TELEPHONE_EVENT_FMTP);
        attributes.push(Attribute::new("fmtp", format!("{pt} {range}")));
    }
    if let Some(ptime) = local.ptime {
        attributes.push(Attribute::new("ptime", ptime.to_string()));
    }
    attributes.push(Attribute::flag(our_direction.as_str()));
    if offered.rtcp_mux() {
        attributes.push(Attribute::flag("rtcp-mux"));
    }
    attributes.extend(offered.attribute("mid").cloned());

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| if i == index { accepted(m, our_port, formats.clone(), attributes.clone()) } else { declined(m) })
        .collect();
    let mut sdp = session(our_address, session_id, session_id, media);
    sdp.attributes.extend(bundle_group(offer, offered));

    let negotiated = NegotiatedAudio {
        codecs,
        telephone_event: event.map(|e| (e.payload_type, e.clock_rate)),
        remote: offered.rtp_address(offer),
        direction: our_direction.reversed(),
        ptime: offered.ptime(),
        rtcp_mux: offered.rtcp_mux(),
        crypto: offered.crypto_lines().into_iter().map(str::to_string).collect(),
        media_index: index,
    };
    Ok((sdp, negotiated))
}

/// Our offer: one RTP/AVP audio m-line in our preference order. The caller switches the
/// protocol to RTP/SAVP and adds `a=crypto` when the trunk wants SRTP.
pub fn offer(
    local: &LocalCapabilities,
    our_address: IpAddr,
    our_port: u16,
    session_id: u64,
    version: u64,
) -> SessionDescription {
    let mut codecs: Vec<Codec> = Vec::new();
    for &codec in &local.codecs {
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    // An m-line needs a format; G.711 µ-law is the one every SIP device has (RFC 3551 §4.5.14).
    if codecs.is_empty() {
        codecs.push(Codec::Pcmu);
    }
    let mut formats = Vec::new();
    let mut attributes = Vec::new();
    for &codec in &codecs {
        let pt = codec.static_payload_type().unwrap_or(OPUS_PT);
        formats.push(pt.to_string());
        attributes.push(Attribute::new("rtpmap", codec.rtpmap_value(pt)));
        if codec == Codec::Opus {
            attributes.push(Attribute::new("fmtp", format!("{pt} {OPUS_FMTP}")));
        }
    }
    if local.telephone_event {
        // One telephone-event per clock in use: events share the audio stream's timestamps.
        for (clock, pt) in [(8_000, TELEPHONE_EVENT_8K_PT), (48_000, TELEPHONE_EVENT_48K_PT)] {
            if codecs.iter().any(|c| c.clock_rate() == clock) {
                formats.push(pt.to_string());
                attributes.push(Attribute::new("rtpmap", format!("{pt} telephone-event/{clock}")));
                attributes.push(Attribute::new("fmtp", format!("{pt} {TELEPHONE_EVENT_FMTP}")));
            }
        }
    }
    if let Some(ptime) = local.ptime {
        attributes.push(Attribute::new("ptime", ptime.to_string()));
    }
    attributes.push(Attribute::flag(local.direction.as_str()));
    let media = MediaDescription { attributes, ..MediaDescription::new("audio", our_port, "RTP/AVP", formats) };
    session(our_address, session_id, version, vec![media])
}

/// Reads the answer to `our_offer`. Payload types may differ from ours (RFC 3264 §6.1 only says
/// SHOULD), but every codec must be one we offered.
pub fn read_answer(our_offer: &SessionDescription, answer: &SessionDescription) -> Result<NegotiatedAudio, SdpError> {
    if answer.media.len() != our_offer.media.len() {
        return Err(SdpError::BadAnswer("the number of m-lines differs from the offer"));
    }
    let (index, ours) = active_audio(our_offer).ok_or(SdpError::NoAudio)?;
    let theirs = answer.media.get(index).ok_or(SdpError::BadAnswer("the audio m-line is missing"))?;
    if !theirs.kind.eq_ignore_ascii_case(&ours.kind) {
        return Err(SdpError::BadAnswer("the audio m-line changed media type"));
    }
    if theirs.port == 0 {
        return Err(SdpError::AudioDeclined);
    }
    let offered = ours.rtpmaps();
    let answered = theirs.rtpmaps();
    let mut codecs: Vec<NegotiatedCodec> = Vec::new();
    let mut telephone_event = None;
    for format in &theirs.formats {
        let pt = super::payload_type(format).ok_or(SdpError::BadAnswer("an audio format is not an RTP payload type"))?;
        // A dynamic type the answer lists without rtpmap can only mean what we offered under it.
        let map = answered.iter().chain(offered.iter()).find(|m| m.payload_type == pt);
        let not_offered = || SdpError::CodecNotOffered {
            payload_type: pt,
            encoding: map.map_or_else(|| "an unknown format".to_string(), |m| m.encoding.chars().take(32).collect()),
        };
        let map = map.ok_or_else(not_offered)?;
        if map.is_telephone_event() {
            if !offered.iter().any(|o| o.is_telephone_event() && o.clock_rate == map.clock_rate) {
                return Err(not_offered());
            }
            telephone_event = telephone_event.or(Some((pt, map.clock_rate)));
            continue;
        }
        let codec = Codec::from_rtpmap(map)
            .filter(|&c| offered.iter().any(|o| Codec::from_rtpmap(o) == Some(c)))
            .ok_or_else(not_offered)?;
        if !codecs.iter().any(|c| c.codec == codec) {
            codecs.push(negotiated(codec, map, theirs.fmtp(pt)));
        }
    }
    if codecs.is_empty() {
        return Err(SdpError::NoCommonCodec);
    }
    // A peer that answers sendrecv to our sendonly still gets nothing from us (RFC 3264 §6.1).
    let direction = effective_direction(answer, theirs).intersect(ours.direction(our_offer).reversed());
    Ok(NegotiatedAudio {
        codecs,
        telephone_event,
        remote: theirs.rtp_address(answer),
        direction,
        ptime: theirs.ptime(),
        rtcp_mux: theirs.rtcp_mux() && ours.rtcp_mux(),
        crypto: theirs.crypto_lines().into_iter().map(str::to_string).collect(),
        media_index: index,
    })
}

/// Hold and resume (RFC 3264 §8.4): the same SDP with a new direction on every active m-line
/// and the version raised, so the peer sees a change.
pub fn with_direction(sdp: &SessionDescription, direction: Direction) -> SessionDescription {
    let mut out = sdp.clone();
    out.origin.version = out.origin.version.wrapping_add(1);
    out.attributes.retain(|a| Direction::from_attribute(a).is_none());
    for media in out.media.iter_mut().filter(|m| m.port != 0) {
        media.attributes.retain(|a| Direction::from_attribute(a).is_none());
        media.attributes.push(Attribute::flag(direction.as_str()));
    }
    out
}

/// RFC 3264 §8: a changed SDP must carry a new version, so an identical `o=` line means the
/// re-offer repeats the last one and needs no renegotiation.
pub fn is_same_version(a: &SessionDescription, b: &SessionDescription) -> bool {
    a.origin == b.origin
}

fn active_audio(sdp: &SessionDescription) -> Option<(usize, &MediaDescription)> {
    sdp.media.iter().enumerate().find(|(_, m)| m.port != 0 && m.is_audio() && m.is_rtp())
}

/// The stated direction, minus receiving when `c=0.0.0.0` says "do not send here" (RFC 2543).
fn effective_direction(sdp: &SessionDescription, media: &MediaDescription) -> Direction {
    let stated = media.direction(sdp);
    match media.connection_address(sdp) {
        Some(ConnectionAddress::Hold) => stated.intersect(Direction::SendOnly),
        _ => stated,
    }
}

fn negotiated(codec: Codec, map: &RtpMap, fmtp: Option<&str>) -> NegotiatedCodec {
    let stereo = codec == Codec::Opus && fmtp.is_some_and(|f| fmtp_param(f, "stereo") == Some("1"));
    NegotiatedCodec {
        codec,
        payload_type: map.payload_type,
        clock_rate: codec.clock_rate(),
        channels: if stereo { 2 } else { 1 },
        fmtp: fmtp.filter(|f| !f.is_empty()).map(str::to_string),
    }
}

fn fmtp_param<'a>(fmtp: &'a str, name: &str) -> Option<&'a str> {
    let mut params = fmtp.split(';').filter_map(|p| p.split_once('='));
    params.find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// The offerer's telephone-event at the clock of the codec we will send, so event timestamps
/// run with the audio's (RFC 4733 §2.1); any offered one otherwise.
fn pick_telephone_event(maps: &[RtpMap], clock_rate: u32) -> Option<&RtpMap> {
    let mut events = maps.iter().filter(|m| m.is_telephone_event());
    let first = events.clone().next();
    events.find(|m| m.clock_rate == clock_rate).or(first)
}

fn accepted(offered: &MediaDescription, port: u16, formats: Vec<String>, attrs: Vec<Attribute>) -> MediaDescription {
    MediaDescription { port, formats, attributes: attrs, ..declined(offered) }
}

/// RFC 3264 §6: port 0, formats as offered. The mid stays so BUNDLE peers can match lines.
fn declined(offered: &MediaDescription) -> MediaDescription {
    let attributes = offered.attribute("mid").cloned().into_iter().collect();
    let formats = offered.formats.clone();
    MediaDescription { attributes, ..MediaDescription::new(&offered.kind, 0, &offered.protocol, formats) }
}

/// A BUNDLE group holding only the audio mid, when the offer bundled it (RFC 8843 §7.3).
fn bundle_group(offer: &SessionDescription, audio: &MediaDescription) -> Option<Attribute> {
    let mid = audio.attribute("mid")?.value.as_deref()?;
    let group = offer.attributes.iter().filter(|a| a.is("group")).filter_map(|a| a.value.as_deref());
    let bundled = group.filter_map(|g| g.strip_prefix("BUNDLE")).any(|mids| mids.split_whitespace().any(|m| m == mid));
    bundled.then(|| Attribute::new("group", format!("BUNDLE {mid}")))
}

fn session(address: IpAddr, session_id: u64, version: u64, media: Vec<MediaDescription>) -> SessionDescription {
    let connection = Connection::from_ip(address);
    let origin = Origin {
        username: "-".to_string(),
        session_id,
        version,
        addr_type: connection.addr_type,
        address: connection.address.clone(),
    };
    SessionDescription { connection: Some(connection), media, ..SessionDescription::new(origin) }
}
