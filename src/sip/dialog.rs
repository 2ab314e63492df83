//! Dialog state (RFC 3261 §12), sans-IO.
//!
//! A dialog is the peer-to-peer relationship that in-dialog requests (re-INVITE, BYE, UPDATE,
//! INFO...) ride on. Getting the route set order or the strict/loose routing choice wrong sends
//! a BYE to the wrong hop and leaves a call hanging on the far side, so both are computed here
//! in one place and tested against the RFC examples.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Tags and Call-ID are compared byte-for-byte: RFC 3261 §20.8 makes Call-ID case-sensitive,
/// and treating tags the same way keeps `DialogId` usable as a plain hash key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogError {
    /// RFC 3261 §12.2.2: the owner answers 500.
    OutOfOrder { last: u32, received: u32 },
}

impl DialogError {
    pub fn status(&self) -> u16 {
        match self {
            Self::OutOfOrder { .. } => 500,
        }
    }
}

impl fmt::Display for DialogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfOrder { last, received } => write!(f, "CSeq {received} is lower than {last}"),
        }
    }
}

impl std::error::Error for DialogError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    pub request_uri: String,
    /// Route header values, in order, as name-addr values.
    pub routes: Vec<String>,
    /// The URI to resolve (RFC 3263) and send to.
    pub next_hop: String,
}

impl RequestTarget {
    /// The next hop as a socket address, when its URI names an IP literal (RFC 3263 DNS
    /// procedures are not run here: a host name yields `None` and the caller keeps its flow).
    pub fn next_hop_address(&self) -> Option<SocketAddr> {
        uri_socket_address(&self.next_hop)
    }
}

/// `sip:user@192.0.2.1:5070;transport=udp` -> 192.0.2.1:5070; `sips:` defaults to 5061.
pub fn uri_socket_address(uri: &str) -> Option<SocketAddr> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    let default_port = if scheme.eq_ignore_ascii_case("sips") { 5061 } else { 5060 };
    // The user part may hold ';' and '?', so the host starts after the last '@'.
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split([';', '?']).next()?;
    let (host, port) = crate::sip::syntax::split_host_port(host_port).ok()?;
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, port.unwrap_or(default_port)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    pub secure: bool,
    pub state: DialogState,
}

