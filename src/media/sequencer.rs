//! Egress continuity: each leg sees one SSRC with one continuous sequence and timestamp line,
//! whatever happens upstream (a new source SSRC, hold and unhold, a re-INVITE, a switch into or
//! out of transcoding). Sans-IO; time is the caller's monotonic clock.
//!
//! Forwarded packets keep their spacing by mapping through per-segment offsets, so reordering and
//! gaps inside a segment survive untouched. A new segment starts after `discontinuity()` or when
//! the source SSRC changes; its first timestamp continues from the last one sent plus the wall time
//! elapsed, so a receiver's jitter buffer sees no jump, and it carries the marker bit.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressStamp {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    source_ssrc: Option<u32>,
    sequence_offset: u16,
    timestamp_offset: u32,
}

#[derive(Debug, Clone)]
pub struct EgressSequencer {
    ssrc: u32,
    clock_rate: u32,
    initial_timestamp: u32,
    next_sequence: u16,
    /// Highest timestamp sent and when, to continue the timeline across a discontinuity.
    last_sent: Option<(u32, Duration)>,
    segment: Option<Segment>,
}

impl EgressSequencer {
    /// RFC 3550 wants random initial sequence and timestamp values; the caller supplies them.
    pub fn new(ssrc: u32, clock_rate: u32, initial_sequence: u16, initial_timestamp: u32) -> EgressSequencer {
        EgressSequencer {
            ssrc,
            clock_rate: clock_rate.max(1),
            initial_timestamp,
            next_sequence: initial_sequence,
            last_sent: None,
            segment: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The next packet starts a new segment (hold/unhold, re-INVITE, codec switch).
    pub fn discontinuity(&mut self) {
        self.segment = None;
    }

    /// The egress codec changed clock rate (e.g. PCMU 8000 to Opus 48000): rescale the timeline.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        if clock_rate != self.clock_rate {
            self.last_sent = self.last_sent.map(|(ts, at)| ((u64::from(ts) * u64::from(clock_rate) / u64::from(self.clock_rate)) as u32, at));
            self.clock_rate = clock_rate;
            self.segment = None;
        }
    }

    /// Stamps a forwarded packet (passthrough).
    pub fn forward(&mut self, source_ssrc: u32, sequence: u16, timestamp: u32, marker: bool, now: Duration) -> EgressStamp {
        let new_segment = !matches!(self.segment, Some(s) if s.source_ssrc == Some(source_ssrc));
        if new_segment {
            let start = self.continue_timeline(now);
            self.segment = Some(Segment {
                source_ssrc: Some(source_ssrc),
                sequence_offset: self.next_sequence.wrapping_sub(sequence),
                timestamp_offset: start.wrapping_sub(timestamp),
            });
        }
        let segment = self.segment.unwrap_or(Segment { source_ssrc: None, sequence_offset: 0, timestamp_offset: 0 });
        let out_sequence = sequence.wrapping_add(segment.sequence_offset);
        let out_timestamp = timestamp.wrapping_add(segment.timestamp_offset);
        // Only advance for packets ahead of what was sent: late (reordered) packets keep their slot.
        if (out_sequence.wrapping_sub(self.next_sequence) as i16) >= 0 {
            self.next_sequence = out_sequence.wrapping_add(1);
        }
        self.note_sent(out_timestamp, now);
        EgressStamp { ssrc: self.ssrc, sequence: out_sequence, timestamp: out_timestamp, marker: marker || new_segment }
    }

    /// Stamps a packet we produced (transcoder output, DTMF): `ticks` is how much RTP time the
    /// previous generated packet covered; the first packet of a segment continues the timeline.
    pub fn generate(&mut self, ticks_since_previous: u32, now: Duration) -> EgressStamp {
        let (timestamp, marker) = match self.segment {
            Some(Segment { source_ssrc: None, .. }) => {
                let previous = self.last_sent.map(|(ts, _)| ts).unwrap_or(0);
                (previous.wrapping_add(ticks_since_previous), false)
            }
            _ => {
                let start = self.continue_timeline(now);
                self.segment = Some(Segment { source_ssrc: None, sequence_offset: 0, timestamp_offset: 0 });
                (start, true)
            }
        };
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        self.note_sent(timestamp, now);
        EgressStamp { ssrc: self.ssrc, sequence, timestamp, marker }
    }

    /// Where the egress timeline stands now, without starting a segment (DTMF event timestamps).
    pub fn timeline_now(&self, now: Duration) -> u32 {
        self.continue_timeline(now)
    }

