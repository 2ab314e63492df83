//! N concurrent echo calls from Rust WebRTC clients (webrtc-rs, the same stack a browser would
//! meet) against a running gateway. Reports the gateway's CPU and memory per call at N = 50 and
//! N = 200, read from /proc. `make bench` runs it; ECHO_LOAD=50,200 overrides the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sipbridge::media::codec::{encoder, CodecKind, CodecParams};
use sipbridge::media::rtp::{self, RtpHeader};
use sipbridge::webrtc_leg::{BrowserCodec, LegEvent, WebRtcConfig, WebRtcLeg};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Gateway, GatewayOptions, JWT_SECRET};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Totals {
    connected: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    failed: AtomicU64,
}

fn token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = sipbridge::signaling::jwt::Claims { sub: "load".into(), exp: now + 3_600, nbf: None, iat: None, profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// One second of a 1 kHz tone as 50 Opus payloads, sent in a loop.
fn opus_frames() -> Vec<Vec<u8>> {
    let mut params = CodecParams::new(CodecKind::Opus);
    params.channels = 1;
    let Ok(mut encoder) = encoder(&params) else { return vec![vec![0xF8, 0xFF, 0xFE]; 50] };
    let rate = encoder.sample_rate() as usize;
    let frame = encoder.frame_samples();
    (0..50)
        .map(|i| {
            let pcm: Vec<i16> = (0..frame).map(|n| ((i * frame + n) as f64 * 2.0 * std::f64::consts::PI * 1000.0 / rate as f64).sin()).map(|s| (s * 8_000.0) as i16).collect();
            let mut out = Vec::new();
            let _ = encoder.encode(&pcm, &mut out);
            out
        })
        .collect()
}

async fn one_call(http_port: u16, frames: Arc<Vec<Vec<u8>>>, totals: Arc<Totals>, until: Instant) -> Result<(), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{http_port}/ws")).await.map_err(|e| e.to_string())?;
    let send = |frame: Value| Message::Text(frame.to_string().into());
    ws.send(send(json!({"type": "hello", "id": 1, "versions": [1]}))).await.map_err(|e| e.to_string())?;
    ws.send(send(json!({"type": "login", "id": 2, "method": "token", "token": token()}))).await.map_err(|e| e.to_string())?;
    let codec = BrowserCodec { mime_type: "audio/opus".into(), payload_type: 111, clock_rate: 48_000, channels: 2 };
    let config = WebRtcConfig { bind: "127.0.0.1:0".parse().map_err(|_| "addr")?, ice_servers: vec![], public_ip: None, lite: false, failed_timeout: Duration::from_secs(15) };
    let ssrc: u32 = rand::random();
    let (leg, offer, mut events) = WebRtcLeg::offer(codec, &config, ssrc).await.map_err(|e| e.to_string())?;
    ws.send(send(json!({"type": "call", "id": 3, "target": "echo", "sdp": offer}))).await.map_err(|e| e.to_string())?;
    let mut call_id = String::new();
    let mut connected = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let (mut sequence, mut timestamp, mut index) = (0u16, 0u32, 0usize);
    let mut buffer = vec![0u8; 1_500];
    while Instant::now() < until {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else { return Err("signaling closed".into()) };
                let message: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                match message["type"].as_str() {
                    Some("call") => call_id = message["call_id"].as_str().unwrap_or_default().to_string(),
                    Some("answered") => leg.set_answer(message["sdp"].as_str().unwrap_or_default()).await.map_err(|e| e.to_string())?,
                    Some("candidate") => { let _ = leg.add_remote_candidate(Some(message["candidate"].clone()).filter(|c| !c.is_null())).await; }
                    Some("hangup") | Some("error") => return Err(message.to_string()),
                    _ => {}
                }
            }
            event = events.recv() => match event {
                Some(LegEvent::LocalCandidate(candidate)) if !call_id.is_empty() => {
                    let _ = ws.send(send(json!({"type": "candidate", "call_id": call_id, "candidate": candidate}))).await;
                }
                Some(LegEvent::Connected) => { connected = true; totals.connected.fetch_add(1, Ordering::Relaxed); }
                Some(LegEvent::Rtp(_)) => { totals.received.fetch_add(1, Ordering::Relaxed); }
                Some(LegEvent::Failed(reason)) => return Err(reason),
                _ => {}
            },
            _ = ticker.tick(), if connected => {
                let header = RtpHeader { marker: sequence == 0, payload_type: 111, sequence, timestamp, ssrc };
                let payload = &frames[index % frames.len()];
                if let Ok(len) = rtp::write_packet(&mut buffer, &header, payload) {
                    if leg.send_rtp(&buffer[..len]).await.is_ok() {
                        totals.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(960);
                index += 1;
            }
        }
    }
    let _ = ws.send(send(json!({"type": "hangup", "id": 4, "call_id": call_id}))).await;
    leg.close().await;
    Ok(())
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15; after the ")" they are the 12th and 13th.
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn run(calls: usize, frames: Arc<Vec<Vec<u8>>>) {
    let gateway = Gateway::start(GatewayOptions { extra_media: "rtp_port_min = 20000\nrtp_port_max = 21000\n".into(), ..Default::default() });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let pid = gateway.pid();
    let idle_rss = rss_kb(pid);
    let totals = Arc::new(Totals::default());
    let ramp = Duration::from_millis(20 * calls as u64);
    let measure = Duration::from_secs(10);
    let until = Instant::now() + ramp + Duration::from_secs(5) + measure + Duration::from_secs(1);
    runtime.block_on(async {
        for _ in 0..calls {
            let (frames, totals) = (frames.clone(), totals.clone());
            let port = gateway.http_port;
            tokio::spawn(async move {
                if let Err(e) = one_call(port, frames, totals.clone(), until).await {
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("call failed: {e}");
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (cpu_before, sent_before, received_before, at) = (cpu_ticks(pid), totals.sent.load(Ordering::Relaxed), totals.received.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(measure).await;
        let elapsed = at.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0 / elapsed * 100.0;
        let sent = totals.sent.load(Ordering::Relaxed) - sent_before;
        let received = totals.received.load(Ordering::Relaxed) - received_before;
        let connected = totals.connected.load(Ordering::Relaxed).max(1);
        let rss = rss_kb(pid);
        println!(
            "echo calls {calls:>4}: connected {connected:>4}, failed {:>3} | gateway CPU {cpu:>6.1} % of a core = {:.3} % per call | RSS {:>7.1} MB = {:.2} MB per call | packets echoed {:.1} %",
            totals.failed.load(Ordering::Relaxed),
            cpu / connected as f64,
            rss as f64 / 1024.0,
            rss.saturating_sub(idle_rss) as f64 / 1024.0 / connected as f64,
            if sent > 0 { received as f64 * 100.0 / sent as f64 } else { 0.0 },
        );
        tokio::time::sleep(until.saturating_duration_since(Instant::now()) + Duration::from_secs(1)).await;
    });
}

fn main() {
    let sizes: Vec<usize> = std::env::var("ECHO_LOAD").unwrap_or_else(|_| "50,200".into()).split(',').filter_map(|n| n.trim().parse().ok()).collect();
    let frames = Arc::new(opus_frames());
    println!("echo load: Rust WebRTC clients (Opus, 50 pkt/s each way) against the release gateway on loopback, 2-core VM");
    for calls in sizes {
        run(calls, frames.clone());
    }
}
