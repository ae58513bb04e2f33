//! NAR decoder: a pull parser over `Read` that treats its input as hostile.
//!
//! It yields [`NarEvent`]s in stream order and checks everything Nix's own
//! parser checks and more: the magic, every tag, zero padding, entry names
//! (non-empty, not `.` or `..`, no `/` or NUL, strictly ascending by bytes, so
//! no duplicates and no second node under a name already used, e.g. a
//! directory where a symlink was), symlink targets (non-empty, no NUL), and
//! every length against [`Limits`]. Memory is bounded: one data buffer, one
//! name buffer, and the previous entry name of each open directory, with the
//! nesting depth limited. It never reads past the NAR's final byte, and
//! hashes exactly the bytes it consumed.

use std::io::{self, Read};

use super::encode::NarSummary;
use super::hash::NarHasher;
use super::wire::{padding, MAGIC};

/// Bounds on the lengths a NAR may claim.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest entry name (Linux `NAME_MAX`).
    pub max_name_len: u64,
    /// Longest symlink target (Linux `PATH_MAX - 1`).
    pub max_target_len: u64,
    /// Deepest directory nesting.
    pub max_depth: usize,
    /// Largest regular file.
    pub max_file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_len: 255,
            max_target_len: 4095,
            max_depth: 1024,
            max_file_size: 1 << 40,
        }
    }
}

/// Longest tag (`nix-archive-1`, `executable`, …) with some slack.
const MAX_TAG_LEN: u64 = 32;
const DATA_CHUNK: usize = 64 * 1024;

