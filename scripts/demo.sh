#!/usr/bin/env bash
# The main job on a local default, the README's first command: does its whole
# set-up on a fresh Debian 12 machine (as root: packages, musl target, the
# Debian kernel, the static agent, the example's binaries), builds landfall,
# then runs
#
#   landfall install --flake ./examples/office#office --vm --yes
#
# against a throwaway local qemu rescue VM. Extra arguments go to landfall
# (e.g. --keep-vm, --vm-memory 512, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p landfall
export LANDFALL_AGENT_BIN=${LANDFALL_AGENT_BIN:-$PWD/target/x86_64-unknown-linux-musl/release/landfall-agent}
# Debian's Nix as root without build users: no sandbox, no substituters (offline).
export NIX_CONFIG=${NIX_CONFIG:-$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters ='}
exec target/release/landfall install --flake ./examples/office#office --vm --yes "$@"
