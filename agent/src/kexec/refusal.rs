//! Why the kernel refused to load the image: the errno of kexec_file_load(2)
//! read together with the system's lockdown state, turned into a message a
//! person can act on.

use nix::errno::Errno;

/// What blocked the kexec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadRefusal {
    #[error("kexec is disabled on this system (/proc/sys/kernel/kexec_load_disabled is 1; it stays so until reboot)")]
    Disabled,
    #[error("The kernel is locked down ({mode}; Secure Boot usually turns this on): it loads only signed kernels — boot the target with Secure Boot off, or use a kernel signed with a key the firmware trusts")]
    Lockdown { mode: String },
    #[error("The kernel refused the image's signature ({0}: KEXEC_SIG): use a signed kernel or turn Secure Boot off")]
    Signature(Errno),
    #[error("Not permitted: the kexec needs root (CAP_SYS_BOOT); run as root or through sudo")]
    NoCapability,
    #[error("This kernel has no kexec_file_load (ENOSYS: built without CONFIG_KEXEC_FILE)")]
    NotSupported,
    #[error(
        "The kernel does not recognise the image as a bootable kernel (ENOEXEC); pass a bzImage"
    )]
    NotAKernel,
    #[error("Not enough memory to load the image (ENOMEM)")]
    NoMemory,
    #[error("kexec_file_load failed: {0}")]
    Other(Errno),
}

/// The active lockdown mode from `/sys/kernel/security/lockdown`
/// (`none [integrity] confidentiality` → `Some("integrity")`); `None` when off
/// or when the file is absent.
pub fn lockdown_mode(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    let mode = &text[start + 1..end];
    (mode != "none").then(|| mode.to_string())
}

/// What the system says, read once when a load failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemState {
    /// `/sys/kernel/security/lockdown`'s text, if readable.
    pub lockdown: Option<String>,
    /// `/proc/sys/kernel/kexec_load_disabled` is 1.
    pub kexec_disabled: bool,
}

impl SystemState {
    pub fn read() -> Self {
        SystemState {
            lockdown: std::fs::read_to_string("/sys/kernel/security/lockdown").ok(),
            kexec_disabled: std::fs::read_to_string("/proc/sys/kernel/kexec_load_disabled")
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
        }
    }
}

/// Maps the errno of a failed load to the reason.
pub fn classify(errno: Errno, sys: &SystemState) -> LoadRefusal {
    match errno {
        Errno::EPERM => {
            if sys.kexec_disabled {
                LoadRefusal::Disabled
            } else if let Some(mode) = sys.lockdown.as_deref().and_then(lockdown_mode) {
                LoadRefusal::Lockdown { mode }
            } else {
                LoadRefusal::NoCapability
            }
        }
        Errno::EKEYREJECTED | Errno::EBADMSG | Errno::ENOKEY | Errno::ENODATA | Errno::ENOPKG => {
            LoadRefusal::Signature(errno)
        }
        Errno::ENOSYS => LoadRefusal::NotSupported,
        Errno::ENOEXEC => LoadRefusal::NotAKernel,
        Errno::ENOMEM => LoadRefusal::NoMemory,
        other => LoadRefusal::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(lockdown: Option<&str>, disabled: bool) -> SystemState {
        SystemState {
            lockdown: lockdown.map(str::to_string),
            kexec_disabled: disabled,
        }
    }

    #[test]
    fn lockdown_modes() {
        assert_eq!(lockdown_mode("[none] integrity confidentiality\n"), None);
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            lockdown_mode("none integrity [confidentiality]").as_deref(),
            Some("confidentiality")
        );
        assert_eq!(lockdown_mode(""), None);
    }

    #[test]
    fn eperm_depends_on_the_system() {
        let off = "[none] integrity confidentiality";
        assert_eq!(
            classify(Errno::EPERM, &sys(Some(off), false)),
            LoadRefusal::NoCapability
        );
        assert_eq!(
            classify(Errno::EPERM, &sys(None, false)),
            LoadRefusal::NoCapability
        );
        assert_eq!(
            classify(
                Errno::EPERM,
                &sys(Some("none [integrity] confidentiality"), false)
            ),
            LoadRefusal::Lockdown {
                mode: "integrity".into()
            }
        );
        assert_eq!(
            classify(Errno::EPERM, &sys(Some(off), true)),
            LoadRefusal::Disabled
        );
    }

    #[test]
    fn other_errnos() {
        let s = sys(None, false);
        assert_eq!(
            classify(Errno::EKEYREJECTED, &s),
            LoadRefusal::Signature(Errno::EKEYREJECTED)
        );
        assert_eq!(
            classify(Errno::EBADMSG, &s),
            LoadRefusal::Signature(Errno::EBADMSG)
        );
        assert_eq!(classify(Errno::ENOSYS, &s), LoadRefusal::NotSupported);
        assert_eq!(classify(Errno::ENOEXEC, &s), LoadRefusal::NotAKernel);
        assert_eq!(classify(Errno::EBUSY, &s), LoadRefusal::Other(Errno::EBUSY));
        assert!(LoadRefusal::Lockdown {
            mode: "integrity".into()
        }
        .to_string()
        .contains("Secure Boot"));
    }
}
