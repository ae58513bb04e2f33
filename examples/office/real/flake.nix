# The seed's real `office` configuration, for people with internet access:
# NixOS from nixpkgs, the disk layout from disko, GRUB as the bootloader (on
# both BIOS — the 1M EF02 partition — and UEFI, installed as the removable
# fallback path so no NVRAM entry is needed).
#
#   landfall install --flake ./examples/office/real#office --target root@203.0.113.7
#   landfall install --flake ./examples/office/real#office --vm --yes
#
# Put your own SSH public key below before installing onto a real machine:
# after the reboot the machine is reachable only with it.
{
  description = "office: a small NixOS server, installed with landfall";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, disko }: {
    nixosConfigurations.office = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        disko.nixosModules.disko
        ({ modulesPath, pkgs, ... }: {
          imports = [
            # virtio/NVMe drivers and the like for cloud VMs and qemu.
            (modulesPath + "/profiles/qemu-guest.nix")
          ];

          # The seed's disk layout (the same as ../disko.nix evaluates to).
          disko.devices.disk.main = {
            type = "disk";
            device = "/dev/nvme0n1";
            content = {
              type = "gpt";
              partitions = {
                boot = { size = "1M"; type = "EF02"; };
                ESP = {
                  size = "512M";
                  type = "EF00";
                  content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; };
                };
                root = {
                  size = "100%";
                  content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; };
                };
              };
            };
          };

          # GRUB for BIOS and UEFI; disko fills boot.loader.grub.devices from the EF02 partition.
          boot.loader.grub = {
            enable = true;
            efiSupport = true;
            efiInstallAsRemovable = true;
          };

          # A serial console, so `landfall install --vm` sees the system come up.
          boot.kernelParams = [ "console=ttyS0,115200" ];

          networking.hostName = "office";
          networking.useDHCP = true;

          services.openssh = {
            enable = true;
            settings.PasswordAuthentication = false;
          };
          users.users.root.openssh.authorizedKeys.keys = [
            # "ssh-ed25519 AAAA... you@laptop"
          ];

          system.stateVersion = "26.05";
        })
      ];
    };
  };
}
