#!/usr/bin/env bash
# Measures the kexec path in qemu (TCG here): the RAM image's size and the
# seconds from `landfall-agent kexec` loading the image on the rescue VM to
# the agent answering over mutual TLS. Runs the end-to-end test
# tests/tests/e2e/kexec.rs (static rescue network) RUNS times (default 3)
# and prints its FIGURE lines.
#
# Usage: scripts/bench-kexec.sh [RUNS]
# Needs: scripts/setup.sh done (kernel fetched, static agent built).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
for i in $(seq 1 "$runs"); do
    cargo test -q -p landfall-tests --test e2e -- --nocapture kexec::kexec_from_static 2>&1 \
        | grep '^FIGURE' | sed "s/^/run $i: /"
done
