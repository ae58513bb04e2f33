//! An in-memory set of entries keyed by path, written parents-first.

use std::collections::BTreeMap;
use std::io::Write;

use super::entry::{Entry, EntryKind};
use super::writer::{normalize_path, CpioWriteError, NewcWriter};

/// Permission of directories created implicitly as parents.
const PARENT_DIR_PERM: u32 = 0o755;

/// Entries keyed by normalised path. Inserting `a/b/c` also inserts the
/// directories `a` and `a/b` (mode 0755) unless they are already present.
///
/// Invariant: every entry's parent is present and is a directory. Written in
/// byte order of the path, which puts every directory before its contents
/// (a parent's path is a prefix of its children's).
#[derive(Debug, Default, Clone)]
pub struct ArchiveTree {
    entries: BTreeMap<String, Entry>,
}

impl ArchiveTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry, creating missing parent directories.
    /// Replacing a directory that has contents with a non-directory is refused.
    pub fn insert(&mut self, mut entry: Entry) -> Result<(), CpioWriteError> {
        let path = normalize_path(&entry.path)?;
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for component in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.entries.get(&parent) {
                Some(existing) if existing.kind != EntryKind::Directory => {
                    return Err(CpioWriteError::InvalidPath(path));
                }
                Some(_) => {}
                None => {
                    let dir = Entry::new(parent.clone(), PARENT_DIR_PERM, EntryKind::Directory);
                    self.entries.insert(parent.clone(), dir);
                }
            }
        }
        if entry.kind != EntryKind::Directory && self.has_children(&path) {
            return Err(CpioWriteError::InvalidPath(path));
        }
        entry.path = path.clone();
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Adds a directory.
    pub fn directory(&mut self, path: &str, perm: u32) -> Result<(), CpioWriteError> {
        self.insert(Entry::new(path, perm, EntryKind::Directory))
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<(), CpioWriteError> {
        self.insert(Entry::new(path, perm, EntryKind::File(data)))
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioWriteError> {
        self.insert(Entry::new(
            path,
            0o777,
            EntryKind::Symlink(target.to_owned()),
        ))
    }

    /// Adds a character device node.
    pub fn char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioWriteError> {
        self.insert(Entry::new(
            path,
            perm,
            EntryKind::CharDevice { major, minor },
        ))
    }

    /// The entry at a (normalised) path.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Number of entries, implicit parents included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes all entries and the trailer to `out`.
    pub fn write_to<W: Write>(&self, out: W) -> Result<W, CpioWriteError> {
        let mut writer = NewcWriter::new(out);
        for entry in self.entries.values() {
            writer.write_entry(entry)?;
        }
        writer.finish()
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CpioWriteError> {
        self.write_to(Vec::new())
    }

    fn has_children(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(key, _)| key.starts_with(&prefix))
    }
}
