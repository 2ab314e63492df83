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

/// Totals for /metrics, fed by every call's record as it closes.
#[derive(Default)]
pub struct CallStats {
    ended: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    transcoding: std::sync::atomic::AtomicI64,
    rtp_received: std::sync::atomic::AtomicU64,
    rtp_lost: std::sync::atomic::AtomicU64,
    /// Pushes to a browser that found its connection's channel full and waited for room.
    push_waits: std::sync::atomic::AtomicU64,
}

impl CallStats {
    pub fn push_waited(&self) {
        self.push_waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn push_waits(&self) -> u64 {
        self.push_waits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn ended_by_status(&self) -> Vec<(&'static str, u64)> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn transcoding_sessions(&self) -> i64 {
        self.transcoding.load(std::sync::atomic::Ordering::Relaxed).max(0)
    }

    /// RTP packets received by the gateway on finished calls, and those lost on the way.
    pub fn rtp(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.rtp_received.load(Relaxed), self.rtp_lost.load(Relaxed))
    }
}

pub struct CallLog {
    record: CallRecord,
    writer: RecorderHandle,
    stats: std::sync::Arc<CallStats>,
    /// When the call ended, if that was before the record is finished (its ladder may still be
    /// waiting for the answer to our BYE).
    ended_at: Option<i64>,
}

impl CallLog {
    pub fn inbound(writer: &RecorderHandle, stats: &std::sync::Arc<CallStats>, call_id: &str, call: &IncomingCall, profile: Option<&str>) -> CallLog {
        let mut record = CallRecord::new(call_id.to_string(), CallDirection::Inbound, now_ms());
        record.sip_call_ids = vec![call.sip_call_id.clone()];
        record.profile = profile.map(str::to_string);
        record.from_uri = call.from_uri.clone();
        record.from_name = call.from_display.clone();
        record.to_uri = format!("sip:{}", call.to_user);
        record.browser_user = Some(call.to_user.clone());
        record.sip_remote = Some(call.source.to_string());
        record.sip_user_agent = call.user_agent.clone();
        record.event(record.started_at, "invite", format!("from {}", call.source));
        let log = CallLog { record, writer: writer.clone(), stats: stats.clone(), ended_at: None };
        log.writer.write(&log.record);
        log
    }

    pub fn outbound(writer: &RecorderHandle, stats: &std::sync::Arc<CallStats>, call_id: &str, user: &str, profile: Option<&str>, target: &str) -> CallLog {
        let mut record = CallRecord::new(call_id.to_string(), CallDirection::Outbound, now_ms());
        record.profile = profile.map(str::to_string);
        record.browser_user = Some(user.to_string());
        record.from_uri = format!("browser:{user}");
        record.to_uri = format!("sip:{target}");
        record.event(record.started_at, "call", format!("to {target}"));
        let log = CallLog { record, writer: writer.clone(), stats: stats.clone(), ended_at: None };
        log.writer.write(&log.record);
        log
    }

    /// The SIP peer of a call we placed, from its first response.
    pub fn sip_peer(&mut self, remote: std::net::SocketAddr, user_agent: Option<String>) {
        self.record.sip_remote = Some(remote.to_string());
        self.record.sip_user_agent = user_agent;
    }

    /// A SIP-over-WebSocket client talking to a plain SIP party: it holds the record's
    /// WebRTC-client side (`browser_*`), the plain party the SIP side.
    pub fn webrtc_client(&mut self, remote: std::net::SocketAddr, user_agent: Option<String>) {
        self.record.browser_remote = Some(remote.to_string());
        self.record.browser_user_agent = user_agent;
    }

    /// A call from a SIP-over-WebSocket client (`user`) that rings only SIP parties (a trunk
    /// through `profile`, or registered phones): recorded as the client's outbound call, like a
    /// browser's call to SIP.
    pub fn from_webrtc_client(&mut self, user: &str, profile: Option<&str>) {
        self.record.direction = CallDirection::Outbound;
        self.record.browser_user = Some(user.to_string());
        self.record.profile = profile.map(str::to_string);
        self.record.browser_remote = self.record.sip_remote.take();
        self.record.browser_user_agent = self.record.sip_user_agent.take();
        self.writer.write(&self.record);
    }

    pub fn event(&mut self, kind: &str, detail: impl Into<String>) {
        self.record.event(now_ms(), kind, detail);
    }

    pub fn ringing(&mut self) {
        let at = now_ms();
        self.record.ringing_at.get_or_insert(at);
        self.record.event(at, "ringing", "");
    }

    /// How DTMF reaches the SIP side: RFC 4733 when it offered telephone-event, else SIP INFO.
    pub fn dtmf_mode(&mut self, telephone_event: bool) {
        self.record.dtmf_mode = Some(if telephone_event { "rfc4733" } else { "info" }.to_string());
    }

