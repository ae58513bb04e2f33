//! The install ID: a random ID minted when `landfall install` (or `landfall
//! disk apply`) starts on a target, kept in the target's state folder
//! (`install-id`) while the install is unfinished, and sent with every
//! layout request. The agent formats disks with a GPT disk GUID derived from
//! it and keeps a disk that holds the layout only if it carries this ID, so a
//! copy of the same layout left by another system is wiped and recreated.
//!
//! Invariants:
//! - A re-run of the same unfinished install (controller killed, agent
//!   restarted) reads the same ID: the layout it formatted is kept, mounted
//!   again, resumed.
//! - Once the reboot phase is done the file is removed: the next install
//!   mints a new ID, and the disks of the finished install count as someone
//!   else's (the installed system ran on them since).
//! - The file is created 0600 under a name no one else can have chosen
//!   (write to a fresh temporary file, then rename); a file that is not 32
//!   hex digits is refused, never silently replaced.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The file in the per-target state folder.
pub const FILE: &str = "install-id";

fn path(state: &Path) -> PathBuf {
    state.join(FILE)
}

/// Whether `id` is an ID this module minted: 32 lower-case hex digits.
pub fn is_valid(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh ID: 16 bytes from the kernel's random source, in hex.
pub fn mint() -> anyhow::Result<String> {
    crate::certs::random_id().context("Cannot get random bytes for a new install ID")
}

/// The ID of the unfinished install in `state`, or a new one written there.
/// Returns the ID and whether it was minted now.
pub fn current(state: &Path) -> anyhow::Result<(String, bool)> {
    let p = path(state);
    match std::fs::read_to_string(&p) {
        Ok(text) => {
            let id = text.trim();
            if !is_valid(id) {
                bail!(
                    "{} does not hold an install ID (32 hex digits); remove it to start a new install",
                    p.display()
                );
            }
            return Ok((id.to_string(), false));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("Cannot read {}", p.display())),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .with_context(|| format!("Cannot create {}", state.display()))?;
    let id = mint()?;
    crate::secret_file::write_atomic(&p, format!("{id}\n").as_bytes(), 0o600)
        .with_context(|| format!("Cannot write {}", p.display()))?;
    Ok((id, true))
}

/// The install is finished (its reboot phase done): forget its ID, so the
/// next install mints a new one.
pub fn finish(state: &Path) -> anyhow::Result<()> {
    let p = path(state);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Cannot remove {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_unfinished_install_keeps_its_id_and_a_finished_one_gets_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("target");
        let (a, minted) = current(&state).unwrap();
        assert!(minted && is_valid(&a), "{a}");
        let mode = std::fs::metadata(state.join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(current(&state).unwrap(), (a.clone(), false), "a re-run");
        finish(&state).unwrap();
        finish(&state).unwrap();
        let (b, minted) = current(&state).unwrap();
        assert!(minted);
        assert_ne!(a, b, "a new install, a new ID");
    }

    #[test]
    fn a_damaged_id_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "not an id\n").unwrap();
        let e = current(dir.path()).unwrap_err();
        assert!(e.to_string().contains("remove it"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "not an id\n"
        );
    }
}
