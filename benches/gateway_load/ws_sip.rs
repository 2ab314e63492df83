//! The JsSIP-style side of the load: a SIP-over-WebSocket client (RFC 7118), as browser
//! softphones built on JsSIP or SIP.js are. It connects to the gateway's `ws` listener with the
//! `sip` subprotocol, registers to the local domain with digest, and calls with a WebRTC offer
//! (ICE, DTLS-SRTP): the media is the load tool's own stand-in browser leg (media_loop.rs), its
//! candidates written inline, since SIP has no trickle. A 407 to the INVITE is answered as JsSIP
//! does (ACK, then the INVITE again with Proxy-Authorization). Every wait is bounded.

use super::media_loop::BrowserHandle;
use super::sip_peer::{response, SipMessage};
use super::stream::{BrowserEvent, Tally};
use futures_util::{SinkExt, StreamExt};
use sipbridge::call::webrtc_sip::{candidate_value, with_candidates};
use sipbridge::sip::auth::{answer_challenge, Challenge};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The local domain the support gateway serves (tests/support).
pub const DOMAIN: &str = super::support::LOCAL_DOMAIN;

/// The user name and password of the load's WebSocket client `index`, a user of the local domain.
pub fn user(index: u32) -> (String, String) {
    (format!("ws{index}"), format!("ws-load-{index}-password"))
}