impl Dialog {
    /// UAS side (RFC 3261 §12.1.1): Record-Route values keep the order of the request. The local
    /// sequence number starts empty; 0 makes the first in-dialog request use CSeq 1.
    // The arguments mirror the RFC's list of dialog state fields; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new_uas(
        call_id: impl Into<String>,
        local_tag: impl Into<String>,
        remote_tag: impl Into<String>,
        local_uri: impl Into<String>,
        remote_uri: impl Into<String>,
        remote_target: impl Into<String>,
        record_route: Vec<String>,
        remote_cseq: u32,
        secure: bool,
    ) -> Self {
        Self {
            id: DialogId { call_id: call_id.into(), local_tag: local_tag.into(), remote_tag: remote_tag.into() },
            local_uri: local_uri.into(),
            remote_uri: remote_uri.into(),
            remote_target: remote_target.into(),
            route_set: record_route,
            local_cseq: 0,
            remote_cseq: Some(remote_cseq),
            secure,
            state: DialogState::Confirmed,
        }
    }

    /// UAC side (RFC 3261 §12.1.2): Record-Route values are reversed, because the response lists
    /// the proxies from the callee's end. `early` is true when built from a 1xx with a To tag.
    #[allow(clippy::too_many_arguments)]
    pub fn new_uac(
        call_id: impl Into<String>,
        local_tag: impl Into<String>,
        remote_tag: impl Into<String>,
        local_uri: impl Into<String>,
        remote_uri: impl Into<String>,
        remote_target: impl Into<String>,
        record_route: Vec<String>,
        local_cseq: u32,
        secure: bool,
        early: bool,
    ) -> Self {
        Self {
            id: DialogId { call_id: call_id.into(), local_tag: local_tag.into(), remote_tag: remote_tag.into() },
            local_uri: local_uri.into(),
            remote_uri: remote_uri.into(),
            remote_target: remote_target.into(),
            route_set: record_route.into_iter().rev().collect(),
            local_cseq,
            remote_cseq: None,
            secure,
            state: if early { DialogState::Early } else { DialogState::Confirmed },
        }
    }

    /// Saturates rather than wraps: CSeq must stay below 2^31 (RFC 3261 §8.1.1.5), which no
    /// real dialog approaches, and wrapping would make the peer reject everything as stale.
    pub fn next_local_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.saturating_add(1);
        self.local_cseq
    }

    /// Equal CSeq is accepted because ACK and CANCEL reuse the INVITE's number; retransmissions
    /// are the transaction layer's business.
    pub fn accept_remote_cseq(&mut self, cseq: u32) -> Result<(), DialogError> {
        match self.remote_cseq {
            Some(last) if cseq < last => Err(DialogError::OutOfOrder { last, received: cseq }),
            Some(last) if cseq == last => Ok(()),
            _ => {
                self.remote_cseq = Some(cseq);
                Ok(())
            }
        }
    }

    /// RFC 3261 §12.2.1.1.
    pub fn request_target(&self) -> RequestTarget {
        let Some((first, rest)) = self.route_set.split_first() else {
            return RequestTarget {
                request_uri: self.remote_target.clone(),
                routes: Vec::new(),
                next_hop: self.remote_target.clone(),
            };
        };
        let first_uri = name_addr_uri(first);
        if has_lr(first_uri) {
            return RequestTarget {
                request_uri: self.remote_target.clone(),
                routes: self.route_set.clone(),
                next_hop: first_uri.to_string(),
            };
        }
        // Strict router: it expects to find itself in the Request-URI, and the real target
        // travels at the end of the Route header so it is not lost.
        let request_uri = request_uri_form(first_uri);
        let mut routes = rest.to_vec();
        routes.push(format!("<{}>", self.remote_target));
        RequestTarget { next_hop: request_uri.clone(), request_uri, routes }
    }

    /// Target refresh (re-INVITE, UPDATE). The route set is deliberately left alone: RFC 3261
    /// §12.2 fixes it for the dialog's lifetime once confirmed.
    pub fn update_remote_target(&mut self, contact_uri: String) {
        self.remote_target = contact_uri;
    }

    /// UAC receiving the 2xx for an early dialog (RFC 3261 §13.2.2.4): the route set is
    /// recomputed from the 2xx, because proxies may record-route differently than in the 1xx.
    pub fn confirm_from_2xx(&mut self, mut record_route: Vec<String>, remote_target: String) {
        if self.state != DialogState::Early {
            return;
        }
        record_route.reverse();
        self.route_set = record_route;
        self.remote_target = remote_target;
        self.state = DialogState::Confirmed;
    }

    /// A terminated dialog stays terminated: a late 2xx must not resurrect it.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    pub fn matches(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        self.id.call_id == call_id && self.id.local_tag == local_tag && self.id.remote_tag == remote_tag
    }
}

/// The URI inside a name-addr (`"Name" <uri>;params`) or addr-spec value. Without angle
/// brackets, everything after the first ';' is a header parameter (RFC 3261 §20), not part
/// of the URI. Quotes are tracked so a '<' inside a display name is not taken for the URI.
pub fn name_addr_uri(value: &str) -> &str {
    let value = value.trim();
    let (mut in_quotes, mut escaped) = (false, false);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => {
                let inner = value.get(i + 1..).unwrap_or("");
                return inner.split('>').next().unwrap_or("").trim();
            }
            _ => {}
        }
    }
    value.split(';').next().unwrap_or("").trim()
}

/// `;lr` must be a URI parameter: it sits after the host (the user part may contain ';', hence
/// the last '@') and before any `?headers`.
fn has_lr(uri: &str) -> bool {
    let after_user = uri.rsplit('@').next().unwrap_or(uri);
    let params = after_user.split('?').next().unwrap_or("");
    params.split(';').skip(1).any(|p| p.split('=').next().unwrap_or("").trim().eq_ignore_ascii_case("lr"))
}

