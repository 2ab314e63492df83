//! tracing setup: human-readable by default, JSON lines on request, without the library warnings
//! known to be harmless.

use crate::config::LogFormat;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// (target prefix, message prefix): warnings from WebRTC libraries (bridged from the `log` crate)
/// that say nothing is wrong. Matched on the message too, so other warnings of the same module,
/// the real ones, still show.
const HARMLESS_WARNINGS: &[(&str, &str)] = &[
    // A DTLS hello extension webrtc-rs does not implement, which TLS says to ignore. Firefox's
    // hello carries many: about 30 lines per call.
    ("rtc_dtls::handshake::", "Unsupported Extension Type"),
    // DTLS-SRTP authenticates by the SDP fingerprint, never by server name.
    ("rtc_dtls::config", "conn.remote_addr is empty"),
    // Trickle ICE: the first connectivity tick comes before the browser's candidates. A call
    // whose candidates never come fails on the ICE timeout and is logged as such.
    ("rtc_ice::agent", "[controlled]: pingAllCandidates called with no candidate pairs"),
    ("rtc_ice::agent", "[controlling]: pingAllCandidates called with no candidate pairs"),
    // SRTP that fails authentication on a browser leg's 5-tuple: one line per forged packet, an
    // easy log flood. The media worker counts each in `sipbridge_webrtc_dropped_total`.
    ("rtc::peer_connection::handler", "SrtpHandler.handle_read got error"),
];

pub fn init(format: LogFormat, level: &str) {
    // RUST_LOG wins so an operator can raise verbosity without editing the config.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let result = match format {
        LogFormat::Text => builder.finish().with(HarmlessWarnings).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).finish().with(HarmlessWarnings).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// Drops the events of `HARMLESS_WARNINGS`. Only events from those targets have their message
/// read, so the rest of the log costs nothing more.
struct HarmlessWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HarmlessWarnings {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != tracing::Level::WARN {
            return true;
        }
        // Events bridged from `log` carry the log record's target in a field, not in metadata.
        let mut fields = Message::default();
        event.record(&mut fields);
        let target = fields.log_target.as_deref().unwrap_or(metadata.target());
        let candidates: Vec<&str> = HARMLESS_WARNINGS.iter().filter(|(t, _)| target.starts_with(t)).map(|(_, m)| *m).collect();
        candidates.is_empty() || !candidates.iter().any(|prefix| fields.message.starts_with(prefix))
    }
}

#[derive(Default)]
struct Message {
    message: String,
    log_target: Option<String>,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "log.target" => self.log_target = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn known_harmless_warnings_are_dropped_and_real_ones_kept() {
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(HarmlessWarnings).with(Count(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rtc_dtls::handshake::handshake_message_client_hello", "Unsupported Extension Type 0 23");
            tracing::warn!(target: "rtc_ice::agent", "[controlled]: pingAllCandidates called with no candidate pairs. Connection is not possible yet.");
            tracing::warn!(target: "rtc::peer_connection::handler", "SrtpHandler.handle_read got error: srtp: failed to verify auth tag");
            // Kept: another warning of the same module, the same text at another level, ours.
            tracing::warn!(target: "rtc_ice::agent", "failed to resolve a candidate");
            tracing::error!(target: "rtc_dtls::handshake::handshake_message_client_hello", "Unsupported Extension Type 0 23");
            tracing::warn!(target: "sipbridge::call", "Unsupported Extension Type, says a careless author");
        });
        assert_eq!(seen.load(Ordering::Relaxed), 3);
    }
}
