//! Which address a peer should see for us, and which socket is ours toward it. Pure functions:
//! the endpoint passes in the route lookup (a syscall), so the choices are tested without one.
//!
//! A wildcard (`0.0.0.0`, `::`) is never handed to the core as our address, since the core
//! writes it into Via and Contact: the configured `sip.advertised_address` (of the listener's
//! family) wins, then a concrete listener address, then the local address of the route toward
//! the peer.

use super::super::core::ResolvedPeer;
use super::super::{Peer, TransportKind};
use crate::config::ListenTransport;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// `peer` with `local` set to the address the peer should see. Replies still leave from the
/// listener the message came in on (`listener_for` finds it by port and family).
pub(super) fn seen_by(mut peer: Peer, advertised: Option<IpAddr>, route_source: impl FnOnce(IpAddr) -> Option<IpAddr>) -> Peer {
    let ip = match advertised {
        Some(ip) if ip.is_ipv4() == peer.local.is_ipv4() => Some(ip),
        _ if peer.local.ip().is_unspecified() => route_source(peer.remote.ip()),
        _ => None,
    };
    if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
        peer.local.set_ip(ip);
    }
    peer
}

/// The listener behind `local`: the one bound there, else the wildcard of that family and port,
/// else any listener of that family and port (when `local` is the advertised address).
pub(super) fn listener_for<T>(listeners: &HashMap<SocketAddr, T>, local: SocketAddr) -> Option<&T> {
    let same = |bound: &&SocketAddr| bound.port() == local.port() && bound.is_ipv4() == local.is_ipv4();
    let wildcard = |bound: &&SocketAddr| same(bound) && bound.ip().is_unspecified();
    let found = listeners.get_key_value(&local);
    let found = found.or_else(|| listeners.iter().find(|(bound, _)| wildcard(bound)));
    found.or_else(|| listeners.iter().find(|(bound, _)| same(bound))).map(|(_, listener)| listener)
}

/// Chooses the peer address we can reach and the address our Via/Contact should advertise.
pub(super) fn pick_route(
    addresses: &[SocketAddr],
    listeners: &[(ListenTransport, SocketAddr)],
    transport: TransportKind,
    advertised: Option<IpAddr>,
    route_source: impl Fn(IpAddr) -> Option<IpAddr>,
) -> Option<ResolvedPeer> {
    let wanted = match transport {
        TransportKind::Udp => ListenTransport::Udp,
        TransportKind::Tcp => ListenTransport::Tcp,
        TransportKind::Tls => ListenTransport::Tls,
        TransportKind::Ws => ListenTransport::Ws,
        TransportKind::Wss => ListenTransport::Wss,
    };
    addresses.iter().find_map(|remote| {
        let same_family = |(_, local): &&(ListenTransport, SocketAddr)| local.is_ipv4() == remote.is_ipv4();
        let listener = listeners
            .iter()
            .filter(same_family)
            .find(|(t, _)| *t == wanted)
            .or_else(|| listeners.iter().filter(same_family).find(|(t, _)| *t == ListenTransport::Udp))?;
        if transport == TransportKind::Udp && listener.0 != ListenTransport::Udp {
            return None;
        }
        let peer = Peer { transport, remote: *remote, local: listener.1, connection: None };
        // With no route toward this address (a wildcard left), it is not reachable either.
        let local = seen_by(peer, advertised, &route_source).local;
        (!local.ip().is_unspecified()).then_some(ResolvedPeer { remote: *remote, advertised: local })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn peer(local: &str, remote: &str) -> Peer {
        Peer { transport: TransportKind::Udp, remote: addr(remote), local: addr(local), connection: None }
    }

    #[test]
    fn a_wildcard_listener_advertises_the_route_source() {
        let seen = seen_by(peer("0.0.0.0:5060", "10.200.1.9:5070"), None, |_| Some(ip("10.200.1.1")));
        assert_eq!(seen.local, addr("10.200.1.1:5060"));
        let concrete = seen_by(peer("127.0.0.1:5060", "127.0.0.1:5070"), None, |_| panic!("no lookup for a concrete listener"));
        assert_eq!(concrete.local, addr("127.0.0.1:5060"));
        let no_route = seen_by(peer("0.0.0.0:5060", "192.0.2.1:5070"), None, |_| None);
        assert_eq!(no_route.local, addr("0.0.0.0:5060"), "left for the core's own fallback");
    }

    #[test]
    fn the_configured_address_wins_within_its_family() {
        let public = Some(ip("203.0.113.10"));
        assert_eq!(seen_by(peer("0.0.0.0:5060", "10.0.0.9:5070"), public, |_| None).local, addr("203.0.113.10:5060"));
        assert_eq!(seen_by(peer("10.0.0.5:5060", "10.0.0.9:5070"), public, |_| None).local, addr("203.0.113.10:5060"));
        let v6 = seen_by(peer("[::]:5060", "[2001:db8::9]:5070"), public, |_| Some(ip("2001:db8::1")));
        assert_eq!(v6.local, addr("[2001:db8::1]:5060"), "an IPv4 advertised address is not used toward IPv6");
    }

    #[test]
    fn replies_leave_from_the_listener_behind_the_advertised_address() {
        let listeners: HashMap<SocketAddr, &str> = [(addr("0.0.0.0:5060"), "v4 wildcard"), (addr("[::]:5060"), "v6 wildcard"), (addr("127.0.0.1:5070"), "loopback")].into();
        assert_eq!(listener_for(&listeners, addr("10.200.1.1:5060")), Some(&"v4 wildcard"));
        assert_eq!(listener_for(&listeners, addr("[2001:db8::1]:5060")), Some(&"v6 wildcard"));
        assert_eq!(listener_for(&listeners, addr("127.0.0.1:5070")), Some(&"loopback"));
        assert_eq!(listener_for(&listeners, addr("203.0.113.10:5070")), Some(&"loopback"), "same family and port");
        assert_eq!(listener_for(&listeners, addr("10.0.0.1:5080")), None);
    }

    #[test]
    fn a_resolved_peer_never_advertises_a_wildcard() {
        let listeners = [(ListenTransport::Udp, addr("0.0.0.0:5060"))];
        let routed = pick_route(&[addr("192.0.2.20:5060")], &listeners, TransportKind::Udp, None, |_| Some(ip("192.0.2.1")));
        assert_eq!(routed.map(|r| r.advertised), Some(addr("192.0.2.1:5060")));
        let unreachable = pick_route(&[addr("192.0.2.20:5060")], &listeners, TransportKind::Udp, None, |_| None);
        assert!(unreachable.is_none());
        let concrete = pick_route(&[addr("127.0.0.1:5070")], &[(ListenTransport::Udp, addr("127.0.0.1:5060"))], TransportKind::Udp, None, |_| None);
        assert_eq!(concrete.map(|r| r.advertised), Some(addr("127.0.0.1:5060")));
    }
}
