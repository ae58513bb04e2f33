//! `nix-cache-info` and `<hash>.narinfo`: the two text formats of a Nix
//! binary cache, parsed strictly into typed values, and Nix's signature
//! fingerprint of a path.
//!
//! Both are `Key: value` lines. Unknown keys are ignored (Nix adds some over
//! time); a known key given twice, a missing required key or a value that
//! does not parse is an error naming the key.

use landfall_proto::nar::{NarHash, StorePath, STORE_DIR};

/// Why a `nix-cache-info` or narinfo text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    /// The text is not UTF-8.
    #[error("Not UTF-8 text")]
    NotUtf8,
    /// A line without `: `.
    #[error("Line {line} is not `Key: value`: {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A required key is absent.
    #[error("No {0} line")]
    Missing(&'static str),
    /// A key that may appear once appeared again.
    #[error("{0} given twice")]
    Duplicate(&'static str),
    /// A value that does not parse.
    #[error("Bad {key} value {value:?}: {reason}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// A cache's `nix-cache-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    /// `StoreDir` (always `/nix/store` once accepted by the client).
    pub store_dir: String,
    /// `Priority`: lower is preferred; Nix's default is 50.
    pub priority: u32,
    /// `WantMassQuery`.
    pub want_mass_query: bool,
}

/// Nix's priority of a cache that does not state one.
pub const DEFAULT_PRIORITY: u32 = 50;

/// The compression of a NAR file in a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    /// `none`: the file is the NAR.
    None,
    /// `xz`.
    Xz,
    /// `zstd`.
    Zstd,
    /// `bzip2` (also what a narinfo without `Compression` means).
    Bzip2,
    /// Anything else (`br`, `lz4`, …): refused at fetch time, by name.
    Other(String),
}

