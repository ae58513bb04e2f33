//! The newc ("070701") cpio format the Linux kernel unpacks as its initramfs.
//!
//! - [`NewcWriter`] streams entries to any `io::Write`, deterministically: every
//!   entry has mtime 0, uid/gid 0 unless the [`Entry`] says otherwise, and inode
//!   numbers counting up from 1, so the same input always gives the same bytes.
//! - [`read_archive`] parses an archive back into [`Entry`] values. It is meant for
//!   untrusted input (tests, fuzzers): it never panics, it returns [`CpioReadError`].
//! - [`ArchiveTree`] collects entries by path, creates missing parent directories,
//!   and writes them parents-first in a stable order.
//!
//! Layout of one entry (all numbers are 8 ASCII hex digits):
//! `070701 ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor
//! rdevminor namesize check`, then the NUL-terminated name, padded with NULs so
//! the header + name is a multiple of 4 bytes, then the data, padded to 4 bytes.
//! The archive ends with an entry named `TRAILER!!!`.

mod entry;
mod header;
mod reader;
mod tree;
mod writer;

pub use entry::{Entry, EntryKind};
pub use reader::{read_archive, read_archive_prefix, CpioReadError};
pub use tree::ArchiveTree;
pub use writer::{normalize_path, CpioWriteError, NewcWriter};

#[cfg(test)]
mod tests;
