use super::*;

fn message(start: &str, call_id: &str, extra: &str) -> Vec<u8> {
    format!("{start}\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").into_bytes()
}

fn invite(call_id: &str) -> Vec<u8> {
    message("INVITE sip:alice@gw SIP/2.0", call_id, "")
}

#[test]
fn only_followed_calls_are_kept_and_strangers_are_counted() {
    let mut ladder = Ladder::default();
    // Before any call is followed, an INVITE is a stranger's: counted, not kept.
    assert_eq!(ladder.observe(&invite("stranger"), false, "10.0.0.9:5060", 1), Observed::NotFollowed);
    assert_eq!(ladder.observe(&message("SIP/2.0 403 Forbidden", "stranger", ""), true, "10.0.0.9:5060", 2), Observed::NotFollowed);
    ladder.follow("c1");
    assert_eq!(ladder.observe(&invite("stranger"), false, "10.0.0.9:5060", 3), Observed::NotFollowed);
    assert_eq!(ladder.observe(&message("OPTIONS sip:gw SIP/2.0", "ping", ""), false, "10.0.0.1:5060", 4), Observed::NotFollowed);
    assert_eq!(ladder.observe(b"garbage", false, "10.0.0.9:5060", 5), Observed::Unreadable);
    assert_eq!(ladder.observe(&invite("c1"), false, "10.0.0.1:5060", 6), Observed::Kept);
    assert_eq!(ladder.observe(&message("SIP/2.0 180 Ringing", "c1", ""), true, "10.0.0.1:5060", 7), Observed::Kept);
    let status = ladder.status();
    assert_eq!((status.calls, status.outside_trusted_calls, status.over_call_limit, status.evicted), (1, 4, 0, 0), "our own 403 is not a stranger's message");
    assert!(status.bytes > 0);
    assert!(ladder.take("stranger").is_empty() && ladder.take("ping").is_empty());
    let entries = ladder.take("c1");
    assert_eq!(entries.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(), vec!["INVITE sip:alice@gw SIP/2.0", "SIP/2.0 180 Ringing"]);
    assert!(!entries[0].outgoing && entries[1].outgoing);
    assert!(ladder.take("c1").is_empty(), "taken once");
    assert_eq!((ladder.status().calls, ladder.status().bytes), (0, 0), "nothing held after the take");
    // Once taken, a late message (a retransmitted BYE) does not start it again.
    assert_eq!(ladder.observe(&message("BYE sip:alice@gw SIP/2.0", "c1", ""), false, "10.0.0.1:5060", 8), Observed::NotFollowed);
}

#[test]
fn credentials_and_sdes_keys_are_masked_before_they_are_kept() {
    let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAo";
    let mut ladder = Ladder::default();
    ladder.follow("k1");
    let auth = "Proxy-Authorization: Digest username=\"bob\", realm=\"gw\", nonce=\"n\", response=\"0123abcd\"\r\nAuthorization: Digest username=\"bob\", response=\"4567ef\"\r\n";
    let body = format!("v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20\r\n");
    let invite = format!("INVITE sip:alice:pw@gw SIP/2.0\r\nCall-ID: k1\r\n{auth}Content-Type: application/sdp\r\n\r\n{body}");
    ladder.observe(invite.as_bytes(), false, "10.0.0.1:5060", 1);
    let entry = &ladder.take("k1")[0];
    for secret in [key, "0123abcd", "4567ef", ":pw@"] {
        assert!(!entry.text.contains(secret) && !entry.summary.contains(secret), "{secret} in {entry:?}");
    }
    assert!(entry.text.contains("Proxy-Authorization: Digest (masked)\r\nAuthorization: Digest (masked)\r\n"), "{}", entry.text);
    assert!(entry.text.contains("inline:(masked)|2^20"), "{}", entry.text);
    assert_eq!(entry.summary, "INVITE sip:alice:(masked)@gw SIP/2.0");
}

#[test]
fn a_key_past_the_text_bound_is_masked_not_cut_in_half() {
    let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAo";
    let mut ladder = Ladder::default();
    ladder.follow("long");
    // The crypto line straddles the cut: masking first means no prefix of the key survives.
    let padding = "x".repeat(MAX_TEXT - 120);
    let text = format!("INVITE sip:a@gw SIP/2.0\r\nCall-ID: long\r\nX-Pad: {padding}\r\n\r\nv=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n");
    ladder.observe(text.as_bytes(), false, "p", 0);
    let entry = &ladder.take("long")[0];
    assert!(entry.text.len() <= MAX_TEXT);
    assert!(!entry.text.contains(&key[..8]), "{}", &entry.text[entry.text.len() - 80..]);
}

