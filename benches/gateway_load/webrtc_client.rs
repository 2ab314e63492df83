//! The load tool's stand-in for a browser: a webrtc-rs 0.21 async peer connection (the stack the
//! gateway used before its media workers), so DTLS-SRTP and ICE toward the gateway are real and
//! independent of the gateway's own sans-IO legs.

use rtc::ice::mdns::MulticastDnsMode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCIceCandidateType, RTCSessionDescription, Registry, SettingEngineBuilder,
};

pub use sipbridge::webrtc_leg::{BrowserCodec, BrowserMedia, WebRtcError};
use sipbridge::webrtc_leg::{media_engine, media_from_codecs, SenderCodec};

fn engine_error(e: impl std::fmt::Display) -> WebRtcError {
    WebRtcError::Engine(e.to_string())
}


/// What the leg reports.
#[derive(Debug)]
pub enum LegEvent {
    /// An RTP packet from the browser, already decrypted, extensions stripped.
    Rtp(Vec<u8>),
    /// A local ICE candidate to trickle to the browser; `None` is end-of-candidates.
    LocalCandidate(Option<serde_json::Value>),
    Connected,
    /// ICE or DTLS failed, or the connection closed: the call should end with this reason.
    Failed(String),
}

/// An audio codec negotiated on the browser leg.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// Where the peer connection binds: a concrete address as is, a wildcard as each usable
    /// interface address of its family (loopback only when that is all there is).
    pub bind: SocketAddr,
    pub ice_servers: Vec<String>,
    /// Advertised instead of the bound address (NAT 1:1).
    pub public_ip: Option<std::net::IpAddr>,
    pub lite: bool,
    pub failed_timeout: std::time::Duration,
}

pub struct WebRtcLeg {
    connection: Box<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    /// Set from the sender's negotiated parameters, again once an answer is applied.
    media: std::sync::Mutex<BrowserMedia>,
    mid: String,
    connected: Arc<AtomicBool>,
}

struct Handler {
    events: mpsc::Sender<LegEvent>,
    mid: String,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Ok(mut init) = event.candidate.to_json() else { return };
        init.sdp_mid = Some(self.mid.clone());
        init.sdp_mline_index = Some(0);
        let value = serde_json::to_value(&init).ok();
        let _ = self.events.try_send(LegEvent::LocalCandidate(value));
    }

    async fn on_ice_gathering_state_change(&self, state: webrtc::peer_connection::RTCIceGatheringState) {
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            let _ = self.events.try_send(LegEvent::LocalCandidate(None));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(state == RTCPeerConnectionState::Connected, Ordering::Release);
        let event = match state {
            RTCPeerConnectionState::Connected => LegEvent::Connected,
            RTCPeerConnectionState::Failed => LegEvent::Failed("ice_failed".into()),
            RTCPeerConnectionState::Closed => LegEvent::Failed("closed".into()),
            _ => return,
        };
        let _ = self.events.try_send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let events = self.events.clone();
        // A remote track that is not drained drops media by design: always drain it.
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 1_500];
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    let header = sipbridge::webrtc_leg::header_of(&packet);
                    if let Ok(len) = sipbridge::media::rtp::write_packet(&mut buffer, &header, &packet.payload) {
                        if events.try_send(LegEvent::Rtp(buffer[..len].to_vec())).is_err() {
                            tracing::debug!("browser leg queue full: packet dropped");
                        }
                    }
                }
            }
        });
    }
}

fn local_track(codec: &BrowserCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(sipbridge::webrtc_leg::local_track(codec, ssrc)))
}

impl WebRtcLeg {
    /// Offers a call to a browser (or acts as a browser, for load tests): our codec is `codec`.
    /// Returns the leg, our offer SDP and the events; apply the browser's answer with `set_answer`.
    pub async fn offer(codec: BrowserCodec, config: &WebRtcConfig, ssrc: u32) -> Result<(WebRtcLeg, String, mpsc::Receiver<LegEvent>), WebRtcError> {
        let mid = "0".to_string();
        let (events_tx, events_rx) = mpsc::channel(512);
        let connected = Arc::new(AtomicBool::new(false));
        let connection = build_connection(config, Handler { events: events_tx, mid: mid.clone(), connected: Arc::clone(&connected) }).await?;
        let track = local_track(&codec, ssrc);
        let sender = connection.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(engine_error)?;
        let offer = connection.create_offer(None).await.map_err(engine_error)?;
        connection.set_local_description(offer).await.map_err(engine_error)?;
        let local = connection.local_description().await.ok_or_else(|| WebRtcError::Engine("no local description".into()))?;
        let media = negotiated_media(sender.as_ref(), &codec).await?;
        let leg = WebRtcLeg { connection: Box::new(connection), track, sender, ssrc, media: std::sync::Mutex::new(media), mid, connected };
        Ok((leg, local.sdp, events_rx))
    }

