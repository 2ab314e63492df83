//! Runs a script of tests/browser in either browser its launcher (tests/browser/launch.mjs) knows:
//! Debian's Chromium, or Debian's Firefox ESR over WebDriver BiDi. A missing browser fails the
//! test (`make test` installs both); it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    /// The value of SIPBRIDGE_TEST_BROWSER, and the artifacts' folder name.
    pub fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::Firefox => "firefox",
        }
    }

    fn executable(self) -> &'static str {
        match self {
            Browser::Chromium => "/usr/bin/chromium",
            Browser::Firefox => "/usr/bin/firefox-esr",
        }
    }
}

/// What a script printed: its report (the last JSON line of stdout) and its stderr.
pub struct ScriptRun {
    pub report: serde_json::Value,
    pub stderr: String,
}

/// Runs `node tests/browser/SCRIPT ARGS...` in `browser`, with `env` added, and waits for it.
pub fn run_script(script: &str, browser: Browser, args: &[&str], env: &[(&str, &str)]) -> ScriptRun {
    assert!(Path::new(browser.executable()).exists(), "{} is not installed: `make test` installs it", browser.executable());
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script))
        .args(args)
        .env("SIPBRIDGE_TEST_BROWSER", browser.name())
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    ScriptRun {
        report: super::calls::last_json_line(&String::from_utf8_lossy(&output.stdout)),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `$CARGO_TARGET_DIR/test-artifacts/WHAT/BROWSER`: where a browser test leaves its screenshots.
pub fn artifacts_dir(what: &str, browser: Browser) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("test-artifacts").join(what).join(browser.name())
}

/// Firefox's preferences for the tests, from tests/browser/firefox-prefs.json (which launch.mjs
/// reads too): the quiet start, plus with `media` the fake microphone (a sine of `tone_hz`),
/// permissions and loopback ICE. Values are JSON, which is also how user.js writes them.
pub fn firefox_prefs(media: bool, tone_hz: Option<u32>) -> Vec<(String, serde_json::Value)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/firefox-prefs.json");
    let text = std::fs::read_to_string(&path).expect("tests/browser/firefox-prefs.json");
    let all: serde_json::Value = serde_json::from_str(&text).expect("firefox-prefs.json is JSON");
    let groups: &[&str] = if media { &["quiet", "media"] } else { &["quiet"] };
    let mut prefs: Vec<(String, serde_json::Value)> =
        groups.iter().flat_map(|group| all[group].as_object().cloned().unwrap_or_default()).collect();
    if let Some(hz) = tone_hz {
        prefs.retain(|(name, _)| name != "media.navigator.audio.fake_frequency");
        prefs.push(("media.navigator.audio.fake_frequency".into(), hz.into()));
    }
    prefs
}
