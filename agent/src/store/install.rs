//! `StoreInstaller`: the store engine as the service uses it. Paths are
//! unpacked as they arrive and queued; `commit` flushes the filesystem and
//! registers the queued paths in one transaction. Only paths this installer
//! verified are ever registered, so a path that failed cannot become valid.
//! A connection lost before `commit` leaves unregistered paths, which
//! [`query_missing`] reports as missing, so the re-run sends them again.

use std::io::Read;
use std::path::{Path, PathBuf};

use landfall_proto::nar::{PathInfo, StorePath};

use super::db::{DbError, NixDb};
use super::missing::query_missing;
use super::profile::{install_system_profile, ProfileError};
use super::unpack::{NarUnpacker, UnpackError, UnpackedPath};

/// Why installing into the store failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Unpacking a path failed (nothing of it was left behind).
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The profile could not be set.
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// Unpacks, verifies and registers store paths in one root.
pub struct StoreInstaller {
    root: PathBuf,
    unpacker: NarUnpacker,
    db: NixDb,
    pending: Vec<PathInfo>,
}

impl StoreInstaller {
    /// Opens (creating as needed) the root's store directory and database.
    pub fn open(root: &Path) -> Result<Self, InstallError> {
        Ok(Self {
            root: root.to_path_buf(),
            unpacker: NarUnpacker::open(root)?,
            db: NixDb::open(root)?,
            pending: Vec::new(),
        })
    }

    /// The paths of `paths` the root does not have yet (valid and on disk).
    pub fn missing(&self, paths: &[StorePath]) -> Result<Vec<StorePath>, InstallError> {
        Ok(query_missing(&self.root, paths)?)
    }

    /// Unpacks one path's NAR (exactly its bytes), verifies it against
    /// `info.nar_hash`/`info.nar_size`, and queues it for registration.
    pub fn add(&mut self, info: &PathInfo, nar: impl Read) -> Result<UnpackedPath, InstallError> {
        let done = self
            .unpacker
            .unpack(&info.path, &info.nar_hash, info.nar_size, nar)?;
        self.pending.push(info.clone());
        Ok(done)
    }

    /// The root the store is written under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Paths unpacked but not yet registered.
    pub fn pending(&self) -> &[PathInfo] {
        &self.pending
    }

    /// Flushes the filesystem, then registers every queued path valid (one
    /// transaction). Send paths references-first, so every reference is
    /// valid already or in the same commit.
    pub fn commit(&mut self) -> Result<usize, InstallError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        self.unpacker.sync()?;
        self.db.register(&self.pending)?;
        let n = self.pending.len();
        self.pending.clear();
        Ok(n)
    }

    /// Commits, then points the system profile at `toplevel` and creates `/etc/NIXOS`.
    pub fn finish(mut self, toplevel: &StorePath) -> Result<(), InstallError> {
        self.commit()?;
        install_system_profile(&self.root, toplevel)?;
        Ok(())
    }
}
