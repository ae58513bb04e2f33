# The benchmark's synthetic closure: `paths` leaf store paths of generated
# files (see gen.sh) and a top path that refers to every one of them, all
# built offline by Debian's static busybox (sandbox = false, no nixpkgs).
#   nix-build closure.nix --arg bb DIR --argstr paths 500
# DIR holds `busybox`, a copy of Debian's static /bin/busybox (the file must be
# named busybox: busybox picks its applet from argv[0]).
{ bb, paths ? "500", salt ? "1" }:
let
  system = "x86_64-linux";
  busybox = "${bb}/busybox";
  n = builtins.fromJSON paths;
  leaf = i: derivation {
    name = "bench-leaf-${toString i}";
    inherit system salt;
    builder = busybox;
    args = [ "sh" "-e" ./gen.sh ];
    index = toString i;
  };
  leaves = builtins.genList leaf n;
in
derivation {
  name = "bench-top";
  inherit system salt;
  builder = busybox;
  args = [ "sh" "-e" "-c" ''
    mkdir "$out"
    for p in $deps; do echo "$p"; done > "$out/paths"
  '' ];
  deps = leaves;
}
