//! The SIP messages of each call, kept for its record's ladder view (as sngrep draws it).
//!
//! Only calls that passed the trust gate (an authenticated phone, a trusted peer) or that we
//! placed are followed: the endpoint calls `follow` for them, and every other message is counted
//! and dropped, so a stranger's flood costs a counter, not memory. A followed call's messages are
//! kept until the call layer `take`s them into the record. Secrets are masked before anything is
//! kept (`super::mask`). Memory is bounded per message, per call and in total; when the total
//! bound is reached the ladder followed longest is dropped (a call that ended without its record
//! taking it would otherwise stay for ever).

use super::mask::mask_message;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Calls followed at once.
pub const MAX_CALLS: usize = 5_000;
/// Messages kept per call; later ones are counted, not kept.
pub const MAX_MESSAGES_PER_CALL: usize = 64;
/// Bytes of text kept per message: the headers and the start of any SDP body.
pub const MAX_TEXT: usize = 2_048;
/// Bytes kept per call (text and bookkeeping).
pub const MAX_BYTES_PER_CALL: usize = 64 * 1024;
/// Bytes kept for all calls together.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;
/// What an entry costs beyond its strings (the struct, allocator headers), for the bounds.
const ENTRY_OVERHEAD: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub outgoing: bool,
    pub peer: String,
    pub summary: String,
    pub text: String,
}

impl LadderEntry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.peer.len() + self.summary.len() + self.text.len()
    }
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Kept,
    /// No followed call owns it: a stranger's, or REGISTER / OPTIONS traffic.
    NotFollowed,
    /// Its call already holds `MAX_MESSAGES_PER_CALL` messages or `MAX_BYTES_PER_CALL` bytes.
    CallFull,
    /// Not a SIP message this can read (no header end, no Call-ID, not UTF-8).
    Unreadable,
}

/// For /api/v1/sip/status and /metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LadderStatus {
    pub calls: usize,
    pub bytes: usize,
    /// Messages received that belong to no followed call (one that passed the trust gate or
    /// that we placed), not kept.
    pub outside_trusted_calls: u64,
    /// Messages of followed calls over the per-call bounds, not kept.
    pub over_call_limit: u64,
    /// Ladders dropped to stay within `MAX_CALLS` or `MAX_TOTAL_BYTES`.
    pub evicted: u64,
}

#[derive(Default)]
struct CallLadder {
    entries: Vec<LadderEntry>,
    bytes: usize,
    /// The peer's answer our last message still waits for, so the record's ladder ends with it.
    awaiting: Option<Awaiting>,
}

/// The message that closes a ladder we ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// The final response to our BYE (method BYE) or, after our CANCEL, to the INVITE it cancels.
    FinalResponse { cseq: u32, invite: bool },
    /// The ACK for our error response to an INVITE.
    Ack { cseq: u32 },
}

/// What the settling rules read of a message: its start line and CSeq.
struct Shape<'a> {
    /// `Some(status)` for a response.
    status: Option<u16>,
    /// The request's method, or the CSeq method of a response.
    method: &'a str,
    cseq: u32,
}

impl<'a> Shape<'a> {
    fn read(summary: &'a str, head: &'a str) -> Option<Self> {
        let (number, cseq_method) = header(head, &["cseq"])?.split_once(' ')?;
        let cseq = number.trim().parse().ok()?;
        let cseq_method = cseq_method.trim();
        match summary.strip_prefix("SIP/2.0 ") {
            Some(rest) => Some(Shape { status: rest.get(..3)?.parse().ok(), method: cseq_method, cseq }),
            None => Some(Shape { status: None, method: summary.split(' ').next()?, cseq }),
        }
    }

    /// What `outgoing` starts waiting for, if anything.
    fn starts_wait(&self) -> Option<Awaiting> {
        match (self.status, self.method) {
            (None, "BYE") => Some(Awaiting::FinalResponse { cseq: self.cseq, invite: false }),
            (None, "CANCEL") => Some(Awaiting::FinalResponse { cseq: self.cseq, invite: true }),
            (Some(status), "INVITE") if status >= 300 => Some(Awaiting::Ack { cseq: self.cseq }),
            _ => None,
        }
    }

    /// Whether this incoming message is the one `awaiting` waits for.
    fn ends_wait(&self, awaiting: Awaiting) -> bool {
        match awaiting {
            Awaiting::FinalResponse { cseq, invite } => {
                let method = if invite { "INVITE" } else { "BYE" };
                self.status.is_some_and(|s| s >= 200) && self.cseq == cseq && self.method == method
            }
            Awaiting::Ack { cseq } => self.status.is_none() && self.method == "ACK" && self.cseq == cseq,
        }
    }
}

