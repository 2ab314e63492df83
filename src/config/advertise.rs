//! What the gateway advertises for each bound socket, for `check-config`, and the checks that
//! keep a wildcard out of `sip.advertised_address` and `media.public_address`.
//!
//! A wildcard (`0.0.0.0`, `::`) is fine to bind but means "nowhere" (or, in SDP, hold) to a peer,
//! so it is never written into Via, Contact, SDP or ICE candidates. What is written instead:
//! the configured address; else a concrete bound address; else the local address of the route
//! toward the peer, found per peer at run time.

use super::{Config, ConfigErrors, MainFile};
use std::net::IpAddr;
use std::path::Path;

/// Said for a wildcard socket with nothing configured: the address depends on the peer.
pub const ROUTE_TOWARD_THE_PEER: &str = "the local address of the route toward the peer";

impl Config {
    /// `bound -> advertised` for the SIP listeners and the media address, one line each.
    pub(super) fn advertised_lines(&self) -> Vec<String> {
        let configured = self.sip.advertised_address.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
        let mut lines: Vec<String> = self
            .sip
            .listen
            .iter()
            .map(|listen| {
                let ip = listen.address.ip();
                // The driver applies the configured address to listeners of its family only.
                let chosen = configured.filter(|c| c.is_ipv4() == ip.is_ipv4()).map(|c| format!("{c} (sip.advertised_address)"));
                format!("sip {} on {} -> Via/Contact: {}", listen.transport, listen.address, chosen.unwrap_or_else(|| plain(ip)))
            })
            .collect();
        let media = &self.media;
        let chosen = media.public_address.map(|p| format!("{p} (media.public_address)"));
        lines.push(format!("media on {} -> SDP c=/o=: {}", media.address, chosen.unwrap_or_else(|| plain(media.address))));
        lines
    }
}

fn plain(bound: IpAddr) -> String {
    if bound.is_unspecified() {
        ROUTE_TOWARD_THE_PEER.to_string()
    } else {
        bound.to_string()
    }
}

pub(super) fn validate(file: &Path, main: &MainFile, errors: &mut ConfigErrors) {
    if let Some(address) = &main.sip.advertised_address {
        match address.parse::<IpAddr>() {
            Err(_) => errors.push(file, "sip.advertised_address", format!("`{address}` is not an IP address")),
            Ok(ip) if ip.is_unspecified() => errors.push(file, "sip.advertised_address", format!("`{address}` cannot be advertised: peers cannot send to it")),
            Ok(_) => {}
        }
    }
    if main.media.public_address.is_some_and(|ip| ip.is_unspecified()) {
        errors.push(file, "media.public_address", "a wildcard cannot be advertised: SDP would put every call on hold");
    }
}
