#!/usr/bin/env bash
# Load: one laptop installing onto N machines at once (issue 7). Runs
#   landfall install --flake ./examples/office#office --vm --yes --vm-dir DIR_i
# first once alone, then N times at once (N separate controllers, each with its
# own throwaway rescue VM, its own session certificates and state folder), and
# prints the wall time of each round, every install's own time, and the
# controllers' peak RSS and CPU seconds (sampled from /proc every 0.5 s; qemu,
# ssh and nix are separate processes and not counted).
#
#   bash bench/load.sh            # N=4
#   N=2 bash bench/load.sh
#
# Needs what scripts/demo.sh sets up (run it once). The VMs run on this same
# machine, so on a 2-core host without KVM the N guests compete with each
# other for the CPU: the round time measures that, not landfall.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}
WORK=${BENCH_DIR:-/var/tmp/landfall-load}
LANDFALL=${LANDFALL:-$PWD/target/release/landfall}
export LANDFALL_AGENT_BIN=${LANDFALL_AGENT_BIN:-$PWD/target/x86_64-unknown-linux-musl/release/landfall-agent}
export NIX_CONFIG=${NIX_CONFIG:-$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters ='}
[ -x "$LANDFALL" ] || cargo build --release -p landfall
rm -rf "$WORK"; mkdir -p "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# sample PID OUT: writes "peak_rss_kib cpu_seconds" of PID when it ends.
sample() {
    local pid=$1 out=$2 peak=0 cpu=0 tck
    tck=$(getconf CLK_TCK)
    while [ -r "/proc/$pid/status" ]; do
        local rss st
        rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        st=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        [ -n "$st" ] && cpu=$st
        sleep 0.5
    done
    echo "$peak $(awk -v t="$cpu" -v h="$tck" 'BEGIN {printf "%.1f", t/h}')" > "$out"
}

round() {
    local n=$1 name=$2 start end i
    pids=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        local d="$WORK/$name-$i"
        mkdir -p "$d"
        ( LANDFALL_STATE_DIR="$d/state" "$LANDFALL" install --flake ./examples/office#office \
            --vm --yes --vm-dir "$d/vm" >"$d/out.log" 2>&1; echo $? > "$d/rc" ) &
        pids+=($!)
    done
    sleep 1
    for i in $(seq 1 "$n"); do
        local d="$WORK/$name-$i" lp
        lp=$(pgrep -f -- "--vm-dir $d/vm" | head -1 || true)
        [ -n "$lp" ] && sample "$lp" "$d/usage" &
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    wait
    end=$(date +%s.%N)
    printf '%s: %d install(s) at once: %.1f s wall\n' "$name" "$n" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b-a}')"
    for i in $(seq 1 "$n"); do
        local d="$WORK/$name-$i" rc usage took
        rc=$(cat "$d/rc" 2>/dev/null || echo "?")
        usage=$(cat "$d/usage" 2>/dev/null || echo "? ?")
        took=$(grep -o 'booted it in [0-9.]* s' "$d/out.log" | grep -o '[0-9.]*' || echo "?")
        printf '  #%d exit %s, %s s to the installed system checked, controller peak RSS %s KiB, CPU %s s\n' \
            "$i" "$rc" "$took" ${usage}
        grep -q "LANDFALL-STORE-CHECK: OK" "$d/out.log" || { echo "  #$i FAILED, see $d/out.log"; tail -5 "$d/out.log"; }
    done
}

round 1 single
round "$N" parallel
