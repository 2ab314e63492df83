//! `MediaSession`: the media of one call, two legs, sans-IO. A packet from one leg goes
//! ingress (latch) -> codec handler (passthrough or transcode) or DTMF -> egress (sequencer) to the
//! other leg. Buffers are recycled through `recycle`, so passthrough allocates nothing per packet.

use super::dtmf::{DtmfGenerator, DtmfReceiver, DtmfRelay};
use super::codec::OpusBandwidth;
use super::handler::{CodecFrame, Encoding, Handler, HandlerTable, PayloadFormat, TranscoderFactory};
use super::srtp::SrtpContext;
use super::stats::{ReceiveStats, SendStats};
use super::latch::{Latch, LatchVerdict};
use super::reorder::{Released, ReorderBuffer};
use super::rtp::{self, RtpView};
use super::sequencer::EgressSequencer;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMode {
    /// RFC 4733 telephone-event in the media.
    Rfc4733,
    /// SIP INFO: digits leave the media path as events for the signalling layer.
    Info,
}

/// What the signalling layer negotiated for one leg.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Audio formats the peer accepts; the first is the one we send when we must transcode.
    pub formats: Vec<PayloadFormat>,
    /// telephone-event payload type and clock rate, when negotiated.
    pub telephone_event: Option<(u8, u32)>,
    pub dtmf: DtmfMode,
    pub ptime_ms: u32,
    /// Where the peer said it receives RTP (SDP c= and m=).
    pub remote: Option<SocketAddr>,
    /// False while the peer is on hold (sendonly/inactive toward it): nothing is sent to it.
    pub send: bool,
    /// Whether we send RTCP reports to this leg (the SIP side; WebRTC does its own), and whether
    /// they share the RTP port (rtcp-mux) or go to the port above.
    pub rtcp: RtcpMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpMode {
    Off,
    Mux,
    SeparatePort,
}

/// How long a leg may send nothing before the call ends (`[media] rtp_timeout_secs` and
/// `rtp_hold_timeout_secs`); the hold limit applies to both legs while either is on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub rtp: Duration,
    pub rtp_on_hold: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { rtp: Duration::from_secs(30), rtp_on_hold: Duration::from_secs(3_600) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTransmit {
    pub side: Side,
    pub to: SocketAddr,
    pub packet: Vec<u8>,
    /// Send from the leg's RTCP socket (unless the leg muxes RTCP onto RTP).
    pub rtcp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A digit arrived from `from` (RFC 4733 or INFO); reported once when it ends.
    Digit { from: Side, digit: char, duration_ms: u32 },
    /// The other leg wants DTMF as SIP INFO: the signalling layer sends it toward `toward`.
    SendInfo { toward: Side, digit: char, duration_ms: u32 },
    /// No RTP from this leg for the configured time (reported once; again only after the leg
    /// was heard or the timers restarted): the call should end as a media timeout.
    Inactive { side: Side, silent_for: Duration },
    Latched { side: Side, address: SocketAddr },
}

/// Counters the call record needs, per leg (what we received from it, what we sent to it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegCounters {
    pub received_packets: u64,
    pub received_bytes: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped_foreign: u64,
    /// SRTP packets that failed authentication or were replays.
    pub dropped_srtp: u64,
    pub dropped_unknown_payload: u64,
    pub transcoded: bool,
}

struct Leg {
    config: LegConfig,
    /// Digits in packets from this leg, reported once each, and the SSRC they came from: a new
    /// source starts a timestamp space of its own (RFC 3550), so its events are not "stale".
    dtmf_in: DtmfReceiver,
    dtmf_source: Option<u32>,
    /// Relays this leg's current telephone-event toward the other leg (clock conversion).
    dtmf_relay: Option<DtmfRelay>,
    /// Digits we play toward this leg (INFO from the other side, or a browser request).
    dtmf_out: Option<DtmfGenerator>,
    rx: ReceiveStats,
    tx: SendStats,
    /// Middle 32 bits of the last SR's NTP time from this leg, and when it arrived (for our DLSR).
    last_sr: Option<(u32, Duration)>,
    rtt: Option<Duration>,
    next_report: Duration,
    /// Puts this leg's packets back in order before a decoder (transcoding only), and the payload
    /// type they carried, so a timeout can flush them into the right transcoder.
    reorder: ReorderBuffer,
    transcode_pt: Option<u8>,
    /// SDES-SRTP toward and from this leg, when negotiated (RFC 4568).
    srtp_out: Option<SrtpContext>,
    srtp_in: Option<SrtpContext>,
    latch: Latch,
    egress: EgressSequencer,
    /// Handlers for packets *from* this leg toward the other one.
    handlers: HandlerTable,
    last_handler_was_passthrough: Option<bool>,
    silence: Silence,
    counters: LegCounters,
    /// The widest audio in this leg's Opus packets, for the record: did the sender honour the
    /// `maxplaybackrate` we asked for?
    opus_bandwidth: Option<OpusBandwidth>,
}

