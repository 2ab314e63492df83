//! The floors every gateway figure is stated against, measured in the same run on the same
//! machine:
//! - the bare relay: one thread relaying 2 x N UDP streams of 172-byte packets at 50 packets/s
//!   each, with epoll (mio) and one recv plus one send per packet, on loopback;
//! - the raw libopus cost of a transcoded call's frames: one Opus encode from 8 kHz and one Opus
//!   decode to 8 kHz per 20 ms, through the gateway's own codec API.

use super::meter::{probe_payload, thread_cpu_us, Window};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 12-byte RTP header and a 160-byte PCMU payload.
const PACKET: usize = 172;
const PACKETS_PER_SECOND: u64 = 50;

/// What the bare relay cost for one call count.
#[derive(Debug, Clone)]
pub struct RelayFloor {
    pub calls: usize,
    pub seconds: f64,
    /// Packets the relay thread forwarded while its CPU was measured.
    pub relayed: u64,
    /// Packets the generator sent and the sinks never got.
    pub lost: u64,
    /// The relay thread's CPU (user + system), % of one core.
    pub cpu_percent: f64,
    /// The hypervisor's steal time meanwhile, % of all CPUs' time (set by the caller).
    pub steal_percent: f64,
    /// Where its threads ran.
    pub placement: Placement,
    /// How many measurements this figure is the mean of, and the cheapest and dearest of them in
    /// µs per packet.
    pub measurements: usize,
    pub per_packet_range: (f64, f64),
    /// p50 and p99 in µs of the probes' one-way time through the relay, sender's clock to the
    /// receiver's kernel stamp, both ways (only the relay fed by the scenarios' sender carries
    /// probes): what the gateway's added latency is read against.
    pub latency_us: Option<(u32, u32)>,
}

/// Where a floor's threads run: the relay thread on `relay`, the senders and the receivers (the
/// far ends) on `peers`; `None` leaves a side to the scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    pub relay: Option<usize>,
    pub peers: Option<usize>,
}

impl Placement {
    /// As the load places the gateway and itself: the relay where the gateway's first media
    /// worker runs, its far ends on the load tool's CPU. A relay the scheduler may put beside its
    /// far ends wakes them on its own core; a worker pinned away from the tool pays for waking
    /// another core, and the floor it is measured against must pay the same.
    pub fn as_the_load() -> Placement {
        Placement { relay: super::media_loop::gateway_worker_cpus().first().copied(), peers: super::media_loop::load_tool_cpu() }
    }

    pub fn is_pinned(&self) -> bool {
        self.relay.is_some() || self.peers.is_some()
    }

    /// For the report: ", the relay thread on CPU 0 and its far ends on CPU 1".
    pub fn describe(&self) -> String {
        let side = |cpu: Option<usize>| cpu.map_or("unpinned".to_string(), |cpu| format!("on CPU {cpu}"));
        if self.is_pinned() {
            format!(", the relay thread {} and its senders and receivers {}", side(self.relay), side(self.peers))
        } else {
            ", unpinned".to_string()
        }
    }

    /// Pins the calling thread where `cpu` says; the CPU it took, or `None` when it was asked
    /// for none or could not take it (then it runs unpinned, and the report says so).
    pub fn pin(cpu: Option<usize>) -> Option<usize> {
        let cpu = cpu?;
        match sipbridge::media::worker::scheduling::pin_current_thread(cpu) {
            Ok(()) => Some(cpu),
            Err(e) => {
                eprintln!("load tool: a floor thread cannot be pinned to CPU {cpu}: {e}");
                None
            }
        }
    }
}

impl RelayFloor {
    /// One measurement: `relayed` packets in `seconds`, for `cpu_us` of the relay thread's CPU.
    pub fn measured(calls: usize, seconds: f64, relayed: u64, lost: u64, cpu_us: f64, placement: Placement) -> RelayFloor {
        let mut floor = RelayFloor { calls, seconds, relayed, lost, cpu_percent: cpu_us / (seconds * 1e6) * 100.0, steal_percent: 0.0, placement, measurements: 1, per_packet_range: (0.0, 0.0), latency_us: None };
        floor.per_packet_range = (floor.us_per_packet(), floor.us_per_packet());
        floor
    }

