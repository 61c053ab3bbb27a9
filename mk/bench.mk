# `make bench` — reproducible performance figures (see BENCHMARKS.md).
# Included from the Makefile; also usable alone: `make -f mk/bench.mk bench`.
#
#   make bench-build   release binary + bench programs (examples/), criterion
#                      bench (benches/micro.rs), and an opt-level "z" build of
#                      the binary and of examples/probe_cost in its own target dir
#   make bench-run     the measurements only (~5-6 min on 2 cores), appended
#                      to BENCHMARKS.md
#   make bench         both
#
# Knobs: BENCH_PROBES, BENCH_CURL_PER_PROCESS, BENCH_ROUNDS,
# BENCH_STEADY_SECONDS, BENCH_SCHED_SECONDS, BENCH_OUT (see bench/run.sh).

CARGO ?= cargo
SHELL := /bin/bash
BENCH_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BENCH_OPTZ_TARGET_DIR ?= $(BENCH_TARGET_DIR)/optz

.PHONY: bench bench-build bench-run

BENCH_RUN = CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) BENCH_OPTZ_TARGET_DIR=$(BENCH_OPTZ_TARGET_DIR) \
	bash bench/run.sh

bench: bench-build
	$(BENCH_RUN)

bench-build:
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release --bin latency-logger --examples
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) bench --bench micro --no-run
	CARGO_TARGET_DIR=$(BENCH_OPTZ_TARGET_DIR) CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
		$(CARGO) build --release --bin latency-logger --example probe_cost

bench-run:
	$(BENCH_RUN)
