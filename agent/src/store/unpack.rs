//! `NarUnpacker`: writes one NAR stream into `<root>/nix/store/<hash-name>`,
//! hashing it as it goes, and puts it in place only when it verified.
//!
//! Invariants:
//! - Everything is written under `<root>/nix/store/.landfall-tmp-<hash-name>`
//!   through directory file descriptors, never following a symlink
//!   (see [`super::fsat`]); whatever was at that name before is removed first.
//! - On a decode error, a narHash or narSize mismatch, trailing bytes or a
//!   write error, everything written for the path is removed; other paths are
//!   not touched.
//! - Nodes get canonical store metadata: files 0444 or 0555, directories
//!   0555, symlinks as created, mtime 1, owner root.
//! - Only a verified tree is renamed to the final name (replacing an
//!   unregistered leftover there). Nothing is fsync'ed per file: call
//!   [`NarUnpacker::sync`] once before registering a batch of paths.
//! - Memory is fixed: the decoder's buffers and one fd per open directory level.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use landfall_proto::nar::{DecodeError, Limits, NarDecoder, NarEvent, NarHash, StorePath};

use super::fsat;

/// Prefix of the temporary name a path is written under.
pub const TMP_PREFIX: &str = ".landfall-tmp-";

/// Below the decoder's 64 KiB data reads, so file contents bypass this
/// buffer (one copy less); it only gathers the small tag and length reads.
const READ_BUFFER: usize = 16 * 1024;
/// Directory nesting the unpacker accepts (one open fd per level).
const MAX_DEPTH: usize = 256;

/// Why a store path could not be unpacked. In every case nothing is left behind.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// `<root>/nix/store` could not be created or opened.
    #[error("Cannot prepare the store directory {dir}")]
    StoreDir {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The NAR stream was malformed or hostile.
    #[error("Rejected the NAR of {path}")]
    Decode {
        /// The store path.
        path: StorePath,
        /// What the decoder found.
        #[source]
        source: DecodeError,
    },
    /// The NAR's hash is not the one announced.
    #[error("NAR hash mismatch for {path}: expected {expected}, got {actual}")]
    HashMismatch {
        /// The store path.
        path: StorePath,
        /// Announced.
        expected: NarHash,
        /// Computed.
        actual: NarHash,
    },
    /// The NAR's size is not the one announced.
    #[error("NAR size mismatch for {path}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The store path.
        path: StorePath,
        /// Announced.
        expected: u64,
        /// Received (a lower bound when the stream ran over).
        actual: u64,
    },
    /// Bytes followed the end of the NAR.
    #[error("Unexpected bytes after the NAR of {path}")]
    TrailingData {
        /// The store path.
        path: StorePath,
    },
    /// A filesystem step failed.
    #[error("Cannot {step} for {path}")]
    Write {
        /// The store path.
        path: StorePath,
        /// What was being done.
        step: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// Removing a failed path failed too (the first error is in the message).
    #[error("Cannot remove the partial {path} after: {first}")]
    Cleanup {
        /// The store path.
        path: StorePath,
        /// The error that caused the cleanup.
        first: String,
        /// Why removal failed.
        #[source]
        source: io::Error,
    },
    /// Flushing the store's filesystem failed.
    #[error("Cannot sync the store filesystem")]
    Sync(#[source] io::Error),
}

/// What one successful unpack wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedPath {
    /// The store path now in place.
    pub path: StorePath,
    /// Its verified NAR hash.
    pub nar_hash: NarHash,
    /// Its verified NAR size.
    pub nar_size: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file contents written.
    pub file_bytes: u64,
}

/// Unpacks NARs into one root's store directory.
pub struct NarUnpacker {
    store_dir: PathBuf,
    store: OwnedFd,
    /// Files get their final mode at creation (the umask keeps 0555's bits),
    /// so no fchmod per file.
    modes_at_create: bool,
    /// Nodes inside the path's own directories are root-owned at creation,
    /// so no fchown per node (the top node is always chowned).
    root_owned: bool,
}

