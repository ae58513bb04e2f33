#!/usr/bin/env bash
# Fills /var/cache/landfall/office-vendor, the folder the example flake
# examples/office reads its binaries from (its `vendor` input): Debian's static
# busybox, the Debian kernel scripts/fetch-kernel.sh unpacked (with the modules
# stage 1 loads), systemd-boot's EFI binary and GRUB 2 (grub-install,
# grub-probe and the i386-pc and x86_64-efi platform folders, for office-grub).
# Run by scripts/setup.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-/var/cache/landfall/office-vendor}
mkdir -p "$(dirname "$dest")"
cd "$here"
cargo run -q -p landfall-tests --bin office-vendor -- "$dest"
# A lock file from an earlier vendor folder would pin its old hash: drop it (Nix
# writes a new one, and marks it intent-to-add in git, on the next evaluation).
git rm --cached -q --ignore-unmatch examples/office/flake.lock 2>/dev/null || true
rm -f examples/office/flake.lock
