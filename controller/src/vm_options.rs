//! The VM's command-line settings, shared by `landfall vm` and `landfall
//! install --vm`: plain clap types below both the install CLI and the VM code.

use std::path::PathBuf;

use landfall_vm::{Accel, Firmware};

/// The VM's settings (shared by `landfall vm` and `landfall install --vm`).
#[derive(clap::Args, Clone, Debug)]
pub struct VmOptions {
    /// The VM's memory in MiB (nixos-anywhere needs 1.5 GB; landfall is happy with 256).
    #[arg(long = "vm-memory", default_value_t = 256)]
    pub memory_mib: u32,
    /// Size of the VM's NVMe disk (a sparse file), e.g. 4G or 10240M.
    #[arg(long = "vm-disk-size", default_value = "4G")]
    pub disk_size: String,
    /// Folder for the VM's files (disk, console log, keys); default: the state folder's `vm`.
    #[arg(long = "vm-dir")]
    pub dir: Option<PathBuf>,
    /// qemu accelerator: auto (KVM when it really works here, else TCG), kvm or tcg.
    #[arg(long, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// The VM's firmware: uefi (OVMF) or bios (SeaBIOS). The rescue system
    /// boots with it, and after `install --vm` the installed disk is booted
    /// with it too — a GRUB system on a hybrid layout (EF02 + ESP) boots
    /// under either.
    #[arg(long, default_value_t = Firmware::Uefi)]
    pub firmware: Firmware,
}