impl NarUnpacker {
    /// Prepares `<root>/nix/store` (mode 1775, created if needed). `root`
    /// itself is trusted: it is the filesystem the agent mounted; `nix` and
    /// `nix/store` below it are opened without following a symlink (a
    /// reused disk's `nix -> /` is refused, not written through).
    pub fn open(root: &Path) -> Result<Self, UnpackError> {
        let store_dir = root.join("nix/store");
        let err = |source| UnpackError::StoreDir {
            dir: store_dir.clone(),
            source,
        };
        let store = fsat::dir_chain_at(File::open(root).map_err(err)?, &[b"nix", b"store"], true)
            .map_err(err)?;
        let store_file = File::from(store.try_clone().map_err(err)?);
        store_file
            .set_permissions(fs::Permissions::from_mode(0o1775))
            .map_err(err)?;
        Ok(Self {
            store_dir,
            store,
            modes_at_create: fsat::current_umask().is_some_and(|m| m & 0o555 == 0),
            root_owned: fsat::creates_root_owned(),
        })
    }

    /// `<root>/nix/store`.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Unpacks the NAR `nar` of `path`, which must hash to `nar_hash` and be
    /// exactly `nar_size` bytes, and must end exactly where the NAR ends.
    /// Replaces whatever is at the final name: ask the database which paths
    /// are missing first ([`super::query_missing`]).
    pub fn unpack(
        &self,
        path: &StorePath,
        nar_hash: &NarHash,
        nar_size: u64,
        nar: impl Read,
    ) -> Result<UnpackedPath, UnpackError> {
        let tmp = format!("{TMP_PREFIX}{}", path.base_name());
        let werr = |step| {
            move |source| UnpackError::Write {
                path: path.clone(),
                step,
                source,
            }
        };
        fsat::remove_tree_at(&self.store, tmp.as_bytes(), MAX_DEPTH + 1)
            .map_err(werr("remove an old temporary tree"))?;

        let limited = BufReader::with_capacity(READ_BUFFER, nar.take(nar_size.saturating_add(1)));
        let result = self
            .write_tree(path, tmp.as_bytes(), limited, nar_hash, nar_size)
            .and_then(|written| {
                let base = path.base_name().as_bytes();
                fsat::remove_tree_at(&self.store, base, MAX_DEPTH + 1)
                    .map_err(werr("remove an unregistered leftover"))?;
                // Plain renameat (musl has no renameat2 wrapper): the final name was
                // just cleared, and rename never follows a symlink at either name.
                nix::fcntl::renameat(&self.store, tmp.as_str(), &self.store, path.base_name())
                    .map_err(|e| werr("rename into place")(io::Error::from(e)))?;
                Ok(written)
            });
        result.map_err(|first| {
            // Absent after a successful rename, so this only removes a failed tree.
            match fsat::remove_tree_at(&self.store, tmp.as_bytes(), MAX_DEPTH + 1) {
                Ok(()) => first,
                Err(source) => UnpackError::Cleanup {
                    path: path.clone(),
                    first: first.to_string(),
                    source,
                },
            }
        })
    }

