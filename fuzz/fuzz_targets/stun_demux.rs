//! Fuzz target `stun_demux`: the body is `sipbridge::fuzzing::stun_demux` (see fuzz/README.md). One
//! `StunHarness` lives for the whole run, so state carries over from input to input; replay a crash
//! file alone to see whether it needs the inputs before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbridge::fuzzing::{stun_demux, StunHarness};
use std::cell::RefCell;

thread_local! {
    static HARNESS: RefCell<StunHarness> = RefCell::new(StunHarness::new());
}

fuzz_target!(|data: &[u8]| HARNESS.with(|harness| stun_demux(&mut harness.borrow_mut(), data)));
