//! NAR encoder: serialises a filesystem path to the NAR format as a pull
//! stream (`impl Read`), hashing the bytes as they leave.
//!
//! Memory is bounded by one read buffer plus the names of the directories on
//! the current path (each directory's entry names are held while it is
//! walked). Entries are sorted by name bytes, as Nix does; files are read in
//! fixed-size chunks. Regular files keep only the owner-executable bit;
//! symlink targets are written verbatim; anything else is an error.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::hash::{NarHash, NarHasher};
use super::wire::{padding, put_len, put_str, MAGIC};

const CHUNK: usize = 64 * 1024;

/// Why a path could not be serialised.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// lstat, readlink, read_dir or open failed.
    #[error("Cannot read {path}")]
    Read {
        /// The path being read.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A socket, fifo or device: NAR has no encoding for it.
    #[error("Cannot encode {0}: not a regular file, directory or symlink")]
    UnsupportedType(PathBuf),
    /// A file shrank while it was being read.
    #[error("{0} changed while it was being encoded")]
    Changed(PathBuf),
}

impl From<EncodeError> for io::Error {
    fn from(e: EncodeError) -> Self {
        io::Error::other(e)
    }
}

/// What a finished encoding produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NarSummary {
    /// SHA-256 of the NAR bytes.
    pub nar_hash: NarHash,
    /// Number of NAR bytes.
    pub nar_size: u64,
}

enum Frame {
    Dir {
        path: PathBuf,
        /// Remaining entry names, sorted descending so `pop` yields ascending.
        names: Vec<OsString>,
    },
    File {
        path: PathBuf,
        file: File,
        remaining: u64,
        size: u64,
    },
}

/// Pull-based NAR encoder of one path; read it to the end, then call
/// [`NarEncoder::summary`].
pub struct NarEncoder {
    root: Option<PathBuf>,
    stack: Vec<Frame>,
    out: Vec<u8>,
    pos: usize,
    hasher: NarHasher,
    /// Whether to SHA-256 the output (else only count it).
    hashing: bool,
    counted: u64,
    done: bool,
    summary: Option<NarSummary>,
    size: Option<u64>,
}

