//! Requests addressed to the gateway: OPTIONS, REGISTER for the local domain, CANCEL, and the trust
//! gate every dialog-creating request passes (the gateway is never an open relay).

use super::{CoreEvent, ServerMachine, SipCore};
use crate::config::{Profile, UserSecret};
use crate::sip::auth::{AuthFailure, AuthResult, DigestServer, Secret};
use crate::sip::message::ParsedRequest;
use crate::sip::registrar::{ContactInput, ContactsInput, RegisterInput, Registrar};
use crate::sip::syntax::{self, NameAddr};
use crate::sip::transaction::TransactionKey;
use crate::sip::uas_policy;
use crate::sip::Peer;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::Header;
use std::collections::HashMap;
use std::time::Instant;

pub(super) struct LocalDomain {
    pub profile: Profile,
    pub digest: DigestServer,
    pub registrar: Registrar<Peer>,
    /// Failed digest answers per source address: guessing is cut off after a few tries.
    pub failures: HashMap<std::net::IpAddr, (u32, Instant)>,
    /// `http.jwt_secret`: a valid `TOKEN_HEADER` stands in for a digest answer.
    pub token_secret: Option<Vec<u8>>,
}

/// The header a WebSocket SIP client (JsSIP, SIP.js `extraHeaders`) may carry the JSON
/// protocol's login token in, instead of answering a digest challenge.
pub const TOKEN_HEADER: &str = "X-Sipbridge-Token";
/// The same clock leeway the JSON protocol's login allows.
const TOKEN_LEEWAY_SECS: u64 = 30;

const MAX_AUTH_FAILURES: u32 = 10;
const AUTH_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
const MAX_TRACKED_SOURCES: usize = 10_000;

impl LocalDomain {
    /// The user a login token in `parsed` names, when tokens are accepted and it carries one.
    /// `Some(Err)` for a token that does not verify: that counts as a failed attempt.
    fn token_user(&self, parsed: &ParsedRequest, wall: std::time::SystemTime) -> Option<Result<String, ()>> {
        let secret = self.token_secret.as_deref()?;
        let token = find_header(parsed, |h| matches!(h, Header::Other(name, _) if name.eq_ignore_ascii_case(TOKEN_HEADER)))?;
        let now_unix = wall.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Some(crate::signaling::jwt::verify(token.trim(), secret, now_unix, TOKEN_LEEWAY_SECS).map(|claims| claims.sub).map_err(|_| ()))
    }

    fn guessing(&self, source: std::net::IpAddr, now: Instant) -> bool {
        self.failures.get(&source).is_some_and(|(count, since)| *count >= MAX_AUTH_FAILURES && now.saturating_duration_since(*since) < AUTH_FAILURE_WINDOW)
    }

    fn failed(&mut self, source: std::net::IpAddr, now: Instant) {
        if self.failures.len() >= MAX_TRACKED_SOURCES {
            self.failures.retain(|_, (_, since)| now.saturating_duration_since(*since) < AUTH_FAILURE_WINDOW);
        }
        if self.failures.len() >= MAX_TRACKED_SOURCES && !self.failures.contains_key(&source) {
            return;
        }
        let entry = self.failures.entry(source).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= AUTH_FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// Who a dialog-creating request is from, once the trust gate has let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerIdentity {
    TrustedPeer { profile: String },
    LocalUser { username: String },
}

enum Gate {
    Pass(CallerIdentity),
    Challenge { stale: bool },
    Refuse(&'static str),
}

impl SipCore {
    pub(super) fn dispatch_request(&mut self, key: TransactionKey, parsed: ParsedRequest, peer: Peer, now: Instant) {
        if let Err(refusal) = uas_policy::check(&parsed) {
            tracing::info!(source = %peer.remote, method = %parsed.method, status = refusal.status(), reason = %refusal, "refused request");
            return self.respond(&key, refusal.status(), refusal.headers(), Vec::new(), now);
        }
        match parsed.method.as_str() {
            "OPTIONS" => {
                let headers = vec![uas_policy::allow_header(), uas_policy::accept_header(), uas_policy::supported_header()];
                self.respond(&key, 200, headers, Vec::new(), now)
            }
            "REGISTER" => self.handle_register(key, parsed, peer, now),
            "CANCEL" => self.handle_cancel(key, now),
            "PRACK" => self.handle_prack(key, &parsed, now),
            "INVITE" if parsed.to.tag().is_none() => self.handle_new_dialog(key, parsed, peer, now),
            "BYE" => {
                if !self.handle_bye(&key, &parsed, now) {
                    self.respond(&key, 481, Vec::new(), Vec::new(), now)
                }
            }
            _ => self.handle_in_dialog(key, parsed, now),
        }
    }

