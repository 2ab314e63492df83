//! Batched I/O, evaluated: does recvmmsg/sendmmsg pay for the gateway's packet path?
//!
//! Only the shared WebRTC port could batch: a worker's browser legs all share one socket, while
//! each SIP-side call has its own sockets carrying 50 packets/s, so a batch read there finds one
//! packet. This relays 2 x N streams the way a worker does: browsers -> one shared socket -> a
//! socket per call -> the SIP far end, and back out of the shared socket. It runs twice in the
//! same run: one `recv_from`/`send_to` per packet, then `recvmmsg` and `sendmmsg` in batches on
//! the shared socket. The ratio of the two says what batching would save.

use super::floor::{drive, Phases, Readings};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Datagrams per recvmmsg/sendmmsg call.
const BATCH: usize = 32;
const SHARED: Token = Token(usize::MAX);

/// What one shared-port relay cost.
#[derive(Debug, Clone)]
pub struct SharedPortFloor {
    pub calls: usize,
    pub batched: bool,
    pub relayed: u64,
    pub lost: u64,
    pub seconds: f64,
    pub cpu_percent: f64,
    /// Where its threads ran.
    pub placement: super::floor::Placement,
}

impl SharedPortFloor {
    pub fn us_per_packet(&self) -> f64 {
        self.cpu_percent / 100.0 * self.seconds * 1e6 / self.relayed.max(1) as f64
    }
}

/// The batch buffers for one socket, allocated once.
struct Batch {
    buffers: Vec<[u8; 1500]>,
    names: Vec<libc::sockaddr_in>,
    lens: Vec<usize>,
    count: usize,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: sockaddr_in is plain old data; all zeroes is a valid (unspecified) address.
        let zero: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        Batch { buffers: vec![[0u8; 1500]; BATCH], names: vec![zero; BATCH], lens: vec![0; BATCH], count: 0 }
    }

    /// One recvmmsg: how many datagrams it read (0 when none was waiting).
    fn receive(&mut self, socket: &UdpSocket) -> usize {
        let mut iovecs: Vec<libc::iovec> = self.buffers.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        let mut headers = self.headers(&mut iovecs);
        // SAFETY: every header points at a live iovec, buffer and sockaddr_in of this batch.
        let got = unsafe { libc::recvmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        let got = usize::try_from(got).unwrap_or(0);
        for (i, header) in headers.iter().take(got).enumerate() {
            self.lens[i] = header.msg_len as usize;
        }
        got
    }

    fn headers(&mut self, iovecs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
        iovecs
            .iter_mut()
            .zip(self.names.iter_mut())
            .map(|(iovec, name)| {
                // SAFETY: msghdr is plain old data; the fields that matter are set below.
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = (name as *mut libc::sockaddr_in).cast();
                header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                header.msg_iov = iovec;
                header.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: header, msg_len: 0 }
            })
            .collect()
    }

    fn source(&self, i: usize) -> SocketAddr {
        let name = &self.names[i];
        SocketAddr::V4(SocketAddrV4::new(u32::from_be(name.sin_addr.s_addr).into(), u16::from_be(name.sin_port)))
    }

    /// Queues one datagram for the next `send`, sending first if the batch is full.
    fn queue(&mut self, socket: &UdpSocket, payload: &[u8], to: SocketAddrV4) {
        if self.count == BATCH {
            self.send(socket);
        }
        let i = self.count;
        self.buffers[i][..payload.len()].copy_from_slice(payload);
        self.lens[i] = payload.len();
        self.names[i].sin_family = libc::AF_INET as libc::sa_family_t;
        self.names[i].sin_port = to.port().to_be();
        self.names[i].sin_addr.s_addr = u32::from(*to.ip()).to_be();
        self.count += 1;
    }

    /// One sendmmsg for everything queued.
    fn send(&mut self, socket: &UdpSocket) {
        if self.count == 0 {
            return;
        }
        let lens = self.lens.clone();
        let mut iovecs: Vec<libc::iovec> = self.buffers.iter_mut().zip(lens).map(|(b, len)| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: len }).collect();
        let mut headers = self.headers(&mut iovecs);
        // SAFETY: as in `receive`; only the first `count` headers are passed.
        unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), self.count as u32, libc::MSG_DONTWAIT) };
        self.count = 0;
    }
}

