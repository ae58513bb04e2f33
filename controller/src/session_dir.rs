//! The session folder on the laptop holds the CA key and the controller's
//! key: like OpenSSH with `~/.ssh`, the controller refuses to use one that is
//! not owned by the user running it, or that group or others may enter.
//! `landfall certs init` creates it 0700 (see [`crate::certs`]); a folder
//! opened later is refused here, never silently tightened.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a session folder is not used.
#[derive(Debug, thiserror::Error)]
pub enum SessionDirError {
    #[error("Cannot use the session folder {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The session folder {} is not a folder", .0.display())]
    NotADir(PathBuf),
    #[error(
        "The session folder {} is owned by uid {owner}, not by you (uid {me}); it holds keys, \
         so landfall refuses it (as ssh refuses such a ~/.ssh)", path.display()
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "The session folder {} is mode {mode:04o}, open to group or others; it holds keys, so \
         landfall refuses it (as ssh refuses such a ~/.ssh). Run `chmod 700 {}`, and make a new \
         session (`landfall certs init --force`) if others may have read its keys",
        path.display(), path.display()
    )]
    Mode { path: PathBuf, mode: u32 },
}

/// Checks that `dir` is a folder owned by this user and closed to group and others.
pub fn check_private(dir: &Path) -> Result<(), SessionDirError> {
    let me = nix::unistd::geteuid().as_raw();
    check_private_for(dir, me)
}

fn check_private_for(dir: &Path, me: u32) -> Result<(), SessionDirError> {
    let meta = std::fs::metadata(dir).map_err(|source| SessionDirError::Stat {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SessionDirError::NotADir(dir.to_path_buf()));
    }
    if meta.uid() != me {
        return Err(SessionDirError::Owner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SessionDirError::Mode {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_a_private_folder_of_ours_passes() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        fs::create_dir(&s).unwrap();
        fs::set_permissions(&s, fs::Permissions::from_mode(0o700)).unwrap();
        check_private(&s).unwrap();
        for mode in [0o750, 0o705, 0o755, 0o777, 0o710] {
            fs::set_permissions(&s, fs::Permissions::from_mode(mode)).unwrap();
            let e = check_private(&s).unwrap_err().to_string();
            assert!(
                e.contains(&format!("mode {mode:04o}"))
                    && e.contains(&s.display().to_string())
                    && e.contains("chmod 700"),
                "{e}"
            );
        }
        fs::set_permissions(&s, fs::Permissions::from_mode(0o700)).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let e = check_private_for(&s, me + 1).unwrap_err().to_string();
        assert!(
            e.contains(&format!("owned by uid {me}, not by you (uid {})", me + 1)),
            "{e}"
        );
        let file = d.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            check_private(&file),
            Err(SessionDirError::NotADir(_))
        ));
        assert!(matches!(
            check_private(&d.path().join("missing")),
            Err(SessionDirError::Stat { .. })
        ));
    }
}
