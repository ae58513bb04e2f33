//! The bootloader engine: makes the installed root bootable, then reboots.
//!
//! Two ways, chosen by [`BootPolicy`]:
//! - native systemd-boot ([`systemd_boot`]): reads the closure's `boot.json`
//!   (bootspec v1) and writes the ESP the way NixOS's systemd-boot builder does
//!   (content-addressed kernel and initrd, one loader entry, the EFI binary at
//!   its own and at the removable path);
//! - the closure's own installer ([`closure`]): `bin/switch-to-configuration boot`
//!   with `NIXOS_INSTALL_BOOTLOADER=1` in a private mount namespace chrooted into
//!   the root, as `nixos-install` does through `nixos-enter` ([`enter`]).
//!
//! [`plan_bootloader`] decides and describes (shown before anything is written);
//! [`install_bootloader`] executes the plan, one [`BootEvent`] per step and one
//! per output line of the closure's installer. [`reboot`] syncs, turns swap off,
//! unmounts the root's tree and calls reboot(2).
//!
//! Paths inside the installed system (store paths, the system profile) are
//! always resolved *inside* the root ([`bootspec::resolve_in_root`]): an
//! absolute symlink in the closure never reaches the agent's own filesystem.

pub mod bootspec;
pub mod closure;
pub mod disk_links;
pub mod enter;
pub mod policy;
pub mod reboot;
pub mod systemd_boot;

pub use bootspec::{read_bootspec, resolve_in_root, system_profile_target, BootSpecError};
pub use closure::{install_with_closure, ClosureInstallError};
pub use enter::{EnterError, EnterOptions};
pub use policy::{
    install_bootloader, plan_bootloader, BootMethod, BootPlan, BootPolicy, InstallError, PlanError,
};
pub use reboot::{prepare_reboot, reboot_now, RebootError, UnmountReport};
pub use systemd_boot::{EspFile, SystemdBootError, SystemdBootOptions};

use crate::steps::StepEvent;

/// Progress of a bootloader install: a step, or a line the closure's installer printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEvent {
    Step(StepEvent),
    Output(String),
}

impl std::fmt::Display for BootEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootEvent::Step(s) => s.fmt(f),
            BootEvent::Output(l) => write!(f, "  | {l}"),
        }
    }
}
