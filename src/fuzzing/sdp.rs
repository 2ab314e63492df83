//! SDP: parse, print and parse again, then offer/answer both ways as the call layer does it
//! (answer a remote offer, with each SRTP policy; read the input as the answer to our offer).

use crate::call::sdes;
use crate::config::SrtpPolicy;
use crate::media::srtp::CryptoAttribute;
use crate::sdp::{self, Codec, Direction, LocalCapabilities, SessionDescription};
use std::net::{IpAddr, Ipv4Addr};

const OUR_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const OUR_PORT: u16 = 30_000;

pub fn sdp(data: &[u8]) {
    let Ok(remote) = SessionDescription::parse_bytes(data) else { return };
    // What we pass on or echo must read back as what it was.
    let printed = remote.to_string();
    let reparsed = SessionDescription::parse(&printed).unwrap_or_else(|e| panic!("a printed SDP does not parse ({e}):\n{printed}"));
    assert_eq!(reparsed.media.len(), remote.media.len(), "printing lost or added m-lines:\n{printed}");

    for media in &remote.media {
        let _ = (media.rtpmaps(), media.ptime(), media.direction(&remote), media.rtcp_mux(), media.rtp_address(&remote));
        for line in media.crypto_lines() {
            let _ = CryptoAttribute::parse(line);
        }
    }

    // Remote offer: the local capabilities vary with the input so every codec set is reached.
    let selector = data.last().copied().unwrap_or(0);
    let all = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];
    let codecs: Vec<Codec> = all.iter().enumerate().filter(|(i, _)| selector & (1 << i) != 0).map(|(_, c)| *c).collect();
    let mut local = LocalCapabilities::new(if codecs.is_empty() { all.to_vec() } else { codecs });
    local.telephone_event = selector & 0x10 != 0;
    if selector & 0x20 != 0 {
        local.direction = Direction::SendOnly;
    }
    if let Ok((mut answer, negotiated)) = sdp::answer(&remote, &local, OUR_ADDRESS, OUR_PORT, 1) {
        assert!(SessionDescription::parse(&answer.to_string()).is_ok(), "our answer does not parse:\n{answer}");
        for policy in [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let _ = sdes::answer_offer(policy, &remote, &negotiated, &mut answer.clone(), None);
        }
        let _ = sdes::answer_offer(SrtpPolicy::Optional, &remote, &negotiated, &mut answer, None);
        let _ = sdp::with_direction(&answer, Direction::Inactive);
    }

    // Remote answer to our offer (plain and SDES).
    let mut ours = sdp::offer(&local, OUR_ADDRESS, OUR_PORT, 1, 1);
    if let Ok(negotiated) = sdp::read_answer(&ours, &remote) {
        let _ = sdes::read_answer(&ours, &negotiated);
    }
    if sdes::secure_offer(SrtpPolicy::Mandatory, &mut ours).is_ok() {
        if let Ok(negotiated) = sdp::read_answer(&ours, &remote) {
            let _ = sdes::read_answer(&ours, &negotiated);
        }
    }
    let _ = sdp::is_same_version(&ours, &remote);
}
