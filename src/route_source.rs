//! The local address of the route toward a peer. A socket bound to `0.0.0.0` or `::` sends from
//! whatever address the kernel's route toward the peer names; that address, not the wildcard, is
//! what SDP, Via and Contact must advertise. Connecting a UDP socket asks the kernel without
//! sending anything. Used by the I/O drivers (SIP endpoint, media engine), never by sans-IO cores.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

/// Peers remembered at once; beyond that the table starts afresh (a lookup costs microseconds).
const MAX_REMEMBERED: usize = 4_096;

/// The source address the kernel would use toward `remote`, if it has a route there.
pub fn lookup(remote: IpAddr) -> Option<IpAddr> {
    let remote = remote.to_canonical();
    let any: IpAddr = if remote.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    // The port only has to be non-zero: nothing is sent.
    socket.connect(SocketAddr::new(remote, 9)).ok()?;
    let local = socket.local_addr().ok()?.ip();
    (!local.is_unspecified()).then_some(local)
}

/// `lookup` with a memory, for drivers that ask per message or per call.
#[derive(Debug, Default)]
pub struct RouteSources {
    table: Mutex<HashMap<IpAddr, IpAddr>>,
}

impl RouteSources {
    pub fn toward(&self, remote: IpAddr) -> Option<IpAddr> {
        let remote = remote.to_canonical();
        // The table holds no invariant a panic could break halfway; recover from poisoning.
        let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(local) = table.get(&remote) {
            return Some(*local);
        }
        // Failures are not remembered: a route may appear later.
        let local = lookup(remote)?;
        if table.len() >= MAX_REMEMBERED {
            table.clear();
        }
        table.insert(remote, local);
        Some(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn loopback_is_reached_from_loopback() {
        assert_eq!(lookup(ip("127.0.0.1")), Some(ip("127.0.0.1")));
        let sources = RouteSources::default();
        assert_eq!(sources.toward(ip("::ffff:127.0.0.1")), Some(ip("127.0.0.1")));
    }

    #[test]
    fn the_wildcard_has_no_route() {
        // Connecting to 0.0.0.0 means "this host" on Linux; whatever the kernel says, the answer
        // is never the wildcard itself.
        assert!(lookup(ip("0.0.0.0")).is_none_or(|ip| !ip.is_unspecified()));
    }
}