    /// The mean of several measurements at one call count: their CPU over their time together,
    /// as the gateway's figure is its CPU over a window. `None` when there are none.
    pub fn mean(all: &[RelayFloor]) -> Option<RelayFloor> {
        let first = all.first()?;
        let seconds: f64 = all.iter().map(|f| f.seconds).sum();
        let cpu_us: f64 = all.iter().map(|f| f.cpu_percent / 100.0 * f.seconds * 1e6).sum();
        // A side one measurement could not pin is not claimed as pinned for their mean.
        let common = |side: fn(&Placement) -> Option<usize>| side(&first.placement).filter(|_| all.iter().all(|f| side(&f.placement) == side(&first.placement)));
        let placement = Placement { relay: common(|p| p.relay), peers: common(|p| p.peers) };
        let mut mean = RelayFloor::measured(first.calls, seconds, all.iter().map(|f| f.relayed).sum(), all.iter().map(|f| f.lost).sum(), cpu_us, placement);
        mean.steal_percent = all.iter().map(|f| f.steal_percent * f.seconds).sum::<f64>() / seconds.max(1e-9);
        mean.measurements = all.iter().map(|f| f.measurements).sum();
        let lowest = all.iter().map(|f| f.per_packet_range.0).fold(f64::INFINITY, f64::min);
        mean.per_packet_range = (lowest, all.iter().map(|f| f.per_packet_range.1).fold(0.0, f64::max));
        Some(mean)
    }

    /// The console line for a floor named `what`.
    pub fn summary(&self, what: &str) -> String {
        let latency = self.latency_us.map_or(String::new(), |(p50, p99)| format!(", latency p50/p99 {:.2}/{:.2} ms", p50 as f64 / 1e3, p99 as f64 / 1e3));
        format!("{what}, {} calls{}: {:.2} % core = {:.4} %/call, {:.2} µs/packet, {} relayed, {} lost{latency}, host steal {:.1} %", self.calls, self.placement.describe(), self.cpu_percent, self.per_call(), self.us_per_packet(), self.relayed, self.lost, self.steal_percent)
    }

    /// % of a core per call, both directions.
    pub fn per_call(&self) -> f64 {
        self.cpu_percent / self.calls.max(1) as f64
    }

    /// µs of relay-thread CPU per packet.
    pub fn us_per_packet(&self) -> f64 {
        self.cpu_percent / 100.0 * self.seconds * 1e6 / self.relayed.max(1) as f64
    }
}

/// One call: the relay's socket toward each side, and the far end each side sends from.
pub(crate) struct Pair {
    pub(crate) relay: [UdpSocket; 2],
    pub(crate) far: [std::net::UdpSocket; 2],
}

pub(crate) fn bind_pair() -> std::io::Result<Pair> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
    Ok(Pair { relay: [UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?], far: [std::net::UdpSocket::bind(loopback)?, std::net::UdpSocket::bind(loopback)?] })
}

/// The relay thread's phases: warming up, measured, then draining what is still in flight.
#[derive(Default)]
pub struct Phases {
    pub measuring: AtomicBool,
    pub measured: AtomicBool,
    pub stop: AtomicBool,
}

/// A reading taken at a phase change: packets relayed so far, thread CPU µs, wall clock.
type Reading = (u64, f64, Instant);

/// The relay thread's readings at the start and the end of the measured phase.
#[derive(Default)]
pub struct Readings {
    started: Option<Reading>,
    ended: Option<Reading>,
}

impl Readings {
    /// Takes a reading when the phase has just changed.
    pub fn note(&mut self, phases: &Phases, relayed: u64) {
        if self.started.is_none() && phases.measuring.load(Ordering::Relaxed) {
            self.started = Some((relayed, thread_cpu_us(), Instant::now()));
        }
        if self.started.is_some() && self.ended.is_none() && phases.measured.load(Ordering::Relaxed) {
            self.ended = Some((relayed, thread_cpu_us(), Instant::now()));
        }
    }

    /// (packets relayed, CPU µs, seconds) over the measured phase.
    pub fn result(&self, relayed: u64) -> (u64, f64, f64) {
        let now = (relayed, thread_cpu_us(), Instant::now());
        let ((relayed_before, cpu_before, wall_before), (relayed_after, cpu_after, wall_after)) = (self.started.unwrap_or(now), self.ended.unwrap_or(now));
        (relayed_after - relayed_before, cpu_after - cpu_before, wall_after.duration_since(wall_before).as_secs_f64().max(1e-3))
    }
}

