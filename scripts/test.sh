#!/usr/bin/env bash
# Runs landfall's whole test suite on a fresh Debian 12 machine (as root):
# set-up first (packages, musl target, kernel, build), then formatting and lint
# checks, then every unit, integration and qemu end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export LANDFALL_AGENT_BIN=$PWD/target/x86_64-unknown-linux-musl/release/landfall-agent
export LANDFALL_CACHE=${LANDFALL_CACHE:-$PWD/.cache}

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "test: cargo test"
# The end-to-end tests run the controller binary as users do.
cargo build -p landfall
cargo test --workspace --no-fail-fast -- --test-threads=2
