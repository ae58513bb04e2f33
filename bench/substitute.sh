#!/usr/bin/env bash
# Benchmark: substitution on the target (issue 19). The laptop→agent link is
# throttled to RATE bytes/s (default 8 MiB/s) by the tests' proxy
# (tests/src/bin/throttle-proxy.rs); a signed binary cache of the whole
# closure (Debian's Nix: `nix copy --to file://…?compression=COMPRESSION&secret-key=…`,
# COMPRESSION zstd by default; xz, bzip2 or none also work)
# is served on loopback by `python3 -m http.server`. The same closure (the
# synthetic one of bench/closure/closure.nix, PATHS leaf paths of ~2.2 MiB)
# is installed into a fresh directory root twice, RUNS times round-robin:
#   laptop — `landfall install --agent … --no-substitute-on-target`
#   cache  — `landfall install --agent … --substituters URL --trusted-public-keys KEY`
# and the script prints each wall time, the median ratio cache/laptop, the
# paths per source from `--json`, and the agent's peak RSS (VmHWM) in each.
# Every result must pass `nix-store --verify --check-contents`.
#
#   bash bench/substitute.sh
#   PATHS=100 RUNS=3 bash bench/substitute.sh
#   COMPRESSION=bzip2 bash bench/substitute.sh
#   AGENT=… LANDFALL=… PROXY=… bash bench/substitute.sh   # skip the cargo builds
#
# Needs loopback only (no root beyond writing /nix/store). Debian packages:
# nix-bin, busybox-static, python3.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/var/tmp/landfall-bench}
RUNS=${RUNS:-1}
PATHS=${PATHS:-40}
COMPRESSION=${COMPRESSION:-zstd}
RATE=${RATE:-8388608}
here=$(cd "$(dirname "$0")/.." && pwd)
export NIX_CONFIG=$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters ='

die() { echo "substitute.sh: $*" >&2; exit 1; }
for cmd in nix nix-build nix-store python3; do command -v "$cmd" >/dev/null || die "missing $cmd"; done
[ -x /bin/busybox ] || die "missing /bin/busybox (Debian: apt-get install -y busybox-static)"

if [ -z "${AGENT:-}" ] || [ -z "${LANDFALL:-}" ] || [ -z "${PROXY:-}" ]; then
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
    echo "== cargo build (agent: static musl, release)"
    cargo build --quiet --release --target x86_64-unknown-linux-musl -p landfall-agent --manifest-path "$here/Cargo.toml"
    cargo build --quiet --release -p landfall -p landfall-tests --bin landfall --bin throttle-proxy --manifest-path "$here/Cargo.toml"
    AGENT=${AGENT:-$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/landfall-agent}
    LANDFALL=${LANDFALL:-$CARGO_TARGET_DIR/release/landfall}
    PROXY=${PROXY:-$CARGO_TARGET_DIR/release/throttle-proxy}
fi

mkdir -p "$BENCH_DIR"
work=$(mktemp -d "$BENCH_DIR/subst.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT PID
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | { grep . || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- the closure, the key, the cache ---
mkdir -p "$BENCH_DIR/bb"
cmp -s /bin/busybox "$BENCH_DIR/bb/busybox" || cp /bin/busybox "$BENCH_DIR/bb/busybox"
echo "== building the synthetic closure ($PATHS leaf paths)"
top=$(nix-build "$here/bench/closure/closure.nix" --no-out-link -j 2 \
    --arg bb "$BENCH_DIR/bb" --argstr paths "$PATHS" 2> "$work/nix-build.log") \
    || { tail -20 "$work/nix-build.log" >&2; die "building the closure failed"; }
nar_mib=$(nix path-info --json --recursive "$top" | python3 -c 'import json,sys; print("%.1f" % (sum(p["narSize"] for p in json.load(sys.stdin)) / 1048576))')
echo "   $top: $nar_mib MiB of NAR"
nix key generate-secret --key-name bench-1 > "$work/secret"
pub=$(nix key convert-secret-to-public < "$work/secret")
echo "== nix copy into a signed $COMPRESSION cache"
nix copy --to "file://$work/cache?compression=$COMPRESSION&secret-key=$work/secret" "$top" 2> "$work/copy.log" \
    || { tail -20 "$work/copy.log" >&2; die "nix copy failed"; }
cache_port=$(free_port)
(cd "$work/cache" && exec python3 -m http.server --bind 127.0.0.1 "$cache_port") > "$work/cache.log" 2>&1 &
pids+=($!)
wait_port "$cache_port" "${pids[-1]}" || die "the cache server did not start"
"$LANDFALL" certs init --dir "$work/session" > /dev/null

declare -A times rss
run() { # NAME ARGS…
    local name=$1; shift
    local root="$work/root-$name"
    rm -rf "$root"; mkdir -p "$root"
    local port; port=$(free_port)
    "$AGENT" serve --listen "127.0.0.1:$port" --tls "$work/session" --root "$root" > "$work/agent-$name.log" 2>&1 &
    local agent=$!
    pids+=("$agent")
    wait_port "$port" "$agent" || { cat "$work/agent-$name.log" >&2; die "the agent did not start"; }
    coproc PX { exec "$PROXY" "127.0.0.1:$port" "$RATE"; }
    local proxy=$PX_PID
    pids+=("$proxy")
    local pport; read -r pport <&"${PX[0]}"
    local t0 t1
    t0=$(now)
    "$LANDFALL" install --agent "127.0.0.1:$pport" --tls "$work/session" --system "$top" \
        --phases install --json "$@" > "$work/$name.json" 2> "$work/$name.err" \
        || { tail -20 "$work/$name.err" >&2; die "landfall install ($name) failed"; }
    t1=$(now)
    times[$name]+="$(secs "$t0" "$t1") "
    rss[$name]+="$(awk '/^VmHWM:/ { print $2 }' "/proc/$agent/status") "
    kill "$agent" "$proxy"; wait "$agent" "$proxy" 2>/dev/null || true
    nix-store --verify --check-contents --store "$root" 2> "$work/verify.log" \
        || { cat "$work/verify.log" >&2; die "$name: nix-store --verify failed"; }
    ! grep -qiE "modified|invalid|error" "$work/verify.log" || { cat "$work/verify.log" >&2; die "$name: the store does not verify"; }
    python3 - "$work/$name.json" "$name" "$(secs "$t0" "$t1")" <<'PY'
import json, sys
c = json.loads(open(sys.argv[1]).read().splitlines()[-1])["closure"]
print(f"   {sys.argv[2]:<7} {sys.argv[3]:>7} s: laptop {c['sent_paths']} paths {c['nar_bytes']/1048576:.1f} MiB, "
      f"cache {c['cache_paths']} paths {c['cache_nar_bytes']/1048576:.1f} MiB, fallback {c['fallback_paths']}")
PY
    rm -rf "$root"
}

echo "== $RUNS round(s); laptop link throttled to $RATE B/s"
for _ in $(seq "$RUNS"); do
    run laptop --no-substitute-on-target
    run cache --substituters "http://127.0.0.1:$cache_port" --trusted-public-keys "$pub"
done
laptop=$(echo "${times[laptop]}" | median)
cache=$(echo "${times[cache]}" | median)
echo "== medians: laptop only $laptop s; with the cache $cache s; ratio cache/laptop $(awk -v a="$cache" -v b="$laptop" 'BEGIN { printf "%.3f", a / b }')"
echo "== agent peak RSS (VmHWM, KiB): laptop only ${rss[laptop]}; substituting ${rss[cache]}"
