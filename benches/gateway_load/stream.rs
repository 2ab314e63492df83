//! One media endpoint of the load tool as the media loop holds it: a socket, what it sends every
//! 20 ms, and what it counts on arrival. A trunk endpoint speaks plain RTP; a stand-in browser
//! speaks DTLS-SRTP through the gateway's own sans-IO leg (`sipbridge::webrtc_leg::WebRtcLeg`),
//! with its own socket as a real browser has, so ICE and DTLS toward the gateway are real.

use super::browser::Voice;
use super::meter::{probe_payload, Receiver, Window};
use super::stamped;
use sipbridge::media::rtp::{self, RtpHeader};
use sipbridge::webrtc_leg::{LegEvent, WebRtcLeg};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What one endpoint sends and counts, and until when.
#[derive(Clone)]
pub struct StreamPlan {
    pub voice: Voice,
    pub window: Window,
    /// The call's index, carried in every probe.
    pub call: u32,
    /// Passthrough: what arrives carries our probes untouched.
    pub probed: bool,
    /// Sending ends here; counting goes on for `DRAIN` more, for packets still in flight.
    pub stop: Instant,
}

/// After `stop`, how long the receiver still counts: a probe sent just before the end of the
/// window is still crossing the gateway.
pub const DRAIN: Duration = Duration::from_millis(300);

/// Probes sent inside the window, and what the receiver saw.
pub type Tally = (u64, Receiver);

/// What a stand-in browser tells its call task.
#[derive(Debug)]
pub enum BrowserEvent {
    Connected,
    Failed(String),
}

/// The packets one endpoint sends: a 20 ms clock with a random phase (calls set up 20 ms apart
/// would otherwise all send in the same instant, a burst no population of phones produces).
pub struct Source {
    plan: StreamPlan,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    index: usize,
    sent_in_window: u64,
    /// When the next packet is due; `None` before the stream starts and after `stop`.
    pub next: Option<Instant>,
}

const PACKET_INTERVAL: Duration = Duration::from_millis(20);

impl Source {
    pub fn new(plan: StreamPlan) -> Source {
        let payload_type = plan.voice.codec().payload_type;
        Source { plan, payload_type, ssrc: rand::random(), sequence: rand::random(), timestamp: rand::random(), index: 0, sent_in_window: 0, next: None }
    }

    /// Starts the clock (once), sending under `payload_type`.
    fn start(&mut self, now: Instant, payload_type: u8) {
        if self.next.is_some() || self.index > 0 {
            return;
        }
        self.payload_type = payload_type;
        let phase = Duration::from_micros(rand::random::<u64>() % 20_000);
        self.next = Some(now + phase).filter(|at| *at < self.plan.stop);
    }

    /// Writes the packet due now into `out`, stamped `now`, and moves the clock on. A late loop
    /// catches up packet by packet, as a sender's clock does, and each is stamped when it leaves.
    fn packet(&mut self, out: &mut [u8], now: Instant) -> Option<usize> {
        let due = self.next.filter(|at| *at <= now)?;
        let following = due + PACKET_INTERVAL;
        self.next = Some(following).filter(|at| *at < self.plan.stop);
        let header = RtpHeader { marker: false, payload_type: self.payload_type, sequence: self.sequence, timestamp: self.timestamp, ssrc: self.ssrc };
        let written = match &self.plan.voice {
            Voice::PcmuProbes => rtp::write_packet(out, &header, &probe_payload(&self.plan.window, self.plan.call, now)),
            Voice::Opus(frames) => rtp::write_packet(out, &header, &frames[self.index % frames.len()]),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.plan.voice.samples_per_frame());
        self.index += 1;
        written.ok()
    }

    /// Lets every packet due by `now` go unsent, as a phone that stops sending does: the RTP
    /// clock runs on and the sequence does not, so the far end sees a pause, not a loss.
    fn skip_due(&mut self, now: Instant) {
        while let Some(due) = self.next.filter(|at| *at <= now) {
            self.next = Some(due + PACKET_INTERVAL).filter(|at| *at < self.plan.stop);
            self.timestamp = self.timestamp.wrapping_add(self.plan.voice.samples_per_frame());
            self.index += 1;
        }
    }

