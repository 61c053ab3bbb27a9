# latency-logger — build, test, benchmark, cross-compile.
# `make test` is what CI runs (.ci/run); it installs what it needs first.

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build release test lint unit test-kafka test-cross bench bench-build bench-run bench-musl clean cross-setup static cross-arm
.PHONY: test-deps test-packages deb ipk dist fuzz fuzz-build fuzz-cmin

all: release

build:
	$(CARGO) build

release:
	$(CARGO) build --release

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Unit and loopback integration tests (HTTP/HTTPS servers started by the
# tests); the Kafka suites run in test-kafka, with their brokers.
unit:
	$(CARGO) test --lib --bins --test bad_input --test e2e --test pipeline \
	  --test probe --test unattended --test kafka_fake_broker --test fuzz_replay

# Kafka suites against real brokers (Apache Kafka, tansu) started and stopped
# by tests/kafka.sh.
test-kafka:
	bash tests/kafka.sh

# Static ARM binaries run under qemu-user against loopback HTTP/HTTPS.
test-cross:
	bash tests/qemu.sh

# First the same idempotent installs as .ci/run (seconds when all is in place),
# so that `make test` works on its own on a fresh Debian machine. The static
# release builds that test-cross and test-packages need (three targets, LTO:
# the longest builds) start at once in the background at nice 10, in their
# own target dir, and use the CPU that the debug builds' serial phases and the
# Kafka suites' waits leave idle; then those two run on the finished binaries.
test: test-deps
	@echo "make test: static builds in the background (nice 10), log: $(DIST_DIR)/static-build.log"
	@mkdir -p $(DIST_DIR); CARGO_TARGET_DIR=$(STATIC_TARGET_DIR) setsid nice -n 10 bash .ci/cross-build.sh $(STATIC_TARGET) $(ARM_TARGETS) \
	    >$(DIST_DIR)/static-build.log 2>&1 & bg=$$!; \
	trap 'kill -- -'$$bg' 2>/dev/null' EXIT INT TERM; \
	$(MAKE) lint unit test-kafka || exit 1; \
	echo "make test: waiting for the static builds"; \
	if ! wait $$bg; then tail -n 40 $(DIST_DIR)/static-build.log; exit 1; fi; \
	trap - EXIT INT TERM; \
	grep '^cross-build: .*path,' $(DIST_DIR)/static-build.log; \
	$(MAKE) test-cross test-packages

# Cross toolchains, musl, qemu-user (.ci/cross-setup.sh); Python venv, Kafka
# jars, tansu, packaging tools (.ci/test-deps.sh).
test-deps:
	bash .ci/cross-setup.sh
	bash .ci/test-deps.sh

# The .deb and .ipk packages taken apart, and the packaged binary run.
test-packages:
	bash tests/packages.sh

# --- static and cross builds (Docker-free; see README "Install", docs/operations.md) ---
#   make cross-setup          install cross toolchains, musl, qemu-user (root; idempotent)
#   make static               x86_64-unknown-linux-musl  -> dist/latency-logger-x86_64-unknown-linux-musl
#   make cross-arm            aarch64 + armv7 musl       -> dist/latency-logger-<target>
#   make cross-arm CROSS=1    the same with cross-rs (Docker/Podman), config in cross.toml
CROSS          ?= 0
CROSS_BIN      ?= cross
STATIC_TARGET  := x86_64-unknown-linux-musl
ARM_TARGETS    := aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
DIST_DIR       ?= dist
# Static builds have their own target dir: cargo locks a target dir for a
# whole build, and `make test` runs them beside the debug builds.
STATIC_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/static
static cross-arm deb ipk dist test-cross test-packages: export CARGO_TARGET_DIR := $(STATIC_TARGET_DIR)

cross-setup:
	bash .ci/cross-setup.sh

ifeq ($(CROSS),1)
# cross-rs only reads Cross.toml or $$CROSS_CONFIG: point it at cross.toml.
define cross_rs_build
	set -e; for t in $(1); do \
	  CROSS_CONFIG=cross.toml $(CROSS_BIN) build --release --target $$t; \
	  mkdir -p $(DIST_DIR); \
	  cp -f "$${CARGO_TARGET_DIR:-target}/$$t/release/latency-logger" $(DIST_DIR)/latency-logger-$$t; \
	  ls -l $(DIST_DIR)/latency-logger-$$t; \
	done
endef
static:
	$(call cross_rs_build,$(STATIC_TARGET))
cross-arm:
	$(call cross_rs_build,$(ARM_TARGETS))
else
static:
	bash .ci/cross-build.sh $(STATIC_TARGET)
cross-arm:
	bash .ci/cross-build.sh $(ARM_TARGETS)
endif

# --- release packages (packaging/build.sh; README "Install", docs/operations.md) ---
#   make deb    dist/latency-logger_<version>-1_{amd64,arm64,armhf}.deb
#   make ipk    dist/latency-logger_<version>-1_<OpenWrt arch>.ipk (aarch64 and armv7 names)
#   make dist   the static binaries, all packages and dist/SHA256SUMS
# Each builds the static binaries first (cargo no-ops when up to date); run
# `make cross-setup` once before. The version comes from Cargo.toml.
deb: static cross-arm
	bash packaging/build.sh deb

ipk: cross-arm
	bash packaging/build.sh ipk

dist: static cross-arm
	bash packaging/build.sh deb ipk sums

# --- benchmarks: BENCHMARKS.md's current table updated, the run added to docs/benchmarks-history.md (see tests/bench/HEADER.md) ---
#   make bench-build   release binary, bench programs, criterion bench, and a
#                      build with opt-level 3 for every crate (size/speed comparison)
#   make bench-run     the measurements only (~11-12 min on 2 cores; part 5 starts a local Kafka broker)
#   make bench         both
#   make bench-musl    only the shipped static musl binary next to the glibc build
#                      (CPU, minor faults, syscalls, RSS per probe; tests/bench/musl.py)
# Knobs: BENCH_PROBES, BENCH_CURL_PER_PROCESS, BENCH_ROUNDS,
# BENCH_STEADY_SECONDS, BENCH_SCHED_SECONDS, BENCH_OUT, BENCH_HISTORY (see tests/bench/run.sh).
BENCH_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BENCH_ALL3_TARGET_DIR ?= $(BENCH_TARGET_DIR)/all3
BENCH_RUN = CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) BENCH_ALL3_TARGET_DIR=$(BENCH_ALL3_TARGET_DIR) \
	bash tests/bench/run.sh

