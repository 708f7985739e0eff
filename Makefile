# Nauti: every entry point a person or CI needs. Each target installs what it uses.
SHELL := /bin/bash
export NAUTI_PEERS_DIR ?= $(HOME)/.cache/nauti-peers
export PATH := $(NAUTI_PEERS_DIR)/bin:$(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all build deps peers test lint fmt-check clippy demo demo-node images bench fuzz crds charts clean

all: build

## Rust toolchain components and the Debian packages the build itself needs.
deps:
	@bash tests/peers/install-rust.sh
	@bash tests/peers/install-debian.sh

## Every real peer the tests and the demo run against (Debian packages, Go builds, OCI images).
peers: deps
	@bash tests/peers/build.sh
	@bash tests/peers/rust-peers.sh
	@bash tests/peers/build-cluster-images.sh

build: deps
	$(CARGO) build --workspace --all-targets

fmt-check: deps
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint: fmt-check clippy

## Regenerates deploy/crds from the types in nauti-api.
crds: deps
	$(CARGO) run -q -p nauti-api --bin crdgen -- deploy/crds

## The Helm charts' checks alone (also part of `test`): lint, schema, dry-run on a real API server.
charts: peers
	NAUTI_REQUIRE_ROOT=1 $(CARGO) test -p nauti-testbed --test charts

## All tests. Root-only tests fail rather than skip here (NAUTI_REQUIRE_ROOT=1).
## Nauti's own images (static release builds) come first: the cluster tests run them.
test: peers lint
	@bash tests/peers/build-nauti-images.sh
	NAUTI_REQUIRE_ROOT=1 $(CARGO) test --workspace --no-fail-fast -- --test-threads=2

## Every image the charts run, as OCI archives in target/images (names and tags from the charts).
images: peers
	@bash tests/peers/make-images.sh

## The seed's demo across clusters: a hub and two members installed with helm (KEEP=1 keeps them).
demo: peers
	@bash tests/demo/clusters.sh

## One node on real peers: two pods with their second NIC on OVN.
demo-node: peers
	@bash tests/demo/demo.sh

bench: peers
	@bash tests/bench/bench.sh

## Every cargo-fuzz target, each for FUZZ_SECONDS (default 60).
fuzz: deps
	@bash tests/fuzz/fuzz.sh

clean:
	$(CARGO) clean
