//! Gateway configuration: the main TOML file plus one TOML file per SIP peer in the profiles folder.
//!
//! Loading never stops at the first problem: every error is collected with the file, the key and
//! the reason, so an operator fixes a config in one pass.

mod advertise;
mod calls;
mod console;
mod dial_plan;
mod ice;
mod profile;
mod validate;
pub use ice::{IceAuth, IceServerConfig, DEFAULT_CREDENTIAL_LIFETIME_SECS};
pub use calls::{BrowserCodecPolicy, CallsConfig};
pub use console::{ConsoleRole, ConsoleUser};
pub use dial_plan::{DialError, DialPlan};

pub use profile::{LocalUser, OutboundProxy, PeerTransport, Profile, ProfileKind, SrtpPolicy, UserSecret};

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
    }
}

#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub(crate) fn push(&mut self, file: &Path, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(ConfigError { file: file.to_path_buf(), key: key.into(), reason: reason.into() });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenTransport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118) on a port of its own; `wss` with the `[sip.tls]` certificate.
    Ws,
    Wss,
}

impl fmt::Display for ListenTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralConfig {
    /// Where the gateway keeps its generated TLS certificate, spool and embedded database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        Self { data_dir: default_data_dir(), log_format: LogFormat::Text, log_level: default_log_level() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub transport: ListenTransport,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. When both files are empty a self-signed certificate is generated in
    /// the data dir, which is enough for phones that pin it or skip verification.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    #[serde(default = "default_listen")]
    pub listen: Vec<ListenConfig>,
    /// Address written into Via/Contact instead of the listeners' own (NAT 1:1). Unset, a
    /// wildcard listener advertises the local address of the route toward each peer.
    #[serde(default)]
    pub advertised_address: Option<String>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: PathBuf,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Sustained messages per second accepted from one source IP, and the burst above it.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_second: u32,
    #[serde(default = "default_rate_burst")]
    pub rate_limit_burst: u32,
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    #[serde(default = "default_t2_ms")]
    pub t2_ms: u64,
    #[serde(default = "default_t4_ms")]
    pub t4_ms: u64,
    /// Lifetime of a digest nonce handed to phones.
    #[serde(default = "default_nonce_lifetime")]
    pub nonce_lifetime_secs: u64,
    /// A WebSocket ping to each SIP-over-WebSocket client this often.
    #[serde(default = "default_websocket_ping_interval")]
    pub websocket_ping_interval_secs: u64,
    /// A WebSocket flow from which nothing (no message, no pong) came for this long is closed,
    /// and the bindings registered over it go with it.
    #[serde(default = "default_websocket_idle_timeout")]
    pub websocket_idle_timeout_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            advertised_address: None,
            tls: TlsConfig::default(),
            profiles_dir: default_profiles_dir(),
            user_agent: default_user_agent(),
            max_message_bytes: default_max_message_bytes(),
            rate_limit_per_second: default_rate_limit(),
            rate_limit_burst: default_rate_burst(),
            t1_ms: default_t1_ms(),
            t2_ms: default_t2_ms(),
            t4_ms: default_t4_ms(),
            nonce_lifetime_secs: default_nonce_lifetime(),
            websocket_ping_interval_secs: default_websocket_ping_interval(),
            websocket_idle_timeout_secs: default_websocket_idle_timeout(),
        }
    }
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
    pub fn websocket_ping_interval(&self) -> Duration {
        Duration::from_secs(self.websocket_ping_interval_secs)
    }
    pub fn websocket_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.websocket_idle_timeout_secs)
    }
}