pub struct MediaSession {
    legs: [Leg; 2],
    /// Wall clock at session start, as NTP, for RTCP (the session itself runs on a monotonic clock).
    ntp_at_start: u64,
    started: Duration,
    factory: TranscoderFactory,
    timeouts: Timeouts,
    /// Off during early media (nothing has to flow before the answer): see `expect_media`.
    watching_inactivity: bool,
    transmits: VecDeque<MediaTransmit>,
    events: VecDeque<MediaEvent>,
    pool: Vec<Vec<u8>>,
    frames: Vec<CodecFrame>,
    released: Vec<Released>,
    /// Payloads the transcoder has read, on their way back to `pool`.
    spent: Vec<Vec<u8>>,
    next_dtmf_tick: Duration,
    problems: Vec<String>,
}

/// Packets a buffer must hold: the largest RTP packet we accept plus an SRTP tag.
const BUFFER_CAPACITY: usize = 1_500 + super::srtp::MAX_TRAILER_LEN;
const POOL_LIMIT: usize = 64;
const LATCH_PROBATION: u32 = 3;
/// RFC 3550 §6.2 minimum interval for a two-party session.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
const DTMF_TICK: Duration = Duration::from_millis(20);
/// Three packets or 60 ms: enough for common reordering, small enough to add little delay.
const REORDER_PACKETS: usize = 3;
const REORDER_WAIT: Duration = Duration::from_millis(60);

/// Random-looking but caller-chosen identity for each egress stream (RFC 3550 §5.1 wants random
/// SSRC, sequence and timestamp starts; the driver supplies entropy, tests supply constants).
#[derive(Debug, Clone, Copy)]
pub struct EgressSeeds {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
}

impl MediaSession {
    pub fn new(a: LegConfig, b: LegConfig, seeds: [EgressSeeds; 2], factory: TranscoderFactory, timeouts: Timeouts, now: Duration) -> MediaSession {
        Self::with_wall_clock(a, b, seeds, factory, timeouts, now, 0)
    }

    /// `ntp_now` is the wall clock at `now`, as a 64-bit NTP timestamp, for RTCP sender reports.
    pub fn with_wall_clock(
        a: LegConfig,
        b: LegConfig,
        seeds: [EgressSeeds; 2],
        factory: TranscoderFactory,
        timeouts: Timeouts,
        now: Duration,
        ntp_now: u64,
    ) -> MediaSession {
        let make_leg = |config: LegConfig, seed: EgressSeeds| {
            let clock = config.formats.first().map(|f| f.clock_rate()).unwrap_or(8_000);
            Leg {
                dtmf_in: DtmfReceiver::new(),
                dtmf_source: None,
                dtmf_relay: None,
                dtmf_out: None,
                rx: ReceiveStats::new(),
                tx: SendStats::new(),
                last_sr: None,
                rtt: None,
                next_report: now + REPORT_INTERVAL,
                srtp_out: None,
                srtp_in: None,
                reorder: ReorderBuffer::new(REORDER_PACKETS, REORDER_WAIT),
                transcode_pt: None,
                latch: Latch::new(config.remote, LATCH_PROBATION),
                egress: EgressSequencer::new(seed.ssrc, clock, seed.sequence, seed.timestamp),
                handlers: HandlerTable::default(),
                last_handler_was_passthrough: None,
                silence: Silence::since(now),
                counters: LegCounters::default(),
                opus_bandwidth: None,
                config,
            }
        };
        let mut session = MediaSession {
            legs: [make_leg(a, seeds[0]), make_leg(b, seeds[1])],
            ntp_at_start: ntp_now,
            started: now,
            factory,
            timeouts,
            watching_inactivity: true,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pool: Vec::new(),
            frames: Vec::new(),
            released: Vec::new(),
            spent: Vec::new(),
            next_dtmf_tick: now,
            problems: Vec::new(),
        };
        session.rebuild_handlers();
        session
    }

