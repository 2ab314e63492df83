//! Which local addresses a browser leg binds, and so which host candidates it offers.
//!
//! webrtc-rs expands a wildcard bind into the interface addresses itself, but skips loopback and,
//! when nothing else is up, binds the wildcard verbatim: its host candidate is then `0.0.0.0`,
//! which no browser can use. The expansion is done here instead, so a candidate always names an
//! address the host really has.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The concrete addresses to bind for `bind`. A concrete address is kept as configured (loopback
/// included: an operator or a test asked for it). A wildcard becomes one address per usable
/// interface address of its family (`interfaces`), or the family's loopback when loopback is all
/// the host has.
pub(super) fn bind_addresses(bind: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    if !bind.ip().is_unspecified() {
        return vec![bind];
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in interfaces.iter().map(|ip| ip.to_canonical()) {
        if ip.is_ipv4() != bind.is_ipv4() || !is_usable(ip) {
            continue;
        }
        let address = SocketAddr::new(ip, bind.port());
        if !out.contains(&address) {
            out.push(address);
        }
    }
    if out.is_empty() {
        let loopback = if bind.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
        out.push(SocketAddr::new(loopback, bind.port()));
    }
    out
}

/// Reachable by a peer: not loopback, not unspecified, not link-local (an IPv6 link-local is
/// meaningless without its scope id, which a candidate cannot carry), not multicast.
fn is_usable(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_broadcast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The host's interface addresses, as the OS lists them (empty when it cannot say).
pub(super) fn interface_addresses() -> Vec<IpAddr> {
    match rtc::shared::ifaces::ifaces() {
        Ok(interfaces) => interfaces.into_iter().filter_map(|i| i.addr.map(|a| a.ip())).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the network interfaces: browser legs bind loopback only");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().expect("ip")).collect()
    }

    #[test]
    fn a_concrete_address_is_bound_as_configured_even_loopback() {
        let bind: SocketAddr = addr("127.0.0.1:4000");
        assert_eq!(bind_addresses(bind, &ips(&["10.0.0.5"])), vec![bind]);
    }

    #[test]
    fn a_wildcard_becomes_each_usable_address_of_its_family() {
        let interfaces = ips(&["127.0.0.1", "10.200.1.1", "169.254.3.3", "192.168.1.9", "10.200.1.1", "2001:db8::1", "::1"]);
        let bound = bind_addresses(addr("0.0.0.0:4000"), &interfaces);
        assert_eq!(bound, vec![addr("10.200.1.1:4000"), addr("192.168.1.9:4000")]);
        let bound = bind_addresses(addr("[::]:4000"), &ips(&["fe80::1", "2001:db8::1", "::1", "10.0.0.1"]));
        assert_eq!(bound, vec![addr("[2001:db8::1]:4000")]);
    }

    #[test]
    fn a_loopback_only_host_binds_loopback_never_the_wildcard() {
        assert_eq!(bind_addresses(addr("0.0.0.0:4000"), &ips(&["127.0.0.1", "::1"])), vec![addr("127.0.0.1:4000")]);
        assert_eq!(bind_addresses(addr("[::]:4000"), &[]), vec![addr("[::1]:4000")]);
    }
}
