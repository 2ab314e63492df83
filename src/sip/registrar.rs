//! Location service for the local domain (RFC 3261 §10.3), sans-IO.
//!
//! The SIP core has already parsed, authenticated and authorised the REGISTER; this module only
//! decides what the binding table looks like afterwards. Every request is validated in full
//! before anything is written, so a refused REGISTER never leaves a half-applied update behind.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrarPolicy {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts_per_aor: usize,
}

impl Default for RegistrarPolicy {
    fn default() -> Self {
        Self { min_expires: 60, max_expires: 7200, default_expires: 3600, max_contacts_per_aor: 10 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContactInput {
    pub uri: String,
    pub expires_param: Option<u32>,
    pub q: Option<f32>,
    /// `+sip.instance` (RFC 5626): identifies the device across Contact URI changes.
    pub instance: Option<String>,
    /// The whole Contact value as received. Kept verbatim because re-serialising it could
    /// unescape embedded headers (RFC 4475 §3.1.1.13, "regescrt").
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContactsInput {
    Wildcard,
    List(Vec<ContactInput>),
    /// No Contact header: a query for the current bindings.
    None,
}

#[derive(Debug, Clone)]
pub struct RegisterInput<'a, S> {
    pub aor: &'a str,
    pub contacts: ContactsInput,
    pub expires_header: Option<u32>,
    pub call_id: &'a str,
    pub cseq: u32,
    pub source: S,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarError {
    IntervalTooBrief { min_expires: u32 },
    WildcardNotAlone,
    OutOfOrder,
    TooManyContacts { max: usize },
}

impl RegistrarError {
    pub fn status(&self) -> u16 {
        match self {
            Self::IntervalTooBrief { .. } => 423,
            Self::WildcardNotAlone => 400,
            Self::OutOfOrder => 500,
            Self::TooManyContacts { .. } => 403,
        }
    }
}

impl fmt::Display for RegistrarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IntervalTooBrief { min_expires } => write!(f, "interval too brief (min {min_expires}s)"),
            Self::WildcardNotAlone => f.write_str("'*' contact must be alone with Expires: 0"),
            Self::OutOfOrder => f.write_str("REGISTER out of order for this Call-ID"),
            Self::TooManyContacts { max } => write!(f, "too many contacts (max {max})"),
        }
    }
}

impl std::error::Error for RegistrarError {}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding<S> {
    pub contact_uri: String,
    pub raw: String,
    pub expires_at: Instant,
    pub q: f32,
    pub call_id: String,
    pub cseq: u32,
    pub source: S,
    pub instance: Option<String>,
    pub user_agent: Option<String>,
    /// When a REGISTER last created or refreshed this binding; `lookup` prefers fresher ones
    /// because a UA that re-registered recently is the one most likely still reachable.
    pub registered_at: Instant,
}

impl<S> Binding<S> {
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    fn matches(&self, contact: &ContactInput) -> bool {
        match (&self.instance, &contact.instance) {
            (Some(a), Some(b)) => a == b,
            _ => uri_eq(&self.contact_uri, &contact.uri),
        }
    }
}

pub struct Registrar<S> {
    policy: RegistrarPolicy,
    aors: HashMap<String, Vec<Binding<S>>>,
    /// The AORs of each user part, so that routing a call reads the dialled user's alone.
    by_user: HashMap<String, BTreeSet<String>>,
}

impl<S: Clone> Registrar<S> {
    pub fn new(policy: RegistrarPolicy) -> Self {
        Self { policy, aors: HashMap::new(), by_user: HashMap::new() }
    }