/// Why a NAR stream was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The reader failed.
    #[error("Reading the NAR stream failed")]
    Io(#[source] io::Error),
    /// The stream ended inside the NAR.
    #[error("The NAR stream ends early")]
    Truncated,
    /// The stream does not start with `nix-archive-1`.
    #[error("Not a NAR: bad magic")]
    BadMagic,
    /// A tag other than the grammar allows here.
    #[error("Expected NAR tag {expected:?}, found {found:?}")]
    UnexpectedTag {
        /// What the grammar wants.
        expected: &'static str,
        /// What came (escaped).
        found: String,
    },
    /// A node type other than regular, symlink or directory.
    #[error("Unknown NAR node type {0:?}")]
    UnknownType(String),
    /// A length field beyond its limit.
    #[error("NAR {what} length {len} exceeds the limit {limit}")]
    AbsurdLength {
        /// Which field.
        what: &'static str,
        /// The length claimed.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Padding bytes that are not zero.
    #[error("NAR padding is not zero")]
    NonZeroPadding,
    /// An entry name that could escape or is meaningless.
    #[error("Invalid NAR entry name {name:?}: {reason}")]
    BadName {
        /// The name (escaped).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry name not greater than the one before it.
    #[error("NAR entries out of order: {name:?} after {previous:?}")]
    Unsorted {
        /// The offending name (escaped).
        name: String,
        /// The previous name (escaped).
        previous: String,
    },
    /// The same name twice in one directory.
    #[error("Duplicate NAR entry {0:?}")]
    Duplicate(String),
    /// Directories nested deeper than the limit.
    #[error("NAR directories nested deeper than {0}")]
    TooDeep(usize),
    /// A symlink with an empty target or a NUL in it.
    #[error("Invalid NAR symlink target {0:?}")]
    BadTarget(String),
}

fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// One step of a NAR, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum NarEvent<'a> {
    /// The current node is a directory; its entries follow, then `DirectoryEnd`.
    Directory,
    /// The next node is the entry `name` of the innermost open directory.
    Entry {
        /// The entry's name, validated.
        name: &'a [u8],
    },
    /// The current node is a regular file; `Data` chunks follow, then `FileEnd`.
    File {
        /// Whether the executable bit is set.
        executable: bool,
        /// Content length in bytes.
        size: u64,
    },
    /// A non-empty chunk of the current file's contents.
    Data(&'a [u8]),
    /// The current file is complete.
    FileEnd,
    /// The current node is a symlink.
    Symlink {
        /// Its target, verbatim (validated non-empty, no NUL).
        target: &'a [u8],
    },
    /// The innermost directory is complete.
    DirectoryEnd,
}

enum State {
    Start,
    Node,
    FileData { remaining: u64, size: u64 },
    DirBody,
    AfterEntry,
    Done,
}

struct HashingReader<R> {
    inner: R,
    hasher: NarHasher,
}

/// Pull parser of one NAR; call [`NarDecoder::next_event`] until `None`.
pub struct NarDecoder<R> {
    reader: HashingReader<R>,
    limits: Limits,
    state: State,
    /// Previous entry name of each open directory (`None` before the first).
    dirs: Vec<Option<Vec<u8>>>,
    data: Vec<u8>,
    text: Vec<u8>,
    summary: Option<NarSummary>,
}

impl<R: Read> NarDecoder<R> {
    /// A decoder with the default [`Limits`].
    pub fn new(reader: R) -> Self {
        Self::with_limits(reader, Limits::default())
    }

    /// A decoder with explicit limits.
    pub fn with_limits(reader: R, limits: Limits) -> Self {
        Self {
            reader: HashingReader {
                inner: reader,
                hasher: NarHasher::new(),
            },
            limits,
            state: State::Start,
            dirs: Vec::new(),
            data: Vec::new(),
            text: Vec::new(),
            summary: None,
        }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.reader.hasher.size()
    }

    /// Hash and size of the NAR, once `next_event` has returned `None`.
    pub fn summary(&self) -> Option<NarSummary> {
        self.summary
    }

    /// The underlying reader (positioned just after the NAR once it is complete).
    pub fn into_inner(self) -> R {
        self.reader.inner
    }

    /// The next event, `None` after the root node is complete.
    pub fn next_event(&mut self) -> Result<Option<NarEvent<'_>>, DecodeError> {
        loop {
            match self.state {
                State::Start => {
                    self.read_text(MAX_TAG_LEN, "magic").map_err(|e| match e {
                        DecodeError::AbsurdLength { .. } => DecodeError::BadMagic,
                        other => other,
                    })?;
                    if self.text != MAGIC {
                        return Err(DecodeError::BadMagic);
                    }
                    self.state = State::Node;
                }
                State::Node => return self.node().map(Some),
                State::FileData { remaining, size } => {
                    if remaining == 0 {
                        self.read_padding(size)?;
                        self.expect(")")?;
                        self.after_node();
                        return Ok(Some(NarEvent::FileEnd));
                    }
                    let n = remaining.min(DATA_CHUNK as u64) as usize;
                    self.data.resize(n, 0);
                    read_exact(&mut self.reader, &mut self.data[..n])?;
                    self.state = State::FileData {
                        remaining: remaining - n as u64,
                        size,
                    };
                    return Ok(Some(NarEvent::Data(&self.data[..n])));
                }
                State::DirBody => {
                    self.read_text(MAX_TAG_LEN, "tag")?;
                    if self.text == b")" {
                        self.dirs.pop();
                        self.after_node();
                        return Ok(Some(NarEvent::DirectoryEnd));
                    }
                    if self.text != b"entry" {
                        return Err(self.unexpected("entry"));
                    }
                    self.expect("(")?;
                    self.expect("name")?;
                    self.read_text(self.limits.max_name_len, "entry name")?;
                    self.check_name()?;
                    self.expect_after_name()?;
                    self.state = State::Node;
                    return Ok(Some(NarEvent::Entry { name: &self.text }));
                }
                State::AfterEntry => {
                    self.expect(")")?;
                    self.state = State::DirBody;
                }
                State::Done => {
                    if self.summary.is_none() {
                        let (nar_hash, nar_size) = self.reader.hasher.clone().finish();
                        self.summary = Some(NarSummary { nar_hash, nar_size });
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn node(&mut self) -> Result<NarEvent<'_>, DecodeError> {
        self.expect("(")?;
        self.expect("type")?;
        self.read_text(MAX_TAG_LEN, "node type")?;
        match &self.text[..] {
            b"regular" => {
                self.read_text(MAX_TAG_LEN, "tag")?;
                let executable = if self.text == b"executable" {
                    self.expect("")?;
                    self.expect("contents")?;
                    true
                } else if self.text == b"contents" {
                    false
                } else {
                    return Err(self.unexpected("contents"));
                };
                let size = self.read_u64()?;
                if size > self.limits.max_file_size {
                    return Err(DecodeError::AbsurdLength {
                        what: "file",
                        len: size,
                        limit: self.limits.max_file_size,
                    });
                }
                self.state = State::FileData {
                    remaining: size,
                    size,
                };
                Ok(NarEvent::File { executable, size })
            }
            b"symlink" => {
                self.expect("target")?;
                self.read_text(self.limits.max_target_len, "symlink target")?;
                if self.text.is_empty() || self.text.contains(&0) {
                    return Err(DecodeError::BadTarget(escaped(&self.text)));
                }
                // The target lives in `self.text`; read the closing tag into `data`.
                let len = self.read_u64()?;
                if len != 1 {
                    return Err(DecodeError::UnexpectedTag {
                        expected: ")",
                        found: format!("<string of length {len}>"),
                    });
                }
                let mut close = [0u8; 8];
                read_exact(&mut self.reader, &mut close)?;
                if close != *b")\0\0\0\0\0\0\0" {
                    return Err(if close[0] == b')' {
                        DecodeError::NonZeroPadding
                    } else {
                        DecodeError::UnexpectedTag {
                            expected: ")",
                            found: escaped(&close[..1]),
                        }
                    });
                }
                self.after_node();
                Ok(NarEvent::Symlink { target: &self.text })
            }
            b"directory" => {
                if self.dirs.len() >= self.limits.max_depth {
                    return Err(DecodeError::TooDeep(self.limits.max_depth));
                }
                self.dirs.push(None);
                self.state = State::DirBody;
                Ok(NarEvent::Directory)
            }
            other => Err(DecodeError::UnknownType(escaped(other))),
        }
    }

    fn after_node(&mut self) {
        self.state = if self.dirs.is_empty() {
            State::Done
        } else {
            State::AfterEntry
        };
    }

    fn check_name(&mut self) -> Result<(), DecodeError> {
        let name = &self.text[..];
        let reason = if name.is_empty() {
            Some("empty")
        } else if name == b"." || name == b".." {
            Some("a dot entry")
        } else if name.contains(&b'/') {
            Some("contains '/'")
        } else if name.contains(&0) {
            Some("contains NUL")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(DecodeError::BadName {
                name: escaped(name),
                reason,
            });
        }
        let Some(prev) = self.dirs.last_mut() else {
            return Err(self.unexpected("node"));
        };
        if let Some(prev) = prev {
            match name.cmp(&prev[..]) {
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Equal => return Err(DecodeError::Duplicate(escaped(name))),
                std::cmp::Ordering::Less => {
                    return Err(DecodeError::Unsorted {
                        name: escaped(name),
                        previous: escaped(prev),
                    })
                }
            }
            prev.clear();
            prev.extend_from_slice(name);
        } else {
            *prev = Some(name.to_vec());
        }
        Ok(())
    }

    /// Reads the `node` tag after an entry name without clobbering the name in `text`.
    fn expect_after_name(&mut self) -> Result<(), DecodeError> {
        let len = self.read_u64()?;
        let mut tag = [0u8; 8];
        if len == 4 {
            read_exact(&mut self.reader, &mut tag)?;
        }
        if len != 4 || &tag[..4] != b"node" {
            return Err(DecodeError::UnexpectedTag {
                expected: "node",
                found: escaped(&tag[..(len.min(8)) as usize]),
            });
        }
        if tag[4..] != [0; 4] {
            return Err(DecodeError::NonZeroPadding);
        }
        Ok(())
    }

    fn unexpected(&self, expected: &'static str) -> DecodeError {
        DecodeError::UnexpectedTag {
            expected,
            found: escaped(&self.text),
        }
    }

    fn expect(&mut self, tag: &'static str) -> Result<(), DecodeError> {
        self.read_text(MAX_TAG_LEN, "tag")?;
        if self.text != tag.as_bytes() {
            return Err(self.unexpected(tag));
        }
        Ok(())
    }

    fn read_u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        read_exact(&mut self.reader, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_text(&mut self, limit: u64, what: &'static str) -> Result<(), DecodeError> {
        let len = self.read_u64()?;
        if len > limit {
            return Err(DecodeError::AbsurdLength { what, len, limit });
        }
        self.text.resize(len as usize, 0);
        read_exact(&mut self.reader, &mut self.text)?;
        self.read_padding(len)
    }

    fn read_padding(&mut self, len: u64) -> Result<(), DecodeError> {
        let pad = padding(len);
        let mut b = [0u8; 8];
        read_exact(&mut self.reader, &mut b[..pad])?;
        if b[..pad].iter().any(|&x| x != 0) {
            return Err(DecodeError::NonZeroPadding);
        }
        Ok(())
    }
}

fn read_exact<R: Read>(r: &mut HashingReader<R>, buf: &mut [u8]) -> Result<(), DecodeError> {
    let mut done = 0;
    while done < buf.len() {
        match r.inner.read(&mut buf[done..]) {
            Ok(0) => return Err(DecodeError::Truncated),
            Ok(n) => {
                r.hasher.update(&buf[done..done + n]);
                done += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecodeError::Io(e)),
        }
    }
    Ok(())
}
