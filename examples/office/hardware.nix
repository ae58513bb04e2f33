# Evaluates a NixOS hardware configuration — the module `nixos-generate-config
# --show-hardware-config` (or `landfall install --generate-hardware-config`)
# writes — without nixpkgs, the way NixOS's module system does for the
# options such a file sets. The file is called as a module function with
# `config` (the merged result, lazily), a small stand-in `lib` (mkDefault,
# mkForce, mkOverride, mkIf, getName), `pkgs` (empty) and `modulesPath`,
# which is ./nixos-modules here: stand-ins for the profiles it imports
# (profiles/qemu-guest.nix, installer/scan/not-detected.nix, …). Its
# `imports` are followed; definitions merge as NixOS merges them: lists
# concatenate, attribute sets merge attribute by attribute, and of the other
# values the one with the highest priority wins (a plain definition beats a
# lib.mkDefault one); equal-priority values that differ are an error.
file:
let
  inherit (builtins) all any attrNames concatMap concatStringsSep filter foldl' head isAttrs isFunction isList listToAttrs removeAttrs tail;

  lib = rec {
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkDefault = mkOverride 1000;
    mkOptionDefault = mkOverride 1500;
    mkForce = mkOverride 50;
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    getName = p: if isAttrs p then p.pname or (builtins.parseDrvName p.name).name else (builtins.parseDrvName p).name;
  };

  modulesPath = ./nixos-modules;
  pkgs = { };
  args = { inherit config lib pkgs modulesPath; };

  # What the options default to when nothing defines them.
  defaults = {
    boot.initrd.availableKernelModules = [ ];
    boot.initrd.kernelModules = [ ];
    boot.kernelModules = [ ];
    boot.extraModulePackages = [ ];
    hardware.enableRedistributableFirmware = lib.mkOptionDefault false;
    networking.useDHCP = lib.mkOptionDefault true;
    nixpkgs.hostPlatform = lib.mkOptionDefault "x86_64-linux";
  };

  # A module and, depth first, what it imports: the list of its definitions.
  load = m:
    let
      f = if isFunction m || isAttrs m then m else import m;
      v = if isFunction f then f args else f;
    in
    [ (removeAttrs v [ "imports" ]) ] ++ concatMap load (v.imports or [ ]);

  typeOf = v: if isAttrs v then v._type or "" else "";

  # A definition as { priority, value }s (mkIf false: none).
  normalise = priority: v:
    if typeOf v == "if" then (if v.condition then normalise priority v.content else [ ])
    else if typeOf v == "override" then normalise v.priority v.content
    else [{ inherit priority; value = v; }];

  unique = foldl' (acc: x: if any (y: y == x) acc then acc else acc ++ [ x ]) [ ];

  merge = path: defs:
    let
      ds = concatMap (d: normalise d.priority d.value) defs;
      name = concatStringsSep "." path;
    in
    if ds == [ ] then throw "hardware.nix: ${name} is used but not defined"
    else if all (d: isAttrs d.value && typeOf d.value == "") ds then
      listToAttrs (map
        (n: {
          name = n;
          value = merge (path ++ [ n ])
            (concatMap (d: if d.value ? ${n} then [{ inherit (d) priority; value = d.value.${n}; }] else [ ]) ds);
        })
        (unique (concatMap (d: attrNames d.value) ds)))
    else
      let
        best = foldl' (p: d: if d.priority < p then d.priority else p) (head ds).priority (tail ds);
        top = filter (d: d.priority == best) ds;
      in
      if all (d: isList d.value) top then concatMap (d: d.value) top
      else if all (d: d.value == (head top).value) top then (head top).value
      else throw "hardware.nix: conflicting definitions of ${name}";

  config = merge [ ] (map (value: { priority = 100; inherit value; }) ([ defaults ] ++ load file));
in
config