    fn handle_cancel(&mut self, key: TransactionKey, now: Instant) {
        let invite_key = key.with_method("INVITE");
        let pending = matches!(
            self.server_transactions.get(&invite_key),
            Some(tx) if matches!(tx.machine, ServerMachine::Invite(_)) && !tx.final_sent
        );
        if pending {
            self.respond(&key, 200, Vec::new(), Vec::new(), now);
            self.respond(&invite_key, 487, Vec::new(), Vec::new(), now);
            self.call_cancelled(&invite_key);
        } else if self.server_transactions.contains_key(&invite_key) {
            // Already answered: the CANCEL changes nothing, but it did match (RFC 3261 §9.2).
            self.respond(&key, 200, Vec::new(), Vec::new(), now);
        } else {
            self.respond(&key, 481, Vec::new(), Vec::new(), now);
        }
    }

    /// RFC 3261 §10.3 for the local domain.
    fn handle_register(&mut self, key: TransactionKey, parsed: ParsedRequest, peer: Peer, now: Instant) {
        let wall = self.wall(now);
        let Some(local) = &mut self.local else {
            return self.respond(&key, 403, vec![reason("no local domain is configured")], Vec::new(), now);
        };
        let request_host = syntax::uri_host(&parsed.request.uri.to_string()).unwrap_or_default().to_string();
        if !local.profile.serves_domain(&request_host) {
            return self.respond(&key, 404, vec![reason("domain not served here")], Vec::new(), now);
        }
        if !parsed.to.is_sip_uri() {
            return self.respond(&key, 400, vec![reason("To must be a SIP or SIPS AOR")], Vec::new(), now);
        }
        if local.guessing(peer.remote.ip(), now) {
            if let Some(not_logged) = self.refusal_log.admit(now) {
                tracing::warn!(source = %peer.remote, not_logged, "REGISTER refused: too many failed attempts");
            }
            return self.respond(&key, 403, vec![reason("too many failed attempts; try later")], Vec::new(), now);
        }
        let credentials = find_header(&parsed, |h| matches!(h, Header::Authorization(_)));
        let users = &local.profile.users;
        let result = match (credentials, local.token_user(&parsed, wall)) {
            (None, Some(Ok(username))) => AuthResult::Ok { username },
            (None, Some(Err(()))) => AuthResult::Failed(AuthFailure::BadResponse),
            (None, None) => AuthResult::Failed(AuthFailure::UnsupportedScheme(String::new())),
            (Some(value), _) => local.digest.verify(
                "REGISTER",
                &parsed.request_uri,
                &value,
                |user, _realm| lookup_secret(users, user),
                wall,
            ),
        };
        let username = match result {
            AuthResult::Ok { username } => username,
            // A replayed nonce count carries a right answer (it is checked first): SIP.js sends its
            // last credentials again on un-REGISTER. A fresh nonce lets a genuine client answer,
            // gives a replaying stranger nothing, and no password was wrong.
            AuthResult::Stale | AuthResult::Failed(AuthFailure::NonceCountReplay) => return self.challenge(&key, 401, true, now),
            AuthResult::Failed(failure) if is_rechallenge(&failure) => return self.challenge(&key, 401, false, now),
            AuthResult::Failed(failure) => {
                if let Some(not_logged) = self.refusal_log.admit(now) {
                    tracing::warn!(source = %peer.remote, ?failure, not_logged, "REGISTER authentication failed");
                }
                if let Some(local) = &mut self.local {
                    local.failed(peer.remote.ip(), now);
                }
                return self.respond(&key, 403, vec![reason("authentication failed")], Vec::new(), now);
            }
        };
        if parsed.to.user() != Some(username.as_str()) {
            tracing::warn!(source = %peer.remote, %username, to = %crate::sip::mask::mask_uri(&parsed.to.uri), "user tried to register another AOR");
            return self.respond(&key, 403, vec![reason("may not register this address")], Vec::new(), now);
        }
        let domain = local.profile.domain.clone().unwrap_or_default();
        let aor = format!("sip:{username}@{domain}");
        let contacts = match contacts_input(&parsed) {
            Ok(contacts) => contacts,
            Err(e) => return self.respond(&key, 400, vec![reason(&e)], Vec::new(), now),
        };
        let expires_header = find_header(&parsed, |h| matches!(h, Header::Expires(_)))
            .map(|v| v.trim().parse::<u64>().map(|e| e.min(u64::from(u32::MAX)) as u32));
        let expires_header = match expires_header {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return self.respond(&key, 400, vec![reason("bad Expires")], Vec::new(), now),
        };
        let user_agent = find_header(&parsed, |h| matches!(h, Header::UserAgent(_)));
        let input = RegisterInput {
            aor: &aor,
            contacts,
            expires_header,
            call_id: &parsed.call_id,
            cseq: parsed.cseq,
            source: peer,
            user_agent: user_agent.as_deref(),
        };
        let Some(local) = &mut self.local else { return };
        match local.registrar.register(input, now) {
            Ok(bindings) => {
                let mut headers: Vec<Header> = bindings
                    .iter()
                    .map(|b| make_header("Contact", format!("<{}>;expires={}", b.contact_uri, b.remaining(now).as_secs())))
                    .collect();
                headers.push(uas_policy::allow_header());
                self.events.push_back(CoreEvent::StatusChanged);
                tracing::info!(%aor, source = %peer.remote, contacts = bindings.len(), "registered");
                self.respond(&key, 200, headers, Vec::new(), now)
            }
            Err(e) => {
                let mut headers = vec![reason(&e.to_string())];
                if let crate::sip::registrar::RegistrarError::IntervalTooBrief { min_expires } = e {
                    headers.push(make_header("Min-Expires", min_expires.to_string()));
                }
                self.respond(&key, e.status(), headers, Vec::new(), now)
            }
        }
    }

