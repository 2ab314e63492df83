//! Non-blocking reads of several datagrams in one `recvmmsg`.
//!
//! The worker's sockets are edge-triggered: after a wake-up it must read until the socket is
//! empty. With one `recv_from` per datagram that costs an extra read that fails with EAGAIN
//! on every wake-up, and a call's RTP socket (50 packets a second) almost always holds one
//! datagram, so that is a third of its syscalls. A `recvmmsg` that returns fewer datagrams than
//! it had room for has emptied the socket, and one that arrives later raises a new edge.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// The most datagrams one read of a shared socket takes.
pub(super) const MAX_BATCH: usize = 8;

/// What one datagram of a batch was: its length and its sender (`None` for a sender that is
/// not an IP socket address, which a UDP socket never reports).
pub(super) type Received = (usize, Option<SocketAddr>);

/// Reads up to `N` datagrams from `fd` without blocking: datagram `i` into `buffers[i]`, its
/// length and sender into `received[i]`. Returns how many it read; `WouldBlock` when none was
/// waiting. The batch's bookkeeping is sized by `N`, so a call's socket read two at a time
/// prepares two headers, not eight.
pub(super) fn receive<const N: usize>(fd: RawFd, buffers: &mut [&mut [u8]; N], received: &mut [Received; N]) -> io::Result<usize> {
    let iovecs = buffers.each_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() });
    receive_into(fd, iovecs, received)
}

/// As [`receive`], into the spare capacity of `vectors` (each cleared and given room for
/// `room` bytes first), whose lengths are then the datagrams' (0 for those not read). A pooled
/// buffer is not zeroed first: that was a 1,500-byte `memset` per buffer and per read.
pub(super) fn receive_vectors<const N: usize>(fd: RawFd, vectors: &mut [Vec<u8>; N], room: usize, received: &mut [Received; N]) -> io::Result<usize> {
    let iovecs = vectors.each_mut().map(|v| {
        v.clear();
        v.reserve(room);
        let spare = v.spare_capacity_mut();
        libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len().min(room) }
    });
    let got = receive_into(fd, iovecs, received)?;
    for (vector, &(len, _)) in vectors.iter_mut().zip(received.iter()).take(got) {
        // SAFETY: the kernel wrote `len` bytes at the start of this vector's spare capacity, and
        // a datagram's length never exceeds the iovec it was read into (longer ones are cut).
        unsafe { vector.set_len(len) };
    }
    Ok(got)
}

/// One `recvmmsg` into `iovecs`, which must point at writable memory that outlives the call.
fn receive_into<const N: usize>(fd: RawFd, mut iovecs: [libc::iovec; N], received: &mut [Received; N]) -> io::Result<usize> {
    // SAFETY: sockaddr_storage and mmsghdr are plain old data, valid when zeroed.
    let mut names: [libc::sockaddr_storage; N] = unsafe { std::mem::zeroed() };
    let mut headers: [libc::mmsghdr; N] = unsafe { std::mem::zeroed() };
    for (i, header) in headers.iter_mut().enumerate() {
        header.msg_hdr.msg_name = std::ptr::addr_of_mut!(names[i]).cast();
        header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovecs[i]);
        header.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at a live iovec over writable memory (the callers' contract)
    // and at live address storage, all of which outlive the call.
    let got = unsafe { libc::recvmmsg(fd, headers.as_mut_ptr(), N as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    for i in 0..got {
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `names[i]`.
        let from = unsafe { socket2::SockAddr::new(names[i], headers[i].msg_hdr.msg_namelen) }.as_socket();
        received[i] = (headers[i].msg_len as usize, from);
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_short_batch_means_the_socket_is_empty_and_an_empty_socket_would_block() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        for payload in [&b"one"[..], b"three", b"seventeen bytes!!"] {
            sender.send_to(payload, to).expect("send");
        }
        let mut storage = [[0u8; 64]; MAX_BATCH];
        let mut received = [(0, None); MAX_BATCH];
        let mut buffers = storage.each_mut().map(|b| &mut b[..]);
        // Loopback delivers synchronously: all three are queued once `send_to` returned.
        let [first, second, ..] = &mut buffers;
        let (mut two, mut two_received) = ([&mut first[..], &mut second[..]], [(0, None); 2]);
        let got = receive(receiver.as_raw_fd(), &mut two, &mut two_received).expect("read");
        assert_eq!(got, 2, "a full batch: more may wait");
        assert_eq!(two_received[0], (3, Some(sender.local_addr().expect("addr"))));
        assert_eq!(&two[1][..two_received[1].0], b"three");
        let got = receive(receiver.as_raw_fd(), &mut buffers, &mut received).expect("read");
        assert_eq!(got, 1, "a short batch: the socket is empty");
        assert_eq!(&buffers[0][..received[0].0], b"seventeen bytes!!");
        let empty = receive(receiver.as_raw_fd(), &mut buffers, &mut received);
        assert_eq!(empty.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    #[test]
    fn vectors_take_the_datagrams_lengths_and_unread_ones_are_left_empty() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender.send_to(b"a datagram", receiver.local_addr().expect("addr")).expect("send");
        // A reused buffer with old bytes in it, and one with no capacity at all.
        let mut vectors = [b"old contents, longer than the datagram".to_vec(), Vec::new()];
        let mut received = [(0, None); 2];
        let got = receive_vectors(receiver.as_raw_fd(), &mut vectors, 1_500, &mut received).expect("read");
        assert_eq!(got, 1);
        assert_eq!(vectors[0], b"a datagram");
        assert!(vectors[1].is_empty() && vectors[1].capacity() >= 1_500);
        let empty = receive_vectors(receiver.as_raw_fd(), &mut vectors, 1_500, &mut received);
        assert_eq!(empty.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }
}
