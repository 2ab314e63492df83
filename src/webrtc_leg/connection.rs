//! One browser leg as a sans-IO state machine over webrtc-rs's `rtc` peer connection: it owns no
//! socket, no task and no clock. The media worker that owns the shared ICE port feeds it
//! datagrams and time, and takes datagrams, decrypted RTP and events from it.

use super::{candidate_init, engine_error, local_track, media_engine, BrowserCodec, BrowserMedia, LegEvent, WebRtcConfig, WebRtcError};
use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::interceptor_registry::{configure_rtcp_reports, Registry};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
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
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    ssrc: u32,
    media: BrowserMedia,
    mid: String,
    ufrag: String,
    connected: bool,
    events: VecDeque<LegEvent>,
    /// Host candidates as browsers are told them (the public address under NAT 1:1).
    advertised: Vec<serde_json::Value>,
    /// Whether our candidates were already announced (after our description is set).
    announced: bool,
    /// Where the last datagram for this leg came from: the browser's end once connected.
    last_peer: Option<SocketAddr>,
    /// Datagrams taken from the connection to see whether a DTLS record was answered.
    held: VecDeque<Datagram>,
}

fn build_connection(config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<RTCPeerConnection, WebRtcError> {
    let engine = media_engine()?;
    // RTCP sender and receiver reports only: the quality figures need them. NACK would buffer
    // every sent packet for retransmissions that audio (with FEC and PLC) does not use.
    let registry = configure_rtcp_reports(Registry::new());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_lite(config.lite)
        .with_ice_credentials(identity.ufrag.clone(), identity.pwd.clone())
        .with_ice_timeouts(Some(config.failed_timeout / 3), Some(config.failed_timeout), None)
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![identity.certificate.0.clone()]).build())
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(engine_error)
}

impl WebRtcLeg {
    fn new(pc: RTCPeerConnection, sender: RTCRtpSenderId, media: BrowserMedia, mid: String, config: &WebRtcConfig, identity: &LegIdentity) -> WebRtcLeg {
        let advertised = identity
            .local_addresses
            .iter()
            .enumerate()
            .map(|(i, local)| {
                let shown = config.public_ip.map_or(*local, |ip| SocketAddr::new(ip, local.port()));
                serde_json::to_value(candidate_init(i, shown, &mid)).unwrap_or_default()
            })
            .collect();
        WebRtcLeg { pc, sender, ssrc: identity.ssrc, media, mid, ufrag: identity.ufrag.clone(), connected: false, events: VecDeque::new(), advertised, announced: false, last_peer: None, held: VecDeque::new() }
    }

    /// Our host candidates go to the ICE agent under the addresses packets arrive on; browsers
    /// learn them (public address substituted) through `LegEvent::LocalCandidate`.
    fn add_local_candidates(&mut self, identity: &LegIdentity) -> Result<(), WebRtcError> {
        for (i, local) in identity.local_addresses.iter().enumerate() {
            self.pc.add_local_candidate(candidate_init(i, *local, &self.mid)).map_err(engine_error)?;
        }
        Ok(())
    }

    fn announce_candidates(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        for candidate in self.advertised.clone() {
            self.events.push_back(LegEvent::LocalCandidate(Some(candidate)));
        }
        self.events.push_back(LegEvent::LocalCandidate(None));
    }

