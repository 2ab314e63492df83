//! Receiving with the kernel's arrival time (SO_TIMESTAMPNS). The load tool's own thread may
//! read a datagram well after it arrived (it was sending, or the scheduler ran the gateway);
//! stamping at `recvmsg` time would charge that to the gateway as added latency. The kernel
//! stamps each datagram as it is queued on the socket, which is where the gateway's work ends.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Asks the kernel to stamp every datagram `socket` receives.
///
/// Linux turns stamping on for the whole host when the first socket asks, through deferred work,
/// and off again when the last one closes; a datagram that arrives meanwhile is stamped when it
/// is read. One socket kept open for the life of the process keeps stamping on between streams.
pub fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    static KEEPER: std::sync::OnceLock<Option<std::net::UdpSocket>> = std::sync::OnceLock::new();
    KEEPER.get_or_init(|| std::net::UdpSocket::bind("127.0.0.1:0").ok().filter(|keeper| set_stamping(keeper).is_ok()));
    set_stamping(socket)
}

fn set_stamping(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to an int of the size passed.
    let rc = unsafe {
        libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, (&on as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram: its length in the buffer, its sender, and when it arrived on the monotonic clock.
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub at: Instant,
}

fn realtime_ns() -> i128 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec)
}

/// Reads one datagram into `buffer` (non-blocking sockets: `WouldBlock` when none is queued).
pub fn recv(socket: &impl AsRawFd, buffer: &mut [u8]) -> io::Result<Received> {
    // SAFETY: zeroed sockaddr_storage and msghdr are valid (all-integer and null-pointer fields).
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = (&mut address as *mut libc::sockaddr_storage).cast();
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `message` points at a live buffer of the size it states.
    let len = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let now = Instant::now();
    let at = arrival(&message).map_or(now, |stamp| {
        let age = realtime_ns() - stamp;
        // A stamp from the future (a clock step) is no evidence of age.
        now.checked_sub(Duration::from_nanos(u64::try_from(age).unwrap_or(0))).unwrap_or(now)
    });
    // SAFETY: the kernel filled `address` and `msg_namelen` for this datagram.
    let from = unsafe { socket2::SockAddr::new(address, message.msg_namelen) }.as_socket().ok_or_else(|| io::Error::other("not an IP sender"))?;
    Ok(Received { len: len as usize, from, at })
}

/// The SCM_TIMESTAMPNS stamp of a received message, in ns of CLOCK_REALTIME.
fn arrival(message: &libc::msghdr) -> Option<i128> {
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_TIMESTAMPNS {
                let stamp: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                return Some(i128::from(stamp.tv_sec) * 1_000_000_000 + i128::from(stamp.tv_nsec));
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_datagram_carries_its_arrival_time_and_sender() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        super::enable(&receiver).expect("SO_TIMESTAMPNS");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut buffer = [0u8; 64];
        // The kernel turns stamping on through deferred work (see `enable`): until then a
        // datagram is stamped when read, so a few tries are allowed.
        let mut ages = Vec::new();
        for _ in 0..20 {
            let before = std::time::Instant::now();
            sender.send_to(b"probe", receiver.local_addr().expect("address")).expect("send");
            // Read late on purpose: the stamp must say when it arrived, not when it was read.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let received = super::recv(&receiver, &mut buffer).expect("recv");
            assert_eq!(&buffer[..received.len], b"probe");
            assert_eq!(received.from, sender.local_addr().expect("address"));
            let age = received.at.saturating_duration_since(before);
            if age < std::time::Duration::from_millis(10) {
                return;
            }
            ages.push(age);
        }
        panic!("never stamped on arrival: {ages:?} after sending");
    }
}