    /// Applies the browser's answer; returns what the leg now sends and receives.
    pub async fn set_answer(&self, answer_sdp: &str) -> Result<BrowserMedia, WebRtcError> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_string()).map_err(engine_error)?;
        self.connection.set_remote_description(answer).await.map_err(engine_error)?;
        let intended = self.media().codec;
        let media = negotiated_media(self.sender.as_ref(), &intended).await?;
        *self.media.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = media.clone();
        Ok(media)
    }

    /// Answers a browser's offer. Returns the leg, our answer SDP, and the leg's events.
    pub async fn answer(offer_sdp: &str, forced_codec: Option<&str>, config: &WebRtcConfig, ssrc: u32) -> Result<(WebRtcLeg, String, mpsc::Receiver<LegEvent>), WebRtcError> {
        let (codec, mid) = sipbridge::webrtc_leg::choose_codec(offer_sdp, forced_codec)?;
        let (events_tx, events_rx) = mpsc::channel(512);
        let connected = Arc::new(AtomicBool::new(false));
        let connection = build_connection(config, Handler { events: events_tx, mid: mid.clone(), connected: Arc::clone(&connected) }).await?;
        let offer = RTCSessionDescription::offer(offer_sdp.to_string()).map_err(engine_error)?;
        connection.set_remote_description(offer).await.map_err(engine_error)?;
        // Added after the remote offer, with a codec from it, so the offered transceiver is reused
        // and the answer is sendrecv.
        let track = local_track(&codec, ssrc);
        let sender = connection.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(engine_error)?;
        let answer = connection.create_answer(None).await.map_err(engine_error)?;
        connection.set_local_description(answer).await.map_err(engine_error)?;
        let local = connection.local_description().await.ok_or_else(|| WebRtcError::Engine("no local description".into()))?;
        let media = negotiated_media(sender.as_ref(), &codec).await?;
        let leg = WebRtcLeg { connection: Box::new(connection), track, sender, ssrc, media: std::sync::Mutex::new(media), mid, connected };
        Ok((leg, local.sdp, events_rx))
    }
}

async fn negotiated_media(sender: &dyn RtpSender, intended: &BrowserCodec) -> Result<BrowserMedia, WebRtcError> {
    let parameters = sender.get_parameters().await.map_err(engine_error)?;
    let codecs: Vec<SenderCodec> = parameters
        .rtp_parameters
        .codecs
        .iter()
        .map(|c| (c.rtp_codec.mime_type.clone(), c.rtp_codec.clock_rate, c.rtp_codec.channels, c.payload_type))
        .collect();
    let media = media_from_codecs(&codecs, intended).ok_or(WebRtcError::NoCommonCodec)?;
    tracing::debug!(codec = %media.codec.mime_type, payload_type = media.codec.payload_type, telephone_event = ?media.telephone_event, "browser leg payload types");
    Ok(media)
}

async fn build_connection(config: &WebRtcConfig, handler: Handler) -> Result<impl PeerConnection, WebRtcError> {
        let mut engine = media_engine()?;
        let registry = register_default_interceptors(Registry::new(), &mut engine).map_err(engine_error)?;
        let ice_servers = if config.ice_servers.is_empty() { vec![] } else { vec![RTCIceServer { urls: config.ice_servers.clone(), ..Default::default() }] };
        let mut settings = SettingEngineBuilder::new()
            // Browsers' `.local` candidates are then ignored; they still reach us, since their
            // checks to our host candidates reveal them as peer-reflexive.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_lite(config.lite)
            .with_ice_timeouts(Some(config.failed_timeout / 3), Some(config.failed_timeout), None);
        if let Some(ip) = config.public_ip {
            settings = settings.with_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
        }
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
            .with_setting_engine(settings.build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec![config.bind])
            .build()
            .await
            .map_err(engine_error)
}

impl WebRtcLeg {
    /// The negotiated codec, with the browser leg's payload type.
    pub fn codec(&self) -> BrowserCodec {
        self.media().codec
    }

    pub fn media(&self) -> BrowserMedia {
        self.media.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A trickled candidate from the browser; `None` is end-of-candidates.
    pub async fn add_remote_candidate(&self, candidate: Option<serde_json::Value>) -> Result<(), WebRtcError> {
        let Some(candidate) = candidate else { return Ok(()) };
        let mut init: RTCIceCandidateInit = serde_json::from_value(candidate).map_err(engine_error)?;
        if init.sdp_mid.as_deref().is_none_or(str::is_empty) {
            init.sdp_mid = Some(self.mid.clone());
        }
        self.connection.add_ice_candidate(init).await.map_err(engine_error)
    }

    /// Sends one RTP packet (our bytes) to the browser, re-stamped with the track's SSRC.
    pub async fn send_rtp(&self, packet: &[u8]) -> Result<(), WebRtcError> {
        // Media from SIP often starts before DTLS is up; webrtc-rs would drop each packet with a
        // warning, a log flood at every call setup.
        if !self.connected.load(Ordering::Acquire) {
            return Err(WebRtcError::NotConnected);
        }
        let rtp_packet = sipbridge::webrtc_leg::track_packet(packet, self.ssrc)?;
        self.track.write_rtp(rtp_packet).await.map_err(engine_error)
    }

    pub async fn close(&self) {
        let _ = self.connection.close().await;
    }
}

