//! A browser leg's transport, built from webrtc-rs's sans-IO parts rather than its peer
//! connection: the ICE agent (`rtc::ice`), a DTLS endpoint (`rtc::dtls`) and, once DTLS is up,
//! the leg's own SRTP contexts (our `media::srtp` over `rtc-srtp`). rtc's peer connection keeps
//! its SRTP keys to itself, so every media packet had to cross its pipeline of handlers and
//! interceptors, which cost a relayed call more than the rest of the gateway together
//! (ARCHITECTURE.md, "Media plane performance"). Here STUN and DTLS go to their state machines,
//! and SRTP is a single transform in the worker's buffer.

use super::remote::{RemoteParameters, Setup};
use super::{engine_error, Datagram, WebRtcError};
use crate::media::srtp::{SrtpContext, Suite};
use bytes::BytesMut;
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig, VerifyPeerCertificateFn};
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::agent::agent_config::AgentConfig;
use rtc::ice::agent::{Agent, Event as IceEvent};
use rtc::ice::candidate::{unmarshal_candidate, CandidateType};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::ice::state::ConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as DtlsError;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// DTLS runs over the ICE transport, not a fixed 5-tuple (RFC 8445 §12: the selected pair may
/// change), so the endpoint knows its one association under this placeholder.
const ASSOCIATION: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 65_535);
/// RFC 5764 §4.2 exporter output for SRTP_AES128_CM_HMAC_SHA1_80: two 16-byte master keys,
/// then two 14-byte salts, client's first.
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;

/// What the transport reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// DTLS finished: SRTP keys are in place.
    Connected,
    /// ICE failed, DTLS failed, or the browser closed DTLS: the reason for the call's end.
    Failed(&'static str),
}

pub struct TransportSettings {
    pub ufrag: String,
    pub pwd: String,
    pub lite: bool,
    pub failed_timeout: Duration,
    pub certificate: rtc::dtls::crypto::Certificate,
}

/// SRTP for both directions of the leg: what we send, and what the browser sends.
struct Srtp {
    outbound: SrtpContext,
    inbound: SrtpContext,
}

pub struct Transport {
    ice: Agent,
    dtls: Option<Endpoint>,
    /// A DTLS client connects once ICE has selected a pair.
    client_config: Option<Arc<HandshakeConfig>>,
    certificate: rtc::dtls::crypto::Certificate,
    /// (our socket, the browser's address) of the selected candidate pair.
    route: Option<(SocketAddr, SocketAddr)>,
    srtp: Option<Srtp>,
    /// DTLS records the endpoint queued, taken as soon as it queues them (to see whether a
    /// record was answered).
    dtls_out: std::collections::VecDeque<BytesMut>,
    events: std::collections::VecDeque<TransportEvent>,
    failed: bool,
    lite: bool,
}

fn agent_config(settings: &TransportSettings) -> AgentConfig {
    AgentConfig {
        local_ufrag: settings.ufrag.clone(),
        local_pwd: settings.pwd.clone(),
        lite: settings.lite,
        multicast_dns_mode: MulticastDnsMode::Disabled,
        network_types: vec![NetworkType::Udp4, NetworkType::Udp6],
        // Ours are the worker's sockets, nothing gathered (and a lite agent allows no other).
        candidate_types: vec![CandidateType::Host],
        disconnected_timeout: Some(settings.failed_timeout / 3),
        failed_timeout: Some(settings.failed_timeout),
        ..Default::default()
    }
}

impl Transport {
    /// An agent with our credentials and host candidates (as `candidate` lines without prefix),
    /// waiting for the browser's parameters.
    pub fn new(settings: TransportSettings, host_candidates: &[String], now: Instant) -> Result<Transport, WebRtcError> {
        let provider = rtc::crypto::default_provider().map_err(engine_error)?;
        let mut ice = Agent::new(now, Arc::new(agent_config(&settings)), provider).map_err(engine_error)?;
        for line in host_candidates {
            ice.add_local_candidate(unmarshal_candidate(line).map_err(engine_error)?).map_err(engine_error)?;
        }
        let lite = settings.lite;
        Ok(Transport { ice, dtls: None, client_config: None, certificate: settings.certificate, route: None, srtp: None, dtls_out: Default::default(), events: Default::default(), failed: false, lite })
    }