#[derive(Default)]
pub struct Ladder {
    calls: HashMap<String, CallLadder>,
    /// Call-IDs in the order they were first followed, to evict the oldest.
    order: VecDeque<String>,
    bytes: usize,
    status: LadderStatus,
}

impl Ladder {
    /// Starts keeping the messages of `call_id`: a call that passed the trust gate, or one we placed.
    pub fn follow(&mut self, call_id: &str) {
        if call_id.is_empty() || self.calls.contains_key(call_id) {
            return;
        }
        if self.calls.len() >= MAX_CALLS {
            self.evict_oldest();
        }
        self.order.push_back(call_id.to_string());
        self.calls.insert(call_id.to_string(), CallLadder::default());
    }

    /// Notes one message, kept only if its call is followed. A message received (not sent) that
    /// no followed call owns is counted (`outside_trusted_calls`): a stranger's, or REGISTER and
    /// OPTIONS traffic.
    pub fn observe(&mut self, bytes: &[u8], outgoing: bool, peer: &str, at: i64) -> Observed {
        let observed = self.keep(bytes, outgoing, peer, at);
        match observed {
            Observed::NotFollowed | Observed::Unreadable if !outgoing => self.status.outside_trusted_calls += 1,
            Observed::CallFull => self.status.over_call_limit += 1,
            _ => {}
        }
        observed
    }

    fn keep(&mut self, bytes: &[u8], outgoing: bool, peer: &str, at: i64) -> Observed {
        // With no call followed nothing can be kept: a flood then costs no parsing at all.
        if self.calls.is_empty() {
            return Observed::NotFollowed;
        }
        let Some(head_end) = find(bytes, b"\r\n\r\n") else { return Observed::Unreadable };
        let Ok(head) = std::str::from_utf8(&bytes[..head_end]) else { return Observed::Unreadable };
        let (Some(summary), Some(call_id)) = (head.lines().next(), header(head, &["call-id", "i"])) else { return Observed::Unreadable };
        let Some(ladder) = self.calls.get_mut(call_id) else { return Observed::NotFollowed };
        if let Some(shape) = Shape::read(summary, head) {
            if outgoing {
                if let Some(wait) = shape.starts_wait() {
                    ladder.awaiting = Some(wait);
                }
            } else if ladder.awaiting.is_some_and(|wait| shape.ends_wait(wait)) {
                ladder.awaiting = None;
            }
        }
        if ladder.entries.len() >= MAX_MESSAGES_PER_CALL {
            return Observed::CallFull;
        }
        // Masked whole, then cut: a cut first could leave a key's start unrecognised.
        let masked = mask_message(&String::from_utf8_lossy(bytes));
        let text = truncate(masked, MAX_TEXT);
        let entry = LadderEntry { at, outgoing, peer: peer.to_string(), summary: mask_message(summary), text };
        let cost = entry.cost();
        if ladder.bytes + cost > MAX_BYTES_PER_CALL {
            return Observed::CallFull;
        }
        ladder.bytes += cost;
        ladder.entries.push(entry);
        self.bytes += cost;
        while self.bytes > MAX_TOTAL_BYTES && self.calls.len() > 1 {
            self.evict_oldest();
        }
        Observed::Kept
    }

    /// Whether `call_id`'s ladder holds the peer's answer to our last BYE, CANCEL or refusal (or
    /// never sent one). A ladder nobody follows is settled: nothing more will join it.
    pub fn settled(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_none_or(|ladder| ladder.awaiting.is_none())
    }

    /// The messages of `call_id`, which is no longer followed.
    pub fn take(&mut self, call_id: &str) -> Vec<LadderEntry> {
        let Some(ladder) = self.calls.remove(call_id) else { return Vec::new() };
        self.order.retain(|c| c != call_id);
        self.bytes -= ladder.bytes;
        ladder.entries
    }

    pub fn status(&self) -> LadderStatus {
        LadderStatus { calls: self.calls.len(), bytes: self.bytes, ..self.status.clone() }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front() {
            if let Some(ladder) = self.calls.remove(&oldest) {
                self.bytes -= ladder.bytes;
                self.status.evicted += 1;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, names: &[&str]) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        names.iter().any(|n| name.trim().eq_ignore_ascii_case(n)).then(|| value.trim())
    })
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
#[path = "ladder_tests.rs"]
mod tests;
