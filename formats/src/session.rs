//! Small uncompressed archives appended to an initrd at install time
//! (session certificates, network configuration).

use crate::cpio::{ArchiveTree, CpioWriteError, Entry, EntryKind};

/// Type bits of a regular file, accepted (and ignored) in [`SessionFile::mode`].
const S_IFREG: u32 = 0o100_000;

/// A file to put into a session archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFile {
    /// Absolute or relative path inside the image, e.g. `/etc/landfall/agent.key`.
    pub path: String,
    /// Permission bits (`0o600`); regular-file type bits may be included.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// An uncompressed newc archive holding `files`, with their parent
/// directories (mode 0755) created. Append it with [`append_archive`].
/// Directories that already exist in the initrd are left as they are by the
/// kernel; files replace earlier ones with the same path.
pub fn session_cpio(files: &[SessionFile]) -> Result<Vec<u8>, CpioWriteError> {
    let mut tree = ArchiveTree::new();
    for file in files {
        let perm = match file.mode & !0o7777 {
            0 | S_IFREG => file.mode & 0o7777,
            _ => {
                return Err(CpioWriteError::InvalidPerm {
                    path: file.path.clone(),
                    perm: file.mode,
                })
            }
        };
        tree.insert(Entry::new(
            file.path.clone(),
            perm,
            EntryKind::File(file.data.clone()),
        ))?;
    }
    tree.to_bytes()
}

/// Appends `archive` (e.g. from [`session_cpio`]) to an initrd.
///
/// The kernel (init/initramfs.c) walks concatenated archives and skips NUL
/// bytes between them, but an uncompressed archive is recognised only when
/// its `070701` magic starts at an offset that is a multiple of 4 counted from
/// the start of the whole initrd. So the initrd is first padded with NULs to a
/// multiple of 4.
pub fn append_archive(initrd: &mut Vec<u8>, archive: &[u8]) {
    while !initrd.len().is_multiple_of(4) {
        initrd.push(0);
    }
    initrd.extend_from_slice(archive);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read_archive;

    #[test]
    fn session_archive_holds_files_and_parents() {
        let bytes = session_cpio(&[
            SessionFile {
                path: "/etc/landfall/tls/agent.key".into(),
                mode: 0o600,
                data: b"KEY".to_vec(),
            },
            SessionFile {
                path: "/etc/landfall/net.json".into(),
                mode: 0o100644,
                data: b"{}".to_vec(),
            },
        ])
        .unwrap();
        let entries = read_archive(&bytes).unwrap();
        let summary: Vec<(&str, u32)> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.mode()))
            .collect();
        assert_eq!(
            summary,
            [
                ("etc", 0o040755),
                ("etc/landfall", 0o040755),
                ("etc/landfall/net.json", 0o100644),
                ("etc/landfall/tls", 0o040755),
                ("etc/landfall/tls/agent.key", 0o100600),
            ]
        );
        assert_eq!(entries[4].kind, EntryKind::File(b"KEY".to_vec()));
    }

    #[test]
    fn append_pads_to_four_bytes_first() {
        let mut initrd = vec![1, 2, 3, 4, 5];
        append_archive(&mut initrd, b"0707");
        assert_eq!(initrd, [1, 2, 3, 4, 5, 0, 0, 0, b'0', b'7', b'0', b'7']);
    }

    #[test]
    fn non_regular_modes_and_bad_paths_are_refused() {
        let file = |path: &str, mode| SessionFile {
            path: path.into(),
            mode,
            data: vec![],
        };
        assert!(session_cpio(&[file("a", 0o040755)]).is_err());
        assert!(session_cpio(&[file("../etc/x", 0o644)]).is_err());
        assert!(session_cpio(&[]).is_ok());
    }
}