    /// Starts ICE and DTLS toward the browser. `we_offered` makes us the ICE controlling agent
    /// (unless we are lite); our DTLS role is the one our own description's `setup` chose.
    pub fn start(&mut self, remote: &RemoteParameters, local_setup: Setup, we_offered: bool, now: Instant) -> Result<(), WebRtcError> {
        for line in &remote.candidates {
            self.add_remote_candidate(line);
        }
        let client = match (local_setup, remote.setup) {
            (Setup::Active, _) => true,
            (Setup::Passive, _) => false,
            // We offered actpass: the answer decides (RFC 5763 §5).
            (Setup::ActPass, Setup::Passive) => true,
            (Setup::ActPass, _) => false,
        };
        let config = self.dtls_config(client, remote.fingerprints.clone())?;
        if client {
            self.dtls = Some(Endpoint::new(ASSOCIATION, TransportProtocol::UDP, None));
            self.client_config = Some(config);
        } else {
            self.dtls = Some(Endpoint::new(ASSOCIATION, TransportProtocol::UDP, Some(config)));
        }
        // A lite agent never controls (RFC 8445 §6.1.1); otherwise the offerer does, or
        // whoever faces a lite peer.
        let controlling = !self.lite && (we_offered || remote.lite);
        self.ice.start_connectivity_checks(now, controlling, remote.ufrag.clone(), remote.pwd.clone()).map_err(engine_error)
    }

