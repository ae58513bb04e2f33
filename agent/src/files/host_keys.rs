//! `--copy-host-keys`: the running system's SSH host keys, captured by
//! `landfall-agent kexec --copy-host-keys` from `/etc/ssh/ssh_host_*` into
//! the in-memory initrd (at [`IMAGE_HOST_KEYS_DIR`], never on the target's
//! disk), then installed by the agent into `<root>/etc/ssh`: private keys
//! 0400, public keys (`*.pub`) 0444, owned by root — the installed system
//! then presents the same host key as the system it replaced.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the captured keys sit inside the RAM image.
pub const IMAGE_HOST_KEYS_DIR: &str = "/etc/landfall/host-keys";
/// Where they are captured from, on the running system.
pub const SYSTEM_SSH_DIR: &str = "/etc/ssh";
/// Largest key file accepted (an RSA-16384 private key is about 12 KiB).
pub const MAX_KEY_BYTES: u64 = 64 << 10;
/// Most key files accepted.
pub const MAX_KEYS: usize = 32;

/// One host key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `ssh_host_ed25519_key`, `ssh_host_ed25519_key.pub`, …
    pub name: String,
    pub data: Vec<u8>,
}

impl HostKey {
    pub fn is_public(&self) -> bool {
        self.name.ends_with(".pub")
    }
    /// 0444 for a public key (or certificate), 0400 for a private key.
    pub fn mode(&self) -> u32 {
        if self.is_public() {
            0o444
        } else {
            0o400
        }
    }
}

/// Why host keys could not be captured or loaded.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("Cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0} holds no SSH host key (ssh_host_*)")]
    None(PathBuf),
    #[error("{0} is more than {MAX_KEY_BYTES} bytes")]
    TooLarge(PathBuf),
    #[error("{0} holds more than {MAX_KEYS} host key files")]
    TooMany(PathBuf),
}

/// Whether `name` is a host key file name: `ssh_host_` then letters,
/// digits, `_`, `-` or `.` (no `/`, no `..`).
pub fn is_host_key_name(name: &str) -> bool {
    name.len() <= 128
        && name.strip_prefix("ssh_host_").is_some_and(|rest| {
            !rest.is_empty()
                && !rest.contains("..")
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// Reads the host key files of `dir` (regular files only, opened without
/// following links), sorted by name; an error when there are none.
pub fn read_dir(dir: &Path) -> Result<Vec<HostKey>, HostKeyError> {
    let listing = std::fs::read_dir(dir).map_err(|e| HostKeyError::Read(dir.into(), e))?;
    let mut keys = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| HostKeyError::Read(dir.into(), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_host_key_name(&name) {
            continue;
        }
        let path = entry.path();
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            // A link (ELOOP) is not a key file of this system: skipped.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
            Err(e) => return Err(HostKeyError::Read(path, e)),
        };
        let md = file
            .metadata()
            .map_err(|e| HostKeyError::Read(path.clone(), e))?;
        if !md.file_type().is_file() {
            continue;
        }
        if md.size() > MAX_KEY_BYTES {
            return Err(HostKeyError::TooLarge(path));
        }
        let mut data = Vec::new();
        file.take(MAX_KEY_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| HostKeyError::Read(path.clone(), e))?;
        if data.len() as u64 > MAX_KEY_BYTES {
            return Err(HostKeyError::TooLarge(path));
        }
        keys.push(HostKey { name, data });
        if keys.len() > MAX_KEYS {
            return Err(HostKeyError::TooMany(dir.into()));
        }
    }
    if keys.is_empty() {
        return Err(HostKeyError::None(dir.into()));
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_modes() {
        assert!(is_host_key_name("ssh_host_ed25519_key"));
        assert!(is_host_key_name("ssh_host_rsa_key.pub"));
        assert!(is_host_key_name("ssh_host_ed25519_key-cert.pub"));
        for bad in [
            "ssh_host_",
            "ssh_host_../x",
            "ssh_host_a/b",
            "sshd_config",
            "moduli",
        ] {
            assert!(!is_host_key_name(bad), "{bad}");
        }
        let k = |n: &str| HostKey {
            name: n.into(),
            data: vec![],
        };
        assert_eq!(k("ssh_host_ed25519_key").mode(), 0o400);
        assert_eq!(k("ssh_host_ed25519_key.pub").mode(), 0o444);
    }

    #[test]
    fn reads_key_files_only_and_skips_links() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("ssh_host_ed25519_key"), b"PRIVATE").unwrap();
        std::fs::write(
            t.path().join("ssh_host_ed25519_key.pub"),
            b"ssh-ed25519 AAAA",
        )
        .unwrap();
        std::fs::write(t.path().join("sshd_config"), b"Port 22").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("ssh_host_rsa_key")).unwrap();
        let keys = read_dir(t.path()).unwrap();
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]);
        assert_eq!(keys[0].data, b"PRIVATE");

        let empty = tempfile::tempdir().unwrap();
        let e = read_dir(empty.path()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("holds no SSH host key (ssh_host_*)"),
            "{e}"
        );
    }
}
