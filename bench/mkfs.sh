#!/usr/bin/env bash
# Benchmark: `landfall-agent mkfs ext4` against `mke2fs -q -F -t ext4` on the same
# sparse files of 1 GiB, 64 GiB and 1 TiB, side by side with hyperfine, and print
# the time ratio landfall/mke2fs per size (target: <= 1.0).
#
#   bench/mkfs.sh                     # BENCH_DIR=/var/tmp/landfall-bench, 10 runs each
#   BENCH_DIR=/some/dir RUNS=20 bench/mkfs.sh
#   AGENT=/path/to/landfall-agent bench/mkfs.sh   # skip the cargo build
#
# Needs: hyperfine (apt-get install -y hyperfine), e2fsprogs, python3.
# Each run starts after `sync` (hyperfine --prepare) so neither tool pays for
# the other's dirty pages. Both tools discard (punch out) the file first.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/var/tmp/landfall-bench}
RUNS=${RUNS:-10}
SIZES=${SIZES:-"1G 64G 1T"}
here=$(cd "$(dirname "$0")/.." && pwd)

for tool in hyperfine mke2fs python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y ${tool/mke2fs/e2fsprogs})" >&2; exit 1; }
done

if [ -z "${AGENT:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
    cargo build --quiet --release -p landfall-agent --manifest-path "$here/Cargo.toml"
    AGENT=$CARGO_TARGET_DIR/release/landfall-agent
fi

mkdir -p "$BENCH_DIR"
results=()
for size in $SIZES; do
    img=$BENCH_DIR/mkfs-$size.img
    rm -f "$img"
    truncate -s "$size" "$img"
    json=$BENCH_DIR/mkfs-$size.json
    hyperfine --style basic --warmup 2 --runs "$RUNS" --prepare sync --export-json "$json" \
        -n "landfall $size" "$AGENT mkfs ext4 $img" \
        -n "mke2fs $size" "mke2fs -q -F -t ext4 $img"
    results+=("$size:$json")
    rm -f "$img"
done

echo
python3 - "${results[@]}" <<'PY'
import json, sys
print(f"{'size':>6} | {'landfall (ms)':>15} | {'mke2fs (ms)':>15} | {'ratio':>6}")
print("-" * 54)
for arg in sys.argv[1:]:
    size, path = arg.split(":", 1)
    r = {x["command"].split()[0]: x for x in json.load(open(path))["results"]}
    lf, mk = r["landfall"], r["mke2fs"]
    fmt = lambda x: f"{x['mean']*1000:7.1f} ± {x['stddev']*1000:5.1f}"
    print(f"{size:>6} | {fmt(lf):>15} | {fmt(mk):>15} | {lf['mean']/mk['mean']:6.2f}")
PY
