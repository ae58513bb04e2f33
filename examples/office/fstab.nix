# The fstab of an evaluated disko layout (`device mountpoint type options`
# lines), as disko's NixOS module turns the layout into `fileSystems` and
# `swapDevices`: filesystems with a mountpoint, btrfs subvolumes mounted with
# `subvol=<name>`, swap partitions and LVs, what a LUKS device holds (as
# /dev/mapper/<name>), LVM logical volumes (as /dev/<vg>/<lv>), and swapfiles (a btrfs subvolume's or
# filesystem's `swap.<name>.path`, relative to where it is mounted). The
# fixture's stage 1 mounts `/` and `/nix` from it, stage 2 the rest, and
# stage 2 swapons its swap lines.
devices:
let
  inherit (builtins) attrValues concatLists concatStringsSep;
  opts = concatStringsSep ",";
  under = mp: p: if mp == "/" then "/${p}" else "${mp}/${p}";
  swapfiles = mp: swap:
    if mp == null then [ ]
    else map (f: "${under mp f.path} none swap ${opts f.options}") (attrValues swap);
  mount = dev: mp: type: o: if mp == null then [ ] else [ "${dev} ${mp} ${type} ${opts o}" ];
  content = dev: c:
    if c == null then [ ]
    else if c.type == "filesystem" then mount dev c.mountpoint c.format c.mountOptions
    else if c.type == "swap" then [ "${dev} none swap defaults" ]
    else if c.type == "btrfs" then
      mount dev c.mountpoint "btrfs" c.mountOptions
      ++ swapfiles c.mountpoint c.swap
      ++ concatLists (map
        (s: mount dev s.mountpoint "btrfs" ([ "subvol=${s.name}" ] ++ s.mountOptions)
          ++ swapfiles s.mountpoint s.swap)
        (attrValues c.subvolumes))
    else if c.type == "luks" then content "/dev/mapper/${c.name}" c.content
    else if c.type == "lvm_pv" then [ ]
    else throw "fstab.nix: the fixture does not know content type ${c.type}";
  disk = d: concatLists (map (p: content p.device p.content) (attrValues d.content.partitions));
  vg = v: concatLists (map (lv: content "/dev/${v.name}/${lv.name}" lv.content) (attrValues v.lvs));
in
concatStringsSep "\n" (concatLists (map disk (attrValues devices.disk))
  ++ concatLists (map vg (attrValues (devices.lvm_vg or { })))) + "\n"
