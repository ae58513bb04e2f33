# Builder of one leaf of the benchmark closure (run by busybox sh, $index set).
# 64 entries in 4 sub-directories: 55 small files (64 B..12 KiB; half random
# bytes, half repetitive text), 6 large random files (55..550 KiB), one
# executable and one symlink: about 2.2 MiB per path. Random bytes come from
# /dev/urandom (incompressible, the worst case for a compressing transfer);
# the content is fixed once built, as the result is kept in /nix/store.
i=$index
mkdir -p "$out/bin" "$out/lib" "$out/share/doc" "$out/etc"
j=0
while [ $j -lt 55 ]; do
  s=$(( (i * 131 + j * 977) % 12288 + 64 ))
  case $(( j % 4 )) in
    0) d=lib ;; 1) d=share/doc ;; 2) d=etc ;; *) d=share ;;
  esac
  if [ $(( j % 2 )) -eq 0 ]; then
    head -c $s /dev/urandom > "$out/$d/small-$j.bin"
  else
    yes "leaf $i file $j: some text as a config file or a script would hold" | head -c $s > "$out/$d/small-$j.txt"
  fi
  j=$(( j + 1 ))
done
j=0
while [ $j -lt 6 ]; do
  s=$(( ((i * 7 + j * 13) % 10 + 1) * 56320 ))
  head -c $s /dev/urandom > "$out/lib/lib$j.so"
  j=$(( j + 1 ))
done
printf '#!/bin/sh\necho leaf %s\n' "$i" > "$out/bin/leaf-$i"
chmod 0555 "$out/bin/leaf-$i"
ln -s ../lib/lib0.so "$out/lib/libleaf.so"
