//! Call churn leaves nothing behind: after many calls and their transactions' timers, every
//! per-call and per-transaction table of the core is empty (the soak's steady RSS rise was checked
//! against this; see docs/reliability.md).

use super::tests::{core_with, header, profiles, request, response_to, sent, status_line, udp_from};
use super::*;

const TRUNK: &str = "192.0.2.50:5060";
const CALLS: usize = 200;

/// One trunk call answered and ended: by the trunk's BYE on even numbers, by ours on odd ones.
fn one_call(core: &mut SipCore, number: usize, now: Instant) {
    let branch = format!("z9hG4bKchurn{number}");
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", &branch, &[]);
    core.handle_inbound(&invite, udp_from(TRUNK), now);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_answer(id, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", now).expect("answer");
    let ok = sent(core).into_iter().map(|(_, t)| t).find(|t| status_line(t) == 200).expect("200");
    let tag = header(&ok, "To").and_then(|t| t.split("tag=").nth(1)).expect("To tag").to_string();
    let invite = String::from_utf8_lossy(&invite).into_owned();
    let ack = invite.replace("INVITE sip", "ACK sip").replace("1 INVITE", "1 ACK").replace(&branch, &format!("{branch}a")).replace("To: <sip:bob@example.com>", &format!("To: <sip:bob@example.com>;tag={tag}"));
    core.handle_inbound(ack.as_bytes(), udp_from(TRUNK), now);
    if number % 2 == 0 {
        let bye = ack.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE").replace(&format!("{branch}a"), &format!("{branch}b"));
        core.handle_inbound(bye.as_bytes(), udp_from(TRUNK), now);
    } else {
        core.call_hangup(id, now);
        let bye = sent(core).into_iter().map(|(_, t)| t).find(|t| t.starts_with("BYE ")).expect("our BYE");
        core.handle_inbound(&response_to(&bye, 200, &[]), udp_from(TRUNK), now);
    }
    let _ = sent(core);
    while core.poll_event().is_some() {}
}

#[test]
fn churned_calls_leave_no_entries_once_their_timers_have_run() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let mut now = t0;
    for number in 0..CALLS {
        one_call(&mut core, number, now);
        now += Duration::from_millis(50);
        core.handle_timeout(now);
    }
    assert!(core.entries_held() > 0, "the last calls' transactions are still in their wait states");
    // Timer J/K/D and the INVITE server's wait for retransmissions end within 64 T1 (32 s).
    let end = now + Duration::from_secs(40);
    while let Some(at) = core.poll_timeout().filter(|at| *at <= end) {
        now = at.max(now);
        core.handle_timeout(now);
        let _ = sent(&mut core);
        while core.poll_event().is_some() {}
    }
    assert_eq!(core.entries_held(), 0, "after {CALLS} calls the core keeps entries (calls, transactions or timers)");
    assert_eq!((core.status(now).server_transactions, core.status(now).client_transactions), (0, 0));
}
