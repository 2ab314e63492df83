//! STUN and the shared WebRTC port: one datagram through the worker's demultiplexing (RFC 7983
//! classes, the recipient ufrag of a STUN request, the 5-tuple table it learns) and on into a
//! browser leg (webrtc-rs's ICE, DTLS and SRTP), as `media/worker/paths.rs` does.

use crate::media::worker::demux::{self, DatagramKind};
use crate::webrtc_leg::{DtlsCertificate, LegIdentity, WebRtcConfig, WebRtcLeg};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Our ufrag for the leg: a STUN request naming it reaches the leg.
pub const LEG_UFRAG: &str = "fuzzleg1";
const LEG_PWD: &str = "fuzzpwd0123456789abcdefgh";
/// Another leg's ufrag on the same port: its requests must not reach ours.
const OTHER_UFRAG: &str = "otherleg";
const LOCAL: &str = "127.0.0.1:40000";
/// The browser's offer the leg answered (its ICE ufrag is `Qx7b`).
const BROWSER_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Qx7b\r\n\
a=ice-pwd:tdYfbZxBbd2lQ1KJnxMRz4Yx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 3A:58:9C:21:7E:AF:60:37:9E:5B:26:30:29:6D:F7:3E:2E:3B:B5:96:62:53:9C:55:0B:F6:59:83:95:49:2C:E0\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";
/// A fresh leg every this many inputs, so a failed or closed leg does not hide the live paths.
const RENEW_EVERY: u64 = 4_096;

/// One browser leg on a shared port, its learnt flows and a manual clock.
pub struct StunHarness {
    leg: Option<WebRtcLeg>,
    certificate: Option<DtlsCertificate>,
    flows: HashMap<SocketAddr, &'static str>,
    now: Instant,
    inputs: u64,
}

impl Default for StunHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl StunHarness {
    pub fn new() -> StunHarness {
        StunHarness { leg: None, certificate: DtlsCertificate::generate().ok(), flows: HashMap::new(), now: Instant::now(), inputs: 0 }
    }

    fn leg(&mut self) -> Option<&mut WebRtcLeg> {
        if self.leg.is_none() || self.inputs % RENEW_EVERY == 0 {
            let identity = LegIdentity {
                ufrag: LEG_UFRAG.into(),
                pwd: LEG_PWD.into(),
                ssrc: 0x5eed,
                local_addresses: vec![LOCAL.parse().expect("a literal address")],
                certificate: self.certificate.clone()?,
            };
            let config = WebRtcConfig { public_ip: None, lite: true, failed_timeout: Duration::from_secs(30) };
            self.leg = WebRtcLeg::answer(BROWSER_OFFER, None, &config, &identity, self.now).ok().map(|(leg, _)| leg);
            self.flows.clear();
        }
        self.leg.as_mut()
    }
}

/// What the worker's `leg_for` decides: the learnt 5-tuple, else the ufrag of a STUN request.
fn route(flows: &mut HashMap<SocketAddr, &'static str>, peer: SocketAddr, datagram: &[u8]) -> Option<&'static str> {
    if let Some(leg) = flows.get(&peer) {
        return Some(leg);
    }
    if demux::classify(datagram) != DatagramKind::Stun {
        return None;
    }
    let leg = [LEG_UFRAG, OTHER_UFRAG].into_iter().find(|u| Some(*u) == demux::stun_recipient_ufrag(datagram))?;
    flows.insert(peer, leg);
    Some(leg)
}

pub fn stun_demux(harness: &mut StunHarness, data: &[u8]) {
    let kind = demux::classify(data);
    let _ = demux::is_rtcp(data);
    if let Some(ufrag) = demux::stun_recipient_ufrag(data) {
        assert_eq!(kind, DatagramKind::Stun, "a ufrag read from a datagram that is not STUN");
        assert!(!ufrag.is_empty() && !ufrag.contains(':'), "a ufrag with its separator: {ufrag:?}");
    }

    harness.inputs += 1;
    harness.now += Duration::from_millis(1 + u64::from(data.first().copied().unwrap_or(0) % 20));
    let now = harness.now;
    // The last byte picks the browser's address among a few, so flows are learnt and reused.
    let peer = SocketAddr::from(([127, 0, 0, 1], 50_000 + u16::from(data.last().copied().unwrap_or(0) % 4)));
    if route(&mut harness.flows, peer, data) != Some(LEG_UFRAG) || kind == DatagramKind::Unknown {
        return;
    }
    let Some(leg) = harness.leg() else { return };
    let _ = leg.handle_datagram(LOCAL.parse().expect("a literal address"), peer, data, now);
    let mut buffer = [0u8; 1500];
    for _ in 0..64 {
        let mut progressed = leg.poll_datagram().is_some();
        progressed |= leg.poll_event().is_some();
        progressed |= leg.poll_rtp(&mut buffer).is_some();
        if !progressed {
            break;
        }
    }
    if leg.poll_timeout().is_some_and(|deadline| deadline <= now) {
        leg.handle_timeout(now);
    }
}
