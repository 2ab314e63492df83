//! The floors of a run (`floor.rs` measures them): the bare relay and raw libopus at every
//! scenario's size, measured before the scenarios and, for the targets' floors, again after each
//! scenario of their size; the shared-port relay and the fed relay, for comparison.

use super::meter::StealSample;
use super::{batched, floor, floor_fed, Plan};
use std::time::Duration;

/// The floors of one run, measured on the same machine before its scenarios (and the target
/// floors again after each scenario of their size).
pub struct Floors {
    /// The bare relay at every call count a scenario runs: the mean of its measurements.
    pub relay: Vec<Result<floor::RelayFloor, String>>,
    /// Raw libopus at every transcoded call count, one encoder and decoder state per call.
    pub codec: Vec<Result<floor::CodecFloor, String>>,
    /// Raw libopus on one state kept hot, for comparison (not a target's floor).
    pub codec_one_state: Result<floor::CodecFloor, String>,
    /// For comparison: raw libopus on the calls' states paced as the calls send, at each
    /// transcoded size (`floor::CodecBench::measure_paced`).
    pub codec_paced: Vec<Result<floor::CodecFloor, String>>,
    /// The shared-port relay at the largest relayed size: one datagram per call, then batched.
    pub shared_port: Vec<Result<batched::SharedPortFloor, String>>,
    /// The bare relay fed by the scenarios' own sender, for comparison (not a target's floor).
    pub fed_relay: Option<Result<floor::RelayFloor, String>>,
    /// The bare relay at the same call counts, unpinned, for comparison (not a target's floor);
    /// empty when the floors above ran unpinned too.
    pub relay_unpinned: Vec<Result<floor::RelayFloor, String>>,
}

impl Floors {
    /// The bare relay measured at `calls`.
    pub fn relay_at(&self, calls: usize) -> Option<&floor::RelayFloor> {
        self.relay.iter().filter_map(|r| r.as_ref().ok()).find(|f| f.calls == calls)
    }

    /// The unpinned bare relay measured at `calls`, if the floors were placed.
    pub fn relay_unpinned_at(&self, calls: usize) -> Option<&floor::RelayFloor> {
        self.relay_unpinned.iter().filter_map(|r| r.as_ref().ok()).find(|f| f.calls == calls)
    }

    /// Raw libopus over `calls` calls' states.
    pub fn codec_at(&self, calls: usize) -> Option<&floor::CodecFloor> {
        self.codec.iter().filter_map(|c| c.as_ref().ok()).find(|c| c.states == calls)
    }

    pub fn codec_paced_at(&self, calls: usize) -> Option<&floor::CodecFloor> {
        self.codec_paced.iter().filter_map(|c| c.as_ref().ok()).find(|c| c.states == calls)
    }
}

pub(super) fn measure_floors(plan: &Plan, opus: &[Vec<u8>]) -> (Floors, RelayBenches, CodecBenches) {
    let mut sizes: Vec<usize> = plan.passthrough.iter().chain(&plan.transcoded).copied().collect();
    sizes.sort_unstable();
    sizes.dedup();
    let placed = floor::Placement::as_the_load();
    let relay = RelayBenches::start(plan, &sizes, placed);
    let relay_unpinned = match placed.is_pinned() {
        true => sizes.iter().map(|&calls| measure_relay_floor(plan.floor_measure, calls, floor::Placement::default(), "for comparison, bare relay")).collect(),
        false => Vec::new(),
    };
    let codec = CodecBenches::start(plan, opus);
    let (codec_floors, codec_one_state) = codec.floors();
    let shared_port = measure_shared_port(plan);
    let fed_relay = plan.passthrough.iter().max().map(|&calls| floor_fed::measure_and_print(calls, plan.floor_measure));
    let codec_paced = codec.paced_floors();
    (Floors { relay: relay.floors(), codec: codec_floors, codec_one_state, codec_paced, shared_port, fed_relay, relay_unpinned }, relay, codec)
}

