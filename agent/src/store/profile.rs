//! The system profile and the NixOS marker, as `nixos-install` leaves them:
//! `<root>/nix/var/nix/profiles/system-1-link` → the toplevel,
//! `system` → `system-1-link`, and an empty `<root>/etc/NIXOS`.
//! Each link is made under a temporary name and renamed over the old one, so
//! a re-run replaces it atomically. The toplevel must be registered valid.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use landfall_proto::nar::StorePath;

use super::db::{DbError, NixDb};

/// Why the profile could not be set.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The toplevel is not registered valid in the root.
    #[error("The system {0} is not valid in the target store")]
    NotValid(StorePath),
    /// The database could not be read.
    #[error("Cannot check the system path")]
    Db(#[source] DbError),
    /// A filesystem step failed.
    #[error("Cannot create {0}")]
    Create(PathBuf, #[source] io::Error),
}

fn replace_symlink(target: &str, link: &Path) -> Result<(), ProfileError> {
    let err = |e| ProfileError::Create(link.to_path_buf(), e);
    let tmp = link.with_extension("landfall-tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    symlink(target, &tmp).map_err(err)?;
    fs::rename(&tmp, link).map_err(err)
}

/// Points the root's system profile at `toplevel` and creates `/etc/NIXOS`.
pub fn install_system_profile(root: &Path, toplevel: &StorePath) -> Result<(), ProfileError> {
    let db = NixDb::open(root).map_err(ProfileError::Db)?;
    if !db.is_valid(toplevel).map_err(ProfileError::Db)? {
        return Err(ProfileError::NotValid(toplevel.clone()));
    }
    let profiles = root.join("nix/var/nix/profiles");
    fs::create_dir_all(&profiles).map_err(|e| ProfileError::Create(profiles.clone(), e))?;
    replace_symlink(toplevel.as_str(), &profiles.join("system-1-link"))?;
    replace_symlink("system-1-link", &profiles.join("system"))?;
    let etc = root.join("etc");
    fs::create_dir_all(&etc).map_err(|e| ProfileError::Create(etc.clone(), e))?;
    let marker = etc.join("NIXOS");
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&marker)
        .map_err(|e| ProfileError::Create(marker, e))?;
    Ok(())
}
