//! The RAM image's kernel command line: the running system's console settings
//! (so the agent's log appears where the old system's did — a provider's serial
//! console, a VNC console), its NVMe driver settings (cloud images raise
//! `nvme_core.io_timeout` for network-backed disks that may stall), a panic
//! policy, and what the user appends.

/// Console parameters carried over from the running kernel's command line.
const CONSOLE: &[&str] = &["console=", "earlyprintk=", "earlycon"];

/// Driver parameters carried over unless the user appends the same one.
const DRIVER: &[&str] = &["nvme_core.", "nvme-core."];

/// After a kernel panic in the RAM image, reboot after this many seconds: the
/// machine then comes back into its old system (or the provider's rescue).
pub const PANIC_SECS: u32 = 10;

/// The command line for the image, from `/proc/cmdline`'s text and `--append`.
/// When `append` names a console itself, the running system's are not carried over.
pub fn compose(current: &str, append: Option<&str>) -> String {
    let append = append.map(str::trim).unwrap_or("");
    let own_console = append.split_whitespace().any(|w| w.starts_with("console="));
    let appended_key = |w: &str| {
        let key = w.split('=').next().unwrap_or(w).replace('-', "_");
        append
            .split_whitespace()
            .any(|a| a.split('=').next().unwrap_or(a).replace('-', "_") == key)
    };
    let mut words: Vec<&str> = Vec::new();
    words.extend(current.split_whitespace().filter(|w| {
        if CONSOLE.iter().any(|c| w.starts_with(c)) {
            !own_console
        } else {
            DRIVER.iter().any(|c| w.starts_with(c)) && !appended_key(w)
        }
    }));
    let panic = format!("panic={PANIC_SECS}");
    if !append.split_whitespace().any(|w| w.starts_with("panic=")) {
        words.push(&panic);
    }
    words.extend(append.split_whitespace());
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_are_carried_over() {
        let cur = "BOOT_IMAGE=/vmlinuz root=UUID=1 ro console=tty0 console=ttyS0,115200n8 quiet";
        assert_eq!(
            compose(cur, None),
            "console=tty0 console=ttyS0,115200n8 panic=10"
        );
        assert_eq!(
            compose(cur, Some(" landfall.debug ")),
            "console=tty0 console=ttyS0,115200n8 panic=10 landfall.debug"
        );
    }

    #[test]
    fn nvme_settings_are_carried_over_unless_appended() {
        let cur = "root=/dev/nvme0n1p1 nvme_core.io_timeout=4294967295 nvme.poll_queues=1";
        assert_eq!(
            compose(cur, None),
            "nvme_core.io_timeout=4294967295 panic=10"
        );
        assert_eq!(
            compose(cur, Some("nvme-core.io_timeout=600")),
            "panic=10 nvme-core.io_timeout=600"
        );
    }

    #[test]
    fn own_console_and_panic_win() {
        let cur = "console=tty0 root=/dev/sda1";
        assert_eq!(
            compose(cur, Some("console=ttyS1 panic=-1")),
            "console=ttyS1 panic=-1"
        );
        assert_eq!(compose("", None), "panic=10");
    }
}