    fn dtls_config(&self, client: bool, fingerprints: Vec<String>) -> Result<Arc<HandshakeConfig>, WebRtcError> {
        let provider = rtc::crypto::default_provider().map_err(engine_error)?;
        let hasher = Arc::clone(&provider);
        // The browser's certificate is self-signed; what authenticates it is the fingerprint
        // its description carried (RFC 8827 §6.5).
        let verify: VerifyPeerCertificateFn = Arc::new(move |certificates: &[Vec<u8>], _| {
            let first = certificates.first().ok_or(DtlsError::ErrNonCertificate)?;
            let digest = hasher.crypto().hash(rtc::crypto::HashAlgorithm::Sha256, first).map_err(|e| DtlsError::Other(e.to_string()))?;
            let seen: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
            let seen = seen.join(":");
            if fingerprints.iter().any(|f| *f == seen) {
                Ok(())
            } else {
                Err(DtlsError::ErrNoMatchingCertificateFingerprint)
            }
        });
        ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![self.certificate.clone()])
            // The one profile every browser offers and our SRTP contexts implement.
            .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80])
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(client, None)
            .map(Arc::new)
            .map_err(engine_error)
    }

    /// A trickled or described candidate (without the `candidate:` prefix). Ones the agent
    /// cannot use (TCP, unresolvable names) are skipped.
    pub fn add_remote_candidate(&mut self, line: &str) {
        let line = line.strip_prefix("candidate:").unwrap_or(line);
        match unmarshal_candidate(line) {
            Ok(candidate) => {
                if let Err(e) = self.ice.add_remote_candidate(candidate) {
                    tracing::debug!(error = %e, "remote candidate skipped");
                }
            }
            Err(e) => tracing::debug!(error = %e, "remote candidate unreadable"),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// Where media goes: (our socket, the browser's address).
    pub fn route(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.route.filter(|_| self.srtp.is_some())
    }

    /// A STUN message for the ICE agent.
    pub fn handle_stun(&mut self, local: SocketAddr, peer: SocketAddr, payload: &[u8], now: Instant) -> Result<(), WebRtcError> {
        let transport = TransportContext { local_addr: local, peer_addr: peer, transport_protocol: TransportProtocol::UDP, ecn: None };
        let result = self.ice.handle_read(TaggedBytesMut { now, transport, message: BytesMut::from(payload) }).map_err(engine_error);
        self.drain_ice(now);
        result
    }

    /// A DTLS record. Before ICE has a selected pair it has no association to go to (as in
    /// rtc's peer connection); after the handshake, `DtlsDiscarded` reports a record that
    /// produced neither an answer nor a change, which rtc would drop without a word.
    pub fn handle_dtls(&mut self, payload: &[u8], now: Instant) -> Result<(), WebRtcError> {
        let connected = self.srtp.is_some();
        let Some(dtls) = self.dtls.as_mut().filter(|_| self.route.is_some()) else {
            return Err(WebRtcError::NotConnected);
        };
        let events = dtls.read(now, ASSOCIATION, None, BytesMut::from(payload)).map_err(engine_error);
        let answered = self.take_dtls_transmits();
        // A record the association refuses is counted by the worker, not fatal: a handshake
        // that cannot finish ends by its retransmission limit (`handle_timeout`).
        let events = events?;
        let changed = !events.is_empty();
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => self.key_srtp()?,
                // The browser closed its peer connection: its signalling (hangup, BYE) says
                // why, and if it never does, the RTP timeout ends the call.
                EndpointEvent::PeerClosed => tracing::debug!("the browser closed DTLS"),
                // No data channels are negotiated; anything else is not ours to act on.
                _ => {}
            }
        }
        if connected && !answered && !changed {
            return Err(WebRtcError::DtlsDiscarded);
        }
        Ok(())
    }

    /// Moves what the DTLS endpoint queued into `dtls_out`; whether there was anything.
    fn take_dtls_transmits(&mut self) -> bool {
        let Some(dtls) = self.dtls.as_mut() else { return false };
        let before = self.dtls_out.len();
        while let Some(message) = dtls.poll_transmit() {
            self.dtls_out.push_back(message.message);
        }
        self.dtls_out.len() > before
    }

    fn key_srtp(&mut self) -> Result<(), WebRtcError> {
        let state = self.dtls.as_ref().and_then(|d| d.get_connection_state(ASSOCIATION)).ok_or(WebRtcError::NotConnected)?;
        if state.srtp_protection_profile() != SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 {
            return Err(WebRtcError::Engine("DTLS negotiated an SRTP profile we did not offer".into()));
        }
        let material = state.export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (KEY_LEN + SALT_LEN)).map_err(engine_error)?;
        let material: &[u8] = material.as_ref();
        let part = |at: usize, len: usize| material.get(at..at + len).ok_or_else(|| WebRtcError::Engine("short DTLS-SRTP keying material".into()));
        let key = |slice: &[u8]| <[u8; KEY_LEN]>::try_from(slice).map_err(engine_error);
        let salt = |slice: &[u8]| <[u8; SALT_LEN]>::try_from(slice).map_err(engine_error);
        let client = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key(part(0, KEY_LEN)?)?, &salt(part(2 * KEY_LEN, SALT_LEN)?)?);
        let server = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key(part(KEY_LEN, KEY_LEN)?)?, &salt(part(2 * KEY_LEN + SALT_LEN, SALT_LEN)?)?);
        let (outbound, inbound) = if state.is_client() { (client, server) } else { (server, client) };
        self.srtp = Some(Srtp { outbound, inbound });
        self.events.push_back(TransportEvent::Connected);
        Ok(())
    }

    fn fail(&mut self, reason: &'static str) {
        if !self.failed {
            self.failed = true;
            self.events.push_back(TransportEvent::Failed(reason));
        }
    }

    fn drain_ice(&mut self, now: Instant) {
        while let Some(event) = self.ice.poll_event() {
            match event.event {
                IceEvent::ConnectionStateChange(ConnectionState::Failed) => self.fail("ice_failed"),
                IceEvent::ConnectionStateChange(ConnectionState::Closed) => self.fail("closed"),
                IceEvent::SelectedCandidatePairChange(local, remote) => {
                    self.route = Some((local.base_addr(), remote.addr()));
                    if let (Some(dtls), Some(config)) = (self.dtls.as_mut(), self.client_config.take()) {
                        if let Err(e) = dtls.connect(now, ASSOCIATION, config, None) {
                            tracing::debug!(error = %e, "DTLS cannot start");
                            self.fail("dtls_failed");
                        }
                        self.take_dtls_transmits();
                    }
                }
                _ => {}
            }
        }
    }

    /// Verifies and decrypts SRTP from the browser in place.
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), WebRtcError> {
        let srtp = self.srtp.as_mut().ok_or(WebRtcError::NotConnected)?;
        srtp.inbound.unprotect_rtp(packet).map_err(engine_error)
    }

    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), WebRtcError> {
        let srtp = self.srtp.as_mut().ok_or(WebRtcError::NotConnected)?;
        srtp.inbound.unprotect_rtcp(packet).map_err(engine_error)
    }

    /// Encrypts our RTP (or RTCP) in place for the browser.
    pub fn protect(&mut self, packet: &mut Vec<u8>, rtcp: bool) -> Result<(), WebRtcError> {
        let srtp = self.srtp.as_mut().ok_or(WebRtcError::NotConnected)?;
        if rtcp { srtp.outbound.protect_rtcp(packet) } else { srtp.outbound.protect_rtp(packet) }.map_err(engine_error)
    }

    /// The next STUN or DTLS datagram to send.
    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        if let Some(message) = self.ice.poll_write() {
            return Some(Datagram { local: message.transport.local_addr, peer: message.transport.peer_addr, payload: message.message });
        }
        let (local, peer) = self.route?;
        let payload = self.dtls_out.pop_front()?;
        Some(Datagram { local, peer, payload })
    }

    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let dtls = self.dtls.as_ref().and_then(|d| d.poll_timeout(&ASSOCIATION));
        [self.ice.poll_timeout(), dtls].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.ice.handle_timeout(now) {
            tracing::debug!(error = %e, "ICE timer");
        }
        self.drain_ice(now);
        let due = self.dtls.as_ref().and_then(|d| d.poll_timeout(&ASSOCIATION)).is_some_and(|at| at <= now);
        if let (true, Some(dtls)) = (due, self.dtls.as_mut()) {
            if let Err(e) = dtls.handle_timeout(ASSOCIATION, now) {
                tracing::debug!(error = %e, "DTLS handshake gave up");
                self.fail("dtls_failed");
            }
            self.take_dtls_transmits();
        }
    }

    /// Sends DTLS close_notify (when connected) and stops ICE.
    pub fn close(&mut self, now: Instant) {
        if let Some(dtls) = self.dtls.as_mut() {
            let _ = dtls.stop(now, ASSOCIATION);
        }
        self.take_dtls_transmits();
        let _ = self.ice.close();
        self.srtp = None;
    }
}

