//! Fuzz target `records_query`: the body is `sipbridge::fuzzing::records_query` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipbridge::fuzzing::records_query(data));
