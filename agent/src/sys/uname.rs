//! uname(2): the running kernel's release — the name of its module folder
//! (`/lib/modules/<release>`), and what the inventory reports.

/// The running kernel's release (`6.1.0-28-amd64`); empty if uname fails.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_release_is_the_one_proc_reports() {
        let proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(super::kernel_release(), proc.trim());
    }
}
