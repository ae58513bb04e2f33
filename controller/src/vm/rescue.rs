//! The rescue machine's initramfs: the VM library's rescue image (the one the
//! test harness boots too: busybox, OpenSSH's server, fresh keys — see
//! `landfall_vm::rescue`) with the NIC and NVMe drivers of the kernel it boots.
//! The landfall agent is not in it: `landfall install` uploads it over SSH,
//! as on a real target.

use std::path::Path;

use anyhow::Context;
use landfall_image::modules::{select_modules, ModuleIndex};
pub use landfall_vm::rescue::{Rescue, SSHD_FAILED, SSHD_READY};
use landfall_vm::rescue::{RescueNetwork, MODULES};

/// Builds the initramfs and keys in `dir` for the kernel whose modules are in `modules_dir`.
pub fn build(modules_dir: &Path, dir: &Path) -> anyhow::Result<Rescue> {
    let index = ModuleIndex::scan(modules_dir).with_context(|| {
        format!(
            "Cannot read the kernel modules in {}",
            modules_dir.display()
        )
    })?;
    let selection =
        select_modules(&index, MODULES).context("Cannot resolve the NIC and NVMe drivers")?;
    let modules: Vec<_> = selection
        .modules
        .iter()
        .map(|m| (format!("{}.ko", m.name()), m.module.data.clone()))
        .collect();
    Ok(Rescue::build(dir, &modules, RescueNetwork::Static)?)
}
