//! Driven by a manual clock: every instant is `t0` plus whole seconds.

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sent(r: &mut Registration) -> Vec<u32> {
    std::iter::from_fn(|| r.poll_action())
        .map(|Action::SendRegister { expires }| expires)
        .collect()
}

fn ok(granted: Option<u32>) -> Outcome<'static> {
    Outcome::Accepted {
        granted_expires: granted,
    }
}

fn rejected() -> Outcome<'static> {
    Outcome::Rejected {
        status: 403,
        reason: "Forbidden",
    }
}

/// Started at t0 with the first REGISTER already drained.
fn started(expires: u32) -> (Registration, Instant) {
    let t0 = Instant::now();
    let mut r = Registration::new(RegistrationConfig {
        expires,
        ..Default::default()
    });
    assert_eq!(r.state(), &RegistrationState::Idle);
    assert_eq!(r.poll_timeout(), None);
    r.start(t0);
    assert_eq!(r.state(), &RegistrationState::Registering { attempt: 1 });
    assert_eq!(sent(&mut r), [expires]);
    (r, t0)
}

fn retry_delays(r: &mut Registration, t0: Instant, failures: usize) -> Vec<u64> {
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..failures {
        r.handle_outcome(Outcome::Timeout, now);
        let Some(due) = r.poll_timeout() else { break };
        delays.push((due - now).as_secs());
        r.handle_timeout(due);
        assert_eq!(sent(r).len(), 1);
        now = due;
    }
    delays
}

#[test]
fn refreshes_at_80_percent_of_the_granted_time() {
    for (granted, refresh) in [(10, 8), (600, 480), (3, 1), (1, 1), (60, 48)] {
        let (mut r, t0) = started(granted);
        r.handle_outcome(ok(None), t0);
        let expires_at = t0 + secs(u64::from(granted));
        assert_eq!(
            r.state(),
            &RegistrationState::Registered {
                expires_at,
                granted
            }
        );
        assert_eq!(
            r.poll_timeout(),
            Some(t0 + secs(refresh)),
            "granted {granted}"
        );
        r.handle_timeout(t0 + secs(refresh) - Duration::from_millis(1));
        assert!(sent(&mut r).is_empty());
        r.handle_timeout(t0 + secs(refresh));
        assert_eq!(sent(&mut r), [granted]);
        assert_eq!(r.poll_timeout(), None, "nothing armed while in flight");
        assert!(matches!(r.state(), RegistrationState::Registered { .. }));
    }
}

#[test]
fn granted_expires_overrides_requested() {
    let (mut r, t0) = started(3600);
    r.handle_outcome(ok(Some(600)), t0 + secs(1));
    let expires_at = t0 + secs(601);
    assert_eq!(
        r.state(),
        &RegistrationState::Registered {
            expires_at,
            granted: 600
        }
    );
    assert_eq!(r.poll_timeout(), Some(t0 + secs(481)));
    r.handle_timeout(t0 + secs(481));
    assert_eq!(sent(&mut r), [3600], "keeps asking for what it wants");
}

#[test]
fn granted_zero_is_a_failure() {
    let (mut r, t0) = started(600);
    r.handle_outcome(ok(Some(0)), t0);
    let RegistrationState::Failed {
        reason,
        retry_at,
        attempt: 1,
    } = r.state()
    else {
        panic!("{:?}", r.state());
    };
    assert_eq!(reason, "registrar granted 0");
    assert_eq!(*retry_at, t0 + secs(5));
    assert!(!r.is_registered(t0));
}

#[test]
fn interval_too_brief_retries_at_once_with_min_expires() {
    let (mut r, t0) = started(60);
    r.handle_outcome(Outcome::IntervalTooBrief { min_expires: 300 }, t0);
    assert_eq!(sent(&mut r), [300]);
    assert_eq!(r.state(), &RegistrationState::Registering { attempt: 1 });
    r.handle_outcome(ok(None), t0);
    assert_eq!(r.poll_timeout(), Some(t0 + secs(240)));
    r.handle_timeout(t0 + secs(240));
    assert_eq!(sent(&mut r), [300], "Min-Expires sticks for refreshes");
}

