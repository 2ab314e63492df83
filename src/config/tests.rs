use super::*;
use std::fs;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write test file");
    path
}

fn config_dir(main: &str, profiles: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("sip-profiles")).expect("mkdir");
    for (name, text) in profiles {
        write(&dir.path().join("sip-profiles"), name, text);
    }
    let main = write(dir.path(), "gw.toml", main);
    (dir, main)
}

#[test]
fn example_config_and_profiles_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipbridge.example.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("example config invalid:\n{e}"));
    // Only the local domain: a first run sends nothing to hosts that do not exist.
    assert_eq!(config.profiles.iter().map(|p| p.kind).collect::<Vec<_>>(), [ProfileKind::Local]);
    assert!(config.sip.listen.iter().any(|l| l.transport == ListenTransport::Tls && l.address.port() == 5061));
    assert_eq!(config.http.listen.port(), 8080);
    let summary = config.summary();
    assert!(!summary.contains("change-me"), "summary must not print secrets: {summary}");
}

/// The trunk and PBX in sip-profiles/examples/ are valid as shipped, next to the local domain.
#[test]
fn example_trunk_and_pbx_profiles_are_valid() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples: Vec<(String, String)> = ["local.toml", "examples/carrier-trunk.toml", "examples/office-pbx.toml"]
        .iter()
        .map(|name| (name.trim_start_matches("examples/").to_string(), fs::read_to_string(repo.join("sip-profiles").join(name)).expect("example profile")))
        .collect();
    let files: Vec<(&str, &str)> = examples.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let (_dir, main) = config_dir("", &files);
    let config = Config::load(&main).unwrap_or_else(|e| panic!("example profiles invalid:\n{e}"));
    let kinds: Vec<_> = config.profiles.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProfileKind::Pbx) && kinds.contains(&ProfileKind::Trunk) && kinds.contains(&ProfileKind::Local));
    let summary = config.summary();
    assert!(summary.contains("registers as sipbridge"), "{summary}");
    assert!(!summary.contains("change-me"), "summary must not print secrets: {summary}");
}

#[test]
fn every_error_names_file_key_and_reason() {
    let (_dir, main) = config_dir(
        "[sip]\nt1_ms = 0\nrate_limit_burst = 1\nwebsocket_ping_interval_secs = 40\nwebsocket_idle_timeout_secs = 40\n[media]\nrealtime_priority = 120\nworker_fill_percent = 101\nworker_slice_us = 50\ncodec_batch_ms = 61\n",
        &[
            ("pbx.toml", "kind = \"pbx\"\nregister = true\n"),
            ("trunk.toml", "kind = \"trunk\"\nhost = \"192.0.2.1\"\ntrusted_addresses = [\"0.0.0.0/0\", \"nonsense\"]\n"),
            ("typo.toml", "kind = \"trunk\"\nhots = \"x\"\n"),
            ("capped.toml", "kind = \"trunk\"\nhost = \"192.0.2.2\"\nmax_calls = 0\n"),
        ],
    );
    let errors = Config::load(&main).expect_err("config must be refused").0;
    let has = |file: &str, key: &str, reason: &str| {
        errors.iter().any(|e| e.file.ends_with(file) && e.key.contains(key) && e.reason.contains(reason))
    };
    assert!(has("gw.toml", "sip.t1_ms", "between"), "{errors:?}");
    assert!(has("gw.toml", "sip.rate_limit_burst", "at least"), "{errors:?}");
    assert!(has("gw.toml", "sip.websocket_idle_timeout_secs", "longer than websocket_ping_interval_secs"), "{errors:?}");
    assert!(has("pbx.toml", "host", "needs the peer's host"), "{errors:?}");
    assert!(has("pbx.toml", "username", "required"), "{errors:?}");
    assert!(has("pbx.toml", "password", "required"), "{errors:?}");
    assert!(has("trunk.toml", "trusted_addresses[0]", "open relay"), "{errors:?}");
    assert!(has("trunk.toml", "trusted_addresses[1]", "not an IP"), "{errors:?}");
    assert!(has("typo.toml", "hots", "unknown field"), "{errors:?}");
    assert!(has("capped.toml", "max_calls", "at least 1"), "{errors:?}");
    assert!(has("gw.toml", "media.realtime_priority", "to 99"), "{errors:?}");
    assert!(has("gw.toml", "media.worker_fill_percent", "to 100"), "{errors:?}");
    assert!(has("gw.toml", "media.worker_slice_us", "100 to 100000"), "{errors:?}");
    assert!(has("gw.toml", "media.codec_batch_ms", "0 (code on arrival) to 60"), "{errors:?}");
}

#[test]
fn worker_cpus_name_one_cpu_per_worker_each_once() {
    let refused = |media: &str| {
        let (_dir, main) = config_dir(&format!("[media]\n{media}"), &[]);
        Config::load(&main).err().map(|e| e.0.iter().filter(|e| e.key == "media.worker_cpus").map(|e| e.reason.clone()).collect::<Vec<_>>()).unwrap_or_default()
    };
    assert!(refused("workers = 3\nworker_cpus = [0, 1]\n").iter().any(|r| r.contains("one CPU per worker")));
    assert!(refused("worker_cpus = [1, 1]\n").iter().any(|r| r.contains("twice")));
    assert!(refused("worker_cpus = [1024]\n").iter().any(|r| r.contains("0 to 1023")));
    assert!(refused("worker_cpus = [1, 0]\n").is_empty(), "any order, workers left at 0");
    assert!(refused("workers = 2\nworker_cpus = [1, 0]\n").is_empty(), "as many as the workers");
}

