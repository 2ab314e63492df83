//! Inactivity timers on a manual clock: the plain limit, the hold limit whichever side holds,
//! restarts on hold, resume and media, and no timer before the answer.

use super::*;

const RTP: Duration = Duration::from_secs(3);
const ON_HOLD: Duration = Duration::from_secs(6);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn pcmu(remote: &str) -> LegConfig {
    leg(vec![format(Encoding::Pcmu, 0)], remote)
}

fn held(remote: &str) -> LegConfig {
    LegConfig { send: false, ..pcmu(remote) }
}

fn timed_session() -> MediaSession {
    MediaSession::new(pcmu(A_PEER), pcmu(B_PEER), seeds(), factory(), Timeouts { rtp: RTP, rtp_on_hold: ON_HOLD }, Duration::ZERO)
}

/// Runs the session's timers up to `now` and returns the legs reported silent, in order.
fn timed_out(s: &mut MediaSession, now: Duration) -> Vec<Side> {
    s.handle_timeout(now);
    std::iter::from_fn(|| s.poll_event()).filter_map(|e| match e { MediaEvent::Inactive { side, .. } => Some(side), _ => None }).collect()
}

fn heard(s: &mut MediaSession, side: Side, seq: u16, now: Duration) {
    let peer = if side == Side::A { A_PEER } else { B_PEER };
    s.handle_rtp(side, addr(peer), rtp_packet(0, seq, u32::from(seq) * 160, 0x1000 + side.index() as u32), now);
    while s.poll_transmit().is_some() {}
}

#[test]
fn a_silent_leg_is_reported_once_at_the_rtp_limit() {
    let mut s = timed_session();
    heard(&mut s, Side::B, 1, ms(2_500));
    assert!(timed_out(&mut s, ms(2_999)).is_empty());
    assert_eq!(s.poll_timeout(), Some(RTP), "the silent leg's deadline comes first");
    let events: Vec<MediaEvent> = {
        s.handle_timeout(RTP);
        std::iter::from_fn(|| s.poll_event()).filter(|e| matches!(e, MediaEvent::Inactive { .. })).collect()
    };
    assert_eq!(events, vec![MediaEvent::Inactive { side: Side::A, silent_for: RTP }], "B sent at 2.5 s: only A is silent");
    assert!(timed_out(&mut s, ms(4_000)).is_empty(), "reported once");
    assert_eq!(timed_out(&mut s, ms(5_500)), vec![Side::B], "B's own 3 s since its last packet");
}

#[test]
fn media_that_resumes_restarts_the_leg_s_timer() {
    let mut s = timed_session();
    heard(&mut s, Side::B, 1, secs(2));
    heard(&mut s, Side::B, 2, secs(4));
    assert_eq!(timed_out(&mut s, secs(6)), vec![Side::A]);
    // A silent leg that comes back is watched again from its last packet.
    heard(&mut s, Side::A, 1, secs(7));
    heard(&mut s, Side::B, 3, secs(7));
    assert!(timed_out(&mut s, ms(9_999)).is_empty());
    assert_eq!(timed_out(&mut s, secs(10)), vec![Side::A, Side::B]);
}

#[test]
fn a_hold_by_either_side_gives_both_legs_the_hold_limit() {
    // The SIP peer (A) holds: we stop sending to it. The browser (B) holds: we stop sending to A too.
    // Either way both legs may go quiet, each with its own reason.
    for held_side in [Side::A, Side::B] {
        let mut s = timed_session();
        let config = if held_side == Side::A { held(A_PEER) } else { held(B_PEER) };
        s.update_leg(held_side, config, secs(1));
        assert!(s.on_hold());
        assert!(timed_out(&mut s, secs(6)).is_empty(), "held at 1 s: nothing at 6 s ({held_side:?})");
        assert_eq!(s.poll_timeout(), Some(secs(7)), "the hold limit counts from the hold");
        assert_eq!(timed_out(&mut s, secs(7)), vec![Side::A, Side::B], "{held_side:?}");
    }
}

#[test]
fn resume_restarts_the_timers_under_the_rtp_limit() {
    let mut s = timed_session();
    s.update_leg(Side::A, held(A_PEER), secs(1));
    assert!(timed_out(&mut s, ms(6_900)).is_empty());
    // Resumed just before the hold limit: the long silence on hold does not count against it.
    s.update_leg(Side::A, pcmu(A_PEER), ms(6_900));
    assert!(!s.on_hold());
    assert!(timed_out(&mut s, ms(9_899)).is_empty());
    assert_eq!(timed_out(&mut s, ms(9_900)), vec![Side::A, Side::B]);
}

#[test]
fn a_re_offer_that_keeps_the_hold_state_restarts_nothing() {
    let mut s = timed_session();
    heard(&mut s, Side::B, 1, secs(2));
    // A codec change at 2 s, still sendrecv: A's silence since 0 still counts.
    s.update_leg(Side::A, leg(vec![format(Encoding::Pcma, 8)], A_PEER), secs(2));
    assert_eq!(timed_out(&mut s, secs(3)), vec![Side::A]);
}

#[test]
fn early_media_has_no_timer_until_the_answer() {
    let mut s = timed_session();
    s.defer_inactivity();
    assert_eq!(s.poll_timeout(), None, "no RTCP, no DTMF, no timer: nothing to wake up for");
    assert!(timed_out(&mut s, secs(60)).is_empty(), "a 183 that rings for a minute in silence");
    s.expect_media(secs(60));
    assert!(timed_out(&mut s, ms(62_999)).is_empty());
    assert_eq!(timed_out(&mut s, secs(63)), vec![Side::A, Side::B]);
}