    pub fn register(&mut self, input: RegisterInput<'_, S>, now: Instant) -> Result<Vec<Binding<S>>, RegistrarError> {
        let key = canonical_aor(input.aor);
        // Expired bindings are dropped here rather than compared against: an expired binding
        // with a higher CSeq must not block a UA that comes back after its registration lapsed.
        let current: Vec<Binding<S>> =
            self.aors.get(&key).map(|b| b.iter().filter(|b| b.is_live(now)).cloned().collect()).unwrap_or_default();
        let out_of_order = |b: &Binding<S>| b.call_id == input.call_id && input.cseq <= b.cseq;

        let updated = match &input.contacts {
            ContactsInput::None => return Ok(sorted(current)),
            ContactsInput::Wildcard => {
                if input.expires_header != Some(0) {
                    return Err(RegistrarError::WildcardNotAlone);
                }
                if current.iter().any(out_of_order) {
                    return Err(RegistrarError::OutOfOrder);
                }
                Vec::new()
            }
            ContactsInput::List(contacts) => {
                // Validation runs against the stored table only, so a contact listed twice in one
                // request is not refused as "out of order" against its own earlier copy.
                let mut granted = Vec::with_capacity(contacts.len());
                for c in contacts {
                    if c.uri.trim() == "*" {
                        return Err(RegistrarError::WildcardNotAlone);
                    }
                    granted.push(self.granted_expires(c, input.expires_header)?);
                    if current.iter().any(|b| b.matches(c) && out_of_order(b)) {
                        return Err(RegistrarError::OutOfOrder);
                    }
                }
                let mut working = current.clone();
                for (c, expires) in contacts.iter().zip(granted) {
                    let pos = working.iter().position(|b| b.matches(c));
                    if expires == 0 {
                        if let Some(i) = pos {
                            working.remove(i);
                        }
                        continue;
                    }
                    let binding = Binding {
                        contact_uri: c.uri.trim().to_string(),
                        raw: c.raw.clone(),
                        expires_at: deadline(now, expires),
                        q: normalise_q(c.q),
                        call_id: input.call_id.to_string(),
                        cseq: input.cseq,
                        source: input.source.clone(),
                        instance: c.instance.clone(),
                        user_agent: input.user_agent.map(str::to_string),
                        registered_at: now,
                    };
                    match pos.and_then(|i| working.get_mut(i)) {
                        Some(slot) => *slot = binding,
                        None => working.push(binding),
                    }
                }
                // Only growth beyond the limit is refused, so a UA already above a lowered limit
                // can still refresh or shrink its set instead of being locked out.
                let max = self.policy.max_contacts_per_aor;
                if working.len() > max && working.len() > current.len() {
                    return Err(RegistrarError::TooManyContacts { max });
                }
                working
            }
        };

        if updated.is_empty() {
            self.aors.remove(&key);
            self.unindex(&key);
        } else {
            self.index(&key);
            self.aors.insert(key, updated.clone());
        }
        Ok(sorted(updated))
    }

    fn granted_expires(&self, c: &ContactInput, header: Option<u32>) -> Result<u32, RegistrarError> {
        let p = &self.policy;
        let requested = c.expires_param.or(header).unwrap_or(p.default_expires);
        if requested == 0 {
            return Ok(0);
        }
        if requested < p.min_expires {
            return Err(RegistrarError::IntervalTooBrief { min_expires: p.min_expires });
        }
        // A max below min is a misconfiguration; min wins so granted intervals never trigger 423.
        Ok(requested.min(p.max_expires.max(p.min_expires)))
    }

    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding<S>> {
        let live = self.aors.get(&canonical_aor(aor)).map(|b| b.iter().filter(|b| b.is_live(now)).cloned().collect());
        sorted(live.unwrap_or_default())
    }

    pub fn purge_expired(&mut self, now: Instant) -> usize {
        self.remove_bindings(|b| !b.is_live(now))
    }

    /// Removes every binding whose source matches, e.g. those registered over a flow that
    /// closed (RFC 5626 §5.2); returns how many went.
    pub fn remove_where(&mut self, gone: impl Fn(&S) -> bool) -> usize {
        self.remove_bindings(|b| gone(&b.source))
    }

    /// Removes the bindings `gone` names, and the AORs left without one; returns how many went.
    fn remove_bindings(&mut self, gone: impl Fn(&Binding<S>) -> bool) -> usize {
        let (mut removed, mut emptied) = (0, Vec::new());
        self.aors.retain(|aor, bindings| {
            let before = bindings.len();
            bindings.retain(|b| !gone(b));
            removed += before - bindings.len();
            if bindings.is_empty() {
                emptied.push(aor.clone());
            }
            !bindings.is_empty()
        });
        for aor in emptied {
            self.unindex(&aor);
        }
        removed
    }

