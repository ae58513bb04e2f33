//! The modules every landfall image carries unless told otherwise.

/// Storage, network, filesystem and helper modules for the machines landfall
/// targets (VMs on the common clouds and hypervisors, usual server hardware).
/// Names missing from a kernel (built in, or not built) are reported, not errors.
pub const DEFAULT_MODULES: &[&str] = &[
    // Storage.
    "nvme",
    "nvme-core",
    "virtio_blk",
    "virtio_scsi",
    "virtio_pci",
    "ahci",
    "sd_mod",
    "scsi_mod",
    "xen-blkfront",
    "hv_storvsc",
    "vmw_pvscsi",
    "megaraid_sas",
    "mpt3sas",
    // Network.
    "virtio_net",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "i40e",
    "ice",
    "ena",
    "gve",
    "r8169",
    "mlx4_en",
    "mlx5_core",
    "hv_netvsc",
    "vmxnet3",
    "bnxt_en",
    "tg3",
    // Filesystems and what they need.
    "ext4",
    "vfat",
    // btrfs (and, through its dependencies, xor, raid6_pq, zstd, libcrc32c):
    // the agent loads it only when a layout has btrfs content.
    "btrfs",
    "nls_cp437",
    "nls_ascii",
    "nls_iso8859-1",
    "nls_utf8",
    "crc32c_generic",
    "crc32c-intel",
    "efivarfs",
    // USB, legacy ATA and CD-ROM controllers: bound at boot so that the
    // agent's hardware configuration (`--generate-hardware-config`) names them
    // in `availableKernelModules`, as nixos-generate-config does on a machine
    // that has them (it sees only drivers that are bound).
    "xhci_pci",
    "ehci_pci",
    "uhci_hcd",
    "ohci_pci",
    "usbhid",
    "usb_storage",
    "ata_piix",
    "sr_mod",
    // Misc.
    "af_packet",
    "loop",
    // Device-mapper for LUKS2 (dm-crypt, aes-xts-plain64) and LVM (linear), loaded
    // by the agent only when a layout needs them (`load_for_device_mapper`).
    // `ecb` is xts's soft dependency; aes_generic is built in on Debian.
    "dm-mod",
    "dm-crypt",
    "xts",
    "ecb",
    "aes_generic",
    "aesni-intel",
];
