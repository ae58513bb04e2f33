//! Opening `landfall-agent kexec`'s inputs (kernel, initrd) so that what is
//! loaded is what the controller uploaded: each is opened without following
//! a symbolic link (`O_NOFOLLOW`), must be a regular file owned by root (or
//! by the user running the command) and writable by nobody else, and its
//! SHA-256, computed over the open file, must equal the one given on the
//! command line. The checks are pure functions on the `fstat` of the open
//! file, so a file swapped after the check cannot be the one read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What the checks look at: the `fstat` of the opened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputStat {
    pub regular: bool,
    pub uid: u32,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// Why an input was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0} is a symbolic link (inputs are opened without following links)")]
    Symlink(PathBuf),
    #[error("Cannot open {0}")]
    Open(PathBuf, #[source] std::io::Error),
    #[error("Cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0} is not a regular file")]
    NotRegular(PathBuf),
    #[error("{path} is owned by uid {uid}, not by root (or the user running this)")]
    Owner { path: PathBuf, uid: u32 },
    #[error("{path} is writable by group or others (mode {mode:o})")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} does not have the expected SHA-256 (expected {expected}, found {found}): it changed after the upload")]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("--{flag} {value} is not a SHA-256 (64 hex digits)")]
    BadSha256 { flag: &'static str, value: String },
}

/// Refuses a file that is not regular, is owned by neither root nor
/// `caller_uid`, or that group or others may write.
pub fn check_stat(path: &Path, st: InputStat, caller_uid: u32) -> Result<(), InputError> {
    if !st.regular {
        return Err(InputError::NotRegular(path.into()));
    }
    if st.uid != 0 && st.uid != caller_uid {
        return Err(InputError::Owner {
            path: path.into(),
            uid: st.uid,
        });
    }
    if st.mode & 0o022 != 0 {
        return Err(InputError::Writable {
            path: path.into(),
            mode: st.mode,
        });
    }
    Ok(())
}

/// Parses a `--…-sha256` value (64 hex digits, either case).
pub fn parse_sha256(flag: &'static str, value: &str) -> Result<[u8; 32], InputError> {
    let bad = || InputError::BadSha256 {
        flag,
        value: value.to_string(),
    };
    let bytes = hex::decode(value).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Compares a computed digest with the expected one.
pub fn check_sha256(path: &Path, expected: &[u8; 32], found: &[u8]) -> Result<(), InputError> {
    if found == expected {
        return Ok(());
    }
    Err(InputError::Sha256Mismatch {
        path: path.into(),
        expected: hex::encode(expected),
        found: hex::encode(found),
    })
}

/// Opens `path` without following a link and checks its `fstat`.
pub fn open_checked(path: &Path) -> Result<File, InputError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => InputError::Symlink(path.into()),
            _ => InputError::Open(path.into(), e),
        })?;
    let m = f.metadata().map_err(|e| InputError::Read(path.into(), e))?;
    let st = InputStat {
        regular: m.file_type().is_file(),
        uid: m.uid(),
        mode: m.mode() & 0o7777,
    };
    check_stat(path, st, nix::unistd::geteuid().as_raw())?;
    Ok(f)
}

/// Copies `src` into `dst` while hashing it; returns (bytes, SHA-256).
pub fn copy_hashing(
    path: &Path,
    src: &mut File,
    dst: &mut impl Write,
) -> Result<(u64, [u8; 32]), InputError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| InputError::Read(path.into(), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(|e| InputError::Read(path.into(), e))?;
        total += n as u64;
    }
    Ok((total, h.finalize().into()))
}

/// Opens and checks `path`; with `expected`, also its SHA-256 over the open
/// file, which is then rewound for the caller.
pub fn open_verified(path: &Path, expected: Option<&[u8; 32]>) -> Result<File, InputError> {
    let mut f = open_checked(path)?;
    if let Some(expected) = expected {
        let (_, found) = copy_hashing(path, &mut f, &mut std::io::sink())?;
        check_sha256(path, expected, &found)?;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| InputError::Read(path.into(), e))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(regular: bool, uid: u32, mode: u32) -> InputStat {
        InputStat { regular, uid, mode }
    }

    #[test]
    fn root_owned_files_not_writable_by_others_pass() {
        let p = Path::new("/run/landfall.x/initrd");
        check_stat(p, st(true, 0, 0o644), 0).unwrap();
        check_stat(p, st(true, 0, 0o600), 0).unwrap();
        check_stat(p, st(true, 0, 0o755), 0).unwrap();
        // The user running it may own it (it cannot kexec, but it may dry-run).
        check_stat(p, st(true, 1000, 0o644), 1000).unwrap();
    }

    #[test]
    fn others_files_and_open_modes_are_refused() {
        let p = Path::new("/tmp/landfall.x/bzImage");
        assert!(matches!(
            check_stat(p, st(true, 1000, 0o644), 0),
            Err(InputError::Owner { uid: 1000, .. })
        ));
        assert!(matches!(
            check_stat(p, st(true, 0, 0o664), 0),
            Err(InputError::Writable { mode: 0o664, .. })
        ));
        assert!(matches!(
            check_stat(p, st(true, 0, 0o646), 0),
            Err(InputError::Writable { .. })
        ));
        assert!(matches!(
            check_stat(p, st(false, 0, 0o644), 0),
            Err(InputError::NotRegular(_))
        ));
    }

    #[test]
    fn sha256_values() {
        let h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let v = parse_sha256("initrd-sha256", h).unwrap();
        check_sha256(Path::new("f"), &v, &Sha256::digest(b"abc")).unwrap();
        let e = check_sha256(Path::new("f"), &v, &Sha256::digest(b"abd")).unwrap_err();
        assert!(e.to_string().contains("changed after the upload"), "{e}");
        assert!(parse_sha256("initrd-sha256", &h[1..]).is_err());
        assert!(parse_sha256("initrd-sha256", &h.replace('a', "g")).is_err());
    }

    #[test]
    fn links_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("initrd");
        std::fs::write(&real, b"abc").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(open_checked(&link), Err(InputError::Symlink(_))));
        let expected: [u8; 32] = Sha256::digest(b"abc").into();
        let mut f = open_verified(&real, Some(&expected)).unwrap();
        let mut back = String::new();
        f.read_to_string(&mut back).unwrap();
        assert_eq!(back, "abc", "the file is rewound after hashing");
    }
}
