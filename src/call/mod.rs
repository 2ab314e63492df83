//! Calls: the echo test, calls from SIP to browsers (`inbound`), calls from browsers to SIP
//! (`outbound`), and the caps they share (`limits`).

pub mod call_log;
pub mod drain;
pub mod echo;
pub mod inbound;
pub mod legs;
pub mod limits;
pub mod machine;
pub mod outbound;
pub mod registry;
pub mod sdes;
pub mod sip_side;
