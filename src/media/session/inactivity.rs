//! Inactivity: a leg that sends no RTP for `Timeouts::rtp` ends the call (`MediaEvent::Inactive`).
//! While the call is on hold, whichever side held it (a sendonly/inactive re-INVITE from the SIP
//! peer, or the browser's hold, which stops what we send to the SIP peer), both legs get
//! `Timeouts::rtp_on_hold`: a held or holding party may legitimately go quiet, and a phone that
//! holds may stop sending too. A channel leg (the browser's WebRTC leg) counts like any other:
//! its packets reach `handle_rtp` too.
//!
//! When the timers run: from the session's start, unless paused for early media (a 183's media
//! may be silent for as long as the far end rings) until `expect_media` at the answer. They
//! restart when the hold state changes (so a long hold does not end the call the moment it is
//! resumed) and a leg's timer restarts with each packet it sends.

use super::{MediaEvent, MediaSession, Side};
use std::time::Duration;

/// One leg's silence: since when it has sent nothing (or the timers restarted), and whether that
/// silence was already reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct Silence {
    since: Duration,
    reported: bool,
}

impl Silence {
    pub(super) fn since(now: Duration) -> Silence {
        Silence { since: now, reported: false }
    }

    /// A packet arrived from the leg.
    pub(super) fn heard(&mut self, now: Duration) {
        *self = Silence::since(now);
    }
}

impl MediaSession {
    /// Early media: no inactivity timer until `expect_media`.
    pub fn defer_inactivity(&mut self) {
        self.watching_inactivity = false;
    }

    /// The call was answered: media must flow from now on, so the timers (re)start at `now`.
    pub fn expect_media(&mut self, now: Duration) {
        self.watching_inactivity = true;
        self.restart_inactivity(now);
    }

    /// On hold when we send nothing to one of the legs (it holds us, or the other leg holds it).
    pub fn on_hold(&self) -> bool {
        self.legs.iter().any(|leg| !leg.config.send)
    }

    pub(super) fn restart_inactivity(&mut self, now: Duration) {
        for leg in &mut self.legs {
            leg.silence = Silence::since(now);
        }
    }

    fn inactivity_limit(&self) -> Duration {
        if self.on_hold() { self.timeouts.rtp_on_hold } else { self.timeouts.rtp }
    }

    /// When the next leg would time out, if the timers run.
    pub(super) fn inactivity_deadline(&self) -> Option<Duration> {
        if !self.watching_inactivity {
            return None;
        }
        let limit = self.inactivity_limit();
        self.legs.iter().filter(|leg| !leg.silence.reported).map(|leg| leg.silence.since + limit).min()
    }

    pub(super) fn check_inactivity(&mut self, now: Duration) {
        if !self.watching_inactivity {
            return;
        }
        let limit = self.inactivity_limit();
        for side in [Side::A, Side::B] {
            let silence = &mut self.legs[side.index()].silence;
            let silent_for = now.saturating_sub(silence.since);
            if !silence.reported && silent_for >= limit {
                silence.reported = true;
                self.events.push_back(MediaEvent::Inactive { side, silent_for });
            }
        }
    }
}
