#!/usr/bin/env bash
# Everything landfall's build, tests and demo need on a fresh Debian 12 machine
# (run as root): Debian packages, the musl target, the kernel the VMs boot, and
# a build of the static agent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    qemu-system-x86 ovmf          # the VMs (TCG works; KVM used when it really works)
    musl-tools                    # C compiler for the static agent (ring, zstd)
    e2fsprogs dosfstools mtools gdisk fdisk util-linux   # the tools that check our disks
    btrfs-progs                   # checks our btrfs (btrfs check, dump-super) and the reference mkfs.btrfs
    nix-bin                       # real Nix: builds the test closure, verifies stores
    busybox-static cpio zstd xz-utils kmod   # test initramfs pieces and independent readers
    openssh-client openssh-server # the SSH bootstrap
    git                           # --generate-hardware-config adds the file with git add --intent-to-add (tested)
    hyperfine                     # benchmarks
    curl                          # an independent TLS client in the tests
    systemd-boot-efi              # the systemd-boot EFI binary for boot tests
    grub-pc-bin grub-efi-amd64-bin grub2-common   # GRUB 2 for BIOS and UEFI: the office-grub example's bootloader (office-vendor.sh)
    lvm2                          # judges the native LVM2 writer (pvs/vgs/lvs/vgck/pvck)
    cryptsetup-bin                # judges our LUKS2 headers (luksDump, open --test-passphrase)
    dmsetup                       # device-mapper tests: the real tool beside our ioctls, in the VM
    dnsmasq-base                  # a real DNS server: substitution tests resolve the cache by name
    time                          # GNU time -v: luksFormat's peak memory in the VM (e2e_luks_lvm, bench)
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl

kernel=$(scripts/fetch-kernel.sh)
echo "setup: kernel in $kernel"

echo "setup: building the static agent"
cargo build --release --target x86_64-unknown-linux-musl -p landfall-agent
echo "setup: the example's binaries (/var/cache/landfall/office-vendor)"
scripts/office-vendor.sh >/dev/null
echo "setup: done"