    fn sent(&mut self, at: Instant) {
        if self.plan.window.contains(at) {
            self.sent_in_window += 1;
        }
    }
}

pub enum Endpoint {
    /// A trunk's RTP socket, sending to the gateway's address from the SDP.
    Rtp { remote: SocketAddr },
    Browser { leg: Box<WebRtcLeg>, events: mpsc::UnboundedSender<BrowserEvent>, deadline: Option<Instant> },
}

pub struct Stream {
    pub socket: mio::net::UdpSocket,
    pub local: SocketAddr,
    pub endpoint: Endpoint,
    pub source: Source,
    /// The send time the loop's timer heap holds for this stream.
    pub scheduled_send: Option<Instant>,
    receiver: Receiver,
    done: Option<oneshot::Sender<Tally>>,
    /// When the receiver stops counting and the tally goes to the call.
    pub finish_at: Instant,
}

impl Stream {
    pub fn new(socket: mio::net::UdpSocket, endpoint: Endpoint, plan: StreamPlan, done: oneshot::Sender<Tally>) -> std::io::Result<Stream> {
        stamped::enable(&socket)?;
        let local = socket.local_addr()?;
        let receiver = Receiver::new(plan.window, plan.probed);
        let finish_at = plan.stop + DRAIN;
        Ok(Stream { socket, local, endpoint, source: Source::new(plan), scheduled_send: None, receiver, done: Some(done), finish_at })
    }

    /// A trunk endpoint sends from the moment it knows where to.
    pub fn start_now(&mut self, now: Instant) {
        let payload_type = self.source.payload_type;
        self.source.start(now, payload_type);
    }

    /// Reads until the socket would block: counts RTP, feeds a browser leg its datagrams.
    pub fn read(&mut self, buffer: &mut [u8], plain: &mut Vec<u8>) {
        loop {
            let received = match stamped::recv(&self.socket, buffer) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP port unreachable and the like: the next datagram may still come.
                Err(_) => continue,
            };
            let datagram = &buffer[..received.len];
            match &mut self.endpoint {
                Endpoint::Rtp { .. } => self.receiver.on_packet(datagram, received.at),
                // SRTP is decrypted in place; it arrived when the datagram did.
                Endpoint::Browser { leg, .. } if matches!(datagram.first(), Some(128..=191)) => {
                    plain.clear();
                    plain.extend_from_slice(datagram);
                    let rtcp = datagram.get(1).is_some_and(|pt| (192..=223).contains(pt));
                    if leg.unprotect(plain, rtcp).is_ok() && !rtcp {
                        self.receiver.on_packet(plain, received.at);
                    }
                }
                Endpoint::Browser { leg, .. } => {
                    let _ = leg.handle_datagram(self.local, received.from, datagram, Instant::now());
                }
            }
        }
        self.flush(Instant::now());
    }

    /// Sends every packet that is due, or none while the load is `paused`. Each is stamped, and
    /// counted in or out of the window, by the one instant it leaves at: two readings could put
    /// it in and out of the window at once.
    pub fn send_due(&mut self, buffer: &mut [u8], sealed: &mut Vec<u8>, paused: bool) {
        if paused {
            self.source.skip_due(Instant::now());
            return;
        }
        loop {
            let at = Instant::now();
            let Some(len) = self.source.packet(buffer, at) else { break };
            let sent = match &mut self.endpoint {
                Endpoint::Rtp { remote } => self.socket.send_to(&buffer[..len], *remote).is_ok(),
                Endpoint::Browser { leg, .. } => {
                    sealed.clear();
                    sealed.extend_from_slice(&buffer[..len]);
                    match leg.route() {
                        Some((_, peer)) if leg.protect(sealed, false).is_ok() => self.socket.send_to(sealed, peer).is_ok(),
                        _ => false,
                    }
                }
            };
            if sent {
                self.source.sent(at);
            }
        }
        self.flush(Instant::now());
    }

    /// A browser leg's timer fired.
    pub fn leg_timeout(&mut self, now: Instant) {
        if let Endpoint::Browser { leg, deadline, .. } = &mut self.endpoint {
            *deadline = None;
            leg.handle_timeout(now);
        }
        self.flush(now);
    }

    /// A browser leg's datagrams out and its events on; it starts sending once connected.
    pub fn flush(&mut self, now: Instant) {
        let Endpoint::Browser { leg, events, .. } = &mut self.endpoint else { return };
        while let Some(datagram) = leg.poll_datagram() {
            let _ = self.socket.send_to(&datagram.payload, datagram.peer);
        }
        while let Some(event) = leg.poll_event() {
            match event {
                LegEvent::Connected => {
                    self.source.start(now, leg.media().codec.payload_type);
                    let _ = events.send(BrowserEvent::Connected);
                }
                LegEvent::Failed(reason) => {
                    let _ = events.send(BrowserEvent::Failed(reason));
                }
                // Host candidates were handed out when the leg was made.
                LegEvent::LocalCandidate(_) => {}
            }
        }
    }

    /// The browser leg's next timer, when it changed since it was last asked.
    pub fn new_leg_deadline(&mut self) -> Option<Instant> {
        let Endpoint::Browser { leg, deadline, .. } = &mut self.endpoint else { return None };
        let next = leg.poll_timeout();
        if next.is_some() && next != *deadline {
            *deadline = next;
            return next;
        }
        None
    }

    pub fn leg_deadline(&self) -> Option<Instant> {
        match &self.endpoint {
            Endpoint::Browser { deadline, .. } => *deadline,
            Endpoint::Rtp { .. } => None,
        }
    }

    /// The tally to the call; the browser leg closes (its DTLS close goes out, its own
    /// "closed" event is no news to the call).
    pub fn finish(mut self) {
        if let Endpoint::Browser { leg, .. } = &mut self.endpoint {
            leg.close(Instant::now());
            while let Some(datagram) = leg.poll_datagram() {
                let _ = self.socket.send_to(&datagram.payload, datagram.peer);
            }
        }
        if let Some(done) = self.done.take() {
            let _ = done.send((self.source.sent_in_window, self.receiver));
        }
    }
}