#[test]
fn interval_too_brief_is_bounded() {
    for min_expires in [60, 30, 86_401] {
        let (mut r, t0) = started(60);
        r.handle_outcome(Outcome::IntervalTooBrief { min_expires }, t0);
        assert!(sent(&mut r).is_empty(), "Min-Expires {min_expires}");
        assert!(matches!(
            r.state(),
            RegistrationState::Failed { attempt: 1, .. }
        ));
    }
}

#[test]
fn failures_back_off_exponentially_up_to_retry_max() {
    let (mut r, t0) = started(600);
    let delays = retry_delays(&mut r, t0, 9);
    assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(r.state(), &RegistrationState::Registering { attempt: 10 });
}

#[test]
fn success_resets_the_backoff() {
    let (mut r, t0) = started(600);
    assert_eq!(retry_delays(&mut r, t0, 3), [5, 10, 20]);
    let t1 = t0 + secs(35);
    r.handle_outcome(ok(None), t1);
    r.handle_timeout(t1 + secs(480));
    assert_eq!(sent(&mut r), [600]);
    assert_eq!(retry_delays(&mut r, t1 + secs(480), 2), [5, 10]);
}

#[test]
fn timeout_transport_error_and_rejection_all_retry() {
    let outcomes = [
        (Outcome::Timeout, "timeout"),
        (
            Outcome::TransportError {
                reason: "connection refused",
            },
            "transport error: connection refused",
        ),
        (rejected(), "403 Forbidden"),
    ];
    for (outcome, expected) in outcomes {
        let (mut r, t0) = started(600);
        r.handle_outcome(outcome, t0 + secs(32));
        let retry_at = t0 + secs(37);
        let failed = RegistrationState::Failed {
            reason: expected.into(),
            retry_at,
            attempt: 1,
        };
        assert_eq!(r.state(), &failed);
        r.handle_timeout(retry_at);
        assert_eq!(sent(&mut r), [600]);
        assert_eq!(r.state(), &RegistrationState::Registering { attempt: 2 });
    }
}

#[test]
fn jitter_is_deterministic_and_only_shortens() {
    let config = RegistrationConfig {
        jitter_seed: Some(7),
        ..Default::default()
    };
    let (a, b) = (Registration::new(config.clone()), Registration::new(config));
    let plain = Registration::new(RegistrationConfig::default());
    assert!(
        (1..12).any(|n| a.backoff(n) != plain.backoff(n)),
        "jitter applied"
    );
    for attempt in 1..12 {
        let (jittered, exact) = (a.backoff(attempt), plain.backoff(attempt));
        assert_eq!(jittered, b.backoff(attempt));
        assert!(
            jittered <= exact && jittered >= exact / 10 * 9,
            "attempt {attempt}"
        );
    }
}

#[test]
fn failed_refresh_keeps_the_binding_until_it_expires() {
    let (mut r, t0) = started(600);
    r.handle_outcome(ok(None), t0);
    r.handle_timeout(t0 + secs(480));
    assert_eq!(sent(&mut r), [600]);
    r.handle_outcome(Outcome::Timeout, t0 + secs(512));
    assert!(matches!(
        r.state(),
        RegistrationState::Failed { attempt: 1, .. }
    ));
    assert!(r.is_registered(t0 + secs(599)));
    assert!(!r.is_registered(t0 + secs(600)));
}

#[test]
fn one_register_in_flight() {
    let (mut r, t0) = started(600);
    r.handle_timeout(t0 + secs(10_000));
    r.start(t0);
    assert!(sent(&mut r).is_empty());
    r.handle_outcome(Outcome::Timeout, t0 + secs(32));
    // No request is out any more, so a stray outcome must not move the machine.
    r.handle_outcome(ok(None), t0 + secs(33));
    assert!(matches!(r.state(), RegistrationState::Failed { .. }));
    assert!(!r.is_registered(t0 + secs(33)));
}

