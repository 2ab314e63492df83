//! One call through the gateway, driven from both ends: a Rust WebRTC browser and the SIP trunk.
//! The call's task does the signalling of both; their media runs in the load tool's media loop.

use super::browser::{token, Browser, Voice};
use super::media_loop::{BrowserStart, MediaLoops};
use super::meter::{StreamTally, Window};
use super::sip_peer::{CallOutcome, RtpEndpoint, SipPeer};
use super::stream::StreamPlan;
use super::ws_sip::{self, WsSipClient};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIGNALING_WAIT: Duration = Duration::from_secs(15);

/// What every call of a scenario shares.
pub struct CallContext {
    pub http_port: u16,
    pub jwt_secret: &'static str,
    pub peer: Arc<SipPeer>,
    pub voice: Voice,
    pub window: Window,
    /// Passthrough: payloads arrive untouched, so probes give exact loss and latency.
    pub probed: bool,
    /// Where every stream's packets are sent and counted.
    pub media: Arc<MediaLoops>,
    /// Mid-call requests the browser sends (the soak's mix: `dtmf`, `hold`, `unhold`), each this
    /// long after the answer.
    pub requests: Vec<(Duration, serde_json::Value)>,
}

impl CallContext {
    fn requests_from(&self, answered: Instant) -> Vec<(Instant, serde_json::Value)> {
        self.requests.iter().map(|(after, request)| (answered + *after, request.clone())).collect()
    }
}

impl CallContext {
    /// What call `index`'s browser sends (`voice`) or its trunk sends (PCMU probes), until `stop`.
    fn plan(&self, index: u32, stop: Instant, browser: bool) -> StreamPlan {
        let voice = if browser { self.voice.clone() } else { Voice::PcmuProbes };
        StreamPlan { voice, window: self.window, call: index, probed: self.probed, stop }
    }
}

