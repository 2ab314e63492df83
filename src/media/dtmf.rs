//! DTMF interworking: RFC 4733 telephone-events, SIP INFO bodies, and receiving, relaying across
//! clock rates and generating between them. Sans-IO: time is an argument (an RTP timestamp), so
//! the leg driving this decides pacing. Every byte comes from the network: malformed input is
//! dropped or becomes an error value, never a panic.
//!
//! A packet may pack several event blocks (RFC 4733 §2.5.1.5). Only the first is read: the RTP
//! timestamp identifies it, later blocks would need start times rebuilt from durations, and
//! neither browsers nor the phones we meet pack in practice.

use std::collections::VecDeque;
use std::fmt;

/// Used when a request names no length (SIP INFO without `Duration`).
pub const DEFAULT_DURATION_MS: u32 = 160;
/// Shorter tones are not reliably detected by in-band receivers behind the far end (Q.24: 40 ms).
pub const MIN_DURATION_MS: u32 = 40;
/// The final packet is sent three times so one lost packet cannot lose the end (RFC 4733 §2.5.1.4).
pub const END_COPIES: u8 = 3;
/// Bounds what one browser or INFO flood can make us hold.
pub const MAX_QUEUED_DIGITS: usize = 64;
const INTER_DIGIT_GAP_MS: u32 = 40;
/// Largest duration a segment can state; longer events continue in a new segment (§2.5.1.3).
const SEGMENT_MAX: u16 = 0xFFFF;
/// A same-timestamp duration falling by more than half the field is a 16-bit wrap from a sender
/// that does not segment, not reordering: no network reorders by 0.7 s or more within one event.
const WRAP_GAP: u16 = 0x8000;
/// Timestamps this far behind the current event are late packets; further back means the
/// sender's timeline jumped, and treating that as stale would silence it for good.
const STALE_SECS: u64 = 5;
const DIGITS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfError {
    ShortPayload(usize),
    UnknownDigit,
    BadTiming,
    QueueFull,
    BadBody(&'static str),
}

impl fmt::Display for DtmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtmfError::ShortPayload(n) => write!(f, "telephone-event payload of {n} bytes, need 4"),
            DtmfError::UnknownDigit => write!(f, "not a DTMF digit"),
            DtmfError::BadTiming => write!(f, "unusable clock rate or packet interval"),
            DtmfError::QueueFull => write!(f, "too many queued DTMF digits"),
            DtmfError::BadBody(why) => write!(f, "bad DTMF INFO body: {why}"),
        }
    }
}

impl std::error::Error for DtmfError {}

pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// Lower-case a-d is accepted because browsers and some phones send it.
pub fn digit_to_event(digit: char) -> Option<u8> {
    let digit = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&c| c == digit).and_then(|i| u8::try_from(i).ok())
}

/// One RFC 4733 §2.3 event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// 0-63 (-dBm0); the reserved bit beside it is ignored on receipt, as §2.3 requires.
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first block; any further bytes are packed blocks we do not read (module docs).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let Some(&[event, flags, hi, lo]) = payload.get(..4) else {
            return Err(DtmfError::ShortPayload(payload.len()));
        };
        Ok(Self { event, end: flags & 0x80 != 0, volume: flags & 0x3F, duration: u16::from_be_bytes([hi, lo]) })
    }

    pub fn write(&self, out: &mut [u8; 4]) {
        let [hi, lo] = self.duration.to_be_bytes();
        *out = [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), hi, lo];
    }
}

/// The event currently followed on one incoming stream, across its segments.
#[derive(Debug, Clone, Copy, Default)]
struct Tracked {
    event: u8,
    rate: u32,
    start_ts: u32,
    seg_ts: u32,
    /// Units covered by the segments before `seg_ts`.
    seg_base: u64,
    /// Duration-field wraps in this segment, from senders that wrap instead of segmenting.
    wraps: u64,
    /// Highest duration seen in this segment since the last wrap.
    last: u16,
    ended: bool,
}

