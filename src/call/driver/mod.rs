//! One thin task per call: it owns the call's `Call` and its legs, feeds the call what the legs'
//! I/O reports (SIP events, the browsers' requests, WebRTC and media events, the drain, the
//! clock), `pump`s commands back to the legs, carries out what the legs queued, and writes the
//! call's record. Every decision is the machine's (`call::machine`); this file only moves data.
//!
//! No input is ever dropped: the SIP endpoint's per-call queue cannot fill (see
//! `sip::endpoint::CallEvents`), the browsers' requests arrive through a bounded channel the
//! connection waits on, and pushes to a browser wait for room in its connection's channel while
//! this task goes on taking inputs, so a slow browser delays only its own frames.

pub mod browser_leg;
mod media;
pub mod sip_leg;
pub mod sip_sdp;
mod transfer;

use crate::call::call_log::CallLog;
use crate::call::inbound::CallLayer;
use crate::call::limits::CallSlot;
use crate::call::machine::driver::{pump, CallLeg};
use crate::call::machine::{mapping, Call, CallEnd, CallEvent, EndReason, LegAction, LegInput};
use crate::call::registry::BrowserAnswer;
use crate::media::engine::SessionHandle;
use crate::sip::endpoint::SipCallEvent;
use browser_leg::BrowserLeg;
use sip_leg::SipLeg;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One leg of a call, as the driver holds it.
pub enum Leg {
    Sip(Box<SipLeg>),
    Browser(Box<BrowserLeg>),
}

impl CallLeg for Leg {
    fn execute(&mut self, action: LegAction, now: Instant) {
        match self {
            Leg::Sip(leg) => leg.execute(action, now),
            Leg::Browser(leg) => leg.execute(action, now),
        }
    }

    fn poll_input(&mut self) -> Option<LegInput> {
        match self {
            Leg::Sip(leg) => leg.poll_input(),
            Leg::Browser(leg) => leg.poll_input(),
        }
    }
}

/// Everything one call's task owns. The legs are any mix: the caller first (a browser, or a
/// SIP peer whose media is RTP, SDES or WebRTC), then every callee the route rang (browsers,
/// registered bindings, a trunk). The media session joins the caller and the callee that
/// answered (or, before the answer, the one SIP callee sending early media).
pub struct CallTask {
    pub layer: Arc<CallLayer>,
    pub call: Call,
    pub legs: Vec<Leg>,
    pub log: Option<CallLog>,
    pub slot: Option<CallSlot>,
    /// Every SIP leg's events, by the leg's index (a transfer's leg joins later).
    sip_events: LegReceivers<mpsc::UnboundedReceiver<SipCallEvent>>,
    pub control: mpsc::Receiver<BrowserAnswer>,
    pub media: Option<SessionHandle>,
    /// The leg the media session joins to the caller, once it started.
    partner: Option<usize>,
    /// Every WebRTC leg's events, by the leg's index, read straight from the worker's queues.
    webrtc: LegReceivers<mpsc::Receiver<crate::webrtc_leg::LegEvent>>,
    /// A transfer a SIP peer asked for, until its target answers or fails.
    transfer: Option<Box<transfer::PendingTransfer>>,
    /// Where the session's streams toward side A and B started, and where the next session must
    /// take a staying leg's stream up (after a transfer): a WebRTC leg keeps its SSRC, and its
    /// SRTP would take a sequence that jumps back for a replay.
    egress_seeds: [Option<crate::media::session::EgressSeeds>; 2],
    next_seeds: [Option<crate::media::session::EgressSeeds>; 2],
}

/// Receivers of events for some legs, by leg index.
pub type LegReceivers<T> = Vec<(usize, T)>;

