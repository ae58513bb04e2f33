//! The manifest of an extra-files request (`PutFiles`), checked by the
//! controller on `--extra-files DIR` and again by the agent, as plain values before
//! anything is written: every name a relative path of plain components,
//! every mode permission bits only, every link text sane, parents never
//! anything but directories. No I/O here.
//!
//! A relative link must stay inside the root when read from where it sits
//! (`a/b -> ../c` is fine, `a -> ../../etc` is not): above the root, `..`
//! means something else in the installed system than in the tree it came
//! from. An absolute link is kept as is: it names a path of the installed
//! system, and it is never followed while writing.

use std::collections::{HashMap, HashSet};

/// Longest path and link text accepted (PATH_MAX minus the NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest path component (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;

/// What an entry is. Device files, fifos and sockets cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// `size` bytes of content follow in the stream.
    Regular {
        size: u64,
    },
    /// The link's text, written as is.
    Symlink {
        target: String,
    },
}

/// One entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (≤ 0o7777); ignored for links.
    pub mode: u32,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{path:?} is not a name beneath the root: {why}")]
    BadName { path: String, why: &'static str },
    #[error("{path}: mode {mode:o} is more than permission bits (0o7777)")]
    BadMode { path: String, mode: u32 },
    #[error("{path}: the kind of entry is not a directory, a regular file or a symbolic link")]
    BadKind { path: String },
    #[error("{path}: the symbolic link's target {target:?} {why}")]
    BadTarget {
        path: String,
        target: String,
        why: &'static str,
    },
    #[error("{0} appears twice in the manifest")]
    Duplicate(String),
    #[error("{path} lies beneath {parent}, which is not a directory in the manifest")]
    UnderNonDirectory { path: String, parent: String },
}

