# The `office` example: the seed configuration (`nixosConfigurations.office`,
# the seed's disko layout — GPT with a 1M BIOS-boot partition, a 512M ESP
# (vfat at /boot) and an ext4 root filling the disk) — adapted so that any Nix
# builds it offline: no nixpkgs, no disko, no GRUB. Every derivation is built
# by a static busybox; the kernel is a distribution kernel; stage 1 is a small
# busybox script that finds the root by its partition label; the bootloader is
# systemd-boot (landfall writes it natively from the closure's boot.json, or
# the closure's own switch-to-configuration installs it). Stage 2 prints
# `LANDFALL-STAGE2: <toplevel>` and checks its own store against the build.
#
# The binaries it is built from come from the `vendor` input, a folder that
# `scripts/office-vendor.sh` fills from Debian packages (busybox-static, the
# kernel scripts/fetch-kernel.sh unpacks, systemd-boot-efi):
#
#   bb/busybox  kernel/{bzImage,version,modules/}  efi/systemd-bootx64.efi  options.json
#
#   landfall install --flake ./examples/office#office --vm --yes
#   printf 'a passphrase' > disk.key
#   landfall install --flake ./examples/office#office-luks-lvm --vm --yes \
#     --disk-encryption-keys /tmp/disk.key ./disk.key
#   landfall install --flake .#office-hw --vm --yes \
#     --generate-hardware-config nixos-generate-config ./hardware-configuration.nix
#
# With internet access, `real/flake.nix` beside this file is the seed's real
# flake (nixpkgs + disko + GRUB).
{
  description = "landfall example: the seed's office configuration, built offline without nixpkgs";

  inputs.vendor = {
    url = "path:/var/cache/landfall/office-vendor";
    flake = false;
  };

  outputs = { self, vendor }:
    let
      system = "x86_64-linux";
      options = builtins.fromJSON (builtins.readFile "${vendor}/options.json");
      # One system per evaluated disko layout: the packages and the
      # `config` attributes landfall reads.
      systemOf = name: devicesFile: systemWith { inherit name devicesFile; };
      systemWith = { name, devicesFile, hardwareFile ? null }: rec {
        devices = builtins.fromJSON (builtins.readFile devicesFile);
        pkgs = import ./packages.nix {
          inherit system options vendor name hardwareFile;
          fstab = import ./fstab.nix devices;
          crypttab = import ./crypttab.nix devices;
        };
        configuration.config = {
          system.build.toplevel = pkgs.toplevel;
          disko.devices = import ./disko.nix devicesFile;
        };
      };
      office = systemOf "office" ./disko-devices.json;
      office-btrfs = systemOf "office-btrfs" ./disko-devices-btrfs.json;
      office-luks-lvm = systemOf "office-luks-lvm" ./disko-devices-luks-lvm.json;
      # A NixOS flake imports the machine's generated hardware configuration;
      # here it is evaluated by ./hardware.nix (no nixpkgs).
      hardwareFile = ./hardware-configuration.nix;
      office-hw =
        if builtins.pathExists hardwareFile then
          systemWith { name = "office-hw"; devicesFile = ./disko-devices.json; inherit hardwareFile; }
        else
          throw ''
            office-hw imports ./hardware-configuration.nix, which is missing: generate it for the
            target, e.g. `landfall install --flake .#office-hw --generate-hardware-config
            nixos-generate-config ./hardware-configuration.nix …` (in a git work tree landfall
            adds it with `git add --intent-to-add`; a file git does not know is invisible to the flake).'';
    in
    {
      packages.${system} = office.pkgs // { default = office.pkgs.toplevel; };
      nixosConfigurations.office = office.configuration;
      # The seed's disk with its root as btrfs subvolumes (/, /nix, /home) and
      # a swapfile in a /swap subvolume; stage 1 loads btrfs and mounts subvol=.
      nixosConfigurations.office-btrfs = office-btrfs.configuration;
      # nixos-anywhere's quick-start layout inside LUKS: the ESP and a LUKS
      # partition `crypted` (its key /tmp/disk.key while installing:
      # --disk-encryption-keys /tmp/disk.key ./disk.key) holding the LVM VG
      # `pool` with a swap LV and an ext4 root LV of 100%FREE. Stage 1 asks
      # for the passphrase on the console (the key file's bytes: write it with
      # `printf`/`echo -n`), opens it with cryptsetup and activates the VG with lvm.
      nixosConfigurations.office-luks-lvm = office-luks-lvm.configuration;
      # The seed's disk and system, built with the machine's generated
      # hardware configuration: stage 1 loads exactly the kernel modules
      # ./hardware-configuration.nix (and the profiles it imports) name, and
      # the system carries the file. Without the file, evaluation stops and
      # says how to generate it.
      nixosConfigurations.office-hw = office-hw.configuration;
    };
}
