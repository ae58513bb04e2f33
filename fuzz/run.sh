#!/usr/bin/env bash
# Runs one fuzz target: fuzz/run.sh TARGET [SECONDS] (default 600).
# New corpus entries go to fuzz/work/TARGET (not committed), the committed
# seeds in fuzz/corpus/TARGET are read only; crashes land in
# fuzz/artifacts/TARGET/. The libFuzzer log is fuzz/work/TARGET.log.
# Extra arguments after SECONDS go to libFuzzer (e.g. -jobs=2).
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer args...]}
secs=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
[ -d "corpus/$target" ] || ./seed.sh >/dev/null
mkdir -p "work/$target"
dict=()
[ -f "dict/$target.dict" ] && dict=(-dict="dict/$target.dict")
cargo +nightly fuzz run -O --target-dir "${CARGO_TARGET_DIR:-$here/target}" "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 "${dict[@]}" "$@" 2>&1 | tee "work/$target.log"
