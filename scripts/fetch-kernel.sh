#!/usr/bin/env bash
# Fetches and unpacks the Debian kernel package the test VMs boot.
#
# The package is whatever `linux-image-amd64` currently depends on (resolved at
# run time, so a newer Debian point release just works). It is unpacked, not
# installed, into a cache folder:
#
#   $LANDFALL_CACHE/kernel/<version>/boot/vmlinuz-<version>
#   $LANDFALL_CACHE/kernel/<version>/lib/modules/<version>/
#   $LANDFALL_CACHE/kernel/current -> <version>
#
# Usage: scripts/fetch-kernel.sh            (prints the unpacked folder)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${LANDFALL_CACHE:-$here/.cache}
mkdir -p "$cache/kernel"

if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
    apt-get update -qq
fi
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
    echo "fetch-kernel: could not resolve the package linux-image-amd64 depends on" >&2
    exit 1
fi
version=${pkg#linux-image-}
dest="$cache/kernel/$version"

if [ ! -f "$dest/boot/vmlinuz-$version" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get download "$pkg" >/dev/null)
    rm -rf "$dest.partial"
    mkdir -p "$dest.partial"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest.partial"
    # Debian ships the real image as /boot/vmlinuz-<version>; some releases keep
    # modules under /usr/lib/modules.
    if [ -d "$dest.partial/usr/lib/modules" ] && [ ! -d "$dest.partial/lib/modules" ]; then
        mkdir -p "$dest.partial/lib"
        mv "$dest.partial/usr/lib/modules" "$dest.partial/lib/modules"
    fi
    rm -rf "$dest"
    mv "$dest.partial" "$dest"
fi
ln -sfn "$version" "$cache/kernel/current"
echo "$dest"
