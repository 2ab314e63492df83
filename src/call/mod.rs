//! Calls: the echo test, and calls between SIP parties and browsers. `machine` decides (one
//! sans-IO `Call` for every direction), `route` is the dial plan (who a call rings),
//! `callees` opens those legs, `driver` runs one task per call over any mix of legs, and
//! `inbound` / `outbound` set a call up; `limits` holds the caps they share.

pub mod call_log;
pub mod callees;
pub mod drain;
pub mod driver;
pub mod echo;
pub mod inbound;
pub mod legs;
pub mod limits;
pub mod machine;
pub mod outbound;
pub mod registry;
pub mod route;
pub mod sdes;
pub mod webrtc_sip;
