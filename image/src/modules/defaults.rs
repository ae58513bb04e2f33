//! The modules every landfall image carries unless told otherwise.

use landfall_formats::kmod::{BTRFS_MODULES, DEVICE_MAPPER_MODULES, FILESYSTEM_MODULES};

/// Storage, network and bus drivers for the machines landfall targets (VMs on
/// the common clouds and hypervisors, usual server hardware): the agent loads
/// these when a device's modalias matches.
pub const HARDWARE_MODULES: &[&str] = &[
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
];

const DEFAULT_LEN: usize = HARDWARE_MODULES.len()
    + FILESYSTEM_MODULES.len()
    + BTRFS_MODULES.len()
    + DEVICE_MAPPER_MODULES.len();

const DEFAULT_ARRAY: [&str; DEFAULT_LEN] = concat([
    HARDWARE_MODULES,
    FILESYSTEM_MODULES,
    BTRFS_MODULES,
    DEVICE_MAPPER_MODULES,
]);

/// Every module an image carries unless told otherwise: [`HARDWARE_MODULES`]
/// and the lists the agent loads by name (landfall-formats'
/// `FILESYSTEM_MODULES` at boot, `BTRFS_MODULES` and `DEVICE_MAPPER_MODULES`
/// when a layout needs them), so the image holds whatever the agent asks for.
/// Names missing from a kernel (built in, or not built) are reported, not errors.
pub const DEFAULT_MODULES: &[&str] = &DEFAULT_ARRAY;

/// The lists one after the other (a `const`, so [`DEFAULT_MODULES`] stays one).
const fn concat<const N: usize>(lists: [&[&'static str]; 4]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut l, mut at) = (0, 0);
    while l < lists.len() {
        let mut i = 0;
        while i < lists[l].len() {
            out[at] = lists[l][i];
            at += 1;
            i += 1;
        }
        l += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_holds_every_list_once() {
        assert_eq!(DEFAULT_MODULES.len(), DEFAULT_LEN);
        assert!(DEFAULT_MODULES.iter().all(|m| !m.is_empty()));
        for m in FILESYSTEM_MODULES.iter().chain(DEVICE_MAPPER_MODULES) {
            assert!(DEFAULT_MODULES.contains(m), "{m}");
        }
        let mut names: Vec<_> = DEFAULT_MODULES
            .iter()
            .map(|m| landfall_formats::kmod::module_name(m))
            .collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a module is listed twice");
    }
}