    /// Lets a valid login token (`TOKEN_HEADER`, signed with `secret`) authenticate REGISTERs and
    /// calls of the local domain instead of digest.
    pub fn accept_tokens(&mut self, secret: Vec<u8>) {
        if let Some(local) = &mut self.local {
            local.token_secret = Some(secret).filter(|s| !s.is_empty());
        }
    }

    /// A WebSocket flow closed: the bindings registered over it cannot be reached any more (a
    /// browser cannot be dialled back), so they go now rather than at their expiry.
    pub fn connection_closed(&mut self, connection: crate::sip::ConnectionId, _now: Instant) {
        let Some(local) = &mut self.local else { return };
        let removed = local.registrar.remove_where(|peer| peer.connection == Some(connection) && peer.transport.is_websocket());
        if removed > 0 {
            tracing::info!(connection, removed, "WebSocket flow closed: its registrations are removed");
            self.events.push_back(CoreEvent::StatusChanged);
        }
    }

    fn challenge(&mut self, key: &TransactionKey, status: u16, stale: bool, now: Instant) {
        let wall = self.wall(now);
        let Some(local) = &self.local else {
            return self.respond(key, 403, Vec::new(), Vec::new(), now);
        };
        let name = if status == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
        let headers = local.digest.challenge(wall, stale).into_iter().map(|c| make_header(name, c)).collect();
        self.respond(key, status, headers, Vec::new(), now);
    }

    /// The trust gate for requests that would create a dialog (a call).
    fn handle_new_dialog(&mut self, key: TransactionKey, parsed: ParsedRequest, peer: Peer, now: Instant) {
        match self.gate(&parsed, peer, now) {
            Gate::Challenge { stale } => {
                let wall = self.wall(now);
                let headers = match &self.local {
                    Some(local) => local.digest.challenge(wall, stale).into_iter().map(|c| make_header("Proxy-Authenticate", c)).collect(),
                    None => Vec::new(),
                };
                self.refuse_statelessly(&key, 407, headers, peer)
            }
            Gate::Refuse(why) => {
                self.counters.untrusted_refused += 1;
                if let Some(not_logged) = self.refusal_log.admit(now) {
                    tracing::warn!(source = %peer.remote, transport = %peer.transport, from = %crate::sip::mask::mask_uri(&parsed.from.uri), why, not_logged, "refused dialog from untrusted source");
                }
                self.refuse_statelessly(&key, 403, vec![reason(why)], peer)
            }
            Gate::Pass(identity) => {
                if parsed.max_forwards == Some(0) {
                    return self.respond(&key, 483, Vec::new(), Vec::new(), now);
                }
                // Stops the caller's Timer A retransmissions while the call layer routes.
                self.respond(&key, 100, Vec::new(), Vec::new(), now);
                tracing::info!(source = %peer.remote, ?identity, to = %crate::sip::mask::mask_uri(&parsed.to.uri), "incoming call");
                self.offer_call(key, &parsed, peer, identity, now);
            }
        }
    }

