//! A minimal newc (SVR4 "070701") cpio writer for the small archive appended to
//! the RAM image's initrd: regular files and their parent directories, owned by
//! root, mtime 0. (The image crate has a full writer; the agent may depend only
//! on `proto`, and the session archive needs just this much.)
//!
//! Invariants: every header and every file body starts at a multiple of 4; the
//! archive ends with `TRAILER!!!`; inode numbers are distinct.

use std::collections::BTreeSet;

const MAGIC: &str = "070701";
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// Why an archive cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NewcError {
    #[error("Invalid path in the archive: {0:?}")]
    Path(String),
    #[error("{0:?} is larger than 4 GiB")]
    TooLarge(String),
}

/// A regular file for the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Path inside the image, e.g. `/etc/landfall/tls/agent.key`.
    pub path: String,
    /// Permission bits, e.g. `0o600`.
    pub perm: u32,
    pub data: Vec<u8>,
}

/// `/a//b/./c` → `a/b/c`; refuses `..`, NUL and empty paths.
fn normalize(path: &str) -> Result<String, NewcError> {
    if path.contains('\0') {
        return Err(NewcError::Path(path.into()));
    }
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(NewcError::Path(path.into())),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(NewcError::Path(path.into()));
    }
    Ok(parts.join("/"))
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(MAGIC.as_bytes());
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// An uncompressed newc archive with `files` and their parent directories
/// (mode 0755), directories first, then files in the given order.
pub fn archive(files: &[ArchiveFile]) -> Result<Vec<u8>, NewcError> {
    let mut dirs = BTreeSet::new();
    let mut normalized = Vec::with_capacity(files.len());
    for f in files {
        let path = normalize(&f.path)?;
        if u32::try_from(f.data.len()).is_err() {
            return Err(NewcError::TooLarge(path));
        }
        let mut acc = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            dirs.insert(acc.clone());
        }
        normalized.push((path, f));
    }
    let mut out = Vec::new();
    let mut ino = 1;
    // BTreeSet order puts a parent before its children ("etc" < "etc/landfall").
    for d in &dirs {
        entry(&mut out, ino, S_IFDIR | 0o755, 2, d, &[]);
        ino += 1;
    }
    for (path, f) in normalized {
        entry(
            &mut out,
            ino,
            S_IFREG | (f.perm & 0o7777),
            1,
            &path,
            &f.data,
        );
        ino += 1;
    }
    entry(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
    Ok(out)
}

/// Appends `archive` to `initrd`, padding the initrd with NULs to a multiple of
/// 4 first: the kernel recognises an uncompressed archive after a compressed
/// one only at a 4-byte aligned offset (init/initramfs.c skips NULs between).
pub fn append(initrd: &mut Vec<u8>, archive: &[u8]) {
    pad4(initrd);
    initrd.extend_from_slice(archive);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent reader for the test: (name, mode, data) per entry.
    fn read(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let total = b.len();
        let mut out = Vec::new();
        loop {
            let off = total - b.len();
            assert_eq!(off % 4, 0, "header at an unaligned offset");
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).unwrap(), 16)
                    .unwrap()
            };
            let mode = field(1);
            let size = field(6) as usize;
            let namesize = field(11) as usize;
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0);
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn round_trip_with_parents() {
        let a = archive(&[
            ArchiveFile {
                path: "/etc/landfall/tls/agent.key".into(),
                perm: 0o600,
                data: b"KEY".into(),
            },
            ArchiveFile {
                path: "/etc/landfall/network.json".into(),
                perm: 0o644,
                data: b"{\"interfaces\":[]}".into(),
            },
        ])
        .unwrap();
        assert_eq!(a.len() % 4, 0);
        let e = read(&a);
        let names: Vec<(&str, u32)> = e.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        assert_eq!(
            names,
            [
                ("etc", 0o040755),
                ("etc/landfall", 0o040755),
                ("etc/landfall/tls", 0o040755),
                ("etc/landfall/tls/agent.key", 0o100600),
                ("etc/landfall/network.json", 0o100644),
            ]
        );
        assert_eq!(e[3].2, b"KEY");
    }

    #[test]
    fn gnu_cpio_reads_it() {
        let a = archive(&[ArchiveFile {
            path: "a/b.txt".into(),
            perm: 0o640,
            data: b"hello".into(),
        }])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-idm", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("cpio (Debian package cpio) is needed for this test");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &a).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"hello");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a/b.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn bad_paths_are_refused() {
        let f = |p: &str| ArchiveFile {
            path: p.into(),
            perm: 0o644,
            data: vec![],
        };
        assert!(matches!(archive(&[f("../x")]), Err(NewcError::Path(_))));
        assert!(matches!(archive(&[f("/")]), Err(NewcError::Path(_))));
        assert!(matches!(archive(&[f("a\0b")]), Err(NewcError::Path(_))));
    }

    #[test]
    fn append_aligns() {
        let mut initrd = vec![1, 2, 3, 4, 5];
        append(&mut initrd, b"0707");
        assert_eq!(initrd, [1, 2, 3, 4, 5, 0, 0, 0, b'0', b'7', b'0', b'7']);
    }
}
