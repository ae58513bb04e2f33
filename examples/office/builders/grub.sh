# GRUB 2 as Debian builds it: grub-install and grub-probe with their
# libraries (run through lib/'s dynamic loader: the store has no /lib64) and
# the platform folders grub-install takes modules and images from.
mkdir -p "$out"
cp -r "$src/bin" "$src/lib" "$src/i386-pc" "$src/x86_64-efi" "$out/"
chmod 0555 "$out"/bin/* "$out"/lib/ld-linux-*
