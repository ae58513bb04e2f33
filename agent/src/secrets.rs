//! Secret files in the agent's RAM: the disk keys a layout names on the target
//! (LUKS `keyFile`, `passwordFile`, `additionalKeyFiles`), which the controller
//! sends with `--disk-encryption-keys REMOTE LOCAL` as nixos-anywhere's flag
//! of the same name puts them on the target.
//!
//! Invariants:
//! - Every request is checked whole before the first file is written: an
//!   absolute path without `.`/`..` components, not beneath the install root
//!   (a key must never reach the installed disk), content neither empty nor
//!   larger than [`MAX_SECRET_BYTES`], at most [`MAX_SECRET_FILES`] files.
//! - A file is written only where the parent folder lives in RAM (tmpfs or
//!   ramfs), created 0600 under a temporary name without following links and
//!   renamed into place, so a reader sees the old key or the new one, never a
//!   part. Missing parent folders are created 0700.
//! - Content is never logged; errors name the path only.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};

/// <uapi/linux/magic.h> RAMFS_MAGIC (the nix crate names only tmpfs's).
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);

/// The largest secret file accepted: key files are bytes to kilobytes.
pub const MAX_SECRET_BYTES: usize = 1 << 20;
/// The most files one request may carry.
pub const MAX_SECRET_FILES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret path {path:?} is not absolute")]
    NotAbsolute { path: String },
    #[error("secret path {path:?} has a `.` or `..` component")]
    DotComponent { path: String },
    #[error("secret path {path:?} lies beneath the install root {root}: keys never go onto the installed disk")]
    BeneathRoot { path: String, root: PathBuf },
    #[error("secret file {path:?} is empty: an empty key unlocks nothing")]
    Empty { path: String },
    #[error("secret file {path:?} is {len} bytes, more than the {max} a key file may have")]
    TooLarge {
        path: String,
        len: usize,
        max: usize,
    },
    #[error("{count} secret files in one request, more than {max}")]
    TooMany { count: usize, max: usize },
    #[error("secret path {path:?} is named twice in one request")]
    Duplicate { path: String },
    #[error("secret path {path:?}: its folder is not in RAM (filesystem type {fs_type:#x}); keys are kept only on tmpfs or ramfs")]
    NotInRam { path: String, fs_type: i64 },
    #[error("secret path {path:?}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// One file to put: where and what.
pub struct SecretFile<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
}

/// Checks one path: absolute, plain components only, not beneath `root`
/// (unless `root` is `/`, the agent's own root when it installs in place).
fn check_path(path: &str, root: &Path) -> Result<PathBuf, SecretError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(SecretError::NotAbsolute { path: path.into() });
    }
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => clean.push(n),
            _ => return Err(SecretError::DotComponent { path: path.into() }),
        }
    }
    // `Path` drops inner `.` components silently; refuse them by the text.
    if path.split('/').any(|seg| seg == "." || seg == "..")
        || path.ends_with('/')
        || clean == Path::new("/")
    {
        return Err(SecretError::DotComponent { path: path.into() });
    }
    if root != Path::new("/") && clean.starts_with(root) {
        return Err(SecretError::BeneathRoot {
            path: path.into(),
            root: root.to_path_buf(),
        });
    }
    Ok(clean)
}

/// Validates the whole request; returns the cleaned paths in order.
pub fn check(files: &[SecretFile<'_>], root: &Path) -> Result<Vec<PathBuf>, SecretError> {
    if files.len() > MAX_SECRET_FILES {
        return Err(SecretError::TooMany {
            count: files.len(),
            max: MAX_SECRET_FILES,
        });
    }
    let mut out: Vec<PathBuf> = Vec::with_capacity(files.len());
    for f in files {
        let clean = check_path(f.path, root)?;
        if f.content.is_empty() {
            return Err(SecretError::Empty {
                path: f.path.into(),
            });
        }
        if f.content.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge {
                path: f.path.into(),
                len: f.content.len(),
                max: MAX_SECRET_BYTES,
            });
        }
        if out.contains(&clean) {
            return Err(SecretError::Duplicate {
                path: f.path.into(),
            });
        }
        out.push(clean);
    }
    Ok(out)
}

fn io<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SecretError + 'p {
    move |source| SecretError::Io {
        path: path.display().to_string(),
        what,
        source,
    }
}

