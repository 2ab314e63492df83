//! No secret reaches a log. `make test` runs the whole suite with every gateway logging into one
//! directory of the run (`SIPBRIDGE_TEST_LOGS`, see tests/support/run_logs.rs), then runs the
//! ignored test below on its own: it reads every line of every log of the run and looks for each
//! secret the tests configure (tests/support/secrets.rs) and for anything shaped like an SDES key,
//! a JWT, a bearer token or a digest answer. It fails if it finds one, and also if there was no
//! log to read, so a broken hand-over cannot pass as a clean run.
//!
//! The other tests here run with the suite: the scanner finds what it must, and the list names
//! every secret in the tests' configs.

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use support::run_logs::RUN_LOGS_ENV;
use support::secrets::{found_in, CONFIGURED, NOT_SEARCHED};

/// One secret found: the file, the line number and what it is (never the value).
#[derive(Debug)]
struct Finding {
    file: PathBuf,
    line: usize,
    what: &'static str,
}

#[derive(Debug, Default)]
struct Scan {
    files: usize,
    lines: usize,
    bytes: u64,
    findings: Vec<Finding>,
}

fn scan(dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    for path in files {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        scan.files += 1;
        let mut reader = std::io::BufReader::new(file);
        let mut raw = Vec::new();
        let mut number = 0;
        // Lines are read as bytes: a log may quote network input that is not UTF-8.
        while reader.read_until(b'\n', &mut raw).unwrap_or_else(|e| panic!("{}: {e}", path.display())) > 0 {
            number += 1;
            scan.bytes += raw.len() as u64;
            let line = String::from_utf8_lossy(&raw);
            scan.findings.extend(found_in(&line).into_iter().map(|what| Finding { file: path.clone(), line: number, what }));
            raw.clear();
        }
        scan.lines += number;
    }
    scan
}

#[test]
#[ignore = "`make test` runs it after the whole suite: it scans the logs that run left"]
fn no_log_of_the_test_run_holds_a_secret() {
    let dir = std::env::var_os(RUN_LOGS_ENV).filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{RUN_LOGS_ENV} is not set: `make test` sets it for the whole run and then runs this scan")
    });
    assert!(dir.is_dir(), "{RUN_LOGS_ENV}={} is not a directory: no test wrote a log there", dir.display());
    let scan = scan(&dir);
    println!("scanned {} logs, {} lines, {} bytes in {} for {} configured secrets and 4 shapes", scan.files, scan.lines, scan.bytes, dir.display(), CONFIGURED.len());
    assert!(scan.files > 0 && scan.lines > 0, "no log was scanned in {}: the run's gateways did not log there", dir.display());
    let report: Vec<String> = scan.findings.iter().take(50).map(|f| format!("{}:{}: {}", f.file.display(), f.line, f.what)).collect();
    assert!(scan.findings.is_empty(), "{} secret(s) in the logs of the run (first 50):\n{}", scan.findings.len(), report.join("\n"));
}

#[test]
fn the_scanner_finds_every_configured_secret_and_every_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = "2026-12-02T10:00:00Z INFO sipbridge: call answered call_id=1 a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:(masked)\n\
                 Authorization: Digest username=\"alice\", response=\"(masked)\"\nWWW-Authenticate: Bearer\n";
    std::fs::write(dir.path().join("clean.log"), clean).expect("write");
    let clean_scan = scan(dir.path());
    assert_eq!((clean_scan.files, clean_scan.lines), (1, 3));
    assert!(clean_scan.findings.is_empty(), "masked values are no finding: {:?}", clean_scan.findings);

    let mut planted = String::new();
    for (_, value) in CONFIGURED {
        planted.push_str(&format!("INFO something said {value} here\n"));
    }
    let token = sipbridge::signaling::jwt::sign(&sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: 1, nbf: None, iat: None, profiles: vec![] }, b"k");
    planted.push_str("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\n");
    planted.push_str(&format!("login token={token}\n"));
    planted.push_str("authorization: bearer some-api-token-123\n");
    planted.push_str("Authorization: Digest username=\"a\", response=\"6629fae49393a05397450978507c4ef1\"\n");
    // Not UTF-8, with a secret after the bad bytes.
    planted.push_str("\u{fffd}");
    let mut bytes = planted.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe raw bytes then wonderland\n");
    std::fs::write(dir.path().join("leaky.log"), bytes).expect("write");
    let found = scan(dir.path());
    assert_eq!(found.files, 2);
    let leaky: Vec<&Finding> = found.findings.iter().filter(|f| f.file.ends_with("leaky.log")).collect();
    for (line, (name, _)) in CONFIGURED.iter().enumerate() {
        assert!(leaky.iter().any(|f| f.line == line + 1 && f.what == *name), "{name} on line {}: {leaky:?}", line + 1);
    }
    for shape in ["an SDES key (a=crypto inline:)", "a JWT", "a bearer token", "a digest response"] {
        assert!(leaky.iter().any(|f| f.what == shape), "{shape}: {leaky:?}");
    }
    assert!(leaky.iter().any(|f| f.line == CONFIGURED.len() + 5 && f.what.starts_with("alice's password")), "after bytes that are not UTF-8: {leaky:?}");
}

/// Literal values given to password, secret, credential and token keys (and password hashes'
/// inputs) in the test sources and the shipped configs; format placeholders are not literals.
fn configured_literals() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assignments = regex::Regex::new(
        r#"(?x)
        (?:password|secret|credential|api_tokens)\s*=\s*\[?\s*\\?"([^"\\{}]+)\\?"    # TOML and XML, also inside Rust strings
        | (?:password|auth_pass)=([^\s;\]"{}]+)                                      # sipp [authentication], baresip accounts
        | hash_password\("([^"{}]+)"\)                                                              # console users
        | const\ [A-Z_]*(?:PASSWORD|SECRET|TOKEN|KEY)[A-Z_]*:\ &str\ =\ "([^"]+)"                   # Rust constants
        "#,
    )
    .expect("pattern");
    let mut sources = Vec::new();
    for dir in ["tests", "tests/support", "tests/sipp", "sip-profiles"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("read dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs" || e == "xml" || e == "toml") {
                sources.push(path);
            }
        }
    }
    sources.push(root.join("sipbridge.example.toml"));
    let mut literals = Vec::new();
    for path in sources {
        let text = std::fs::read_to_string(&path).expect("read source");
        for captures in assignments.captures_iter(&text) {
            let value = captures.iter().skip(1).flatten().next().map(|m| m.as_str()).unwrap_or_default();
            if !value.is_empty() {
                literals.push((path.strip_prefix(root).unwrap_or(&path).display().to_string(), value.to_string()));
            }
        }
    }
    literals
}

#[test]
fn the_list_names_every_secret_the_tests_configure() {
    let literals = configured_literals();
    assert!(literals.len() >= 15, "the source reader finds the tests' secrets: {literals:?}");
    let unlisted: Vec<&(String, String)> = literals
        .iter()
        .filter(|(_, value)| !CONFIGURED.iter().any(|(_, secret)| value.contains(secret)) && !NOT_SEARCHED.iter().any(|(v, _)| v == value))
        .collect();
    assert!(unlisted.is_empty(), "secrets in the tests' configs that tests/support/secrets.rs does not list: {unlisted:?}");
}
