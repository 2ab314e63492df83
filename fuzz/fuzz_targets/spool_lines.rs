//! Fuzz target `spool_lines`: the body is `sipbridge::fuzzing::spool_lines` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::spool_lines(data));
