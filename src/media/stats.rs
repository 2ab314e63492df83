//! Per-stream statistics: what RTCP reports carry (RFC 3550 Appendix A.1, A.3, A.8), round-trip
//! time from report blocks (§6.4.1) and a MOS estimate from a simplified ITU-T G.107 E-model.
//! Sans-IO: arrival times are the caller's monotonic clock since the stream started.

use std::time::Duration;

use super::rtcp::{ReportBlock, SenderReport};

#[path = "stats/emodel.rs"]
mod emodel;
pub use emodel::{mos, mos_from_r, r_factor, CodecQuality};

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;
/// Sequence numbers whose fate is still open: a gap only becomes loss once it leaves this window,
/// so a late packet can still fill it. Wider than MAX_MISORDER, the furthest A.1 accepts back.
const WINDOW: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Probation,
    Rejected,
    Accepted,
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct ReceiveStats {
    started: bool,
    probation: u32,
    max_seq: u16,
    /// Wrap count already shifted left by 16, as in A.1.
    cycles: u64,
    base_seq: u64,
    bad_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Bit i set when extended sequence `max - i` arrived.
    window: u128,
    /// Missing sequence numbers that left the window since the last arrival before them.
    pending_run: u64,
    longest_burst: u64,
    transit: Option<u32>,
    jitter: f64,
    clock_rate: u32,
    packets: u64,
    bytes: u64,
    duplicates: u64,
}

impl Default for ReceiveStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiveStats {
    pub fn new() -> ReceiveStats {
        ReceiveStats {
            started: false,
            probation: MIN_SEQUENTIAL,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            window: u128::MAX,
            pending_run: 0,
            longest_burst: 0,
            transit: None,
            jitter: 0.0,
            clock_rate: 0,
            packets: 0,
            bytes: 0,
            duplicates: 0,
        }
    }

