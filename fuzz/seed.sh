#!/usr/bin/env bash
# Writes the seed corpora under fuzz/corpus/<target>/ from the repository's own
# fixtures and from small inputs made by real tools: NARs by `nix-store --dump`,
# filesystem images by mkfs.ext4 / mkfs.vfat / mkswap, partition tables by
# sgdisk / sfdisk, cpio archives by GNU cpio (newc and crc). Deterministic
# (fixed UUIDs, labels, timestamps) so re-running gives the same files.
#
# Needs (Debian): nix-bin gdisk fdisk e2fsprogs dosfstools util-linux cpio.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out=$here/corpus
for tool in nix-store sgdisk sfdisk mkfs.ext4 mkfs.vfat mkswap cpio; do
    command -v "$tool" >/dev/null || { echo "seed.sh: $tool missing (apt-get install nix-bin gdisk fdisk e2fsprogs dosfstools util-linux cpio)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"/{nar_decode,nar_unpack,layout_plan,disk_probe,cpio_read}
export SOURCE_DATE_EPOCH=0 E2FSPROGS_FAKE_TIME=1

# --- a small tree with every NAR node kind -----------------------------------
tree=$work/tree
mkdir -p "$tree/bin" "$tree/share/doc/deep/er" "$tree/empty"
printf 'hello\n' > "$tree/share/doc/README"
printf '#!/bin/sh\necho hi\n' > "$tree/bin/hello"; chmod +x "$tree/bin/hello"
: > "$tree/share/empty-file"
printf 'x%.0s' $(seq 1 1000) > "$tree/share/doc/deep/er/padded"
ln -s ../share/doc/README "$tree/bin/readme-link"
ln -s /nix/store/0123456789abcdfghijklmnpqrsvwxyz-dep/lib "$tree/lib"
printf 'seven\0' > "$tree/bin/nul-seven"

# --- NARs (nix-store --dump): file, executable, symlink, tree, empty dir ---------
nar() { nix-store --dump "$1" > "$out/nar_decode/$2.nar"; }
nar "$tree" tree
nar "$tree/share/doc/README" file
nar "$tree/bin/hello" executable
nar "$tree/share/empty-file" empty-file
nar "$tree/lib" symlink
nar "$tree/empty" empty-dir
nar "$tree/share" nested
# Two broken ones so the error paths are in the corpus from the start.
head -c 100 "$out/nar_decode/tree.nar" > "$out/nar_decode/truncated.nar"
{ cat "$out/nar_decode/file.nar"; printf 'trailing'; } > "$out/nar_decode/trailing.nar"
cp "$out"/nar_decode/*.nar "$out/nar_unpack/"

# --- disko layouts: the repository's fixtures ----------------------------------
for f in "$top"/tests/fixtures/layouts/*.json; do
    cp "$f" "$out/layout_plan/$(basename "$f")"
done

# --- disk images ------------------------------------------------------------------
img=$work/img
# ext4 (mkfs.ext4): boot block + superblock + group descriptors.
truncate -s 8M "$img"
mkfs.ext4 -q -F -L nixos -U 01234567-89ab-cdef-0123-456789abcdef -E root_owner=0:0,hash_seed=01234567-0000-0000-0000-000000000000 "$img"
head -c 8192 "$img" > "$out/disk_probe/ext4.img"
rm -f "$img"; truncate -s 8M "$img"
mkfs.ext4 -q -F -O ^has_journal,^extent,^64bit,^flex_bg -t ext2 -E hash_seed=01234567-0000-0000-0000-000000000000 -U 11111111-2222-3333-4444-555555555555 "$img"
head -c 4096 "$img" > "$out/disk_probe/ext2.img"
# FAT16 and FAT32 boot sectors (mkfs.vfat), with the FSInfo sector.
rm -f "$img"; truncate -s 16M "$img"
mkfs.vfat -F 16 -n ESP -i 1234abcd "$img" >/dev/null
head -c 4096 "$img" > "$out/disk_probe/fat16.img"
rm -f "$img"; truncate -s 40M "$img"
mkfs.vfat -F 32 -n BOOT -i 89abcdef "$img" >/dev/null
head -c 4096 "$img" > "$out/disk_probe/fat32.img"
# Linux swap (mkswap).
rm -f "$img"; truncate -s 1M "$img"
mkswap -L swp -U 22222222-3333-4444-5555-666666666666 "$img" >/dev/null 2>&1
head -c 8192 "$img" > "$out/disk_probe/swap.img"
# MBR with two partitions (sfdisk).
rm -f "$img"; truncate -s 1M "$img"
printf 'label: dos\nlabel-id: 0x12345678\nstart=8, size=100, type=83\nstart=108, size=200, type=82\n' | sfdisk -q "$img"
head -c 512 "$img" > "$out/disk_probe/mbr.img"
# A 128 KiB GPT disk (sgdisk) with a FAT16 boot sector in partition 1, an ext4
# superblock in partition 2 and a swap header in partition 3.
gpt=$out/disk_probe/gpt.img
truncate -s 128K "$gpt"
sgdisk -a 1 -U 33333333-4444-5555-6666-777777777777 \
    -n 1:34:99 -t 1:EF00 -c 1:ESP -u 1:44444444-5555-6666-7777-888888888888 \
    -n 2:100:139 -t 2:8300 -c 2:root -u 2:55555555-6666-7777-8888-999999999999 \
    -n 3:140:219 -t 3:8200 -c 3:swap -u 3:66666666-7777-8888-9999-aaaaaaaaaaaa \
    "$gpt" >/dev/null
sgdisk -v "$gpt" >/dev/null
dd if="$out/disk_probe/fat16.img" of="$gpt" bs=512 seek=34 count=1 conv=notrunc status=none
dd if="$out/disk_probe/ext4.img" of="$gpt" bs=512 seek=100 count=4 conv=notrunc status=none
dd if="$out/disk_probe/swap.img" of="$gpt" bs=512 seek=140 count=8 conv=notrunc status=none

# --- cpio archives (GNU cpio, newc and crc) --------------------------------------
find "$tree" -exec touch -h -d @0 {} +
(cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc --quiet --renumber-inodes -R 0:0) > "$out/cpio_read/tree.newc.cpio"
(cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H crc --quiet --renumber-inodes -R 0:0) > "$out/cpio_read/tree.crc.cpio"
(cd "$tree/bin" && printf 'hello\n' | cpio -o -H newc --quiet --renumber-inodes -R 0:0) > "$out/cpio_read/one-file.cpio"
printf '' | cpio -o -H newc --quiet --renumber-inodes > "$out/cpio_read/empty.cpio"
cat "$out/cpio_read/one-file.cpio" "$out/cpio_read/empty.cpio" > "$out/cpio_read/concatenated.cpio"

du -sh "$out"/* "$out"
