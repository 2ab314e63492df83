//! One browser leg as a sans-IO state machine: it owns no socket, no task and no clock. The
//! media worker that owns the shared ICE port feeds it datagrams and time, and takes datagrams
//! and events from it; SRTP is applied by the worker through the leg, in the packet's buffer.
//!
//! rtc's peer connection writes the descriptions (codecs, payload numbers, fingerprint, ICE
//! credentials and candidates) and is dropped once they are settled; the connection itself is
//! `transport.rs`, from rtc's ICE agent and DTLS endpoint.

use super::remote::{self, Setup};
use super::transport::{Transport, TransportEvent, TransportSettings};
use super::{candidate_init, engine_error, local_track, media_engine, BrowserCodec, BrowserMedia, LegEvent, WebRtcConfig, WebRtcError};
use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::interceptor_registry::Registry;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// A datagram the leg wants sent from `local` (one of the worker's shared sockets) to `peer`.
pub struct Datagram {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub payload: BytesMut,
}

/// The ICE credentials and host candidates a leg starts with. The ufrag is how the worker's
/// shared port tells this leg's STUN from every other leg's, so the worker chooses it.
pub struct LegIdentity {
    pub ufrag: String,
    pub pwd: String,
    pub ssrc: u32,
    /// The worker's sockets: what the ICE agent sees packets arrive on.
    pub local_addresses: Vec<SocketAddr>,
    pub certificate: super::DtlsCertificate,
}

pub struct WebRtcLeg {
    /// Until the browser's description is applied (an offer waits for its answer).
    negotiation: Option<(RTCPeerConnection, RTCRtpSenderId)>,
    transport: Transport,
    media: BrowserMedia,
    mid: String,
    ufrag: String,
    events: VecDeque<LegEvent>,
    /// Host candidates as browsers are told them (the public address under NAT 1:1).
    advertised: Vec<serde_json::Value>,
    /// Where the last datagram for this leg came from: the browser's end once connected.
    last_peer: Option<SocketAddr>,
}

/// A peer connection that only writes and reads descriptions: no interceptors, since it never
/// carries a packet.
fn build_negotiation(config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<RTCPeerConnection, WebRtcError> {
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_lite(config.lite)
        .with_ice_credentials(identity.ufrag.clone(), identity.pwd.clone())
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![identity.certificate.0.clone()]).build())
        .with_setting_engine(settings)
        .with_media_engine(media_engine()?)
        .with_interceptor_registry(Registry::new())
        .build(now)
        .map_err(engine_error)
}

/// Our host candidates as the ICE agent and our description name them.
fn host_candidates(identity: &LegIdentity, mid: &str) -> Vec<rtc::peer_connection::transport::RTCIceCandidateInit> {
    identity.local_addresses.iter().enumerate().map(|(i, local)| candidate_init(i, *local, mid)).collect()
}

