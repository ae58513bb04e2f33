#!/usr/bin/env bash
# Benchmark: luksFormat on a 256 MiB machine. Boots the e2e_luks_lvm VM (the
# Debian kernel, 256 MiB, TCG unless KVM works), where the static agent's
# `dm luks-format` and `cryptsetup luksFormat --type luks2` (its defaults)
# each format the same virtio disk under `/usr/bin/time -v`; prints wall
# time, peak RSS and the argon2id cost each wrote. The same boot runs the
# LUKS/LVM checks of that test (they must pass for figures to appear).
#
#   bench/luks2-vm.sh
#
# Needs what the VM tests need (scripts/setup.sh): the static agent
# (LANDFALL_AGENT_BIN or target/x86_64-unknown-linux-musl/release), the
# kernel in LANDFALL_CACHE, cryptsetup-bin, lvm2, dmsetup, e2fsprogs, time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=$(cargo test --quiet -p landfall-tests --test e2e luks_lvm:: -- --nocapture 2>&1) || {
    printf '%s\n' "$out" | tail -40 >&2
    exit 1
}
printf '%s\n' "$out" | grep '^luksFormat figure:' | sed 's/^luksFormat figure: //'
