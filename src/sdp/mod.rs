//! SDP (RFC 8866, RFC 4566) and offer/answer (RFC 3264) for the audio of both legs.
//!
//! The model keeps every line it does not interpret, so an SDP we pass on or echo loses nothing.
//! `parse.rs` turns text into the model and back; `negotiate.rs` answers offers, builds ours and
//! reads answers. Everything here works on text that came from the network: a bad SDP is an
//! `SdpError` (the call layer answers 488), never a panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

mod negotiate;
mod parse;
mod playback;
#[cfg(test)]
mod tests;

use parse::{digits, parse_rtpmap, payload_type, static_payload};

pub use negotiate::{
    answer, is_same_version, offer, read_answer, with_direction, Codec, LocalCapabilities, NegotiatedAudio,
    NegotiatedCodec,
};
pub use playback::{limit_opus_playback, playback_limit, sending_codec, with_opus_playback_limit};

/// RTP payload types are 7 bits (RFC 3550 §5.1).
const PAYLOAD_TYPES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not UTF-8 (RFC 8866 §5 allows only UTF-8 text).
    NotUtf8,
    /// The first line is not `v=0`.
    MissingVersion,
    MissingOrigin,
    /// A line we could not read; `line` counts from 1 as in the body.
    Syntax { line: usize, reason: &'static str },
    /// An active media section (index from 0) with no `c=` at media or session level.
    NoConnection { media: usize },
    /// No active RTP audio m-line to negotiate.
    NoAudio,
    NoCommonCodec,
    /// The answer put port 0 on our audio m-line.
    AudioDeclined,
    /// The answer does not line up with our offer (RFC 3264 §6).
    BadAnswer(&'static str),
    /// The answer chose a format our offer did not contain.
    CodecNotOffered { payload_type: u8, encoding: String },
    /// The peer offered RTP/SAVP to a profile whose `srtp` is `off`.
    SrtpNotAllowed,
    /// The peer offered or answered plain RTP where the profile's `srtp` is `mandatory`.
    SrtpRequired,
    /// SRTP is needed but no `a=crypto` line is usable (unknown suites, MKI, bad keys...); the
    /// reason never quotes a key.
    NoUsableCrypto(String),
}

impl SdpError {
    /// The SIP status that refuses an offer for this reason: all of them are "not acceptable
    /// here" (RFC 3261 §21.4.26), whether the codecs, the syntax or the security do not fit.
    pub fn sip_status(&self) -> u16 {
        488
    }

    /// Short words for the call record and the browser.
    pub fn cause(&self) -> &'static str {
        match self {
            SdpError::NoCommonCodec | SdpError::CodecNotOffered { .. } => "no common codec",
            SdpError::SrtpNotAllowed => "SRTP offered but not allowed",
            SdpError::SrtpRequired => "SRTP required but not offered",
            SdpError::NoUsableCrypto(_) => "no usable SRTP crypto suite",
            SdpError::NoAudio | SdpError::AudioDeclined => "no audio stream",
            _ => "unusable SDP",
        }
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::NotUtf8 => write!(f, "SDP is not UTF-8"),
            SdpError::MissingVersion => write!(f, "SDP does not start with v=0"),
            SdpError::MissingOrigin => write!(f, "SDP has no o= line"),
            SdpError::Syntax { line, reason } => write!(f, "SDP line {line}: {reason}"),
            SdpError::NoConnection { media } => write!(f, "SDP m-line {media} has no connection address"),
            SdpError::NoAudio => write!(f, "SDP has no active RTP audio stream"),
            SdpError::NoCommonCodec => write!(f, "no audio codec in common"),
            SdpError::AudioDeclined => write!(f, "the answer declined the audio stream"),
            SdpError::BadAnswer(reason) => write!(f, "SDP answer does not match the offer: {reason}"),
            SdpError::CodecNotOffered { payload_type, encoding } => {
                write!(f, "the answer chose {encoding} (payload type {payload_type}), which was not offered")
            }
            SdpError::SrtpNotAllowed => write!(f, "RTP/SAVP offered, but SRTP is off for this peer"),
            SdpError::SrtpRequired => write!(f, "plain RTP offered, but SRTP is mandatory for this peer"),
            SdpError::NoUsableCrypto(reason) => write!(f, "SRTP: {reason}"),
        }
    }
}

impl std::error::Error for SdpError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    pub fn of(ip: IpAddr) -> AddrType {
        if ip.is_ipv4() {
            AddrType::Ip4
        } else {
            AddrType::Ip6
        }
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == AddrType::Ip4 { "IP4" } else { "IP6" })
    }
}

/// `o=`; the network type is always `IN`, the only one RFC 8866 defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub version: u64,
    pub addr_type: AddrType,
    pub address: String,
}

/// `c=`. The address stays text: it may be an FQDN or carry a multicast TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr_type: AddrType,
    pub address: String,
}

impl Connection {
    pub fn from_ip(ip: IpAddr) -> Connection {
        Connection { addr_type: AddrType::of(ip), address: ip.to_string() }
    }
}

/// `t=` with the `r=` lines that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub value: String,
    pub repeats: Vec<String>,
}

impl Timing {
    /// RFC 3264 §5: offer/answer sessions are unbounded.
    pub fn unbounded() -> Timing {
        Timing { value: "0 0".to_string(), repeats: Vec::new() }
    }
}

