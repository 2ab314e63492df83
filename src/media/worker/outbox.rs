//! The media a worker sends in one turn of its loop, sent together when the turn ends.
//!
//! Sending a datagram on loopback, or to a peer process on the same host, wakes the process
//! that reads it, and a woken reader on the worker's core preempts the worker in the middle of
//! its turn (in a VM the wake-up is also an exit to the hypervisor). Held until the turn ends,
//! a turn's packets wake each reader once, and those toward browsers, which all leave through
//! the worker's shared socket, go out in one `sendmmsg`. A packet waits at most
//! [`MAX_DELAY`] or [`MAX_QUEUED`] packets, whichever comes first.
//!
//! Packets are queued by file descriptor. A call's RTP socket is closed only when its session
//! stops, and the worker flushes the outbox first, so a queued descriptor is always the socket
//! it was queued for.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// The most packets held before they are sent, and the most one `sendmmsg` takes.
pub(super) const MAX_QUEUED: usize = 32;
/// The longest a packet is held: a turn that codes many frames sends what it has by then.
pub(super) const MAX_DELAY: Duration = Duration::from_micros(200);
/// Buffers kept for the sessions' pools, in exchange for the ones queued.
const SPARE_BUFFERS: usize = 2 * MAX_QUEUED;
const BUFFER_CAPACITY: usize = 1_500;

/// One queued datagram.
struct Queued {
    fd: RawFd,
    to: socket2::SockAddr,
    packet: Vec<u8>,
}

/// What the worker holds to send at the end of its turn.
pub(super) struct Outbox {
    queued: Vec<Queued>,
    spare: Vec<Vec<u8>>,
    oldest: Option<Instant>,
    /// Packets the kernel refused (a full socket buffer, an unreachable peer): dropped, as a
    /// late media packet is a lost one.
    pub(super) refused: u64,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox { queued: Vec::with_capacity(MAX_QUEUED), spare: (0..MAX_QUEUED).map(|_| Vec::with_capacity(BUFFER_CAPACITY)).collect(), oldest: None, refused: 0 }
    }

    /// Queues `packet` toward `to` through `fd` and returns an empty buffer for the caller's
    /// pool in its place (none once the spares run out, which they do not in steady state).
    pub(super) fn push(&mut self, fd: RawFd, to: SocketAddr, packet: Vec<u8>, now: Instant) -> Option<Vec<u8>> {
        if self.queued.len() >= MAX_QUEUED {
            self.flush();
        }
        self.oldest.get_or_insert(now);
        self.queued.push(Queued { fd, to: socket2::SockAddr::from(to), packet });
        self.spare.pop()
    }

    /// True when the oldest queued packet has waited long enough to be sent now.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.oldest.is_some_and(|oldest| now.saturating_duration_since(oldest) >= MAX_DELAY)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued: each socket's packets in the order they were queued, in one
    /// `sendmmsg` per socket however the turn interleaved the sockets, never waiting on a full
    /// socket buffer.
    pub(super) fn flush(&mut self) {
        // `push` flushes a full outbox first, so at most MAX_QUEUED packets wait here.
        let mut order = [0u8; MAX_QUEUED];
        let order = &mut order[..self.queued.len()];
        for (position, slot) in order.iter_mut().enumerate() {
            *slot = position as u8;
        }
        let queued = &self.queued;
        order.sort_unstable_by_key(|&i| (queued[usize::from(i)].fd, i));
        for run in order.chunk_by(|&a, &b| queued[usize::from(a)].fd == queued[usize::from(b)].fd) {
            self.refused += send_run(queued, run) as u64;
        }
        for queued in self.queued.drain(..) {
            if self.spare.len() < SPARE_BUFFERS {
                let mut packet = queued.packet;
                packet.clear();
                self.spare.push(packet);
            }
        }
        self.oldest = None;
    }
}

/// Sends the packets `run` names (indices into `queued`, all through one socket) with as few
/// `sendmmsg` calls as the kernel allows; returns how many packets it refused.
fn send_run(queued: &[Queued], run: &[u8]) -> usize {
    let (mut done, mut refused) = (0, 0);
    while done < run.len() {
        match send_batch(queued, &run[done..]) {
            Ok(sent) if sent > 0 => done += sent,
            // The first packet of the rest was refused: drop it and go on with the others.
            _ => {
                refused += 1;
                done += 1;
            }
        }
    }
    refused
}

