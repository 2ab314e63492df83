//! Fuzz target `signaling`: the body is `sipbridge::fuzzing::signaling` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::signaling(data));