impl Tracked {
    fn total(&self) -> u64 {
        self.seg_base.saturating_add(self.wraps.saturating_mul(0x1_0000)).saturating_add(u64::from(self.last))
    }
    fn ms(&self, units: u64) -> u32 {
        let rate = u64::from(self.rate.max(1));
        u32::try_from(units.saturating_mul(1000).saturating_add(rate / 2) / rate).unwrap_or(u32::MAX)
    }
}

/// What one packet meant for the followed event; all-false means it carried nothing new.
#[derive(Debug, Default)]
struct Step {
    /// The previous event, cut short by a new one before its end arrived.
    superseded: Option<Tracked>,
    began: bool,
    /// Not older than anything already seen for this event.
    fresh: bool,
    end_first: bool,
    end_repeat: bool,
    /// Event length so far in the event's clock units, after this packet.
    total: u64,
}

/// Identifies events by RTP timestamp (§2.5.2.1) and follows them across retransmissions,
/// reordering, segments and wraps; shared so the receiver and the relay agree on what an event is.
#[derive(Debug, Clone, Default)]
struct Tracker {
    cur: Option<Tracked>,
}

impl Tracker {
    fn step(&mut self, ts: u32, marker: bool, ev: TelephoneEvent, rate: u32) -> Step {
        if rate == 0 {
            return Step::default();
        }
        let mut superseded = None;
        if let Some(cur) = self.cur.as_mut() {
            let ahead = ts.wrapping_sub(cur.seg_ts);
            if ahead == 0 && ev.event == cur.event {
                return advance(cur, ev);
            }
            if continues(cur, ahead, marker, ev) {
                cur.seg_base = cur.seg_base.saturating_add(u64::from(ahead));
                cur.seg_ts = ts;
                cur.wraps = 0;
                cur.last = 0;
                return advance(cur, ev);
            }
            let behind = u64::from(cur.seg_ts.wrapping_sub(ts));
            if ahead != 0 && behind <= cur.seg_base.saturating_add(u64::from(cur.rate) * STALE_SECS) {
                return Step::default();
            }
            if !cur.ended {
                superseded = Some(*cur);
            }
        }
        let cur = self.cur.insert(Tracked { event: ev.event, rate, start_ts: ts, seg_ts: ts, ..Tracked::default() });
        Step { superseded, began: true, ..advance(cur, ev) }
    }
}

/// A new segment (§2.5.1.3) starts where the previous one's duration ran out, with the same
/// event. Its closing 0xFFFF packet may be lost, so any unmarked start within reach of the longest
/// duration seen counts, once that segment has run over half the field; a fresh press whose
/// marker and the previous end were all lost inside that window is merged, an acceptable cost.
/// An exact run-out is taken even with a marker, which some senders set on every segment.
fn continues(cur: &Tracked, ahead: u32, marker: bool, ev: TelephoneEvent) -> bool {
    let (last, max) = (u32::from(cur.last), u32::from(SEGMENT_MAX));
    let exact = last == max && ahead == max;
    let plausible = !marker && cur.last >= WRAP_GAP && ahead >= last && ahead <= max;
    !cur.ended && ev.event == cur.event && cur.wraps == 0 && (exact || plausible)
}

