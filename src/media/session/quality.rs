//! Per-leg quality figures for the call record, and RTCP toward SIP legs (SR when we send,
//! RR otherwise, RFC 3550 §6.4); RTT comes from the peer's report blocks.

use super::{MediaSession, MediaTransmit, RtcpMode, Side, REPORT_INTERVAL};
use crate::media::handler::Encoding;
use crate::media::rtcp::{self, ReceiverReport, RtcpPacket};
use crate::media::stats::{self, CodecQuality};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// What the call record stores per leg and direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LegQuality {
    pub codec: String,
    pub received_packets: u64,
    pub received_bytes: u64,
    pub lost: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub longest_loss_burst: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub rtt_ms: Option<f64>,
    /// `None` until a packet arrives: silence has no quality, and the E-model would score a
    /// leg that received nothing as perfect (no loss, no jitter).
    pub mos: Option<f64>,
    /// The widest audio bandwidth of the Opus packets received (`OpusBandwidth::name`).
    pub audio_bandwidth: Option<String>,
}

const CNAME: &str = "sipbridge";

impl MediaSession {
    pub fn quality(&self, side: Side) -> LegQuality {
        let leg = &self.legs[side.index()];
        let encoding = leg.config.formats.first().map(|f| f.encoding);
        let codec_quality = match encoding {
            Some(Encoding::G722) => CodecQuality::G722,
            Some(Encoding::Opus) => CodecQuality::Opus,
            _ => CodecQuality::G711 { plc: true },
        };
        let rtt_ms = leg.rtt.map(|r| r.as_secs_f64() * 1e3);
        LegQuality {
            codec: encoding.map(|e| e.name().to_string()).unwrap_or_default(),
            received_packets: leg.rx.packets(),
            received_bytes: leg.rx.bytes(),
            lost: leg.rx.lost(),
            loss_percent: leg.rx.loss_percent(),
            jitter_ms: leg.rx.jitter_ms(),
            longest_loss_burst: leg.rx.longest_loss_burst(),
            sent_packets: leg.tx.packets(),
            sent_bytes: leg.tx.octets(),
            rtt_ms,
            mos: (leg.rx.packets() > 0).then(|| stats::mos(codec_quality, leg.rx.loss_percent(), leg.rx.jitter_ms(), rtt_ms.unwrap_or(0.0))),
            audio_bandwidth: leg.opus_bandwidth.map(|b| b.name().to_string()),
        }
    }

    /// An RTCP compound packet from `side`: note SRs for our DLSR, and RTT from blocks about us.
    pub fn handle_rtcp(&mut self, side: Side, from: SocketAddr, packet: &[u8], now: Duration) {
        let mut owned;
        let mut packet = packet;
        if let Some(srtp) = &mut self.legs[side.index()].srtp_in {
            owned = packet.to_vec();
            if srtp.unprotect_rtcp(&mut owned).is_err() {
                return;
            }
            packet = &owned;
        }
        let Ok(packets) = rtcp::parse_compound(packet) else { return };
        let our_ssrc = self.legs[side.index()].egress.ssrc();
        let arrival = rtcp::ntp_middle_32(self.ntp_at(now));
        let leg = &mut self.legs[side.index()];
        // Reports are only trusted from where this leg's RTP comes from (same host).
        if leg.latch.destination().is_some_and(|d| d.ip() != from.ip()) {
            return;
        }
        for packet in packets {
            let blocks = match packet {
                RtcpPacket::SenderReport(sr) => {
                    leg.last_sr = Some((rtcp::ntp_middle_32(sr.ntp), now));
                    sr.reports
                }
                RtcpPacket::ReceiverReport(rr) => rr.reports,
                _ => continue,
            };
            for block in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
                if let Some(rtt) = stats::rtt_from_report(block, arrival) {
                    leg.rtt = Some(rtt);
                }
            }
        }
    }

    pub(super) fn send_reports(&mut self, now: Duration) {
        for side in [Side::A, Side::B] {
            let ntp = self.ntp_at(now);
            let leg = &mut self.legs[side.index()];
            if leg.config.rtcp == RtcpMode::Off || now < leg.next_report {
                continue;
            }
            leg.next_report = now + REPORT_INTERVAL;
            let Some(rtp_destination) = leg.latch.destination() else { continue };
            let ssrc = leg.egress.ssrc();
            let source = leg.latch.latched_ssrc();
            let blocks: Vec<_> = source.map(|s| leg.rx.report_block(s, leg.last_sr, now)).into_iter().collect();
            let mut packet = Vec::with_capacity(128);
            if leg.tx.packets() > 0 {
                let rtp_now = leg.egress.timeline_now(now);
                let mut sr = leg.tx.sender_report(ssrc, ntp, rtp_now);
                sr.reports = blocks;
                rtcp::write_sender_report(&mut packet, &sr, CNAME);
            } else {
                rtcp::write_receiver_report(&mut packet, &ReceiverReport { ssrc, reports: blocks }, CNAME);
            }
            if let Some(srtp) = &mut leg.srtp_out {
                if srtp.protect_rtcp(&mut packet).is_err() {
                    continue;
                }
            }
            let to = match leg.config.rtcp {
                RtcpMode::Mux => rtp_destination,
                _ => SocketAddr::new(rtp_destination.ip(), rtp_destination.port().saturating_add(1)),
            };
            self.transmits.push_back(MediaTransmit { side, to, packet, rtcp: leg.config.rtcp == RtcpMode::SeparatePort });
        }
    }

    fn ntp_at(&self, now: Duration) -> u64 {
        let elapsed = now.saturating_sub(self.started);
        let fraction = ((u128::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000) as u64;
        self.ntp_at_start.wrapping_add((elapsed.as_secs() << 32) | fraction)
    }
}
