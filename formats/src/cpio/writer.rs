//! Streaming newc writer with deterministic output.

use std::io::{self, Write};

use super::entry::{mode_bits, Entry, EntryKind};
use super::header::{pad4, Header, HEADER_LEN, TRAILER};

/// Why writing an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum CpioWriteError {
    /// The path is empty, contains NUL, or has a `..` component.
    #[error("Invalid archive path {0:?}")]
    InvalidPath(String),
    /// Permission bits outside `0o7777`.
    #[error("Invalid permission bits {perm:#o} for {path:?}")]
    InvalidPerm {
        /// The entry's path.
        path: String,
        /// The rejected bits.
        perm: u32,
    },
    /// The payload does not fit the format's 32-bit size field.
    #[error("Entry {0:?} is larger than 4 GiB")]
    TooLarge(String),
    /// The underlying writer failed.
    #[error("Writing the archive")]
    Io(#[source] io::Error),
}

/// Normalises an archive path: drops leading `/`, empty and `.` components,
/// rejects `..`, NUL and paths that name the root itself.
pub fn normalize_path(path: &str) -> Result<String, CpioWriteError> {
    if path.contains('\0') {
        return Err(CpioWriteError::InvalidPath(path.to_owned()));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(CpioWriteError::InvalidPath(path.to_owned())),
            other => parts.push(other),
        }
    }
    if parts.is_empty() || parts.join("/") == TRAILER {
        return Err(CpioWriteError::InvalidPath(path.to_owned()));
    }
    Ok(parts.join("/"))
}

/// Writes newc entries to `W`; call [`NewcWriter::finish`] to write the trailer.
///
/// Inode numbers count up from 1 and every entry has `nlink` 1 (2 for
/// directories), so no two entries look like hard links of each other.
#[derive(Debug)]
pub struct NewcWriter<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
}

impl<W: Write> NewcWriter<W> {
    /// A writer starting at offset 0 of `out`.
    pub fn new(out: W) -> Self {
        NewcWriter {
            out,
            offset: 0,
            next_ino: 1,
        }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A directory owned by root.
    pub fn directory(&mut self, path: &str, perm: u32) -> Result<(), CpioWriteError> {
        self.write_entry(&Entry::new(path, perm, EntryKind::Directory))
    }

    /// A regular file owned by root.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioWriteError> {
        self.write_raw(path, perm, mode_bits::S_IFREG, 0, 0, 0, (0, 0), data)
    }

    /// A symbolic link (permission 0777, as `ln -s` makes them).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioWriteError> {
        self.write_entry(&Entry::new(
            path,
            0o777,
            EntryKind::Symlink(target.to_owned()),
        ))
    }

    /// A character device node, e.g. `dev/console` with major 5, minor 1.
    pub fn char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioWriteError> {
        self.write_entry(&Entry::new(
            path,
            perm,
            EntryKind::CharDevice { major, minor },
        ))
    }

    /// Writes any entry, keeping its uid, gid and mtime.
    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), CpioWriteError> {
        let (data, rdev): (&[u8], (u32, u32)) = match &entry.kind {
            EntryKind::File(data) => (data, (0, 0)),
            EntryKind::Symlink(target) => (target.as_bytes(), (0, 0)),
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                (&[], (*major, *minor))
            }
            EntryKind::Directory | EntryKind::Fifo | EntryKind::Socket => (&[], (0, 0)),
        };
        self.write_raw(
            &entry.path,
            entry.perm,
            entry.kind.type_bits(),
            entry.uid,
            entry.gid,
            entry.mtime,
            rdev,
            data,
        )
    }

    /// Writes the `TRAILER!!!` entry and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioWriteError> {
        let header = Header {
            nlink: 1,
            namesize: TRAILER.len() as u32 + 1,
            ..Header::default()
        };
        self.emit(&header, TRAILER, &[])?;
        self.out.flush().map_err(CpioWriteError::Io)?;
        Ok(self.out)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_raw(
        &mut self,
        path: &str,
        perm: u32,
        type_bits: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioWriteError> {
        let name = normalize_path(path)?;
        if perm & !mode_bits::PERM_MASK != 0 {
            return Err(CpioWriteError::InvalidPerm {
                path: path.to_owned(),
                perm,
            });
        }
        let filesize =
            u32::try_from(data.len()).map_err(|_| CpioWriteError::TooLarge(name.clone()))?;
        let namesize =
            u32::try_from(name.len() + 1).map_err(|_| CpioWriteError::TooLarge(name.clone()))?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1).max(1);
        let header = Header {
            ino,
            mode: type_bits | perm,
            uid,
            gid,
            nlink: if type_bits == mode_bits::S_IFDIR {
                2
            } else {
                1
            },
            mtime,
            filesize,
            rdevmajor: rdev.0,
            rdevminor: rdev.1,
            namesize,
            ..Header::default()
        };
        self.emit(&header, &name, data)
    }

    fn emit(&mut self, header: &Header, name: &str, data: &[u8]) -> Result<(), CpioWriteError> {
        const ZEROS: [u8; 4] = [0; 4];
        let head_len = (HEADER_LEN + name.len() + 1) as u64;
        let name_pad = pad4(self.offset + head_len);
        let data_pad = pad4(data.len() as u64);
        let parts: [&[u8]; 6] = [
            &header.encode(),
            name.as_bytes(),
            &ZEROS[..1],
            &ZEROS[..name_pad],
            data,
            &ZEROS[..data_pad],
        ];
        for part in parts {
            self.out.write_all(part).map_err(CpioWriteError::Io)?;
            self.offset += part.len() as u64;
        }
        Ok(())
    }
}