fn advance(cur: &mut Tracked, ev: TelephoneEvent) -> Step {
    if cur.ended {
        return Step { end_repeat: ev.end, total: cur.total(), ..Step::default() };
    }
    let before = cur.total();
    if cur.last.saturating_sub(ev.duration) > WRAP_GAP {
        cur.wraps += 1;
        cur.last = 0;
    } else if cur.wraps > 0 && ev.duration.saturating_sub(cur.last) > WRAP_GAP {
        return Step::default(); // a straggler from before the wrap
    }
    let fresh = ev.duration >= cur.last || ev.end;
    cur.last = cur.last.max(ev.duration);
    cur.ended = ev.end;
    Step { fresh: fresh || cur.total() > before, end_first: ev.end, total: cur.total(), ..Step::default() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitEvent {
    Began { digit: char },
    Ended { digit: char, duration_ms: u32 },
}

/// Turns one incoming telephone-event stream into digit begin/end reports. Non-DTMF events
/// (flash, fax tones) are followed, so they still end a digit, but never reported. Replace it on
/// SSRC change: the new source's timestamps bear no relation to the old ones.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    tracker: Tracker,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// One packet can end the previous event (its end packets all lost), begin a new one and, if
    /// that one's first surviving packet is already an end packet, end it too: up to three reports.
    /// Telephone-events flow only while a key is down, so the Vec costs nothing that matters.
    /// Malformed payloads and a zero clock rate yield nothing.
    #[must_use]
    pub fn on_packet(&mut self, rtp_timestamp: u32, marker: bool, payload: &[u8], clock_rate: u32) -> Vec<DigitEvent> {
        let mut out = Vec::new();
        let Ok(ev) = TelephoneEvent::parse(payload) else { return out };
        let step = self.tracker.step(rtp_timestamp, marker, ev, clock_rate);
        if let Some(prev) = step.superseded {
            if let Some(digit) = event_to_digit(prev.event) {
                out.push(DigitEvent::Ended { digit, duration_ms: prev.ms(prev.total()) });
            }
        }
        let Some(cur) = self.tracker.cur else { return out };
        let Some(digit) = event_to_digit(cur.event) else { return out };
        if step.began {
            out.push(DigitEvent::Began { digit });
        }
        if step.end_first {
            out.push(DigitEvent::Ended { digit, duration_ms: cur.ms(step.total) });
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub payload: [u8; 4],
    pub timestamp: u32,
    pub marker: bool,
}
pub type GeneratedPacket = EventPacket;
pub type RelayedPacket = EventPacket;

/// Forwards telephone-events between legs whose clock rates differ. Durations are rescaled from
/// the whole event's length, not per packet, so input segments merge and output segments split
/// wherever each rate's 16-bit field demands. Each forwarded input packet yields one output
/// (plus a segment close), so end retransmissions stay exactly as many as arrived.
#[derive(Debug, Clone)]
pub struct DtmfRelay {
    out_rate: u32,
    in_ts_base: u32,
    out_ts_base: u32,
    tracker: Tracker,
    out_start: u32,
    /// Longest duration already sent for the current event, in output units.
    sent: Option<u64>,
}

impl DtmfRelay {
    /// `in_ts_base` on the incoming leg is the same instant as `out_ts_base` on the outgoing one.
    pub fn new(out_rate: u32, in_ts_base: u32, out_ts_base: u32) -> Self {
        Self { out_rate, in_ts_base, out_ts_base, tracker: Tracker::default(), out_start: 0, sent: None }
    }

    /// Usually one packet; crossing a segment boundary first sends the old segment's closing 0xFFFF
    /// packet. Malformed packets, a zero rate, and packets older than what was already forwarded
    /// yield nothing: they would only repeat or contradict what the far end has.
    #[must_use]
    pub fn relay(&mut self, rtp_timestamp: u32, marker: bool, payload: &[u8], in_rate: u32) -> Vec<RelayedPacket> {
        let mut out = Vec::new();
        let Ok(ev) = TelephoneEvent::parse(payload) else { return out };
        let step = self.tracker.step(rtp_timestamp, marker, ev, in_rate);
        let Some(cur) = self.tracker.cur else { return out };
        if step.began {
            self.out_start = self.map_ts(cur.start_ts, cur.rate);
            self.sent = None;
        }
        if !(step.fresh || step.end_repeat) {
            return out;
        }
        let total = scale(step.total, cur.rate, self.out_rate);
        let (seg, duration) = split(total);
        if let Some(sent) = self.sent {
            let (prev, prev_duration) = split(sent);
            if prev < seg && prev_duration < SEGMENT_MAX {
                out.push(self.packet(ev.event, ev.volume, prev, SEGMENT_MAX, false, false));
            }
        }
        out.push(self.packet(ev.event, ev.volume, seg, duration, ev.end, marker && seg == 0));
        self.sent = Some(self.sent.map_or(total, |s| s.max(total)));
        out
    }

    fn map_ts(&self, in_ts: u32, in_rate: u32) -> u32 {
        let delta = i128::from(in_ts.wrapping_sub(self.in_ts_base) as i32);
        let scaled = delta * i128::from(self.out_rate) / i128::from(in_rate.max(1));
        // Truncating to 32 bits is the RTP timestamp wrap.
        self.out_ts_base.wrapping_add(scaled as u32)
    }

    fn packet(&self, event: u8, volume: u8, seg: u64, duration: u16, end: bool, marker: bool) -> RelayedPacket {
        let offset = seg.saturating_mul(u64::from(SEGMENT_MAX)) as u32;
        let mut payload = [0; 4];
        TelephoneEvent { event, end, volume, duration }.write(&mut payload);
        RelayedPacket { payload, timestamp: self.out_start.wrapping_add(offset), marker }
    }
}

fn scale(units: u64, from: u32, to: u32) -> u64 {
    let from = u128::from(from.max(1));
    u64::try_from((u128::from(units) * u128::from(to) + from / 2) / from).unwrap_or(u64::MAX)
}

/// Which output segment an event length falls in, and the duration to state there. A length of
/// exactly 0xFFFF still fits the first segment.
fn split(total: u64) -> (u64, u16) {
    let max = u64::from(SEGMENT_MAX);
    let seg = total.saturating_sub(1) / max;
    (seg, u16::try_from(total - seg * max).unwrap_or(SEGMENT_MAX))
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    event: u8,
    volume: u8,
    units: u16,
    not_before: u32,
}

#[derive(Debug, Clone, Copy)]
enum GenState {
    Idle,
    Playing { q: Queued, ts: u32, last: u16, ends: u8 },
    Gap { until: u32 },
}

/// Plays requested digits as RFC 4733 packets, one `poll` per packet tick.
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    rate: u32,
    interval: u32,
    gap: u32,
    queue: VecDeque<Queued>,
    state: GenState,
}

impl DtmfGenerator {
    pub fn new(clock_rate: u32, packet_ms: u32) -> Result<Self, DtmfError> {
        let units = |ms: u32| u64::from(clock_rate) * u64::from(ms) / 1000;
        let interval = u32::try_from(units(packet_ms)).ok().filter(|&i| i > 0 && i <= u32::from(SEGMENT_MAX));
        let interval = interval.ok_or(DtmfError::BadTiming)?;
        let gap = u32::try_from(units(INTER_DIGIT_GAP_MS)).map_err(|_| DtmfError::BadTiming)?;
        Ok(Self { rate: clock_rate, interval, gap, queue: VecDeque::new(), state: GenState::Idle })
    }

    /// Queues one digit, played no earlier than `now_rtp_ts` and after any queued before it.
    /// Durations are raised to `MIN_DURATION_MS` and capped to one segment (1.36 s at 48 kHz):
    /// only relayed tones run longer, and those are segmented by `DtmfRelay`.
    pub fn start(&mut self, digit: char, duration_ms: u32, volume: u8, now_rtp_ts: u32) -> Result<(), DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::UnknownDigit)?;
        if self.queue.len() >= MAX_QUEUED_DIGITS {
            return Err(DtmfError::QueueFull);
        }
        let units = u64::from(duration_ms.max(MIN_DURATION_MS)) * u64::from(self.rate) / 1000;
        let units = u16::try_from(units).unwrap_or(SEGMENT_MAX);
        self.queue.push_back(Queued { event, volume: volume & 0x3F, units, not_before: now_rtp_ts });
        Ok(())
    }

    /// `start` for each digit, all or nothing, so a bad character never leaves half a number queued.
    pub fn start_digits(&mut self, digits: &str, duration_ms: u32, volume: u8, now: u32) -> Result<(), DtmfError> {
        if digits.chars().any(|c| digit_to_event(c).is_none()) {
            return Err(DtmfError::UnknownDigit);
        }
        if self.queue.len().saturating_add(digits.chars().count()) > MAX_QUEUED_DIGITS {
            return Err(DtmfError::QueueFull);
        }
        digits.chars().try_for_each(|c| self.start(c, duration_ms, volume, now))
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.state, GenState::Idle) && self.queue.is_empty()
    }

    /// `packet_time` is the RTP timestamp of the packet this tick would send. Durations follow it
    /// rather than counting ticks, so a late or skipped tick still reports true elapsed time.
    #[must_use]
    pub fn poll(&mut self, packet_time: u32) -> Option<GeneratedPacket> {
        if let GenState::Gap { until } = self.state {
            if before(packet_time, until) {
                return None;
            }
            self.state = GenState::Idle;
        }
        if let GenState::Idle = self.state {
            let q = *self.queue.front()?;
            if before(packet_time, q.not_before) {
                return None;
            }
            self.queue.pop_front();
            self.state = GenState::Playing { q, ts: packet_time, last: 0, ends: 0 };
        }
        let GenState::Playing { q, ts, last, ends } = &mut self.state else { return None };
        let marker = *last == 0 && *ends == 0;
        let elapsed = packet_time.wrapping_sub(*ts).saturating_add(self.interval);
        let duration =
            if *ends > 0 { q.units } else { u16::try_from(elapsed).unwrap_or(u16::MAX).max(*last).min(q.units) };
        let end = duration >= q.units;
        *last = duration;
        *ends += u8::from(end);
        let mut payload = [0; 4];
        TelephoneEvent { event: q.event, end, volume: q.volume, duration }.write(&mut payload);
        let packet = GeneratedPacket { payload, timestamp: *ts, marker };
        if *ends >= END_COPIES {
            self.state = GenState::Gap { until: packet_time.wrapping_add(self.interval).wrapping_add(self.gap) };
        }
        Some(packet)
    }
}

