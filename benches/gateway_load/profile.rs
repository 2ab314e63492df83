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
    /// (binary or library, % of samples), largest first: every sample counted, so a library
    /// without symbols (Debian's libopus) shows whole here.
    pub binaries: Vec<(String, f64)>,
}

/// Which part of the gateway a symbol belongs to, for the summary.
fn area_of(symbol: &str, dso: &str) -> &'static str {
    // The first owner whose prefix the symbol contains wins, so the narrower prefix comes first.
    let areas: [(&str, &'static str); 31] = [
        ("sipbridge::media::worker", "media workers (epoll loop, demux, packet paths)"),
        ("sipbridge::media::srtp", "SRTP (SIP-side SDES)"),
        ("sipbridge::media::codec", "media engine: codec handlers"),
        ("sipbridge::media", "media engine (session, relay, RTCP, latching)"),
        ("sipbridge::webrtc_leg", "browser legs (rtc connection glue)"),
        ("sipbridge::sip", "SIP stack"),
        ("sipbridge::store", "call records"),
        ("sipbridge", "other sipbridge"),
        ("rtc_srtp::", "rtc SRTP"),
        ("rtc_dtls::", "rtc DTLS"),
        ("rtc_ice::", "rtc ICE and STUN"),
        ("rtc_stun::", "rtc ICE and STUN"),
        ("rtc_turn::", "rtc ICE and STUN"),
        ("rtc_interceptor::", "rtc interceptors (RTCP reports, NACK)"),
        ("rtc_rtp::", "rtc RTP and RTCP packets"),
        ("rtc_rtcp::", "rtc RTP and RTCP packets"),
        ("rtc_sctp::", "rtc peer connection"),
        ("rtc_shared::", "rtc peer connection"),
        ("rtc::", "rtc peer connection"),
        ("mio::", "mio (epoll)"),
        ("tokio", "tokio and futures (task wake-ups, channels)"),
        ("futures", "tokio and futures (task wake-ups, channels)"),
        ("aes::", "AES and HMAC"),
        ("ctr::", "AES and HMAC"),
        ("sha1::", "AES and HMAC"),
        ("hmac::", "AES and HMAC"),
        ("hashbrown", "Rust collections and allocation"),
        ("alloc::", "Rust collections and allocation"),
        ("core::", "Rust core (formatting, slices)"),
        ("std::net", "Rust std networking"),
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
    if dso.contains("libssl") || dso.contains("libcrypto") {
        return "AES and HMAC";
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
    // `--percent-limit` leaves out symbols under 0.05 % each; a library without symbols
    // (Debian's libopus) is thousands of such addresses, so the remainder is shown, not lost.
    let listed: f64 = areas.iter().map(|(_, p)| p).sum();
    if listed < 99.5 {
        areas.push(("not attributed (symbols under 0.05 % each)".to_string(), 100.0 - listed));
    }
    areas.sort_by(|a, b| b.1.total_cmp(&a.1));
    symbols.sort_by(|a, b| b.1.total_cmp(&a.1));
    symbols.truncate(15);
    let binaries = by_binary(&recording.data);
    let _ = std::fs::remove_file(&recording.data);
    if samples == 0 {
        return Err(format!("perf recorded no samples: {}", String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or_default()));
    }
    Ok(Summary { samples, areas, symbols, binaries })
}

/// Self time per binary or library ("67.72%  libopus.so.0.8.0"), largest first.
fn by_binary(data: &Path) -> Vec<(String, f64)> {
    let Ok(output) = Command::new("perf").args(["report", "--stdio", "--no-children", "--sort", "dso", "-g", "none", "-i"]).arg(data).output() else { return Vec::new() };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut binaries: Vec<(String, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let percent = fields.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            Some((fields.next()?.to_string(), percent))
        })
        .filter(|(_, percent)| *percent >= 0.1)
        .collect();
    binaries.sort_by(|a, b| b.1.total_cmp(&a.1));
    binaries
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

    #[test]
    fn areas_name_the_new_media_plane() {
        assert_eq!(super::area_of("sipbridge::media::worker::Worker::turn", "sipbridge"), "media workers (epoll loop, demux, packet paths)");
        assert_eq!(super::area_of("<rtc_srtp::context::Context>::encrypt_rtp", "sipbridge"), "rtc SRTP");
        assert_eq!(super::area_of("rtc::peer_connection::RTCPeerConnection::poll_write", "sipbridge"), "rtc peer connection");
        assert_eq!(super::area_of("mio::poll::Poll::poll", "sipbridge"), "mio (epoll)");
        assert_eq!(super::area_of("sipbridge::media::rtcp::Reports::on_packet", "sipbridge"), "media engine (session, relay, RTCP, latching)");
        assert_eq!(super::area_of("__sys_sendto", "[kernel.kallsyms]"), "kernel (syscalls, UDP, scheduling)");
    }
}
