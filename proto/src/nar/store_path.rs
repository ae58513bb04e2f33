//! Store paths and their metadata as both sides exchange them.
//!
//! A [`StorePath`] is validated on construction: `/nix/store/`, 32 nix32
//! characters, `-`, and a name of Nix's allowed characters that does not start
//! with a dot. Its base name is therefore always a single safe path component.

use std::fmt;

use super::base32::ALPHABET;
use super::hash::NarHash;

/// The store directory; landfall installs standard NixOS systems only.
pub const STORE_DIR: &str = "/nix/store";

/// A syntactically valid path in `/nix/store`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(String);

/// A string that is not a valid store path.
#[derive(Debug, thiserror::Error)]
#[error("Not a valid store path: {path:?} ({reason})")]
pub struct StorePathError {
    /// The rejected text.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl StorePath {
    /// Parses an absolute store path, or a base name (`<hash>-<name>`, as
    /// newer Nix prints references).
    pub fn parse(text: &str) -> Result<Self, StorePathError> {
        let err = |reason| StorePathError {
            path: text.to_owned(),
            reason,
        };
        let base = match text.strip_prefix(STORE_DIR) {
            Some(rest) => rest
                .strip_prefix('/')
                .ok_or_else(|| err("not in /nix/store"))?,
            None if !text.contains('/') => text,
            None => return Err(err("not in /nix/store")),
        };
        let bytes = base.as_bytes();
        if bytes.len() < 34 || bytes[32] != b'-' {
            return Err(err("no <32-char hash>-<name>"));
        }
        if !bytes[..32].iter().all(|c| ALPHABET.contains(c)) {
            return Err(err("hash is not nix32"));
        }
        let name = &bytes[33..];
        if name.len() > 211 {
            return Err(err("name longer than 211 bytes"));
        }
        if name[0] == b'.' {
            return Err(err("name starts with a dot"));
        }
        let ok = |c: &u8| c.is_ascii_alphanumeric() || b"+-._?=".contains(c);
        if !name.iter().all(ok) {
            return Err(err("name has a character Nix does not allow"));
        }
        Ok(Self(format!("{STORE_DIR}/{base}")))
    }

    /// `/nix/store/<hash>-<name>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<hash>-<name>`: one safe path component.
    pub fn base_name(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..]
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        &self.base_name()[..32]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What Nix knows about one valid store path; what `nix path-info --json`
/// prints and what the Nix database records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The path.
    pub path: StorePath,
    /// SHA-256 of its NAR serialisation.
    pub nar_hash: NarHash,
    /// Length of its NAR serialisation.
    pub nar_size: u64,
    /// Paths it refers to (possibly itself), sorted.
    pub references: Vec<StorePath>,
    /// The derivation that built it, when known.
    pub deriver: Option<StorePath>,
    /// Signatures (`name:base64`), possibly none.
    pub signatures: Vec<String>,
    /// Content address (`fixed:r:sha256:…`, `text:sha256:…`), when content-addressed.
    pub ca: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12";

    #[test]
    fn accepts_full_paths_and_base_names() {
        let a = StorePath::parse(P).unwrap();
        let b = StorePath::parse("0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.base_name(), "0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12");
        assert_eq!(a.hash_part(), "0mdqa9w1p6cmli6976v4wi0sw9r4p5pr");
    }

    #[test]
    fn rejects_escapes_and_junk() {
        for bad in [
            "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-../../etc",
            "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a/b",
            "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-.hidden",
            "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-",
            "/nix/store/emdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
            "/nix/storex/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
            "/tmp/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
            "..",
            "",
        ] {
            assert!(StorePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_every_kind_of_invalid_name() {
        let h = "0mdqa9w1p6cmli6976v4wi0sw9r4p5pr";
        let long = |n: usize| format!("/nix/store/{h}-{}", "a".repeat(n));
        // Nix's limit: 211 bytes of name.
        assert!(StorePath::parse(&long(211)).is_ok());
        let e = StorePath::parse(&long(212)).unwrap_err();
        assert_eq!(e.reason, "name longer than 211 bytes");
        for (bad, reason) in [
            // nix32 has no e, o, u, t and no upper case.
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pt-x",
                "hash is not nix32",
            ),
            (
                "/nix/store/0MDQA9W1P6CMLI6976V4WI0SW9R4P5PR-x",
                "hash is not nix32",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5p-x",
                "no <32-char hash>-<name>",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5prx-x",
                "no <32-char hash>-<name>",
            ),
            (
                "/nix/store/é0mdqa9w1p6cmli6976v4wi0sw9r4p5p-x",
                "no <32-char hash>-<name>",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-.",
                "name starts with a dot",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-..",
                "name starts with a dot",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a\0b",
                "name has a character Nix does not allow",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a b",
                "name has a character Nix does not allow",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-naïve",
                "name has a character Nix does not allow",
            ),
            (
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x/",
                "name has a character Nix does not allow",
            ),
            (
                "/nix/store//0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
                "no <32-char hash>-<name>",
            ),
            (
                "/gnu/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
                "not in /nix/store",
            ),
            (
                "nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
                "not in /nix/store",
            ),
            // 32 bytes of hash with a two-byte character in it.
            (
                "/nix/store/é0mdqa9w1p6cmli6976v4wi0sw9r4p5-x",
                "hash is not nix32",
            ),
            ("/nix/store", "not in /nix/store"),
        ] {
            let e = StorePath::parse(bad).expect_err(bad);
            assert_eq!(e.reason, reason, "{bad:?}");
        }
    }
}