impl WebRtcLeg {
    fn new(pc: RTCPeerConnection, sender: RTCRtpSenderId, media: BrowserMedia, mid: String, config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<WebRtcLeg, WebRtcError> {
        let advertised = identity
            .local_addresses
            .iter()
            .enumerate()
            .map(|(i, local)| {
                let shown = config.public_ip.map_or(*local, |ip| SocketAddr::new(ip, local.port()));
                serde_json::to_value(candidate_init(i, shown, &mid)).unwrap_or_default()
            })
            .collect();
        let lines: Vec<String> = host_candidates(identity, &mid).into_iter().map(|c| c.candidate.trim_start_matches("candidate:").to_string()).collect();
        let settings = TransportSettings { ufrag: identity.ufrag.clone(), pwd: identity.pwd.clone(), lite: config.lite, failed_timeout: config.failed_timeout, certificate: identity.certificate.0.dtls_certificate.clone() };
        let transport = Transport::new(settings, &lines, now)?;
        let mut leg = WebRtcLeg { negotiation: Some((pc, sender)), transport, media, mid, ufrag: identity.ufrag.clone(), events: VecDeque::new(), advertised, last_peer: None };
        leg.describe_candidates(identity)?;
        Ok(leg)
    }

    /// Our host candidates go into our description under the addresses packets arrive on;
    /// browsers learn them (public address substituted) through `LegEvent::LocalCandidate`.
    fn describe_candidates(&mut self, identity: &LegIdentity) -> Result<(), WebRtcError> {
        if let Some((pc, _)) = self.negotiation.as_mut() {
            for candidate in host_candidates(identity, &self.mid) {
                pc.add_local_candidate(candidate).map_err(engine_error)?;
            }
        }
        for candidate in self.advertised.clone() {
            self.events.push_back(LegEvent::LocalCandidate(Some(candidate)));
        }
        self.events.push_back(LegEvent::LocalCandidate(None));
        Ok(())
    }

    fn local_sdp(&self) -> Result<String, WebRtcError> {
        self.negotiation.as_ref().and_then(|(pc, _)| pc.local_description()).map(|d| d.sdp).ok_or_else(|| WebRtcError::Engine("no local description".into()))
    }

    /// Offers a call to a browser with `codec` as ours. Apply the browser's answer with `set_answer`.
    pub fn offer(codec: BrowserCodec, config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<(WebRtcLeg, String), WebRtcError> {
        let mut pc = build_negotiation(config, identity, now)?;
        let sender = pc.add_track(local_track(&codec, identity.ssrc)).map_err(engine_error)?;
        let offer = pc.create_offer(None).map_err(engine_error)?;
        pc.set_local_description(now, offer).map_err(engine_error)?;
        let media = negotiated_media(&mut pc, sender, &codec)?;
        let leg = WebRtcLeg::new(pc, sender, media, "0".to_string(), config, identity, now)?;
        let sdp = leg.local_sdp()?;
        Ok((leg, sdp))
    }

    /// Applies the browser's answer; returns what the leg now sends and receives.
    pub fn set_answer(&mut self, answer_sdp: &str, now: Instant) -> Result<BrowserMedia, WebRtcError> {
        let (mut pc, sender) = self.negotiation.take().ok_or_else(|| WebRtcError::Engine("the answer was already applied".into()))?;
        let answer = RTCSessionDescription::answer(answer_sdp.to_string()).map_err(engine_error)?;
        pc.set_remote_description(now, answer).map_err(engine_error)?;
        let intended = self.media.codec.clone();
        self.media = negotiated_media(&mut pc, sender, &intended)?;
        let remote = remote::parse(answer_sdp)?;
        self.transport.start(&remote, Setup::ActPass, true, now)?;
        Ok(self.media.clone())
    }

    /// Answers a browser's offer; returns the leg and our answer SDP.
    pub fn answer(offer_sdp: &str, forced_codec: Option<&str>, config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<(WebRtcLeg, String), WebRtcError> {
        let (codec, mid) = super::choose_codec(offer_sdp, forced_codec)?;
        let remote = remote::parse(offer_sdp)?;
        let mut pc = build_negotiation(config, identity, now)?;
        let offer = RTCSessionDescription::offer(offer_sdp.to_string()).map_err(engine_error)?;
        pc.set_remote_description(now, offer).map_err(engine_error)?;
        // Added after the remote offer, with a codec from it, so the offered transceiver is
        // reused and the answer is sendrecv.
        let sender = pc.add_track(local_track(&codec, identity.ssrc)).map_err(engine_error)?;
        let answer = pc.create_answer(None).map_err(engine_error)?;
        pc.set_local_description(now, answer).map_err(engine_error)?;
        let media = negotiated_media(&mut pc, sender, &codec)?;
        let mut leg = WebRtcLeg::new(pc, sender, media, mid, config, identity, now)?;
        let sdp = leg.local_sdp()?;
        let ours = remote::parse(&sdp).map_err(|e| WebRtcError::Engine(format!("our answer: {e}")))?;
        leg.negotiation = None;
        leg.transport.start(&remote, ours.setup, false, now)?;
        Ok((leg, sdp))
    }

    pub fn media(&self) -> &BrowserMedia {
        &self.media
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The address the browser's datagrams last came from.
    pub fn last_peer(&self) -> Option<SocketAddr> {
        self.last_peer
    }

    /// A trickled candidate from the browser; `None` is end-of-candidates.
    pub fn add_remote_candidate(&mut self, candidate: Option<serde_json::Value>) -> Result<(), WebRtcError> {
        let Some(candidate) = candidate else { return Ok(()) };
        let init: rtc::peer_connection::transport::RTCIceCandidateInit = serde_json::from_value(candidate).map_err(engine_error)?;
        // Browsers' `.local` (mDNS) candidates cannot be resolved here; their checks to our
        // host candidates reveal them as peer-reflexive anyway.
        if init.candidate.contains(".local ") || init.candidate.is_empty() {
            return Ok(());
        }
        self.transport.add_remote_candidate(&init.candidate);
        Ok(())
    }

    /// A STUN or DTLS datagram that arrived for this leg on the worker's socket `local` from
    /// `peer` (SRTP goes through `unprotect_rtp` / `unprotect_rtcp`).
    pub fn handle_datagram(&mut self, local: SocketAddr, peer: SocketAddr, payload: &[u8], now: Instant) -> Result<(), WebRtcError> {
        self.last_peer = Some(peer);
        let result = if super::is_dtls(payload) { self.transport.handle_dtls(payload, now) } else { self.transport.handle_stun(local, peer, payload, now) };
        self.drain_events();
        result
    }

    pub fn is_connected(&self) -> bool {
        self.transport.is_connected()
    }

    /// (our socket, the browser's address) that media goes by, once connected.
    pub fn route(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.transport.route()
    }

    /// Verifies and decrypts the browser's SRTP (or SRTCP, by `rtcp`) in place.
    pub fn unprotect(&mut self, packet: &mut Vec<u8>, rtcp: bool) -> Result<(), WebRtcError> {
        if rtcp { self.transport.unprotect_rtcp(packet) } else { self.transport.unprotect_rtp(packet) }
    }

    /// Protects our RTP or RTCP in place for the browser. Before DTLS is up there are no keys
    /// and the packet must be dropped: media from SIP often starts first.
    pub fn protect(&mut self, packet: &mut Vec<u8>, rtcp: bool) -> Result<(), WebRtcError> {
        self.transport.protect(packet, rtcp)
    }

    /// The next datagram to send.
    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        self.transport.poll_datagram()
    }

    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.drain_events();
        self.events.pop_front()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.transport.poll_event() {
            self.events.push_back(match event {
                TransportEvent::Connected => LegEvent::Connected,
                TransportEvent::Failed(reason) => LegEvent::Failed(reason.to_string()),
            });
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.transport.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.transport.handle_timeout(now);
        self.drain_events();
    }

    /// Says goodbye to the browser (DTLS close_notify); send what `poll_datagram` then gives.
    pub fn close(&mut self, now: Instant) {
        self.transport.close(now);
    }
}

/// Reads the payload types the sender accepts: `write_rtp` refuses every other number.
fn negotiated_media(pc: &mut RTCPeerConnection, sender: RTCRtpSenderId, intended: &BrowserCodec) -> Result<BrowserMedia, WebRtcError> {
    let mut sender = pc.rtp_sender(sender).ok_or(WebRtcError::NoCommonCodec)?;
    let codecs: Vec<super::SenderCodec> = sender
        .get_parameters()
        .rtp_parameters
        .codecs
        .iter()
        .map(|c| (c.rtp_codec.mime_type.clone(), c.rtp_codec.clock_rate, c.rtp_codec.channels, c.payload_type))
        .collect();
    let media = super::media_from_codecs(&codecs, intended).ok_or(WebRtcError::NoCommonCodec)?;
    tracing::debug!(codec = %media.codec.mime_type, payload_type = media.codec.payload_type, telephone_event = ?media.telephone_event, "browser leg payload types");
    Ok(media)
}
