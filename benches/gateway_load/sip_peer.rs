//! The SIP side of the load: one UDP socket that is both the trunk the gateway calls (it answers
//! every INVITE at once with PCMU) and the caller that calls browsers through the gateway. Plain
//! text SIP over loopback is enough here: the gateway's own parser is what is under test, and it
//! is tested against RFC 4475 elsewhere. Every wait is bounded.

use super::media_loop::MediaLoops;
use super::stream::{StreamPlan, Tally};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct SipMessage {
    pub start_line: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

fn full_header_name(name: &str) -> &str {
    match name {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        other => other,
    }
}

impl SipMessage {
    pub fn parse(datagram: &[u8]) -> Option<SipMessage> {
        let text = std::str::from_utf8(datagram).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start_line = lines.next()?.to_string();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (full_header_name(&name.trim().to_ascii_lowercase()).to_string(), value.trim().to_string()))
            .collect();
        Some(SipMessage { start_line, headers, body: body.to_string() })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn status(&self) -> Option<u16> {
        self.start_line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    pub fn method(&self) -> Option<&str> {
        if self.start_line.starts_with("SIP/2.0") {
            return None;
        }
        self.start_line.split(' ').next()
    }

    /// The user part of the Request-URI.
    pub fn request_user(&self) -> Option<&str> {
        let uri = self.start_line.split(' ').nth(1)?;
        uri.strip_prefix("sip:")?.split('@').next()
    }

    pub fn cseq_method(&self) -> Option<&str> {
        self.header("cseq")?.split_whitespace().nth(1)
    }

    /// The URI inside a name-addr header such as Contact.
    pub fn uri_of(value: &str) -> &str {
        match (value.find('<'), value.find('>')) {
            (Some(open), Some(close)) if open < close => &value[open + 1..close],
            _ => value.split(';').next().unwrap_or(value),
        }
    }

    /// The audio address of the SDP body.
    pub fn sdp_audio(&self) -> Option<SocketAddr> {
        let ip = self.body.lines().find_map(|l| l.strip_prefix("c=IN IP4 "))?.trim();
        let port = self.body.lines().find_map(|l| l.strip_prefix("m=audio "))?.split(' ').next()?;
        format!("{ip}:{port}").parse().ok()
    }
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn pcmu_sdp(port: u16) -> String {
    pcmu_sdp_with(port, 1, "sendrecv")
}

fn pcmu_sdp_with(port: u16, version: u32, direction: &str) -> String {
    let session: u32 = rand::random();
    format!(
        "v=0\r\no=loadgen {session} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na={direction}\r\n"
    )
}

/// The answer to a re-INVITE's offer: a sendonly offer (hold) is answered recvonly, else sendrecv.
fn reanswer(offer: &SipMessage, port: u16) -> String {
    let direction = if offer.body.contains("a=sendonly") { "recvonly" } else if offer.body.contains("a=inactive") { "inactive" } else { "sendrecv" };
    pcmu_sdp_with(port, 2, direction)
}

/// When the trunk saw an INVITE from the gateway and answered it: the remote party's think time.
#[derive(Debug)]
pub struct AnsweredInvite {
    pub received: Instant,
    pub answered: Instant,
    pub media: RtpEndpoint,
    pub gateway_media: SocketAddr,
}

#[derive(Default)]
struct Tables {
    /// Our calls (UAC), by Call-ID: where their responses and requests go.
    dialogs: HashMap<String, mpsc::UnboundedSender<SipMessage>>,
    /// Calls the gateway placed to us (UAS), by Call-ID: the 200 we sent, for retransmissions.
    answers: HashMap<String, String>,
    /// Calls the gateway placed to us, by Request-URI user, until the browser side claims them.
    answered_by_user: HashMap<String, AnsweredInvite>,
    /// Browser-side tasks waiting for the gateway's INVITE to a user.
    waiting_for_user: HashMap<String, oneshot::Sender<AnsweredInvite>>,
    /// Every call's RTP port by Call-ID, for answering the gateway's re-INVITEs (hold, resume).
    media_ports: HashMap<String, u16>,
}

pub struct SipPeer {
    socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    gateway: SocketAddr,
    tables: Mutex<Tables>,
}

impl SipPeer {
    /// Takes a socket bound before the gateway started (its port is in the gateway's trunk
    /// profile); must be called inside the runtime.
    pub fn start(socket: std::net::UdpSocket, gateway: SocketAddr) -> std::io::Result<Arc<SipPeer>> {
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let local = socket.local_addr()?;
        let peer = Arc::new(SipPeer { socket, local, gateway, tables: Mutex::new(Tables::default()) });
        let receiving = Arc::clone(&peer);
        tokio::spawn(async move { receiving.receive_loop().await });
        Ok(peer)
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn send(&self, text: &str, to: SocketAddr) {
        let _ = self.socket.send_to(text.as_bytes(), to).await;
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buffer = vec![0u8; 65_535];
        loop {
            let Ok((len, from)) = self.socket.recv_from(&mut buffer).await else { return };
            let received = Instant::now();
            let Some(message) = SipMessage::parse(&buffer[..len]) else { continue };
            let call_id = message.header("call-id").unwrap_or_default().to_string();
            let dialog = self.tables().dialogs.get(&call_id).cloned();
            let in_dialog_invite = message.method() == Some("INVITE") && message.header("to").is_some_and(|to| to.contains("tag="));
            let port = self.tables().media_ports.get(&call_id).copied();
            match (message.method(), dialog) {
                // Hold and resume: answered at once with the same RTP port.
                (Some("INVITE"), _) if in_dialog_invite && port.is_some() => {
                    let contact = format!("<sip:trunk@{}>", self.local);
                    let sdp = reanswer(&message, port.unwrap_or_default());
                    self.send(&response_with_contact(&message, &contact, &sdp), from).await;
                }
                (Some("INVITE"), None) => self.answer_invite(&message, from, received).await,
                (Some("ACK"), None) => {}
                (Some(_), None) => self.send(&response(&message, 200, "OK", None, ""), from).await,
                // A response to a call we already forgot (a retransmitted 200 to BYE).
                (None, None) => {}
                (method, Some(dialog)) => {
                    if method.is_some_and(|m| m != "ACK") {
                        self.send(&response(&message, 200, "OK", None, ""), from).await;
                    }
                    let _ = dialog.send(message);
                }
            }
        }
    }

    /// The trunk answers at once with PCMU on a fresh RTP socket.
    async fn answer_invite(&self, invite: &SipMessage, from: SocketAddr, received: Instant) {
        let call_id = invite.header("call-id").unwrap_or_default().to_string();
        let previous = self.tables().answers.get(&call_id).cloned();
        if let Some(previous) = previous {
            return self.send(&previous, from).await;
        }
        let Some(user) = invite.request_user().map(str::to_string) else { return };
        let (Some(gateway_media), Ok(media)) = (invite.sdp_audio(), RtpEndpoint::bind()) else {
            return self.send(&response(invite, 488, "Not Acceptable Here", None, ""), from).await;
        };
        let contact = format!("<sip:trunk@{}>", self.local);
        let ok = response(invite, 200, "OK", Some((&token(), &contact)), &pcmu_sdp(media.port()));
        self.send(&ok, from).await;
        let answered = AnsweredInvite { received, answered: Instant::now(), media, gateway_media };
        let mut tables = self.tables();
        tables.media_ports.insert(call_id.clone(), answered.media.port());
        tables.answers.insert(call_id, ok);
        match tables.waiting_for_user.remove(&user) {
            Some(waiter) => {
                let _ = waiter.send(answered);
            }
            None => {
                tables.answered_by_user.insert(user, answered);
            }
        }
    }

    /// The trunk's side of a call the gateway places to `user`, once it has been answered.
    pub async fn answered_call_for(&self, user: &str, within: Duration) -> Option<AnsweredInvite> {
        let waiter = {
            let mut tables = self.tables();
            if let Some(answered) = tables.answered_by_user.remove(user) {
                return Some(answered);
            }
            let (tx, rx) = oneshot::channel();
            tables.waiting_for_user.insert(user.to_string(), tx);
            rx
        };
        tokio::time::timeout(within, waiter).await.ok()?.ok()
    }

    /// Calls `user` at the gateway with a PCMU offer. Returns once the INVITE is sent.
    pub async fn invite(self: &Arc<Self>, user: &str, media_port: u16) -> OutgoingCall {
        let call_id = format!("{}@loadgen", token());
        let (tx, rx) = mpsc::unbounded_channel();
        self.tables().dialogs.insert(call_id.clone(), tx);
        self.tables().media_ports.insert(call_id.clone(), media_port);
        let from_tag = token();
        let request_uri = format!("sip:{user}@{}", self.gateway);
        let to = format!("<{request_uri}>");
        let mut call = OutgoingCall { peer: Arc::clone(self), call_id, from_tag, to, request_uri, remote_target: None, responses: rx, cseq: 1, invite: String::new(), sent_at: Instant::now() };
        call.invite = call.request("INVITE", 1, Some(&pcmu_sdp(media_port)));
        call.sent_at = Instant::now();
        self.send(&call.invite, self.gateway).await;
        call
    }

    fn forget(&self, call_id: &str) {
        let mut tables = self.tables();
        tables.dialogs.remove(call_id);
        tables.media_ports.remove(call_id);
    }
}

/// A 200 to an in-dialog request, with our Contact (RFC 3261 asks one in every 2xx to INVITE).
fn response_with_contact(request: &SipMessage, contact: &str, sdp: &str) -> String {
    let ok = response(request, 200, "OK", None, sdp);
    ok.replacen("\r\n", &format!("\r\nContact: {contact}\r\n"), 1)
}

pub fn response(request: &SipMessage, status: u16, reason: &str, to_tag_and_contact: Option<(&str, &str)>, sdp: &str) -> String {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in request.all("via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["from", "call-id", "cseq"] {
        out.push_str(&format!("{name}: {}\r\n", request.header(name).unwrap_or_default()));
    }
    let to = request.header("to").unwrap_or_default();
    match to_tag_and_contact {
        Some((tag, contact)) if !to.contains("tag=") => out.push_str(&format!("To: {to};tag={tag}\r\nContact: {contact}\r\n")),
        _ => out.push_str(&format!("To: {to}\r\n")),
    }
    if !sdp.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
    out
}

/// A call the load tool placed through the gateway to a browser.
pub struct OutgoingCall {
    peer: Arc<SipPeer>,
    call_id: String,
    from_tag: String,
    to: String,
    request_uri: String,
    remote_target: Option<String>,
    responses: mpsc::UnboundedReceiver<SipMessage>,
    cseq: u32,
    invite: String,
    pub sent_at: Instant,
}

pub enum CallOutcome {
    Answered { at: Instant, gateway_media: SocketAddr },
    Failed(String),
}

impl OutgoingCall {
    fn request(&self, method: &str, cseq: u32, sdp: Option<&str>) -> String {
        let body = sdp.unwrap_or_default();
        let target = self.remote_target.as_deref().unwrap_or(&self.request_uri);
        let mut out = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:loadgen@{}>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:loadgen@{}>\r\n",
            self.peer.local,
            token(),
            self.peer.local,
            self.from_tag,
            self.to,
            self.call_id,
            self.peer.local
        );
        if sdp.is_some() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out
    }

    /// Waits for the final response (retransmitting the INVITE as RFC 3261 Timer A does), and
    /// acknowledges a 2xx.
    pub async fn outcome(&mut self, within: Duration) -> CallOutcome {
        let deadline = Instant::now() + within;
        let mut retransmit = Duration::from_millis(500);
        let mut provisional = false;
        loop {
            let wait = retransmit.min(deadline.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                return CallOutcome::Failed("no final response to INVITE".into());
            }
            match tokio::time::timeout(wait, self.responses.recv()).await {
                Ok(Some(message)) if message.cseq_method() == Some("INVITE") => match message.status() {
                    Some(status) if status < 200 => provisional = true,
                    Some(status) if status < 300 => {
                        let at = Instant::now();
                        let to = message.header("to").unwrap_or_default().to_string();
                        self.to = to;
                        self.remote_target = message.header("contact").map(|c| SipMessage::uri_of(c).to_string());
                        let ack = self.request("ACK", 1, None);
                        self.peer.send(&ack, self.peer.gateway).await;
                        let Some(gateway_media) = message.sdp_audio() else { return CallOutcome::Failed("200 without SDP".into()) };
                        return CallOutcome::Answered { at, gateway_media };
                    }
                    Some(status) => return CallOutcome::Failed(format!("INVITE answered {status}")),
                    None => {}
                },
                Ok(Some(_)) => {}
                Ok(None) => return CallOutcome::Failed("SIP peer closed".into()),
                Err(_) if !provisional => {
                    self.peer.send(&self.invite, self.peer.gateway).await;
                    retransmit = (retransmit * 2).min(Duration::from_secs(4));
                }
                Err(_) => {}
            }
        }
    }

    /// A BYE from the gateway ends the call early; this says whether one came.
    pub fn hung_up_by_gateway(&mut self) -> bool {
        while let Ok(message) = self.responses.try_recv() {
            if message.method() == Some("BYE") {
                return true;
            }
        }
        false
    }

    /// Hangs up with BYE and waits (bounded) for its 200.
    pub async fn hang_up(mut self) -> bool {
        self.cseq += 1;
        let bye = self.request("BYE", self.cseq, None);
        let mut confirmed = false;
        for wait in [500u64, 1_000, 2_000] {
            self.peer.send(&bye, self.peer.gateway).await;
            let deadline = Instant::now() + Duration::from_millis(wait);
            while let Ok(Some(message)) = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.responses.recv()).await {
                if message.cseq_method() == Some("BYE") && message.status().is_some_and(|s| s >= 200) {
                    confirmed = true;
                    break;
                }
            }
            if confirmed {
                break;
            }
        }
        self.peer.forget(&self.call_id);
        confirmed
    }
}

/// The trunk's RTP socket for one call, bound when the call's SDP needs its port; the load tool's
/// media loop sends a probe on it every 20 ms and counts what comes back.
#[derive(Debug)]
pub struct RtpEndpoint {
    socket: std::net::UdpSocket,
}

impl RtpEndpoint {
    pub fn bind() -> std::io::Result<RtpEndpoint> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        // Stamped from the first datagram on, before the media loop takes the socket over.
        super::stamped::enable(&socket)?;
        Ok(RtpEndpoint { socket })
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Streams the plan's packets to `remote` until its `stop`, receiving a little longer.
    /// Returns what was sent inside the window and what the receiver saw.
    /// Starts streaming at once, as `run` does; its tally comes on the receiver.
    pub fn start(self, media: &MediaLoops, remote: SocketAddr, plan: StreamPlan) -> Result<oneshot::Receiver<Tally>, String> {
        media.start_rtp(self.socket, remote, plan)
    }

    pub async fn run(self, media: &MediaLoops, remote: SocketAddr, plan: StreamPlan) -> Result<Tally, String> {
        let done = media.start_rtp(self.socket, remote, plan)?;
        done.await.map_err(|_| "media loop gone".to_string())
    }
}