fn measure_relay_floor(measure: Duration, calls: usize, placement: floor::Placement, what: &str) -> Result<floor::RelayFloor, String> {
    let steal = StealSample::start();
    let measured = floor::measure_relay(calls, measure, placement).map(|f| floor::RelayFloor { steal_percent: steal.percent(), ..f }).map_err(|e| format!("bare relay at {calls} calls: {e}"));
    match &measured {
        Ok(f) => println!("{}", f.summary(what)),
        Err(e) => println!("{e}"),
    }
    measured
}

/// The placed bare relay at every scenario's size, measured before the scenarios and again after
/// each scenario of that size, as the libopus floor is.
///
/// One 8 s measurement at 100 calls came out anywhere from 0.083 % to 0.130 % a call within an
/// hour on a quiet host, and up to a quarter apart within one run. So the floor is the mean of
/// all the run's measurements at its size (ARCHITECTURE.md, thirteenth session).
pub(super) struct RelayBenches {
    placement: floor::Placement,
    floor_measure: Duration,
    sizes: Vec<(usize, Vec<Result<floor::RelayFloor, String>>)>,
}

impl RelayBenches {
    fn start(plan: &Plan, sizes: &[usize], placement: floor::Placement) -> RelayBenches {
        let sizes = sizes.iter().map(|&calls| (calls, vec![measure_relay_floor(plan.floor_measure, calls, placement, "bare relay floor")])).collect();
        RelayBenches { placement, floor_measure: plan.floor_measure, sizes }
    }

    /// One more measurement at `calls`, after a scenario of that size.
    pub(super) fn measure_after(&mut self, calls: usize) {
        let (placement, floor_measure) = (self.placement, self.floor_measure);
        for (_, measured) in self.sizes.iter_mut().filter(|(size, _)| *size == calls) {
            measured.push(measure_relay_floor(floor_measure, calls, placement, "bare relay floor, again after a scenario"));
        }
    }

    /// Each size's floor: the mean of its measurements, or the first error when none succeeded.
    pub(super) fn floors(&self) -> Vec<Result<floor::RelayFloor, String>> {
        let mean = |measured: &[Result<floor::RelayFloor, String>]| {
            let ok: Vec<floor::RelayFloor> = measured.iter().filter_map(|m| m.as_ref().ok().cloned()).collect();
            floor::RelayFloor::mean(&ok).ok_or_else(|| measured.iter().find_map(|m| m.as_ref().err().cloned()).unwrap_or_else(|| "not measured".into()))
        };
        self.sizes.iter().map(|(_, measured)| mean(measured)).collect()
    }
}

/// Raw libopus at every transcoded size and on one hot state (`floor::CodecBench`), timed
/// before the scenarios and again in or after each transcoded one.
pub(super) struct CodecBenches {
    sizes: Vec<(usize, Result<floor::CodecBench, String>)>,
    one_state: Result<floor::CodecBench, String>,
}

impl CodecBenches {
    /// Passes timed before the scenarios; after each transcoded scenario, the hot state's. The
    /// calls' states are timed inside each transcoded scenario's window (`interleave`).
    const FIRST_PASSES: usize = 5;
    const ONE_STATE_PASSES: usize = 8;
    /// Passes paced as the calls send, at each size, before the scenarios: 0.2 s each.
    const PACED_PASSES: usize = 3;

    fn start(plan: &Plan, opus: &[Vec<u8>]) -> CodecBenches {
        let start = |states| floor::CodecBench::new(opus, states).and_then(|mut b| b.measure(Self::FIRST_PASSES).map(|()| b));
        let paced = |bench: Result<floor::CodecBench, String>| {
            bench.map(|mut b| {
                if let Err(e) = b.measure_paced(Self::PACED_PASSES) {
                    println!("raw libopus paced as the calls send: {e}");
                }
                b
            })
        };
        let benches = CodecBenches { sizes: plan.transcoded.iter().map(|&calls| (calls, paced(start(calls)))).collect(), one_state: start(1) };
        benches.print("before the scenarios");
        for paced in benches.paced_floors().iter().filter_map(|p| p.as_ref().ok()) {
            println!("raw libopus floor, {} states paced as the calls send{}: {} passes: encode {:.1} µs + decode {:.1} µs per 20 ms = {:.3} %/call", paced.states, paced.timed_on(), paced.passes, paced.encode_us, paced.decode_us, paced.per_call());
        }
        benches
    }