/// Checks that `dir` lives in RAM.
fn check_in_ram(dir: &Path, path: &Path) -> Result<(), SecretError> {
    let st = statfs(dir).map_err(|e| SecretError::Io {
        path: path.display().to_string(),
        what: "statfs of its folder",
        source: std::io::Error::from(e),
    })?;
    let t = st.filesystem_type();
    if t != TMPFS_MAGIC && t != RAMFS_MAGIC {
        return Err(SecretError::NotInRam {
            path: path.display().to_string(),
            fs_type: t.0 as i64,
        });
    }
    Ok(())
}

/// Writes one already-checked file: 0600 under a temporary name, then renamed.
fn write_one(path: &Path, content: &[u8]) -> Result<(), SecretError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    // The nearest folder that exists decides where the file would live;
    // nothing is created on a disk.
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    check_in_ram(existing, path)?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(path, "create its folder"))?;
    check_in_ram(dir, path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.landfall-tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "remove a stale temporary file")(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io(path, "create"))?;
    f.write_all(content).map_err(io(path, "write"))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path, "rename into place"))?;
    Ok(())
}

/// Checks the whole request, then writes every file. Returns the paths written.
pub fn put(files: &[SecretFile<'_>], root: &Path) -> Result<Vec<PathBuf>, SecretError> {
    let paths = check(files, root)?;
    for (p, f) in paths.iter().zip(files) {
        write_one(p, f.content)?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn one<'a>(path: &'a str, content: &'a [u8]) -> SecretFile<'a> {
        SecretFile { path, content }
    }

    #[test]
    fn refuses_relative_dotted_and_root_paths() {
        let root = Path::new("/mnt");
        for bad in ["disk.key", "/tmp/../etc/shadow", "/tmp/./k", "/", "/tmp/k/"] {
            let e = check(&[one(bad, b"k")], root).unwrap_err();
            assert!(
                matches!(
                    e,
                    SecretError::NotAbsolute { .. } | SecretError::DotComponent { .. }
                ),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn refuses_paths_beneath_the_install_root() {
        let e = check(&[one("/mnt/etc/disk.key", b"k")], Path::new("/mnt")).unwrap_err();
        assert!(matches!(e, SecretError::BeneathRoot { .. }), "{e}");
        // Installing in place (root "/") has no such bound.
        check(&[one("/tmp/disk.key", b"k")], Path::new("/")).unwrap();
    }

    #[test]
    fn refuses_empty_large_duplicate_and_too_many() {
        let root = Path::new("/mnt");
        let e = check(&[one("/tmp/k", b"")], root).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let big = vec![0u8; MAX_SECRET_BYTES + 1];
        assert!(matches!(
            check(&[one("/tmp/k", &big)], root).unwrap_err(),
            SecretError::TooLarge { .. }
        ));
        assert!(matches!(
            check(&[one("/tmp/k", b"a"), one("/tmp//k", b"b")], root).unwrap_err(),
            SecretError::Duplicate { .. }
        ));
        let names: Vec<String> = (0..=MAX_SECRET_FILES)
            .map(|i| format!("/tmp/k{i}"))
            .collect();
        let many: Vec<SecretFile<'_>> = names.iter().map(|n| one(n, b"k")).collect();
        assert!(matches!(
            check(&many, root).unwrap_err(),
            SecretError::TooMany { .. }
        ));
    }

    #[test]
    fn writes_0600_in_ram_and_replaces_an_old_key() {
        // /dev/shm is a tmpfs on every Linux this runs on.
        let dir = Path::new("/dev/shm").join(format!("landfall-secrets-{}", std::process::id()));
        let key = dir.join("sub/disk.key");
        let key_s = key.to_str().unwrap();
        put(&[one(key_s, b"first")], Path::new("/mnt")).unwrap();
        put(&[one(key_s, b"second")], Path::new("/mnt")).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"second");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(dmode, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_folder_on_a_disk_and_writes_nothing() {
        // The checkout lives on a disk filesystem, not in RAM.
        let on_disk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target-secrets-probe");
        let probe = on_disk.join("disk.key");
        let e = put(&[one(probe.to_str().unwrap(), b"k")], Path::new("/mnt")).unwrap_err();
        assert!(matches!(e, SecretError::NotInRam { .. }), "{e}");
        assert!(!on_disk.exists(), "no folder is created on a disk");
    }
}
