//! The soak (benches/gateway_load/soak.rs): one gateway kept at a number of concurrent calls with
//! churn and a mix of call kinds (passthrough and transcoded, DTMF, hold and resume, both ways),
//! sampled every 10 s. Fails on any failed call, loss beyond
//! 0.01 %, RSS growth over 5 MB after the warm-up, more open fds idle after than idle before, a
//! record count different from the calls made, or a record left in progress.
//!
//! `make test` runs 5 minutes at 40 calls of 20-60 s: the CI machine has 2 cores for the gateway,
//! the load tool and their debug builds; 40 calls (a fifth of them transcoded) leave it headroom,
//! where 100 would leave none. `make soak` runs an hour at 100 calls of 30-120 s on a release
//! build. SOAK_MINUTES, SOAK_CALLS, SOAK_SHORTEST_SECS and SOAK_LONGEST_SECS change the run.

#[path = "../benches/gateway_load/main.rs"]
#[allow(dead_code)]
mod gateway_load;

use gateway_load::soak::{self, SoakPlan};
use std::time::Duration;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn soak_with_churn_loses_nothing_and_grows_nothing() {
    let minutes = env_or("SOAK_MINUTES", 5);
    let plan = SoakPlan {
        duration: Duration::from_secs(minutes * 60),
        concurrency: env_or("SOAK_CALLS", 40) as usize,
        shortest_call: Duration::from_secs(env_or("SOAK_SHORTEST_SECS", 20)),
        longest_call: Duration::from_secs(env_or("SOAK_LONGEST_SECS", 60)),
        // A third of the run, at most 10 minutes: every slot has churned a few times by then.
        warm_up: Duration::from_secs((minutes * 60 / 3).min(600)),
        sample_every: Duration::from_secs(10),
    };
    assert!(plan.shortest_call >= Duration::from_secs(15), "hold at 6 s and resume at 12 s after the answer need calls of 15 s or more");
    crate::figures!("soak: {plan:?}");
    let report = soak::run(&plan);
    let (before, after) = (report.idle_before.expect("idle reading before"), report.idle_after.expect("idle reading after"));
    let growth = report.rss_growth_kib(&plan);
    let peak = report.samples.iter().map(|s| s.active_calls).max().unwrap_or(0);
    crate::figures!(
        "soak figures: {} calls ({:?}), {} failed, peak {peak} up; lost {} of {} to browsers and {} of {} to SIP ({:.4} %); mid-call DTMF/hold/resume {}/{} confirmed; \
         RSS {} KiB idle before, {} KiB idle after, {growth:+} KiB under load after the warm-up; fds {} -> {}; threads {} -> {}; {} records, {} in progress",
        report.calls,
        report.by_kind,
        report.failed,
        report.to_browser.lost,
        report.to_browser.received + report.to_browser.lost,
        report.to_sip.lost,
        report.to_sip.received + report.to_sip.lost,
        report.lost_fraction() * 100.0,
        report.requests_confirmed,
        report.requests_sent,
        before.rss_kib,
        after.rss_kib,
        before.fds,
        after.fds,
        before.threads,
        after.threads,
        report.records,
        report.records_in_progress,
    );
    for (kind, lost, expected) in &report.loss_by_kind {
        crate::figures!("soak loss, {kind}: {lost} of {expected}");
    }
    assert!(report.calls > plan.concurrency, "calls churned: {} calls", report.calls);
    assert!(peak as usize >= plan.concurrency * 9 / 10, "the gateway held about {} calls at once (peak {peak})", plan.concurrency);
    assert_eq!(report.failed, 0, "no call failed: {:#?}", report.failures);
    assert_eq!(report.requests_confirmed, report.requests_sent, "every DTMF, hold and resume was confirmed");
    assert!(report.lost_fraction() <= 0.0001, "loss {:.4} % (limit 0.01 %)", report.lost_fraction() * 100.0);
    assert!(growth <= 5 * 1024, "RSS grew {growth} KiB under load after the warm-up (limit 5 MiB): {:#?}", report.samples);
    assert!(after.fds <= before.fds, "open fds idle: {} before, {} after", before.fds, after.fds);
    assert_eq!(report.records, report.calls as u64, "one record per call made");
    assert_eq!(report.records_in_progress, 0, "no record left in progress");
}
