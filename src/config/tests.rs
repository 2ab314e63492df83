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
    assert_eq!(config.profiles.len(), 3);
    let kinds: Vec<_> = config.profiles.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProfileKind::Pbx) && kinds.contains(&ProfileKind::Trunk) && kinds.contains(&ProfileKind::Local));
    assert!(config.sip.listen.iter().any(|l| l.transport == ListenTransport::Tls && l.address.port() == 5061));
    assert_eq!(config.http.listen.port(), 8080);
    let summary = config.summary();
    assert!(summary.contains("registers as sipbridge"), "{summary}");
    assert!(!summary.contains("change-me"), "summary must not print secrets: {summary}");
}

#[test]
fn every_error_names_file_key_and_reason() {
    let (_dir, main) = config_dir(
        "[sip]\nt1_ms = 0\nrate_limit_burst = 1\n",
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
    assert!(has("pbx.toml", "host", "needs the peer's host"), "{errors:?}");
    assert!(has("pbx.toml", "username", "required"), "{errors:?}");
    assert!(has("pbx.toml", "password", "required"), "{errors:?}");
    assert!(has("trunk.toml", "trusted_addresses[0]", "open relay"), "{errors:?}");
    assert!(has("trunk.toml", "trusted_addresses[1]", "not an IP"), "{errors:?}");
    assert!(has("typo.toml", "hots", "unknown field"), "{errors:?}");
    assert!(has("capped.toml", "max_calls", "at least 1"), "{errors:?}");
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
