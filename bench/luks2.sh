#!/usr/bin/env bash
# Benchmark: landfall's native luksFormat against `cryptsetup luksFormat --type
# luks2` (its defaults) on the same 64 MiB image file, each under
# `/usr/bin/time -v`: wall time, peak RSS and the argon2 cost each chose.
#
#   bench/luks2.sh                 # BENCH_DIR=/var/tmp/landfall-bench
#   EXTRA="--iter-time 1000" bench/luks2.sh   # extraFormatArgs for both
#
# Needs: cryptsetup-bin, time (GNU time at /usr/bin/time).
# The example builds in the dev profile, whose hot crates (argon2, blake2,
# aes, sha2, pbkdf2) are compiled at opt-level 3 (Cargo.toml).
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/var/tmp/landfall-bench}
EXTRA=${EXTRA:-}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in cryptsetup /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing $t (Debian: apt-get install -y cryptsetup-bin time)" >&2; exit 1; }
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
cargo build --quiet -p landfall-agent --example luks2_format --manifest-path "$here/Cargo.toml"
ours_bin=$CARGO_TARGET_DIR/debug/examples/luks2_format

mkdir -p "$BENCH_DIR"
img=$BENCH_DIR/luks2.img
key=$BENCH_DIR/luks2.key
printf 'benchmark passphrase' >"$key"

measure() { # name, command...
    local name=$1; shift
    rm -f "$img"; truncate -s 64M "$img"; sync
    /usr/bin/time -v "$@" 2>"$BENCH_DIR/$name.time" >"$BENCH_DIR/$name.out"
    local wall rss
    wall=$(grep 'Elapsed (wall clock)' "$BENCH_DIR/$name.time" | awk '{print $NF}')
    rss=$(grep 'Maximum resident set size' "$BENCH_DIR/$name.time" | awk '{print $NF}')
    local cost
    cost=$(cryptsetup luksDump "$img" | awk '/Time cost|Memory:|Threads/ {printf "%s%s ", $1, $NF}')
    printf '%-10s wall %8s  peak RSS %7s KiB  %s\n' "$name" "$wall" "$rss" "$cost"
}

# shellcheck disable=SC2086
measure landfall "$ours_bin" "$img" "$key" $EXTRA
# shellcheck disable=SC2086
measure cryptsetup cryptsetup luksFormat --type luks2 -q --key-file "$key" $EXTRA "$img"