bench: bench-build
	$(BENCH_RUN)

bench-build:
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release --bin latency-logger --examples
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) bench --bench micro --no-run
	CARGO_TARGET_DIR=$(BENCH_ALL3_TARGET_DIR) $(CARGO) build --release --bin latency-logger --example probe_cost \
		--config 'profile.release.opt-level=3' --config 'profile.release.package."*".opt-level=3'
	@if command -v musl-gcc >/dev/null; then \
	  CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) bash .ci/cross-build.sh $(STATIC_TARGET); \
	else echo "bench-build: musl-gcc missing (make cross-setup): no static musl build, part 7 will be skipped"; fi

bench-run:
	$(BENCH_RUN)

# The static musl binary users run, next to the glibc release build (same run).
BENCH_MUSL_BIN ?= $(DIST_DIR)/latency-logger-$(STATIC_TARGET)
bench-musl:
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release --bin latency-logger --example bench_server
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) bash .ci/cross-build.sh $(STATIC_TARGET)
	python3 tests/bench/musl.py --server $(BENCH_TARGET_DIR)/release/examples/bench_server \
	  glibc=$(BENCH_TARGET_DIR)/release/latency-logger musl=$(BENCH_MUSL_BIN)

# --- fuzzing (fuzz/README.md; nightly + cargo-fuzz, not needed by `make test`,
# which replays the saved inputs on stable: tests/fuzz_replay.rs) ---
#   make fuzz        each target for FUZZ_SECONDS (default 60) at nice 19;
#                    new inputs go to fuzz/corpus/<t>, crashes to fuzz/artifacts/<t>
#   make fuzz-cmin   minimizes each fuzz/corpus/<t> before a commit
#   make fuzz FUZZ_TARGETS=url FUZZ_SECONDS=600
FUZZ_TARGETS ?= x509 targets url registry kafka_response spool
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB  ?= 1024
FUZZ_CARGO   ?= cargo +nightly

fuzz-build:
	nice -n 10 $(FUZZ_CARGO) fuzz build

fuzz: fuzz-build
	@test -d fuzz/seeds/x509 || python3 fuzz/seeds/make_seeds.py
	set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  nice -n 19 $(FUZZ_CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1; \
	done

fuzz-cmin: fuzz-build
	set -e; for t in $(FUZZ_TARGETS); do nice -n 19 $(FUZZ_CARGO) fuzz cmin $$t fuzz/corpus/$$t; done

clean:
	$(CARGO) clean
	rm -rf dist