/// RFC 3261 §19.1.1 table: headers and the `method` parameter are not allowed in a Request-URI.
fn request_uri_form(uri: &str) -> String {
    // The user part may contain ';' and '?', so only what follows the last '@' is filtered.
    let (user, rest) = uri.rfind('@').map_or(("", uri), |at| uri.split_at(at + 1));
    let rest = rest.split('?').next().unwrap_or("");
    let mut out = user.to_string();
    for (i, p) in rest.split(';').enumerate() {
        let name = p.split('=').next().unwrap_or("").trim();
        if i == 0 {
            out.push_str(p);
        } else if !name.eq_ignore_ascii_case("method") {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

#[derive(Debug, Default)]
pub struct DialogTable {
    dialogs: HashMap<DialogId, Dialog>,
}

impl DialogTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the dialog it replaced, if one had the same id.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.dialogs.insert(dialog.id.clone(), dialog)
    }

    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    pub fn find(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> Option<&Dialog> {
        self.dialogs.get(&key(call_id, local_tag, remote_tag))
    }

    pub fn find_mut(&mut self, call_id: &str, local_tag: &str, remote_tag: &str) -> Option<&mut Dialog> {
        self.dialogs.get_mut(&key(call_id, local_tag, remote_tag))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs.values()
    }
}

fn key(call_id: &str, local_tag: &str, remote_tag: &str) -> DialogId {
    DialogId { call_id: call_id.into(), local_tag: local_tag.into(), remote_tag: remote_tag.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // RFC 3261 §16.12.1.2: U1 -> P1 -> P2 -> P3 (strict) -> P4 -> U2.
    const RR: [&str; 4] =
        ["<sip:p4.domain.com;lr>", "<sip:p3.middle.com>", "<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"];

    #[rustfmt::skip]
    fn uas() -> Dialog {
        Dialog::new_uas("cid", "u2tag", "u1tag", "sip:callee@domain.com", "sip:caller@example.com",
            "sip:caller@u1.example.com", rr(&RR), 1, false)
    }

    #[rustfmt::skip]
    fn uac(early: bool) -> Dialog {
        Dialog::new_uac("cid", "u1tag", "u2tag", "sip:caller@example.com", "sip:callee@domain.com",
            "sip:callee@u2.domain.com", rr(&RR), 1, false, early)
    }

    #[test]
    fn route_set_order_and_loose_routing() {
        let d = uas();
        assert_eq!(d.route_set, rr(&RR));
        let t = d.request_target();
        assert_eq!(t.request_uri, "sip:caller@u1.example.com");
        assert_eq!(t.routes, rr(&RR));
        assert_eq!(t.next_hop, "sip:p4.domain.com;lr");

        let d = uac(false);
        let reversed = rr(&[RR[3], RR[2], RR[1], RR[0]]);
        assert_eq!(d.route_set, reversed);
        let t = d.request_target();
        assert_eq!(
            (t.request_uri.as_str(), t.next_hop.as_str()),
            ("sip:callee@u2.domain.com", "sip:p1.example.com;lr")
        );
        assert_eq!(t.routes, reversed);
    }

    #[test]
    fn strict_routing_target() {
        // RFC 3261 §12.2.1.1 example.
        let mut d = uas();
        d.remote_target = "sip:user@remoteua".into();
        d.route_set = rr(&["<sip:proxy1?X-H=1>", "<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>"]);
        let t = d.request_target();
        assert_eq!(t.request_uri, "sip:proxy1");
        assert_eq!(t.next_hop, "sip:proxy1");
        assert_eq!(t.routes, rr(&["<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>", "<sip:user@remoteua>"]));
    }

    #[test]
    fn name_addr_and_params() {
        assert_eq!(name_addr_uri(r#""A <b>" <sip:x@h;lr>;tag=1"#), "sip:x@h;lr");
        assert_eq!(name_addr_uri(" sip:x@h;tag=1 "), "sip:x@h");
        assert!(has_lr("sip:p;transport=tcp;LR"));
        assert!(!has_lr("sip:a;lr@p;transport=tcp"));
        assert!(!has_lr("sip:p?lr"));
        assert_eq!(request_uri_form("sip:a;x=1@p;method=INVITE;transport=tcp?h=1"), "sip:a;x=1@p;transport=tcp");
    }

    #[test]
    fn next_hop_addresses() {
        let target = |hop: &str| RequestTarget { request_uri: String::new(), routes: Vec::new(), next_hop: hop.into() };
        assert_eq!(target("sip:127.0.0.1:5070;lr").next_hop_address(), Some("127.0.0.1:5070".parse().expect("a")));
        assert_eq!(target("sip:a;b@10.0.0.1;transport=tcp").next_hop_address(), Some("10.0.0.1:5060".parse().expect("a")));
        assert_eq!(target("sips:[2001:db8::1]").next_hop_address(), Some("[2001:db8::1]:5061".parse().expect("a")));
        assert_eq!(target("sip:proxy.example.com;lr").next_hop_address(), None);
        assert_eq!(target("garbage").next_hop_address(), None);
        let mut d = uac(false);
        d.route_set = rr(&["<sip:192.0.2.9:5062;lr>"]);
        assert_eq!(d.request_target().next_hop_address(), Some("192.0.2.9:5062".parse().expect("a")));
    }

    #[test]
    fn cseq_rules() {
        let mut d = uas();
        assert_eq!((d.next_local_cseq(), d.next_local_cseq()), (1, 2));
        assert_eq!(d.accept_remote_cseq(1), Ok(()));
        assert_eq!(d.accept_remote_cseq(5), Ok(()));
        let err = d.accept_remote_cseq(4).unwrap_err();
        assert_eq!((err.clone(), err.status()), (DialogError::OutOfOrder { last: 5, received: 4 }, 500));
        assert_eq!(d.remote_cseq, Some(5));

        let mut c = uac(true);
        assert_eq!((c.remote_cseq, c.next_local_cseq()), (None, 2));
        assert_eq!(c.accept_remote_cseq(100), Ok(()));
        assert_eq!(c.remote_cseq, Some(100));
    }

    #[test]
    fn target_refresh_keeps_route_set() {
        let mut d = uas();
        d.update_remote_target("sip:caller@10.1.1.1:5070".into());
        let t = d.request_target();
        assert_eq!((t.request_uri.as_str(), t.routes), ("sip:caller@10.1.1.1:5070", rr(&RR)));
        d.route_set.clear();
        let t = d.request_target();
        assert_eq!(
            (t.request_uri.as_str(), t.next_hop.as_str(), t.routes.len()),
            ("sip:caller@10.1.1.1:5070", "sip:caller@10.1.1.1:5070", 0)
        );
    }

    #[test]
    fn state_transitions() {
        let mut d = uac(true);
        assert_eq!(d.state, DialogState::Early);
        d.confirm_from_2xx(rr(&["<sip:only.example.com;lr>"]), "sip:callee@new".into());
        assert_eq!(
            (d.state, d.route_set.clone(), d.remote_target.as_str()),
            (DialogState::Confirmed, rr(&["<sip:only.example.com;lr>"]), "sip:callee@new")
        );
        d.terminate();
        d.confirm();
        assert_eq!(d.state, DialogState::Terminated);
        let mut e = uac(true);
        e.confirm();
        assert_eq!((e.state, uas().state), (DialogState::Confirmed, DialogState::Confirmed));
    }

    #[test]
    fn table_lookups() {
        let mut t = DialogTable::new();
        assert!(t.insert(uas()).is_none());
        assert!(t.insert(uac(true)).is_none());
        assert_eq!(t.len(), 2);
        assert!(t.find("cid", "u2tag", "u1tag").is_some_and(|d| d.matches("cid", "u2tag", "u1tag")));
        assert!(t.find("cid", "u2tag", "other").is_none());
        assert!(t.find("CID", "u2tag", "u1tag").is_none());
        if let Some(d) = t.find_mut("cid", "u1tag", "u2tag") {
            d.terminate();
        }
        let id = key("cid", "u1tag", "u2tag");
        assert_eq!(t.get(&id).map(|d| d.state), Some(DialogState::Terminated));
        assert!(t.get_mut(&id).is_some());
        assert!(t.remove(&id).is_some());
        assert_eq!((t.len(), t.is_empty(), t.iter().count()), (1, false, 1));
    }
}
