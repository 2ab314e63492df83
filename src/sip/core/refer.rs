//! A REFER from the peer of an answered call (RFC 3515, blind transfer): the peer asks the
//! gateway to connect the *other* party of the call to the Refer-To target. The core checks the
//! request, answers `202 Accepted`, opens the implicit `refer` subscription with a NOTIFY whose
//! sipfrag says `100 Trying`, and hands the target to the call layer
//! (`DialogEvent::ReferRequested`). The call layer reports how the new call went
//! (`call_refer_progress`): every final status ends the subscription with a last NOTIFY.
//!
//! Refused: no or several Refer-To (400), a target that is not a sip/sips URI naming a user or
//! number (403), an attended transfer (`Replaces` in the Refer-To, 403: not supported), and a
//! second REFER while one is in progress (491).

use super::calls::SipCallId;
use super::in_dialog::DialogEvent;
use super::routing::header_value;
use super::{CoreEvent, SipCore};
use crate::sip::syntax::NameAddr;
use crate::sip::transaction::TransactionKey;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Headers, Method};
use std::time::Instant;

/// How long the implicit subscription lasts unless a final NOTIFY ends it first (RFC 3515 §2.4.4
/// leaves the duration to the notifier).
const SUBSCRIPTION_SECS: u32 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    #[error("a REFER needs exactly one Refer-To")]
    ReferTo,
    #[error("the Refer-To target is not a user or number of a sip or sips URI")]
    Target,
    #[error("attended transfer (Replaces) is not supported")]
    Replaces,
    #[error("a transfer is already in progress")]
    InProgress,
}

impl ReferError {
    pub fn status(&self) -> u16 {
        match self {
            ReferError::ReferTo => 400,
            ReferError::Target | ReferError::Replaces => 403,
            ReferError::InProgress => 491,
        }
    }
}

/// The user part of the one Refer-To (a number or user name), or why the REFER is refused.
pub fn refer_target(headers: &Headers) -> Result<String, ReferError> {
    let values: Vec<String> = headers.iter().filter(|h| is_refer_to(h.name())).map(|h| h.value().to_string()).collect();
    let [value] = values.as_slice() else { return Err(ReferError::ReferTo) };
    let address = NameAddr::parse(value).map_err(|_| ReferError::ReferTo)?;
    if !address.is_sip_uri() {
        return Err(ReferError::Target);
    }
    if address.uri.split_once('?').is_some_and(|(_, query)| query.to_ascii_lowercase().contains("replaces=")) {
        return Err(ReferError::Replaces);
    }
    let user = address.user().ok_or(ReferError::Target)?;
    let user = user.replace("%2B", "+").replace("%2b", "+");
    if user.is_empty() || user.len() > 64 || !user.chars().all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c)) {
        return Err(ReferError::Target);
    }
    Ok(user)
}

fn is_refer_to(name: &str) -> bool {
    name.eq_ignore_ascii_case("Refer-To") || name == "r"
}

/// The sipfrag of a NOTIFY: the status line of the new call's latest answer.
fn sipfrag(status: u16) -> Vec<u8> {
    format!("SIP/2.0 {status} {}\r\n", crate::sip::response::reason_phrase(status)).into_bytes()
}

impl SipCore {
    /// The peer's REFER in the established dialog of `id`.
    pub(super) fn handle_peer_refer(&mut self, key: TransactionKey, id: SipCallId, cseq: u32, headers: &Headers, now: Instant) {
        let checked = refer_target(headers).and_then(|target| match self.established(id) {
            Some((_, session, _)) if session.refer_in.is_some() => Err(ReferError::InProgress),
            _ => Ok(target),
        });
        let target = match checked {
            Ok(target) => target,
            Err(e) => {
                tracing::info!(call = id, error = %e, "REFER refused");
                let reason = make_header("Reason", format!("SIP;cause={};text=\"{e}\"", e.status()));
                return self.respond(&key, e.status(), vec![reason], Vec::new(), now);
            }
        };
        if let Some((_, session, _)) = self.established(id) {
            session.refer_in = Some(cseq);
        }
        tracing::info!(call = id, %target, "REFER accepted");
        self.respond(&key, 202, Vec::new(), Vec::new(), now);
        self.notify_refer(id, 100, now);
        self.events.push_back(CoreEvent::Dialog(DialogEvent::ReferRequested { id, target }));
    }

    /// How the call toward the REFER's target is going: a NOTIFY with its status line; a final
    /// status (>= 200) ends the subscription.
    pub fn call_refer_progress(&mut self, id: SipCallId, status: u16, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        if session.refer_in.is_none() {
            return;
        }
        self.notify_refer(id, status, now);
        if status >= 200 {
            if let Some((_, session, _)) = self.established(id) {
                session.refer_in = None;
            }
        }
    }

    fn notify_refer(&mut self, id: SipCallId, status: u16, now: Instant) {
        let Some(cseq) = self.established(id).and_then(|(_, session, _)| session.refer_in) else { return };
        let state = if status >= 200 { "terminated;reason=noresource".to_string() } else { format!("active;expires={SUBSCRIPTION_SECS}") };
        let extra = vec![
            make_header("Event", format!("refer;id={cseq}")),
            make_header("Subscription-State", state),
            make_header("Content-Type", "message/sipfrag;version=2.0".into()),
        ];
        let _ = self.send_dialog_request(id, Method::Notify, extra, sipfrag(status), now);
    }
}

/// Whether `headers` name the `refer` event package.
pub(super) fn is_refer_event(headers: &Headers) -> bool {
    header_value(headers, "Event").is_some_and(|e| e.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("refer")))
}