/// What one measured relay run gave: packets sent and received by the far ends, and the relay
/// thread's (packets relayed, CPU µs, seconds).
pub struct Measured {
    pub sent: u64,
    pub received: u64,
    pub relay: (u64, f64, f64),
    /// Where the threads actually ran: a CPU a thread could not take is `None`.
    pub placement: Placement,
}

/// Runs `relay` on its own thread while the far ends send `streams` and count what reaches
/// `far_sockets`: a second of warm-up, then `measure`, then what is still in flight. Each thread
/// runs where `placement` says.
pub fn drive<R>(streams: Vec<(std::net::UdpSocket, SocketAddr)>, far_sockets: Vec<UdpSocket>, measure: Duration, placement: Placement, relay: R) -> std::io::Result<Measured>
where
    R: FnOnce(&Phases) -> std::io::Result<(u64, f64, f64)> + Send + 'static,
{
    let warm_up = Duration::from_secs(1);
    let (phases, stop_sink) = (Arc::new(Phases::default()), Arc::new(AtomicBool::new(false)));
    let received = Arc::new(AtomicU64::new(0));
    let relay_thread = {
        let phases = Arc::clone(&phases);
        std::thread::spawn(move || (Placement::pin(placement.relay), relay(&phases)))
    };
    let sink_thread = {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop_sink));
        std::thread::spawn(move || (Placement::pin(placement.peers), sink(far_sockets, &received, &stop)))
    };
    let started = Instant::now();
    let generator = std::thread::spawn(move || (Placement::pin(placement.peers), generate(streams, started + warm_up + measure)));
    std::thread::sleep(warm_up);
    phases.measuring.store(true, Ordering::Relaxed);
    let (generator_cpu, sent) = generator.join().map_err(|_| std::io::Error::other("generator panicked"))?;
    phases.measured.store(true, Ordering::Relaxed);
    // Whatever is still in flight lands within a few ms on loopback.
    let deadline = Instant::now() + Duration::from_millis(500);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    phases.stop.store(true, Ordering::Relaxed);
    let (relay_cpu, relay) = relay_thread.join().map_err(|_| std::io::Error::other("relay panicked"))?;
    stop_sink.store(true, Ordering::Relaxed);
    let (sink_cpu, sunk) = sink_thread.join().map_err(|_| std::io::Error::other("sink panicked"))?;
    sunk?;
    let placement = Placement { relay: relay_cpu, peers: generator_cpu.filter(|_| sink_cpu == generator_cpu) };
    Ok(Measured { sent, received: received.load(Ordering::Relaxed), relay: relay?, placement })
}

