//! The trust gate for WebSocket flows: a browser softphone authenticates even when its
//! connection comes from an address a trunk profile trusts.

use super::tests::{core_with, profiles, request, statuses, udp_from};
use super::*;

fn websocket_from(remote: &str, transport: TransportKind, connection: crate::sip::ConnectionId) -> Peer {
    Peer { transport, remote: remote.parse().expect("addr"), local: super::tests::GATEWAY.parse().expect("addr"), connection: Some(connection) }
}

#[test]
fn a_websocket_flow_from_a_trusted_trunk_address_is_not_trusted() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    for (index, transport) in [TransportKind::Ws, TransportKind::Wss].into_iter().enumerate() {
        let peer = websocket_from("192.0.2.50:40000", transport, index as u64 + 1);
        // As the trunk would call, but over a WebSocket: a stranger.
        let as_trunk = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", &format!("z9hG4bKws{index}a"), &[]);
        core.handle_inbound(&as_trunk, peer, t0);
        assert_eq!(statuses(&mut core), vec![403], "{transport}: refused, not passed as the trunk");
        // As a local user: challenged like any softphone.
        let as_user = request("INVITE", "sip:bob@example.com", "sip:alice@example.com", &format!("z9hG4bKws{index}b"), &[]);
        core.handle_inbound(&as_user, peer, t0);
        assert_eq!(statuses(&mut core), vec![407], "{transport}: must authenticate");
        assert_eq!(core.take_admitted(), None, "{transport}: nothing admitted");
    }
    assert!(!std::iter::from_fn(|| core.poll_event()).any(|e| matches!(e, CoreEvent::IncomingCall(_))), "no call reached the call layer");
    // The trunk itself, over UDP from the same address, is still trusted.
    core.handle_inbound(&request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKudp", &[]), udp_from("192.0.2.50:5060"), t0);
    assert_eq!(statuses(&mut core), vec![100]);
}