/// Every client user of a run of `calls` calls, for the gateway's local profile.
pub fn users(calls: usize) -> Vec<(String, String)> {
    (0..calls as u32).map(user).collect()
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The stand-in browser leg's offer as a SIP peer sends it: its candidates inline, `preferred`
/// first on the m-line.
pub fn offer_with_candidates(leg: &BrowserHandle, preferred: u8) -> Result<String, String> {
    let candidates: Vec<String> = leg.candidates.iter().flatten().filter_map(candidate_value).collect();
    let sdp = with_candidates(&leg.sdp, &candidates).map_err(|e| format!("offer: {e}"))?;
    Ok(super::browser::prefer_payload_type(&sdp.to_string(), preferred))
}

/// What the client knows of its one call.
struct Dialog {
    call_id: String,
    from_tag: String,
    request_uri: String,
    /// The To header, with the gateway's tag once answered.
    to: String,
    /// The gateway's Contact from its 200: where in-dialog requests go.
    remote_target: Option<String>,
    cseq: u32,
    branch: String,
}

/// The answered call: when the 200 came and the gateway's SDP.
pub struct Answered {
    pub at: Instant,
    pub sdp: String,
}

pub struct WsSipClient {
    ws: Socket,
    user: String,
    password: String,
    /// The client's made-up host, as JsSIP writes in its Via and Contact (RFC 7118 §5.2).
    host: String,
    register_cseq: u32,
    dialog: Option<Dialog>,
    /// A BYE came from the gateway.
    pub hung_up_by_gateway: bool,
}

impl WsSipClient {
    /// Connects with the `sip` subprotocol; fails unless the gateway selects it.
    pub async fn connect(port: u16, user: (String, String)) -> Result<WsSipClient, String> {
        let mut request = format!("ws://127.0.0.1:{port}").into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", "sip".parse().map_err(|_| "header")?);
        // Browsers set TCP_NODELAY on every socket; so does this one.
        let (ws, answer) = tokio_tungstenite::connect_async_with_config(request, None, true).await.map_err(|e| format!("connect: {e}"))?;
        if answer.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()) != Some("sip") {
            return Err("the gateway did not select the sip subprotocol".into());
        }
        let host = format!("{}.invalid", &token()[..12]);
        Ok(WsSipClient { ws, user: user.0, password: user.1, host, register_cseq: 0, dialog: None, hung_up_by_gateway: false })
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws.send(Message::text(text)).await.map_err(|e| format!("send: {e}"))
    }

    /// The next SIP message; pings are answered by the socket, keep-alive CRLFs skipped.
    async fn next(&mut self, deadline: Instant) -> Result<SipMessage, String> {
        loop {
            let frame = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.ws.next()).await.map_err(|_| "SIP over WebSocket: timeout".to_string())?;
            let bytes = match frame {
                Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                Some(Ok(Message::Close(_))) | None => return Err("the gateway closed the WebSocket".into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("WebSocket: {e}")),
            };
            if let Some(message) = SipMessage::parse(&bytes) {
                return Ok(message);
            }
        }
    }

    /// The response to our `method` request numbered `cseq`; requests from the gateway that come
    /// meanwhile are answered.
    async fn response_to(&mut self, method: &str, cseq: u32, deadline: Instant) -> Result<SipMessage, String> {
        loop {
            let message = self.next(deadline).await?;
            if message.method().is_some() {
                self.answer_request(&message).await?;
                continue;
            }
            let numbered = message.header("cseq").and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok());
            if message.cseq_method() == Some(method) && numbered == Some(cseq) {
                return Ok(message);
            }
        }
    }

    /// A request from the gateway inside our dialog: 200 (a BYE is noted).
    async fn answer_request(&mut self, request: &SipMessage) -> Result<(), String> {
        match request.method() {
            Some("ACK") => Ok(()),
            Some(method) => {
                self.hung_up_by_gateway |= method == "BYE";
                self.send(response(request, 200, "OK", None, "")).await
            }
            None => Ok(()),
        }
    }

    /// A digest answer to the challenge in `header` of `challenge`.
    fn credentials(&self, challenge: &SipMessage, header: &str, method: &str, uri: &str) -> Result<String, String> {
        let value = challenge.header(header).ok_or_else(|| format!("{} without {header}", challenge.start_line))?;
        let parsed = Challenge::parse(value).map_err(|e| format!("{header}: {e:?}"))?;
        let answer = answer_challenge(&parsed, &self.user, &self.password, method, uri, None, &token(), 1).map_err(|e| format!("digest: {e:?}"))?;
        Ok(answer.to_string())
    }

    fn register_request(&self, call_id: &str, from_tag: &str, authorization: Option<&str>) -> String {
        let (user, host, cseq) = (&self.user, &self.host, self.register_cseq);
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS {host};branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag={from_tag}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{host};transport=ws>;expires=600\r\nExpires: 600\r\nUser-Agent: sipbridge-load JsSIP-style\r\n{auth}Content-Length: 0\r\n\r\n",
            token()
        )
    }

    /// REGISTER, answered to its 401 with digest, until 200.
    pub async fn register(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let (call_id, from_tag) = (format!("{}@{}", token(), self.host), token());
        let mut authorization = None;
        for _ in 0..2 {
            self.register_cseq += 1;
            let request = self.register_request(&call_id, &from_tag, authorization.as_deref());
            self.send(request).await?;
            let answer = self.response_to("REGISTER", self.register_cseq, deadline).await?;
            match answer.status() {
                Some(200) => return Ok(()),
                Some(401) if authorization.is_none() => authorization = Some(self.credentials(&answer, "www-authenticate", "REGISTER", &format!("sip:{DOMAIN}"))?),
                other => return Err(format!("REGISTER answered {other:?}")),
            }
        }
        Err("REGISTER challenged twice".into())
    }

    fn request(&self, method: &str, cseq: u32, branch: &str, extra: &str, sdp: &str) -> String {
        let Some(dialog) = &self.dialog else { return String::new() };
        // Before the 200 (the ACK of a 407, the INVITEs) the Request-URI; after it, the Contact.
        let target = dialog.remote_target.as_ref().unwrap_or(&dialog.request_uri);
        let (user, host) = (&self.user, &self.host);
        let mut out = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/WS {host};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@{host};transport=ws;ob>\r\nUser-Agent: sipbridge-load JsSIP-style\r\n{extra}",
            dialog.from_tag, dialog.to, dialog.call_id
        );
        if !sdp.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        out
    }

    /// Calls `target_user` of the local domain with `sdp`. A 407 is ACKed and the INVITE sent again
    /// with Proxy-Authorization; returns once the INVITE that will be answered is out, with the
    /// time the first one left.
    pub async fn invite(&mut self, target_user: &str, sdp: &str, within: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + within;
        let request_uri = format!("sip:{target_user}@{DOMAIN}");
        let to = format!("<{request_uri}>");
        self.dialog = Some(Dialog { call_id: format!("{}@{}", token(), self.host), from_tag: token(), request_uri: request_uri.clone(), to: to.clone(), remote_target: None, cseq: 1, branch: token() });
        let first = Instant::now();
        let mut authorization = String::new();
        loop {
            let (cseq, branch) = self.dialog.as_ref().map(|d| (d.cseq, d.branch.clone())).unwrap_or_default();
            let invite = self.request("INVITE", cseq, &branch, &authorization, sdp);
            self.send(invite).await?;
            if !authorization.is_empty() {
                return Ok(first);
            }
            let challenge = loop {
                let answer = self.response_to("INVITE", cseq, deadline).await?;
                match answer.status() {
                    Some(status) if status < 200 => continue,
                    Some(407) => break answer,
                    other => return Err(format!("the first INVITE answered {other:?}, not 407")),
                }
            };
            // The ACK of a non-2xx belongs to the INVITE's transaction: its branch, the 407's To.
            if let Some(dialog) = self.dialog.as_mut() {
                dialog.to = challenge.header("to").unwrap_or(&to).to_string();
            }
            let ack = self.request("ACK", cseq, &branch, "", "");
            self.send(ack).await?;
            authorization = format!("Proxy-Authorization: {}\r\n", self.credentials(&challenge, "proxy-authenticate", "INVITE", &request_uri)?);
            if let Some(dialog) = self.dialog.as_mut() {
                (dialog.to, dialog.cseq, dialog.branch) = (to.clone(), cseq + 1, token());
            }
        }
    }

    /// Waits for the final response to the INVITE; a 2xx is ACKed and its SDP returned.
    pub async fn answered(&mut self, within: Duration) -> Result<Answered, String> {
        let deadline = Instant::now() + within;
        let cseq = self.dialog.as_ref().map(|d| d.cseq).ok_or("no call")?;
        loop {
            let answer = self.response_to("INVITE", cseq, deadline).await?;
            match answer.status() {
                Some(status) if status < 200 => continue,
                Some(status) if status < 300 => {
                    let at = Instant::now();
                    if let Some(dialog) = self.dialog.as_mut() {
                        dialog.to = answer.header("to").unwrap_or_default().to_string();
                        dialog.remote_target = answer.header("contact").map(|c| SipMessage::uri_of(c).to_string());
                    }
                    let ack = self.request("ACK", cseq, &token(), "", "");
                    self.send(ack).await?;
                    return Ok(Answered { at, sdp: answer.body.clone() });
                }
                other => return Err(format!("INVITE answered {other:?}")),
            }
        }
    }

    /// The call's media until its leg's stream is done, answering what the gateway sends
    /// meanwhile; a BYE from the gateway before then breaks the call.
    pub async fn media(&mut self, leg: &mut BrowserHandle) -> Result<Tally, String> {
        let far_future = Instant::now() + Duration::from_secs(3_600);
        loop {
            tokio::select! {
                message = self.next(far_future) => {
                    let message = message?;
                    self.answer_request(&message).await?;
                    if self.hung_up_by_gateway {
                        return Err("the gateway hung up early".into());
                    }
                }
                event = leg.events.recv() => match event {
                    Some(BrowserEvent::Connected) => {}
                    Some(BrowserEvent::Failed(reason)) => return Err(format!("WebRTC: {reason}")),
                    None => return (&mut leg.done).await.map_err(|_| "media loop gone".to_string()),
                },
                tally = &mut leg.done => return tally.map_err(|_| "media loop gone".to_string()),
            }
        }
    }

    /// Hangs up with BYE; whether the gateway's 200 came within `within`.
    pub async fn hang_up(&mut self, within: Duration) -> Result<bool, String> {
        let cseq = match self.dialog.as_mut() {
            Some(dialog) => {
                dialog.cseq += 1;
                dialog.cseq
            }
            None => return Ok(false),
        };
        let bye = self.request("BYE", cseq, &token(), "", "");
        self.send(bye).await?;
        let answer = self.response_to("BYE", cseq, Instant::now() + within).await?;
        Ok(answer.status() == Some(200))
    }
}

