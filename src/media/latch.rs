//! Symmetric RTP with latching (RFC 4961 behaviour behind NAT), guarded by probation so a third
//! party cannot hijack or bleed into a stream. Sans-IO.
//!
//! Policy, per receiving socket:
//! - Packets from the address the peer signalled in SDP are accepted at once; that address and
//!   the packet's SSRC become the latch.
//! - Any other source must send `probation` consecutive packets carrying the latched SSRC, with no
//!   packet from the latched address in between (a NAT rebinding looks exactly like that), before
//!   the latch moves to it. Before anything is latched, the first source that sends `probation`
//!   consecutive packets with one SSRC wins.
//! - A source with a different SSRC never reaches the other leg (RTP bleed protection). The
//!   latched address itself may change SSRC (re-INVITE, new sender).

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchVerdict {
    Accept,
    /// Counted toward probation or refused; in both cases the packet is not forwarded.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchEvent {
    Latched { address: SocketAddr, ssrc: u32 },
    Moved { from: SocketAddr, to: SocketAddr },
}

#[derive(Debug, Clone)]
pub struct Latch {
    signalled: Option<SocketAddr>,
    current: Option<(SocketAddr, u32)>,
    candidate: Option<(SocketAddr, u32, u32)>,
    probation: u32,
    ignored: u64,
    event: Option<LatchEvent>,
}

impl Latch {
    pub fn new(signalled: Option<SocketAddr>, probation: u32) -> Latch {
        Latch { signalled, current: None, candidate: None, probation: probation.max(1), ignored: 0, event: None }
    }

    /// The peer's address changed in signalling (re-INVITE): trust the new one at once.
    pub fn set_signalled(&mut self, signalled: Option<SocketAddr>) {
        self.signalled = signalled;
    }

    /// Where packets toward this peer should go: the latched source, else the signalled address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.current.map(|(address, _)| address).or(self.signalled)
    }

    pub fn latched_ssrc(&self) -> Option<u32> {
        self.current.map(|(_, ssrc)| ssrc)
    }

    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    pub fn poll_event(&mut self) -> Option<LatchEvent> {
        self.event.take()
    }

    pub fn on_packet(&mut self, from: SocketAddr, ssrc: u32) -> LatchVerdict {
        match self.current {
            Some((address, _)) if address == from => {
                self.current = Some((address, ssrc));
                self.candidate = None;
                LatchVerdict::Accept
            }
            None if Some(from) == self.signalled => {
                self.latch(from, ssrc);
                LatchVerdict::Accept
            }
            current => {
                let wanted_ssrc = current.map(|(_, ssrc)| ssrc);
                if wanted_ssrc.is_some_and(|wanted| wanted != ssrc) {
                    self.ignored += 1;
                    return LatchVerdict::Ignore;
                }
                let count = match self.candidate {
                    Some((address, candidate_ssrc, count)) if address == from && candidate_ssrc == ssrc => count + 1,
                    _ => 1,
                };
                if count >= self.probation {
                    match current {
                        Some((old, _)) => {
                            self.current = Some((from, ssrc));
                            self.event = Some(LatchEvent::Moved { from: old, to: from });
                        }
                        None => self.latch(from, ssrc),
                    }
                    self.candidate = None;
                    LatchVerdict::Accept
                } else {
                    self.candidate = Some((from, ssrc, count));
                    self.ignored += 1;
                    LatchVerdict::Ignore
                }
            }
        }
    }

    fn latch(&mut self, address: SocketAddr, ssrc: u32) {
        self.current = Some((address, ssrc));
        self.event = Some(LatchEvent::Latched { address, ssrc });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn signalled_address_is_accepted_at_once() {
        let mut latch = Latch::new(Some(addr("192.0.2.1:4000")), 3);
        assert_eq!(latch.on_packet(addr("192.0.2.1:4000"), 7), LatchVerdict::Accept);
        assert_eq!(latch.poll_event(), Some(LatchEvent::Latched { address: addr("192.0.2.1:4000"), ssrc: 7 }));
    }

    #[test]
    fn nat_rebinding_is_followed_only_after_probation() {
        let mut latch = Latch::new(Some(addr("10.0.0.5:4000")), 3);
        let nat = addr("203.0.113.9:61000");
        // The signalled private address never sends; the NATed source must earn the latch.
        assert_eq!(latch.on_packet(nat, 7), LatchVerdict::Ignore);
        assert_eq!(latch.on_packet(nat, 7), LatchVerdict::Ignore);
        assert_eq!(latch.on_packet(nat, 7), LatchVerdict::Accept);
        assert_eq!(latch.destination(), Some(nat));
        // Later the NAT binding changes: same SSRC from a new port, followed after probation.
        let rebound = addr("203.0.113.9:61002");
        assert_eq!(latch.on_packet(rebound, 7), LatchVerdict::Ignore);
        assert_eq!(latch.on_packet(rebound, 7), LatchVerdict::Ignore);
        assert_eq!(latch.on_packet(rebound, 7), LatchVerdict::Accept);
        assert_eq!(latch.poll_event(), Some(LatchEvent::Moved { from: nat, to: rebound }));
    }

    #[test]
    fn third_party_stream_never_gets_through() {
        let mut latch = Latch::new(Some(addr("192.0.2.1:4000")), 3);
        let peer = addr("192.0.2.1:4000");
        let spoofer = addr("198.51.100.66:5000");
        latch.on_packet(peer, 7);
        // A different SSRC is refused however long it keeps sending.
        for _ in 0..100 {
            assert_eq!(latch.on_packet(spoofer, 99), LatchVerdict::Ignore);
        }
        // Copying the SSRC does not help while the real peer keeps talking in between.
        for _ in 0..100 {
            assert_eq!(latch.on_packet(spoofer, 7), LatchVerdict::Ignore);
            assert_eq!(latch.on_packet(spoofer, 7), LatchVerdict::Ignore);
            assert_eq!(latch.on_packet(peer, 7), LatchVerdict::Accept);
        }
        assert_eq!(latch.destination(), Some(peer));
        assert_eq!(latch.ignored(), 300);
    }

    #[test]
    fn latched_peer_may_change_ssrc() {
        let mut latch = Latch::new(Some(addr("192.0.2.1:4000")), 3);
        latch.on_packet(addr("192.0.2.1:4000"), 7);
        assert_eq!(latch.on_packet(addr("192.0.2.1:4000"), 8), LatchVerdict::Accept);
        assert_eq!(latch.latched_ssrc(), Some(8));
    }
}