    fn write_tree(
        &self,
        path: &StorePath,
        tmp: &[u8],
        mut reader: BufReader<io::Take<impl Read>>,
        nar_hash: &NarHash,
        nar_size: u64,
    ) -> Result<UnpackedPath, UnpackError> {
        let werr = |step| {
            move |source| UnpackError::Write {
                path: path.clone(),
                step,
                source,
            }
        };
        let limits = Limits {
            max_depth: MAX_DEPTH,
            ..Limits::default()
        };
        let mut dec = NarDecoder::with_limits(&mut reader, limits);
        let mut dirs: Vec<OwnedFd> = Vec::new();
        let mut name: Vec<u8> = tmp.to_vec();
        let mut file: Option<(File, bool, bool)> = None;
        let (mut files, mut file_bytes) = (0u64, 0u64);
        loop {
            let event = match dec.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(source) => {
                    let overran = dec.consumed() > nar_size;
                    return Err(if matches!(source, DecodeError::Truncated) && overran {
                        UnpackError::SizeMismatch {
                            path: path.clone(),
                            expected: nar_size,
                            actual: dec.consumed(),
                        }
                    } else {
                        UnpackError::Decode {
                            path: path.clone(),
                            source,
                        }
                    });
                }
            };
            let parent = match dirs.last() {
                Some(fd) => fd.as_fd(),
                None => self.store.as_fd(),
            };
            // Only the top node's parent is the store directory, which we did not make.
            let chown = !self.root_owned || dirs.is_empty();
            match event {
                NarEvent::Directory => {
                    let fd =
                        fsat::create_dir_at(parent, &name).map_err(werr("create a directory"))?;
                    dirs.push(fd);
                }
                NarEvent::Entry { name: n } => {
                    name.clear();
                    name.extend_from_slice(n);
                }
                NarEvent::File { executable, .. } => {
                    let mode = if !self.modes_at_create {
                        0o600
                    } else if executable {
                        0o555
                    } else {
                        0o444
                    };
                    let f =
                        fsat::create_file_at(parent, &name, mode).map_err(werr("create a file"))?;
                    file = Some((f, executable, chown));
                    files += 1;
                }
                NarEvent::Data(d) => {
                    if let Some((f, _, _)) = file.as_mut() {
                        f.write_all(d).map_err(werr("write a file"))?;
                        file_bytes += d.len() as u64;
                    }
                }
                NarEvent::FileEnd => {
                    if let Some((f, executable, chown)) = file.take() {
                        let mode = if executable { 0o555 } else { 0o444 };
                        let mode = (!self.modes_at_create).then_some(mode);
                        fsat::canonicalise_with(&f, mode, chown)
                            .map_err(werr("set file metadata"))?;
                    }
                }
                NarEvent::Symlink { target } => {
                    fsat::create_symlink_at(parent, &name, target, chown)
                        .map_err(werr("create a symlink"))?;
                }
                NarEvent::DirectoryEnd => {
                    if let Some(fd) = dirs.pop() {
                        let chown = !self.root_owned || dirs.is_empty();
                        fsat::canonicalise_with(&fd, Some(0o555), chown)
                            .map_err(werr("set directory metadata"))?;
                    }
                }
            }
        }
        let summary = dec.summary();
        drop(dec);
        let Some(summary) = summary else {
            return Err(UnpackError::Decode {
                path: path.clone(),
                source: DecodeError::Truncated,
            });
        };
        if summary.nar_size != nar_size {
            return Err(UnpackError::SizeMismatch {
                path: path.clone(),
                expected: nar_size,
                actual: summary.nar_size,
            });
        }
        let mut probe = [0u8; 1];
        if reader
            .read(&mut probe)
            .map_err(werr("read the stream end"))?
            != 0
        {
            return Err(UnpackError::TrailingData { path: path.clone() });
        }
        if summary.nar_hash != *nar_hash {
            return Err(UnpackError::HashMismatch {
                path: path.clone(),
                expected: *nar_hash,
                actual: summary.nar_hash,
            });
        }
        Ok(UnpackedPath {
            path: path.clone(),
            nar_hash: summary.nar_hash,
            nar_size,
            files,
            file_bytes,
        })
    }

    /// Flushes the store's filesystem (`syncfs`): call once per batch, before
    /// registering the batch as valid.
    pub fn sync(&self) -> Result<(), UnpackError> {
        nix::unistd::syncfs(&self.store).map_err(|e| UnpackError::Sync(e.into()))
    }

    /// Removes a store path (an unverified or unregistered leftover).
    pub fn remove(&self, path: &StorePath) -> Result<(), UnpackError> {
        fsat::remove_tree_at(&self.store, path.base_name().as_bytes(), MAX_DEPTH + 1).map_err(
            |source| UnpackError::Write {
                path: path.clone(),
                step: "remove",
                source,
            },
        )
    }
}
