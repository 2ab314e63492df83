#![allow(dead_code)]

//! Audio for sipp's `play_pcap_audio`: RTP packets written as a classic pcap (Ethernet, IPv4,
//! UDP on loopback), so a scenario can send any codec under any payload type. Opus frames come
//! from the gateway's own libopus binding: only the encoding is borrowed, Chromium decodes.

use sipbridge::media::codec::{encoder, CodecKind, CodecParams};

/// 20 ms at Opus's 48 kHz RTP clock.
const OPUS_TICKS: u32 = 960;

/// RTP packets with their send offsets in microseconds.
pub struct RtpStream {
    packets: Vec<(u64, Vec<u8>)>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    at_us: u64,
}

impl RtpStream {
    /// A stream from one source: a second pcap played in the same call needs its own `ssrc`.
    pub fn new(ssrc: u32) -> RtpStream {
        RtpStream { packets: Vec::new(), ssrc, sequence: 1_000, timestamp: 48_000, at_us: 0 }
    }

    fn push(&mut self, payload_type: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        let mut packet = vec![0x80, (u8::from(marker) << 7) | payload_type];
        packet.extend_from_slice(&self.sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.packets.push((self.at_us, packet));
        self.sequence = self.sequence.wrapping_add(1);
        self.at_us += 20_000;
    }

    /// A sine at `hz` for `tenths_of_seconds`, Opus (mono, 20 ms) under `payload_type`.
    pub fn opus_tone(&mut self, payload_type: u8, hz: f64, tenths_of_seconds: u32) {
        let params = CodecParams::new(CodecKind::Opus);
        let mut opus = encoder(&params).expect("an Opus encoder");
        let mut phase = 0.0f64;
        let step = 2.0 * std::f64::consts::PI * hz / 48_000.0;
        for frame in 0..tenths_of_seconds * 5 {
            let pcm: Vec<i16> = (0..960)
                .map(|_| {
                    phase += step;
                    (phase.sin() * 12_000.0) as i16
                })
                .collect();
            let mut payload = Vec::new();
            opus.encode(&pcm, &mut payload).expect("encode");
            self.push(payload_type, frame == 0, self.timestamp, &payload);
            self.timestamp = self.timestamp.wrapping_add(OPUS_TICKS);
        }
    }

    /// One RFC 4733 digit of 200 ms at a 48 kHz event clock under `payload_type`: growing
    /// durations, then the end packet three times, then 100 ms of nothing.
    pub fn digit(&mut self, payload_type: u8, event: u8) {
        let start = self.timestamp;
        for step in 1..=10u32 {
            let duration = (step * OPUS_TICKS) as u16;
            self.push(payload_type, step == 1, start, &[event, 10, (duration >> 8) as u8, duration as u8]);
        }
        let duration = (10 * OPUS_TICKS) as u16;
        for _ in 0..3 {
            self.push(payload_type, false, start, &[event, 0x80 | 10, (duration >> 8) as u8, duration as u8]);
        }
        // 13 packets took 260 ms; 100 ms of gap follows: the next media starts 360 ms on.
        self.at_us += 100_000;
        self.timestamp = start.wrapping_add(18 * OPUS_TICKS);
    }

    /// The pcap file: microsecond timestamps, link type Ethernet.
    pub fn pcap(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        for word in [0u32, 0, 65_535, 1] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for (at_us, rtp) in &self.packets {
            let frame = ethernet_udp(rtp);
            let seconds = 1_700_000_000 + at_us / 1_000_000;
            for word in [seconds as u32, (at_us % 1_000_000) as u32, frame.len() as u32, frame.len() as u32] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&frame);
        }
        out
    }
}

fn ethernet_udp(rtp: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + rtp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    let checksum = !ip.chunks(2).fold(0u32, |sum, pair| {
        let sum = sum + u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        (sum & 0xffff) + (sum >> 16)
    }) as u16;
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    for word in [6_000u16, 6_000, 8 + rtp.len() as u16, 0] {
        frame.extend_from_slice(&word.to_be_bytes());
    }
    frame.extend_from_slice(rtp);
    frame
}