/// The components of a relative name, or why it is not one.
pub fn components(path: &str) -> Result<Vec<&str>, &'static str> {
    if path.is_empty() {
        return Err("the name is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("the name is longer than 4095 bytes");
    }
    if path.contains('\0') {
        return Err("the name holds a NUL byte");
    }
    if path.starts_with('/') {
        return Err("the name is absolute");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts {
        match *p {
            "" => return Err("the name has an empty component (`//` or a trailing `/`)"),
            "." => return Err("the name has a `.` component"),
            ".." => return Err("the name has a `..` component"),
            p if p.len() > MAX_NAME_BYTES => return Err("a component is longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(parts)
}

/// Whether a relative link at `path` with text `target` climbs above the
/// root when read from the link's own directory.
pub fn link_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth = path.split('/').count() as i64 - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn check_target(path: &str, target: &str) -> Result<(), ManifestError> {
    let bad = |why| ManifestError::BadTarget {
        path: path.to_string(),
        target: target.to_string(),
        why,
    };
    if target.is_empty() {
        return Err(bad("is empty"));
    }
    if target.len() > MAX_PATH_BYTES {
        return Err(bad("is longer than 4095 bytes"));
    }
    if target.contains('\0') {
        return Err(bad("holds a NUL byte"));
    }
    if link_escapes(path, target) {
        return Err(bad("points outside the root"));
    }
    Ok(())
}

/// Checks every entry and their relations; Ok means the manifest can be
/// written beneath a root without leaving it.
pub fn check(entries: &[Entry]) -> Result<(), ManifestError> {
    // Entry name -> is a directory; names that have entries beneath them.
    let mut kinds: HashMap<&str, bool> = HashMap::with_capacity(entries.len());
    let mut parents: HashSet<&str> = HashSet::new();
    for e in entries {
        let parts = components(&e.path).map_err(|why| ManifestError::BadName {
            path: e.path.clone(),
            why,
        })?;
        if e.mode > 0o7777 {
            return Err(ManifestError::BadMode {
                path: e.path.clone(),
                mode: e.mode,
            });
        }
        let is_dir = matches!(e.kind, EntryKind::Directory);
        if let EntryKind::Symlink { target } = &e.kind {
            check_target(&e.path, target)?;
        }
        if kinds.insert(&e.path, is_dir).is_some() {
            return Err(ManifestError::Duplicate(e.path.clone()));
        }
        if !is_dir && parents.contains(e.path.as_str()) {
            return Err(ManifestError::UnderNonDirectory {
                path: format!("an earlier entry beneath {}", e.path),
                parent: e.path.clone(),
            });
        }
        let mut end = 0;
        for p in &parts[..parts.len() - 1] {
            end += p.len();
            let parent = &e.path[..end];
            if kinds.get(parent) == Some(&false) {
                return Err(ManifestError::UnderNonDirectory {
                    path: e.path.clone(),
                    parent: parent.to_string(),
                });
            }
            parents.insert(parent);
            end += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Regular { size: 0 },
            mode: 0o644,
        }
    }
    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Directory,
            mode: 0o755,
        }
    }
    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
            mode: 0o777,
        }
    }

    #[test]
    fn names_must_be_plain_relative_paths() {
        assert_eq!(components("etc/ssh/key").unwrap(), ["etc", "ssh", "key"]);
        for (bad, why) in [
            ("", "the name is empty"),
            ("/etc/passwd", "the name is absolute"),
            ("../etc/passwd", "the name has a `..` component"),
            ("etc/../../x", "the name has a `..` component"),
            ("etc/./x", "the name has a `.` component"),
            (
                "etc//x",
                "the name has an empty component (`//` or a trailing `/`)",
            ),
            (
                "etc/",
                "the name has an empty component (`//` or a trailing `/`)",
            ),
            ("a\0b", "the name holds a NUL byte"),
        ] {
            assert_eq!(components(bad), Err(why), "{bad:?}");
        }
        assert!(components(&"x".repeat(256)).is_err());
        assert!(components(&"x/".repeat(2048)).is_err());
    }

    #[test]
    fn relative_links_stay_inside_the_root() {
        assert!(!link_escapes("a/b", "../c"));
        assert!(!link_escapes("a/b/c", "../../d"));
        assert!(link_escapes("a/b", "../../etc"));
        assert!(link_escapes("x", "../etc/passwd"));
        assert!(link_escapes("a/b", "c/../../../d"));
        assert!(!link_escapes("a", "/run/current-system/sw/bin/sh"));
        assert!(!link_escapes("a", "./b/../c"));
    }

    #[test]
    fn a_good_manifest_passes() {
        let m = [
            dir("etc"),
            dir("etc/ssh"),
            file("etc/ssh/sshd_config"),
            link("etc/motd", "ssh/sshd_config"),
            link("etc/os", "/run/current-system/os-release"),
            file("root-file"),
        ];
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn refusals_name_the_entry() {
        let e = check(&[dir("etc"), file("../x")]).unwrap_err();
        assert!(e.to_string().starts_with("\"../x\" is not a name"), "{e}");
        assert_eq!(
            check(&[file("a"), file("a")]),
            Err(ManifestError::Duplicate("a".into()))
        );
        assert_eq!(
            check(&[link("a", "/etc"), file("a/passwd")]),
            Err(ManifestError::UnderNonDirectory {
                path: "a/passwd".into(),
                parent: "a".into()
            })
        );
        // A child first, then its parent as a link: refused too.
        assert!(matches!(
            check(&[file("a/b"), link("a", "/etc")]),
            Err(ManifestError::UnderNonDirectory { .. })
        ));
        assert_eq!(
            check(&[Entry {
                mode: 0o10644,
                ..file("f")
            }]),
            Err(ManifestError::BadMode {
                path: "f".into(),
                mode: 0o10644
            })
        );
        let e = check(&[link("evil", "../../etc/shadow")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "evil: the symbolic link's target \"../../etc/shadow\" points outside the root"
        );
        assert!(check(&[link("empty", "")]).is_err());
    }
}