    fn index(&mut self, aor: &str) {
        if let Some(user) = split_uri(aor).1 {
            self.by_user.entry(user.to_string()).or_default().insert(aor.to_string());
        }
    }

    fn unindex(&mut self, aor: &str) {
        let Some(user) = split_uri(aor).1 else { return };
        if let Some(aors) = self.by_user.get_mut(user) {
            aors.remove(aor);
            if aors.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    /// Includes bindings that expired but were not purged yet, so an overdue purge fires at once.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.aors.values().flatten().map(|b| b.expires_at).min()
    }

    pub fn all(&self, now: Instant) -> Vec<(String, Binding<S>)> {
        let mut aors: Vec<&String> = self.aors.keys().collect();
        aors.sort();
        aors.into_iter().flat_map(|aor| self.lookup(aor, now).into_iter().map(move |b| (aor.clone(), b))).collect()
    }

    /// The live bindings of every AOR whose user part is `user` (whatever its domain), in the
    /// order `all` gives them: what routing a call to `user` reads. Nothing of another user is
    /// copied, so a call costs the same with ten bindings or ten thousand.
    pub fn of_user(&self, user: &str, now: Instant) -> Vec<(String, Binding<S>)> {
        let aors = self.by_user.get(user).into_iter().flatten();
        aors.flat_map(|aor| self.lookup(aor, now).into_iter().map(move |b| (aor.clone(), b))).collect()
    }

    /// Stored bindings, including expired ones the owner has not purged yet.
    pub fn binding_count(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }
}

fn sorted<S>(mut bindings: Vec<Binding<S>>) -> Vec<Binding<S>> {
    bindings.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.registered_at.cmp(&a.registered_at)));
    bindings
}

/// RFC 3261 §20.10: q runs 0..=1; an absent q is treated as the top priority, as most
/// registrars do, so phones that never send q are not ranked below ones that do.
fn normalise_q(q: Option<f32>) -> f32 {
    match q {
        Some(q) if q.is_finite() => q.clamp(0.0, 1.0),
        _ => 1.0,
    }
}

/// `Instant + Duration` panics on overflow. A u32 of seconds (136 years) cannot overflow any
/// platform's Instant, but the fallback keeps the no-panic guarantee local and obvious.
fn deadline(now: Instant, secs: u32) -> Instant {
    now.checked_add(Duration::from_secs(u64::from(secs))).unwrap_or(now)
}

/// Splits a SIP URI into (scheme, userinfo, hostport, rest-with-params-and-headers).
/// The user part may legally contain ';' and '?', so it is delimited by the last '@' (which
/// cannot appear unescaped in params or headers) rather than by the first separator.
fn split_uri(uri: &str) -> (&str, Option<&str>, &str, &str) {
    let uri = uri.trim();
    let uri = uri.strip_prefix('<').and_then(|u| u.strip_suffix('>')).unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
    let (user, after_user) = match rest.rfind('@') {
        Some(i) => (rest.get(..i), rest.get(i + 1..).unwrap_or("")),
        None => (None, rest),
    };
    let end = after_user.find([';', '?']).unwrap_or(after_user.len());
    let (hostport, tail) = after_user.split_at(end);
    (scheme, user, hostport, tail)
}

/// AORs are keyed with scheme and domain lowercased so `sip:alice@EXAMPLE.com` and
/// `sip:alice@example.com` share bindings, while the user part stays case-sensitive.
fn canonical_aor(aor: &str) -> String {
    let (scheme, user, hostport, tail) = split_uri(aor);
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    format!("{}:{user}{}{tail}", scheme.to_ascii_lowercase(), hostport.to_ascii_lowercase())
}