#[cfg(test)]
// `cargo bench` compiles this module with cfg(test) but without its #[test] functions.
#[allow(unused_imports, dead_code)]
mod tests {
    use super::super::browser::Voice;
    use super::super::media_loop::{BrowserStart, MediaLoops};
    use super::super::meter::Window;
    use super::super::stream::StreamPlan;
    use std::time::Instant;

    /// The offer a SIP peer gets: the stand-in leg's candidates inline (SIP has no trickle), the
    /// m-line and `c=` naming the first, PCMU first among the codecs.
    #[tokio::test]
    async fn the_offer_carries_its_candidates_inline_with_pcmu_first() {
        let media = MediaLoops::start(1).expect("media loop");
        let now = Instant::now();
        let plan = StreamPlan { voice: Voice::PcmuProbes, window: Window::never(now), call: 0, probed: true, stop: now };
        let leg = media.open_browser(BrowserStart::Offer { codec: Voice::PcmuProbes.codec() }, plan).await.expect("leg");
        let offer = super::offer_with_candidates(&leg, 0).expect("offer");
        let m_line = offer.lines().find(|l| l.starts_with("m=audio ")).expect("m-line");
        let fields: Vec<&str> = m_line.split(' ').collect();
        assert_eq!((fields[2], fields[3]), ("UDP/TLS/RTP/SAVPF", "0"), "{offer}");
        assert!(fields[1] != "0" && fields[1] != "9", "the port of the first candidate: {offer}");
        assert!(offer.contains("a=candidate:") && offer.contains("a=end-of-candidates"), "{offer}");
        assert!(offer.contains("a=fingerprint:sha-256 ") && offer.contains("a=ice-ufrag:"), "{offer}");
        println!("{offer}");
    }
}
