//! The machine's inventory, read from sysfs, procfs, block ioctls and CPUID —
//! never by running tools (the RAM image has none). [`hardware`] holds the
//! facts the generated NixOS hardware configuration is made from.
//!
//! One unreadable disk or NIC never fails the whole inventory: its fields stay
//! empty and the problem is logged.

pub mod hardware;
mod nics;
mod system;
pub mod virt;

pub use crate::disk::present::{list_disks, mountinfo, MountEntry};

use landfall_proto::v1::InventoryReply;

/// Collects the whole inventory. Blocking (sysfs reads, ioctls): call it from a
/// blocking thread in async code.
pub fn collect() -> InventoryReply {
    InventoryReply {
        disks: list_disks(),
        memory: Some(system::memory()),
        cpu: Some(system::cpu()),
        firmware: Some(system::firmware()),
        nics: nics::list_nics(),
        kernel: crate::sys::uname::kernel_release(),
        hostname: system::hostname(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hardware: Some(hardware::hardware()),
    }
}