#[derive(Debug, Default)]
pub struct CallReport {
    pub call: String,
    /// INVITE to `incoming` (calls from SIP) or `call` to `answered` less the trunk's think time.
    pub setup_us: Option<u32>,
    /// Calls from SIP: the browser's `accept` to the trunk's 200 OK.
    pub accept_to_ok_us: Option<u32>,
    pub to_browser: StreamTally,
    pub to_sip: StreamTally,
    pub failure: Option<String>,
    /// Mid-call requests the gateway confirmed.
    pub confirmed: usize,
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// A browser calls the trunk (user `t<index>`) and hangs up at `stop`.
pub async fn from_browser(context: Arc<CallContext>, index: u32, stop: Instant) -> CallReport {
    let mut report = CallReport { call: format!("caller{index} → t{index}"), ..Default::default() };
    if let Err(e) = browser_call(&context, index, stop, &mut report).await {
        report.failure = Some(format!("{}: {e}", report.call));
    }
    report
}

async fn browser_call(context: &CallContext, index: u32, stop: Instant, report: &mut CallReport) -> Result<(), String> {
    let target = format!("t{index}");
    let mut browser = Browser::login(context.http_port, &token(&format!("caller{index}"), &["trunk"], context.jwt_secret)).await?;
    let (sent, answered, mut leg) = browser.call(&context.media, &target, context.plan(index, stop, true), SIGNALING_WAIT).await?;
    let trunk = context.peer.answered_call_for(&target, SIGNALING_WAIT).await.ok_or("the trunk never saw the INVITE")?;
    let think = trunk.answered.saturating_duration_since(trunk.received);
    report.setup_us = Some(micros(answered.saturating_duration_since(sent).saturating_sub(think)));
    let sip_media = trunk.media.run(&context.media, trunk.gateway_media, context.plan(index, stop, false));
    let (browser_media, sip_media) = tokio::join!(browser.media_with_requests(&mut leg, stop, context.requests_from(answered)), sip_media);
    browser.hang_up().await;
    let (sent_by_sip, sip_receiver) = sip_media?;
    let ((sent_by_browser, browser_receiver), confirmed) = browser_media?;
    report.confirmed = confirmed;
    report.to_browser = browser_receiver.tally(sent_by_sip);
    report.to_sip = sip_receiver.tally(sent_by_browser);
    Ok(())
}

/// The trunk calls browser user `load<index>`, which answers at once; the trunk hangs up at `stop`.
pub async fn from_sip(context: Arc<CallContext>, index: u32, stop: Instant) -> CallReport {
    let mut report = CallReport { call: format!("trunk → load{index}"), ..Default::default() };
    if let Err(e) = sip_call(&context, index, stop, &mut report).await {
        report.failure = Some(format!("{}: {e}", report.call));
    }
    report
}

async fn sip_call(context: &CallContext, index: u32, stop: Instant, report: &mut CallReport) -> Result<(), String> {
    let user = format!("load{index}");
    let mut browser = Browser::login(context.http_port, &token(&user, &[], context.jwt_secret)).await.map_err(|e| format!("login: {e}"))?;
    let media = RtpEndpoint::bind().map_err(|e| e.to_string())?;
    let mut call = context.peer.invite(&user, media.port()).await;
    let (incoming, offer) = browser.incoming(SIGNALING_WAIT).await.map_err(|e| format!("waiting for `incoming`: {e}"))?;
    report.setup_us = Some(micros(incoming.saturating_duration_since(call.sent_at)));
    let mut leg = browser.accept(&context.media, &offer, context.plan(index, stop, true)).await?;
    let accepted = Instant::now();
    let sip_plan = context.plan(index, stop, false);
    let sip_side = async move {
        let outcome = call.outcome(SIGNALING_WAIT).await;
        let CallOutcome::Answered { at, gateway_media } = outcome else {
            return Err(match outcome {
                CallOutcome::Failed(why) => why,
                CallOutcome::Answered { .. } => String::new(),
            });
        };
        let (sent, receiver) = media.run(&context.media, gateway_media, sip_plan).await?;
        let hung_up_early = call.hung_up_by_gateway();
        let confirmed = call.hang_up().await;
        match (hung_up_early, confirmed) {
            (true, _) => Err("the gateway hung up early".to_string()),
            (false, false) => Err("BYE not answered".to_string()),
            (false, true) => Ok((at, sent, receiver)),
        }
    };
    let requests = context.requests_from(accepted);
    let (browser_media, sip_result) = tokio::join!(browser.media_with_requests(&mut leg, stop, requests), sip_side);
    let (answered, sent_by_sip, sip_receiver) = sip_result?;
    report.accept_to_ok_us = Some(micros(answered.saturating_duration_since(accepted)));
    let hangup_seen = browser.await_hangup(Duration::from_secs(5)).await;
    let ((sent_by_browser, browser_receiver), confirmed) = browser_media?;
    report.confirmed = confirmed;
    report.to_browser = browser_receiver.tally(sent_by_sip);
    report.to_sip = sip_receiver.tally(sent_by_browser);
    if !hangup_seen {
        return Err("the browser never heard the hangup".into());
    }
    Ok(())
}

/// A JsSIP-style client `ws<index>` (SIP over WebSocket, digest, a WebRTC offer in PCMU) calls
/// browser user `load<index>`, which answers at once; the client hangs up at `stop`.
pub async fn from_websocket(context: Arc<CallContext>, ws_port: u16, index: u32, stop: Instant) -> CallReport {
    let mut report = CallReport { call: format!("ws{index} → load{index}"), ..Default::default() };
    if let Err(e) = websocket_call(&context, ws_port, index, stop, &mut report).await {
        report.failure = Some(format!("{}: {e}", report.call));
    }
    report
}

async fn websocket_call(context: &CallContext, ws_port: u16, index: u32, stop: Instant, report: &mut CallReport) -> Result<(), String> {
    let user = format!("load{index}");
    let mut browser = Browser::login(context.http_port, &token(&user, &[], context.jwt_secret)).await.map_err(|e| format!("login: {e}"))?;
    let mut client = WsSipClient::connect(ws_port, ws_sip::user(index)).await?;
    client.register(SIGNALING_WAIT).await?;
    // The client's media is a stand-in browser leg, like the callee's: WebRTC on both sides.
    let codec = Voice::PcmuProbes.codec();
    let mut leg = context.media.open_browser(BrowserStart::Offer { codec: codec.clone() }, context.plan(index, stop, false)).await?;
    let offer = ws_sip::offer_with_candidates(&leg, codec.payload_type)?;
    let first_invite = client.invite(&user, &offer, SIGNALING_WAIT).await?;
    let (incoming, gateway_offer) = browser.incoming(SIGNALING_WAIT).await.map_err(|e| format!("waiting for `incoming`: {e}"))?;
    report.setup_us = Some(micros(incoming.saturating_duration_since(first_invite)));
    let mut callee = browser.accept(&context.media, &gateway_offer, context.plan(index, stop, true)).await?;
    let accepted = Instant::now();
    let client_side = async {
        let answered = client.answered(SIGNALING_WAIT).await?;
        leg.set_answer(&answered.sdp).await?;
        let tally = client.media(&mut leg).await?;
        let confirmed = client.hang_up(Duration::from_secs(5)).await?;
        if !confirmed {
            return Err("BYE not answered 200".to_string());
        }
        Ok((answered.at, tally))
    };
    let (browser_media, client_result) = tokio::join!(browser.media(&mut callee, stop), client_side);
    let (answered, (sent_by_client, client_receiver)) = client_result?;
    report.accept_to_ok_us = Some(micros(answered.saturating_duration_since(accepted)));
    let hangup_seen = browser.await_hangup(Duration::from_secs(5)).await;
    let (sent_by_browser, browser_receiver) = browser_media?;
    // The client stands where the trunk does in the other scenarios: "to SIP" is toward it.
    report.to_browser = browser_receiver.tally(sent_by_client);
    report.to_sip = client_receiver.tally(sent_by_browser);
    if !hangup_seen {
        return Err("the browser never heard the hangup".into());
    }
    Ok(())
}
