//! What a call record holds. Serialized as JSON in the spool and in the API.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// SIP to browser.
    Inbound,
    /// Browser to SIP.
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    InProgress,
    Answered,
    Missed,
    Rejected,
    Busy,
    Cancelled,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Sip,
    Browser,
    Gateway,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(CallDirection { Inbound => "inbound", Outbound => "outbound" });
text_enum!(CallStatus {
    InProgress => "in_progress",
    Answered => "answered",
    Missed => "missed",
    Rejected => "rejected",
    Busy => "busy",
    Cancelled => "cancelled",
    Failed => "failed",
});
text_enum!(HangupSide { Sip => "sip", Browser => "browser", Gateway => "gateway" });

/// Media quality of one leg in one direction (`received` from the peer, or `sent` to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegQuality {
    /// "sip" or "browser".
    pub leg: String,
    /// "received" or "sent".
    pub direction: String,
    pub packets: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// Absent when nothing arrived: a leg that received no packets has no quality to score.
    pub mos: Option<f64>,
    /// Why a figure is missing, e.g. [`NO_MEDIA_RECEIVED`]; records written before it read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Received Opus only: the widest audio bandwidth its packets carried, e.g.
    /// "narrowband (4 kHz)" from a browser asked for `maxplaybackrate=8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_bandwidth: Option<String>,
}

/// The note of a direction in which no RTP arrived at all (one-way audio, a codec refused...).
pub const NO_MEDIA_RECEIVED: &str = "no media received";
/// The note of a direction in which we sent nothing (the other leg was silent, or held).
pub const NO_MEDIA_SENT: &str = "no media sent";

impl LegQuality {
    /// The figures of one leg and direction; with no packets there is no MOS, only the note.
    pub fn new(leg: &str, direction: &str, packets: u64, mos: Option<f64>) -> LegQuality {
        let note = match (packets, direction) {
            (0, "received") => Some(NO_MEDIA_RECEIVED.to_string()),
            (0, _) => Some(NO_MEDIA_SENT.to_string()),
            _ => None,
        };
        LegQuality { leg: leg.into(), direction: direction.into(), packets, loss_percent: 0.0, jitter_ms: 0.0, rtt_ms: None, mos: mos.filter(|_| packets > 0), note, audio_bandwidth: None }
    }
}

/// A step in the call's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub at: i64,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One SIP message of the call, for the ladder view (bounded in count and size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SipMessage {
    pub at: i64,
    /// "in" (received) or "out" (sent).
    pub direction: String,
    pub peer: String,
    /// The start line, e.g. "INVITE sip:alice@example.com SIP/2.0" or "SIP/2.0 180 Ringing".
    pub summary: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub direction: CallDirection,
    pub status: CallStatus,
    pub profile: Option<String>,
    pub browser_user: Option<String>,
    pub browser_device: Option<String>,
    pub sip_call_ids: Vec<String>,
    pub from_uri: String,
    pub from_name: Option<String>,
    pub to_uri: String,
    pub to_name: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub ringing_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Whole seconds from answer to end, rounded up (what carriers bill).
    pub billable_secs: Option<i64>,
    pub hangup_sip_code: Option<u16>,
    pub hangup_reason: Option<String>,
    pub hangup_q850: Option<u16>,
    pub hangup_side: Option<HangupSide>,
    pub sip_codec: Option<String>,
    pub browser_codec: Option<String>,
    pub transcoded: bool,
    pub dtmf_mode: Option<String>,
    pub sip_remote: Option<String>,
    pub browser_remote: Option<String>,
    pub ice_candidate_type: Option<String>,
    pub sip_user_agent: Option<String>,
    pub browser_user_agent: Option<String>,
    pub quality: Vec<LegQuality>,
    pub events: Vec<CallEvent>,
    pub sip_messages: Vec<SipMessage>,
    /// Raised on every write of this record, so a replayed older write never wins. Not shown by
    /// the API.
    #[serde(default)]
    pub revision: i64,
}

impl CallRecord {
    pub fn new(id: String, direction: CallDirection, started_at: i64) -> CallRecord {
        CallRecord {
            id,
            direction,
            status: CallStatus::InProgress,
            profile: None,
            browser_user: None,
            browser_device: None,
            sip_call_ids: Vec::new(),
            from_uri: String::new(),
            from_name: None,
            to_uri: String::new(),
            to_name: None,
            started_at,
            ringing_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            billable_secs: None,
            hangup_sip_code: None,
            hangup_reason: None,
            hangup_q850: None,
            hangup_side: None,
            sip_codec: None,
            browser_codec: None,
            transcoded: false,
            dtmf_mode: None,
            sip_remote: None,
            browser_remote: None,
            ice_candidate_type: None,
            sip_user_agent: None,
            browser_user_agent: None,
            quality: Vec::new(),
            events: Vec::new(),
            sip_messages: Vec::new(),
            revision: 0,
        }
    }

    pub fn event(&mut self, at: i64, kind: &str, detail: impl Into<String>) {
        const MAX_EVENTS: usize = 200;
        if self.events.len() < MAX_EVENTS {
            self.events.push(CallEvent { at, kind: kind.to_string(), detail: detail.into() });
        }
    }

    /// Closes the record: end time, duration and billable seconds, outcome.
    pub fn finish(&mut self, at: i64, status: CallStatus, side: HangupSide, reason: &str, sip_code: Option<u16>) {
        self.ended_at = Some(at);
        self.duration_ms = Some((at - self.started_at).max(0));
        self.billable_secs = Some(self.answered_at.map_or(0, |answered| ((at - answered).max(0) + 999) / 1000));
        self.status = status;
        self.hangup_side = Some(side);
        self.hangup_reason = Some(reason.to_string());
        self.hangup_sip_code = sip_code;
        self.hangup_q850 = sip_code.and_then(q850_of_sip);
        self.event(at, "ended", reason);
    }
}

/// The Q.850 cause a SIP status maps to (RFC 3398 §8.2.6.1, in reverse), for the common ones.
pub fn q850_of_sip(status: u16) -> Option<u16> {
    Some(match status {
        200 => 16,
        404 | 604 => 1,
        480 => 18,
        486 | 600 => 17,
        403 | 603 => 21,
        487 => 16,
        408 | 504 => 102,
        488 | 606 => 88,
        503 => 34,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_computes_duration_and_billable_seconds() {
        let mut record = CallRecord::new("c1".into(), CallDirection::Inbound, 1_000);
        record.answered_at = Some(3_000);
        record.finish(10_001, CallStatus::Answered, HangupSide::Sip, "the caller hung up", Some(200));
        assert_eq!((record.duration_ms, record.billable_secs, record.hangup_q850), (Some(9_001), Some(8), Some(16)));
        let mut missed = CallRecord::new("c2".into(), CallDirection::Inbound, 0);
        missed.finish(30_000, CallStatus::Missed, HangupSide::Gateway, "no answer", Some(480));
        assert_eq!((missed.billable_secs, missed.hangup_q850), (Some(0), Some(18)));
        for status in [CallStatus::InProgress, CallStatus::Answered, CallStatus::Missed, CallStatus::Rejected, CallStatus::Busy, CallStatus::Cancelled, CallStatus::Failed] {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
        }
    }
}