    fn gate(&mut self, parsed: &ParsedRequest, peer: Peer, now: Instant) -> Gate {
        let source = peer.remote.ip();
        // Address trust is for trunks and PBXs. A WebSocket flow is a browser softphone even when
        // it comes from a trunk's address (a shared NAT, a proxy in front): it authenticates.
        let trusted = if peer.transport.is_websocket() { None } else { self.profiles.iter().find(|p| p.is_trusted_source(source)) };
        if let Some(profile) = trusted {
            return Gate::Pass(CallerIdentity::TrustedPeer { profile: profile.name.clone() });
        }
        let wall = self.wall(now);
        let Some(local) = &mut self.local else { return Gate::Refuse("source address is not trusted") };
        let from_local = parsed.from.host().is_some_and(|h| local.profile.serves_domain(h));
        if !from_local {
            return Gate::Refuse("source address is not trusted");
        }
        if local.guessing(peer.remote.ip(), now) {
            return Gate::Refuse("too many failed attempts");
        }
        let Some(credentials) = find_header(parsed, |h| matches!(h, Header::ProxyAuthorization(_))) else {
            return match local.token_user(parsed, wall) {
                None => Gate::Challenge { stale: false },
                Some(Ok(username)) if parsed.from.user() == Some(username.as_str()) => Gate::Pass(CallerIdentity::LocalUser { username }),
                Some(Ok(_)) => Gate::Refuse("token user does not match From"),
                Some(Err(())) => {
                    local.failed(peer.remote.ip(), now);
                    Gate::Refuse("authentication failed")
                }
            };
        };
        let users = &local.profile.users;
        match local.digest.verify(&parsed.method, &parsed.request_uri, &credentials, |user, _| lookup_secret(users, user), wall) {
            AuthResult::Ok { username } if parsed.from.user() == Some(username.as_str()) => {
                Gate::Pass(CallerIdentity::LocalUser { username })
            }
            AuthResult::Ok { .. } => Gate::Refuse("authenticated user does not match From"),
            AuthResult::Stale | AuthResult::Failed(AuthFailure::NonceCountReplay) => Gate::Challenge { stale: true },
            AuthResult::Failed(failure) if is_rechallenge(&failure) => Gate::Challenge { stale: false },
            AuthResult::Failed(_) => {
                local.failed(peer.remote.ip(), now);
                Gate::Refuse("authentication failed")
            }
        }
    }
}

/// Failures where the phone simply has not answered our challenge properly yet: challenge again.
/// A wrong password is refused outright so a phone cannot loop.
fn is_rechallenge(failure: &AuthFailure) -> bool {
    matches!(
        failure,
        AuthFailure::UnsupportedScheme(_)
            | AuthFailure::UnsupportedAlgorithm(_)
            | AuthFailure::UnsupportedQop(_)
            | AuthFailure::Malformed(_)
            | AuthFailure::WrongRealm(_)
            | AuthFailure::BadNonce
    )
}

fn lookup_secret(users: &[crate::config::LocalUser], username: &str) -> Option<Secret> {
    users.iter().find(|u| u.username == username).map(|u| match &u.secret {
        UserSecret::Password(p) => Secret::Password(p.clone()),
        UserSecret::Ha1Md5(h) => Secret::Ha1 { md5: Some(h.clone()), sha256: None },
    })
}

fn find_header(parsed: &ParsedRequest, test: impl Fn(&Header) -> bool) -> Option<String> {
    parsed.request.headers.iter().find(|h| test(h)).map(|h| h.value().to_string())
}

fn reason(text: &str) -> Header {
    make_header("Warning", format!("399 sipbridge \"{}\"", text.replace('"', "'")))
}

fn contacts_input(parsed: &ParsedRequest) -> Result<ContactsInput, String> {
    let values: Vec<String> = parsed
        .request
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Contact(_)))
        .flat_map(|h| syntax::split_values(h.value()).into_iter().map(str::to_string).collect::<Vec<_>>())
        .collect();
    if values.is_empty() {
        return Ok(ContactsInput::None);
    }
    if values.iter().any(|v| v == "*") {
        return if values.len() == 1 { Ok(ContactsInput::Wildcard) } else { Err("`*` must be the only contact".into()) };
    }
    let mut contacts = Vec::new();
    for value in values {
        let contact = NameAddr::parse(&value).map_err(|e| e.0)?;
        let expires_param = match syntax::param(&contact.params, "expires").flatten() {
            None => None,
            Some(v) => Some(v.parse::<u64>().map(|e| e.min(u64::from(u32::MAX)) as u32).map_err(|_| format!("bad expires `{v}`"))?),
        };
        let q = syntax::param(&contact.params, "q").flatten().and_then(|q| q.parse::<f32>().ok());
        let instance = syntax::param(&contact.params, "+sip.instance").flatten().map(|s| s.trim_matches('"').to_string());
        contacts.push(ContactInput { uri: contact.uri.clone(), expires_param, q, instance, raw: value });
    }
    Ok(ContactsInput::List(contacts))
}
