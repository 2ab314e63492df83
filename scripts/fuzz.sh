#!/usr/bin/env bash
# Fuzz sipbridge's parsers with cargo-fuzz / libFuzzer, one target after another. Not part of CI
# (CI builds the targets and replays fuzz/seeds and fuzz/regressions through `cargo test`).
# Usage: scripts/fuzz.sh  (or `make fuzz FUZZ_SECONDS=600`)
#   FUZZ_SECONDS    seconds per target (default 600)
#   FUZZ_TARGETS    space-separated targets (default: every one in fuzz/Cargo.toml)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_BUILD_JOBS cargo build jobs (default 1, keeps a core free)
#   FUZZ_NICE       nice level for build and run (default 10)
#   Extra arguments go to libFuzzer, e.g. scripts/fuzz.sh -runs=1000
# Prints one summary line per target (executions, new corpus files, result) and exits non-zero
# if any target crashed; crash inputs are in fuzz/artifacts/<target>/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

seconds="${FUZZ_SECONDS:-600}"
sanitizer="${FUZZ_SANITIZER:-address}"
nice_level="${FUZZ_NICE:-10}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/sipbridge-fuzz-target}"
export CARGO_BUILD_JOBS="${FUZZ_BUILD_JOBS:-1}"
# cargo-fuzz passes -Z flags (sanitizers, coverage options); allow them on the stable toolchain.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    nice -n "$nice_level" cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^sipbridge-fuzz$')}"
# Every target at once (cargo fuzz build takes at most one name); `run` below then builds nothing.
nice -n "$nice_level" cargo fuzz build -s "$sanitizer"
summary=()
failed=0
for target in $targets; do
    # The working corpus (git-ignored) starts from the checked-in seeds and every crash input
    # ever found; what libFuzzer adds stays there for the next run.
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    for dir in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
        [ -d "$dir" ] && cp -f --no-preserve=mode "$dir"/* "$corpus"/ 2>/dev/null || true
    done
    before=$(find "$corpus" -type f | wc -l)
    extra=()
    [ "$target" = sip_message ] && extra+=(-max_len=65535 -dict=fuzz/sip.dict)
    [ "$target" = sip_websocket ] && extra+=(-max_len=8192 -dict=fuzz/sip.dict)
    log="fuzz/artifacts/$target.log"
    mkdir -p fuzz/artifacts
    echo "fuzz: $target for ${seconds}s ($before corpus files)" >&2
    status=0
    nice -n "$nice_level" cargo fuzz run -s "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}" "$@" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    after=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status, see $log and fuzz/artifacts/$target/)"
        failed=1
        grep -m3 -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" >&2 || true
    fi
    summary+=("$(printf '%-16s %12s executions  corpus %d -> %d  %s' "$target" "${runs:-?}" "$before" "$after" "$result")")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
