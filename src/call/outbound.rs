//! A call from a browser to SIP: answer the browser's WebRTC offer, open the callees the dial
//! plan names (`call::route`, `call::callees`: every binding of a registered user, else the
//! number through the user's profile), and hand the legs to the call's task (`call::driver`),
//! where `Call` decides the rest (a SIP leg places its INVITE when `Call` rings it).

use super::call_log::CallLog;
use super::callees::{CalleeError, CallerSide};
use super::driver::browser_leg::BrowserLeg;
use super::driver::{CallTask, Leg};
use super::inbound::CallLayer;
use super::legs::browser_leg;
use super::machine::{mapping, Call, EndReason, LegKind, SessionDesc};
use super::registry::{BrowserAnswer, BrowserPush};
use super::route::{route, Callee, Caller, Directory, RouteError};
use crate::media::handler::Encoding;
use crate::media::worker::BrowserLegStart;
use crate::signaling::HangupReason;
use crate::store::{CallStatus, HangupSide};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the browser asked for in its `call` request.
pub struct OutboundCall {
    pub call_id: String,
    /// The connection that placed it (its requests carry this device id).
    pub device: u64,
    pub user: String,
    pub profile: Option<String>,
    pub target: String,
    pub browser_offer: String,
    /// The `codec` field: the only codec offered to the SIP side (transcoded when the browser's
    /// differs); `None` offers the browser's codec first, then every other one.
    pub sip_codec: Option<Encoding>,
}

/// Sets the call up and runs it; a call that cannot start is ended here with a `hangup` to the
/// browser and a record, without a `Call`.
pub async fn place(layer: Arc<CallLayer>, call: OutboundCall, push: mpsc::Sender<BrowserPush>, control: mpsc::Receiver<BrowserAnswer>) {
    let log = CallLog::outbound(&layer.records, &layer.stats, &call.call_id, &call.user, call.profile.as_deref(), &call.target);
    let refuse = |reason: HangupReason, cause: String, side: HangupSide, record: String| Refusal { reason, cause, side, record };
    if !layer.drain.accepting() {
        let (reason, cause) = mapping::browser_hangup(&EndReason::Draining);
        return refused(&push, &call.call_id, log, refuse(reason, cause, HangupSide::Gateway, mapping::SHUTDOWN_CAUSE.into())).await;
    }
    let Some(slot) = layer.acquire_slot(&call.user, call.profile.as_deref()) else {
        let refusal = refuse(HangupReason::Unavailable, "call limit reached; try again later".into(), HangupSide::Gateway, "call limit reached".into());
        return refused(&push, &call.call_id, log, refusal).await;
    };
    let start = BrowserLegStart::Answer { offer: call.browser_offer.clone(), forced_codec: None };
    let (handle, browser_answer, _, webrtc_events) = match layer.engine.open_browser_leg(start, &layer.webrtc_config(), rand::random()) {
        Ok(answered) => answered,
        Err(e) => return refused(&push, &call.call_id, log, refuse(HangupReason::Failed, e.to_string(), HangupSide::Browser, "the browser's offer was refused".into())).await,
    };
    let handle = Arc::new(handle);
    // The browser leg keeps the numbers it negotiated; the media session maps them to the SIP leg's.
    let Some((_, browser_format)) = browser_leg(&handle.media()) else {
        handle.close().await;
        return refused(&push, &call.call_id, log, refuse(HangupReason::Failed, "no usable codec".into(), HangupSide::Browser, "the browser's offer was refused".into())).await;
    };
    let callees = match route_call(&layer, &call).await {
        Ok(callees) => callees,
        Err(e) => {
            handle.close().await;
            return refused(&push, &call.call_id, log, refuse(HangupReason::NotFound, e.to_string(), HangupSide::Gateway, e.to_string())).await;
        }
    };
    let caller = CallerSide { call_id: &call.call_id, from_user: &call.user, codec: browser_format.encoding, forced: call.sip_codec, webrtc: Some(handle.as_ref()), incoming: None };
    let opened = match super::callees::open(&layer, &caller, &callees).await {
        Ok(opened) => opened,
        Err(e) => {
            handle.close().await;
            let reason = if e == CalleeError::NoMediaPort { HangupReason::Unavailable } else { HangupReason::Failed };
            let refusal = refuse(reason, e.to_string(), HangupSide::Gateway, e.to_string());
            return refused(&push, &call.call_id, log, refusal).await;
        }
    };
    let browser = BrowserLeg::new(call.device, &call.call_id, push, handle, browser_answer, None);
    let mut legs = vec![Leg::Browser(Box::new(browser))];
    legs.extend(opened.legs);
    let machine = Call::new(layer.call_config(None), LegKind::Browser, SessionDesc::new(call.browser_offer), &opened.kinds, std::time::Instant::now());
    let mut webrtc_events = vec![(0, webrtc_events)];
    webrtc_events.extend(opened.webrtc_events.into_iter().map(|(i, events)| (i + 1, events)));
    let sip_events = opened.sip_events.into_iter().map(|(i, events)| (i + 1, events)).collect();
    CallTask::new(layer.clone(), machine, legs, webrtc_events, sip_events, log, slot, control).run().await;
}

/// Who a browser's call rings, by the dial plan (`call::route`): a registered user's every
/// binding, else the number through the user's profile.
async fn route_call(layer: &CallLayer, call: &OutboundCall) -> Result<Vec<Callee>, RouteError> {
    let caller = Caller::Browser { user: call.user.clone(), profiles: call.profile.iter().cloned().collect() };
    let bindings = layer.sip.bindings_of(&call.target).await;
    route(&caller, &call.target, &Directory { browser_sessions: 0, bindings: &bindings })
}

/// A call that could not start: the browser's `hangup` and the record.
struct Refusal {
    reason: HangupReason,
    cause: String,
    side: HangupSide,
    record: String,
}

async fn refused(push: &mpsc::Sender<BrowserPush>, call_id: &str, log: CallLog, refusal: Refusal) {
    let _ = push.send(BrowserPush::Hangup { call_id: call_id.to_string(), reason: refusal.reason, cause: refusal.cause }).await;
    log.finish(CallStatus::Failed, refusal.side, &refusal.record, None);
}
