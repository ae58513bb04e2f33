//! The NAR hash: a SHA-256 digest, printed the way Nix prints it
//! (`sha256:<nix32>`), parsed from every form Nix has printed it in
//! (`sha256:<nix32|base16|base64>`, SRI `sha256-<base64>`).

use std::fmt;

use sha2::{Digest, Sha256};

use super::base32;

/// A SHA-256 digest of a NAR serialisation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NarHash(pub [u8; 32]);

/// A hash string that is not a SHA-256 in a form Nix prints.
#[derive(Debug, thiserror::Error)]
#[error("Not a sha256 hash in a form Nix prints: {0:?}")]
pub struct HashParseError(pub String);

impl NarHash {
    /// Parses `sha256:<nix32>`, `sha256:<base16>`, `sha256:<base64>` or `sha256-<base64>`.
    pub fn parse(text: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError(text.to_owned());
        let bytes = if let Some(rest) = text.strip_prefix("sha256:") {
            match rest.len() {
                52 => base32::decode(rest, 32),
                64 => decode_base16(rest),
                44 => decode_base64(rest),
                _ => None,
            }
        } else if let Some(rest) = text.strip_prefix("sha256-") {
            decode_base64(rest)
        } else {
            None
        };
        let bytes = bytes.ok_or_else(err)?;
        let digest: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        Ok(Self(digest))
    }

    /// `sha256:<nix32>`, what Nix 2.8 prints and what `nix-hash --base32` shows.
    pub fn to_nix32(&self) -> String {
        format!("sha256:{}", base32::encode(&self.0))
    }

    /// `sha256:<base16>`, the form Nix stores in `ValidPaths.hash`.
    pub fn to_base16(&self) -> String {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// SRI form, `sha256-<base64>`, what current Nix prints.
    pub fn to_sri(&self) -> String {
        format!("sha256-{}", encode_base64(&self.0))
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nix32())
    }
}

impl fmt::Debug for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NarHash({})", self.to_nix32())
    }
}

/// SHA-256 and byte count over a NAR stream, fed as the bytes pass.
#[derive(Clone, Default)]
pub struct NarHasher {
    sha: Sha256,
    size: u64,
}

impl NarHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hash and size of everything fed.
    pub fn finish(self) -> (NarHash, u64) {
        (NarHash(self.sha.finalize().into()), self.size)
    }
}

fn decode_base16(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(2) {
        return None;
    }
    t.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= n {
                out.push(char::from(B64[((v >> (18 - 6 * k)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    for (idx, quad) in t.chunks(4).enumerate() {
        let last = idx == t.len() / 4 - 1;
        let mut v = 0u32;
        let mut pad = 0;
        for &c in quad {
            let d = if c == b'=' {
                pad += 1;
                0
            } else {
                if pad > 0 {
                    return None;
                }
                B64.iter().position(|&a| a == c)? as u32
            };
            v = (v << 6) | d;
        }
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let bytes = v.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_NIX32: &str = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
    const EMPTY_SRI: &str = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const EMPTY_B16: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn every_form_parses_to_the_same_digest() {
        let a = NarHash::parse(EMPTY_NIX32).unwrap();
        assert_eq!(NarHash::parse(EMPTY_SRI).unwrap(), a);
        assert_eq!(NarHash::parse(EMPTY_B16).unwrap(), a);
        assert_eq!(a.to_sri(), EMPTY_SRI);
        assert_eq!(a.to_base16(), EMPTY_B16);
        assert_eq!(a.to_string(), EMPTY_NIX32);
        let (h, n) = NarHasher::new().finish();
        assert_eq!((h, n), (a, 0));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", "sha256:", "md5:abc", "sha256-!!!!", "sha512-47DEQpj8"] {
            assert!(NarHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..10usize {
            let bytes: Vec<u8> = (0..n as u8).collect();
            assert_eq!(decode_base64(&encode_base64(&bytes)), Some(bytes));
        }
    }
}
