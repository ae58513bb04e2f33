# The fixture's stand-in for NixOS's profiles/qemu-guest.nix, which a
# hardware configuration imports on a qemu/KVM guest: the guest's virtio
# storage drivers in stage 1 (NixOS's profile brings these among other
# virtio drivers; the fixture vendors only storage ones).
{ ... }:
{
  boot.initrd.availableKernelModules = [ "virtio_pci" "virtio_blk" "virtio_scsi" ];
}
