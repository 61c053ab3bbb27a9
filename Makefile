# latency-logger — build, test, benchmark, cross-compile.
# `make test` is what CI runs (through .ci/run, which installs what it needs).

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build release test lint unit test-kafka test-cross bench clean

all: release

build:
	$(CARGO) build

release:
	$(CARGO) build --release

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Unit and loopback integration tests (HTTP/HTTPS servers started by the tests).
unit:
	$(CARGO) test

test: lint unit

clean:
	$(CARGO) clean
	rm -rf dist
