//! The SIP messages of each call, kept for its record's ladder view (as sngrep draws it). The
//! endpoint shows every message in and out; a dialog is followed from its INVITE until the call
//! layer takes its messages when the record closes. Bounded in calls, messages per call and bytes
//! per message, and credentials are masked.

use std::collections::{HashMap, VecDeque};

const MAX_CALLS: usize = 5_000;
const MAX_MESSAGES_PER_CALL: usize = 64;
const MAX_TEXT: usize = 2_048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub outgoing: bool,
    pub peer: String,
    pub summary: String,
    pub text: String,
}

#[derive(Default)]
pub struct Ladder {
    calls: HashMap<String, Vec<LadderEntry>>,
    /// Call-IDs in the order they were first seen, to evict the oldest.
    order: VecDeque<String>,
}

impl Ladder {
    /// Notes one message. Messages of a Call-ID not followed yet start a ladder only if they are
    /// an INVITE; everything else (REGISTER, OPTIONS) is ignored.
    pub fn observe(&mut self, bytes: &[u8], outgoing: bool, peer: &str, at: i64) {
        // With no call followed, only an INVITE can matter: the rest (REGISTER and OPTIONS
        // traffic, floods) costs one prefix check.
        if self.calls.is_empty() && !bytes.starts_with(b"INVITE ") {
            return;
        }
        let Some(head_end) = find(bytes, b"\r\n\r\n") else { return };
        let Ok(head) = std::str::from_utf8(&bytes[..head_end]) else { return };
        let Some(summary) = head.lines().next() else { return };
        let Some(call_id) = header(head, &["call-id", "i"]) else { return };
        if !self.calls.contains_key(call_id) {
            if !summary.starts_with("INVITE ") {
                return;
            }
            if self.order.len() >= MAX_CALLS {
                if let Some(oldest) = self.order.pop_front() {
                    self.calls.remove(&oldest);
                }
            }
            self.order.push_back(call_id.to_string());
            self.calls.insert(call_id.to_string(), Vec::new());
        }
        let Some(entries) = self.calls.get_mut(call_id) else { return };
        if entries.len() >= MAX_MESSAGES_PER_CALL {
            return;
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]);
        entries.push(LadderEntry { at, outgoing, peer: peer.to_string(), summary: summary.to_string(), text: mask_credentials(&text) });
    }

    /// The messages of `call_id`, which is no longer followed.
    pub fn take(&mut self, call_id: &str) -> Vec<LadderEntry> {
        self.order.retain(|c| c != call_id);
        self.calls.remove(call_id).unwrap_or_default()
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

/// Digest answers are not passwords, but they are replayable material: keep only the scheme.
/// SDES master keys in SDP bodies (`a=crypto ... inline:KEY`) are the call's secret: masked too.
/// Bodies may use bare LF, so lines are split on LF and their CR kept.
fn mask_credentials(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("authorization:") || lower.starts_with("proxy-authorization:") {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                let cr = if line.ends_with('\r') { "\r" } else { "" };
                format!("{name}: {} (masked){cr}", value.trim().split(' ').next().unwrap_or(""))
            } else if lower.starts_with("a=crypto:") {
                mask_sdes_keys(line)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `inline:` key of an `a=crypto` line replaced by a marker; lifetime and MKI stay.
pub fn mask_sdes_keys(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.to_ascii_lowercase().find("inline:") {
        let key_start = at + "inline:".len();
        out.push_str(&rest[..key_start]);
        out.push_str("(masked)");
        let after = &rest[key_start..];
        let key_end = after.find(|c: char| c == '|' || c == ';' || c.is_ascii_whitespace()).unwrap_or(after.len());
        rest = &after[key_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(start: &str, call_id: &str, extra: &str) -> Vec<u8> {
        format!("{start}\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").into_bytes()
    }

    #[test]
    fn follows_invite_dialogs_only_and_masks_credentials() {
        let mut ladder = Ladder::default();
        ladder.observe(&message("OPTIONS sip:gw SIP/2.0", "ping", ""), false, "10.0.0.1:5060", 1);
        ladder.observe(&message("INVITE sip:alice@gw SIP/2.0", "c1", "Proxy-Authorization: Digest username=\"bob\", response=\"abc\"\r\n"), false, "10.0.0.1:5060", 2);
        ladder.observe(&message("SIP/2.0 180 Ringing", "c1", ""), true, "10.0.0.1:5060", 3);
        ladder.observe(&b"garbage"[..], false, "10.0.0.1:5060", 4);
        assert!(ladder.take("ping").is_empty());
        let entries = ladder.take("c1");
        assert_eq!(entries.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(), vec!["INVITE sip:alice@gw SIP/2.0", "SIP/2.0 180 Ringing"]);
        assert!(entries[0].text.contains("Proxy-Authorization: Digest (masked)") && !entries[0].text.contains("abc"));
        assert!(entries[1].outgoing);
        assert!(ladder.take("c1").is_empty(), "taken once");
    }

    #[test]
    fn sdes_keys_in_sdp_bodies_are_masked() {
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAo";
        let body = format!("v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20\r\nA=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 INLINE:{key}\na=sendrecv\r\n");
        let invite = format!("INVITE sip:alice@gw SIP/2.0\r\nCall-ID: k1\r\nContent-Type: application/sdp\r\n\r\n{body}");
        let mut ladder = Ladder::default();
        ladder.observe(invite.as_bytes(), false, "10.0.0.1:5060", 1);
        let text = &ladder.take("k1")[0].text;
        assert!(!text.contains(key), "{text}");
        assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:(masked)|2^20\r\n"), "{text}");
        assert!(text.contains("A=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 INLINE:(masked)\na=sendrecv\r\n"), "{text}");
        assert!(text.starts_with("INVITE sip:alice@gw SIP/2.0\r\nCall-ID: k1\r\n"), "the rest is untouched");
    }

    #[test]
    fn bounded_per_call_and_in_calls() {
        let mut ladder = Ladder::default();
        for i in 0..100 {
            ladder.observe(&message("INVITE sip:a@gw SIP/2.0", "c", ""), false, "p", i);
        }
        assert_eq!(ladder.take("c").len(), MAX_MESSAGES_PER_CALL);
        for i in 0..(MAX_CALLS + 10) {
            ladder.observe(&message("INVITE sip:a@gw SIP/2.0", &format!("c{i}"), ""), false, "p", 0);
        }
        assert!(ladder.take("c0").is_empty(), "the oldest was evicted");
        assert_eq!(ladder.take(&format!("c{}", MAX_CALLS + 9)).len(), 1);
    }
}
