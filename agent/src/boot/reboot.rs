//! Leaving the installer: sync, swap off, unmount everything under the root
//! (deepest first; what refuses is reported with the reason), close the
//! device-mapper devices (LVs, then the LUKS devices beneath them, so the
//! volume keys leave the kernel), then reboot(2).

use std::path::{Path, PathBuf};

use crate::disk::mounting;

#[derive(Debug, thiserror::Error)]
pub enum RebootError {
    #[error("Cannot read the mount table")]
    Mounts(#[source] mounting::MountStepError),
    #[error("reboot(2) failed")]
    Reboot(#[source] nix::Error),
}

/// What was undone before the reboot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnmountReport {
    pub swaps_off: Vec<PathBuf>,
    pub unmounted: Vec<PathBuf>,
    /// Mounts that refused to go, with the reason.
    pub refused: Vec<(PathBuf, String)>,
    /// Device-mapper devices closed (`/dev/mapper/NAME`), dependants first.
    pub dm_closed: Vec<PathBuf>,
}

/// The mount points at or under `root`, deepest (latest mounted) first.
pub fn mounts_under(root: &Path) -> Result<Vec<PathBuf>, RebootError> {
    let all = mounting::mounts().map_err(RebootError::Mounts)?;
    Ok(all
        .into_iter()
        .rev()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(root))
        .collect())
}

fn active_swaps() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|d| PathBuf::from(d.replace("\\040", " ")))
        .collect()
}

/// Syncs, turns every swap off (when `swapoff`), and unmounts everything
/// under `root` in reverse order. Failures are collected, not fatal: the
/// caller decides whether to reboot anyway (the data is synced either way).
pub fn prepare_reboot(root: &Path, swapoff: bool) -> Result<UnmountReport, RebootError> {
    nix::unistd::sync();
    let mut report = UnmountReport::default();
    if swapoff {
        for s in active_swaps() {
            match crate::sys::mount::swapoff(&s) {
                Ok(()) => report.swaps_off.push(s),
                Err(e) => report.refused.push((s, crate::steps::error_chain(&e))),
            }
        }
    }
    for m in mounts_under(root)? {
        // A stacked or bind mount may already be gone with its parent.
        if !mounting::mounts()
            .map_err(RebootError::Mounts)?
            .iter()
            .any(|e| e.mount_point == m)
        {
            continue;
        }
        match crate::sys::mount::unmount(&m) {
            Ok(()) => report.unmounted.push(m),
            Err(e) => {
                let reason = match &e {
                    crate::sys::mount::MountError::Unmount {
                        source: nix::Error::EBUSY,
                        ..
                    } => "busy: a process still has files open there".to_string(),
                    _ => crate::steps::error_chain(&e),
                };
                report.refused.push((m, reason));
            }
        }
    }
    if swapoff {
        close_device_mapper(&mut report);
    }
    nix::unistd::sync();
    Ok(report)
}

/// Close every device-mapper device nothing holds (the agent as PID 1 made
/// them all); one still held goes to `refused`.
fn close_device_mapper(report: &mut UnmountReport) {
    if !Path::new("/sys/class/misc/device-mapper").exists() {
        return;
    }
    let node = |n: &str| PathBuf::from("/dev/mapper").join(n);
    match crate::disk::mapper::close_devices(None) {
        Ok((closed, left)) => {
            report.dm_closed.extend(closed.iter().map(|n| node(n)));
            report
                .refused
                .extend(left.into_iter().map(|(n, why)| (node(&n), why)));
        }
        Err(e) => report
            .refused
            .push((PathBuf::from("/dev/mapper"), crate::steps::error_chain(&e))),
    }
}

/// reboot(2) with RB_AUTOBOOT. Only returns on failure.
pub fn reboot_now() -> RebootError {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
        Ok(never) => match never {},
        Err(e) => RebootError::Reboot(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_a_missing_root_is_empty() {
        assert!(mounts_under(Path::new("/nonexistent-landfall-root"))
            .unwrap()
            .is_empty());
    }
}
