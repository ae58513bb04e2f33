//! Which way the bootloader is installed, decided and described before
//! anything is written ([`plan_bootloader`]), then done ([`install_bootloader`]).
//!
//! `auto` takes the closure's own installer when the system has
//! `bin/switch-to-configuration` (a real NixOS system always has: it knows its
//! bootloader — GRUB, lanzaboote, systemd-boot, extlinux), otherwise writes
//! systemd-boot natively from `boot.json`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::bootspec::{read_bootspec, resolve_in_root, system_profile_target, BootSpecError};
use super::closure::{install_with_closure, programs, ClosureInstallError};
use super::enter::EnterOptions;
use super::systemd_boot::{plan_esp, write_esp, EspContent, EspFile, SystemdBootError};
use super::BootEvent;

/// `--bootloader auto|systemd-boot|closure|none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootPolicy {
    #[default]
    Auto,
    SystemdBoot,
    Closure,
    None,
}

impl FromStr for BootPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(Self::Auto),
            "systemd-boot" => Ok(Self::SystemdBoot),
            "closure" => Ok(Self::Closure),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown bootloader policy '{s}' (auto, systemd-boot, closure, none)"
            )),
        }
    }
}

impl fmt::Display for BootPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::SystemdBoot => "systemd-boot",
            Self::Closure => "closure",
            Self::None => "none",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("Cannot find the system to boot in {root}")]
    Toplevel {
        root: PathBuf,
        #[source]
        source: BootSpecError,
    },
    #[error("Cannot read the system's boot.json")]
    BootSpec(#[source] BootSpecError),
    #[error("Cannot plan native systemd-boot")]
    SystemdBoot(#[source] SystemdBootError),
    #[error("Cannot use the closure's installer")]
    Closure(#[source] ClosureInstallError),
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("Native systemd-boot failed")]
    SystemdBoot(#[source] SystemdBootError),
    #[error(transparent)]
    Closure(ClosureInstallError),
}

/// The way chosen, with what it needs.
#[derive(Debug, Clone)]
pub enum BootMethod {
    SystemdBoot { esp: PathBuf, files: Vec<EspFile> },
    Closure { toplevel: PathBuf },
    None,
}

/// The decided bootloader install, shown before it runs.
#[derive(Debug, Clone)]
pub struct BootPlan {
    pub root: PathBuf,
    pub toplevel: PathBuf,
    pub policy: BootPolicy,
    pub method: BootMethod,
}

impl BootPlan {
    /// The method's short name: systemd-boot, closure or none.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            BootMethod::SystemdBoot { .. } => "systemd-boot",
            BootMethod::Closure { .. } => "closure",
            BootMethod::None => "none",
        }
    }

    /// The plan for a person.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "Bootloader for {} in {} (policy {}):\n",
            self.toplevel.display(),
            self.root.display(),
            self.policy
        );
        match &self.method {
            BootMethod::SystemdBoot { esp, files } => {
                s += &format!(
                    "  native systemd-boot from boot.json, written to the ESP at {}:\n",
                    esp.display()
                );
                for f in files {
                    let from = match &f.content {
                        EspContent::Copy(p) => format!("copy of {}", p.display()),
                        EspContent::Text(t) => format!("{} line(s)", t.lines().count()),
                    };
                    s += &format!("    {:<58} {from}\n", f.path.display());
                }
            }
            BootMethod::Closure { toplevel } => {
                s += &format!(
                    "  the closure's own installer: {}/bin/switch-to-configuration boot \
                     (NIXOS_INSTALL_BOOTLOADER=1), in a private mount namespace chrooted into {}, \
                     as nixos-install does\n",
                    toplevel.display(),
                    self.root.display()
                );
            }
            BootMethod::None => s += "  none: no bootloader is installed (policy none)\n",
        }
        s
    }
}

fn has_installer(root: &Path, toplevel: &Path) -> bool {
    resolve_in_root(root, &toplevel.join("bin/switch-to-configuration")).is_ok()
}

/// Decides how to install the bootloader for `toplevel` (default: the root's
/// system profile) into `root`, with the ESP at `esp` for native systemd-boot.
pub fn plan_bootloader(
    root: &Path,
    toplevel: Option<&Path>,
    policy: BootPolicy,
    esp: &Path,
    timeout_secs: u32,
) -> Result<BootPlan, PlanError> {
    let toplevel = match toplevel {
        Some(t) => resolve_in_root(root, t),
        None => system_profile_target(root),
    }
    .map_err(|source| PlanError::Toplevel {
        root: root.to_path_buf(),
        source,
    })?;
    let native = || -> Result<BootMethod, PlanError> {
        let spec = read_bootspec(root, &toplevel).map_err(PlanError::BootSpec)?;
        let files =
            plan_esp(root, &toplevel, &spec, timeout_secs).map_err(PlanError::SystemdBoot)?;
        Ok(BootMethod::SystemdBoot {
            esp: esp.to_path_buf(),
            files,
        })
    };
    let method = match policy {
        BootPolicy::None => BootMethod::None,
        BootPolicy::SystemdBoot => native()?,
        BootPolicy::Closure => {
            programs(root, &toplevel).map_err(PlanError::Closure)?;
            BootMethod::Closure {
                toplevel: toplevel.clone(),
            }
        }
        BootPolicy::Auto if has_installer(root, &toplevel) => BootMethod::Closure {
            toplevel: toplevel.clone(),
        },
        BootPolicy::Auto => native()?,
    };
    Ok(BootPlan {
        root: root.to_path_buf(),
        toplevel,
        policy,
        method,
    })
}

/// Executes the plan; returns a one-line summary.
pub fn install_bootloader(
    plan: &BootPlan,
    require_vfat: bool,
    on_event: &mut dyn FnMut(BootEvent),
) -> Result<String, InstallError> {
    match &plan.method {
        BootMethod::SystemdBoot { esp, files } => {
            let opts = super::SystemdBootOptions {
                esp: esp.clone(),
                require_vfat,
            };
            let n = write_esp(files, &opts, on_event).map_err(InstallError::SystemdBoot)?;
            Ok(format!(
                "native systemd-boot installed on {}: {n} file(s) written, {} unchanged",
                esp.display(),
                files.len() - n
            ))
        }
        BootMethod::Closure { toplevel } => {
            install_with_closure(&EnterOptions::new(&plan.root), toplevel, on_event)
                .map_err(InstallError::Closure)?;
            Ok(format!(
                "bootloader installed by {}/bin/switch-to-configuration boot",
                toplevel.display()
            ))
        }
        BootMethod::None => Ok("no bootloader installed (policy none)".into()),
    }
}
