#!/usr/bin/env bash
# Benchmark: `landfall-agent mkfs btrfs` against Debian's `mkfs.btrfs -f` on the
# same sparse files of 1 GiB, 64 GiB and 1 TiB, side by side with hyperfine, and
# print the time ratio landfall/mkfs.btrfs per size (target: <= 1.0), in two
# settings:
#   fresh    — every run formats a new, empty sparse file (a new disk);
#   reformat — every run formats the file the previous run of the same tool made.
#
#   bench/mkfs-btrfs.sh                     # BENCH_DIR=/var/tmp/landfall-bench, 10 runs each
#   BENCH_DIR=/some/dir RUNS=20 bench/mkfs-btrfs.sh
#   AGENT=/path/to/landfall-agent bench/mkfs-btrfs.sh   # skip the cargo build
#
# Needs: hyperfine (apt-get install -y hyperfine), btrfs-progs, python3.
# Each run starts after `sync` (hyperfine --prepare) so neither tool pays for
# the other's dirty pages. Both make the same filesystem (DUP metadata, single
# data, crc32c, no-holes, free-space tree); mkfs.btrfs -q only stops its summary.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/var/tmp/landfall-bench}
RUNS=${RUNS:-10}
SIZES=${SIZES:-"1G 64G 1T"}
here=$(cd "$(dirname "$0")/.." && pwd)

for tool in hyperfine mkfs.btrfs python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y ${tool/mkfs.btrfs/btrfs-progs})" >&2; exit 1; }
done

if [ -z "${AGENT:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
    cargo build --quiet --release -p landfall-agent --manifest-path "$here/Cargo.toml"
    AGENT=$CARGO_TARGET_DIR/release/landfall-agent
fi

mkdir -p "$BENCH_DIR"
results=()
for size in $SIZES; do
    img=$BENCH_DIR/mkfs-btrfs-$size.img
    for mode in fresh reformat; do
        if [ "$mode" = fresh ]; then
            prepare="rm -f $img && truncate -s $size $img && sync"
        else
            prepare="sync"
        fi
        rm -f "$img"
        truncate -s "$size" "$img"
        json=$BENCH_DIR/mkfs-btrfs-$size-$mode.json
        hyperfine --style basic --warmup 2 --runs "$RUNS" --prepare "$prepare" --export-json "$json" \
            -n "landfall $size $mode" "$AGENT mkfs btrfs $img" \
            -n "mkfs.btrfs $size $mode" "mkfs.btrfs -q -f $img"
        results+=("$size:$mode:$json")
    done
    rm -f "$img"
done

echo
python3 - "${results[@]}" <<'PY'
import json, sys
print(f"{'size':>5} | {'mode':>8} | {'landfall (ms)':>15} | {'mkfs.btrfs (ms)':>15} | {'ratio':>5}")
print("-" * 62)
for arg in sys.argv[1:]:
    size, mode, path = arg.split(":", 2)
    r = {x["command"].split()[0]: x for x in json.load(open(path))["results"]}
    lf, mk = r["landfall"], r["mkfs.btrfs"]
    fmt = lambda x: f"{x['mean']*1000:7.1f} ± {x['stddev']*1000:5.1f}"
    print(f"{size:>5} | {mode:>8} | {fmt(lf):>15} | {fmt(mk):>15} | {lf['mean']/mk['mean']:5.2f}")
PY