#[test]
fn bad_toml_syntax_reports_line() {
    let (_dir, main) = config_dir("[sip\nt1_ms = 5\n", &[]);
    let errors = Config::load(&main).expect_err("syntax error").0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].key.starts_with("line 1"), "{:?}", errors[0]);
}

#[test]
fn trusted_source_matching_handles_mapped_ipv6() {
    let (_dir, main) = config_dir(
        "",
        &[("t.toml", "kind = \"trunk\"\nhost = \"192.0.2.1\"\ntrusted_addresses = [\"192.0.2.0/24\"]\n")],
    );
    let config = Config::load(&main).expect("valid");
    let trunk = &config.profiles[0];
    assert!(trunk.is_trusted_source("192.0.2.77".parse().expect("ip")));
    assert!(trunk.is_trusted_source("::ffff:192.0.2.77".parse().expect("ip")));
    assert!(!trunk.is_trusted_source("192.0.3.1".parse().expect("ip")));
}

#[test]
fn secrets_are_not_in_debug_output() {
    let (_dir, main) = config_dir(
        "",
        &[(
            "l.toml",
            "kind = \"local\"\ndomain = \"d\"\n[[users]]\nusername = \"a\"\npassword = \"hunter2\"\n",
        )],
    );
    let config = Config::load(&main).expect("valid");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn local_users_may_be_granted_existing_trunk_profiles() {
    let local = "kind = \"local\"\ndomain = \"d\"\n\
                 [[users]]\nusername = \"a\"\npassword = \"pw\"\nprofiles = [\"carrier\"]\n\
                 [[users]]\nusername = \"b\"\npassword = \"pw\"\nprofiles = [\"nope\", \"l\"]\n";
    let trunk = "kind = \"trunk\"\nhost = \"192.0.2.1\"\ntrusted_addresses = [\"192.0.2.1\"]\n";
    let (_dir, main) = config_dir("", &[("l.toml", local), ("carrier.toml", trunk)]);
    let errors = Config::load(&main).expect_err("unknown grants are refused").0;
    let keys: Vec<_> = errors.iter().map(|e| format!("{}: {}", e.key, e.reason)).collect();
    assert_eq!(keys, ["users[1].profiles[0]: no profile is named `nope`", "users[1].profiles[1]: must name a trunk or pbx profile"]);
    let local = "kind = \"local\"\ndomain = \"d\"\n[[users]]\nusername = \"a\"\npassword = \"pw\"\nprofiles = [\"carrier\"]\n";
    let (_dir, main) = config_dir("", &[("l.toml", local), ("carrier.toml", trunk)]);
    let config = Config::load(&main).expect("valid");
    let users = &config.profiles.iter().find(|p| p.kind == ProfileKind::Local).expect("local").users;
    assert_eq!(users[0].profiles, ["carrier"]);
}

#[test]
fn console_users_may_be_granted_existing_trunk_profiles() {
    let local = "kind = \"local\"\ndomain = \"d\"\n";
    let trunk = "kind = \"trunk\"\nhost = \"192.0.2.1\"\ntrusted_addresses = [\"192.0.2.1\"]\n";
    let user = |name: &str, grants: &str| format!("[[http.console_users]]\nusername = \"{name}\"\npassword_hash = \"$argon2id$x\"\nrole = \"admin\"\nprofiles = {grants}\n");
    let main = format!("{}{}", user("ops", "[\"carrier\"]"), user("bad", "[\"nope\", \"l\"]"));
    let (_dir, path) = config_dir(&main, &[("l.toml", local), ("carrier.toml", trunk)]);
    let errors = Config::load(&path).expect_err("unknown grants are refused").0;
    let keys: Vec<_> = errors.iter().map(|e| format!("{}: {}", e.key, e.reason)).collect();
    assert_eq!(keys, ["http.console_users[1].profiles[0]: no profile is named `nope`", "http.console_users[1].profiles[1]: must name a trunk or pbx profile"]);
    let (_dir, path) = config_dir(&user("ops", "[\"carrier\"]"), &[("l.toml", local), ("carrier.toml", trunk)]);
    let config = Config::load(&path).expect("valid");
    assert_eq!(config.http.console_users[0].profiles, ["carrier"]);
}

#[test]
fn ice_servers_are_validated_with_the_rest_and_never_printed() {
    let good = "[[http.ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n\
                [[http.ice_servers]]\nurls = [\"turn:127.0.0.1:3478?transport=udp\"]\nshared_secret = \"coturn-hush\"\n";
    let (_dir, main) = config_dir(good, &[]);
    let config = Config::load(&main).expect("valid");
    assert_eq!(config.http.ice_servers.len(), 2);
    let shown = format!("{config:?}{}", config.summary());
    assert!(!shown.contains("coturn-hush"), "{shown}");
    assert!(config.summary().contains("per-login credentials"), "{}", config.summary());
    let bad = "[sip]\nt1_ms = 0\n[[http.ice_servers]]\nurls = [\"turn:127.0.0.1\"]\n";
    let (_dir, main) = config_dir(bad, &[]);
    let errors = Config::load(&main).expect_err("refused").0;
    assert!(errors.iter().any(|e| e.key == "sip.t1_ms"), "{errors:?}");
    assert!(errors.iter().any(|e| e.key == "http.ice_servers[0]" && e.reason.contains("shared_secret")), "{errors:?}");
}
