//! The shared WebRTC port under hostile traffic: while a browser's echo call runs through a
//! worker's one port, a stranger sends garbage, DTLS, SRTP-looking packets and STUN naming an
//! unknown ufrag to that same port. The call's audio must be unaffected, nothing may panic, and
//! every kind of drop must be counted in /metrics.

mod support;

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port_pair, http_get, Gateway, GatewayOptions, API_TOKEN, JWT_SECRET};

fn token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: Some(now), profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

fn stun_with_unknown_ufrag() -> Vec<u8> {
    let username = b"nosuchufrag:stranger";
    let mut body = vec![0x00, 0x06, 0x00, username.len() as u8];
    body.extend_from_slice(username);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut message = vec![0x00, 0x01, 0x00, body.len() as u8, 0x21, 0x12, 0xA4, 0x42];
    message.extend_from_slice(&[9; 12]);
    message.extend_from_slice(&body);
    message
}

fn hostile_datagrams() -> Vec<Vec<u8>> {
    let mut dtls_hello = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01];
    dtls_hello.resize(80, 0x33);
    let mut srtp = vec![0x80, 111, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    srtp.resize(120, 0x5a);
    vec![vec![0xff; 60], dtls_hello, srtp, stun_with_unknown_ufrag(), vec![], vec![0x00, 0x01]]
}

/// The echo page's report, checked: the call worked and its 1 kHz tone came back unchanged.
fn echo_result(stdout: &[u8], gateway: &Gateway) -> serde_json::Value {
    let result = support::calls::last_json_line(&String::from_utf8_lossy(stdout));
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    support::calls::assert_tone(&result, "peakHz", 1000.0, "the echo keeps its tone while strangers send");
    result
}

