//! Replays every checked-in fuzz input through the fuzz targets' bodies (`sipbridge::fuzzing`):
//! the seeds (`fuzz/seeds/<target>/`) and every crash ever found (`fuzz/regressions/<target>/`).
//! No sanitizer build is needed; a panic in any body fails this test and names the file.

use sipbridge::fuzzing::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_binary_has_a_body_and_the_other_way_round() {
    let mut binaries: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    binaries.sort();
    let mut bodies: Vec<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    bodies.sort();
    assert_eq!(binaries, bodies, "fuzz/fuzz_targets/*.rs and sipbridge::fuzzing::TARGETS must list the same targets");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &bodies {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
    }
}

#[test]
fn the_seed_and_regression_corpus_replays_without_a_panic() {
    let mut failures = Vec::new();
    let mut total = 0;
    for target in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target.name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{} is empty: every target needs seeds", target.name);
        let regressions = files(&fuzz_dir().join("regressions").join(target.name));
        let inputs: Vec<PathBuf> = seeds.into_iter().chain(regressions).collect();
        // Each file alone on fresh state (how a crash input reproduces), then all of them through
        // one long-lived state (how the fuzzer runs them).
        let mut shared = (target.new_runner)();
        for path in &inputs {
            let data = std::fs::read(path).expect("read a corpus file");
            let mut fresh = (target.new_runner)();
            if catch_unwind(AssertUnwindSafe(|| fresh(&data))).is_err() {
                failures.push(format!("{} (fresh state)", path.display()));
            }
            if catch_unwind(AssertUnwindSafe(|| shared(&data))).is_err() {
                failures.push(format!("{} (after the files before it)", path.display()));
            }
        }
        println!("{}: {} inputs replayed", target.name, inputs.len());
        total += inputs.len();
    }
    println!("{total} fuzz inputs replayed");
    assert!(failures.is_empty(), "fuzz inputs that panic:\n{}", failures.join("\n"));
}

#[test]
fn the_stun_seeds_reach_the_browser_leg_not_only_the_demultiplexer() {
    let mut harness = sipbridge::fuzzing::StunHarness::new();
    for path in files(&fuzz_dir().join("seeds").join("stun_demux")) {
        sipbridge::fuzzing::stun_demux(&mut harness, &std::fs::read(path).expect("read a seed"));
    }
    assert!(harness.reached_leg() >= 2, "only {} seeds reached the leg", harness.reached_leg());
}

#[test]
fn the_websocket_seeds_reach_the_sip_core_through_handshake_and_framing() {
    let mut harness = sipbridge::fuzzing::WebSocketHarness::new();
    for path in files(&fuzz_dir().join("seeds").join("sip_websocket")) {
        let before = harness.reached_core();
        sipbridge::fuzzing::sip_websocket(&mut harness, &std::fs::read(&path).expect("read a seed"));
        println!("{}: {} messages into the core", path.display(), harness.reached_core() - before);
    }
    // The REGISTER after an upgrade, the upgraded REGISTER and INVITE, the reassembled fragments, ...
    assert!(harness.reached_core() >= 8, "only {} messages reached the core", harness.reached_core());
}
