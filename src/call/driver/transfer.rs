//! Blind transfer asked by the SIP peer (its REFER, RFC 3515, read in `sip/core/refer.rs`). The
//! gateway is a B2BUA: it connects the *other* party, the browser, to the Refer-To target itself.
//! The target is decided by the dial plan (`call::route`) as for a call the referrer places: a
//! number goes through the first trunk or PBX profile granted to the referrer (a local user:
//! `profiles` of its `[[users]]` entry), so a transfer reaches only what the referrer may call;
//! trunks and PBXs may not transfer (403). A local user (a sipbridge.js user or a registered
//! one) is not a transfer target yet: refused with 501, never sent to a trunk as a number. Meanwhile the call goes
//! on and the referrer hears the new call's progress in NOTIFYs. When the target answers, the
//! media session starts anew between the browser and the new leg, the referrer gets NOTIFY 200
//! and a BYE, and the new leg is the call's SIP side from then on: `Call` never knows. A target
//! that refuses or fails leaves the call as it was (the final NOTIFY says why).

use super::sip_leg::{Placement, SipLeg};
use super::sip_sdp::SipSdp;
use super::{CallTask, Leg};
use crate::call::machine::driver::CallLeg;
use crate::call::machine::LegInput;
use crate::call::route::{route, Callee, Caller, Directory, RouteError};
use crate::media::session::{EgressSeeds, Side};
use crate::sdp::{self, Codec, LocalCapabilities};
use crate::sip::endpoint::SipCallEvent;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The new leg toward the target, until it answers or fails.
pub(super) struct PendingTransfer {
    leg: SipLeg,
    events: mpsc::UnboundedReceiver<SipCallEvent>,
    target: String,
    /// The index of the referrer's leg, which the new one replaces once answered.
    replaces: usize,
}

/// A transfer to a local user: not carried out (the replacement leg is a trunk leg only).
pub const LOCAL_USER_REFUSED: u16 = 501;

/// The profile a transfer asked by `referrer` to `target` goes through, decided by the dial plan
/// as for a call the referrer places, or the status that refuses it: 403 not a local user (a
/// trunk or PBX) or a number it may not call, 404 a name that is nobody here and cannot go out,
/// 501 a local user (sipbridge.js sessions or registrations: never a number for a trunk).
pub fn transfer_profile(referrer: Option<&str>, target: &str, grants: &HashMap<String, Vec<String>>, directory: &Directory) -> Result<String, u16> {
    let user = referrer.ok_or(403u16)?;
    let profiles = grants.get(user).ok_or(403u16)?.clone();
    let caller = Caller::LocalUser { user: user.to_string(), profiles };
    match route(&caller, target, directory) {
        Ok(callees) => match callees.as_slice() {
            [Callee::Trunk { profile, .. }] => Ok(profile.clone()),
            _ => Err(LOCAL_USER_REFUSED),
        },
        Err(RouteError::NotFound(_)) if looks_like_a_number(target) => Err(403),
        Err(RouteError::NotFound(_)) => Err(404),
    }
}

fn looks_like_a_number(target: &str) -> bool {
    target.chars().all(|c| c.is_ascii_digit() || "+*#-.".contains(c))
}

/// Where a stream that sent `sent` packets from `seeds` goes on: a few packets further (some
/// may not be counted yet), and its timestamps a second further (20 ms packets at 48 kHz).
fn continued(seeds: EgressSeeds, sent: u64) -> EgressSeeds {
    let sent = sent + 10;
    EgressSeeds { sequence: seeds.sequence.wrapping_add(sent as u16), timestamp: seeds.timestamp.wrapping_add((sent as u32 + 50).wrapping_mul(960)), ..seeds }
}

