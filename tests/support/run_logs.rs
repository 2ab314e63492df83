//! Every gateway log of a test run in one place, so `tests/secrets_in_logs.rs` can read them all
//! once the run is over. `make test` points `SIPBRIDGE_TEST_LOGS` at a directory it empties before
//! the run (under the target directory); each gateway a test starts then writes its log there,
//! named after the test binary, the test and the process. Without the variable (one test run by
//! hand) a log stays in the caller's temporary directory, as before.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming the run's log directory.
pub const RUN_LOGS_ENV: &str = "SIPBRIDGE_TEST_LOGS";

/// Where a gateway (or another sipbridge process) started by a test writes its output: a new
/// file in the run's log directory when there is one, else `fallback_dir/gateway.log`.
pub fn gateway_log_path(fallback_dir: &Path) -> PathBuf {
    let Some(run_dir) = std::env::var_os(RUN_LOGS_ENV).filter(|d| !d.is_empty()) else {
        return fallback_dir.join("gateway.log");
    };
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let binary = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).unwrap_or_default();
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("main").replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    let name = format!("{binary}.{test}.{}-{}.log", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let run_dir = PathBuf::from(run_dir);
    std::fs::create_dir_all(&run_dir).unwrap_or_else(|e| panic!("{RUN_LOGS_ENV}={}: {e}", run_dir.display()));
    run_dir.join(name)
}

/// Keeps output a test captured from a short sipbridge command (check-config, user add) with the
/// run's logs, when there is a run directory.
pub fn keep_output(what: &str, output: &std::process::Output) {
    if std::env::var_os(RUN_LOGS_ENV).filter(|d| !d.is_empty()).is_none() {
        return;
    }
    let path = gateway_log_path(Path::new("."));
    let mut text = format!("# {what}\n").into_bytes();
    text.extend_from_slice(&output.stdout);
    text.extend_from_slice(&output.stderr);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