    pub fn answered(&mut self, sip_codec: &str, browser_codec: &str, transcoded: bool, device: Option<u64>) {
        let at = now_ms();
        self.record.answered_at = Some(at);
        self.record.sip_codec = Some(sip_codec.to_string());
        self.record.browser_codec = Some(browser_codec.to_string());
        self.record.transcoded = transcoded;
        self.record.browser_device = device.map(|d| format!("{d:016x}"));
        self.record.event(at, "answered", format!("{sip_codec} / {browser_codec}{}", if transcoded { ", transcoded" } else { "" }));
        if transcoded {
            self.stats.transcoding.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.writer.write(&self.record);
    }

    /// The SIP leg's SDES-SRTP suite, when there is one (never the keys).
    pub fn srtp(&mut self, keys: Option<&crate::media::srtp::SdesKeys>) {
        if let Some(keys) = keys {
            self.event("srtp", format!("SDES {}", keys.local.suite.name()));
        }
    }

    /// Per-leg quality from the media session, before it stops.
    pub async fn collect_quality(&mut self, media: &SessionHandle, sip: Side) {
        for (side, leg) in [(sip, "sip"), (sip.other(), "browser")] {
            let Ok(q) = media.quality(side).await else { continue };
            self.stats.rtp_received.fetch_add(q.received_packets, std::sync::atomic::Ordering::Relaxed);
            self.stats.rtp_lost.fetch_add(q.lost, std::sync::atomic::Ordering::Relaxed);
            self.record.quality.push(received_quality(leg, &q));
            self.record.quality.push(LegQuality { rtt_ms: q.rtt_ms, ..LegQuality::new(leg, "sent", q.sent_packets, None) });
        }
        // SRTP packets that failed authentication or replayed: a wrong key shows here.
        if let Ok(counters) = media.counters(sip).await {
            if counters.dropped_srtp > 0 {
                self.event("srtp_dropped", format!("{} SRTP packets from the SIP peer failed authentication", counters.dropped_srtp));
            }
        }
    }

    /// One SIP dialog's messages, for the ladder view: a call with several SIP legs (a client
    /// calling a trunk, a call forked to several bindings) has one ladder, in time order.
    pub fn sip_messages(&mut self, entries: Vec<crate::sip::ladder::LadderEntry>) {
        let messages = entries
            .into_iter()
            .map(|e| crate::store::SipMessage { at: e.at, direction: if e.outgoing { "out".into() } else { "in".into() }, peer: e.peer, summary: e.summary, text: e.text });
        self.record.sip_messages.extend(messages);
        self.record.sip_messages.sort_by_key(|m| m.at);
    }

    pub fn add_sip_call_id(&mut self, call_id: &str) {
        if !call_id.is_empty() && !self.record.sip_call_ids.iter().any(|c| c == call_id) {
            self.record.sip_call_ids.push(call_id.to_string());
        }
    }

    pub fn sip_call_ids(&self) -> Vec<String> {
        self.record.sip_call_ids.clone()
    }

    /// Stamps the call's end now; `finish` may come later.
    pub fn mark_ended(&mut self) {
        self.ended_at = Some(now_ms());
    }

    pub fn finish(mut self, status: CallStatus, side: HangupSide, reason: &str, sip_code: Option<u16>) {
        use std::sync::atomic::Ordering::Relaxed;
        if status != CallStatus::Answered {
            // One line per call that never connected, whatever refused it, so an operator can
            // find out why from the log alone.
            tracing::info!(call_id = %self.record.id, status = status.as_str(), side = ?side, sip_status = ?sip_code, reason, "call not connected");
        }
        self.record.finish(self.ended_at.unwrap_or_else(now_ms), status, side, reason, sip_code);
        if self.record.transcoded {
            self.stats.transcoding.fetch_sub(1, Relaxed);
        }
        *self.stats.ended.lock().unwrap_or_else(|p| p.into_inner()).entry(status.as_str()).or_default() += 1;
        self.writer.write(&self.record);
    }
}

/// What a leg received, as the record keeps it: a leg that received nothing says so, with no MOS.
fn received_quality(leg: &str, q: &crate::media::session::LegQuality) -> LegQuality {
    let audio_bandwidth = q.audio_bandwidth.clone();
    LegQuality { loss_percent: q.loss_percent, jitter_ms: q.jitter_ms, rtt_ms: q.rtt_ms, audio_bandwidth, ..LegQuality::new(leg, "received", q.received_packets, q.mos) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::LegQuality as MediaQuality;

    #[test]
    fn a_leg_that_received_nothing_has_no_mos_but_says_why() {
        let silent = MediaQuality { codec: "opus".into(), sent_packets: 250, ..Default::default() };
        let record = received_quality("browser", &silent);
        assert_eq!((record.packets, record.mos, record.note.as_deref()), (0, None, Some(crate::store::NO_MEDIA_RECEIVED)));
        // Even a MOS computed upstream is not kept for an empty direction.
        let record = received_quality("sip", &MediaQuality { mos: Some(4.08), ..silent.clone() });
        assert_eq!((record.mos, record.note.as_deref()), (None, Some("no media received")));
        let heard = MediaQuality { received_packets: 500, loss_percent: 0.4, jitter_ms: 3.0, mos: Some(4.2), ..silent };
        let record = received_quality("sip", &heard);
        assert_eq!((record.packets, record.mos, record.note), (500, Some(4.2), None));
        assert_eq!((record.loss_percent, record.jitter_ms), (0.4, 3.0));
        let sent = LegQuality::new("sip", "sent", 0, None);
        assert_eq!(sent.note.as_deref(), Some(crate::store::NO_MEDIA_SENT));
    }
}
