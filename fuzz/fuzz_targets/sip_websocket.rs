//! Fuzz target `sip_websocket`: the body is `sipbridge::fuzzing::sip_websocket` (see fuzz/README.md).
//! One `WebSocketHarness` (one SIP core) lives for the whole run, so state carries over from input
//! to input; replay a crash file alone to see whether it needs the inputs before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbridge::fuzzing::{sip_websocket, WebSocketHarness};
use std::cell::RefCell;

thread_local! {
    static HARNESS: RefCell<WebSocketHarness> = RefCell::new(WebSocketHarness::new());
}

fuzz_target!(|data: &[u8]| HARNESS.with(|harness| sip_websocket(&mut harness.borrow_mut(), data)));
