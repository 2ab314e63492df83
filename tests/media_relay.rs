//! The media engine with real UDP sockets on loopback: two phones and a spoofer. Packets relay
//! between the phones with one continuous egress stream each way, and the spoofer's never arrive.

use sipbridge::media::engine::MediaEngine;
use sipbridge::media::handler::{Encoding, PayloadFormat, PayloadTranscoder, TranscoderFactory};
use sipbridge::media::rtp::{self, RtpHeader, RtpView};
use sipbridge::media::session::{DtmfMode, EgressSeeds, LegConfig, MediaSession, RtcpMode, Side, Timeouts};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

fn pcmu_leg(remote: SocketAddr) -> LegConfig {
    LegConfig {
        formats: vec![PayloadFormat { encoding: Encoding::Pcmu, payload_type: 0, channels: 1 }],
        telephone_event: None,
        dtmf: DtmfMode::Rfc4733,
        ptime_ms: 20,
        remote: Some(remote),
        send: true,
        rtcp: RtcpMode::Off,
    }
}

fn packet(seq: u16, ssrc: u32, fill: u8) -> Vec<u8> {
    let mut buffer = vec![0u8; 172];
    let header = RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc };
    let len = rtp::write_packet(&mut buffer, &header, &[fill; 160]).expect("write");
    buffer.truncate(len);
    buffer
}

/// Ports per test binary run, away from other tests running at the same time.
fn port_range() -> (u16, u16) {
    let base = 30_000 + (std::process::id() % 300) as u16 * 100;
    (base, base + 99)
}

#[tokio::test]
async fn relays_between_phones_and_drops_a_spoofer() {
    let (min, max) = port_range();
    let engine = MediaEngine::new("127.0.0.1".parse().expect("ip"), min, max).expect("engine");
    let phone_a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let phone_b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let leg_a = engine.allocate().await.expect("leg a");
    let leg_b = engine.allocate().await.expect("leg b");
    assert_eq!(leg_a.port % 2, 0, "RTP on an even port");
    let (gw_a, gw_b) = (SocketAddr::from(([127, 0, 0, 1], leg_a.port)), SocketAddr::from(([127, 0, 0, 1], leg_b.port)));
    let no_transcoding: TranscoderFactory = Box::new(|_, _, _| Err::<Box<dyn PayloadTranscoder>, _>("not needed".to_string()));
    let seeds = [EgressSeeds { ssrc: 0xAAAA, sequence: 1, timestamp: 1 }, EgressSeeds { ssrc: 0xBBBB, sequence: 60_000, timestamp: 5 }];
    let session = MediaSession::new(
        pcmu_leg(phone_a.local_addr().expect("addr")),
        pcmu_leg(phone_b.local_addr().expect("addr")),
        seeds,
        no_transcoding,
        Timeouts::default(),
        engine.now(),
    );
    let handle = engine.spawn(session, leg_a, leg_b);

    for seq in 0..50u16 {
        phone_a.send_to(&packet(seq, 0x1111, 0x55), gw_a).await.expect("send");
        spoofer.send_to(&packet(seq, 0x9999, 0x66), gw_a).await.expect("spoof");
        spoofer.send_to(&packet(seq, 0x1111, 0x66), gw_a).await.expect("spoof with copied SSRC");
        phone_b.send_to(&packet(seq, 0x2222, 0x77), gw_b).await.expect("send back");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut at_b = Vec::new();
    let mut buffer = [0u8; 1_500];
    while let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_millis(500), phone_b.recv_from(&mut buffer)).await {
        let view = RtpView::parse(&buffer[..len]).expect("rtp");
        at_b.push((view.header(), view.payload()[0]));
    }
    let mut at_a = 0;
    while let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_millis(200), phone_a.recv_from(&mut buffer)).await {
        let view = RtpView::parse(&buffer[..len]).expect("rtp");
        assert_eq!((view.header().ssrc, view.payload()[0]), (0xAAAA, 0x77));
        at_a += 1;
    }
    assert_eq!(at_b.len(), 50, "every packet of phone A, nothing else");
    assert!(at_b.iter().all(|(h, fill)| *fill == 0x55 && h.ssrc == 0xBBBB), "the spoofer's payload never reached phone B");
    let sequences: Vec<u16> = at_b.iter().map(|(h, _)| h.sequence).collect();
    let expected: Vec<u16> = (0..50u16).map(|i| 60_000u16.wrapping_add(i)).collect();
    assert_eq!(sequences, expected, "one continuous sequence line");
    assert_eq!(at_a, 50);
    let counters = handle.counters(Side::A).await.expect("counters");
    assert_eq!(counters.dropped_foreign, 100);
    assert_eq!(counters.received_packets, 50);
    handle.stop().await;
}