#[cfg(test)]
// `cargo bench` compiles this module with cfg(test) but without its #[test] functions.
#[allow(unused_imports, dead_code)]
mod tests {
    use super::{Source, StreamPlan, PACKET_INTERVAL};
    use super::super::browser::Voice;
    use super::super::meter::Window;
    use sipbridge::media::rtp::RtpView;
    use std::time::{Duration, Instant};

    #[test]
    fn a_paused_source_skips_its_packets_with_the_clock_running_and_the_sequence_held() {
        let epoch = Instant::now();
        let window = Window { epoch, start: epoch, end: epoch + Duration::from_secs(10) };
        let mut source = Source::new(StreamPlan { voice: Voice::PcmuProbes, window, call: 0, probed: true, stop: window.end });
        source.start(epoch, 0);
        let first_due = source.next.expect("started");
        let mut out = [0u8; 400];
        let len = source.packet(&mut out, first_due).expect("the first packet");
        let first = RtpView::parse(&out[..len]).map(|v| (v.header().sequence, v.header().timestamp)).expect("rtp");
        // Five packets fall due while paused: none is sent, the clock moves past them.
        let paused_until = first_due + PACKET_INTERVAL * 5;
        source.skip_due(paused_until);
        assert_eq!(source.next, Some(first_due + PACKET_INTERVAL * 6));
        let len = source.packet(&mut out, first_due + PACKET_INTERVAL * 6).expect("the next packet sent");
        let next = RtpView::parse(&out[..len]).map(|v| (v.header().sequence, v.header().timestamp)).expect("rtp");
        assert_eq!(next.0, first.0.wrapping_add(1), "a pause is no loss: the sequence goes on");
        assert_eq!(next.1, first.1.wrapping_add(6 * 160), "the RTP clock ran through the pause");
    }
}
