# latency-logger — build, test, benchmark, cross-compile.
# `make test` is what CI runs (through .ci/run, which installs what it needs).

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build release test lint unit test-kafka test-cross bench clean cross-setup static cross-arm

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
	  --test probe --test kafka_fake_broker

# Kafka suites against real brokers (Apache Kafka, tansu) started and stopped
# by tests/kafka.sh.
test-kafka:
	bash tests/kafka.sh

# Static ARM binaries run under qemu-user against loopback HTTP/HTTPS.
test-cross:
	bash tests/qemu.sh

test: lint unit test-kafka test-cross

# --- static and cross builds (Docker-free; see README "Install on a router") ---
#   make cross-setup          install cross toolchains, musl, qemu-user (root; idempotent)
#   make static               x86_64-unknown-linux-musl  -> dist/latency-logger-x86_64-unknown-linux-musl
#   make cross-arm            aarch64 + armv7 musl       -> dist/latency-logger-<target>
#   make cross-arm CROSS=1    the same with cross-rs (Docker/Podman), config in cross.toml
CROSS          ?= 0
CROSS_BIN      ?= cross
STATIC_TARGET  := x86_64-unknown-linux-musl
ARM_TARGETS    := aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
DIST_DIR       ?= dist

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

clean:
	$(CARGO) clean
	rm -rf dist
