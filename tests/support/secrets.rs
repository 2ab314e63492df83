//! The secrets the tests put in gateway configs, profiles and peers, and the shapes of secrets the
//! gateway or the peers make up at run time (SDES keys, JWTs). `tests/secrets_in_logs.rs` looks
//! for every one of them in every gateway log of a `make test` run. Its `the_list_names_every_secret_the_tests_configure`
//! reads the test sources, so a secret added to a test's config without being listed here fails.

use super::{ALICE_PASSWORD, API_TOKEN, BOB_PASSWORD, JWT_SECRET};

/// Each configured secret with where it comes from (failures name the place, not the value).
pub const CONFIGURED: &[(&str, &str)] = &[
    ("http.api_tokens of every test gateway (tests/support)", API_TOKEN),
    ("http.jwt_secret of every test gateway (tests/support)", JWT_SECRET),
    ("alice's password (tests/support, tests/sipp/register_digest.xml)", ALICE_PASSWORD),
    ("bob's password (tests/support)", BOB_PASSWORD),
    ("coturn's shared secret (tests/support/coturn.rs)", super::coturn::TURN_SECRET),
    ("a console admin's password (tests/console.rs)", "console-admin-pass"),
    ("a console viewer's password (tests/console.rs)", "console-viewer-pass"),
    ("the first-start admin's new password (tests/console.rs)", "my-own-console-password"),
    ("the first-start admin's new password (tests/first_run.rs)", "a-password-of-my-own"),
    ("alice's password changed under a connected softphone (tests/browser_phone.rs)", "a-new-password-4242"),
    ("a console admin's password (tests/local_users.rs)", "ops-console-pass"),
    ("a console viewer's password (tests/local_users.rs)", "viewer-console-pass"),
    ("a wrong password tried at login (tests/local_users.rs, tests/sipp/register_wrong_password.xml)", "not-the-password"),
    ("a TURN shared secret (tests/local_users.rs)", "login-reply-turn-secret-1b2c3d"),
    ("a TURN shared secret (tests/browser_client.rs)", "page-test-secret-42"),
    ("TURN shared secrets refused or summarised by check-config (tests/cli.rs)", "s3cr3t-"),
    ("the password of `user add` (tests/cli.rs)", "a long console password"),
    ("a PBX registration password (tests/sipp_scenarios.rs)", "gw-secret"),
    ("a trunk's INVITE password (tests/browser_to_sip.rs, tests/sipp/trunk_challenges_invite.xml)", "trunk-secret"),
    ("an SDES key sent by a test (tests/sdes.rs)", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"),
    ("an SDES key sent by a test (tests/sdes.rs)", "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eXw"),
    ("an SDES key sent by a test (tests/ladder_flood.rs)", "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"),
    ("the example config's passwords (sipbridge.example.toml, sip-profiles/)", "change-me"),
    ("the example config's TURN secret (sipbridge.example.toml)", "the-static-auth-secret"),
    ("the example config's API token (sipbridge.example.toml)", "replace-with-a-long-random-token"),
];

/// Values in the test sources that look like secrets but are too short or too common to search
/// for in logs; each says why it need not be.
pub const NOT_SEARCHED: &[(&str, &str)] = &[
    ("secret", "the example carrier trunk's password (sip-profiles/examples/carrier-trunk.toml): a common word; the trunk is never reached"),
    ("p", "a TURN credential check-config refuses (tests/cli.rs): one letter"),
];

/// The secret-shaped things in one log line: what kind each is. Run-time secrets cannot be listed
/// in advance, so they are found by their shape.
pub fn shapes_in(line: &str) -> Vec<&'static str> {
    static SHAPES: std::sync::OnceLock<Vec<(regex::Regex, &'static str)>> = std::sync::OnceLock::new();
    let shapes = SHAPES.get_or_init(|| {
        [
            // RFC 4568 key params are base64 of 30 (or more) bytes; the ladder's mask is `inline:(masked)`.
            (r"inline:[A-Za-z0-9+/]{20,}", "an SDES key (a=crypto inline:)"),
            (r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.", "a JWT"),
            (r"(?i)bearer\s+[A-Za-z0-9._~+/-]{8,}", "a bearer token"),
            (r#"(?i)\bresponse\s*=\s*"?[0-9a-f]{32}"#, "a digest response"),
        ]
        .into_iter()
        .map(|(pattern, what)| (regex::Regex::new(pattern).expect("pattern"), what))
        .collect()
    });
    shapes.iter().filter(|(pattern, _)| pattern.is_match(line)).map(|(_, what)| *what).collect()
}

/// Every secret in one log line: where each configured one comes from, or the kind of a shape.
pub fn found_in(line: &str) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = CONFIGURED.iter().filter(|(_, value)| line.contains(value)).map(|(name, _)| *name).collect();
    found.extend(shapes_in(line));
    found
}