#[test]
fn network_change_reregisters_now() {
    let (mut r, t0) = started(600);
    r.handle_outcome(ok(None), t0);
    r.network_changed(t0 + secs(100));
    assert_eq!(sent(&mut r), [600]);
    assert_eq!(r.state(), &RegistrationState::Registering { attempt: 1 });
    assert!(!r.is_registered(t0 + secs(100)), "the old Contact is stale");
    r.handle_outcome(ok(None), t0 + secs(101));
    assert_eq!(r.poll_timeout(), Some(t0 + secs(581)));
}

#[test]
fn network_change_while_in_flight_waits_for_the_outcome() {
    let (mut r, t0) = started(600);
    r.network_changed(t0);
    assert!(sent(&mut r).is_empty());
    r.handle_outcome(ok(None), t0 + secs(1));
    assert_eq!(sent(&mut r), [600]);
    assert!(matches!(r.state(), RegistrationState::Registered { .. }));
}

#[test]
fn network_change_resets_the_backoff() {
    let (mut r, t0) = started(600);
    assert_eq!(retry_delays(&mut r, t0, 3), [5, 10, 20]);
    r.handle_outcome(Outcome::Timeout, t0 + secs(35));
    r.network_changed(t0 + secs(36));
    assert_eq!(sent(&mut r), [600]);
    assert_eq!(retry_delays(&mut r, t0 + secs(36), 1), [5]);
}

#[test]
fn stop_unregisters_then_goes_quiet() {
    let (mut r, t0) = started(600);
    r.handle_outcome(ok(None), t0);
    r.stop(t0 + secs(10));
    assert_eq!(sent(&mut r), [0]);
    assert_eq!(r.state(), &RegistrationState::Unregistering);
    assert!(!r.is_registered(t0 + secs(10)));
    assert_eq!(r.poll_timeout(), None);
    r.handle_outcome(ok(Some(0)), t0 + secs(11));
    assert_eq!(r.state(), &RegistrationState::Unregistered);
    r.handle_timeout(t0 + secs(10_000));
    r.network_changed(t0 + secs(10_000));
    r.stop(t0 + secs(10_000));
    assert!(sent(&mut r).is_empty());
}

#[test]
fn stop_without_a_binding_sends_nothing() {
    let (mut r, t0) = started(600);
    r.handle_outcome(rejected(), t0);
    r.stop(t0 + secs(1));
    assert!(sent(&mut r).is_empty());
    assert_eq!(r.state(), &RegistrationState::Unregistered);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn stop_while_registering_unregisters_after_the_outcome() {
    let (mut r, t0) = started(600);
    r.stop(t0);
    assert!(sent(&mut r).is_empty());
    r.handle_outcome(ok(None), t0 + secs(1));
    assert_eq!(sent(&mut r), [0]);
    r.handle_outcome(Outcome::Timeout, t0 + secs(33));
    assert_eq!(
        r.state(),
        &RegistrationState::Unregistered,
        "best effort, no retry"
    );
    r.start(t0 + secs(40));
    assert_eq!(sent(&mut r), [600], "can be started again");
}

#[test]
fn a_peer_that_goes_down_voids_the_binding_and_one_that_comes_back_gets_a_register_at_once() {
    let (mut r, t0) = started(3600);
    r.handle_outcome(ok(None), t0);
    assert!(r.is_registered(t0 + secs(10)));
    r.peer_down();
    assert!(!r.is_registered(t0 + secs(10)), "a registrar that does not answer holds nothing we can count on");
    assert!(sent(&mut r).is_empty(), "nothing is sent while it is down");
    r.peer_back(t0 + secs(20));
    assert_eq!(sent(&mut r), [3600], "registered again at once, not at the refresh an hour later");
    r.handle_outcome(ok(None), t0 + secs(20));
    assert!(r.is_registered(t0 + secs(21)));
}
