//! Fuzz target `srtp_unprotect`: the body is `sipbridge::fuzzing::srtp_unprotect` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::srtp_unprotect(data));