impl CallTask {
    /// `webrtc_events[i]` are the WebRTC events of `legs[i]` (a browser leg, or a SIP leg whose
    /// peer's media is WebRTC); `sip_events[i]` those of the SIP leg `legs[i]`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        layer: Arc<CallLayer>,
        call: Call,
        legs: Vec<Leg>,
        webrtc_events: LegReceivers<mpsc::Receiver<crate::webrtc_leg::LegEvent>>,
        sip_events: LegReceivers<mpsc::UnboundedReceiver<SipCallEvent>>,
        log: CallLog,
        slot: CallSlot,
        control: mpsc::Receiver<BrowserAnswer>,
    ) -> CallTask {
        CallTask { layer, call, legs, log: Some(log), slot: Some(slot), sip_events, control, media: None, partner: None, webrtc: webrtc_events, transfer: None, egress_seeds: [None; 2], next_seeds: [None; 2] }
    }

    fn sip_leg(&mut self, index: usize) -> Option<&mut SipLeg> {
        match self.legs.get_mut(index) {
            Some(Leg::Sip(leg)) => Some(leg),
            _ => None,
        }
    }

    /// The SIP leg the record's SIP fields describe: of the two legs in the call, the plain SIP
    /// one (RTP or SDES), else a SIP one; before the answer, the caller or the first SIP callee.
    fn record_sip_index(&self) -> Option<usize> {
        let pair = [Some(0), self.partner.or_else(|| self.call.winner().map(|w| w.index()))];
        let is_sip = |i: &usize| matches!(self.legs.get(*i), Some(Leg::Sip(_)));
        let plain = |i: &usize| matches!(self.legs.get(*i), Some(Leg::Sip(s)) if s.webrtc.is_none());
        let in_call: Vec<usize> = pair.into_iter().flatten().collect();
        in_call.iter().copied().find(plain).or_else(|| in_call.iter().copied().find(is_sip)).or_else(|| (0..self.legs.len()).find(is_sip))
    }

    /// Runs the call to its end and its record to the store.
    pub async fn run(mut self) {
        let mut drain = self.layer.drain.watch();
        if !self.layer.drain.accepting() {
            self.call.shutdown(Instant::now());
        }
        loop {
            let events = pump(&mut self.call, &mut self.legs, Instant::now());
            let mut ended = None;
            for event in events {
                match event {
                    CallEvent::Ended(end) => ended = Some(end),
                    event => self.on_call_event(event).await,
                }
            }
            self.start_media();
            // Boxed: a transfer's futures are large and rare, and every call's task would
            // otherwise carry their room (what a call costs in memory counts).
            if self.transfer_asked() {
                Box::pin(self.start_transfer()).await;
            }
            let reported = self.flush_legs().await;
            // The record is finished once the legs have sent their last messages (our BYE or
            // CANCEL is queued at the endpoint before the ladder is asked for), so the ladder holds
            // them and waits for their answers.
            if let Some(end) = ended {
                self.finish(end).await;
            }
            if reported {
                continue;
            }
            // An ended call stays only to hand its browsers their last frames (a slow browser
            // gets them late, never not at all) or until their connections are gone. Its record
            // is written and its slot free by then.
            if self.call.is_ended() && !self.has_frames() {
                break;
            }
            let deadline = self.call.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
            tokio::select! {
                () = next_push(&mut self.legs, &self.layer.stats) => {}
                Some((index, event)) = next_sip_event(&mut self.sip_events) => self.on_sip_event(index, event),
                Some(event) = transfer::next_event(&mut self.transfer) => Box::pin(self.on_transfer_event(event)).await,
                Some(request) = self.control.recv() => self.on_request(request).await,
                Some((index, event)) = next_webrtc_event(&mut self.webrtc) => {
                    match self.legs.get_mut(index) {
                        Some(Leg::Browser(leg)) => leg.on_webrtc(event),
                        Some(Leg::Sip(leg)) => leg.on_webrtc(event),
                        None => {}
                    }
                }
                Some(event) = next_media_event(&mut self.media) => self.on_media_event(event),
                phase = drain.next_phase() => self.on_drain(phase),
                () = tokio::time::sleep_until(deadline.into()) => self.call.handle_timeout(Instant::now()),
            }
        }
        tracing::debug!("call task done");
    }

    /// Carries out what the legs queued; true when that gave the call something new.
    async fn flush_legs(&mut self) -> bool {
        let media = self.media.as_ref();
        let mut reported = false;
        for leg in &mut self.legs {
            match leg {
                Leg::Sip(sip) if sip.has_ops() => {
                    sip.flush(&self.layer.sip, media).await;
                    reported = true;
                }
                Leg::Browser(browser) if browser.has_work() => browser.flush().await,
                _ => {}
            }
        }
        for leg in &mut self.legs {
            if let (Leg::Sip(sip), Some(log)) = (leg, self.log.as_mut()) {
                if let Some(sip_call_id) = sip.placed_call_id.take() {
                    log.add_sip_call_id(&sip_call_id);
                }
            }
        }
        reported
    }

    fn has_frames(&self) -> bool {
        self.legs.iter().any(|l| matches!(l, Leg::Browser(b) if !b.outbox.is_empty() || b.has_work()))
    }

    fn on_sip_event(&mut self, index: usize, event: SipCallEvent) {
        if let SipCallEvent::Outbound(crate::sip::core::OutboundEvent::PeerSeen { remote, user_agent, .. }) = event {
            // A browser's call to SIP names its peer at once (a refusal is recorded with it);
            // otherwise the leg that answers is named at the answer (`record_answer`).
            if let (true, Some(log)) = (matches!(self.legs.first(), Some(Leg::Browser(_))), self.log.as_mut()) {
                log.sip_peer(remote, user_agent.clone());
            }
            if let Some(leg) = self.sip_leg(index) {
                leg.peer = Some((remote, user_agent));
            }
            return;
        }
        if let Some(leg) = self.sip_leg(index) {
            // A leg a transfer replaced may still hear of its own call (the BYE's end).
            if leg.id.is_some_and(|id| id != event.call()) {
                return;
            }
            leg.on_sip_event(event);
        }
    }

    /// A browser's request goes to the leg of the device that sent it; a reclaim to the leg
    /// whose connection dropped (the one that answered).
    async fn on_request(&mut self, request: BrowserAnswer) {
        let device = request.device();
        let index = match &request {
            BrowserAnswer::Reattach { .. } => self.browser_in_call(),
            _ => self.legs.iter().position(|l| matches!(l, Leg::Browser(b) if b.device == device)),
        };
        match index.and_then(|i| self.legs.get_mut(i)) {
            Some(Leg::Browser(leg)) => leg.on_request(request).await,
            _ => tracing::debug!(device, "a request from a device not in this call"),
        }
    }

    /// The browser leg that takes part in the call: the caller, else the callee that answered.
    fn browser_in_call(&self) -> Option<usize> {
        let winner = self.call.winner().map(|w| w.index()).or(self.partner);
        [Some(0), winner].into_iter().flatten().find(|i| matches!(self.legs.get(*i), Some(Leg::Browser(_))))
    }

    fn on_drain(&mut self, phase: crate::call::drain::DrainPhase) {
        use crate::call::drain::DrainPhase;
        match phase {
            DrainPhase::Running => {}
            DrainPhase::Draining => self.call.shutdown(Instant::now()),
            DrainPhase::Ending => self.call.abort(EndReason::Shutdown, Instant::now()),
        }
    }

    async fn on_call_event(&mut self, event: CallEvent) {
        match event {
            CallEvent::Ringing { .. } | CallEvent::EarlyMedia { .. } => self.with_log(|log| log.ringing()),
            CallEvent::Answered { callee } => self.record_answer(callee.index()),
            CallEvent::Challenged { .. } => self.with_log(|log| log.event("challenge", "answered an authentication challenge")),
            CallEvent::Hold { on_hold } => self.with_log(|log| log.event("hold", if on_hold { "on hold" } else { "resumed" })),
            CallEvent::Detached { until, .. } => {
                let grace_secs = until.saturating_duration_since(Instant::now()).as_secs();
                tracing::info!(grace_secs, "the browser's connection dropped; waiting for a reclaim");
                self.with_log(|log| log.event("detached", "the browser's connection dropped; waiting for a reclaim"));
            }
            CallEvent::Reattached { .. } => {
                tracing::info!("call reclaimed after a reconnect");
                self.with_log(|log| log.event("reclaimed", "the browser took the call back"));
            }
            CallEvent::Draining { .. } => self.with_log(|log| log.event("draining", "the gateway is draining")),
            // `run` holds an end back until the legs have flushed.
            CallEvent::Ended(end) => self.finish(end).await,
        }
    }

    fn with_log(&mut self, f: impl FnOnce(&mut CallLog)) {
        if let Some(log) = self.log.as_mut() {
            f(log);
        }
    }

    /// The record's end: media stops at once, the ladder joins without waiting, and the slot
    /// is free as soon as the record is written.
    async fn finish(&mut self, end: CallEnd) {
        tracing::info!(reason = ?end.reason, answered = end.answered, "call ended");
        let fields = mapping::record(&end);
        // The peer's own status where the machine only knows its class.
        let record_sip = self.record_sip_index();
        let own_status = record_sip.and_then(|i| self.sip_leg(i)).and_then(|s| s.final_status);
        let sip_status = fields.sip_status.map(|class| own_status.unwrap_or(class));
        let side = record_sip.and_then(|i| self.sip_leg(i)).map_or(crate::media::session::Side::A, |s| s.sdp.side);
        let Some(mut log) = self.log.take() else { return };
        log.mark_ended();
        if let Some(media) = self.media.take() {
            log.collect_quality(&media, side).await;
            media.stop().await;
        }
        for leg in &mut self.legs {
            if let Leg::Browser(browser) = leg {
                browser.release();
            }
        }
        // The ladder and the record are finished beside the call, which goes on handing its
        // browsers their last frames. When our BYE, CANCEL or refusal was the last message its
        // answer is still in flight: the endpoint hands the ladder over once that answer is in
        // it (or overdue), nothing else waits. The slot goes with the record, so a drain waits
        // for the record.
        let settle = self.legs.iter().any(|l| matches!(l, Leg::Sip(s) if s.ended_by_us));
        let (sip, slot) = (self.layer.sip.clone(), self.slot.take());
        tokio::spawn(async move {
            for sip_call_id in log.sip_call_ids() {
                log.sip_messages(sip.take_ladder(&sip_call_id, settle).await);
            }
            log.finish(fields.status, fields.side, &fields.cause, sip_status);
            drop(slot);
        });
    }
}

