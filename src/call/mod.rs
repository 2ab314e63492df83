//! Calls: the echo test, and calls between SIP and browsers. `machine` decides (one sans-IO
//! `Call` for both directions), `driver` runs one task per call over its legs, and `inbound` /
//! `outbound` set a call up; `limits` holds the caps they share.

pub mod call_log;
pub mod drain;
pub mod driver;
pub mod echo;
pub mod inbound;
pub mod legs;
pub mod limits;
pub mod machine;
pub mod outbound;
pub mod registry;
pub mod sdes;
pub mod webrtc_sip;
