//! sipbridge: a SIP <-> WebRTC gateway. See ARCHITECTURE.md for the module map.

pub mod call;
pub mod config;
pub mod logging;
pub mod route_source;
pub mod media;
pub mod sdp;
pub mod sip;
pub mod webrtc_leg;
pub mod http;
pub mod shutdown;
pub mod signaling;
pub mod store;
pub mod fuzzing;