/// Relays everything until `stop`; returns (packets relayed, CPU µs, seconds) between the
/// `measuring` and `measured` phase changes.
pub(crate) fn relay(mut relays: Vec<[UdpSocket; 2]>, far_ends: Vec<[SocketAddr; 2]>, phases: &Phases) -> std::io::Result<(u64, f64, f64)> {
    let mut poll = Poll::new()?;
    for (call, sockets) in relays.iter_mut().enumerate() {
        for (side, socket) in sockets.iter_mut().enumerate() {
            poll.registry().register(socket, Token(call * 2 + side), Interest::READABLE)?;
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut buffer = [0u8; 1500];
    let mut relayed = 0u64;
    let mut readings = Readings::default();
    while !phases.stop.load(Ordering::Relaxed) {
        readings.note(phases, relayed);
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for event in events.iter() {
            let (call, side) = (event.token().0 / 2, event.token().0 % 2);
            // A packet in from one side goes out of the call's other socket to the other far end.
            while let Ok(len) = relays[call][side].recv(&mut buffer) {
                let _ = relays[call][1 - side].send_to(&buffer[..len], far_ends[call][1 - side]);
                relayed += 1;
            }
        }
    }
    Ok(readings.result(relayed))
}

/// Counts what reaches the far ends.
pub fn sink(mut far: Vec<UdpSocket>, received: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    let mut poll = Poll::new()?;
    for (index, socket) in far.iter_mut().enumerate() {
        poll.registry().register(socket, Token(index), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buffer = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            while far[event.token().0].recv(&mut buffer).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Sends 50 packets/s on every stream, spread evenly over each 20 ms; returns packets sent.
pub fn generate(streams: Vec<(std::net::UdpSocket, SocketAddr)>, until: Instant) -> u64 {
    let epoch = Instant::now();
    let window = Window { epoch, start: epoch, end: until };
    let period = Duration::from_micros(1_000_000 / PACKETS_PER_SECOND);
    let mut packet = [0u8; PACKET];
    packet[0] = 0x80;
    let (mut sent, mut next) = (0u64, 0u64);
    let count = streams.len() as u64;
    while Instant::now() < until {
        // Stream `i` sends at i * period / count within each period.
        let due = (epoch.elapsed().as_nanos() as u64 * count / period.as_nanos() as u64) + 1;
        while next < due {
            let (socket, to) = &streams[(next % count) as usize];
            packet[2..4].copy_from_slice(&((next / count) as u16).to_be_bytes());
            packet[12..].copy_from_slice(&probe_payload(&window, (next % count) as u32, Instant::now()));
            if socket.send_to(&packet, to).is_ok() {
                sent += 1;
            }
            next += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sent
}

/// Measures the bare relay for `calls` calls over `measure`, after a second of warm-up, its
/// threads placed as `placement` says.
pub fn measure_relay(calls: usize, measure: Duration, placement: Placement) -> std::io::Result<RelayFloor> {
    let pairs = (0..calls).map(|_| bind_pair()).collect::<std::io::Result<Vec<Pair>>>()?;
    let mut relays = Vec::with_capacity(calls);
    let (mut far_ends, mut streams, mut far_sockets) = (Vec::new(), Vec::new(), Vec::new());
    for pair in pairs {
        let relay_addrs = [pair.relay[0].local_addr()?, pair.relay[1].local_addr()?];
        far_ends.push([pair.far[0].local_addr()?, pair.far[1].local_addr()?]);
        for (side, far) in pair.far.into_iter().enumerate() {
            streams.push((far.try_clone()?, relay_addrs[side]));
            far.set_nonblocking(true)?;
            far_sockets.push(UdpSocket::from_std(far));
        }
        relays.push(pair.relay);
    }
    let measured = drive(streams, far_sockets, measure, placement, move |phases| relay(relays, far_ends, phases))?;
    let (relayed, cpu_us, seconds) = measured.relay;
    let lost = measured.sent.saturating_sub(measured.received);
    Ok(RelayFloor::measured(calls, seconds, relayed, lost, cpu_us, measured.placement))
}

/// The raw libopus cost of a transcoded Opus <-> PCMU call: per 20 ms, one encode of the PCM the
/// trunk's PCMU carries and one decode of the browser's Opus packet, both at 8 kHz.
#[derive(Debug, Clone, Copy)]
pub struct CodecFloor {
    /// Encoder and decoder states the frames were spread over: one of each per call.
    pub states: usize,
    /// The mean of the passes, µs per frame: the gateway's own figure is a mean too (its CPU over
    /// a window), and slow moments raise both alike.
    pub encode_us: f64,
    pub decode_us: f64,
    /// How many passes were timed, their median, and the cheapest and dearest pass (encode +
    /// decode, µs).
    pub passes: usize,
    pub median_us: f64,
    pub lowest_us: f64,
    pub highest_us: f64,
    /// The CPU the passes were timed on (the gateway's first media worker's), if pinned.
    pub cpu: Option<usize>,
}

impl CodecFloor {
    /// ", timed on CPU 0", or ", unpinned".
    pub fn timed_on(&self) -> String {
        self.cpu.map_or(", unpinned".to_string(), |cpu| format!(", timed on CPU {cpu}, where the gateway's first media worker runs"))
    }

    /// % of a core per call: 50 encodes and 50 decodes a second.
    pub fn per_call(&self) -> f64 {
        (self.encode_us + self.decode_us) * PACKETS_PER_SECOND as f64 / 1e6 * 100.0
    }
}

/// Raw libopus on the frames the load actually sends, through the gateway's own codec API,
/// timed in thread CPU in short passes spread over the run.
///
/// `states` calls each need their own encoder and decoder, so the frames go to `states` of each
/// in turn, as the calls' packets do: with 100 calls the states (about 4 MB) no longer fit the
/// core's cache and a frame costs more than the same frame on one state kept hot. That is
/// libopus's own cost of those calls, nothing of ours; `states = 1` gives the hot figure.
///
/// One pass takes about 0.1 s, and on a shared host one such pass came out anywhere from 0.38 %
/// to 0.51 % a call within minutes while the gateway's own 15 s windows stayed within a few per
/// cent. So the same states are timed again inside each transcoded scenario's window
/// (`interleave`), the scenario is held to the mean of those passes, and the run's floor is the
/// mean of all its passes (ARCHITECTURE.md: first their median, which left out the slow moments
/// the gateway's windows include).
pub struct CodecBench {
    states: usize,
    /// Where the passes are timed: the CPU the gateway's first media worker is pinned to. Two
    /// vCPUs of one guest can differ by 10 % in speed for minutes (other guests on their
    /// physical cores), so a floor timed on another CPU than the gateway's would be off by that.
    cpu: Option<usize>,
    encoders: Vec<sipbridge::media::codec::OpusEncoder>,
    decoders: Vec<sipbridge::media::codec::OpusDecoder>,
    pcm: Vec<Vec<i16>>,
    browser_packets: Vec<Vec<u8>>,
    /// (encode, decode) µs per frame of every pass so far.
    passes: Vec<(f64, f64)>,
    /// The same of the passes paced as the calls send (`measure_paced`).
    paced: Vec<(f64, f64)>,
}

impl CodecBench {
    /// Creates `states` encoders and decoders and codes a few frames on each, so first-touch
    /// page faults are not counted.
    pub fn new(browser_packets: &[Vec<u8>], states: usize) -> Result<CodecBench, String> {
        use sipbridge::media::codec::{ulaw_to_linear, CodecKind, CodecParams, OpusDecoder, OpusEncoder};
        if browser_packets.is_empty() {
            return Err("no Opus packets to decode".into());
        }
        let states = states.max(1);
        let params = CodecParams::new(CodecKind::Opus);
        let encoders = (0..states).map(|_| OpusEncoder::new(&params, 8_000)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let decoders = (0..states).map(|_| OpusDecoder::new(&params, 8_000)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let epoch = Instant::now();
        let window = Window { epoch, start: epoch, end: epoch + Duration::from_secs(3_600) };
        // The trunk's probes, as the gateway decodes them before encoding Opus.
        let pcm = (0..50u64).map(|i| probe_payload(&window, 0, epoch + Duration::from_millis(20 * i)).iter().map(|&b| ulaw_to_linear(b)).collect()).collect();
        let cpu = Placement::as_the_load().relay;
        let mut bench = CodecBench { states, cpu, encoders, decoders, pcm, browser_packets: browser_packets.to_vec(), passes: Vec::new(), paced: Vec::new() };
        const WARM_UP_FRAMES: usize = 5;
        bench.code(WARM_UP_FRAMES * states)?;
        Ok(bench)
    }

    /// Times `passes` more passes, on a thread pinned where the gateway's first worker runs.
    pub fn measure(&mut self, passes: usize) -> Result<(), String> {
        let frames = (10 * self.states).max(1_000);
        self.on_gateway_cpu(|bench| (0..passes).try_for_each(|_| bench.code(frames).map(|pass| bench.passes.push(pass))))
    }

    /// Runs `timed` on a thread pinned where the gateway's first worker runs, and waits for it.
    fn on_gateway_cpu(&mut self, timed: impl FnOnce(&mut CodecBench) -> Result<(), String> + Send) -> Result<(), String> {
        let cpu = self.cpu;
        std::thread::scope(|scope| {
            let timer = scope.spawn(|| {
                self.cpu = Placement::pin(cpu);
                timed(self)
            });
            timer.join().map_err(|_| "the libopus floor's thread panicked".to_string())?
        })
    }

    /// Times `passes` passes coded as the calls send and the gateway's worker codes them: each
    /// 20 ms tick one frame per state (every encode, then every decode), then idle to the next
    /// tick; 10 ticks a pass. For comparison only: the relay floor is paced like the calls, the
    /// libopus floor is not, and on a shared host a core that idles between ticks comes back to
    /// colder caches (ARCHITECTURE.md, "libopus timed inside the transcoded window").
    pub fn measure_paced(&mut self, passes: usize) -> Result<(), String> {
        const TICKS: u32 = 10;
        const TICK: Duration = Duration::from_millis(20);
        self.on_gateway_cpu(|bench| {
            for _ in 0..passes {
                let (mut encode, mut decode) = (0.0, 0.0);
                let mut next = Instant::now();
                for _ in 0..TICKS {
                    let (e, d) = bench.code(bench.states)?;
                    (encode, decode) = (encode + e, decode + d);
                    next += TICK;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                bench.paced.push((encode / f64::from(TICKS), decode / f64::from(TICKS)));
            }
            Ok(())
        })
    }

    /// The mean of the paced passes (`measure_paced`).
    pub fn paced_floor(&self) -> Result<CodecFloor, String> {
        self.floor_of(&self.paced)
    }

    /// How many passes have been timed so far.
    pub fn passes_timed(&self) -> usize {
        self.passes.len()
    }

    /// The mean of the passes so far, with their median and range (by encode + decode).
    pub fn floor(&self) -> Result<CodecFloor, String> {
        self.floor_since(0)
    }

    /// The same over the passes from the `first`th on.
    pub fn floor_since(&self, first: usize) -> Result<CodecFloor, String> {
        self.floor_of(self.passes.get(first..).unwrap_or_default())
    }

    fn floor_of(&self, passes: &[(f64, f64)]) -> Result<CodecFloor, String> {
        let mut totals: Vec<f64> = passes.iter().map(|&(e, d)| e + d).collect();
        totals.sort_by(f64::total_cmp);
        let (Some(&lowest_us), Some(&highest_us)) = (totals.first(), totals.last()) else { return Err("no pass timed".into()) };
        let count = totals.len();
        let mean = |part: fn(&(f64, f64)) -> f64| passes.iter().map(part).sum::<f64>() / count as f64;
        let (encode_us, decode_us) = (mean(|p| p.0), mean(|p| p.1));
        Ok(CodecFloor { states: self.states, encode_us, decode_us, passes: count, median_us: totals[count / 2], lowest_us, highest_us, cpu: self.cpu })
    }

    /// Encodes `frames` frames, then decodes as many, over the states in turn; returns (encode,
    /// decode) µs of thread CPU per frame.
    fn code(&mut self, frames: usize) -> Result<(f64, f64), String> {
        use sipbridge::media::codec::{AudioDecoder, AudioEncoder};
        let (mut encoded, mut decoded) = (Vec::with_capacity(400), Vec::with_capacity(1_000));
        let started = thread_cpu_us();
        for i in 0..frames {
            encoded.clear();
            self.encoders[i % self.states].encode(&self.pcm[i % self.pcm.len()], &mut encoded).map_err(|e| e.to_string())?;
        }
        let encode_us = (thread_cpu_us() - started) / frames.max(1) as f64;
        let started = thread_cpu_us();
        for i in 0..frames {
            decoded.clear();
            self.decoders[i % self.states].decode(&self.browser_packets[i % self.browser_packets.len()], &mut decoded).map_err(|e| e.to_string())?;
        }
        let decode_us = (thread_cpu_us() - started) / frames.max(1) as f64;
        Ok((encode_us, decode_us))
    }
}

#[cfg(test)]
mod tests {
    // Paths in full: `cargo bench` builds this module without its tests, and an import would
    // be unused there.
    #[test]
    fn a_relay_floors_mean_is_its_cpu_over_its_time_with_the_range_of_its_parts() {
        let placed = super::Placement { relay: Some(0), peers: Some(1) };
        // 1 s at 1 % of a core for 1,000 packets (10 µs each), 3 s at 2 % for 12,000 (5 µs each).
        let mut first = super::RelayFloor::measured(100, 1.0, 1_000, 0, 10_000.0, placed);
        first.steal_percent = 4.0;
        let second = super::RelayFloor::measured(100, 3.0, 12_000, 2, 60_000.0, super::Placement { relay: Some(0), peers: None });
        let mean = super::RelayFloor::mean(&[first, second]).expect("a mean of two");
        assert!((mean.cpu_percent - 1.75).abs() < 1e-9 && (mean.us_per_packet() - 70_000.0 / 13_000.0).abs() < 1e-9, "{mean:?}");
        assert_eq!((mean.relayed, mean.lost, mean.measurements, mean.calls), (13_000, 2, 2, 100));
        let (lowest, highest) = mean.per_packet_range;
        assert!((lowest - 5.0).abs() < 1e-9 && (highest - 10.0).abs() < 1e-9, "{mean:?}");
        assert!((mean.steal_percent - 1.0).abs() < 1e-9, "steal weighted by time: {mean:?}");
        assert_eq!(mean.placement, super::Placement { relay: Some(0), peers: None }, "the far ends were not pinned in one measurement");
        assert!(super::RelayFloor::mean(&[]).is_none());
    }
}
