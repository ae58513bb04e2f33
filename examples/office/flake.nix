# The `office` example: the seed configuration (`nixosConfigurations.office`,
# the seed's disko layout — GPT with a 1M BIOS-boot partition, a 512M ESP
# (vfat at /boot) and an ext4 root filling the disk) — adapted so that any Nix
# builds it offline: no nixpkgs, no disko. Every derivation is built
# by a static busybox; the kernel is a distribution kernel; stage 1 is a small
# busybox script that finds the root by its partition label; the bootloader is
# systemd-boot (landfall writes it natively from the closure's boot.json, or
# the closure's own switch-to-configuration installs it; `office-grub` boots
# with GRUB 2, as the seed does). Stage 2 prints
# `LANDFALL-STAGE2: <toplevel>` and checks its own store against the build.
#
# The binaries it is built from come from the `vendor` input, a folder that
# `scripts/office-vendor.sh` fills from Debian packages (busybox-static, the
# kernel scripts/fetch-kernel.sh unpacks, systemd-boot-efi, GRUB 2 from
# grub-pc-bin, grub-efi-amd64-bin and grub2-common):
#
#   bb/busybox  kernel/{bzImage,version,modules/}  efi/systemd-bootx64.efi
#   grub/{bin,lib,i386-pc,x86_64-efi}  options.json
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
      # `devices`: the evaluated disko.devices, when not read from `devicesFile`.
      systemWith =
        { name
        , devicesFile ? null
        , devices ? builtins.fromJSON (builtins.readFile devicesFile)
        , hardwareFile ? null
        , bootloader ? "systemd-boot"
        , grubDevices ? null
        }: rec {
        configuration.config.disko.devices = import ./disko.nix devices;
        pkgs = import ./packages.nix {
          inherit system options vendor name hardwareFile bootloader;
          # boot.loader.grub.devices as the seed's disko sets it: every disk
          # with an EF02 (BIOS boot) partition.
          grubDevices = if grubDevices != null then grubDevices else biosBootDisks devices;
          fstab = import ./fstab.nix devices;
          crypttab = import ./crypttab.nix devices;
        };
        configuration.config.system.build.toplevel = pkgs.toplevel;
      };
      biosBootDisks = devices:
        map (d: d.device) (builtins.filter
          (d: d.content != null && d.content ? partitions
            && builtins.any (p: p.type == "EF02") (builtins.attrValues d.content.partitions))
          (builtins.attrValues devices.disk));
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
      # The seed's own bootloader on the seed's hybrid disk: GRUB for BIOS in
      # the 1M EF02 partition and for UEFI at the ESP's removable path.
      office-grub = systemWith {
        name = "office-grub";
        devicesFile = ./disko-devices.json;
        bootloader = "grub";
      };
      # The same system with the EF02 partition gone from its layout while
      # boot.loader.grub.devices still names the disk (set by hand): GRUB for
      # BIOS has nowhere to embed its core image, and the install must stop.
      seedDevices = builtins.fromJSON (builtins.readFile ./disko-devices.json);
      withoutBiosBoot = seedDevices // {
        disk.main = seedDevices.disk.main // {
          content = seedDevices.disk.main.content // {
            partitions = builtins.removeAttrs seedDevices.disk.main.content.partitions [ "boot" ];
          };
        };
      };
      office-grub-no-bios-boot = systemWith {
        name = "office-grub-no-bios-boot";
        devices = withoutBiosBoot;
        bootloader = "grub";
        grubDevices = [ "/dev/nvme0n1" ];
      };
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
      # The seed's bootloader: `boot.loader.grub = { efiSupport = true;
      # efiInstallAsRemovable = true; }` with disko's EF02 disks as GRUB's
      # devices. switch-to-configuration runs Debian's GRUB 2 (the vendor
      # folder's grub/): grub-install --target=i386-pc on /dev/nvme0n1,
      # --target=x86_64-efi --removable --no-nvram on the ESP, and a grub.cfg
      # booting the kernel and initrd from the store. Boots under SeaBIOS
      # and OVMF alike:
      #   landfall install --flake ./examples/office#office-grub --vm --yes --firmware bios
      nixosConfigurations.office-grub = office-grub.configuration;
      # office-grub whose layout lost its EF02 partition: its installer fails
      # (GRUB cannot embed for BIOS), and landfall stops before the reboot.
      nixosConfigurations.office-grub-no-bios-boot = office-grub-no-bios-boot.configuration;
    };
}