/// The next SIP event of any leg, with the leg's index; pending while none has one. The legs'
/// queues are polled in place (no task or channel per leg: what a call costs in memory counts).
fn next_sip_event(receivers: &mut LegReceivers<mpsc::UnboundedReceiver<SipCallEvent>>) -> impl std::future::Future<Output = Option<(usize, SipCallEvent)>> + '_ {
    std::future::poll_fn(move |cx| {
        let mut position = 0;
        while position < receivers.len() {
            match receivers[position].1.poll_recv(cx) {
                std::task::Poll::Ready(Some(event)) => return std::task::Poll::Ready(Some((receivers[position].0, event))),
                // A leg whose call is gone at the endpoint: nothing more comes from it.
                std::task::Poll::Ready(None) => drop(receivers.swap_remove(position)),
                std::task::Poll::Pending => position += 1,
            }
        }
        std::task::Poll::Pending
    })
}

/// The next WebRTC event of any leg, with the leg's index; `None` as the event once a leg's
/// queue is closed (its leg is gone at the worker), after which that queue is dropped. Pending
/// while no leg has one. Read here rather than through a task per leg: an event costs no extra
/// wake-up and a leg no task. The worker's queue (64 events) outlasts what a leg ever sends.
fn next_webrtc_event(receivers: &mut LegReceivers<mpsc::Receiver<crate::webrtc_leg::LegEvent>>) -> impl std::future::Future<Output = Option<(usize, Option<crate::webrtc_leg::LegEvent>)>> + '_ {
    std::future::poll_fn(move |cx| {
        for position in 0..receivers.len() {
            match receivers[position].1.poll_recv(cx) {
                std::task::Poll::Ready(Some(event)) => return std::task::Poll::Ready(Some((receivers[position].0, Some(event)))),
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Some((receivers.swap_remove(position).0, None))),
                std::task::Poll::Pending => {}
            }
        }
        std::task::Poll::Pending
    })
}

