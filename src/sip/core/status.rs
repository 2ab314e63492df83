//! A read-only snapshot of the SIP side for the HTTP API, metrics and logs.

use super::SipCore;
use crate::sip::registrar::Binding;
use crate::sip::Peer;
use crate::sip::options::PeerStatus;
use crate::sip::registration::RegistrationState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SipCounters {
    pub messages_received: u64,
    pub retransmissions_received: u64,
    pub untrusted_refused: u64,
    /// Responses the gateway sent, by status code (stateless refusals included).
    pub responses_sent: BTreeMap<u16, u64>,
    /// Messages dropped without an answer, by reason.
    pub dropped: BTreeMap<String, u64>,
}

impl SipCounters {
    pub(super) fn count_response(&mut self, status: u16) {
        *self.responses_sent.entry(status).or_default() += 1;
    }
    pub(super) fn count_drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_string()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamView {
    pub profile: String,
    /// idle, registering, registered, failed, unregistering, unregistered, or "not registering".
    pub registration: String,
    pub registered: bool,
    pub expires_in_secs: Option<u64>,
    pub retry_in_secs: Option<u64>,
    pub last_error: Option<String>,
    /// up, down or unknown; "not pinged" when the profile does not ping.
    pub peer_status: String,
    pub rtt_ms: Option<u64>,
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingView {
    pub aor: String,
    pub contact: String,
    pub source: String,
    pub transport: String,
    pub expires_in_secs: u64,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CoreStatus {
    pub upstreams: Vec<UpstreamView>,
    pub bindings: Vec<BindingView>,
    pub counters: SipCounters,
    pub server_transactions: usize,
    pub client_transactions: usize,
}

pub(super) fn snapshot(core: &SipCore, now: Instant) -> CoreStatus {
    let secs_until = |t: Instant| t.saturating_duration_since(now).as_secs();
    let upstreams = core
        .upstreams
        .iter()
        .map(|u| {
            let (registration, expires_in_secs, retry_in_secs) = match u.registration.as_ref().map(|r| r.state()) {
                None => ("not registering".to_string(), None, None),
                Some(RegistrationState::Idle) => ("idle".into(), None, None),
                Some(RegistrationState::Registering { .. }) => ("registering".into(), None, None),
                Some(RegistrationState::Registered { expires_at, .. }) => ("registered".into(), Some(secs_until(*expires_at)), None),
                Some(RegistrationState::Failed { retry_at, .. }) => ("failed".into(), None, Some(secs_until(*retry_at))),
                Some(RegistrationState::Unregistering) => ("unregistering".into(), None, None),
                Some(RegistrationState::Unregistered) => ("unregistered".into(), None, None),
            };
            let (peer_status, rtt_ms) = match u.pinger.as_ref().map(|p| p.status()) {
                None => ("not pinged".to_string(), None),
                Some(PeerStatus::Unknown) => ("unknown".into(), None),
                Some(PeerStatus::Up { last_rtt, .. }) => ("up".into(), Some(last_rtt.as_millis() as u64)),
                Some(PeerStatus::Down { .. }) => ("down".into(), None),
            };
            UpstreamView {
                profile: u.profile.name.clone(),
                registration,
                registered: u.registration.as_ref().is_some_and(|r| r.is_registered(now)),
                expires_in_secs,
                retry_in_secs,
                last_error: u.last_error.clone(),
                peer_status,
                rtt_ms,
                remote: u.resolved.map(|r| r.remote.to_string()),
            }
        })
        .collect();
    let bindings = core.local.as_ref().map(|local| binding_views(local.registrar.all(now), now)).unwrap_or_default();
    CoreStatus {
        upstreams,
        bindings,
        counters: core.counters.clone(),
        server_transactions: core.server_transactions.len(),
        client_transactions: core.client_transactions.len(),
    }
}

fn binding_views(bindings: Vec<(String, Binding<Peer>)>, now: Instant) -> Vec<BindingView> {
    bindings
        .into_iter()
        .map(|(aor, b)| BindingView {
            aor,
            contact: b.contact_uri.clone(),
            source: b.source.remote.to_string(),
            transport: b.source.transport.to_string(),
            expires_in_secs: b.remaining(now).as_secs(),
            user_agent: b.user_agent.clone(),
        })
        .collect()
}

impl SipCore {
    /// The bindings of `user` alone (`Registrar::of_user`), for routing a call: the status
    /// snapshot copies every binding, transaction count and counter.
    pub fn bindings_of(&self, user: &str, now: Instant) -> Vec<BindingView> {
        self.local.as_ref().map(|local| binding_views(local.registrar.of_user(user, now), now)).unwrap_or_default()
    }

    /// Where a call to `user` would go: the phone registered under that name, else the peer of
    /// `profile` (as `place_call` chooses). The call layer routes its media toward it.
    pub fn call_destination(&self, profile: Option<&str>, user: &str, now: Instant) -> Option<std::net::SocketAddr> {
        if let Some((_, peer, _)) = self.registered_phone(user, None, now) {
            return Some(peer.remote);
        }
        let upstream = self.upstreams.iter().find(|u| Some(u.profile.name.as_str()) == profile)?;
        upstream.resolved.map(|r| r.remote)
    }
}
