//! The NAR wire format's building blocks: every string is a little-endian u64
//! length, the bytes, and zero padding to a multiple of 8.

/// The string every NAR starts with.
pub const MAGIC: &[u8] = b"nix-archive-1";

/// Zero bytes needed after `len` bytes to reach a multiple of 8.
pub fn padding(len: u64) -> usize {
    ((8 - (len % 8)) % 8) as usize
}

/// Appends one NAR string to `out`.
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len() + padding(s.len() as u64), 0);
}

/// Appends a length field alone (the contents follow separately).
pub fn put_len(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(&len.to_le_bytes());
}

/// A NAR written token by token with no checks at all: for building archives
/// by hand, malformed ones included (tests, fuzz seeds). `RawNar::new()`
/// starts with the magic; `.0` is the bytes so far.
///
/// ```
/// use landfall_proto::nar::wire::RawNar;
/// let escape = RawNar::new().dir().entry(b"..").file(b"x").close().close().0;
/// # assert_eq!(escape.len() % 8, 0);
/// ```
#[derive(Debug, Clone)]
pub struct RawNar(pub Vec<u8>);

impl Default for RawNar {
    fn default() -> Self {
        Self::new()
    }
}

impl RawNar {
    /// The magic alone.
    pub fn new() -> Self {
        let mut v = Vec::new();
        put_str(&mut v, MAGIC);
        RawNar(v)
    }
    /// Appends each token as a NAR string.
    pub fn s(mut self, tokens: &[&[u8]]) -> Self {
        for t in tokens {
            put_str(&mut self.0, t);
        }
        self
    }
    /// Opens a directory node: `( type directory`.
    pub fn dir(self) -> Self {
        self.s(&[b"(", b"type", b"directory"])
    }
    /// Opens an entry whose node follows: `entry ( name NAME node`.
    pub fn entry(self, name: &[u8]) -> Self {
        self.s(&[b"entry", b"(", b"name", name, b"node"])
    }
    /// A whole regular-file node.
    pub fn file(self, data: &[u8]) -> Self {
        self.s(&[b"(", b"type", b"regular", b"contents", data, b")"])
    }
    /// A whole symlink node.
    pub fn link(self, target: &[u8]) -> Self {
        self.s(&[b"(", b"type", b"symlink", b"target", target, b")"])
    }
    /// `)`: closes an entry or a directory.
    pub fn close(self) -> Self {
        self.s(&[b")"])
    }
}
