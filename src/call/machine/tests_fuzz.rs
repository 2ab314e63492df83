//! Random event orders on a manual clock, checking what must hold whatever the order: the call
//! ends exactly once, every request is answered exactly once, a leg is ended once (again only
//! for an answer that crossed its end), nothing but answers reaches an ended leg, and an
//! ended call wants no timer. These are the "no zombie, no lost reply" guarantees drivers rely on.

use super::tests::{config, desc, BROWSER, SIP};
use super::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn random_input(rng: &mut Rng, tag: Tag) -> LegInput {
    let tag = Some(tag);
    match rng.next(20) {
        0 => LegInput::Ringing,
        1 => LegInput::EarlyMedia { answer: desc("early") },
        2 | 3 => LegInput::Answered { answer: desc("answer"), tag },
        4 => LegInput::AnswerDelivered,
        5 => LegInput::Rejected { reason: EndReason::Busy, tag },
        6 => LegInput::HungUp { tag },
        7 => LegInput::Ended { reason: EndReason::SessionExpired },
        8 => LegInput::Dtmf { digits: "1".into(), duration_ms: 100, tag },
        9 => LegInput::HoldRequest { hold: rng.next(2) == 0, tag },
        10 => LegInput::HoldResult { result: [Ok(()), Err(HoldFailure::Glare), Err(HoldFailure::Refused("no".into()))][rng.next(3) as usize].clone() },
        11 => LegInput::Reoffer { offer: desc("re"), hold: rng.next(2) == 0 },
        12 => LegInput::ReofferAnswer { result: if rng.next(2) == 0 { Ok(desc("ok")) } else { Err(ReofferRefusal::NotAcceptable) } },
        13 => LegInput::TransferRequest { target: "t".into(), tag },
        14 => LegInput::TransferResult { result: if rng.next(2) == 0 { Ok(()) } else { Err("no".into()) } },
        15 => LegInput::Transferred,
        16 => LegInput::Detached,
        17 => LegInput::Reattached { tag },
        18 => LegInput::MediaTimeout { silent_for: Duration::from_secs(rng.next(900)) },
        _ => LegInput::Challenged,
    }
}

fn tag_of(input: &LegInput) -> Option<Tag> {
    match input {
        LegInput::Answered { tag, .. } | LegInput::Rejected { tag, .. } | LegInput::HungUp { tag } | LegInput::Dtmf { tag, .. } => *tag,
        LegInput::HoldRequest { tag, .. } | LegInput::TransferRequest { tag, .. } | LegInput::Reattached { tag } => *tag,
        _ => None,
    }
}

/// What the checks remember across one run.
#[derive(Default)]
struct Ledger {
    asked: Vec<Tag>,
    replies: HashMap<Tag, usize>,
    ended_legs: HashMap<LegId, bool>,
    /// The leg's last report was an answer: one more end for it is allowed (a 200 crossing).
    crossing: HashMap<LegId, bool>,
    ends: usize,
}

impl Ledger {
    fn drain(&mut self, call: &mut Call, run: u64) {
        while let Some(LegCommand { leg, action }) = call.poll_command() {
            let terminal = matches!(action, LegAction::Reject { .. } | LegAction::Cancel { .. } | LegAction::Hangup { .. });
            let ended = self.ended_legs.get(&leg).copied().unwrap_or(false);
            match action {
                LegAction::Reply { tag, .. } => *self.replies.entry(tag).or_default() += 1,
                _ if terminal => {
                    let crossing = self.crossing.get(&leg).copied().unwrap_or(false);
                    assert!(!ended || crossing, "run {run}: {leg:?} ended twice");
                    self.ended_legs.insert(leg, true);
                    self.crossing.insert(leg, false);
                }
                other => assert!(!ended, "run {run}: {other:?} sent to ended {leg:?}"),
            }
        }
        while let Some(event) = call.poll_event() {
            if matches!(event, CallEvent::Ended(_)) {
                self.ends += 1;
            }
        }
    }
}

fn one_run(run: u64, trace: bool) {
    let mut rng = Rng(run.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let browsers = 1 + rng.next(3) as usize;
    let (caller, callees) = if rng.next(2) == 0 { (SIP, vec![BROWSER; browsers]) } else { (BROWSER, vec![SIP]) };
    let mut now = Instant::now();
    let grace = Duration::from_secs(30 * rng.next(2));
    let ring_timeout = (rng.next(3) > 0).then_some(Duration::from_secs(60));
    let settings = CallConfig { seed: run, reclaim_grace: grace, ring_timeout, ..config() };
    let mut call = Call::new(settings, caller, desc("offer"), &callees, now);
    let mut ledger = Ledger::default();
    for step in 0..rng.next(60) {
        let leg = LegId(rng.next(callees.len() as u64 + 1) as u8);
        let input = random_input(&mut rng, Tag(step));
        ledger.asked.extend(tag_of(&input));
        ledger.crossing.insert(leg, matches!(input, LegInput::Answered { .. }));
        if trace {
            eprintln!("{leg:?} {input:?}");
        }
        call.handle(LegEvent::new(leg, input), now);
        if rng.next(4) == 0 {
            now += Duration::from_millis(rng.next(90_000));
            call.handle_timeout(now);
        }
        ledger.drain(&mut call, run);
    }
    call.shutdown(now);
    call.shutdown(now);
    ledger.drain(&mut call, run);
    assert!(call.is_ended(), "run {run}: a second shutdown ends any call");
    assert_eq!(ledger.ends, 1, "run {run}: one end");
    assert_eq!(call.poll_timeout(), None, "run {run}: no timer after the end");
    for tag in &ledger.asked {
        assert_eq!(ledger.replies.get(tag), Some(&1), "run {run}: {tag:?} answered once");
    }
}

/// `CALLSM_RUN=<n>` replays run `n` alone, printing its events.
#[test]
fn any_order_of_events_ends_once_and_answers_every_request_once() {
    let only: Option<u64> = std::env::var("CALLSM_RUN").ok().and_then(|v| v.parse().ok());
    for run in (0..4_000).filter(|r| only.is_none_or(|o| o == *r)) {
        one_run(run, only.is_some());
    }
}
