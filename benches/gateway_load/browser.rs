//! The browser side of the load: the signaling protocol of docs/signaling.md over a WebSocket,
//! here in the call's task; the browser's media (a sans-IO rtc peer connection, so DTLS-SRTP and
//! ICE are real) lives in the load tool's media loop (media_loop.rs).

use super::media_loop::{BrowserHandle, BrowserStart, MediaLoops};
use super::stream::{BrowserEvent, StreamPlan, Tally};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sipbridge::webrtc_leg::BrowserCodec;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the browser puts in its RTP: probes in PCMU (passthrough), or Opus frames of a tone.
#[derive(Clone)]
pub enum Voice {
    PcmuProbes,
    Opus(Arc<Vec<Vec<u8>>>),
}

impl Voice {
    pub fn codec(&self) -> BrowserCodec {
        match self {
            Voice::PcmuProbes => BrowserCodec { mime_type: "audio/PCMU".into(), payload_type: 0, clock_rate: 8_000, channels: 1 },
            Voice::Opus(_) => BrowserCodec { mime_type: "audio/opus".into(), payload_type: 111, clock_rate: 48_000, channels: 2 },
        }
    }

    pub fn samples_per_frame(&self) -> u32 {
        match self {
            Voice::PcmuProbes => 160,
            Voice::Opus(_) => 960,
        }
    }
}

pub struct Browser {
    ws: Socket,
    next_id: u64,
    pub call_id: String,
    /// The gateway's `hangup` came (after the media's stop, where it is expected).
    hung_up: bool,
}