/// Simplified RFC 3261 §19.1.4 comparison: scheme and host:port case-insensitive, userinfo
/// exact, URI parameters compared as an unordered case-insensitive set, headers exact.
/// Not implemented: %-escape normalisation, and the rule that a parameter present on only
/// one side is ignored (here `;ob` versus no `;ob` counts as a different contact).
fn uri_eq(a: &str, b: &str) -> bool {
    let (sa, ua, ha, ta) = split_uri(a);
    let (sb, ub, hb, tb) = split_uri(b);
    let (pa, xa) = ta.split_once('?').unwrap_or((ta, ""));
    let (pb, xb) = tb.split_once('?').unwrap_or((tb, ""));
    let params = |p: &str| {
        let mut v: Vec<String> = p.split(';').filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
        v.sort();
        v
    };
    sa.eq_ignore_ascii_case(sb) && ua == ub && ha.eq_ignore_ascii_case(hb) && params(pa) == params(pb) && xa == xb
}

#[cfg(test)]
mod tests {
    use super::ContactsInput::List;
    use super::*;

    const AOR: &str = "sip:alice@example.com";

    fn reg() -> Registrar<u8> {
        Registrar::new(RegistrarPolicy::default())
    }

    fn contact(uri: &str, expires: Option<u32>) -> ContactInput {
        ContactInput { uri: uri.into(), expires_param: expires, q: None, instance: None, raw: format!("<{uri}>") }
    }

