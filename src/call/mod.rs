//! Calls: the echo test, and calls from SIP to browsers (`inbound`). Browser-to-SIP calls arrive
//! with the rest of the calls issue.

pub mod echo;
pub mod inbound;
pub mod outbound;
pub mod registry;
