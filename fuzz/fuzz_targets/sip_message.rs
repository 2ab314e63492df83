//! Fuzz target `sip_message`: the body is `sipbridge::fuzzing::sip_message` (see fuzz/README.md). One
//! `SipHarness` lives for the whole run, so state carries over from input to input; replay a crash
//! file alone to see whether it needs the inputs before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbridge::fuzzing::{sip_message, SipHarness};
use std::cell::RefCell;

thread_local! {
    static HARNESS: RefCell<SipHarness> = RefCell::new(SipHarness::new());
}

fuzz_target!(|data: &[u8]| HARNESS.with(|harness| sip_message(&mut harness.borrow_mut(), data)));