    /// Stamps a packet whose timestamp the caller fixed (every packet of a DTMF event carries the
    /// event's start timestamp, RFC 4733 §2.5.1.2).
    pub fn stamp(&mut self, timestamp: u32, marker: bool, now: Duration) -> EgressStamp {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        self.note_sent(timestamp, now);
        EgressStamp { ssrc: self.ssrc, sequence, timestamp, marker }
    }

    fn continue_timeline(&self, now: Duration) -> u32 {
        match self.last_sent {
            None => self.initial_timestamp,
            Some((ts, at)) => {
                let elapsed = now.saturating_sub(at);
                let ticks = (elapsed.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000).max(1);
                ts.wrapping_add(ticks as u32)
            }
        }
    }

    fn note_sent(&mut self, timestamp: u32, now: Duration) {
        let newer = match self.last_sent {
            None => true,
            // Strictly newer: DTMF packets repeat their event's timestamp, and refreshing the time
            // for them would freeze the timeline.
            Some((last, _)) => (timestamp.wrapping_sub(last) as i32) > 0,
        };
        if newer {
            self.last_sent = Some((timestamp, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn passthrough_keeps_spacing_and_one_ssrc() {
        let mut seq = EgressSequencer::new(0xABCD, 8000, 1000, 5);
        let a = seq.forward(111, 50, 16_000, false, ms(0));
        let b = seq.forward(111, 51, 16_160, false, ms(20));
        assert_eq!((a.ssrc, a.sequence, a.marker), (0xABCD, 1000, true), "first packet of a stream starts a talkspurt");
        assert_eq!((b.sequence, b.timestamp.wrapping_sub(a.timestamp), b.marker), (1001, 160, false));
        // A gap (loss) and a reordered packet keep their mapped positions.
        let d = seq.forward(111, 53, 16_480, false, ms(60));
        let c = seq.forward(111, 52, 16_320, false, ms(61));
        assert_eq!((c.sequence, d.sequence), (1002, 1003));
        assert_eq!(seq.forward(111, 54, 16_640, false, ms(80)).sequence, 1004);
    }

    #[test]
    fn new_source_ssrc_continues_the_line() {
        let mut seq = EgressSequencer::new(1, 8000, 0, 1_000);
        for i in 0..5u16 {
            seq.forward(111, 100 + i, 1_000 + u32::from(i) * 160, false, ms(u64::from(i) * 20));
        }
        // The far end re-INVITEs and restarts with a new SSRC, random seq and timestamp.
        let next = seq.forward(222, 40_000, 3_000_000_000, false, ms(100));
        assert_eq!(next.sequence, 5, "sequence continues");
        assert_eq!(next.timestamp, 1_000 + 4 * 160 + 160, "timestamp continues by elapsed time");
        assert!(next.marker);
        assert_eq!(next.ssrc, 1);
    }

    #[test]
    fn hold_and_unhold_advance_by_wall_time() {
        let mut seq = EgressSequencer::new(1, 8000, 0, 0);
        let before = seq.forward(111, 10, 500, false, ms(0));
        seq.discontinuity();
        // 3 s on hold, then the same source resumes where it left off.
        let after = seq.forward(111, 11, 660, false, ms(3_000));
        assert_eq!(after.sequence, before.sequence.wrapping_add(1));
        assert_eq!(after.timestamp.wrapping_sub(before.timestamp), 24_000);
        assert!(after.marker);
    }

    #[test]
    fn switching_into_and_out_of_transcoding_is_seamless() {
        let mut seq = EgressSequencer::new(9, 8000, 65_534, 70_000);
        let a = seq.forward(111, 7, 70_000, false, ms(0));
        seq.discontinuity();
        let t1 = seq.generate(160, ms(20));
        let t2 = seq.generate(160, ms(40));
        seq.discontinuity();
        let b = seq.forward(111, 10, 70_480, false, ms(60));
        let sequences = [a.sequence, t1.sequence, t2.sequence, b.sequence];
        assert_eq!(sequences, [65_534, 65_535, 0, 1], "one unbroken sequence line across wraparound");
        assert_eq!(t1.timestamp.wrapping_sub(a.timestamp), 160);
        assert_eq!(t2.timestamp.wrapping_sub(t1.timestamp), 160);
        assert_eq!(b.timestamp.wrapping_sub(t2.timestamp), 160);
        assert!(t1.marker && !t2.marker && b.marker);
    }

    #[test]
    fn clock_rate_change_rescales() {
        let mut seq = EgressSequencer::new(9, 8000, 0, 8_000);
        let a = seq.forward(111, 1, 8_000, false, ms(0));
        seq.set_clock_rate(48_000);
        let b = seq.generate(960, ms(20));
        assert_eq!(b.timestamp, a.timestamp * 6 + 960);
    }
}