impl Compression {
    fn parse(s: &str) -> Self {
        match s {
            "none" => Self::None,
            "xz" => Self::Xz,
            "zstd" => Self::Zstd,
            "bzip2" => Self::Bzip2,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name as a narinfo writes it.
    pub fn name(&self) -> &str {
        match self {
            Self::None => "none",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Bzip2 => "bzip2",
            Self::Other(s) => s,
        }
    }
}

/// One parsed `<hash>.narinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    /// `StorePath`.
    pub store_path: StorePath,
    /// `URL`: the NAR file, relative to the cache (or absolute).
    pub url: String,
    /// `Compression` (Nix's default when absent: bzip2).
    pub compression: Compression,
    /// `FileHash`, as written (informational: the NAR hash is what is signed).
    pub file_hash: Option<String>,
    /// `FileSize`.
    pub file_size: Option<u64>,
    /// `NarHash`.
    pub nar_hash: NarHash,
    /// `NarSize`.
    pub nar_size: u64,
    /// `References`, as full store paths, sorted.
    pub references: Vec<StorePath>,
    /// `Deriver` (`unknown-deriver` or absent: none).
    pub deriver: Option<StorePath>,
    /// `Sig` lines (`name:base64`), in order.
    pub sigs: Vec<String>,
    /// `CA`, when content-addressed.
    pub ca: Option<String>,
}

/// Splits `Key: value` lines; `f` gets (key, value).
fn for_each_field(
    text: &[u8],
    mut f: impl FnMut(&str, &str) -> Result<(), NarInfoError>,
) -> Result<(), NarInfoError> {
    let text = std::str::from_utf8(text).map_err(|_| NarInfoError::NotUtf8)?;
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        // `Key:` alone is an empty value (`References:` of a leaf, trimmed).
        let (key, value) = match line.split_once(": ") {
            Some(kv) => kv,
            None => match line.strip_suffix(':') {
                Some(key) => (key, ""),
                None => {
                    return Err(NarInfoError::BadLine {
                        line: i + 1,
                        text: line.to_owned(),
                    })
                }
            },
        };
        f(key, value)?;
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<(), NarInfoError> {
    if slot.is_some() {
        return Err(NarInfoError::Duplicate(key));
    }
    *slot = Some(v);
    Ok(())
}

fn bad(key: &'static str, value: &str, reason: impl ToString) -> NarInfoError {
    NarInfoError::BadValue {
        key,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn parse_u64(key: &'static str, v: &str) -> Result<u64, NarInfoError> {
    v.parse().map_err(|e| bad(key, v, e))
}

fn parse_path(key: &'static str, v: &str) -> Result<StorePath, NarInfoError> {
    StorePath::parse(v).map_err(|e| bad(key, v, e.reason))
}

impl CacheInfo {
    /// Parses a `nix-cache-info` (`StoreDir` required).
    pub fn parse(text: &[u8]) -> Result<Self, NarInfoError> {
        let (mut store_dir, mut priority, mut mass) = (None, None, None);
        for_each_field(text, |k, v| match k {
            "StoreDir" => set_once(&mut store_dir, "StoreDir", v.to_owned()),
            "Priority" => {
                let p = v.parse().map_err(|e| bad("Priority", v, e))?;
                set_once(&mut priority, "Priority", p)
            }
            "WantMassQuery" => set_once(&mut mass, "WantMassQuery", v == "1"),
            _ => Ok(()),
        })?;
        Ok(Self {
            store_dir: store_dir.ok_or(NarInfoError::Missing("StoreDir"))?,
            priority: priority.unwrap_or(DEFAULT_PRIORITY),
            want_mass_query: mass.unwrap_or(false),
        })
    }
}

impl NarInfo {
    /// Parses a narinfo. `References` may be base names (as Nix writes them)
    /// or full paths; they come out as full paths, sorted.
    pub fn parse(text: &[u8]) -> Result<Self, NarInfoError> {
        let mut store_path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = None;
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references: Option<Vec<StorePath>> = None;
        let mut deriver: Option<Option<StorePath>> = None;
        let mut ca = None;
        let mut sigs = Vec::new();
        for_each_field(text, |k, v| match k {
            "StorePath" => set_once(&mut store_path, "StorePath", parse_path("StorePath", v)?),
            "URL" => {
                if v.is_empty() {
                    return Err(bad("URL", v, "empty"));
                }
                set_once(&mut url, "URL", v.to_owned())
            }
            "Compression" => set_once(&mut compression, "Compression", Compression::parse(v)),
            "FileHash" => set_once(&mut file_hash, "FileHash", v.to_owned()),
            "FileSize" => set_once(&mut file_size, "FileSize", parse_u64("FileSize", v)?),
            "NarHash" => {
                let h = NarHash::parse(v).map_err(|e| bad("NarHash", v, e))?;
                set_once(&mut nar_hash, "NarHash", h)
            }
            "NarSize" => set_once(&mut nar_size, "NarSize", parse_u64("NarSize", v)?),
            "References" => {
                let refs = v
                    .split(' ')
                    .filter(|r| !r.is_empty())
                    .map(|r| parse_path("References", r))
                    .collect::<Result<Vec<_>, _>>()?;
                set_once(&mut references, "References", refs)
            }
            "Deriver" => {
                let d = match v {
                    "unknown-deriver" => None,
                    _ => Some(parse_path("Deriver", v)?),
                };
                set_once(&mut deriver, "Deriver", d)
            }
            "Sig" => {
                if !v.contains(':') {
                    return Err(bad("Sig", v, "not name:base64"));
                }
                sigs.push(v.to_owned());
                Ok(())
            }
            "CA" => set_once(&mut ca, "CA", v.to_owned()),
            _ => Ok(()),
        })?;
        let mut references = references.unwrap_or_default();
        references.sort();
        references.dedup();
        Ok(Self {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url: url.ok_or(NarInfoError::Missing("URL"))?,
            compression: compression.unwrap_or(Compression::Bzip2),
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            references,
            deriver: deriver.flatten(),
            sigs,
            ca,
        })
    }

    /// Nix's signature fingerprint of this path.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }
}

/// Nix's fingerprint of a path, what a narinfo `Sig` signs:
/// `1;<storePath>;sha256:<nix32 narHash>;<narSize>;<comma-separated full reference paths>`.
/// `references` must be sorted (as Nix keeps them).
pub fn fingerprint(
    path: &StorePath,
    nar_hash: &NarHash,
    nar_size: u64,
    references: &[StorePath],
) -> String {
    let refs: Vec<&str> = references.iter().map(StorePath::as_str).collect();
    format!(
        "1;{};{};{};{}",
        path.as_str(),
        nar_hash.to_nix32(),
        nar_size,
        refs.join(",")
    )
}

/// `<hash>.narinfo`: the narinfo's name in a cache.
pub fn narinfo_name(path: &StorePath) -> String {
    format!("{}.narinfo", path.hash_part())
}

/// Whether a cache's store directory is ours.
pub fn is_our_store_dir(dir: &str) -> bool {
    dir == STORE_DIR
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12";
    const B: &str = "/nix/store/1fz0n5dl2dw9bqcrqg0jvgb1nksh1ab0-glibc-2.35";
    const H: &str = "sha256:1b9jh9vmpi1kd0j4agsh8n5jwqzpv4cnxr24qi4r4zx6am6lqwcz";

    fn sample() -> String {
        format!(
            "StorePath: {A}\nURL: nar/abc.nar.xz\nCompression: xz\nFileHash: sha256:xyz\n\
             FileSize: 1234\nNarHash: {H}\nNarSize: 5678\n\
             References: 1fz0n5dl2dw9bqcrqg0jvgb1nksh1ab0-glibc-2.35 0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12\n\
             Deriver: 2a3b4c5d6f7g8h9i0j1k2l3m4n5p6q7r-hello-2.12.drv\n\
             Sig: cache.example.org-1:AAAA\nSig: other:BBBB\nFuture: whatever\n"
        )
    }

    #[test]
    fn parses_every_field() {
        let n = NarInfo::parse(sample().as_bytes()).unwrap();
        assert_eq!(n.store_path.as_str(), A);
        assert_eq!(n.url, "nar/abc.nar.xz");
        assert_eq!(n.compression, Compression::Xz);
        assert_eq!(n.file_hash.as_deref(), Some("sha256:xyz"));
        assert_eq!(n.file_size, Some(1234));
        assert_eq!(n.nar_hash.to_nix32(), H);
        assert_eq!(n.nar_size, 5678);
        let refs: Vec<&str> = n.references.iter().map(|r| r.as_str()).collect();
        assert_eq!(refs, [A, B], "full paths, sorted");
        assert_eq!(
            n.deriver.unwrap().as_str(),
            "/nix/store/2a3b4c5d6f7g8h9i0j1k2l3m4n5p6q7r-hello-2.12.drv"
        );
        assert_eq!(n.sigs, ["cache.example.org-1:AAAA", "other:BBBB"]);
        assert_eq!(n.ca, None);
    }

    #[test]
    fn fingerprint_is_nixs() {
        let n = NarInfo::parse(sample().as_bytes()).unwrap();
        assert_eq!(n.fingerprint(), format!("1;{A};{H};5678;{A},{B}"));
        let no_refs = fingerprint(&n.store_path, &n.nar_hash, 1, &[]);
        assert_eq!(no_refs, format!("1;{A};{H};1;"));
    }

    #[test]
    fn fingerprint_uses_nix32_whatever_the_narinfo_wrote() {
        let sri = NarHash::parse(H).unwrap().to_sri();
        let text = sample().replace(H, &sri);
        let n = NarInfo::parse(text.as_bytes()).unwrap();
        assert!(n.fingerprint().contains(H));
    }

    #[test]
    fn defaults_and_optional_fields() {
        let text = format!("StorePath: {A}\nURL: nar/x.nar.bz2\nNarHash: {H}\nNarSize: 1\nDeriver: unknown-deriver\n");
        let n = NarInfo::parse(text.as_bytes()).unwrap();
        assert_eq!(n.compression, Compression::Bzip2);
        assert!(n.references.is_empty() && n.sigs.is_empty());
        assert_eq!(n.deriver, None);
        assert_eq!(n.file_size, None);
        let empty_refs = format!("{text}References: \n");
        let bare = format!("{text}References:\n");
        assert!(NarInfo::parse(bare.as_bytes())
            .unwrap()
            .references
            .is_empty());
        assert!(NarInfo::parse(empty_refs.as_bytes())
            .unwrap()
            .references
            .is_empty());
    }

    #[test]
    fn refusals_name_the_field() {
        let s = sample();
        let cases: Vec<(String, NarInfoError)> = vec![
            (
                s.replace("StorePath: ", "Xx: "),
                NarInfoError::Missing("StorePath"),
            ),
            (s.replace("URL: ", "Xx: "), NarInfoError::Missing("URL")),
            (
                s.replace("NarHash: ", "Xx: "),
                NarInfoError::Missing("NarHash"),
            ),
            (
                s.replace("NarSize: ", "Xx: "),
                NarInfoError::Missing("NarSize"),
            ),
            (
                format!("{s}NarSize: 1\n"),
                NarInfoError::Duplicate("NarSize"),
            ),
            (
                format!("{s}References: \n"),
                NarInfoError::Duplicate("References"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(NarInfo::parse(text.as_bytes()).unwrap_err(), want);
        }
        let bad_key = |text: String| match NarInfo::parse(text.as_bytes()).unwrap_err() {
            NarInfoError::BadValue { key, .. } => key,
            e => panic!("{e}"),
        };
        assert_eq!(
            bad_key(s.replace("NarSize: 5678", "NarSize: -1")),
            "NarSize"
        );
        assert_eq!(bad_key(s.replace(H, "sha256:zz")), "NarHash");
        assert_eq!(
            bad_key(s.replace(&format!("StorePath: {A}"), "StorePath: /etc/passwd")),
            "StorePath"
        );
        assert_eq!(
            bad_key(s.replace("References: 1fz0", "References: ../1fz0")),
            "References"
        );
        assert_eq!(bad_key(s.replace("Sig: other:BBBB", "Sig: nocolon")), "Sig");
        assert!(matches!(
            NarInfo::parse(b"StorePath /nix/store/x\n").unwrap_err(),
            NarInfoError::BadLine { line: 1, .. }
        ));
        assert_eq!(
            NarInfo::parse(b"\xff\n").unwrap_err(),
            NarInfoError::NotUtf8
        );
    }

    #[test]
    fn cache_info() {
        let c =
            CacheInfo::parse(b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n").unwrap();
        assert_eq!(
            c,
            CacheInfo {
                store_dir: "/nix/store".into(),
                priority: 40,
                want_mass_query: true
            }
        );
        let d = CacheInfo::parse(b"StoreDir: /gnu/store\n").unwrap();
        assert_eq!(d.priority, DEFAULT_PRIORITY);
        assert!(!is_our_store_dir(&d.store_dir));
        assert_eq!(
            CacheInfo::parse(b"Priority: 1\n").unwrap_err(),
            NarInfoError::Missing("StoreDir")
        );
        assert!(matches!(
            CacheInfo::parse(b"StoreDir: /nix/store\nPriority: high\n").unwrap_err(),
            NarInfoError::BadValue {
                key: "Priority",
                ..
            }
        ));
    }
}
