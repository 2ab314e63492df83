//! Checks of the main file that its types cannot express: listeners, ports, TLS, timers and the
//! cross-field rules, each failure collected with its key.

use super::*;

pub(super) fn validate_main(file: &Path, main: &MainFile, errors: &mut ConfigErrors) {
    if main.sip.listen.is_empty() {
        errors.push(file, "sip.listen", "at least one SIP listener is required");
    }
    for (i, listen) in main.sip.listen.iter().enumerate() {
        let duplicates = main.sip.listen[..i]
            .iter()
            .any(|other| other.transport == listen.transport && other.address == listen.address);
        if duplicates {
            errors.push(file, format!("sip.listen[{i}]"), format!("{} {} is listed twice", listen.transport, listen.address));
        }
    }
    let sip = &main.sip;
    if !(256..=65_535).contains(&sip.max_message_bytes) {
        errors.push(file, "sip.max_message_bytes", "must be between 256 and 65535");
    }
    if sip.rate_limit_per_second == 0 {
        errors.push(file, "sip.rate_limit_per_second", "must be at least 1");
    }
    if sip.rate_limit_burst < sip.rate_limit_per_second {
        errors.push(file, "sip.rate_limit_burst", "must be at least rate_limit_per_second");
    }
    if sip.t1_ms == 0 || sip.t1_ms > 10_000 {
        errors.push(file, "sip.t1_ms", "must be between 1 and 10000 ms (RFC 3261 default 500)");
    }
    if sip.t2_ms < sip.t1_ms {
        errors.push(file, "sip.t2_ms", "must not be below t1_ms");
    }
    if sip.t4_ms == 0 {
        errors.push(file, "sip.t4_ms", "must be above 0");
    }
    if sip.nonce_lifetime_secs < 10 {
        errors.push(file, "sip.nonce_lifetime_secs", "must be at least 10 s");
    }
    if !(1..=3_600).contains(&sip.websocket_ping_interval_secs) {
        errors.push(file, "sip.websocket_ping_interval_secs", "must be 1-3600 s");
    }
    // A client that only answers pings must not be taken for idle.
    if sip.websocket_idle_timeout_secs <= sip.websocket_ping_interval_secs {
        errors.push(file, "sip.websocket_idle_timeout_secs", "must be longer than websocket_ping_interval_secs");
    }
    if sip.tls.cert_file.is_some() != sip.tls.key_file.is_some() {
        errors.push(file, "sip.tls", "set both cert_file and key_file, or neither to generate a certificate");
    }
    if main.http.tls.as_ref().is_some_and(|tls| tls.cert_file.is_some() != tls.key_file.is_some()) {
        errors.push(file, "http.tls", "set both cert_file and key_file, or neither to generate a certificate");
    }
    let media = &main.media;
    if media.rtp_port_min < 1024 || media.rtp_port_max <= media.rtp_port_min.saturating_add(2) {
        errors.push(file, "media.rtp_port_min", "the RTP range must start at 1024 or above and hold at least two port pairs");
    }
    if media.rtp_timeout_secs == 0 || media.rtp_hold_timeout_secs < media.rtp_timeout_secs {
        errors.push(file, "media.rtp_timeout_secs", "must be above 0 and not above rtp_hold_timeout_secs");
    }
    let calls = &main.calls;
    if calls.max_concurrent == 0 || calls.max_per_user == 0 {
        errors.push(file, "calls.max_concurrent", "limits must be at least 1");
    }
    if !(5..=300).contains(&calls.ring_timeout_secs) {
        errors.push(file, "calls.ring_timeout_secs", "must be 5-300 s");
    }
    if calls.max_duration_secs < 60 {
        errors.push(file, "calls.max_duration_secs", "must be at least 60 s");
    }
    if media.workers > 64 {
        errors.push(file, "media.workers", "must be 0 (one per core) to 64");
    }
    if media.worker_fill_percent > 100 {
        errors.push(file, "media.worker_fill_percent", "must be 0 (always the least loaded worker) to 100 (per cent of a core)");
    }
    if media.worker_slice_us != 0 && !(100..=100_000).contains(&media.worker_slice_us) {
        errors.push(file, "media.worker_slice_us", "must be 0 (the kernel's default) or 100 to 100000 (µs)");
    }
    if media.codec_batch_ms > 60 {
        errors.push(file, "media.codec_batch_ms", "must be 0 (code on arrival) to 60 (ms)");
    }
    validate_worker_cpus(file, media, errors);
    if media.realtime_priority > 99 {
        errors.push(file, "media.realtime_priority", "must be 0 (normal scheduling) to 99 (SCHED_FIFO priority)");
    }
    if !(1..=120).contains(&media.ice_failed_timeout_secs) {
        errors.push(file, "media.ice_failed_timeout_secs", "must be 1-120 s");
    }
    if media.opus_complexity > 10 {
        errors.push(file, "media.opus_complexity", "must be 0-10");
    }
    if main.http.jwt_secret.as_ref().is_some_and(|s| s.0.len() < 32) {
        errors.push(file, "http.jwt_secret", "must be at least 32 characters (HS256 key)");
    }
    for (i, token) in main.http.api_tokens.iter().enumerate() {
        if token.0.len() < 16 {
            errors.push(file, format!("http.api_tokens[{i}]"), "must be at least 16 characters");
        }
    }
    advertise::validate(file, main, errors);
    if main.general.log_level.parse::<tracing_subscriber::filter::EnvFilter>().is_err() {
        errors.push(file, "general.log_level", "not a valid tracing filter (e.g. \"info\" or \"sipbridge=debug\")");
    }
}

/// One worker a listed CPU: `workers` left at 0 takes the list's length; a CPU number is one a
/// `cpu_set_t` can hold, and no CPU is listed twice (two pinned workers would share it).
fn validate_worker_cpus(file: &Path, media: &MediaConfig, errors: &mut ConfigErrors) {
    let cpus = &media.worker_cpus;
    if cpus.is_empty() {
        return;
    }
    if media.workers != 0 && media.workers != cpus.len() {
        errors.push(file, "media.worker_cpus", "must list one CPU per worker (or leave media.workers at 0 to run one worker on each listed CPU)");
    }
    if cpus.iter().any(|&cpu| cpu >= MAX_CPU) {
        errors.push(file, "media.worker_cpus", "CPU numbers must be 0 to 1023");
    }
    if (1..cpus.len()).any(|i| cpus[..i].contains(&cpus[i])) {
        errors.push(file, "media.worker_cpus", "lists a CPU twice");
    }
}

/// CPU_SETSIZE: the CPUs a `cpu_set_t` can name.
const MAX_CPU: usize = 1_024;