#[test]
fn bounded_in_messages_and_bytes_per_call() {
    let mut ladder = Ladder::default();
    ladder.follow("c");
    for i in 0..100 {
        ladder.observe(&invite("c"), false, "p", i);
    }
    assert_eq!(ladder.status().over_call_limit, 100 - MAX_MESSAGES_PER_CALL as u64);
    assert_eq!(ladder.take("c").len(), MAX_MESSAGES_PER_CALL);
    // Large messages reach the byte bound first.
    ladder.follow("big");
    let padding = "y".repeat(4_000);
    let big = message("INVITE sip:a@gw SIP/2.0", "big", &format!("X-Pad: {padding}\r\n"));
    for i in 0..MAX_MESSAGES_PER_CALL as i64 {
        ladder.observe(&big, false, "p", i);
    }
    let held = ladder.status().bytes;
    assert!(held <= MAX_BYTES_PER_CALL, "{held}");
    let kept = ladder.take("big");
    assert!(kept.len() < MAX_MESSAGES_PER_CALL && kept.iter().all(|e| e.text.len() <= MAX_TEXT), "{}", kept.len());
    assert_eq!(kept.len(), MAX_BYTES_PER_CALL / (MAX_TEXT + ENTRY_OVERHEAD + 1 + "INVITE sip:a@gw SIP/2.0".len()));
}

#[test]
fn bounded_in_calls_and_total_bytes_by_dropping_the_oldest() {
    let mut ladder = Ladder::default();
    for i in 0..(MAX_CALLS + 10) {
        ladder.follow(&format!("c{i}"));
    }
    assert_eq!(ladder.status().calls, MAX_CALLS);
    assert_eq!(ladder.status().evicted, 10);
    assert_eq!(ladder.observe(&invite("c0"), false, "p", 0), Observed::NotFollowed, "the oldest was dropped");
    assert_eq!(ladder.observe(&invite(&format!("c{}", MAX_CALLS + 9)), false, "p", 0), Observed::Kept);

    // Full ladders of many calls: the total stays within its bound.
    let mut ladder = Ladder::default();
    let padding = "z".repeat(MAX_TEXT);
    let calls = 2 * MAX_TOTAL_BYTES / MAX_BYTES_PER_CALL;
    for c in 0..calls {
        let id = format!("full{c}");
        ladder.follow(&id);
        let big = message("INVITE sip:a@gw SIP/2.0", &id, &format!("X-Pad: {padding}\r\n"));
        for i in 0..MAX_MESSAGES_PER_CALL as i64 {
            if ladder.observe(&big, false, "p", i) == Observed::CallFull {
                break;
            }
        }
    }
    let status = ladder.status();
    assert!(status.bytes <= MAX_TOTAL_BYTES, "{status:?}");
    assert!(status.evicted as usize >= calls / 3, "{status:?}");
    assert!(!ladder.take(&format!("full{}", calls - 1)).is_empty(), "the newest call is kept");
    assert!(ladder.take("full0").is_empty(), "the oldest went");
}

fn with_cseq(start: &str, call_id: &str, cseq: &str) -> Vec<u8> {
    format!("{start}\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

#[test]
fn our_bye_waits_for_its_own_final_response() {
    let mut ladder = Ladder::default();
    ladder.follow("c1");
    ladder.observe(&invite("c1"), false, "peer", 1);
    assert!(ladder.settled("c1"), "nothing of ours is waiting");
    ladder.observe(&with_cseq("BYE sip:bob@peer SIP/2.0", "c1", "2 BYE"), true, "peer", 2);
    assert!(!ladder.settled("c1"));
    // A retransmitted 200 to the INVITE is not the BYE's answer.
    ladder.observe(&with_cseq("SIP/2.0 200 OK", "c1", "1 INVITE"), false, "peer", 3);
    assert!(!ladder.settled("c1"));
    ladder.observe(&with_cseq("SIP/2.0 200 OK", "c1", "2 BYE"), false, "peer", 4);
    assert!(ladder.settled("c1"));
    assert_eq!(ladder.take("c1").last().map(|e| e.summary.as_str()), Some("SIP/2.0 200 OK"));
}

#[test]
fn our_cancel_waits_for_the_invites_final_response_and_a_refusal_for_the_ack() {
    let mut ladder = Ladder::default();
    ladder.follow("out");
    ladder.observe(&with_cseq("CANCEL sip:bob@peer SIP/2.0", "out", "1 CANCEL"), true, "peer", 1);
    ladder.observe(&with_cseq("SIP/2.0 200 OK", "out", "1 CANCEL"), false, "peer", 2);
    assert!(!ladder.settled("out"), "the 487 to the INVITE is still to come");
    ladder.observe(&with_cseq("SIP/2.0 487 Request Terminated", "out", "1 INVITE"), false, "peer", 3);
    assert!(ladder.settled("out"));
    ladder.observe(&with_cseq("ACK sip:bob@peer SIP/2.0", "out", "1 ACK"), true, "peer", 4);
    assert!(ladder.settled("out"), "our ACK waits for nothing");

    ladder.follow("in");
    ladder.observe(&with_cseq("SIP/2.0 486 Busy Here", "in", "7 INVITE"), true, "peer", 5);
    assert!(!ladder.settled("in"));
    ladder.observe(&with_cseq("ACK sip:gw SIP/2.0", "in", "6 ACK"), false, "peer", 6);
    assert!(!ladder.settled("in"), "an ACK for another CSeq");
    ladder.observe(&with_cseq("ACK sip:gw SIP/2.0", "in", "7 ACK"), false, "peer", 7);
    assert!(ladder.settled("in"));
    assert!(ladder.settled("never-followed"));
}
