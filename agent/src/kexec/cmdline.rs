//! The RAM image's kernel command line: the running system's console settings
//! (so the agent's log appears where the old system's did — a provider's serial
//! console, a VNC console), a panic policy, and what the user appends.

/// Parameters carried over from the running kernel's command line.
const CARRIED: &[&str] = &["console=", "earlyprintk=", "earlycon"];

/// After a kernel panic in the RAM image, reboot after this many seconds: the
/// machine then comes back into its old system (or the provider's rescue).
pub const PANIC_SECS: u32 = 10;

/// The command line for the image, from `/proc/cmdline`'s text and `--append`.
/// When `append` names a console itself, the running system's are not carried over.
pub fn compose(current: &str, append: Option<&str>) -> String {
    let append = append.map(str::trim).unwrap_or("");
    let own_console = append.split_whitespace().any(|w| w.starts_with("console="));
    let mut words: Vec<&str> = Vec::new();
    if !own_console {
        words.extend(
            current
                .split_whitespace()
                .filter(|w| CARRIED.iter().any(|c| w.starts_with(c))),
        );
    }
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
    fn own_console_and_panic_win() {
        let cur = "console=tty0 root=/dev/sda1";
        assert_eq!(
            compose(cur, Some("console=ttyS1 panic=-1")),
            "console=ttyS1 panic=-1"
        );
        assert_eq!(compose("", None), "panic=10");
    }
}
