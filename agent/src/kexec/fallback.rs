//! The fallback when kexec_file_load(2) failed: the target's own `kexec` from
//! kexec-tools (`kexec -l` uses the older kexec_load(2), which some kernels
//! allow when the file-based call is missing or refuses the image).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the fallback did not load the image.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error("Cannot run {0}")]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("`{command}` failed: {output}")]
    Failed { command: String, output: String },
}

/// The folders searched for `kexec`, in order: absolute system folders only.
/// `$PATH` is not used: this runs as root, and a relative or user-writable
/// PATH entry would run whatever `kexec` it holds.
pub const KEXEC_FOLDERS: &[&str] = &[
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/run/current-system/sw/bin",
    "/run/current-system/sw/sbin",
];

/// The `kexec` binary in the system folders ([`KEXEC_FOLDERS`]).
pub fn find_kexec_tool() -> Option<PathBuf> {
    find_kexec_in(Path::new("/"))
}

/// [`find_kexec_tool`] below `root` (tests use a made-up tree).
fn find_kexec_in(root: &Path) -> Option<PathBuf> {
    KEXEC_FOLDERS
        .iter()
        .map(|d| root.join(d.trim_start_matches('/')).join("kexec"))
        .find(|p| p.is_file())
}

/// `kexec -l KERNEL --initrd=INITRD --command-line=CMDLINE` as an argument list.
pub fn load_args(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<String> {
    vec![
        "-l".into(),
        kernel.display().to_string(),
        format!("--initrd={}", initrd.display()),
        format!("--command-line={cmdline}"),
    ]
}

/// Loads the image with kexec-tools (the caller then reboots into it).
pub fn load_with_tool(
    tool: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
) -> Result<(), FallbackError> {
    let args = load_args(kernel, initrd, cmdline);
    let out = Command::new(tool)
        .args(&args)
        .output()
        .map_err(|e| FallbackError::Spawn(tool.to_path_buf(), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(FallbackError::Failed {
        command: format!("{} {}", tool.display(), args.join(" ")),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(
            load_args(
                Path::new("/run/l/bzImage"),
                Path::new("/proc/9/fd/4"),
                "console=ttyS0 panic=10"
            ),
            [
                "-l",
                "/run/l/bzImage",
                "--initrd=/proc/9/fd/4",
                "--command-line=console=ttyS0 panic=10"
            ]
        );
    }

    #[test]
    fn kexec_is_found_in_system_folders_only() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(find_kexec_in(root.path()), None);
        // A `kexec` in a folder only PATH could name is not run.
        let evil = root.path().join("tmp/evil");
        std::fs::create_dir_all(&evil).unwrap();
        std::fs::write(evil.join("kexec"), "").unwrap();
        assert_eq!(find_kexec_in(root.path()), None);
        for d in ["bin", "usr/sbin"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
            std::fs::write(root.path().join(d).join("kexec"), "").unwrap();
        }
        // /usr/sbin comes before /bin.
        assert_eq!(
            find_kexec_in(root.path()),
            Some(root.path().join("usr/sbin/kexec"))
        );
    }

    #[test]
    fn failure_carries_the_output() {
        let err = load_with_tool(Path::new("/bin/false"), Path::new("k"), Path::new("i"), "")
            .unwrap_err();
        assert!(err.to_string().contains("/bin/false -l k"), "{err}");
    }
}
