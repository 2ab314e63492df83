//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz / libFuzzer), as plain functions.
//!
//! Each takes the fuzzer's bytes and feeds them to one parser that network or user input reaches,
//! the way the gateway's drivers do. They assert nothing but true invariants, so any panic is a
//! bug. Keeping them here, always compiled, means a normal `cargo build` type-checks every body
//! (none can rot), and `tests/fuzz_corpus.rs` replays the checked-in corpus with a plain
//! `cargo test`: no sanitizer build, no nightly flags. They pull in no dependency of their own.
//!
//! Bodies that keep state across inputs (the SIP core, the WebRTC leg) do so through a
//! `Harness` the caller owns: the fuzz target keeps one for its whole run, the replay test makes
//! one per file (so a checked-in input reproduces alone) and one for the whole corpus.

mod media;
mod records;
mod sdp;
mod signaling;
mod sip;
mod spool;
mod stun;
mod websocket;

pub use media::{rtp_rtcp, srtp_unprotect};
pub use records::records_query;
pub use sdp::sdp;
pub use signaling::signaling;
pub use sip::{sip_message, SipHarness};
pub use spool::spool_lines;
pub use stun::{stun_demux, StunHarness};
pub use websocket::{sip_websocket, WebSocketHarness};

/// One fuzz target: its name (the directory under `fuzz/corpus/` and `fuzz/regressions/`, and the
/// binary in `fuzz/Cargo.toml`) and a fresh-state runner for one input.
pub struct Target {
    pub name: &'static str,
    pub new_runner: fn() -> Box<dyn FnMut(&[u8])>,
}

fn stateless(body: fn(&[u8])) -> Box<dyn FnMut(&[u8])> {
    Box::new(body)
}

/// Every target. The replay test walks this list, so a target added here is replayed.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sip_message",
        new_runner: || {
            let mut harness = SipHarness::new();
            Box::new(move |data| sip_message(&mut harness, data))
        },
    },
    Target { name: "sdp", new_runner: || stateless(sdp) },
    Target { name: "signaling", new_runner: || stateless(signaling) },
    Target { name: "rtp_rtcp", new_runner: || stateless(rtp_rtcp) },
    Target { name: "srtp_unprotect", new_runner: || stateless(srtp_unprotect) },
    Target {
        name: "stun_demux",
        new_runner: || {
            let mut harness = StunHarness::new();
            Box::new(move |data| stun_demux(&mut harness, data))
        },
    },
    Target { name: "records_query", new_runner: || stateless(records_query) },
    Target { name: "spool_lines", new_runner: || stateless(spool_lines) },
    Target {
        name: "sip_websocket",
        new_runner: || {
            let mut harness = WebSocketHarness::new();
            Box::new(move |data| sip_websocket(&mut harness, data))
        },
    },
];