    pub fn on_packet(
        &mut self,
        sequence: u16,
        rtp_timestamp: u32,
        arrival: Duration,
        clock_rate: u32,
        payload_len: usize,
    ) {
        self.packets += 1;
        self.bytes += payload_len as u64;
        if !self.started {
            self.started = true;
            self.init_seq(sequence);
            self.max_seq = sequence.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        match self.update_seq(sequence) {
            Outcome::Accepted => self.update_jitter(rtp_timestamp, arrival, clock_rate),
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Probation | Outcome::Rejected => {}
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        // Everything before the base counts as present, so it never reads as loss.
        self.window = u128::MAX;
        self.pending_run = 0;
        // A restarted source picks a new timestamp base; its first transit is not a delay change.
        self.transit = None;
    }

    /// RFC 3550 A.1, except that a duplicate still inside the window is recognised and not
    /// counted as received: A.1 counts it, which hides a real loss one for one.
    fn update_seq(&mut self, seq: u16) -> Outcome {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return Outcome::Accepted;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return Outcome::Probation;
        }
        if udelta == 0 {
            return Outcome::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.advance_window(u64::from(udelta));
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A big jump is believed only when the next packet confirms it (source restart).
            if u32::from(seq) != self.bad_seq {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return Outcome::Rejected;
            }
            self.longest_burst = self.longest_loss_burst();
            self.init_seq(seq);
        } else {
            let back = u64::from(self.max_seq.wrapping_sub(seq));
            let bit = 1u128.checked_shl(back as u32).unwrap_or(0);
            if self.window & bit != 0 {
                return Outcome::Duplicate;
            }
            self.window |= bit;
        }
        self.received += 1;
        Outcome::Accepted
    }

    fn advance_window(&mut self, by: u64) {
        // Oldest first, so runs are measured in sequence order.
        for i in (WINDOW - by.min(WINDOW)..WINDOW).rev() {
            self.note_final((self.window >> i) & 1 == 1);
        }
        // Numbers skipped so far ahead that they never entered the window are missing too.
        self.pending_run += by.saturating_sub(WINDOW);
        self.window = self.window.checked_shl(by as u32).unwrap_or(0) | 1;
    }

    fn note_final(&mut self, arrived: bool) {
        if arrived {
            self.longest_burst = self.longest_burst.max(self.pending_run);
            self.pending_run = 0;
        } else {
            self.pending_run += 1;
        }
    }

    /// RFC 3550 A.8, for every accepted packet including reordered ones: reordering is delay
    /// variation. Duplicates are skipped since their late arrival says nothing about the path.
    fn update_jitter(&mut self, rtp_timestamp: u32, arrival: Duration, clock_rate: u32) {
        if clock_rate == 0 {
            return;
        }
        if clock_rate != self.clock_rate {
            if self.clock_rate != 0 {
                self.jitter *= f64::from(clock_rate) / f64::from(self.clock_rate);
            }
            self.clock_rate = clock_rate;
            self.transit = None;
        }
        // Arrival in timestamp units, wrapping like the RTP timestamp it is compared with.
        let arrival_ts = (arrival.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_ts.wrapping_sub(rtp_timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from(transit.wrapping_sub(previous) as i32).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Builds the report block for `ssrc` (the sender being reported on) and starts a new
    /// interval for fraction lost. `last_sr` is the middle 32 bits of the last SR's NTP time and
    /// when it arrived on the monotonic clock `now` also uses.
    pub fn report_block(
        &mut self,
        ssrc: u32,
        last_sr: Option<(u32, Duration)>,
        now: Duration,
    ) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .unwrap_or(0)
            .min(255) as u8;
        let (lsr, dlsr) = match last_sr {
            Some((lsr, received_at)) => (lsr, to_units_65536(now.saturating_sub(received_at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.signed_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_highest_seq().unwrap_or(0),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }

    fn valid(&self) -> bool {
        self.started && self.probation == 0
    }

    /// Low 32 bits of the extended highest sequence number, once the source left probation.
    pub fn extended_highest_seq(&self) -> Option<u32> {
        self.valid()
            .then_some((self.cycles + u64::from(self.max_seq)) as u32)
    }

    pub fn expected(&self) -> u64 {
        if !self.valid() {
            return 0;
        }
        (self.cycles + u64::from(self.max_seq) + 1).saturating_sub(self.base_seq)
    }

    /// Packets counted under A.1: duplicates and packets rejected during probation excluded.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn signed_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    pub fn lost(&self) -> u64 {
        self.signed_lost().max(0) as u64
    }

    /// Cumulative loss in percent of expected, the input `mos` wants.
    pub fn loss_percent(&self) -> f64 {
        match self.expected() {
            0 => 0.0,
            expected => self.lost() as f64 * 100.0 / expected as f64,
        }
    }

    /// Longest run of consecutive missing sequence numbers, counting open gaps as they stand.
    pub fn longest_loss_burst(&self) -> u64 {
        let mut best = self.longest_burst;
        let mut run = self.pending_run;
        for i in (0..WINDOW).rev() {
            if (self.window >> i) & 1 == 1 {
                best = best.max(run);
                run = 0;
            } else {
                run += 1;
            }
        }
        best.max(run)
    }

    /// Interarrival jitter in timestamp units, as carried in report blocks. Rounded rather than
    /// truncated: the estimate approaches its limit from below and would otherwise read one low.
    pub fn jitter(&self) -> u32 {
        self.jitter.round() as u32
    }

    pub fn jitter_ms(&self) -> f64 {
        if self.clock_rate == 0 {
            return 0.0;
        }
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// Every packet handed in, including duplicates and probation: the wire-level count.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[derive(Debug, Clone, Default)]
pub struct SendStats {
    packets: u64,
    octets: u64,
    last_rtp_ts: Option<u32>,
}

impl SendStats {
    pub fn new() -> SendStats {
        SendStats::default()
    }

    /// `payload_len` excludes header and padding, as the SR octet count does (RFC 3550 §6.4.1).
    pub fn on_sent(&mut self, payload_len: usize, rtp_ts: u32) {
        self.packets += 1;
        self.octets += payload_len as u64;
        self.last_rtp_ts = Some(rtp_ts);
    }

    /// `now_rtp_ts` must be the RTP time of the same instant as `ntp`, extrapolated by the
    /// caller, not the last packet's timestamp: receivers use the pair for lip sync.
    pub fn sender_report(&self, ssrc: u32, ntp: u64, now_rtp_ts: u32) -> SenderReport {
        SenderReport {
            ssrc,
            ntp,
            rtp_ts: now_rtp_ts,
            // The SR counters are 32 bits and wrap (RFC 3550 §6.4.1).
            packets: self.packets as u32,
            octets: self.octets as u32,
            reports: Vec::new(),
        }
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn octets(&self) -> u64 {
        self.octets
    }

    pub fn last_rtp_ts(&self) -> Option<u32> {
        self.last_rtp_ts
    }
}

/// RFC 3550 §6.4.1: RTT = A - LSR - DLSR in 1/65536 s, where A is when the report block arrived.
/// None when the peer has not seen an SR from us yet, or the clocks make the result negative.
pub fn rtt_from_report(block: &ReportBlock, arrival_ntp_middle: u32) -> Option<Duration> {
    if block.lsr == 0 {
        return None;
    }
    let since_sr = arrival_ntp_middle.wrapping_sub(block.lsr);
    if (since_sr as i32) < 0 {
        return None;
    }
    let rtt = since_sr.checked_sub(block.dlsr)?;
    let nanos = (u64::from(rtt & 0xffff) * 1_000_000_000) >> 16;
    Some(Duration::new(u64::from(rtt >> 16), nanos as u32))
}

fn to_units_65536(d: Duration) -> u32 {
    let units = d.as_nanos() * 65_536 / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "stats/tests.rs"]
mod tests;