impl NarEncoder {
    /// An encoder for `path` (nothing is read until the first `read`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            root: Some(path.into()),
            stack: Vec::new(),
            out: Vec::with_capacity(CHUNK + 1024),
            pos: 0,
            hasher: NarHasher::new(),
            hashing: true,
            counted: 0,
            done: false,
            summary: None,
            size: None,
        }
    }

    /// An encoder for `path` that only counts its output: [`Self::summary`]
    /// stays `None`, [`Self::nar_size`] gives the size. For a sender whose
    /// receiver verifies the hash anyway: it saves a SHA-256 pass per byte.
    pub fn unhashed(path: impl Into<PathBuf>) -> Self {
        Self {
            hashing: false,
            ..Self::new(path)
        }
    }

    /// Hash and size, once the stream has been read to its end (never for
    /// an [`Self::unhashed`] encoder).
    pub fn summary(&self) -> Option<NarSummary> {
        self.summary
    }

    /// Size, once the stream has been read to its end.
    pub fn nar_size(&self) -> Option<u64> {
        self.size
    }

    fn begin_node(&mut self, path: PathBuf) -> Result<(), EncodeError> {
        let read_err = |source| EncodeError::Read {
            path: path.clone(),
            source,
        };
        let meta = fs::symlink_metadata(&path).map_err(read_err)?;
        let ft = meta.file_type();
        put_str(&mut self.out, b"(");
        put_str(&mut self.out, b"type");
        if ft.is_file() {
            put_str(&mut self.out, b"regular");
            if meta.permissions().mode() & 0o100 != 0 {
                put_str(&mut self.out, b"executable");
                put_str(&mut self.out, b"");
            }
            put_str(&mut self.out, b"contents");
            let size = meta.len();
            put_len(&mut self.out, size);
            let file = File::open(&path).map_err(read_err)?;
            self.stack.push(Frame::File {
                path,
                file,
                remaining: size,
                size,
            });
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(read_err)?;
            put_str(&mut self.out, b"symlink");
            put_str(&mut self.out, b"target");
            put_str(&mut self.out, target.as_os_str().as_bytes());
            put_str(&mut self.out, b")");
            self.end_entry();
        } else if ft.is_dir() {
            put_str(&mut self.out, b"directory");
            let mut names = Vec::new();
            for entry in fs::read_dir(&path).map_err(read_err)? {
                names.push(entry.map_err(read_err)?.file_name());
            }
            names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            self.stack.push(Frame::Dir { path, names });
        } else {
            return Err(EncodeError::UnsupportedType(path));
        }
        Ok(())
    }

    /// Closes the `entry (` … that wraps a node just finished, when it has a parent.
    fn end_entry(&mut self) {
        if matches!(self.stack.last(), Some(Frame::Dir { .. })) {
            put_str(&mut self.out, b")");
        } else if self.stack.is_empty() {
            self.done = true;
        }
    }

    /// Appends the next piece of output to `self.out`.
    fn step(&mut self) -> Result<(), EncodeError> {
        if let Some(root) = self.root.take() {
            put_str(&mut self.out, MAGIC);
            return self.begin_node(root);
        }
        match self.stack.last_mut() {
            None => {
                self.done = true;
                Ok(())
            }
            Some(Frame::File {
                path,
                file,
                remaining,
                size,
            }) => {
                if *remaining == 0 {
                    let pad = padding(*size);
                    self.out.resize(self.out.len() + pad, 0);
                    self.stack.pop();
                    put_str(&mut self.out, b")");
                    self.end_entry();
                    return Ok(());
                }
                let want = (*remaining).min(CHUNK as u64) as usize;
                let start = self.out.len();
                self.out.resize(start + want, 0);
                let n = loop {
                    match file.read(&mut self.out[start..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => {
                            return Err(EncodeError::Read {
                                path: path.clone(),
                                source,
                            })
                        }
                    }
                };
                if n == 0 {
                    return Err(EncodeError::Changed(path.clone()));
                }
                self.out.truncate(start + n);
                *remaining -= n as u64;
                Ok(())
            }
            Some(Frame::Dir { path, names }) => match names.pop() {
                Some(name) => {
                    let child = path.join(&name);
                    put_str(&mut self.out, b"entry");
                    put_str(&mut self.out, b"(");
                    put_str(&mut self.out, b"name");
                    put_str(&mut self.out, name.as_bytes());
                    put_str(&mut self.out, b"node");
                    self.begin_node(child)
                }
                None => {
                    self.stack.pop();
                    put_str(&mut self.out, b")");
                    self.end_entry();
                    Ok(())
                }
            },
        }
    }
}

impl Read for NarEncoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                if self.size.is_none() {
                    if self.hashing {
                        let (nar_hash, nar_size) = std::mem::take(&mut self.hasher).finish();
                        self.summary = Some(NarSummary { nar_hash, nar_size });
                        self.size = Some(nar_size);
                    } else {
                        self.size = Some(self.counted);
                    }
                }
                return Ok(0);
            }
            self.out.clear();
            self.pos = 0;
            self.step()?;
            if self.hashing {
                self.hasher.update(&self.out);
            } else {
                self.counted += self.out.len() as u64;
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Serialises `path` into `sink`; returns its hash and size.
pub fn dump_path(path: &Path, mut sink: impl io::Write) -> io::Result<NarSummary> {
    let mut enc = NarEncoder::new(path);
    io::copy(&mut enc, &mut sink)?;
    enc.summary()
        .ok_or_else(|| io::Error::other("NAR encoder stopped before its end"))
}

/// The NAR hash and size of `path`, without keeping the bytes.
pub fn hash_path(path: &Path) -> io::Result<NarSummary> {
    dump_path(path, io::sink())
}
