//! Simplified ITU-T G.107 E-model: a conversational quality estimate from what the media path
//! measures (loss, jitter, RTT). G.107 defaults stand in for everything it cannot observe (room
//! noise, echo, loudness), so the figure ranks calls; it is not a planning-grade prediction.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecQuality {
    G711 { plc: bool },
    G722,
    Opus,
}

impl CodecQuality {
    /// Equipment impairment Ie and packet-loss robustness Bpl on the narrowband R scale.
    ///
    /// - G.711: ITU-T G.113 Appendix I: Ie 0; Bpl 25.1 with G.711 Appendix I PLC, 4.3 without.
    /// - G.722: not in G.113 Appendix I, whose scale is narrowband; the proper tool is the
    ///   wideband E-model (G.107.1). Here it is assumed no worse than G.711 with PLC (Ie 0,
    ///   Bpl 25.1), since its Appendix III/IV PLC conceals like G.711's.
    /// - Opus: not tabulated by the ITU. Conservative choice: Ie 11, the G.113 value of G.729A
    ///   (Opus's narrowband low-bitrate operating point is comparable), and Bpl 20, below
    ///   G.711+PLC although Opus PLC/FEC usually does better. This understates Opus at WebRTC
    ///   bitrates; the point is to never flatter a call.
    pub fn impairment(self) -> (f64, f64) {
        match self {
            CodecQuality::G711 { plc: true } | CodecQuality::G722 => (0.0, 25.1),
            CodecQuality::G711 { plc: false } => (0.0, 4.3),
            CodecQuality::Opus => (11.0, 20.0),
        }
    }

    /// One-way delay the codec adds at 20 ms packets: a frame of packetisation plus lookahead.
    /// G.722 adds about 1.5 ms for its QMF filter pair; Opus's default algorithmic delay at
    /// 20 ms frames is 26.5 ms (frame + 6.5 ms lookahead, per the libopus documentation).
    pub fn delay_ms(self) -> f64 {
        match self {
            CodecQuality::G711 { .. } => 20.0,
            CodecQuality::G722 => 21.5,
            CodecQuality::Opus => 26.5,
        }
    }
}

/// R = 93.2 - Id - Ie,eff: 93.2 is G.107's R with every unobserved parameter at its default.
/// Loss is taken as random (BurstR = 1); bursty loss hurts more than this predicts.
pub fn r_factor(codec: CodecQuality, loss_percent: f64, jitter_ms: f64, rtt_ms: f64) -> f64 {
    let loss = non_negative(loss_percent).min(100.0);
    // Mouth-to-ear: half the round trip, a jitter buffer sized at twice the jitter, the codec.
    let delay = non_negative(rtt_ms) / 2.0 + 2.0 * non_negative(jitter_ms) + codec.delay_ms();
    let id = 0.024 * delay
        + if delay > 177.3 {
            0.11 * (delay - 177.3)
        } else {
            0.0
        };
    let (ie, bpl) = codec.impairment();
    let ie_eff = ie + (95.0 - ie) * loss / (loss + bpl);
    93.2 - id - ie_eff
}

pub fn mos(codec: CodecQuality, loss_percent: f64, jitter_ms: f64, rtt_ms: f64) -> f64 {
    mos_from_r(r_factor(codec, loss_percent, jitter_ms, rtt_ms))
}

/// G.107 Annex B mapping. The polynomial dips under 1 for R below ~6.5, hence the clamp.
pub fn mos_from_r(r: f64) -> f64 {
    let r = if r.is_nan() { 0.0 } else { r.clamp(0.0, 100.0) };
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

/// Measurements are never negative; NaN (a 0/0 upstream) reads as "nothing measured".
fn non_negative(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.max(0.0)
    }
}
