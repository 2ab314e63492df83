//! The dial plan: who a call rings, whoever places it. One decision for every caller kind (a
//! sipbridge.js browser, a SIP-over-WebSocket client such as JsSIP or SIP.js, a registered desk
//! phone, a trusted trunk), so the JSON path and SIP over WebSocket route alike:
//!
//! - a user of the local domain (logged in with sipbridge.js, or registered) rings everywhere:
//!   every sipbridge.js session, and every registered binding (one INVITE each; WebRTC media
//!   for a binding that came over a WebSocket, RTP for a desk phone). The first answer wins;
//!   the others are cancelled (`call::machine`).
//! - anyone else is a number for a trunk or PBX: through the caller's first granted profile.
//!   A trusted peer is not relayed to another peer, and a user with no profile calls only local
//!   users.
//!
//! Pure: the caller's identity and what the registry and registrar hold come in, the callees
//! go out. Setting their legs up is `call::callees`.

use crate::sip::core::BindingView;

/// Who places the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A sipbridge.js user (JSON protocol), with the profiles its login grants.
    Browser { user: String, profiles: Vec<String> },
    /// A user of the local domain over SIP (a WebSocket client or a desk phone), authenticated
    /// by digest or token, with the profiles its configuration grants.
    LocalUser { user: String, profiles: Vec<String> },
    /// A trunk or PBX we trust by address.
    TrustedPeer { profile: String },
}

/// One party a call rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    /// Every sipbridge.js session the user is logged in on.
    Browsers { user: String },
    /// One registered binding of the user, at `contact`; `webrtc` when it registered over a
    /// WebSocket (RFC 7118), whose clients take only WebRTC media.
    Registered { user: String, contact: String, webrtc: bool },
    /// `number` at the peer of `profile`.
    Trunk { profile: String, number: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not a local user, and the caller may not call out (a trusted peer, or no profile).
    #[error("`{0}` is not a user here and this caller may not call out")]
    NotFound(String),
}

/// What the gateway knows about the dialled user: its sipbridge.js sessions and its bindings.
pub struct Directory<'a> {
    pub browser_sessions: usize,
    pub bindings: &'a [BindingView],
}

/// Whether a binding came over a WebSocket: its transport, or its Contact's `transport=ws|wss`.
pub fn over_websocket(binding: &BindingView) -> bool {
    let transport = binding.transport.to_ascii_lowercase();
    transport == "ws" || transport == "wss" || binding.contact.to_ascii_lowercase().contains(";transport=ws")
}

fn binding_of(binding: &BindingView, user: &str) -> bool {
    let aor = binding.aor.trim_start_matches('<');
    let aor = aor.strip_prefix("sips:").or_else(|| aor.strip_prefix("sip:")).unwrap_or(aor);
    aor.split('@').next() == Some(user)
}

/// The callees of a call from `caller` to `target`, in ringing order.
pub fn route(caller: &Caller, target: &str, directory: &Directory) -> Result<Vec<Callee>, RouteError> {
    let mut callees = Vec::new();
    // A browser calling a browser user is not a call this gateway bridges (no JSON-to-JSON legs).
    let browser_caller = matches!(caller, Caller::Browser { .. });
    if directory.browser_sessions > 0 && !browser_caller {
        callees.push(Callee::Browsers { user: target.to_string() });
    }
    for binding in directory.bindings.iter().filter(|b| binding_of(b, target)) {
        let contact = binding.contact.clone();
        callees.push(Callee::Registered { user: target.to_string(), contact, webrtc: over_websocket(binding) });
    }
    if !callees.is_empty() {
        return Ok(callees);
    }
    let profile = match caller {
        Caller::Browser { profiles, .. } | Caller::LocalUser { profiles, .. } => profiles.first(),
        Caller::TrustedPeer { .. } => None,
    };
    match profile {
        Some(profile) => Ok(vec![Callee::Trunk { profile: profile.clone(), number: target.to_string() }]),
        None => Err(RouteError::NotFound(target.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(aor: &str, contact: &str, transport: &str) -> BindingView {
        BindingView { aor: aor.into(), contact: contact.into(), source: "127.0.0.1:5060".into(), transport: transport.into(), expires_in_secs: 60, user_agent: None }
    }

    fn jssip(user: &str, n: u32) -> BindingView {
        binding(&format!("sip:{user}@example.com"), &format!("sip:x{n}@abc.invalid;transport=ws"), "wss")
    }

    fn local(user: &str, profiles: &[&str]) -> Caller {
        Caller::LocalUser { user: user.into(), profiles: profiles.iter().map(|p| p.to_string()).collect() }
    }

    #[test]
    fn a_user_rings_in_every_browser_session_and_at_every_binding() {
        let bindings = [jssip("alice", 1), jssip("alice", 2), binding("sip:alice@example.com", "sip:alice@127.0.0.1:5090", "udp"), jssip("bob", 3)];
        let directory = Directory { browser_sessions: 2, bindings: &bindings };
        let callees = route(&Caller::TrustedPeer { profile: "trunk".into() }, "alice", &directory).expect("routed");
        assert_eq!(callees.len(), 4, "{callees:?}");
        assert_eq!(callees[0], Callee::Browsers { user: "alice".into() });
        assert_eq!(callees[1], Callee::Registered { user: "alice".into(), contact: "sip:x1@abc.invalid;transport=ws".into(), webrtc: true });
        assert_eq!(callees[3], Callee::Registered { user: "alice".into(), contact: "sip:alice@127.0.0.1:5090".into(), webrtc: false });
        let from_browser = route(&Caller::Browser { user: "bob".into(), profiles: vec![] }, "alice", &directory).expect("routed");
        assert!(from_browser.iter().all(|c| matches!(c, Callee::Registered { .. })), "a browser rings the bindings only: {from_browser:?}");
    }

    #[test]
    fn anyone_else_is_a_number_for_the_callers_first_profile() {
        let bindings = [jssip("alice", 1)];
        let directory = Directory { browser_sessions: 0, bindings: &bindings };
        let callees = route(&local("alice", &["trunk", "pbx"]), "5551234", &directory).expect("routed");
        assert_eq!(callees, vec![Callee::Trunk { profile: "trunk".into(), number: "5551234".into() }]);
        assert_eq!(route(&local("alice", &[]), "5551234", &directory), Err(RouteError::NotFound("5551234".into())));
        let peer = Caller::TrustedPeer { profile: "trunk".into() };
        assert_eq!(route(&peer, "5551234", &directory), Err(RouteError::NotFound("5551234".into())), "no relay from peer to peer");
        assert!(route(&peer, "ali", &directory).is_err(), "the whole user part");
    }

    #[test]
    fn websocket_bindings_are_told_apart_by_transport_or_contact() {
        assert!(over_websocket(&jssip("a", 1)));
        assert!(over_websocket(&binding("sip:a@x", "sip:y@abc.invalid;transport=wss", "tls")));
        assert!(!over_websocket(&binding("sip:a@x", "sip:a@127.0.0.1:5090", "udp")));
    }
}