fn frame(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

pub fn token(user: &str, profiles: &[&str], secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = sipbridge::signaling::jwt::Claims { sub: user.into(), exp: now + 3_600, nbf: None, iat: None, profiles: profiles.iter().map(|p| p.to_string()).collect() };
    sipbridge::signaling::jwt::sign(&claims, secret.as_bytes())
}

/// Moves `payload_type` to the front of the audio m-line: the gateway answers with the first
/// codec a browser offers, as Chrome users steer it with `setCodecPreferences`.
pub fn prefer_payload_type(sdp: &str, payload_type: u8) -> String {
    sdp.split("\r\n")
        .map(|line| match line.strip_prefix("m=audio ") {
            Some(rest) => {
                let fields: Vec<&str> = rest.split(' ').collect();
                let wanted = payload_type.to_string();
                let mut formats: Vec<&str> = fields.iter().skip(2).copied().filter(|f| *f != wanted).collect();
                formats.insert(0, &wanted);
                format!("m=audio {} {} {}", fields.first().unwrap_or(&"9"), fields.get(1).unwrap_or(&"UDP/TLS/RTP/SAVPF"), formats.join(" "))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

impl Browser {
    pub async fn login(http_port: u16, token: &str) -> Result<Browser, String> {
        // Browsers set TCP_NODELAY on every socket; so does this one.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://127.0.0.1:{http_port}/ws"), None, true).await.map_err(|e| format!("connect: {e}"))?;
        let mut browser = Browser { ws, next_id: 1, call_id: String::new(), hung_up: false };
        browser.request(json!({"type": "hello", "versions": [1]})).await?;
        browser.request(json!({"type": "login", "method": "token", "token": token})).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = browser.next_frame(deadline).await?;
            if reply["type"] == "login" && reply["ok"] == true {
                return Ok(browser);
            }
            if reply["type"] == "error" {
                return Err(format!("login: {reply}"));
            }
        }
    }

    async fn request(&mut self, mut value: Value) -> Result<(), String> {
        value["id"] = json!(self.next_id);
        self.next_id += 1;
        self.ws.send(frame(value)).await.map_err(|e| format!("send: {e}"))
    }

    async fn next_frame(&mut self, deadline: Instant) -> Result<Value, String> {
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.ws.next()).await {
            Err(_) => Err("signaling timeout".into()),
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(text.as_str()).map_err(|e| e.to_string()),
            Ok(Some(Ok(_))) => Ok(Value::Null),
            Ok(_) => Err("signaling closed".into()),
        }
    }

    /// Places a call; returns once `answered` arrives, with the time `call` was sent and the leg.
    pub async fn call(&mut self, media: &MediaLoops, target: &str, plan: StreamPlan, within: Duration) -> Result<(Instant, Instant, BrowserHandle), String> {
        let codec = plan.voice.codec();
        let plan_voice = plan.voice.clone();
        let leg = media.open_browser(BrowserStart::Offer { codec: codec.clone() }, plan).await?;
        let offer = prefer_payload_type(&leg.sdp, codec.payload_type);
        let sent = Instant::now();
        self.request(json!({"type": "call", "target": target, "sdp": offer})).await?;
        let deadline = Instant::now() + within;
        loop {
            let frame = self.next_frame(deadline).await?;
            match frame["type"].as_str() {
                Some("call") if frame["ok"] == true => {
                    self.call_id = frame["call_id"].as_str().unwrap_or_default().to_string();
                    for candidate in leg.candidates.clone() {
                        self.send_candidate(candidate).await;
                    }
                }
                Some("answered") => {
                    let answered = Instant::now();
                    let sdp = frame["sdp"].as_str().unwrap_or_default();
                    if matches!(plan_voice, Voice::Opus(_)) {
                        asks_for_narrowband(sdp)?;
                    }
                    leg.set_answer(sdp).await?;
                    return Ok((sent, answered, leg));
                }
                Some("candidate") => leg.add_remote_candidate(remote_candidate(&frame)),
                Some("hangup") | Some("error") => return Err(frame.to_string()),
                _ => {}
            }
        }
    }

    /// Waits for `incoming`; returns when it arrived and the gateway's offer.
    pub async fn incoming(&mut self, within: Duration) -> Result<(Instant, String), String> {
        let deadline = Instant::now() + within;
        loop {
            let frame = self.next_frame(deadline).await?;
            if frame["type"] == "incoming" {
                let at = Instant::now();
                self.call_id = frame["call_id"].as_str().unwrap_or_default().to_string();
                return Ok((at, frame["sdp"].as_str().unwrap_or_default().to_string()));
            }
        }
    }

    /// Answers the incoming call with the plan's codec.
    pub async fn accept(&mut self, media: &MediaLoops, offer: &str, plan: StreamPlan) -> Result<BrowserHandle, String> {
        let codec = plan.voice.codec().mime_type.trim_start_matches("audio/").to_string();
        if matches!(plan.voice, Voice::Opus(_)) {
            asks_for_narrowband(offer)?;
        }
        let leg = media.open_browser(BrowserStart::Answer { offer: offer.to_string(), codec }, plan).await?;
        self.request(json!({"type": "accept", "call_id": self.call_id, "sdp": leg.sdp})).await?;
        for candidate in leg.candidates.clone() {
            self.send_candidate(candidate).await;
        }
        Ok(leg)
    }

    async fn send_candidate(&mut self, candidate: Option<Value>) {
        let _ = self.ws.send(frame(json!({"type": "candidate", "call_id": self.call_id, "candidate": candidate}))).await;
    }

    pub async fn hang_up(&mut self) {
        let call_id = self.call_id.clone();
        let _ = self.request(json!({"type": "hangup", "call_id": call_id})).await;
    }

    /// Signaling while the media loop runs the leg's media (until the plan's `stop` and the
    /// drain after it). Returns the leg's tally, or why the call broke.
    pub async fn media(&mut self, leg: &mut BrowserHandle, stop: Instant) -> Result<Tally, String> {
        self.media_with_requests(leg, stop, Vec::new()).await.map(|(tally, _)| tally)
    }

    /// `media`, sending mid-call requests (`dtmf`, `hold`, `unhold`: their `type` and fields,
    /// without id or call) at their times; also returns how many the gateway confirmed.
    pub async fn media_with_requests(&mut self, leg: &mut BrowserHandle, stop: Instant, mut requests: Vec<(Instant, Value)>) -> Result<(Tally, usize), String> {
        let far_future = stop + Duration::from_secs(3_600);
        requests.sort_by_key(|(at, _)| *at);
        let mut requests = std::collections::VecDeque::from(requests);
        let mut confirmed = 0;
        loop {
            let next_due = requests.front().map(|(at, _)| *at);
            tokio::select! {
                frame = self.next_frame(far_future) => {
                    let frame = frame?;
                    match frame["type"].as_str() {
                        Some("candidate") => leg.add_remote_candidate(remote_candidate(&frame)),
                        Some("dtmf" | "hold" | "unhold") if frame["ok"] == true => confirmed += 1,
                        Some("dtmf" | "hold" | "unhold") => return Err(format!("refused: {frame}")),
                        // The SIP side hangs up once its own stream is done, which may be a moment
                        // before this one's drain ends.
                        Some("hangup") if Instant::now() >= stop => self.hung_up = true,
                        Some("hangup") => return Err(format!("gateway hung up: {frame}")),
                        _ => {}
                    }
                }
                () = tokio::time::sleep_until(next_due.unwrap_or(far_future).into()), if next_due.is_some() => {
                    if let Some((_, mut request)) = requests.pop_front() {
                        request["call_id"] = json!(self.call_id.clone());
                        self.request(request).await?;
                    }
                }
                event = leg.events.recv() => match event {
                    Some(BrowserEvent::Connected) => {}
                    Some(BrowserEvent::Failed(reason)) => return Err(format!("WebRTC: {reason}")),
                    // The stream ended: its tally is on its way.
                    None => return (&mut leg.done).await.map(|t| (t, confirmed)).map_err(|_| "media loop gone".to_string()),
                },
                tally = &mut leg.done => return tally.map(|t| (t, confirmed)).map_err(|_| "media loop gone".to_string()),
            }
        }
    }

    /// After the SIP side hung up: waits (bounded) for the `hangup` event.
    pub async fn await_hangup(&mut self, within: Duration) -> bool {
        if self.hung_up {
            return true;
        }
        let deadline = Instant::now() + within;
        while let Ok(frame) = self.next_frame(deadline).await {
            if frame["type"] == "hangup" && frame.get("ok").is_none() {
                return true;
            }
        }
        false
    }
}

/// A stand-in browser sends narrowband Opus only where a browser would: when the gateway's SDP
/// asks for `maxplaybackrate=8000` (or less) on its Opus format.
fn asks_for_narrowband(sdp: &str) -> Result<(), String> {
    let parsed = sipbridge::sdp::SessionDescription::parse(sdp).map_err(|e| format!("the gateway's SDP: {e}"))?;
    let audio = parsed.media.iter().find(|m| m.is_audio()).ok_or("no audio in the gateway's SDP")?;
    let opus = audio.rtpmaps().into_iter().find(|m| m.encoding.eq_ignore_ascii_case("opus")).ok_or("no Opus in the gateway's SDP")?;
    let fmtp = audio.fmtp(opus.payload_type).unwrap_or_default();
    let rate = fmtp.split(';').find_map(|p| p.trim().strip_prefix("maxplaybackrate=")).and_then(|r| r.parse::<u32>().ok());
    match rate {
        Some(rate) if rate <= NARROWBAND_HZ => Ok(()),
        _ => Err(format!("the gateway did not ask for narrowband Opus, which is what this stand-in browser sends (fmtp {fmtp:?})")),
    }
}

/// The candidate of a `candidate` frame; `None` is end-of-candidates.
fn remote_candidate(frame: &Value) -> Option<Value> {
    Some(frame["candidate"].clone()).filter(|c| !c.is_null())
}

/// The `maxplaybackrate` the gateway asks of a browser bridged to a G.711 trunk, which the load
/// tool's trunks are: the only Opus its stand-in browsers send.
const NARROWBAND_HZ: u32 = 8_000;
/// What libwebrtc's Opus encoder aims at for such a peer (`kOpusBitrateNbBps`).
const NARROWBAND_BITRATE: u32 = 12_000;

/// One second of a 1 kHz tone as 50 Opus payloads, sent in a loop on transcoded calls: encoded as
/// a browser encodes for a peer that asks `maxplaybackrate=8000`, narrowband at 12 kbit/s. The
/// call checks that the gateway asked for it (`asks_for_narrowband`).
pub fn opus_tone() -> Vec<Vec<u8>> {
    use sipbridge::media::codec::{encoder, CodecKind, CodecParams};
    let mut params = CodecParams::new(CodecKind::Opus);
    params.channels = 1;
    params.opus.max_playback_rate = NARROWBAND_HZ;
    params.opus.bitrate = NARROWBAND_BITRATE;
    let Ok(mut encoder) = encoder(&params) else { return vec![vec![0xF8, 0xFF, 0xFE]; 50] };
    let rate = encoder.sample_rate() as usize;
    let frame = encoder.frame_samples();
    (0..50)
        .map(|i| {
            let pcm: Vec<i16> = (0..frame)
                .map(|n| ((i * frame + n) as f64 * 2.0 * std::f64::consts::PI * 1000.0 / rate as f64).sin())
                .map(|s| (s * 8_000.0) as i16)
                .collect();
            let mut out = Vec::new();
            let _ = encoder.encode(&pcm, &mut out);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stand_in_sends_narrowband_opus_only_when_asked() {
        let answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";
        let fullband = format!("{answer}a=fmtp:111 minptime=10;useinbandfec=1\r\n");
        assert!(super::asks_for_narrowband(&fullband).is_err());
        let narrowband = sipbridge::sdp::with_opus_playback_limit(&fullband, 8_000);
        assert_eq!(super::asks_for_narrowband(&narrowband), Ok(()));
        assert!(super::asks_for_narrowband(&sipbridge::sdp::with_opus_playback_limit(&fullband, 16_000)).is_err());
    }

    #[test]
    fn preferred_payload_type_leads_the_m_line() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 110 101\r\na=mid:0\r\n";
        assert_eq!(super::prefer_payload_type(sdp, 0), "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 111 9 8 110 101\r\na=mid:0\r\n");
    }
}
