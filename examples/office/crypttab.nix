# The LUKS devices stage 1 unlocks, from an evaluated disko layout, as
# disko's NixOS module turns `type = "luks"` partitions into
# `boot.initrd.luks.devices.<name>` (with `initrdUnlock`, the default): one
# `name device options` line each, `discard` for `settings.allowDiscards`.
# Empty for a layout without LUKS, and then stage 1 has no cryptsetup or lvm.
devices:
let
  inherit (builtins) attrValues concatLists concatStringsSep filter;
  isLuks = p: p.content != null && p.content.type == "luks" && (p.content.initrdUnlock or true);
  line = p:
    let s = p.content.settings or { }; in
    "${p.content.name} ${p.device} ${if s.allowDiscards or false then "discard" else "none"}";
  disk = d: map line (filter isLuks (attrValues d.content.partitions));
  lines = concatLists (map disk (attrValues devices.disk));
in
if lines == [ ] then "" else concatStringsSep "\n" lines + "\n"
