#!/usr/bin/env bash
# Fuzz the SIP message path (parser, stream framer, SipCore) with cargo-fuzz / libFuzzer.
# Not part of CI. Usage: scripts/fuzz-sip.sh   (or `make fuzz-sip`)
#   FUZZ_SECONDS   how long to fuzz (default 600)
#   FUZZ_SANITIZER address (default) or none
#   FUZZ_BUILD_JOBS cargo build jobs (default 1, keeps a core free)
#   FUZZ_NICE      nice level for build and run (default 10)
#   Extra arguments are passed to libFuzzer, e.g. scripts/fuzz-sip.sh -runs=1000
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

seconds="${FUZZ_SECONDS:-600}"
sanitizer="${FUZZ_SANITIZER:-address}"
nice_level="${FUZZ_NICE:-10}"
testdata="${SIPBRIDGE_TESTDATA:-$repo/../shared/testdata}"
corpus="fuzz/corpus/sip_message"

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/sipbridge-fuzz-target}"
export CARGO_BUILD_JOBS="${FUZZ_BUILD_JOBS:-1}"
# cargo-fuzz passes -Z flags (sanitizers, coverage options); allow them on the stable toolchain.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-sip: installing cargo-fuzz" >&2
    nice -n "$nice_level" cargo install cargo-fuzz --locked
fi

# Seed corpus: copies (not symlinks) of the shared SIP test data. Existing corpus entries that
# libFuzzer added in earlier runs are kept.
mkdir -p "$corpus"
seeds=0
for dir in \
    "$testdata/sip/rfc4475" \
    "$testdata/fuzz-seeds/fuzz-sip/fuzz-sip_seed_corpus" \
    "$testdata/fuzz-seeds/fuzz-sip-dialog/fuzz-sip-dialog_seed_corpus" \
    "$testdata/fuzz-seeds/fuzz-uri/fuzz-uri_seed_corpus"; do
    if [ ! -d "$dir" ]; then
        echo "fuzz-sip: warning: seed directory $dir not found" >&2
        continue
    fi
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        case "$f" in *.tsv | *.md) continue ;; esac
        cp -f --no-preserve=mode "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
        seeds=$((seeds + 1))
    done
done
echo "fuzz-sip: $seeds seed files copied into $corpus ($(find "$corpus" -type f | wc -l) corpus entries)" >&2

nice -n "$nice_level" cargo fuzz run -s "$sanitizer" sip_message "$corpus" -- \
    -len_control=0 -max_total_time="$seconds" \
    -max_len=65535 \
    -dict=fuzz/sip.dict \
    -print_final_stats=1 \
    "$@"
