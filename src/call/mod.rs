//! Calls. For now the echo test; the SIP <-> WebRTC B2BUA over `LegEvent`/`LegCommand` arrives
//! with the calls issue.

pub mod echo;