/// A secret from the config: usable, but never printed by Debug (and so never logged).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens accepted by the API and /metrics. With none, only /healthz answers.
    #[serde(default)]
    pub api_tokens: Vec<Secret>,
    /// HS256 secret an operator's web app signs browser login tokens with (docs/signaling.md).
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// `[[http.ice_servers]]` as written; validated into `ice_servers` by `Config::load`.
    #[serde(default, rename = "ice_servers")]
    raw_ice_servers: Vec<ice::RawIceServer>,
    /// STUN/TURN servers handed to browsers in the login reply (docs/signaling.md §4.2). The
    /// gateway's own WebRTC legs use none of them: browsers reach the gateway directly.
    #[serde(skip)]
    pub ice_servers: Vec<IceServerConfig>,
    /// Web console users (also added with `sipbridge user add`, kept in the data directory).
    #[serde(default)]
    pub console_users: Vec<ConsoleUser>,
    /// `[http.tls]`: serve HTTPS and WSS, with these files or (both unset) the self-signed
    /// certificate the SIP TLS listener uses too. SIGHUP reloads the files.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve SIP over WebSocket (RFC 7118, `ws://`) on this listener at `/sip` too.
    #[serde(default)]
    pub sip_websocket: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            api_tokens: Vec::new(),
            jwt_secret: None,
            raw_ice_servers: Vec::new(),
            ice_servers: Vec::new(),
            console_users: Vec::new(),
            tls: None,
            sip_websocket: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address RTP sockets bind to, and advertise unless `public_address` is set; a wildcard
    /// advertises the local address of the route toward each peer, never itself.
    #[serde(default = "default_media_address")]
    pub address: std::net::IpAddr,
    #[serde(default)]
    pub public_address: Option<std::net::IpAddr>,
    #[serde(default = "default_rtp_port_min")]
    pub rtp_port_min: u16,
    #[serde(default = "default_rtp_port_max")]
    pub rtp_port_max: u16,
    /// A leg silent this long ends the call ("media timeout"); longer while the leg is on hold.
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_secs: u64,
    #[serde(default = "default_rtp_hold_timeout")]
    pub rtp_hold_timeout_secs: u64,
    /// libopus complexity 0-10 for transcoding (see `make bench` for the cost of each).
    #[serde(default = "default_opus_complexity")]
    pub opus_complexity: u8,
    /// ICE-lite for the browser leg (a gateway with a public address needs no full ICE agent).
    #[serde(default)]
    pub ice_lite: bool,
    /// A browser leg whose ICE has not connected (or lost connectivity) this long ends the call.
    #[serde(default = "default_ice_failed_timeout")]
    pub ice_failed_timeout_secs: u64,
    /// Media worker threads; 0 (the default) is one per core.
    #[serde(default)]
    pub workers: usize,
    /// The UDP port every browser leg of the first worker shares (the next worker takes the
    /// next port); 0 (the default) takes one port per worker from the RTP range.
    #[serde(default)]
    pub webrtc_port: u16,
    /// SCHED_FIFO priority (1-99) for the media worker threads, so a packet preempts signalling
    /// and other processes instead of waiting for a time slice; 0 (the default) leaves them
    /// under the normal scheduler (with `worker_slice_us`). Needs CAP_SYS_NICE (or
    /// RLIMIT_RTPRIO); without it the gateway logs a warning and runs as usual.
    #[serde(default)]
    pub realtime_priority: u8,
    /// A worker under this share of a core (per cent, measured every 200 ms) takes new calls
    /// before the next worker does; past it the next worker, or the least loaded, takes them.
    /// Packing calls onto few workers leaves the other cores to the rest of the machine and
    /// wakes each worker for more packets at once; 0 deals every call to the least loaded.
    #[serde(default = "default_worker_fill_percent")]
    pub worker_fill_percent: u8,
    /// The time slice (µs, 100-100000) the workers ask of the kernel's fair scheduler when not
    /// under SCHED_FIFO. A short slice lets a packet that wakes a worker preempt whatever runs
    /// on its core (Linux 6.12 and later; older kernels ignore it); 0 keeps the kernel's own.
    #[serde(default = "default_worker_slice_us")]
    pub worker_slice_us: u32,
    /// CPUs (as the kernel numbers them) to pin the workers to, one worker on each, in order;
    /// empty (the default) lets the scheduler place them. On a host that runs nothing else of
    /// weight, pinning keeps a worker on one core: a packet sent to it from a local process can
    /// no longer pull it onto the sender's core to wait there while another core idles.
    #[serde(default)]
    pub worker_cpus: Vec<usize>,
    /// Transcoded RTP waits up to this long (ms, 0-60) to be coded together with the other
    /// transcoded packets of the worker: coding frames back to back costs less CPU than coding
    /// each as it arrives, for up to this much more delay on transcoded calls only (relayed
    /// media never waits). 0 codes each packet as it arrives.
    #[serde(default = "default_codec_batch_ms")]
    pub codec_batch_ms: u16,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            address: default_media_address(),
            public_address: None,
            rtp_port_min: default_rtp_port_min(),
            rtp_port_max: default_rtp_port_max(),
            rtp_timeout_secs: default_rtp_timeout(),
            rtp_hold_timeout_secs: default_rtp_hold_timeout(),
            opus_complexity: default_opus_complexity(),
            ice_lite: false,
            ice_failed_timeout_secs: default_ice_failed_timeout(),
            workers: 0,
            webrtc_port: 0,
            realtime_priority: 0,
            worker_fill_percent: default_worker_fill_percent(),
            worker_slice_us: default_worker_slice_us(),
            worker_cpus: Vec::new(),
            codec_batch_ms: default_codec_batch_ms(),
        }
    }
}

/// Where call records go.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// `postgres://user:password@host/db`; without it, SQLite in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
}

impl fmt::Debug for RecordsConfig {
    // The URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsConfig").field("database_url", &self.database_url.as_ref().map(|_| "<redacted>")).finish()
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MainFile {
    #[serde(default)]
    calls: CallsConfig,
    #[serde(default)]
    records: RecordsConfig,
    #[serde(default)]
    general: GeneralConfig,
    #[serde(default)]
    sip: SipConfig,
    #[serde(default)]
    media: MediaConfig,
    #[serde(default)]
    http: HttpConfig,
}

/// The whole validated configuration: the main file and every profile.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub general: GeneralConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub calls: CallsConfig,
    pub records: RecordsConfig,
    pub http: HttpConfig,
    pub profiles: Vec<Profile>,
}