/// The sockets of one measurement: the shared socket, one per call, and the far ends' addresses.
struct Relay {
    shared: UdpSocket,
    per_call: Vec<UdpSocket>,
    browsers: Vec<SocketAddrV4>,
    sip_ends: Vec<SocketAddr>,
    by_browser: HashMap<SocketAddr, usize>,
}

impl Relay {
    /// Relays until `stop`; (packets, CPU µs, seconds) between the measuring phase changes.
    fn run(mut self, batched: bool, phases: &Phases) -> std::io::Result<(u64, f64, f64)> {
        let mut poll = Poll::new()?;
        poll.registry().register(&mut self.shared, SHARED, Interest::READABLE)?;
        for (call, socket) in self.per_call.iter_mut().enumerate() {
            poll.registry().register(socket, Token(call), Interest::READABLE)?;
        }
        let (mut events, mut buffer) = (Events::with_capacity(1024), [0u8; 1500]);
        let (mut inbound, mut outbound) = (Batch::new(), Batch::new());
        let mut relayed = 0u64;
        let mut readings = Readings::default();
        while !phases.stop.load(Ordering::Relaxed) {
            readings.note(phases, relayed);
            poll.poll(&mut events, Some(Duration::from_millis(20)))?;
            for event in events.iter() {
                if event.token() == SHARED {
                    relayed += if batched { self.from_browsers_batched(&mut inbound) } else { self.from_browsers(&mut buffer) };
                    continue;
                }
                let call = event.token().0;
                while let Ok(len) = self.per_call[call].recv(&mut buffer) {
                    match batched {
                        true => outbound.queue(&self.shared, &buffer[..len], self.browsers[call]),
                        false => drop(self.shared.send_to(&buffer[..len], SocketAddr::V4(self.browsers[call]))),
                    }
                    relayed += 1;
                }
            }
            outbound.send(&self.shared);
        }
        Ok(readings.result(relayed))
    }

    fn from_browsers(&mut self, buffer: &mut [u8; 1500]) -> u64 {
        let mut relayed = 0;
        while let Ok((len, from)) = self.shared.recv_from(buffer) {
            if let Some(&call) = self.by_browser.get(&from) {
                let _ = self.per_call[call].send_to(&buffer[..len], self.sip_ends[call]);
                relayed += 1;
            }
        }
        relayed
    }

    fn from_browsers_batched(&mut self, batch: &mut Batch) -> u64 {
        let mut relayed = 0;
        loop {
            let got = batch.receive(&self.shared);
            for i in 0..got {
                if let Some(&call) = self.by_browser.get(&batch.source(i)) {
                    let _ = self.per_call[call].send_to(&batch.buffers[i][..batch.lens[i]], self.sip_ends[call]);
                    relayed += 1;
                }
            }
            if got < BATCH {
                return relayed;
            }
        }
    }
}

/// Measures the shared-port relay for `calls` calls over `measure`, after a second of warm-up.
pub fn measure_shared_port(calls: usize, measure: Duration, batched: bool) -> std::io::Result<SharedPortFloor> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
    let shared = UdpSocket::bind(loopback)?;
    let shared_addr = shared.local_addr()?;
    let mut relay = Relay { shared, per_call: Vec::new(), browsers: Vec::new(), sip_ends: Vec::new(), by_browser: HashMap::new() };
    let (mut streams, mut far_sockets) = (Vec::new(), Vec::new());
    for call in 0..calls {
        let (browser, sip_end, per_call) = (std::net::UdpSocket::bind(loopback)?, std::net::UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?);
        let SocketAddr::V4(browser_addr) = browser.local_addr()? else { return Err(std::io::Error::other("IPv4 loopback expected")) };
        relay.by_browser.insert(SocketAddr::V4(browser_addr), call);
        relay.browsers.push(browser_addr);
        relay.sip_ends.push(sip_end.local_addr()?);
        streams.push((browser.try_clone()?, shared_addr));
        streams.push((sip_end.try_clone()?, per_call.local_addr()?));
        relay.per_call.push(per_call);
        for far in [browser, sip_end] {
            far.set_nonblocking(true)?;
            far_sockets.push(UdpSocket::from_std(far));
        }
    }
    let measured = drive(streams, far_sockets, measure, super::floor::Placement::as_the_load(), move |phases| relay.run(batched, phases))?;
    let (relayed, cpu_us, seconds) = measured.relay;
    let lost = measured.sent.saturating_sub(measured.received);
    Ok(SharedPortFloor { calls, batched, relayed, lost, seconds, cpu_percent: cpu_us / (seconds * 1e6) * 100.0, placement: measured.placement })
}