    /// Raw libopus paced as the calls send, at each size.
    pub(super) fn paced_floors(&self) -> Vec<Result<floor::CodecFloor, String>> {
        self.sizes.iter().map(|(_, bench)| bench.as_ref().map_err(Clone::clone).and_then(floor::CodecBench::paced_floor)).collect()
    }

    /// The bench to time inside a scenario's window: the one at its size, for a transcoded one.
    pub(super) fn timed_in_window(&mut self, calls: usize, media: super::Media) -> Option<&mut floor::CodecBench> {
        let bench = self.sizes.iter_mut().find(|(states, _)| *states == calls).and_then(|(_, bench)| bench.as_mut().ok());
        bench.filter(|_| media == super::Media::Transcoded)
    }

    /// The floor of the passes timed in the scenario's window (from pass `first` on); then the
    /// hot state's passes.
    pub(super) fn floor_in_window(&mut self, calls: usize, first: usize) -> Option<floor::CodecFloor> {
        let inside = self.sizes.iter().find(|(states, _)| *states == calls).and_then(|(_, bench)| bench.as_ref().ok()?.floor_since(first).ok());
        if let Some(c) = &inside {
            println!("raw libopus floor inside the scenario's window{}: {} passes: encode {:.1} µs + decode {:.1} µs per 20 ms = {:.3} %/call (passes {:.1}-{:.1} µs)", c.timed_on(), c.passes, c.encode_us, c.decode_us, c.per_call(), c.lowest_us, c.highest_us);
        }
        if let Err(e) = self.one_state.as_mut().map_err(|e| e.clone()).and_then(|b| b.measure(Self::ONE_STATE_PASSES)) {
            println!("raw libopus floor on one state: {e}");
        }
        inside
    }

    pub(super) fn floors(&self) -> (Vec<Result<floor::CodecFloor, String>>, Result<floor::CodecFloor, String>) {
        let floor = |bench: &Result<floor::CodecBench, String>| bench.as_ref().map_err(Clone::clone).and_then(floor::CodecBench::floor);
        (self.sizes.iter().map(|(_, b)| floor(b)).collect(), floor(&self.one_state))
    }

    pub(super) fn print(&self, when: &str) {
        let (sizes, one_state) = self.floors();
        for codec in sizes.iter().chain([&one_state]) {
            match codec {
                Ok(c) => println!("raw libopus floor, {} encoder + decoder states in turn{}, {when}: mean of {} passes: encode {:.1} µs + decode {:.1} µs per 20 ms = {:.3} %/call (passes {:.1}-{:.1} µs, median {:.1})", c.states, c.timed_on(), c.passes, c.encode_us, c.decode_us, c.per_call(), c.lowest_us, c.highest_us, c.median_us),
                Err(e) => println!("raw libopus floor: {e}"),
            }
        }
    }
}

/// Batched I/O, evaluated at the largest relayed size (`batched.rs`).
fn measure_shared_port(plan: &Plan) -> Vec<Result<batched::SharedPortFloor, String>> {
    let Some(&calls) = plan.passthrough.iter().max() else { return Vec::new() };
    [false, true]
        .into_iter()
        .map(|batched| {
            let measured = batched::measure_shared_port(calls, plan.floor_measure, batched).map_err(|e| format!("shared-port relay at {calls} calls: {e}"));
            if let Ok(f) = &measured {
                let how = if batched { "recvmmsg/sendmmsg" } else { "1 recv + 1 send per packet" };
                println!("shared-port relay, {calls} calls, {how}: {:.2} % core, {:.2} µs/packet, {} relayed, {} lost", f.cpu_percent, f.us_per_packet(), f.relayed, f.lost);
            }
            measured
        })
        .collect()
}