/// A line we keep but do not interpret (`i=`, `k=`, `z=`, unknown types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpLine {
    pub kind: char,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Attribute {
        Attribute { name: name.to_string(), value: None }
    }

    pub fn new(name: &str, value: impl Into<String>) -> Attribute {
        Attribute { name: name.to_string(), value: Some(value.into()) }
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    /// `i=`, `u=`, `e=`, `p=`: printed before `c=` as RFC 8866 §5 orders them.
    pub extra_head: Vec<SdpLine>,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    pub timing: Vec<Timing>,
    /// `z=`, `k=` and unknown lines: printed after `t=`.
    pub extra_tail: Vec<SdpLine>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        parse::parse(text)
    }

    /// For bodies straight off the wire, where UTF-8 is not yet known.
    pub fn parse_bytes(body: &[u8]) -> Result<SessionDescription, SdpError> {
        std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8).and_then(parse::parse)
    }

    fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.is(name))
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;
    fn from_str(text: &str) -> Result<Self, SdpError> {
        parse::parse(text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn from_flags(send: bool, receive: bool) -> Direction {
        match (send, receive) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: their sendonly is our recvonly.
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both sides allow.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(self.sends() && other.sends(), self.receives() && other.receives())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(attribute: &Attribute) -> Option<Direction> {
        [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive]
            .into_iter()
            .find(|d| attribute.value.is_none() && attribute.is(d.as_str()))
    }
}

/// Where a media section says it receives, after `c=` resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionAddress<'a> {
    Ip(IpAddr),
    /// `0.0.0.0` (or `::`) without ICE: RFC 2543 hold, send nothing there (RFC 3264 §8.4).
    Hold,
    /// `0.0.0.0` with ICE: the real address comes from candidates (RFC 8840 §4.2), not a hold.
    FromIce,
    /// A host name; resolving it is I/O, so it is the caller's.
    Host(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u8,
}

impl RtpMap {
    fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub kind: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub protocol: String,
    pub formats: Vec<String>,
    /// `i=`: printed right after `m=`.
    pub extra_head: Vec<SdpLine>,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    /// `k=` and unknown lines: printed before the attributes.
    pub extra_tail: Vec<SdpLine>,
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// The RTP profiles we can carry; TCP/RTP and non-RTP transports are declined.
    pub fn is_rtp(&self) -> bool {
        ["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"]
            .iter()
            .any(|p| self.protocol.eq_ignore_ascii_case(p))
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.is(name))
    }

    fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes.iter().filter(move |a| a.is(name)).filter_map(|a| a.value.as_deref())
    }

    /// One entry per RTP format in m-line order, duplicates dropped. Static payload types without
    /// an `a=rtpmap` take their RFC 3551 meaning; dynamic ones without (or with a broken) one are
    /// left out, since nothing says what they are.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        // A table instead of a search per format: a hostile m-line may list thousands of formats.
        let mut table: Vec<Option<RtpMap>> = vec![None; PAYLOAD_TYPES];
        for map in self.attribute_values("rtpmap").filter_map(parse_rtpmap) {
            if let Some(slot @ None) = table.get_mut(usize::from(map.payload_type)) {
                *slot = Some(map);
            }
        }
        let mut seen = [false; PAYLOAD_TYPES];
        let mut out = Vec::new();
        for pt in self.formats.iter().filter_map(|f| payload_type(f)) {
            match seen.get_mut(usize::from(pt)) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            let explicit = table.get_mut(usize::from(pt)).and_then(Option::take);
            if let Some(map) = explicit.or_else(|| static_payload(pt)) {
                out.push(map);
            }
        }
        out
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|value| {
            let (format, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
            (payload_type(format) == Some(pt)).then(|| params.trim())
        })
    }

    /// Milliseconds. Some phones send `20.0`; the fraction is dropped.
    pub fn ptime(&self) -> Option<u32> {
        let value = self.attribute_values("ptime").next()?;
        let whole = value.split('.').next().unwrap_or(value);
        digits(whole).filter(|&ms| ms > 0)
    }

    /// Media level wins over session level; no attribute means sendrecv (RFC 3264 §5.1).
    pub fn direction(&self, session: &SessionDescription) -> Direction {
        self.attributes
            .iter()
            .chain(session.attributes.iter())
            .find_map(Direction::from_attribute)
            .unwrap_or(Direction::SendRecv)
    }

    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    /// `a=crypto` values (RFC 4568) in offer order; they carry keys, so do not log them.
    pub fn crypto_lines(&self) -> Vec<&str> {
        self.attribute_values("crypto").collect()
    }

    pub fn connection<'a>(&'a self, session: &'a SessionDescription) -> Option<&'a Connection> {
        self.connection.as_ref().or(session.connection.as_ref())
    }

    pub fn connection_address<'a>(&'a self, session: &'a SessionDescription) -> Option<ConnectionAddress<'a>> {
        let address = self.connection(session)?.address.as_str();
        // A multicast address carries /ttl or /count; the host part is what routes.
        let host = address.split('/').next().unwrap_or(address);
        Some(match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() && self.uses_ice(session) => ConnectionAddress::FromIce,
            Ok(ip) if ip.is_unspecified() => ConnectionAddress::Hold,
            Ok(ip) => ConnectionAddress::Ip(ip),
            Err(_) => ConnectionAddress::Host(host),
        })
    }

    /// Where to send RTP, when the SDP says so without DNS or ICE.
    pub fn rtp_address(&self, session: &SessionDescription) -> Option<SocketAddr> {
        match self.connection_address(session)? {
            ConnectionAddress::Ip(ip) if self.port != 0 => Some(SocketAddr::new(ip, self.port)),
            _ => None,
        }
    }

    fn uses_ice(&self, session: &SessionDescription) -> bool {
        self.attribute("ice-ufrag").or_else(|| session.attribute("ice-ufrag")).is_some()
    }
}
