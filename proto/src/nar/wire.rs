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
