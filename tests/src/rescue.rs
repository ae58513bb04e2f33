//! The "rescue" machine of a cloud provider, as a test fixture: the VM
//! library's rescue image (the one `landfall vm` boots too: busybox, OpenSSH's
//! server, fresh keys, static or DHCP network; see `landfall_vm::rescue`) for
//! the fetched Debian kernel, and the VM it runs in: 256 MiB, an NVMe disk,
//! reachable only through SSH on a forwarded host port (and the agent's port
//! 7443 forwarded too, for after the kexec).
//!
//! ```no_run
//! use landfall_tests::{debian_kernel, sparse_image, StartVm, TestDir};
//! use landfall_tests::rescue::{RescueImage, RescueNetwork, SSHD_READY};
//! let kernel = debian_kernel()?;
//! let dir = TestDir::new("rescue")?;
//! let image = RescueImage::build(&kernel, dir.path(), RescueNetwork::Static)?;
//! let disk = sparse_image(&dir.join("nvme.img"), 1 << 30)?;
//! let mut vm = image.vm_builder(&kernel, &disk).start_in(dir)?;
//! vm.wait_for(SSHD_READY, std::time::Duration::from_secs(120))?;
//! let port = vm.host_port(22).unwrap();
//! let known_hosts = image.write_known_hosts(port)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

pub use landfall_vm::rescue::{
    keygen, parse_ldd, shared_libraries, Rescue, RescueNetwork, INIT_STARTED, MODULES, PLAIN_USER,
    SSHD_FAILED, SSHD_READY, STATIC_ADDRESS, STATIC_ADDRESS_V6, STATIC_GATEWAY,
};

use crate::fixtures::DebianKernel;
use crate::initramfs::modules::{self, ModuleError};
use crate::{Disk, Nic, VmBuilder};

/// The agent's port, forwarded for after the kexec.
pub const AGENT_PORT: u16 = landfall_proto::AGENT_PORT;

/// Building the rescue image failed.
#[derive(thiserror::Error)]
pub enum RescueError {
    #[error("Cannot resolve the rescue system's drivers")]
    Modules(#[source] ModuleError),
    #[error("Cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("Cannot build the rescue image")]
    Image(#[source] landfall_vm::rescue::RescueError),
}
crate::debug_as_display!(RescueError);

/// A built rescue initramfs and the keys to reach it (the fields of
/// [`Rescue`]: `initrd`, `client_key`, `host_public_key`).
#[derive(Debug, Clone)]
pub struct RescueImage(Rescue);

impl std::ops::Deref for RescueImage {
    type Target = Rescue;

    fn deref(&self) -> &Rescue {
        &self.0
    }
}

impl RescueImage {
    /// Builds the initramfs and keys in `dir` for `kernel`.
    pub fn build(
        kernel: &DebianKernel,
        dir: &Path,
        net: RescueNetwork,
    ) -> Result<RescueImage, RescueError> {
        let files = modules::resolve(&kernel.modules, MODULES).map_err(RescueError::Modules)?;
        let mut modules = Vec::new();
        for file in files {
            let data = std::fs::read(&file).map_err(|e| RescueError::Read(file.clone(), e))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            modules.push((name, data));
        }
        Rescue::build(dir, &modules, net)
            .map(RescueImage)
            .map_err(RescueError::Image)
    }

    /// The VM: the Debian kernel with this initramfs, 256 MiB, an NVMe disk
    /// with serial `landfall-test-0`, SSH (22) and the agent port (7443)
    /// forwarded, and reboots allowed (a kexec must not end qemu).
    pub fn vm_builder(&self, kernel: &DebianKernel, disk: &Path) -> VmBuilder {
        VmBuilder::new("rescue")
            .kernel(
                &kernel.image,
                &format!("{} {}", crate::KERNEL_APPEND, crate::NVME_TIMEOUT_APPEND),
            )
            .initrd(self.initrd.clone())
            .memory_mib(256)
            .disk(Disk::nvme(disk.to_path_buf()).serial("landfall-test-0"))
            .nic(Nic::user().forward(22).forward(AGENT_PORT))
            .allow_reboot()
    }
}
