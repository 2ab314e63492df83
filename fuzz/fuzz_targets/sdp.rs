//! Fuzz target `sdp`: the body is `sipbridge::fuzzing::sdp` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::sdp(data));
