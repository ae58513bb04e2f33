//! The phases of `landfall install`, in the order they run.

/// The phases, in the order they run (`Ord` is that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Phase {
    /// Over SSH: upload the agent and its RAM image, kexec into it (with --target).
    Kexec,
    /// Partition, format and mount the target's disks from the disko layout.
    Disko,
    /// Stream the system closure into the new store, verified and registered.
    Install,
    /// Write --extra-files, apply --chown, install --copy-host-keys' keys (nothing when none is given).
    Files,
    /// Install the bootloader (native systemd-boot, or the closure's own installer).
    Bootloader,
    /// Unmount and reboot into the installed system; wait for its SSH server.
    Reboot,
}

impl Phase {
    /// The name in summaries and `--phases`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Kexec => "kexec",
            Phase::Disko => "disko",
            Phase::Install => "install",
            Phase::Files => "files",
            Phase::Bootloader => "bootloader",
            Phase::Reboot => "reboot",
        }
    }
}

/// The phases asked for, sorted into running order, each once.
pub fn in_order(phases: &[Phase]) -> Vec<Phase> {
    let mut p = phases.to_vec();
    p.sort();
    p.dedup();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_run_in_their_order_once() {
        assert_eq!(
            in_order(&[Phase::Reboot, Phase::Disko, Phase::Kexec, Phase::Disko]),
            [Phase::Kexec, Phase::Disko, Phase::Reboot]
        );
        assert_eq!(Phase::Bootloader.name(), "bootloader");
        assert_eq!(
            in_order(&[Phase::Bootloader, Phase::Files, Phase::Install]),
            [Phase::Install, Phase::Files, Phase::Bootloader]
        );
    }
}
