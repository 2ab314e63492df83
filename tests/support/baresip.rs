#![allow(dead_code)]

//! baresip as a test phone: registered as bob, playing a sine tone, recording what it hears, with
//! a UDP console for commands during the call; and the Goertzel check of its recordings.

use super::support::{free_port, free_port_pair, Gateway, BOB_PASSWORD};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// baresip registered as bob, playing a sine tone and recording what it hears.
pub struct Phone {
    dir: tempfile::TempDir,
    child: Child,
    /// baresip's `cons` module listens here for menu commands (e.g. `/sndcode 5`).
    console: u16,
    /// Where baresip takes SIP (UDP), for a profile that calls it directly.
    pub sip_port: u16,
}

impl Phone {
    /// `codecs` in baresip's account syntax; `commands` run at start (e.g. a dial).
    pub fn start(gateway: &Gateway, codecs: &str, tone_hz: u32, commands: &[String], run_secs: u32) -> Phone {
        Phone::start_with(gateway, codecs, "", tone_hz, commands, run_secs)
    }

    /// Like [`Phone::start`], with more account parameters, e.g. `;mediaenc=srtp-mand` (which
    /// loads baresip's SRTP module).
    pub fn start_with(gateway: &Gateway, codecs: &str, account_params: &str, tone_hz: u32, commands: &[String], run_secs: u32) -> Phone {
        Phone::start_on(free_port_pair(), gateway, codecs, account_params, tone_hz, commands, run_secs)
    }

    /// Like [`Phone::start_with`], taking SIP on `port` (e.g. one a profile already names).
    pub fn start_on(port: u16, gateway: &Gateway, codecs: &str, account_params: &str, tone_hz: u32, commands: &[String], run_secs: u32) -> Phone {
        assert!(Command::new("baresip").arg("-h").output().is_ok(), "baresip is not installed: `make test` installs it");
        let dir = tempfile::tempdir().expect("tempdir");
        let console = free_port();
        let recordings = dir.path().join("recordings");
        std::fs::create_dir(&recordings).expect("mkdir");
        std::fs::write(
            dir.path().join("config"),
            format!(
                "module_path /usr/lib/baresip/modules\nsip_listen 127.0.0.1:{port}\n\
                 audio_source ausine,{tone_hz}\nausrc_srate 48000\nausrc_channels 2\n\
                 audio_player alsa,null\nsnd_path {}\n\
                 module g711.so\nmodule g722.so\nmodule opus.so\nmodule ausine.so\nmodule alsa.so\nmodule sndfile.so\n\
                 module_app account.so\nmodule_app menu.so\nmodule_tmp uuid.so\nmodule cons.so\ncons_listen 127.0.0.1:{console}\n{}",
                recordings.display(),
                modules_for(account_params)
            ),
        )
        .expect("baresip config");
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:bob@example.com>;auth_pass={BOB_PASSWORD};outbound=\"sip:127.0.0.1:{};transport=udp\"{};answermode=auto;audio_codecs={codecs}{account_params}\n",
                gateway.sip_port,
                // `;regint=0` in `account_params` keeps baresip from registering.
                if account_params.contains(";regint=") { "" } else { ";regint=600" }
            ),
        )
        .expect("baresip accounts");
        let mut command = Command::new("baresip");
        command.arg("-f").arg(dir.path()).args(["-t", &run_secs.to_string()]);
        for c in commands {
            command.args(["-e", c]);
        }
        let log = std::fs::File::create(dir.path().join("baresip.log")).expect("log");
        let child = command.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).spawn().expect("start baresip");
        Phone { dir, child, console, sip_port: port }
    }

    /// baresip as a WebRTC SIP client: ICE (`medianat=ice`) and DTLS-SRTP under
    /// UDP/TLS/RTP/SAVPF (`mediaenc=dtls_srtp`), with rtcp-mux.
    pub fn start_webrtc(gateway: &Gateway, codecs: &str, tone_hz: u32, commands: &[String], run_secs: u32) -> Phone {
        Phone::start_with(gateway, codecs, WEBRTC, tone_hz, commands, run_secs)
    }

    pub fn wait_registered(&self, gateway: &Gateway) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let status = gateway.status();
            if status["bindings"].as_array().is_some_and(|b| b.iter().any(|b| b["aor"] == "sip:bob@example.com")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("baresip did not register:\n{}\n{}", self.log(), gateway.log());
    }

    /// Types a menu command into baresip's UDP console, as a user at its keyboard would.
    pub fn command(&self, command: &str) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.send_to(format!("{command}\n").as_bytes(), ("127.0.0.1", self.console)).expect("send to baresip's console");
    }

    /// Waits until baresip has recorded `secs` of what it received (8 kHz, 16-bit), so a test
    /// can act once audio flows.
    pub fn wait_received_audio(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let recorded = || {
            let files = std::fs::read_dir(self.dir.path().join("recordings")).into_iter().flatten().flatten();
            files.filter(|e| e.file_name().to_string_lossy().ends_with("-dec.wav")).filter_map(|e| e.metadata().ok()).map(|m| m.len()).max().unwrap_or(0)
        };
        while recorded() < 44 + secs * 16_000 {
            assert!(Instant::now() < deadline, "baresip recorded no {secs} s of audio:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    pub fn finish(mut self) -> (String, Vec<PathBuf>) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let recordings = std::fs::read_dir(self.dir.path().join("recordings")).into_iter().flatten().flatten().map(|e| e.path()).collect();
        let log = self.log();
        // Keep the directory alive until the caller has read the files.
        std::mem::forget(self.dir);
        (log, recordings)
    }
}

/// Account parameters of a WebRTC SIP client: ICE and DTLS-SRTP.
pub const WEBRTC: &str = ";mediaenc=dtls_srtp;medianat=ice";

/// The modules and settings the account's media parameters need.
fn modules_for(account_params: &str) -> String {
    let mut extra = String::new();
    if account_params.contains("mediaenc=srtp") {
        extra.push_str("module srtp.so\n");
    }
    if account_params.contains("mediaenc=dtls_srtp") {
        // WebRTC peers (the gateway's WebRTC leg among them) require rtcp-mux.
        extra.push_str("module dtls_srtp.so\nrtcp_mux yes\n");
    }
    if account_params.contains("medianat=ice") {
        extra.push_str("module ice.so\n");
    }
    extra
}

/// Mono samples and their rate from a 16-bit PCM WAV (the first channel if several).
pub fn read_wav(path: &Path) -> (Vec<f64>, u32) {
    let bytes = std::fs::read(path).expect("read wav");
    let (mut rate, mut channels, mut at) = (8000u32, 1usize, 12usize);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        if id == b"fmt " && body.len() >= 8 {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]])).max(1);
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
        }
        if id == b"data" {
            let samples = body.chunks_exact(2 * channels).map(|frame| f64::from(i16::from_le_bytes([frame[0], frame[1]])) / 32768.0).collect();
            return (samples, rate);
        }
        at += 8 + size + (size & 1);
    }
    (Vec::new(), rate)
}