    /// Formats that could not be bridged (no transcoder): the call layer reports them.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// A re-INVITE or UPDATE changed what a leg negotiated: rebuild handlers and restart the
    /// egress timeline segment toward it so the peer sees continuity. A hold or resume restarts
    /// the inactivity timers under the new limit.
    pub fn update_leg(&mut self, side: Side, config: LegConfig, now: Duration) {
        let was_on_hold = self.on_hold();
        let leg = &mut self.legs[side.index()];
        leg.latch.set_signalled(config.remote);
        if let Some(format) = config.formats.first() {
            leg.egress.set_clock_rate(format.clock_rate());
        }
        leg.egress.discontinuity();
        leg.config = config;
        self.rebuild_handlers();
        if self.on_hold() != was_on_hold {
            self.restart_inactivity(now);
        }
    }

    fn rebuild_handlers(&mut self) {
        self.problems.clear();
        for side in [Side::A, Side::B] {
            let (source, destination) = (&self.legs[side.index()].config, &self.legs[side.other().index()].config);
            let (table, problems) = HandlerTable::build(&source.formats, &destination.formats, destination.ptime_ms, &self.factory);
            self.problems.extend(problems);
            self.legs[side.index()].handlers = table;
        }
    }

    /// Whether packets from `side` go through a codec (any of its payload types).
    pub fn transcodes_from(&self, side: Side) -> bool {
        self.legs[side.index()].handlers.transcodes()
    }

    pub fn counters(&self, side: Side) -> LegCounters {
        let leg = &self.legs[side.index()];
        LegCounters { transcoded: leg.handlers.transcodes(), ..leg.counters.clone() }
    }

    pub fn destination(&self, side: Side) -> Option<SocketAddr> {
        self.legs[side.index()].latch.destination()
    }

