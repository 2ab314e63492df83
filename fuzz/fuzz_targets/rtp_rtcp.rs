//! Fuzz target `rtp_rtcp`: the body is `sipbridge::fuzzing::rtp_rtcp` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::rtp_rtcp(data));
