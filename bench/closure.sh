#!/usr/bin/env bash
# Benchmark: transferring a system closure into a fresh loop-mounted ext4 with
#   landfall   — `landfall-agent serve` on 127.0.0.1 writing to --root TARGET, and
#                `landfall install --agent … --system TOP --phases install`;
#   nix-copy   — `nix copy --no-check-sigs --to 'ssh-ng://root@127.0.0.1?remote-store=local?root=TARGET'`
#                (Debian's Nix 2.8 on both ends) through a local sshd;
#   tar-ssh    — `tar -cf - | ssh … 'tar -xf -'` through the same sshd;
# run side by side (round-robin, RUNS rounds), each run into its own new
# sparse 8 GiB ext4 image mounted with `mount -o loop`. The closure is a
# synthetic one built by real Nix (bench/closure/closure.nix): PATHS leaf paths
# of generated files and a top path referring to all of them.
#
#   bash bench/closure.sh
#   RUNS=5 BENCH_DIR=/some/dir bash bench/closure.sh
#   AGENT=… LANDFALL=… bash bench/closure.sh     # skip the cargo builds
#
# Environment: BENCH_DIR (default /var/tmp/landfall-bench; the images need
# about 1.2 GiB each, one at a time), RUNS (3), PATHS (500), TOOLS
# ("landfall nix-copy tar-ssh"), DROP_CACHES=1 to drop the page cache before
# every run (cold source reads; default: warm, the source is read once first).
# The controller's output of the last landfall run is kept in
# $BENCH_DIR/landfall-last.log.
# A time is the tool's wall time plus `sync -f TARGET`, so every tool pays for
# getting its data onto the disk (landfall's agent syncfs'es by itself; tar and
# nix copy leave dirty pages). The raw tool times are printed as well.
#
# Needs root and loopback only. Debian packages: nix-bin, busybox-static,
# openssh-server, openssh-client, e2fsprogs, util-linux, tar, python3 (free ports).
# Fails if `nix-store --verify --check-contents --store TARGET` reports anything
# about landfall's result, or if a tool's target misses paths.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/var/tmp/landfall-bench}
RUNS=${RUNS:-3}
PATHS=${PATHS:-500}
TOOLS=${TOOLS:-"landfall nix-copy tar-ssh"}
DROP_CACHES=${DROP_CACHES:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
export NIX_CONFIG=$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters ='

die() { echo "closure.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (loop mounts, sshd, writing /nix/store)"
while read -r cmd pkg; do
    command -v "$cmd" >/dev/null || die "missing $cmd (Debian: apt-get install -y $pkg)"
done <<'EOF'
nix nix-bin
nix-build nix-bin
nix-store nix-bin
nix-daemon nix-bin
/usr/sbin/sshd openssh-server
ssh openssh-client
ssh-keygen openssh-client
mkfs.ext4 e2fsprogs
mount mount
losetup mount
tar tar
python3 python3
EOF
[ -x /bin/busybox ] || die "missing /bin/busybox (Debian: apt-get install -y busybox-static)"

mkdir -p "$BENCH_DIR"
work=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
pids=()
agent_pid=
cleanup() {
    local rc=$?
    [ -z "$agent_pid" ] || pids+=("$agent_pid")
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # Unmount every target still mounted under $work (mount -o loop detaches its loop).
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done \
        < <(awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
    for img in "$work"/*.img; do
        [ -e "$img" ] || continue
        losetup -j "$img" | cut -d: -f1 | while read -r l; do losetup -d "$l" || true; done
    done
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
children_cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($16 + $17) / t }' "/proc/$$/stat"; } # waited-for children, s
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | { grep . || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- 1. The closure (cached: nix-build reuses the outputs while they are valid) ---
mkdir -p "$BENCH_DIR/bb"
cmp -s /bin/busybox "$BENCH_DIR/bb/busybox" || cp /bin/busybox "$BENCH_DIR/bb/busybox"
echo "== building the synthetic closure ($PATHS leaf paths; cached in /nix/store after the first run)"
top=$(nix-build "$here/bench/closure/closure.nix" --no-out-link -j 2 \
    --arg bb "$BENCH_DIR/bb" --argstr paths "$PATHS" 2> "$work/nix-build.log") \
    || { tail -20 "$work/nix-build.log" >&2; die "building the closure failed"; }
mapfile -t closure < <(nix-store -qR "$top")
nar_size=$(nix path-info -S "$top" | awk '{ print $2 }')
files=$(find "${closure[@]}" | wc -l)
printf 'closure %s\n  paths %d, NAR size %d bytes (%.2f GiB), files+dirs+symlinks %d\n' \
    "$top" "${#closure[@]}" "$nar_size" "$(awk -v s="$nar_size" 'BEGIN { print s / 2^30 }')" "$files"

# --- 2. The binaries ---
if [ -z "${AGENT:-}" ] || [ -z "${LANDFALL:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
    echo "== cargo build --release (agent: static musl)"
    cargo build --quiet --release --target x86_64-unknown-linux-musl -p landfall-agent --manifest-path "$here/Cargo.toml"
    cargo build --quiet --release -p landfall --manifest-path "$here/Cargo.toml"
    AGENT=${AGENT:-$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/landfall-agent}
    LANDFALL=${LANDFALL:-$CARGO_TARGET_DIR/release/landfall}
fi
"$LANDFALL" certs init --dir "$work/session" >/dev/null

# --- 3. A local sshd on 127.0.0.1 with its own keys ---
ssh_dir=$work/ssh
mkdir -p "$ssh_dir" /run/sshd
chmod 0700 "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/id"
cp "$ssh_dir/id.pub" "$ssh_dir/authorized_keys"
ssh_port=$(free_port)
echo "[127.0.0.1]:$ssh_port $(cat "$ssh_dir/host_key.pub")" > "$ssh_dir/known_hosts"
cat > "$ssh_dir/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
EOF
/usr/sbin/sshd -D -f "$ssh_dir/sshd_config" -E "$ssh_dir/sshd.log" &
pids+=($!)
wait_port "$ssh_port" "${pids[-1]}" || { cat "$ssh_dir/sshd.log" >&2; die "sshd did not start"; }
ssh_opts="-p $ssh_port -i $ssh_dir/id -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$ssh_dir/known_hosts -o StrictHostKeyChecking=yes"
export NIX_SSHOPTS=$ssh_opts
# shellcheck disable=SC2086
ssh $ssh_opts root@127.0.0.1 'command -v nix-daemon' >/dev/null || die "the remote shell does not find nix-daemon"

# --- 4. Targets and tools ---
target_no=0
mk_target() { # prints the mount point of a new sparse 8 GiB ext4
    target_no=$((target_no + 1))
    local img=$work/target-$target_no.img mnt=$work/target-$target_no
    truncate -s 8G "$img"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" # no ext4lazyinit thread writing during the run
    mkdir -p "$mnt"
    mount -o loop "$img" "$mnt"
    echo "$mnt"
}
rm_target() { umount "$1"; rm -f "$1.img"; rmdir "$1"; }

names=()
for p in "${closure[@]}"; do names+=("${p#/nix/store/}"); done

agent_rss_kib=()
run_landfall() { # TARGET
    local port pid
    port=$(free_port)
    "$AGENT" serve --listen "127.0.0.1:$port" --tls "$work/session" --root "$1" > "$work/agent.log" 2>&1 &
    pid=$!
    agent_pid=$pid
    wait_port "$port" "$pid" || { cat "$work/agent.log" >&2; die "the agent did not start"; }
    c0=$(children_cpu)
    t0=$(now)
    "$LANDFALL" install --agent "127.0.0.1:$port" --tls "$work/session" --system "$top" --phases install \
        > "$work/landfall.log" 2>&1 || { tail -20 "$work/landfall.log" >&2; die "landfall install failed"; }
    t1=$(now)
    c1=$(children_cpu)
    cp "$work/landfall.log" "$BENCH_DIR/landfall-last.log"
    sync -f "$1"
    t2=$(now)
    note=$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" '{ printf "; CPU: controller %.2fs, agent %.2fs", b - a, ($14 + $15) / t }' "/proc/$pid/stat")
    agent_rss_kib+=("$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    agent_pid=
}
run_nix-copy() { # TARGET
    t0=$(now)
    nix copy --no-check-sigs --to "ssh-ng://root@127.0.0.1?remote-store=local?root=$1" "$top" \
        > "$work/nix-copy.log" 2>&1 || { tail -20 "$work/nix-copy.log" >&2; die "nix copy failed"; }
    t1=$(now)
    sync -f "$1"
    t2=$(now)
}
run_tar-ssh() { # TARGET
    mkdir -p "$1/nix/store"
    t0=$(now)
    # shellcheck disable=SC2086
    tar -C /nix/store -cf - "${names[@]}" | ssh $ssh_opts root@127.0.0.1 "tar -C '$1/nix/store' -xf -"
    t1=$(now)
    sync -f "$1"
    t2=$(now)
}
check_target() { # TOOL TARGET
    local missing=0 p
    for p in "${names[@]}"; do [ -e "$2/nix/store/$p" ] || missing=$((missing + 1)); done
    [ "$missing" = 0 ] || die "$1: $missing of ${#names[@]} store paths missing in the target"
    if [ "$1" = landfall ]; then
        nix-store --verify --check-contents --store "$2" > "$work/verify.log" 2>&1 \
            || { cat "$work/verify.log" >&2; die "landfall: nix-store --verify failed"; }
        if grep -v -E '^(reading the Nix store|checking path existence|checking (link |store )?hashes)\.\.\.$' \
            "$work/verify.log" | grep -q .; then
            cat "$work/verify.log" >&2
            die "landfall: nix-store --verify --check-contents reported problems"
        fi
    fi
    if [ "$1" != tar-ssh ]; then # tar registers nothing
        local n
        n=$(nix path-info --store "$2" -r "$top" | wc -l)
        [ "$n" = "${#closure[@]}" ] || die "$1: the target's Nix sees $n valid paths, not ${#closure[@]}"
    fi
}

echo "== warming the page cache with the source"
tar -C /nix/store -cf - "${names[@]}" | cat > /dev/null
declare -A total raw
for r in $(seq "$RUNS"); do
    for tool in $TOOLS; do
        target=$(mk_target)
        note=
        sync
        [ "$DROP_CACHES" = 1 ] && echo 3 > /proc/sys/vm/drop_caches
        "run_$tool" "$target"
        check_target "$tool" "$target"
        total[$tool]+="$(secs "$t0" "$t2") "
        raw[$tool]+="$(secs "$t0" "$t1") "
        printf 'round %d %-9s %6ss (tool %ss + sync %ss%s)\n' "$r" "$tool" "$(secs "$t0" "$t2")" \
            "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$note"
        rm_target "$target"
    done
done

# --- 5. The table ---
lf=$(echo "${total[landfall]:-}" | median)
rss=$(printf '%s\n' "${agent_rss_kib[@]}" | sort -n | tail -1)
echo
echo "closure: ${#closure[@]} paths, $nar_size bytes NAR, $files files; $RUNS runs each; time = tool + sync -f TARGET"
printf '%-9s %10s %16s %14s  %s\n' tool "median s" "landfall/tool" "agent peak RSS" "all runs s (tool alone)"
for tool in $TOOLS; do
    m=$(echo "${total[$tool]}" | median)
    ratio=-
    [ -n "$lf" ] && ratio=$(awk -v a="$lf" -v b="$m" 'BEGIN { printf "%.2f", a / b }')
    peak=-
    [ "$tool" = landfall ] && peak=$(awk -v k="$rss" 'BEGIN { printf "%.1f MiB", k / 1024 }')
    printf '%-9s %10s %16s %14s  %s(%s)\n' "$tool" "$m" "$ratio" "$peak" "${total[$tool]}" "${raw[$tool]% }"
done
if [ -n "$lf" ]; then
    echo "landfall: nix-store --verify --check-contents --store TARGET reported nothing, every run"
fi