    pub fn poll_transmit(&mut self) -> Option<MediaTransmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Hands a sent packet's buffer back for reuse.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT {
            buffer.clear();
            self.pool.push(buffer);
        }
    }

    /// A buffer for the driver to receive into.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(BUFFER_CAPACITY))
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        let inactivity = self.inactivity_deadline().into_iter();
        let reports = self.legs.iter().filter(|leg| leg.config.rtcp != RtcpMode::Off).map(|leg| leg.next_report);
        let dtmf = self.legs.iter().filter_map(|leg| leg.dtmf_out.as_ref().filter(|g| !g.is_idle()).map(|_| self.next_dtmf_tick));
        let reorder = self.legs.iter().filter_map(|leg| leg.reorder.poll_timeout());
        inactivity.chain(reports).chain(dtmf).chain(reorder).min()
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        self.send_reports(now);
        for side in [Side::A, Side::B] {
            let mut released = std::mem::take(&mut self.released);
            self.legs[side.index()].reorder.handle_timeout(now, &mut released);
            if let Some(pt) = self.legs[side.index()].transcode_pt.filter(|_| !released.is_empty()) {
                self.decode_released(side, pt, &mut released, now);
            }
            released.clear();
            self.released = released;
        }
        if now >= self.next_dtmf_tick {
            self.next_dtmf_tick = now + DTMF_TICK;
            self.play_dtmf(now);
        }
        self.check_inactivity(now);
    }

    /// Keys SDES negotiated for a leg: `outbound` protects what we send it, `inbound` checks what
    /// it sends us.
    pub fn set_srtp(&mut self, side: Side, outbound: SrtpContext, inbound: SrtpContext) {
        let leg = &mut self.legs[side.index()];
        leg.srtp_out = Some(outbound);
        leg.srtp_in = Some(inbound);
    }

    /// New SDES keys from a re-INVITE; `None` keeps that direction's context (and its indices).
    pub fn rekey_srtp(&mut self, side: Side, outbound: Option<SrtpContext>, inbound: Option<SrtpContext>) {
        let leg = &mut self.legs[side.index()];
        leg.srtp_out = outbound.or(leg.srtp_out.take());
        leg.srtp_in = inbound.or(leg.srtp_in.take());
    }

    /// One RTP packet received from `side`'s socket. The buffer is reused for the forwarded copy.
    pub fn handle_rtp(&mut self, side: Side, from: SocketAddr, mut packet: Vec<u8>, now: Duration) {
        if let Some(srtp) = &mut self.legs[side.index()].srtp_in {
            // Authenticate before anything else looks at the packet, including the latch.
            if srtp.unprotect_rtp(&mut packet).is_err() {
                self.legs[side.index()].counters.dropped_srtp += 1;
                return self.recycle(packet);
            }
        }
        let Ok(view) = RtpView::parse(&packet) else {
            return self.recycle(packet);
        };
        let header = view.header();
        let toc = view.payload().first().copied();
        let (payload_start, payload_end) = (view.header_len(), view.header_len() + view.payload().len());
        let leg = &mut self.legs[side.index()];
        match leg.latch.on_packet(from, header.ssrc) {
            LatchVerdict::Ignore => {
                leg.counters.dropped_foreign += 1;
                return self.recycle(packet);
            }
            LatchVerdict::Accept => {}
        }
        if let Some(super::latch::LatchEvent::Latched { address, .. } | super::latch::LatchEvent::Moved { to: address, .. }) = leg.latch.poll_event() {
            self.events.push_back(MediaEvent::Latched { side, address });
        }
        leg.silence.heard(now);
        leg.counters.received_packets += 1;
        leg.counters.received_bytes += (payload_end - payload_start) as u64;
        let format = leg.config.formats.iter().find(|f| f.payload_type == header.payload_type);
        if let Some(toc) = toc.filter(|_| format.is_some_and(|f| f.encoding == Encoding::Opus)) {
            leg.opus_bandwidth = leg.opus_bandwidth.max(Some(OpusBandwidth::of_toc(toc)));
        }
        let clock = format.map(|f| f.clock_rate());
        let telephone_event = leg.config.telephone_event.filter(|(pt, _)| *pt == header.payload_type);
        if let Some(rate) = clock.or(telephone_event.map(|(_, rate)| rate)) {
            leg.rx.on_packet(header.sequence, header.timestamp, now.saturating_sub(self.started), rate, payload_end - payload_start);
        }
        if let Some((_, rate)) = telephone_event {
            let payload = packet.get(payload_start..payload_end).map(<[u8]>::to_vec).unwrap_or_default();
            self.recycle(packet);
            return self.handle_telephone_event(side, header, &payload, rate, now);
        }

        let out_side = side.other();
        if !self.legs[out_side.index()].config.send {
            // Held: drop before stamping so the egress line has no gap when the leg resumes.
            return self.recycle(packet);
        }
        let Some(handler) = self.legs[side.index()].handlers.get_mut(header.payload_type) else {
            self.legs[side.index()].counters.dropped_unknown_payload += 1;
            return self.recycle(packet);
        };
        let passthrough = handler.is_passthrough();
        // Switching into or out of transcoding starts a new egress segment (continuity).
        let switched = self.legs[side.index()].last_handler_was_passthrough.is_some_and(|was| was != passthrough);
        self.legs[side.index()].last_handler_was_passthrough = Some(passthrough);
        if switched {
            self.legs[out_side.index()].egress.discontinuity();
        }
        match handler {
            Handler::Passthrough { out } => {
                let out = *out;
                let egress = &mut self.legs[out_side.index()].egress;
                egress.set_clock_rate(out.clock_rate());
                let stamp = egress.forward(header.ssrc, header.sequence, header.timestamp, header.marker, now);
                if rtp::rewrite_in_place(&mut packet, stamp.ssrc, stamp.sequence, stamp.timestamp, out.payload_type).is_err() {
                    return self.recycle(packet);
                }
                if stamp.marker {
                    if let Some(byte) = packet.get_mut(1) {
                        *byte |= 0x80;
                    }
                }
                self.send(out_side, packet);
            }
            Handler::Transcode { .. } => self.transcode(side, header.sequence, header.payload_type, packet, payload_start..payload_end, now),
        }
    }

    /// Hands a packet's payload to the reorder buffer and decodes what it releases. The payload
    /// moves to the front of its own buffer: no copy into a new one.
    fn transcode(&mut self, side: Side, sequence: u16, payload_type: u8, mut packet: Vec<u8>, payload: std::ops::Range<usize>, now: Duration) {
        // `RtpView::parse` checked header ≤ payload end ≤ packet length; a range that is not
        // within the packet anyway is dropped, not a panic.
        if payload.start > payload.end || payload.end > packet.len() {
            return self.recycle(packet);
        }
        let length = payload.len();
        packet.copy_within(payload, 0);
        packet.truncate(length);
        let mut released = std::mem::take(&mut self.released);
        let leg = &mut self.legs[side.index()];
        leg.transcode_pt = Some(payload_type);
        leg.reorder.push(sequence, packet, now, &mut released);
        self.decode_released(side, payload_type, &mut released, now);
        self.released = released;
    }

    /// Feeds in-order packets and declared losses into the transcoder for `payload_type`.
    fn decode_released(&mut self, side: Side, payload_type: u8, released: &mut Vec<Released>, now: Duration) {
        let mut frames = std::mem::take(&mut self.frames);
        let out_side = side.other();
        let Some(Handler::Transcode { out, transcoder }) = self.legs[side.index()].handlers.get_mut(payload_type) else {
            released.clear();
            self.frames = frames;
            return;
        };
        let out = *out;
        let mut spent = std::mem::take(&mut self.spent);
        for item in released.drain(..) {
            let result = match item {
                Released::Packet(payload) => {
                    let result = transcoder.push(&payload, &mut frames);
                    spent.push(payload);
                    result
                }
                Released::Lost { next } => transcoder.push_lost(next.as_deref(), &mut frames),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "transcoder refused a frame");
            }
        }
        self.emit_frames(out_side, out, &frames, now);
        // The frames' buffers go back to the transcoder, the payloads' to the pool.
        if let Some(Handler::Transcode { transcoder, .. }) = self.legs[side.index()].handlers.get_mut(payload_type) {
            for frame in frames.drain(..) {
                transcoder.recycle(frame.payload);
            }
        }
        frames.clear();
        self.frames = frames;
        for payload in spent.drain(..) {
            self.recycle(payload);
        }
        self.spent = spent;
    }

    fn emit_frames(&mut self, out_side: Side, out: PayloadFormat, frames: &[CodecFrame], now: Duration) {
        for frame in frames {
            let egress = &mut self.legs[out_side.index()].egress;
            egress.set_clock_rate(out.clock_rate());
            let stamp = egress.generate(frame.rtp_ticks, now);
            let header = rtp::RtpHeader { marker: stamp.marker, payload_type: out.payload_type, sequence: stamp.sequence, timestamp: stamp.timestamp, ssrc: stamp.ssrc };
            let mut buffer = self.buffer();
            buffer.resize(rtp::RTP_HEADER_LEN + frame.payload.len(), 0);
            match rtp::write_packet(&mut buffer, &header, &frame.payload) {
                Ok(len) => {
                    buffer.truncate(len);
                    self.send(out_side, buffer);
                }
                Err(_) => self.recycle(buffer),
            }
        }
    }

    fn send(&mut self, side: Side, packet: Vec<u8>) {
        let leg = &mut self.legs[side.index()];
        match (leg.config.send, leg.latch.destination()) {
            (true, Some(to)) => {
                leg.counters.sent_packets += 1;
                let payload_len = packet.len().saturating_sub(rtp::RTP_HEADER_LEN);
                leg.counters.sent_bytes += payload_len as u64;
                if let Ok(view) = RtpView::parse(&packet) {
                    leg.tx.on_sent(payload_len, view.header().timestamp);
                }
                let mut packet = packet;
                if let Some(srtp) = &mut leg.srtp_out {
                    if srtp.protect_rtp(&mut packet).is_err() {
                        return self.recycle(packet);
                    }
                }
                self.transmits.push_back(MediaTransmit { side, to, packet, rtcp: false });
            }
            _ => self.recycle(packet),
        }
    }
}

#[path = "session/dtmf.rs"]
mod dtmf_path;
#[path = "session/inactivity.rs"]
mod inactivity;
use inactivity::Silence;
#[path = "session/quality.rs"]
mod quality;
pub use quality::LegQuality;

#[cfg(test)]
mod tests;
