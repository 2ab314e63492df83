# The two commands a newcomer needs are `make run` and `make test`.
# Builds live outside the clone so CI and later runs reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sipbridge-target
CONFIG ?= sipbridge.example.toml
# One directory per `make test` run, emptied when it starts.
TEST_LOGS = $(CARGO_TARGET_DIR)/test-logs

.PHONY: run test fuzz-build bench bench-full soak fuzz fuzz-sip check-config

## Install what is missing, build, and run the gateway with the example config.
run:
	scripts/system-deps.sh run
	cargo build --bin sipbridge
	$(CARGO_TARGET_DIR)/debug/sipbridge --config $(CONFIG)

## Install test peers (sipp, baresip), ensure a PostgreSQL, build every fuzz target, and run every
## test (tests/fuzz_corpus.rs replays the fuzz seeds and crash inputs). Every gateway the tests
## start logs into $(TEST_LOGS); once the suite is done, tests/secrets_in_logs.rs reads all of
## those logs for the tests' passwords, tokens and SDES keys (and fails on none to read).
test: export SIPBRIDGE_TEST_LOGS = $(TEST_LOGS)
test:
	scripts/system-deps.sh test
	cd tests/browser && npm ci --no-audit --no-fund --silent
	$(MAKE) --no-print-directory fuzz-build
	rm -rf "$(TEST_LOGS)" && mkdir -p "$(TEST_LOGS)"
	@eval "export $$(scripts/ensure-postgres.sh)" && echo "using $$DATABASE_URL" && \
		{ cargo test --no-fail-fast -- --test-threads=2; status=$$?; \
		  cargo test --test secrets_in_logs -- --ignored --nocapture || status=1; exit $$status; }

## Benchmarks that print figures (see benches/). The whole-gateway load runs last and writes
## target/bench/REPORT.md; its quick version takes about 4 minutes once built.
bench:
	scripts/system-deps.sh bench
	@eval "export $$(scripts/ensure-postgres.sh)" && cargo bench --bench records
	cargo bench --bench sip_core
	cargo bench --bench media
	cargo bench --bench gateway_load

## The whole-gateway load, ramped until calls fail or packets are lost (about 30 minutes).
bench-full:
	scripts/system-deps.sh bench
	LOAD=full cargo bench --bench gateway_load

## An hour at 100 concurrent calls with churn (calls of 30-120 s, a mix of kinds, both ways) on a
## release build, sampling the gateway every 10 s (tests/soak.rs; `make test` runs 5 minutes of it).
soak:
	scripts/system-deps.sh test
	SOAK_MINUTES=60 SOAK_CALLS=100 SOAK_SHORTEST_SECS=30 SOAK_LONGEST_SECS=120 \
		cargo test --release --test soak -- --nocapture

## Compile every fuzz target, plainly (no sanitizer, no instrumentation, stable toolchain), so
## none can rot: it reuses the test build's dependencies (fuzz/Cargo.toml copies its profile).
fuzz-build:
	cargo build --quiet --manifest-path fuzz/Cargo.toml --bins

## Fuzz every target for FUZZ_SECONDS each (default 600), one after another; not in CI.
## FUZZ_TARGETS="sdp rtp_rtcp" picks some. Installs cargo-fuzz if it is missing.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

## The SIP message target alone (kept for old habits).
fuzz-sip:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS=sip_message scripts/fuzz.sh

check-config:
	cargo run --quiet --bin sipbridge -- check-config --config $(CONFIG)