    /// Offers a call to a browser with `codec` as ours. Apply the browser's answer with `set_answer`.
    pub fn offer(codec: BrowserCodec, config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<(WebRtcLeg, String), WebRtcError> {
        let mut pc = build_connection(config, identity, now)?;
        let sender = pc.add_track(local_track(&codec, identity.ssrc)).map_err(engine_error)?;
        let offer = pc.create_offer(None).map_err(engine_error)?;
        pc.set_local_description(now, offer).map_err(engine_error)?;
        let media = negotiated_media(&mut pc, sender, &codec)?;
        let mut leg = WebRtcLeg::new(pc, sender, media, "0".to_string(), config, identity);
        leg.add_local_candidates(identity)?;
        let sdp = leg.pc.local_description().map(|d| d.sdp).ok_or_else(|| WebRtcError::Engine("no local description".into()))?;
        leg.announce_candidates();
        Ok((leg, sdp))
    }

    /// Applies the browser's answer; returns what the leg now sends and receives.
    pub fn set_answer(&mut self, answer_sdp: &str, now: Instant) -> Result<BrowserMedia, WebRtcError> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_string()).map_err(engine_error)?;
        self.pc.set_remote_description(now, answer).map_err(engine_error)?;
        let intended = self.media.codec.clone();
        self.media = negotiated_media(&mut self.pc, self.sender, &intended)?;
        Ok(self.media.clone())
    }

    /// Answers a browser's offer; returns the leg and our answer SDP.
    pub fn answer(offer_sdp: &str, forced_codec: Option<&str>, config: &WebRtcConfig, identity: &LegIdentity, now: Instant) -> Result<(WebRtcLeg, String), WebRtcError> {
        let (codec, mid) = super::choose_codec(offer_sdp, forced_codec)?;
        let mut pc = build_connection(config, identity, now)?;
        let offer = RTCSessionDescription::offer(offer_sdp.to_string()).map_err(engine_error)?;
        pc.set_remote_description(now, offer).map_err(engine_error)?;
        // Added after the remote offer, with a codec from it, so the offered transceiver is
        // reused and the answer is sendrecv.
        let sender = pc.add_track(local_track(&codec, identity.ssrc)).map_err(engine_error)?;
        let answer = pc.create_answer(None).map_err(engine_error)?;
        pc.set_local_description(now, answer).map_err(engine_error)?;
        let media = negotiated_media(&mut pc, sender, &codec)?;
        let mut leg = WebRtcLeg::new(pc, sender, media, mid, config, identity);
        leg.add_local_candidates(identity)?;
        let sdp = leg.pc.local_description().map(|d| d.sdp).ok_or_else(|| WebRtcError::Engine("no local description".into()))?;
        leg.announce_candidates();
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
        let mut init: rtc::peer_connection::transport::RTCIceCandidateInit = serde_json::from_value(candidate).map_err(engine_error)?;
        if init.sdp_mid.as_deref().is_none_or(str::is_empty) {
            init.sdp_mid = Some(self.mid.clone());
        }
        // Browsers' `.local` (mDNS) candidates cannot be resolved here; their checks to our
        // host candidates reveal them as peer-reflexive anyway.
        if init.candidate.contains(".local ") {
            return Ok(());
        }
        self.pc.add_remote_candidate(init).map_err(engine_error)
    }

    /// A datagram that arrived for this leg on the worker's socket `local` from `peer`.
    pub fn handle_datagram(&mut self, local: SocketAddr, peer: SocketAddr, payload: &[u8], now: Instant) -> Result<(), WebRtcError> {
        self.last_peer = Some(peer);
        let transport = TransportContext { local_addr: local, peer_addr: peer, transport_protocol: TransportProtocol::UDP, ecn: None };
        let (was_connected, events_before) = (self.connected, self.events.len());
        let result = self.pc.handle_read(TaggedBytesMut { now, transport, message: BytesMut::from(payload) }).map_err(engine_error);
        self.drain_events();
        result?;
        // Once DTLS is up, a genuine record (the peer repeating its final flight, an alert)
        // makes the association answer or change state; rtc drops any other without a trace.
        if was_connected && super::is_dtls(payload) {
            while let Some(message) = self.pc.poll_write() {
                self.held.push_back(Datagram { local: message.transport.local_addr, peer: message.transport.peer_addr, payload: message.message });
            }
            if self.held.is_empty() && self.events.len() == events_before && self.connected {
                return Err(WebRtcError::DtlsDiscarded);
            }
        }
        Ok(())
    }

    /// The next decrypted RTP packet from the browser, written into `buffer` (extensions
    /// stripped); returns its length. RTCP is consumed by the connection's report interceptors.
    pub fn poll_rtp(&mut self, buffer: &mut [u8]) -> Option<usize> {
        while let Some(message) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message.message {
                let header = super::header_of(&packet);
                if let Ok(len) = crate::media::rtp::write_packet(buffer, &header, &packet.payload) {
                    return Some(len);
                }
            }
        }
        None
    }

    /// The next datagram to send.
    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        if let Some(held) = self.held.pop_front() {
            return Some(held);
        }
        let message = self.pc.poll_write()?;
        Some(Datagram { local: message.transport.local_addr, peer: message.transport.peer_addr, payload: message.message })
    }

    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.drain_events();
        self.events.pop_front()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                self.connected = state == RTCPeerConnectionState::Connected;
                match state {
                    RTCPeerConnectionState::Connected => self.events.push_back(LegEvent::Connected),
                    RTCPeerConnectionState::Failed => self.events.push_back(LegEvent::Failed("ice_failed".into())),
                    RTCPeerConnectionState::Closed => self.events.push_back(LegEvent::Failed("closed".into())),
                    _ => {}
                }
            }
        }
    }

    /// Sends one RTP packet (our bytes) to the browser under the leg's SSRC. Before DTLS is up
    /// the packet is dropped here: media from SIP often starts first.
    pub fn send_rtp(&mut self, packet: &[u8], now: Instant) -> Result<(), WebRtcError> {
        if !self.connected {
            return Err(WebRtcError::NotConnected);
        }
        let rtp_packet = super::track_packet(packet, self.ssrc)?;
        let mut sender = self.pc.rtp_sender(self.sender).ok_or(WebRtcError::NotConnected)?;
        sender.write_rtp(now, rtp_packet).map_err(engine_error)
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            tracing::debug!(error = %e, "browser leg timer");
        }
        self.drain_events();
    }

    pub fn close(&mut self) {
        let _ = self.pc.close();
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
