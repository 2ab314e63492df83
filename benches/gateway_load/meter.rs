//! What the load tool measures on each media stream, and on the gateway process.
//!
//! Passthrough streams carry a probe in every payload (magic, send time, call index), so loss is
//! exact (probes sent inside the window against probes of that window received) and every packet
//! gives an added-latency sample. A transcoder rewrites the payload, so transcoded streams fall
//! back to RFC 3550 accounting: sequence numbers expected against packets received.

use std::time::{Duration, Instant};

const PROBE_MAGIC: &[u8; 4] = b"SBLD";
pub const PCMU_FRAME: usize = 160;

/// The measured stretch of a scenario, on the load tool's one monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub epoch: Instant,
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }

    /// A window nothing falls into: the setup-rate scenario measures setups, not media.
    pub fn never(epoch: Instant) -> Window {
        Window { epoch, start: epoch, end: epoch }
    }
}

/// A 20 ms PCMU payload whose first bytes say when it was sent.
pub fn probe_payload(window: &Window, call: u32, now: Instant) -> [u8; PCMU_FRAME] {
    let mut payload = [0xFFu8; PCMU_FRAME];
    let nanos = now.saturating_duration_since(window.epoch).as_nanos() as u64;
    payload[..4].copy_from_slice(PROBE_MAGIC);
    payload[4..12].copy_from_slice(&nanos.to_be_bytes());
    payload[12..16].copy_from_slice(&call.to_be_bytes());
    payload
}

fn probe_sent_at(window: &Window, payload: &[u8]) -> Option<Instant> {
    if payload.len() < 16 || &payload[..4] != PROBE_MAGIC {
        return None;
    }
    let nanos = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    Some(window.epoch + Duration::from_nanos(nanos))
}

/// One direction of one call, as its receiver saw it.
#[derive(Debug, Default, Clone)]
pub struct StreamTally {
    /// Packets the sender sent inside the window (probed streams only).
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub latencies_us: Vec<u32>,
}

impl StreamTally {
    pub fn merge(&mut self, other: StreamTally) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.latencies_us.extend(other.latencies_us);
    }
}

#[derive(Debug)]
pub struct Receiver {
    window: Window,
    probed: bool,
    received: u64,
    latencies_us: Vec<u32>,
    /// Send times of the probes counted (sequence numbers, unprobed): a retransmission answering
    /// an RTCP NACK must not hide a loss.
    probes_seen: std::collections::HashSet<u64>,
    /// Extended sequence numbers seen inside the window (transcoded streams).
    first_sequence: Option<i64>,
    highest_sequence: i64,
}

impl Receiver {
    pub fn new(window: Window, probed: bool) -> Receiver {
        Receiver { window, probed, received: 0, latencies_us: Vec::new(), probes_seen: Default::default(), first_sequence: None, highest_sequence: 0 }
    }

    /// One RTP packet (header and payload) arriving at `now`.
    pub fn on_packet(&mut self, packet: &[u8], now: Instant) {
        let Ok(view) = sipbridge::media::rtp::RtpView::parse(packet) else { return };
        if self.probed {
            let Some(sent_at) = probe_sent_at(&self.window, view.payload()) else { return };
            let key = sent_at.saturating_duration_since(self.window.epoch).as_nanos() as u64;
            if self.window.contains(sent_at) && self.probes_seen.insert(key) {
                self.received += 1;
                let micros = now.saturating_duration_since(sent_at).as_micros();
                self.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            return;
        }
        if !self.window.contains(now) {
            return;
        }
        let raw = view.header().sequence;
        let extended = match self.first_sequence {
            None => {
                self.first_sequence = Some(i64::from(raw));
                i64::from(raw)
            }
            // Wrap-around and reordering: the nearest extension of `raw` to the highest seen.
            Some(_) => self.highest_sequence + i64::from(raw.wrapping_sub(self.highest_sequence as u16) as i16),
        };
        if !self.probes_seen.insert(extended as u64) {
            return;
        }
        self.highest_sequence = if self.received == 0 { extended } else { self.highest_sequence.max(extended) };
        self.received += 1;
    }

    pub fn tally(self, sent_in_window: u64) -> StreamTally {
        let lost = if self.probed {
            sent_in_window.saturating_sub(self.received)
        } else {
            let expected = self.first_sequence.map_or(0, |first| (self.highest_sequence - first + 1) as u64);
            expected.saturating_sub(self.received)
        };
        StreamTally { sent: sent_in_window, received: self.received, lost, latencies_us: self.latencies_us }
    }
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// CPU time (user + system) of a process in clock ticks (USER_HZ, 100 on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5); after the ")" they are the 12th and 13th.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

pub const TICKS_PER_SECOND: f64 = 100.0;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
}

/// The calling thread's CPU time (user + system) in µs, at nanosecond resolution: the floors are
/// a thread's cost, and /proc's 10 ms ticks are too coarse for a few seconds of it.
pub fn thread_cpu_us() -> f64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut now = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec (two 64-bit fields on Linux x86_64 and aarch64).
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 * 1e6 + now.tv_nsec as f64 / 1e3
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of the RSS (heap, stacks): what calls allocate. The rest is file pages,
/// mostly code that the first calls page in once.
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// CPU of a process over a stretch of time, as % of one core.
pub struct CpuSample {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuSample {
    pub fn start(pid: u32) -> CpuSample {
        CpuSample { pid, ticks: cpu_ticks(pid), at: Instant::now() }
    }