/// One `sendmmsg` of the packets `run` names, all through the same socket: how many it sent.
/// Only the headers in use are written, so a run of one costs one header.
fn send_batch(queued: &[Queued], run: &[u8]) -> std::io::Result<usize> {
    use std::mem::MaybeUninit;
    let Some(&first) = run.first() else { return Ok(0) };
    let fd = queued[usize::from(first)].fd;
    let mut iovecs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_QUEUED];
    let mut headers = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_QUEUED];
    for ((&index, iovec), header) in run.iter().zip(&mut iovecs).zip(&mut headers) {
        let packet = &queued[usize::from(index)];
        let iovec = iovec.write(libc::iovec { iov_base: packet.packet.as_ptr() as *mut libc::c_void, iov_len: packet.packet.len() });
        // SAFETY: mmsghdr is plain old data, valid when zeroed.
        let mut written: libc::mmsghdr = unsafe { std::mem::zeroed() };
        written.msg_hdr.msg_name = packet.to.as_ptr() as *mut libc::c_void;
        written.msg_hdr.msg_namelen = packet.to.len();
        written.msg_hdr.msg_iov = iovec;
        written.msg_hdr.msg_iovlen = 1;
        header.write(written);
    }
    let count = run.len().min(MAX_QUEUED);
    // SAFETY: the first `count` headers are initialised above, and each points at a live iovec
    // over a live packet and at a live socket address, all of which outlive the call; the
    // kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr().cast(), count as libc::c_uint, libc::MSG_DONTWAIT) };
    usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn loopback() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        socket
    }

    /// Everything waiting on `socket`, each datagram's first byte.
    fn drain(socket: &UdpSocket) -> Vec<u8> {
        let mut buffer = [0u8; 2_048];
        std::iter::from_fn(|| socket.recv(&mut buffer).ok().map(|_| buffer[0])).collect()
    }

    #[test]
    fn a_turns_packets_leave_in_order_when_flushed_and_a_full_outbox_sends_first() {
        let (sender, receiver) = (loopback(), loopback());
        let to = receiver.local_addr().expect("addr");
        let mut outbox = Outbox::new();
        let now = Instant::now();
        for i in 0..MAX_QUEUED as u8 {
            let spare = outbox.push(sender.as_raw_fd(), to, vec![i; 172], now);
            assert!(spare.is_some_and(|b| b.is_empty()), "an empty buffer comes back for the session's pool");
        }
        // Loopback delivers synchronously: nothing has left yet, all of it leaves at once.
        assert!(drain(&receiver).is_empty(), "queued packets wait for the flush");
        outbox.push(sender.as_raw_fd(), to, vec![MAX_QUEUED as u8; 172], now);
        assert_eq!(drain(&receiver), (0..MAX_QUEUED as u8).collect::<Vec<_>>(), "a full outbox is sent before it takes more");
        outbox.flush();
        assert_eq!(drain(&receiver), vec![MAX_QUEUED as u8]);
        assert!(outbox.is_empty() && outbox.refused == 0);
    }

    #[test]
    fn packets_through_several_sockets_keep_their_order_per_socket() {
        let (first, second, receiver) = (loopback(), loopback(), loopback());
        let to = receiver.local_addr().expect("addr");
        let mut outbox = Outbox::new();
        let now = Instant::now();
        for (i, socket) in [&first, &second, &first, &first, &second].into_iter().enumerate() {
            outbox.push(socket.as_raw_fd(), to, vec![i as u8; 20], now);
        }
        outbox.flush();
        let mut got = drain(&receiver);
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "every packet arrives once");
        // Toward two receivers, one per socket: each sees its socket's packets in queue order.
        let (to_first, to_second) = (loopback(), loopback());
        for (i, (socket, to)) in [(&first, &to_first), (&second, &to_second), (&first, &to_first), (&second, &to_second), (&first, &to_first)].into_iter().enumerate() {
            outbox.push(socket.as_raw_fd(), to.local_addr().expect("addr"), vec![i as u8; 20], now);
        }
        outbox.flush();
        assert_eq!((drain(&to_first), drain(&to_second)), (vec![0, 2, 4], vec![1, 3]));
    }

    #[test]
    fn a_packet_waits_at_most_the_delay() {
        let (sender, receiver) = (loopback(), loopback());
        let mut outbox = Outbox::new();
        let now = Instant::now();
        assert!(!outbox.due(now + MAX_DELAY), "an empty outbox is never due");
        outbox.push(sender.as_raw_fd(), receiver.local_addr().expect("addr"), vec![7; 20], now);
        outbox.push(sender.as_raw_fd(), receiver.local_addr().expect("addr"), vec![8; 20], now + MAX_DELAY / 2);
        assert!(!outbox.due(now + MAX_DELAY / 2));
        assert!(outbox.due(now + MAX_DELAY), "the oldest packet sets the deadline");
        outbox.flush();
        assert!(!outbox.due(now + MAX_DELAY * 2));
        assert_eq!(drain(&receiver), vec![7, 8]);
    }

    #[test]
    fn a_packet_the_kernel_refuses_is_counted_and_the_rest_still_leave() {
        let (sender, receiver) = (loopback(), loopback());
        let to = receiver.local_addr().expect("addr");
        let mut outbox = Outbox::new();
        let now = Instant::now();
        outbox.push(sender.as_raw_fd(), to, vec![1; 20], now);
        // Larger than any UDP datagram: EMSGSIZE.
        outbox.push(sender.as_raw_fd(), to, vec![2; 70_000], now);
        outbox.push(sender.as_raw_fd(), to, vec![3; 20], now);
        outbox.flush();
        assert_eq!(outbox.refused, 1);
        assert_eq!(drain(&receiver), vec![1, 3]);
    }
}