/// RTP timestamp order (serial arithmetic, RFC 1982).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Dispatches on the INFO Content-Type (parameters ignored).
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Result<(char, u32), DtmfError> {
    let text = std::str::from_utf8(body).map_err(|_| DtmfError::BadBody("not UTF-8"))?;
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/dtmf-relay") {
        parse_dtmf_relay(text)
    } else if mime.eq_ignore_ascii_case("application/dtmf") {
        parse_dtmf(text)
    } else {
        Err(DtmfError::BadBody("unsupported content type"))
    }
}

/// `application/dtmf-relay` has no RFC; phones vary in case, spacing, line ends and in writing
/// `*`/`#` as 10/11, so all of those are accepted. Unknown keys are skipped, the first `Signal`
/// and `Duration` win.
pub fn parse_dtmf_relay(body: &str) -> Result<(char, u32), DtmfError> {
    let (mut signal, mut duration) = (None, None);
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=').ok_or(DtmfError::BadBody("line without '='"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.eq_ignore_ascii_case("signal") && signal.is_none() {
            signal = Some(parse_signal(value).ok_or(DtmfError::UnknownDigit)?);
        } else if key.eq_ignore_ascii_case("duration") && duration.is_none() {
            duration = Some(value.parse::<u32>().map_err(|_| DtmfError::BadBody("bad Duration"))?);
        }
    }
    let signal = signal.ok_or(DtmfError::BadBody("no Signal"))?;
    Ok((signal, duration.unwrap_or(DEFAULT_DURATION_MS)))
}

/// `application/dtmf` is the bare digit; a relay-style body under that type is read as one.
pub fn parse_dtmf(body: &str) -> Result<(char, u32), DtmfError> {
    if body.contains('=') {
        return parse_dtmf_relay(body);
    }
    let digit = parse_signal(body.trim()).ok_or(DtmfError::UnknownDigit)?;
    Ok((digit, DEFAULT_DURATION_MS))
}

fn parse_signal(value: &str) -> Option<char> {
    let mut chars = value.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if let Some(event) = digit_to_event(c) {
            return event_to_digit(event);
        }
    }
    value.parse::<u8>().ok().and_then(event_to_digit)
}

/// `*` and `#` are written as themselves: every reader we know takes that form, not all take 10/11.
pub fn dtmf_relay_body(digit: char, duration_ms: u32) -> Result<String, DtmfError> {
    let digit = digit_to_event(digit).and_then(event_to_digit).ok_or(DtmfError::UnknownDigit)?;
    Ok(format!("Signal={digit}\r\nDuration={duration_ms}\r\n"))
}

#[cfg(test)]
#[path = "dtmf/tests.rs"]
mod tests;
