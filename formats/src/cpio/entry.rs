//! One archive member, as written by the writer and returned by the reader.

/// File type bits (`S_IFMT` and friends) as stored in the newc `mode` field.
pub(crate) mod mode_bits {
    pub const S_IFMT: u32 = 0o170_000;
    pub const S_IFSOCK: u32 = 0o140_000;
    pub const S_IFLNK: u32 = 0o120_000;
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFBLK: u32 = 0o060_000;
    pub const S_IFDIR: u32 = 0o040_000;
    pub const S_IFCHR: u32 = 0o020_000;
    pub const S_IFIFO: u32 = 0o010_000;
    /// Permission bits including setuid, setgid and sticky.
    pub const PERM_MASK: u32 = 0o7777;
}

/// What an entry is, with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A symbolic link and its target (stored as the entry's data).
    Symlink(String),
    /// A character device node.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device node.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

impl EntryKind {
    /// The `S_IFMT` bits for this kind.
    pub(crate) fn type_bits(&self) -> u32 {
        use mode_bits::*;
        match self {
            EntryKind::Directory => S_IFDIR,
            EntryKind::File(_) => S_IFREG,
            EntryKind::Symlink(_) => S_IFLNK,
            EntryKind::CharDevice { .. } => S_IFCHR,
            EntryKind::BlockDevice { .. } => S_IFBLK,
            EntryKind::Fifo => S_IFIFO,
            EntryKind::Socket => S_IFSOCK,
        }
    }
}

/// One member of a cpio archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, relative (no leading `/`), `/`-separated.
    pub path: String,
    /// Permission bits (`0o7777` mask); the file type comes from `kind`.
    pub perm: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Type and payload.
    pub kind: EntryKind,
}

impl Entry {
    /// A root-owned entry with mtime 0.
    pub fn new(path: impl Into<String>, perm: u32, kind: EntryKind) -> Self {
        Entry {
            path: path.into(),
            perm,
            uid: 0,
            gid: 0,
            mtime: 0,
            kind,
        }
    }

    /// The full `st_mode`: type bits plus permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.type_bits() | (self.perm & mode_bits::PERM_MASK)
    }
}
