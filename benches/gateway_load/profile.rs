//! Where the gateway's time goes: `perf record` on the gateway process during a measured window,
//! summarised as the share of samples per area (crate or subsystem) and the hottest symbols.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Recording {
    child: Child,
    data: PathBuf,
}

/// Starts sampling `pid` for `duration` (software clock: VMs often lack hardware counters).
pub fn record(pid: u32, duration: Duration, out_dir: &Path) -> Result<Recording, String> {
    let data = out_dir.join("gateway.perf.data");
    let child = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &duration.as_secs().max(1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("perf record: {e} (install linux-perf)"))?;
    Ok(Recording { child, data })
}

#[derive(Debug)]
pub struct Summary {
    pub samples: u64,
    /// (area, % of samples), largest first.
    pub areas: Vec<(String, f64)>,
    /// (symbol, % of samples spent in it, self time), largest first.
    pub symbols: Vec<(String, f64)>,
}

/// Which part of the gateway a symbol belongs to, for the summary.
fn area_of(symbol: &str, dso: &str) -> &'static str {
    let areas: [(&str, &'static str); 19] = [
        ("sipbridge::media::srtp", "SRTP (our SIP-side crypto)"),
        ("sipbridge::media", "media engine (relay, codec handlers)"),
        ("sipbridge::webrtc_leg", "browser leg glue"),
        ("sipbridge::sip", "SIP stack"),
        ("sipbridge::store", "call records"),
        ("sipbridge", "other sipbridge"),
        ("rtc_srtp", "webrtc-rs SRTP"),
        ("rtc_dtls", "webrtc-rs DTLS"),
        ("rtc_ice", "webrtc-rs ICE"),
        ("rtc_interceptor", "webrtc-rs interceptors (RTCP reports, NACK)"),
        ("webrtc", "webrtc-rs peer connection"),
        ("rtc", "webrtc-rs core"),
        ("tokio", "tokio and futures (task wake-ups, channels)"),
        ("futures", "tokio and futures (task wake-ups, channels)"),
        ("aes", "AES"),
        ("hashbrown", "Rust collections and allocation"),
        ("alloc::", "Rust collections and allocation"),
        ("core::", "Rust core (formatting, slices)"),
        ("std::", "Rust std"),
    ];
    for (prefix, area) in areas {
        if symbol.contains(prefix) {
            return area;
        }
    }
    if dso.contains("kernel") {
        return "kernel (syscalls, UDP, scheduling)";
    }
    if dso.contains("libc") || symbol.contains("malloc") || symbol.contains("free") {
        return "libc (allocator, memcpy)";
    }
    if dso.contains("libav") || dso.contains("libopus") || dso.contains("libsw") {
        return "codecs (libavcodec, libopus)";
    }
    "other"
}

/// Waits for the recording and summarises it with `perf report`.
pub fn summarise(mut recording: Recording) -> Result<Summary, String> {
    let _ = recording.child.wait();
    let output = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.05", "-i"])
        .arg(&recording.data)
        .output()
        .map_err(|e| format!("perf report: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let samples = text
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| {
            let (number, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
            number.parse::<u64>().ok().map(|n| if unit == "K" { n * 1_000 } else { n })
        })
        .unwrap_or(0);
    let mut areas: Vec<(String, f64)> = Vec::new();
    let mut symbols = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && l.contains('%')) {
        // "    12.34%  sipbridge  [.] sipbridge::media::relay::forward"
        let mut fields = line.split_whitespace();
        let Some(percent) = fields.next().and_then(|p| p.trim_end_matches('%').parse::<f64>().ok()) else { continue };
        let dso = fields.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = fields.collect();
        let symbol = rest.iter().skip_while(|f| f.starts_with('[')).copied().collect::<Vec<_>>().join(" ");
        let area = area_of(&symbol, &dso).to_string();
        match areas.iter_mut().find(|(a, _)| *a == area) {
            Some(entry) => entry.1 += percent,
            None => areas.push((area, percent)),
        }
        symbols.push((shorten(&symbol), percent));
    }
    areas.sort_by(|a, b| b.1.total_cmp(&a.1));
    symbols.sort_by(|a, b| b.1.total_cmp(&a.1));
    symbols.truncate(15);
    let _ = std::fs::remove_file(&recording.data);
    if samples == 0 {
        return Err(format!("perf recorded no samples: {}", String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or_default()));
    }
    Ok(Summary { samples, areas, symbols })
}

/// Drops generic parameters and hashes so a symbol fits a table cell; `<T as Trait>::f` becomes
/// `T::f`, which says whose code it is.
fn shorten(symbol: &str) -> String {
    let symbol = symbol.trim_end_matches(" - -").trim();
    let symbol = match symbol.strip_prefix('<').and_then(|rest| rest.split_once(" as ")) {
        Some((implementor, rest)) => format!("{implementor}{}", rest.split_once(">::").map(|(_, method)| format!("::{method}")).unwrap_or_default()),
        None => symbol.to_string(),
    };
    let mut out = String::new();
    let mut depth = 0;
    for c in symbol.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let out = out.split("::h").next().unwrap_or(&out).to_string();
    if out.chars().count() > 110 { format!("{}…", out.chars().take(110).collect::<String>()) } else { out }
}

#[cfg(test)]
mod tests {
    #[test]
    fn symbols_keep_their_owner() {
        assert_eq!(super::shorten("<tokio::net::UdpSocket as core::future::Future>::poll - -"), "tokio::net::UdpSocket::poll");
        assert_eq!(super::shorten("hashbrown::map::HashMap<K,V,S>::contains_key"), "hashbrown::map::HashMap::contains_key");
    }
}
