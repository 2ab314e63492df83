//! One call's record as the call layer fills it in: written when the call starts and again when
//! it ends (through the recorder's durable spool), with the media quality of both legs.

use crate::media::engine::SessionHandle;
use crate::media::session::Side;
use crate::sip::core::IncomingCall;
use crate::store::{CallDirection, CallRecord, CallStatus, HangupSide, LegQuality, RecorderHandle};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub struct CallLog {
    record: CallRecord,
    writer: RecorderHandle,
}

impl CallLog {
    pub fn inbound(writer: &RecorderHandle, call_id: &str, call: &IncomingCall, profile: Option<&str>) -> CallLog {
        let mut record = CallRecord::new(call_id.to_string(), CallDirection::Inbound, now_ms());
        record.sip_call_ids = vec![call.sip_call_id.clone()];
        record.profile = profile.map(str::to_string);
        record.from_uri = call.from_uri.clone();
        record.from_name = call.from_display.clone();
        record.to_uri = format!("sip:{}", call.to_user);
        record.browser_user = Some(call.to_user.clone());
        record.sip_remote = Some(call.source.to_string());
        record.event(record.started_at, "invite", format!("from {}", call.source));
        let log = CallLog { record, writer: writer.clone() };
        log.writer.write(&log.record);
        log
    }

    pub fn outbound(writer: &RecorderHandle, call_id: &str, user: &str, profile: Option<&str>, target: &str) -> CallLog {
        let mut record = CallRecord::new(call_id.to_string(), CallDirection::Outbound, now_ms());
        record.profile = profile.map(str::to_string);
        record.browser_user = Some(user.to_string());
        record.from_uri = format!("browser:{user}");
        record.to_uri = format!("sip:{target}");
        record.event(record.started_at, "call", format!("to {target}"));
        let log = CallLog { record, writer: writer.clone() };
        log.writer.write(&log.record);
        log
    }

    pub fn event(&mut self, kind: &str, detail: impl Into<String>) {
        self.record.event(now_ms(), kind, detail);
    }

    pub fn ringing(&mut self) {
        let at = now_ms();
        self.record.ringing_at.get_or_insert(at);
        self.record.event(at, "ringing", "");
    }

    pub fn answered(&mut self, sip_codec: &str, browser_codec: &str, transcoded: bool, device: Option<u64>) {
        let at = now_ms();
        self.record.answered_at = Some(at);
        self.record.sip_codec = Some(sip_codec.to_string());
        self.record.browser_codec = Some(browser_codec.to_string());
        self.record.transcoded = transcoded;
        self.record.browser_device = device.map(|d| format!("{d:016x}"));
        self.record.event(at, "answered", format!("{sip_codec} / {browser_codec}{}", if transcoded { ", transcoded" } else { "" }));
        self.writer.write(&self.record);
    }

    /// Per-leg quality from the media session, before it stops.
    pub async fn collect_quality(&mut self, media: &SessionHandle, sip: Side) {
        for (side, leg) in [(sip, "sip"), (sip.other(), "browser")] {
            let Ok(q) = media.quality(side).await else { continue };
            self.record.quality.push(LegQuality {
                leg: leg.into(),
                direction: "received".into(),
                packets: q.received_packets,
                loss_percent: q.loss_percent,
                jitter_ms: q.jitter_ms,
                rtt_ms: q.rtt_ms,
                mos: Some(q.mos),
            });
            self.record.quality.push(LegQuality {
                leg: leg.into(),
                direction: "sent".into(),
                packets: q.sent_packets,
                loss_percent: 0.0,
                jitter_ms: 0.0,
                rtt_ms: q.rtt_ms,
                mos: None,
            });
        }
    }

    /// The call's SIP messages, in order, for the ladder view.
    pub fn sip_messages(&mut self, entries: Vec<crate::sip::ladder::LadderEntry>) {
        self.record.sip_messages = entries
            .into_iter()
            .map(|e| crate::store::SipMessage { at: e.at, direction: if e.outgoing { "out".into() } else { "in".into() }, peer: e.peer, summary: e.summary, text: e.text })
            .collect();
    }

    pub fn add_sip_call_id(&mut self, call_id: &str) {
        if !call_id.is_empty() && !self.record.sip_call_ids.iter().any(|c| c == call_id) {
            self.record.sip_call_ids.push(call_id.to_string());
        }
    }

    pub fn sip_call_ids(&self) -> Vec<String> {
        self.record.sip_call_ids.clone()
    }

    pub fn finish(mut self, status: CallStatus, side: HangupSide, reason: &str, sip_code: Option<u16>) {
        self.record.finish(now_ms(), status, side, reason, sip_code);
        self.writer.write(&self.record);
    }
}
