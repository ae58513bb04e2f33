//! A newc ("070701") cpio writer: the format the kernel unpacks as initramfs.
//!
//! Small on purpose: directories, regular files, symlinks and device nodes,
//! each header followed by its name and data, each padded to 4 bytes, ended by
//! the `TRAILER!!!` entry. Inode numbers are unique per entry; times are 0 so
//! the output is reproducible.

use std::io::{self, Write};

const FILE: u32 = 0o100000;
const DIR: u32 = 0o040000;
const SYMLINK: u32 = 0o120000;
const CHAR_DEVICE: u32 = 0o020000;

/// Writes newc cpio entries to `W`.
pub struct NewcWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> NewcWriter<W> {
    /// A writer with no entries yet.
    pub fn new(out: W) -> NewcWriter<W> {
        NewcWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// A directory (`path` without a leading `/`, e.g. `lib/modules`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, DIR | (perm & 0o7777), 2, 0, 0, &[])
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, FILE | (perm & 0o7777), 1, 0, 0, data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, SYMLINK | 0o777, 1, 0, 0, target.as_bytes())
    }

    /// A character device node (e.g. `dev/console`, 5:1).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, CHAR_DEVICE | (perm & 0o7777), 1, major, minor, &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, 0, 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev_major: u32,
        rdev_minor: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {path:?}"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{path} is over 4 GiB"))
        })?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            rdev_major,
            rdev_minor,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % 4) as usize;
        if rem != 0 {
            self.put(&[0u8; 3][..4 - rem])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_alignment() {
        let mut w = NewcWriter::new(Vec::new());
        w.file("a", 0o644, b"xyz").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..6], b"070701");
        // 110-byte header + "a\0" = 112, aligned; data 3 bytes padded to 4.
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..116], b"xyz\0");
        assert_eq!(&out[116..122], b"070701");
        assert_eq!(out.len() % 4, 0);
        let mode = u32::from_str_radix(std::str::from_utf8(&out[14..22]).unwrap(), 16).unwrap();
        assert_eq!(mode, 0o100644);
    }

    #[test]
    fn rejects_empty_names() {
        let mut w = NewcWriter::new(Vec::new());
        assert!(w.file("/", 0o644, b"").is_err());
    }
}
