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
    certificate: DtlsCertificate,
    flows: HashMap<SocketAddr, &'static str>,
    now: Instant,
    inputs: u64,
    reached_leg: u64,
}

impl Default for StunHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl StunHarness {
    pub fn new() -> StunHarness {
        // A failure here would silently fuzz nothing past the demultiplexer: fail loudly instead.
        let certificate = DtlsCertificate::generate().expect("a DTLS certificate for the fuzzed leg"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
        StunHarness { leg: None, certificate, flows: HashMap::new(), now: Instant::now(), inputs: 0, reached_leg: 0 }
    }

    /// How many inputs the demultiplexer handed to the leg (the corpus test checks the seeds do).
    pub fn reached_leg(&self) -> u64 {
        self.reached_leg
    }

    /// A new leg (its flows forgotten) on the first input and every `RENEW_EVERY` inputs.
    fn renew_if_due(&mut self) -> &mut WebRtcLeg {
        if self.leg.is_none() || self.inputs % RENEW_EVERY == 0 {
            let identity = LegIdentity {
                ufrag: LEG_UFRAG.into(),
                pwd: LEG_PWD.into(),
                ssrc: 0x5eed,
                local_addresses: vec![LOCAL.parse().expect("a literal address")], // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
                certificate: self.certificate.clone(),
            };
            let config = WebRtcConfig { public_ip: None, lite: true, failed_timeout: Duration::from_secs(30) };
            let (leg, _answer) = WebRtcLeg::answer(BROWSER_OFFER, None, &config, &identity, self.now).expect("the fuzzed leg answers its fixed offer"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
            self.flows.clear();
            return self.leg.insert(leg);
        }
        self.leg.as_mut().expect("a leg exists") // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
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
    // Renewed before routing, so the flow this datagram teaches is kept.
    harness.renew_if_due();
    // The last byte picks the browser's address among a few, so flows are learnt and reused.
    let peer = SocketAddr::from(([127, 0, 0, 1], 50_000 + u16::from(data.last().copied().unwrap_or(0) % 4)));
    if route(&mut harness.flows, peer, data) != Some(LEG_UFRAG) || kind == DatagramKind::Unknown {
        return;
    }
    harness.reached_leg += 1;
    let Some(leg) = harness.leg.as_mut() else { return };
    if kind == DatagramKind::Rtp {
        // What the worker does with SRTP and SRTCP from a leg's 5-tuple.
        let mut packet = data.to_vec();
        let _ = leg.unprotect(&mut packet, demux::is_rtcp(data));
    } else {
        let _ = leg.handle_datagram(LOCAL.parse().expect("a literal address"), peer, data, now); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
    }
    for _ in 0..64 {
        let mut progressed = leg.poll_datagram().is_some();
        progressed |= leg.poll_event().is_some();
        if !progressed {
            break;
        }
    }
    if leg.poll_timeout().is_some_and(|deadline| deadline <= now) {
        leg.handle_timeout(now);
    }
}
