//! DTMF inside a media session: telephone-event from one leg is reported as a digit and either
//! relayed (with clock-rate conversion) to the other leg or handed to signalling as SIP INFO;
//! digits from signalling are played as RFC 4733 packets toward a leg.

use super::{DtmfMode, MediaEvent, MediaSession, Side};
use crate::media::dtmf::{DigitEvent, DtmfGenerator, DtmfReceiver, DtmfRelay};
use crate::media::rtp::{self, RtpHeader};
use std::time::Duration;

/// RFC 4733 end packets are usually sent three times; one 20 ms tick each.
const PACKET_MS: u32 = 20;

impl MediaSession {
    pub(super) fn handle_telephone_event(&mut self, side: Side, header: RtpHeader, payload: &[u8], rate: u32, now: Duration) {
        let out_side = side.other();
        let leg = &mut self.legs[side.index()];
        if leg.dtmf_source != Some(header.ssrc) {
            // A re-INVITE or a new sender: its timestamps say nothing about the old stream's.
            leg.dtmf_source = Some(header.ssrc);
            leg.dtmf_in = DtmfReceiver::new();
            leg.dtmf_relay = None;
        }
        let reports = leg.dtmf_in.on_packet(header.timestamp, header.marker, payload, rate);
        let began = reports.iter().any(|r| matches!(r, DigitEvent::Began { .. }));
        let (out_mode, out_event) = {
            let out = &self.legs[out_side.index()].config;
            (out.dtmf, out.telephone_event)
        };
        for report in reports {
            if let DigitEvent::Ended { digit, duration_ms } = report {
                self.events.push_back(MediaEvent::Digit { from: side, digit, duration_ms });
                if out_mode == DtmfMode::Info || out_event.is_none() {
                    self.events.push_back(MediaEvent::SendInfo { toward: out_side, digit, duration_ms });
                }
            }
        }
        let (Some((out_pt, out_rate)), DtmfMode::Rfc4733) = (out_event, out_mode) else { return };
        if !self.legs[out_side.index()].config.send {
            return;
        }
        // Each new event is anchored at the egress timeline's current position.
        if began || self.legs[side.index()].dtmf_relay.is_none() {
            let out_base = self.legs[out_side.index()].egress.timeline_now(now);
            self.legs[side.index()].dtmf_relay = Some(DtmfRelay::new(out_rate, header.timestamp, out_base));
        }
        let relayed = match &mut self.legs[side.index()].dtmf_relay {
            Some(relay) => relay.relay(header.timestamp, header.marker, payload, rate),
            None => Vec::new(),
        };
        for packet in relayed {
            self.emit_event_packet(out_side, out_pt, packet.timestamp, packet.marker, &packet.payload, now);
        }
    }

    /// Plays `digits` toward `toward` as RFC 4733, or asks signalling for INFO when that leg
    /// negotiated no telephone-event.
    pub fn send_dtmf(&mut self, toward: Side, digits: &str, duration_ms: u32, now: Duration) -> Result<(), String> {
        let leg = &mut self.legs[toward.index()];
        let Some((_, rate)) = leg.config.telephone_event.filter(|_| leg.config.dtmf == DtmfMode::Rfc4733) else {
            for digit in digits.chars() {
                self.events.push_back(MediaEvent::SendInfo { toward, digit, duration_ms });
            }
            return Ok(());
        };
        let start = leg.egress.timeline_now(now);
        let generator = match &mut leg.dtmf_out {
            Some(generator) => generator,
            None => leg.dtmf_out.insert(DtmfGenerator::new(rate, PACKET_MS).map_err(|e| e.to_string())?),
        };
        generator.start_digits(digits, duration_ms, 10, start).map_err(|e| e.to_string())?;
        if self.next_dtmf_tick > now {
            self.next_dtmf_tick = now;
        }
        Ok(())
    }

    pub(super) fn play_dtmf(&mut self, now: Duration) {
        for side in [Side::A, Side::B] {
            let leg = &mut self.legs[side.index()];
            let Some((pt, _)) = leg.config.telephone_event else { continue };
            let position = leg.egress.timeline_now(now);
            let Some(packet) = leg.dtmf_out.as_mut().and_then(|g| g.poll(position)) else { continue };
            self.emit_event_packet(side, pt, packet.timestamp, packet.marker, &packet.payload, now);
        }
    }

    fn emit_event_packet(&mut self, side: Side, payload_type: u8, timestamp: u32, marker: bool, payload: &[u8; 4], now: Duration) {
        let stamp = self.legs[side.index()].egress.stamp(timestamp, marker, now);
        let header = RtpHeader { marker, payload_type, sequence: stamp.sequence, timestamp, ssrc: stamp.ssrc };
        let mut buffer = self.buffer();
        buffer.resize(rtp::RTP_HEADER_LEN + payload.len(), 0);
        match rtp::write_packet(&mut buffer, &header, payload) {
            Ok(len) => {
                buffer.truncate(len);
                self.send(side, buffer);
            }
            Err(_) => self.recycle(buffer),
        }
    }
}