    fn input(contacts: ContactsInput, expires: Option<u32>, call_id: &str, cseq: u32) -> RegisterInput<'_, u8> {
        RegisterInput { aor: AOR, contacts, expires_header: expires, call_id, cseq, source: 7, user_agent: Some("ua") }
    }

    type Res = Result<Vec<Binding<u8>>, RegistrarError>;

    fn one(r: &mut Registrar<u8>, uri: &str, exp: Option<u32>, cid: &str, cseq: u32, now: Instant) -> Res {
        r.register(input(List(vec![contact(uri, exp)]), None, cid, cseq), now)
    }

    #[test]
    fn add_refresh_and_query() {
        let (mut r, t0) = (reg(), Instant::now());
        let b = one(&mut r, "sip:a@10.0.0.1", None, "c1", 1, t0).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].remaining(t0), Duration::from_secs(3600));
        assert_eq!((b[0].raw.as_str(), b[0].source, b[0].user_agent.as_deref()), ("<sip:a@10.0.0.1>", 7, Some("ua")));
        let t1 = t0 + Duration::from_secs(100);
        let b = one(&mut r, "sip:a@10.0.0.1", Some(600), "c1", 2, t1).unwrap();
        assert_eq!((b.len(), b[0].expires_at, b[0].cseq), (1, t1 + Duration::from_secs(600), 2));
        let q = r.register(input(ContactsInput::None, None, "other", 1), t1).unwrap();
        assert_eq!(q, b);
        assert_eq!(r.lookup("sip:alice@EXAMPLE.COM", t1), b);
        assert_eq!(r.binding_count(), 1);
    }

    #[test]
    fn of_user_reads_that_user_alone_in_every_domain() {
        let (mut r, t0) = (reg(), Instant::now());
        one(&mut r, "sip:a@h1.invalid", None, "c1", 1, t0).unwrap();
        for (aor, contact_uri) in [("sip:alice@other.example", "sip:a@h2.invalid"), ("sip:alicia@example.com", "sip:b@h3.invalid"), ("sip:bob@example.com", "sip:c@h4.invalid")] {
            let mut other = input(List(vec![contact(contact_uri, Some(60))]), None, "c2", 1);
            other.aor = aor;
            r.register(other, t0).unwrap();
        }
        let alice = r.of_user("alice", t0);
        let alice: Vec<(&str, &str)> = alice.iter().map(|(aor, b)| (aor.as_str(), b.contact_uri.as_str())).collect();
        assert_eq!(alice, [("sip:alice@example.com", "sip:a@h1.invalid"), ("sip:alice@other.example", "sip:a@h2.invalid")]);
        let everyone: Vec<(String, Binding<u8>)> = r.all(t0).into_iter().filter(|(aor, _)| aor.starts_with("sip:alice@")).collect();
        assert_eq!(r.of_user("alice", t0), everyone, "the same bindings, in the same order, as the whole table gives");
        assert!(r.of_user("ali", t0).is_empty() && r.of_user("example.com", t0).is_empty());
        let later = t0 + Duration::from_secs(61);
        assert!(r.of_user("bob", later).is_empty(), "expired bindings are not routed to");
        assert_eq!(r.purge_expired(later), 3);
        assert_eq!(r.by_user.keys().collect::<Vec<_>>(), ["alice"], "a user without AORs leaves the index");
        assert_eq!(r.remove_where(|source| *source == 7), 1);
        assert!(r.by_user.is_empty() && r.of_user("alice", t0).is_empty());
    }

    #[test]
    fn bindings_of_a_closed_flow_go_and_others_stay() {
        let (mut r, t0) = (reg(), Instant::now());
        one(&mut r, "sip:a@h1.invalid", None, "c1", 1, t0).unwrap();
        let mut other = input(List(vec![contact("sip:a@h2.invalid", None)]), None, "c2", 1);
        other.source = 8;
        r.register(other, t0).unwrap();
        assert_eq!(r.remove_where(|source| *source == 7), 1);
        let left = r.lookup(AOR, t0);
        assert_eq!((left.len(), left[0].contact_uri.as_str()), (1, "sip:a@h2.invalid"));
        assert_eq!(r.remove_where(|source| *source == 7), 0);
        assert_eq!(r.remove_where(|source| *source == 8), 1);
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn several_contacts_and_remove_one() {
        let (mut r, t0) = (reg(), Instant::now());
        let cs = vec![contact("sip:a@h1", None), contact("sip:a@h2", None), contact("sip:a@h3", None)];
        assert_eq!(r.register(input(List(cs), Some(300), "c1", 1), t0).unwrap().len(), 3);
        let b = one(&mut r, "SIP:a@H2", Some(0), "c1", 2, t0).unwrap();
        let uris: Vec<&str> = b.iter().map(|b| b.contact_uri.as_str()).collect();
        assert!(uris.contains(&"sip:a@h1") && uris.contains(&"sip:a@h3") && uris.len() == 2);
        assert!(b.iter().all(|b| b.remaining(t0) == Duration::from_secs(300)));
    }

    #[test]
    fn wildcard_removes_all_and_must_be_alone() {
        let (mut r, t0) = (reg(), Instant::now());
        let cs = vec![contact("sip:a@h1", None), contact("sip:a@h2", None)];
        r.register(input(List(cs), None, "c1", 1), t0).unwrap();
        let bad = r.register(input(ContactsInput::Wildcard, Some(60), "c2", 1), t0);
        assert_eq!(bad, Err(RegistrarError::WildcardNotAlone));
        assert_eq!(RegistrarError::WildcardNotAlone.status(), 400);
        let mixed = List(vec![contact("*", None), contact("sip:a@h3", None)]);
        assert_eq!(r.register(input(mixed, Some(0), "c2", 1), t0), Err(RegistrarError::WildcardNotAlone));
        assert_eq!(r.register(input(ContactsInput::Wildcard, Some(0), "c1", 1), t0), Err(RegistrarError::OutOfOrder));
        assert_eq!(r.binding_count(), 2);
        assert!(r.register(input(ContactsInput::Wildcard, Some(0), "c2", 1), t0).unwrap().is_empty());
        assert_eq!((r.binding_count(), r.all(t0).len()), (0, 0));
    }

    #[test]
    fn expiry_purge_and_next_expiry() {
        let (mut r, t0) = (reg(), Instant::now());
        one(&mut r, "sip:a@h1", Some(60), "c1", 1, t0).unwrap();
        one(&mut r, "sip:a@h2", Some(120), "c1", 2, t0).unwrap();
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(r.lookup(AOR, t1).len(), 1);
        assert_eq!(r.purge_expired(t1), 1);
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(120)));
        assert_eq!(r.purge_expired(t0 + Duration::from_secs(121)), 1);
        assert_eq!((r.next_expiry(), r.binding_count()), (None, 0));
    }

    #[test]
    fn too_brief_is_atomic_and_long_is_clamped() {
        let (mut r, t0) = (reg(), Instant::now());
        let cs = vec![contact("sip:a@h1", Some(3600)), contact("sip:a@h2", Some(30))];
        let err = r.register(input(List(cs), None, "c1", 1), t0).unwrap_err();
        assert_eq!((err.clone(), err.status()), (RegistrarError::IntervalTooBrief { min_expires: 60 }, 423));
        assert_eq!(r.binding_count(), 0);
        let b = one(&mut r, "sip:a@h1", Some(999_999), "c1", 2, t0).unwrap();
        assert_eq!(b[0].remaining(t0), Duration::from_secs(7200));
    }

    #[test]
    fn out_of_order_and_call_id_change() {
        let (mut r, t0) = (reg(), Instant::now());
        one(&mut r, "sip:a@h1", None, "c1", 5, t0).unwrap();
        assert_eq!(one(&mut r, "sip:a@h1", Some(0), "c1", 5, t0), Err(RegistrarError::OutOfOrder));
        assert_eq!(one(&mut r, "sip:a@h1", None, "c1", 4, t0).map_err(|e| e.status()), Err(500));
        let b = one(&mut r, "sip:a@h1", None, "c2", 1, t0).unwrap();
        assert_eq!((b.len(), b[0].call_id.as_str(), b[0].cseq), (1, "c2", 1));
    }

    #[test]
    fn instance_id_match_replaces_changed_uri() {
        let (mut r, t0) = (reg(), Instant::now());
        let inst = Some("<urn:uuid:1>".to_string());
        let c1 = ContactInput { instance: inst.clone(), ..contact("sip:a@10.0.0.1:5060", None) };
        r.register(input(List(vec![c1]), None, "c1", 1), t0).unwrap();
        let c2 = ContactInput { instance: inst.clone(), ..contact("sip:a@10.0.0.2:6000", None) };
        let b = r.register(input(List(vec![c2]), None, "c1", 2), t0).unwrap();
        assert_eq!((b.len(), b[0].contact_uri.as_str()), (1, "sip:a@10.0.0.2:6000"));
        let c3 = ContactInput { instance: Some("<urn:uuid:2>".into()), ..contact("sip:a@10.0.0.2:6000", None) };
        assert_eq!(r.register(input(List(vec![c3]), None, "c1", 3), t0).unwrap().len(), 2);
    }

    #[test]
    fn max_contacts() {
        let (mut r, t0) = (reg(), Instant::now());
        let cs: Vec<_> = (0..10).map(|i| contact(&format!("sip:a@h{i}"), None)).collect();
        r.register(input(List(cs), None, "c1", 1), t0).unwrap();
        let err = one(&mut r, "sip:a@h10", None, "c1", 2, t0).unwrap_err();
        assert_eq!((err, r.binding_count()), (RegistrarError::TooManyContacts { max: 10 }, 10));
        assert_eq!(one(&mut r, "sip:a@h3", None, "c1", 3, t0).unwrap().len(), 10);
    }

    #[test]
    fn lookup_orders_by_q_then_recency() {
        let (mut r, t0) = (reg(), Instant::now());
        let low = ContactInput { q: Some(0.1), ..contact("sip:a@low", None) };
        let hi = ContactInput { q: Some(0.9), ..contact("sip:a@hi", None) };
        r.register(input(List(vec![low, hi]), None, "c1", 1), t0).unwrap();
        let t1 = t0 + Duration::from_secs(5);
        let hi2 = ContactInput { q: Some(0.9), ..contact("sip:a@hi2", None) };
        r.register(input(List(vec![hi2]), None, "c1", 2), t1).unwrap();
        let order: Vec<String> = r.lookup(AOR, t1).into_iter().map(|b| b.contact_uri).collect();
        assert_eq!(order, ["sip:a@hi2", "sip:a@hi", "sip:a@low"]);
    }

    #[test]
    fn uri_comparison() {
        assert!(uri_eq("sip:Bob@EXAMPLE.com;transport=TCP;ob", "SIP:Bob@example.COM;ob;transport=tcp"));
        assert!(!uri_eq("sip:bob@example.com", "sip:BOB@example.com"));
        assert!(!uri_eq("sip:bob@example.com", "sips:bob@example.com"));
        assert!(uri_eq("sip:+1;npdi@h", "sip:+1;npdi@H"));
        assert_eq!(canonical_aor("SIP:Alice@Example.COM"), "sip:Alice@example.com");
    }
}