fn metric(text: &str, reason: &str) -> u64 {
    let prefix = format!("sipbridge_webrtc_dropped_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn strangers_on_the_shared_port_neither_reach_nor_disturb_a_call() {
    let webrtc_port = free_port_pair();
    let gateway = Gateway::start(GatewayOptions { extra_media: format!("workers = 1\nwebrtc_port = {webrtc_port}\n"), ..Default::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, rounds) = (Arc::clone(&stop), Arc::clone(&rounds));
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let started = Instant::now();
            // Bounded: at most 60 s or 3,000 rounds, whichever comes first.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) && rounds.load(Ordering::Relaxed) < 3_000 {
                for datagram in hostile_datagrams() {
                    let _ = socket.send_to(&datagram, ("127.0.0.1", webrtc_port));
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node").arg(&script).arg(format!("http://127.0.0.1:{}", gateway.http_port)).arg(token()).arg("").output().expect("run node");
    stop.store(true, Ordering::Relaxed);
    attacker.join().expect("attacker thread");
    let result = echo_result(&output.stdout, &gateway);
    let remote = result["selectedPair"]["remoteAddress"].as_str().unwrap_or_default();
    assert!(remote.ends_with(&format!(":{webrtc_port}")), "the call's media used the worker's shared port {webrtc_port}: {result:#}");
    let sent = rounds.load(Ordering::Relaxed);
    assert!(sent >= 10, "the stranger sent throughout the call ({sent} rounds)");
    let (status, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    assert_eq!(status, 200, "{metrics}");
    // Garbage, DTLS and SRTP from a 5-tuple no leg uses, the empty and the short datagram.
    assert!(metric(&metrics, "unknown_flow") >= 4 * sent, "{metrics}");
    assert!(metric(&metrics, "unknown_ufrag") >= sent, "{metrics}");
    // The call's own media all left: the kernel refused none of the worker's sends.
    assert!(metrics.lines().any(|l| l == "sipbridge_media_sends_refused_total 0"), "{metrics}");
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
    let (health, _) = http_get(gateway.http_port, "/healthz", None).expect("healthz");
    assert_eq!(health, 200);
}

/// An IPv4/UDP datagram from `from` to `to`, for a raw socket (the kernel fills in the IP
/// checksum, total length and id; a UDP checksum of 0 means none, which IPv4 allows).
fn spoofed(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&udp_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// The browser's end of the call's 5-tuple, from the gateway's "browser media connected" line.
fn browser_address(log: &str) -> Option<SocketAddrV4> {
    let line = log.lines().find(|l| l.contains("browser media connected"))?;
    let start = line.find("browser=Some(")? + "browser=Some(".len();
    let end = start + line[start..].find(')')?;
    line[start..end].parse().ok()
}

#[test]
fn forged_datagrams_on_the_calls_own_flow_are_refused_by_its_leg_and_leave_its_audio_alone() {
    let webrtc_port = free_port_pair();
    let gateway = Gateway::start(GatewayOptions { extra_media: format!("workers = 1\nwebrtc_port = {webrtc_port}\n"), ..Default::default() });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let mut page = Command::new("node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token())
        .arg("")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    gateway.wait_for_log("browser media connected");
    let browser = browser_address(&gateway.log()).expect("the gateway logs the browser's address");
    let gateway_end = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, webrtc_port);
    // Root can forge the browser's source address on loopback: the datagrams then arrive on the
    // call's own 5-tuple, past the demultiplexer, at the leg itself.
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::from(255))).expect("raw socket (tests run as root)");
    let mut wrong_key_srtp = vec![0x80, 111, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    wrong_key_srtp.resize(120, 0x5a);
    let mut dtls_stranger = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0x40, 0x01];
    dtls_stranger.resize(80, 0x33);
    let forged = [wrong_key_srtp, dtls_stranger, vec![0xff; 40]];
    let started = Instant::now();
    let mut rounds = 0u64;
    // Until the leg closes: what arrives after that is an unknown flow's, counted elsewhere.
    while !gateway.log().contains("browser leg closed") && page.try_wait().expect("page").is_none() && started.elapsed() < Duration::from_secs(60) {
        for payload in &forged {
            raw.send_to(&spoofed(browser, gateway_end, payload), &SocketAddr::V4(gateway_end).into()).expect("forge");
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = page.wait_with_output().expect("page output");
    echo_result(&output.stdout, &gateway);
    assert!(rounds >= 10, "forged throughout the call ({rounds} rounds)");
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    // SRTP under a wrong key and garbage are refused and counted; a forged DTLS record reaches the
    // leg's established association, which discards it unanswered, and is counted too (the tone
    // above shows the call did not notice). The last round may cross the leg's closing.
    assert!(metric(&metrics, "rejected_by_leg") >= 3 * (rounds - 1), "every forged SRTP, DTLS and garbage datagram was refused by the leg and counted ({rounds} rounds): {metrics}");
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
}

#[test]
fn media_workers_ask_the_fair_scheduler_for_a_short_slice() {
    let gateway = Gateway::start(GatewayOptions { extra_media: "workers = 2\nworker_slice_us = 200\n".into(), ..Default::default() });
    for worker in 0..2 {
        gateway.wait_for_log(&format!("media worker asked for a short time slice worker={worker}"));
    }
    let tasks = std::fs::read_dir(format!("/proc/{}/task", gateway.pid())).expect("the gateway's threads");
    let slices: Vec<(String, Option<u64>)> = tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?.trim().to_string();
            let sched = std::fs::read_to_string(path.join("sched")).ok()?;
            let slice = sched.lines().find_map(|l| l.strip_prefix("se.slice")).and_then(|v| v.trim().trim_start_matches(':').trim().parse().ok());
            Some((name, slice))
        })
        .collect();
    let workers: Vec<_> = slices.iter().filter(|(name, _)| name.starts_with("media-")).collect();
    assert_eq!(workers.len(), 2, "{slices:?}");
    assert!(workers.iter().all(|(_, slice)| *slice == Some(200_000)), "each worker runs with a 200 µs slice: {slices:?}");
    assert!(slices.iter().filter(|(name, _)| !name.starts_with("media-")).all(|(_, slice)| *slice != Some(200_000)), "the other threads keep the kernel's slice: {slices:?}");
    assert!(thread_scheduling(gateway.pid()).iter().all(|(_, policy, _)| *policy == libc::SCHED_OTHER as u32));
}

#[test]
fn listed_worker_cpus_pin_one_worker_to_each_in_order() {
    // Two workers on a 2-CPU machine would be the default count too: the list's length of 2 is
    // shown by a second gateway listing one CPU.
    let gateway = Gateway::start(GatewayOptions { extra_media: "worker_cpus = [1, 0]\n".into(), ..Default::default() });
    for (worker, cpu) in [(0, 1), (1, 0)] {
        gateway.wait_for_log(&format!("media worker pinned to its CPU worker={worker} cpu={cpu}"));
    }
    let single = Gateway::start(GatewayOptions { extra_media: "worker_cpus = [1]\n".into(), ..Default::default() });
    single.wait_for_log("media worker pinned to its CPU worker=0 cpu=1");
    let single_workers = thread_scheduling(single.pid()).into_iter().filter(|(name, ..)| name.starts_with("media-")).count();
    assert_eq!(single_workers, 1, "workers left at 0 run one worker per listed CPU");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", gateway.pid())).expect("the gateway's threads");
    let mut allowed: Vec<(String, String)> = tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?.trim().to_string();
            let status = std::fs::read_to_string(path.join("status")).ok()?;
            Some((name, status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?.trim().to_string()))
        })
        .collect();
    allowed.sort();
    let workers: Vec<_> = allowed.iter().filter(|(name, _)| name.starts_with("media-")).collect();
    assert_eq!(workers, [&("media-0".to_string(), "1".to_string()), &("media-1".to_string(), "0".to_string())], "two workers, the list's length, each on its CPU: {allowed:?}");
    // The gateway inherits this process's CPUs; its other threads keep all of them.
    let ours = std::fs::read_to_string("/proc/self/status").expect("status").lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list").trim().to_string();
    assert!(allowed.iter().filter(|(name, _)| !name.starts_with("media-")).all(|(_, cpus)| *cpus == ours), "the other threads stay unpinned ({ours}): {allowed:?}");
}

/// (thread name, SCHED_* policy, real-time priority) of every thread of `pid`.
fn thread_scheduling(pid: u32) -> Vec<(String, u32, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?.trim().to_string();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Fields after the parenthesised name start at field 3; rt_priority is field 40 and
            // policy field 41 (proc(5)).
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some((name, fields.get(38)?.parse().ok()?, fields.get(37)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn media_workers_run_at_the_configured_real_time_priority_and_nothing_else_does() {
    let gateway = Gateway::start(GatewayOptions { extra_media: "workers = 2\nrealtime_priority = 20\n".into(), ..Default::default() });
    // Each worker takes its priority as its thread starts: wait for both to say so.
    for worker in 0..2 {
        gateway.wait_for_log(&format!("media worker at real-time priority (SCHED_FIFO) worker={worker}"));
    }
    let threads = thread_scheduling(gateway.pid());
    let workers: Vec<_> = threads.iter().filter(|(name, ..)| name.starts_with("media-")).collect();
    assert_eq!(workers.len(), 2, "{threads:?}");
    for (name, policy, priority) in &workers {
        assert_eq!((*policy, *priority), (libc::SCHED_FIFO as u32, 20), "{name} runs under SCHED_FIFO at 20");
    }
    assert!(threads.iter().filter(|(name, ..)| !name.starts_with("media-")).all(|(_, policy, _)| *policy == libc::SCHED_OTHER as u32), "signalling stays under the normal scheduler: {threads:?}");
}