/// Power at `hz` over the loudest second of `samples` (Goertzel), relative to the whole
/// second's power: near 0.5 for a pure sine at `hz`, near 0 when `hz` is absent.
pub fn tone_share(samples: &[f64], rate: u32, hz: f64) -> f64 {
    let window = rate as usize;
    let (mut best, mut best_energy) = (0, 0.0);
    for start in (0..samples.len().saturating_sub(window)).step_by(window / 4) {
        let energy: f64 = samples[start..start + window].iter().map(|s| s * s).sum();
        if energy > best_energy {
            (best, best_energy) = (start, energy);
        }
    }
    if best_energy == 0.0 {
        return 0.0;
    }
    let chunk = &samples[best..best + window];
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in chunk {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    power / (best_energy * window as f64 / 2.0)
}

/// What baresip heard: the recording of the decoded far-end audio (the longest, as a re-INVITE
/// starts another).
pub fn received_recording(recordings: &[PathBuf]) -> PathBuf {
    recordings
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .cloned()
        .unwrap_or_else(|| panic!("no -dec.wav among {recordings:?}"))
}

/// A 1 kHz tone from baresip reached the browser (`peakHz` of its report) and the browser's
/// 440 Hz reached baresip (its recording).
pub fn assert_tones(result: &serde_json::Value, phone: &(String, Vec<PathBuf>), log: &str) {
    assert_eq!(result["ok"], true, "{result:#}\nbaresip:\n{}\ngateway:\n{log}", phone.0);
    let heard = result["peakHz"].as_f64().unwrap_or(0.0);
    println!("the browser heard baresip's tone at {heard:.1} Hz");
    assert!((heard - 1000.0).abs() <= 20.0, "1 kHz from baresip reached the browser: {result:#}");
    let (samples, rate) = read_wav(&received_recording(&phone.1));
    let (at_440, at_1000) = (tone_share(&samples, rate, 440.0), tone_share(&samples, rate, 1000.0));
    println!("baresip's recording ({} s at {rate} Hz): 440 Hz share {at_440:.3}, 1 kHz share {at_1000:.3}", samples.len() as u32 / rate.max(1));
    assert!(at_440 > 0.2 && at_440 > 10.0 * at_1000, "440 Hz from the browser reached baresip\nbaresip:\n{}", phone.0);
}