/// Hands one waiting push to its connection once the connection has room; pending while no leg
/// has anything to send. A push that has to wait is counted (`sipbridge_browser_push_waits_total`).
async fn next_push(legs: &mut [Leg], stats: &crate::call::call_log::CallStats) {
    let leg = legs.iter_mut().find_map(|l| match l {
        Leg::Browser(b) if !b.outbox.is_empty() => Some(b),
        _ => None,
    });
    let Some(leg) = leg else { return std::future::pending().await };
    let channel = leg.push.clone();
    let permit = match channel.try_reserve() {
        Ok(permit) => Ok(permit),
        Err(mpsc::error::TrySendError::Full(())) => {
            stats.push_waited();
            channel.reserve().await
        }
        Err(mpsc::error::TrySendError::Closed(())) => Err(mpsc::error::SendError(())),
    };
    let gone = match permit {
        Ok(permit) => {
            if let Some(push) = leg.outbox.pop_front() {
                permit.send(push);
            }
            false
        }
        Err(_) => true,
    };
    if gone {
        leg.connection_gone();
    }
}

async fn next_media_event(media: &mut Option<SessionHandle>) -> Option<crate::media::session::MediaEvent> {
    match media.as_mut() {
        Some(media) => media.events.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{next_webrtc_event, LegReceivers};
    use crate::webrtc_leg::LegEvent;
    use tokio::sync::mpsc;

    /// Each leg's events come tagged with its index, in order; a closed queue is reported once,
    /// as `None`, and is then gone, while the other legs' queues keep delivering.
    #[tokio::test]
    async fn webrtc_events_come_by_leg_and_a_closed_leg_is_reported_once() {
        let (first, first_rx) = mpsc::channel(4);
        let (second, second_rx) = mpsc::channel(4);
        let mut receivers: LegReceivers<_> = vec![(0, first_rx), (3, second_rx)];
        second.try_send(LegEvent::Connected).expect("room");
        second.try_send(LegEvent::Failed("ice".into())).expect("room");
        assert!(matches!(next_webrtc_event(&mut receivers).await, Some((3, Some(LegEvent::Connected)))));
        assert!(matches!(next_webrtc_event(&mut receivers).await, Some((3, Some(LegEvent::Failed(detail)))) if detail == "ice"));
        drop(first);
        assert!(matches!(next_webrtc_event(&mut receivers).await, Some((0, None))));
        assert_eq!(receivers.iter().map(|(index, _)| *index).collect::<Vec<_>>(), vec![3]);
        second.try_send(LegEvent::LocalCandidate(None)).expect("room");
        assert!(matches!(next_webrtc_event(&mut receivers).await, Some((3, Some(LegEvent::LocalCandidate(None))))));
        // Nothing waiting and a leg still open: pending, not an end.
        assert!(futures_util::FutureExt::now_or_never(next_webrtc_event(&mut receivers)).is_none());
    }
}