    pub fn percent_of_core(&self) -> f64 {
        let (cpu, seconds) = self.taken();
        cpu / seconds.max(1e-3) * 100.0
    }

    /// (CPU seconds, wall seconds) since `start`.
    pub fn taken(&self) -> (f64, f64) {
        (cpu_ticks(self.pid).saturating_sub(self.ticks) as f64 / TICKS_PER_SECOND, self.at.elapsed().as_secs_f64())
    }
}

/// The machine's CPU time from /proc/stat's first line: (steal, all), in ticks over every CPU.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let all = fields.iter().take(8).sum();
    (fields.get(7).copied().unwrap_or(0), all)
}

/// Steal time over a stretch: the share of this virtual machine's CPU time the hypervisor ran
/// other guests instead. A vCPU taken away mid-packet holds that packet for milliseconds and
/// slows the kernel's switches, so every CPU and latency figure is read next to it.
pub struct StealSample {
    steal: u64,
    all: u64,
}

impl StealSample {
    pub fn start() -> StealSample {
        let (steal, all) = machine_ticks();
        StealSample { steal, all }
    }

    /// % of all CPUs' time since `start`.
    pub fn percent(&self) -> f64 {
        let (steal, all) = machine_ticks();
        steal.saturating_sub(self.steal) as f64 * 100.0 / all.saturating_sub(self.all).max(1) as f64
    }
}

#[cfg(test)]
// `cargo bench` compiles this module with cfg(test) but without its #[test] functions.
#[allow(unused_imports, dead_code)]
mod tests {
    use super::{probe_payload, probe_sent_at, Receiver, Window};
    use std::time::{Duration, Instant};

    #[test]
    fn probe_round_trip() {
        let epoch = Instant::now();
        let window = Window { epoch, start: epoch, end: epoch + Duration::from_secs(1) };
        let sent = epoch + Duration::from_millis(5);
        let payload = probe_payload(&window, 7, sent);
        assert_eq!(probe_sent_at(&window, &payload), Some(sent));
    }

    fn packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
        let header = sipbridge::media::rtp::RtpHeader { marker: false, payload_type: 0, sequence, timestamp: 0, ssrc: 1 };
        let mut out = vec![0u8; 12 + payload.len()];
        let len = sipbridge::media::rtp::write_packet(&mut out, &header, payload).expect("packet");
        out.truncate(len);
        out
    }

    #[test]
    fn probed_stream_counts_only_probes_sent_inside_the_window() {
        let epoch = Instant::now();
        let window = Window { epoch, start: epoch + Duration::from_secs(1), end: epoch + Duration::from_secs(2) };
        let mut receiver = Receiver::new(window, true);
        let before = probe_payload(&window, 0, epoch + Duration::from_millis(990));
        let inside = probe_payload(&window, 0, epoch + Duration::from_millis(1_500));
        receiver.on_packet(&packet(1, &before), epoch + Duration::from_millis(1_010));
        receiver.on_packet(&packet(2, &inside), epoch + Duration::from_micros(1_500_250));
        // A retransmission (RTCP NACK) of the same probe counts once.
        receiver.on_packet(&packet(2, &inside), epoch + Duration::from_millis(1_530));
        let tally = receiver.tally(3);
        assert_eq!((tally.received, tally.lost), (1, 2));
        assert_eq!(tally.latencies_us, vec![250]);
    }

    #[test]
    fn transcoded_stream_loss_is_sequence_gaps_across_a_wrap() {
        let epoch = Instant::now();
        let window = Window { epoch, start: epoch, end: epoch + Duration::from_secs(10) };
        let mut receiver = Receiver::new(window, false);
        let at = epoch + Duration::from_secs(1);
        for sequence in [65_534u16, 65_535, 1, 0, 3, 1] {
            receiver.on_packet(&packet(sequence, &[0; 160]), at);
        }
        // 65534..=3 is six packets; 2 never came; 0 came late and still counts; 1 came twice.
        let tally = receiver.tally(0);
        assert_eq!((tally.received, tally.lost), (5, 1));
    }
}
