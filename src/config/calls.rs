//! `[calls]`: how many calls, how long they ring and last, and what browsers are offered.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// Calls in progress at once (ringing or answered); beyond it SIP callers get 503 with
    /// Retry-After and a browser's call ends with `hangup` `unavailable`.
    #[serde(default = "default_max_calls")]
    pub max_concurrent: usize,
    #[serde(default = "default_max_calls_per_user")]
    pub max_per_user: usize,
    /// Browsers ring this long before the caller hears 480.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// An answered call is ended after this long.
    #[serde(default = "default_max_duration")]
    pub max_duration_secs: u64,
    /// An answered call outlives its browser's WebSocket this long, so the browser can reconnect
    /// and `reclaim` it; then it ends with BYE. 0 ends it at once.
    #[serde(default = "default_reclaim_grace")]
    pub reclaim_grace_secs: u64,
    /// On SIGTERM (or `sipbridge drain`) new calls are refused and calls in progress may carry
    /// on this long; then every call still up is ended (BYE, CANCEL, `hangup` with `shutdown`).
    #[serde(default = "default_drain")]
    pub drain_secs: u64,
    /// The codec browsers are offered on calls from SIP: `same` as the SIP side (audio passes
    /// through untouched), or one codec for every call (the gateway transcodes when they differ).
    #[serde(default)]
    pub browser_codec: BrowserCodecPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserCodecPolicy {
    #[default]
    Same,
    Opus,
    Pcmu,
    Pcma,
    G722,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: default_max_calls(),
            max_per_user: default_max_calls_per_user(),
            ring_timeout_secs: default_ring_timeout(),
            max_duration_secs: default_max_duration(),
            reclaim_grace_secs: default_reclaim_grace(),
            drain_secs: default_drain(),
            browser_codec: BrowserCodecPolicy::Same,
        }
    }
}

fn default_max_calls() -> usize {
    1_000
}
fn default_max_calls_per_user() -> usize {
    4
}
fn default_ring_timeout() -> u64 {
    30
}
fn default_reclaim_grace() -> u64 {
    30
}
fn default_drain() -> u64 {
    60
}

fn default_max_duration() -> u64 {
    4 * 3_600
}