/// The next SIP event of the transfer's new leg (never, without one).
pub(super) async fn next_event(transfer: &mut Option<Box<PendingTransfer>>) -> Option<SipCallEvent> {
    match transfer {
        Some(transfer) => transfer.events.recv().await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    /// Whether a leg's SIP peer asked for a transfer that `start_transfer` has not taken up.
    pub(super) fn transfer_asked(&self) -> bool {
        self.legs.iter().any(|leg| matches!(leg, Leg::Sip(sip) if sip.refer_requested.is_some()))
    }

    /// A SIP peer's REFER, if a leg in the call has one: the new leg is placed, or the REFER is
    /// refused in a NOTIFY (403 not answered yet or not allowed, 404 nobody, 491 a transfer
    /// already running, 501 a local user).
    pub(super) async fn start_transfer(&mut self) {
        let asked = self.legs.iter_mut().enumerate().find_map(|(i, leg)| match leg {
            Leg::Sip(sip) => sip.refer_requested.take().map(|target| (i, target, sip.referrer.clone(), sip.sdp.side)),
            Leg::Browser(_) => None,
        });
        let Some((index, target, referrer, side)) = asked else { return };
        let in_call = self.media.is_some() && !self.call.is_ended() && (index == 0 || Some(index) == self.partner);
        let profile = match (self.transfer.is_some(), in_call) {
            (true, _) => Err(491),
            (false, false) => Err(403),
            (false, true) => {
                let bindings = self.layer.sip.bindings_of(&target).await;
                let directory = Directory { browser_sessions: self.layer.browsers.devices(&target).len(), bindings: &bindings };
                transfer_profile(referrer.as_deref(), &target, &self.layer.user_profiles, &directory)
            }
        };
        let placed = match profile {
            Ok(profile) => self.place_transfer_leg(&profile, &target, referrer.unwrap_or_default(), side, index).await,
            Err(status) => Err(status),
        };
        match placed {
            Ok(transfer) => {
                tracing::info!(%target, "transferring the other party, as the SIP peer asked");
                self.transfer = Some(Box::new(transfer));
            }
            Err(status) => {
                tracing::info!(%target, status, "transfer refused");
                self.refer_progress(index, status).await;
            }
        }
    }

    async fn refer_progress(&mut self, index: usize, status: u16) {
        let media = self.media.as_ref();
        let Some(Leg::Sip(sip)) = self.legs.get_mut(index) else { return };
        sip.refer_progress(status);
        sip.flush(&self.layer.sip, media).await;
    }

    /// A SIP callee leg toward `target` through `profile`, on `side` of the media session (that
    /// of the leg `replaces`), placed at once.
    async fn place_transfer_leg(&self, profile: &str, target: &str, user: String, side: Side, replaces: usize) -> Result<PendingTransfer, u16> {
        let layer = &self.layer;
        let endpoint = layer.engine.allocate().await.map_err(|_| 503u16)?;
        let codecs = vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];
        let address = crate::call::callees::offer_media_address(layer, Some(profile), target).await;
        let mut offer = sdp::offer(&LocalCapabilities::new(codecs.clone()), address, endpoint.port, rand::random::<u32>().into(), 1);
        let srtp = layer.srtp.for_profile(Some(profile));
        crate::call::sdes::secure_offer(srtp, &mut offer).map_err(|_| 488u16)?;
        let sdp = SipSdp::new(side, address, endpoint.port, offer, None, codecs[0], srtp, None);
        let (events_tx, events) = mpsc::unbounded_channel();
        let placement = Placement { profile: Some(profile.to_string()), target: target.to_string(), binding: None, user, events: events_tx };
        let mut leg = SipLeg::callee(sdp, endpoint, placement);
        leg.place_now();
        leg.flush(&layer.sip, None).await;
        match leg.poll_input() {
            Some(LegInput::Rejected { .. }) => Err(404),
            _ => Ok(PendingTransfer { leg, events, target: target.to_string(), replaces }),
        }
    }

    /// What the new leg's call did: progress to the referrer, the switch on answer, or the end
    /// of the attempt.
    pub(super) async fn on_transfer_event(&mut self, event: SipCallEvent) {
        let Some(transfer) = self.transfer.as_mut() else { return };
        let referrer = transfer.replaces;
        transfer.leg.on_sip_event(event);
        transfer.leg.flush(&self.layer.sip, None).await;
        while let Some(input) = transfer.leg.poll_input() {
            match input {
                LegInput::Ringing | LegInput::EarlyMedia { .. } => return self.refer_progress(referrer, 180).await,
                LegInput::Answered { .. } => return self.complete_transfer().await,
                LegInput::Rejected { .. } | LegInput::Ended { .. } | LegInput::HungUp { .. } => {
                    let status = transfer.leg.final_status.filter(|s| *s >= 300).unwrap_or(503);
                    tracing::info!(status, target = %transfer.target, "the transfer target did not answer; the call goes on");
                    self.transfer = None;
                    return self.refer_progress(referrer, status).await;
                }
                _ => {}
            }
        }
    }

    /// The target answered: it replaces the referrer's leg, and the referrer is let go.
    async fn complete_transfer(&mut self) {
        let Some(PendingTransfer { leg, events, target, replaces }) = self.transfer.take().map(|t| *t) else { return };
        // The old session first: it holds the old leg's media, and a WebRTC leg can take part in
        // one session at a time. The staying leg's stream goes on in the new session a little
        // ahead of where the old one left it (sequence and timestamp), as after a pause.
        let staying = if replaces == 0 { Side::B } else { Side::A };
        if let Some(media) = self.media.take() {
            let sent = media.counters(staying).await.map_or(0, |c| c.sent_packets);
            self.next_seeds[staying.index()] = self.egress_seeds[staying.index()].map(|seeds| continued(seeds, sent));
        }
        let old = std::mem::replace(&mut self.legs[replaces], Leg::Sip(Box::new(leg)));
        self.sip_events.push((replaces, events));
        if let Leg::Sip(mut old) = old {
            old.refer_progress(200);
            old.end_now();
            old.flush(&self.layer.sip, None).await;
        }
        if let Some(log) = self.log.as_mut() {
            log.event("transfer", format!("the SIP peer transferred the call to {target}"));
        }
        tracing::info!(%target, "transfer done: the other party talks to the target");
        self.start_media();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::core::BindingView;

    #[test]
    fn the_new_session_takes_the_browsers_stream_up_ahead_of_the_old_one() {
        let seeds = EgressSeeds { ssrc: 7, sequence: 65_530, timestamp: u32::MAX - 100 };
        let next = continued(seeds, 100);
        assert_eq!((next.ssrc, next.sequence), (7, 104), "wrapped, 110 packets on");
        assert_eq!(next.timestamp, (u32::MAX - 100).wrapping_add(160 * 960));
    }

    #[test]
    fn a_transfer_to_a_number_goes_through_the_referrers_first_granted_profile() {
        let grants: HashMap<String, Vec<String>> = [("bob".to_string(), vec!["trunk".to_string(), "pbx".to_string()]), ("carol".to_string(), vec![])].into();
        let nobody = Directory { browser_sessions: 0, bindings: &[] };
        assert_eq!(transfer_profile(Some("bob"), "+15551234", &grants, &nobody), Ok("trunk".into()));
        assert_eq!(transfer_profile(Some("carol"), "+15551234", &grants, &nobody), Err(403), "a user with no profile");
        assert_eq!(transfer_profile(Some("carol"), "nobody", &grants, &nobody), Err(404), "a name that is nobody here");
        assert_eq!(transfer_profile(Some("dave"), "+15551234", &grants, &nobody), Err(403), "not a local user");
        assert_eq!(transfer_profile(None, "+15551234", &grants, &nobody), Err(403), "a trunk or PBX");
    }

    #[test]
    fn a_transfer_to_a_local_user_is_refused_never_sent_to_the_trunk() {
        let grants: HashMap<String, Vec<String>> = [("bob".to_string(), vec!["trunk".to_string()])].into();
        let browser_user = Directory { browser_sessions: 1, bindings: &[] };
        assert_eq!(transfer_profile(Some("bob"), "alice", &grants, &browser_user), Err(LOCAL_USER_REFUSED), "a sipbridge.js user");
        let phone = BindingView { aor: "sip:carol@example.com".into(), contact: "sip:carol@127.0.0.1:5090".into(), source: "127.0.0.1:5090".into(), transport: "udp".into(), expires_in_secs: 60, user_agent: None };
        let registered = Directory { browser_sessions: 0, bindings: std::slice::from_ref(&phone) };
        assert_eq!(transfer_profile(Some("bob"), "carol", &grants, &registered), Err(LOCAL_USER_REFUSED), "a registered user");
        assert_eq!(transfer_profile(Some("bob"), "dave", &grants, &registered), Ok("trunk".into()), "anyone else is a number, as for a call");
    }
}
