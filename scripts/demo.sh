#!/usr/bin/env bash
# The main job on a local default: landfall against a throwaway qemu VM.
# Does its whole set-up first (packages, musl target, kernel, build) on a fresh
# Debian 12 machine (as root). Pass --keep to keep the VM's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export LANDFALL_AGENT_BIN=$PWD/target/x86_64-unknown-linux-musl/release/landfall-agent
export LANDFALL_BIN=$PWD/target/release/landfall
export LANDFALL_CACHE=${LANDFALL_CACHE:-$PWD/.cache}
export NIX_CONFIG=${NIX_CONFIG:-$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters ='}
cargo run --release -q -p landfall-tests --bin landfall-demo -- "$@"