impl Config {
    /// The call-record database: the configured URL, or SQLite in the data directory.
    pub fn records_url(&self) -> String {
        match &self.records.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.general.data_dir.join("records.db").display()),
        }
    }

    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let text = std::fs::read_to_string(file).map_err(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(file, "-", format!("cannot read: {e}"));
            errors
        })?;
        let main: MainFile = toml::from_str(&text).map_err(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(file, toml_error_key(&e, &text), toml_error_reason(&e));
            errors
        })?;
        validate::validate_main(file, &main, &mut errors);

        // Relative paths in the config are relative to the config file, so the gateway behaves the
        // same whatever directory it is started from.
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        let mut general = main.general;
        general.data_dir = base.join(&general.data_dir);
        let mut sip = main.sip;
        sip.profiles_dir = base.join(&sip.profiles_dir);
        sip.tls.cert_file = sip.tls.cert_file.map(|p| base.join(p));
        sip.tls.key_file = sip.tls.key_file.map(|p| base.join(p));

        let mut http = main.http;
        if let Some(tls) = http.tls.as_mut() {
            tls.cert_file = tls.cert_file.take().map(|p| base.join(p));
            tls.key_file = tls.key_file.take().map(|p| base.join(p));
        }
        http.ice_servers = ice::validate(file, &http.raw_ice_servers, &mut errors);
        let profiles = profile::load_dir(&sip.profiles_dir, file, &mut errors);
        console::check_grants(file, &http.console_users, &profiles, &mut errors);
        if errors.0.is_empty() {
            Ok(Config { file: file.to_path_buf(), general, sip, media: main.media, calls: main.calls, records: main.records, http, profiles })
        } else {
            Err(errors)
        }
    }

    /// Human summary printed by `check-config`.
    pub fn summary(&self) -> String {
        let mut out = format!("config {} is valid\n", self.file.display());
        for line in self.advertised_lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!("  media ports {}-{}\n", self.media.rtp_port_min, self.media.rtp_port_max));
        let scheme = if self.http.tls.is_some() { "https" } else { "http" };
        out.push_str(&format!("  {scheme} on {}\n", self.http.listen));
        for server in &self.http.ice_servers {
            out.push_str(&format!("  ice server for browsers: {}\n", server.summary()));
        }
        out.push_str(&format!("  {} profile(s) from {}\n", self.profiles.len(), self.sip.profiles_dir.display()));
        for profile in &self.profiles {
            out.push_str(&format!("    {}\n", profile.summary()));
        }
        out
    }
}

/// toml reports a byte span; an operator wants the key and the line.
pub(crate) fn toml_error_key(error: &toml::de::Error, text: &str) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            let key = text
                .get(span.clone())
                .map(|s| s.lines().next().unwrap_or("").trim().to_string())
                .unwrap_or_default();
            format!("line {line} `{key}`")
        }
        None => "-".to_string(),
    }
}

pub(crate) fn toml_error_reason(error: &toml::de::Error) -> String {
    error.message().to_string()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_log_level() -> String {
    "info".into()
}
fn default_listen() -> Vec<ListenConfig> {
    vec![ListenConfig { transport: ListenTransport::Udp, address: SocketAddr::from(([0, 0, 0, 0], 5060)) }]
}
fn default_profiles_dir() -> PathBuf {
    PathBuf::from("sip-profiles")
}
fn default_user_agent() -> String {
    format!("sipbridge/{}", env!("CARGO_PKG_VERSION"))
}
fn default_max_message_bytes() -> usize {
    65_535
}
fn default_rate_limit() -> u32 {
    200
}
fn default_rate_burst() -> u32 {
    400
}
fn default_t1_ms() -> u64 {
    500
}
fn default_t2_ms() -> u64 {
    4_000
}
fn default_t4_ms() -> u64 {
    5_000
}
fn default_nonce_lifetime() -> u64 {
    300
}
fn default_websocket_ping_interval() -> u64 {
    30
}
/// RFC 5626 §4.4.1 suggests 95-120 s for flows kept alive by the client.
fn default_websocket_idle_timeout() -> u64 {
    95
}
fn default_media_address() -> std::net::IpAddr {
    std::net::IpAddr::from([0, 0, 0, 0])
}
fn default_rtp_port_min() -> u16 {
    20_000
}
fn default_rtp_port_max() -> u16 {
    30_000
}
fn default_rtp_timeout() -> u64 {
    30
}
fn default_rtp_hold_timeout() -> u64 {
    3_600
}
fn default_worker_fill_percent() -> u8 {
    crate::media::engine::DEFAULT_WORKER_FILL_PERCENT
}
fn default_codec_batch_ms() -> u16 {
    crate::media::engine::DEFAULT_CODEC_BATCH_MS
}
fn default_worker_slice_us() -> u32 {
    crate::media::engine::DEFAULT_WORKER_SLICE_US
}

/// Complexity 5 costs about half of 10 per frame (NOTES: 112 vs 205 µs at 48 kHz) for little loss
/// of quality on speech; `make bench` prints the figures behind this choice.
fn default_opus_complexity() -> u8 {
    5
}
fn default_ice_failed_timeout() -> u64 {
    15
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

#[cfg(test)]
mod tests;
