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
        let Some(user) = split_uri(aor).1 else { return };
        // A refresh finds its AOR indexed already: no allocation then.
        if self.by_user.get(user).is_some_and(|aors| aors.contains(aor)) {
            return;
        }
        self.by_user.entry(user.to_string()).or_default().insert(aor.to_string());
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
mod tests;
