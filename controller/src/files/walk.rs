//! `--extra-files DIR` walked into a manifest: directories before what they
//! hold, names sorted, nothing followed (a link is sent as a link). The
//! whole tree is walked and checked before anything is sent.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use landfall_proto::files_manifest::{self, Entry, EntryKind};

/// Why DIR cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("--extra-files {0}: no such folder")]
    Missing(PathBuf),
    #[error("--extra-files {0}: not a folder (give the folder whose tree lands in /)")]
    NotAFolder(PathBuf),
    #[error("--extra-files: {path} is {what}; only folders, regular files and symbolic links can be sent")]
    Special { path: PathBuf, what: &'static str },
    #[error("--extra-files: {0} has a name that is not UTF-8")]
    NotUtf8(PathBuf),
    #[error("--extra-files: cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("--extra-files {dir}")]
    Manifest {
        dir: PathBuf,
        #[source]
        source: files_manifest::ManifestError,
    },
}

/// The walked tree: the manifest and, for each regular file, where its
/// bytes are read from.
#[derive(Debug, Clone)]
pub struct Tree {
    pub entries: Vec<Entry>,
    /// Same order as `entries`; Some for regular files.
    pub sources: Vec<Option<PathBuf>>,
}

impl Tree {
    pub fn data_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::Regular { size } => size,
                _ => 0,
            })
            .sum()
    }
}

fn special(ft: &std::fs::FileType) -> Option<&'static str> {
    if ft.is_fifo() {
        Some("a fifo")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

fn walk_into(
    dir: &Path,
    rel: &str,
    entries: &mut Vec<Entry>,
    sources: &mut Vec<Option<PathBuf>>,
) -> Result<(), WalkError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| WalkError::Read(dir.into(), e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| WalkError::Read(dir.into(), e))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| WalkError::NotUtf8(path.clone()))?;
        let rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let md = std::fs::symlink_metadata(&path).map_err(|e| WalkError::Read(path.clone(), e))?;
        let ft = md.file_type();
        if let Some(what) = special(&ft) {
            return Err(WalkError::Special { path, what });
        }
        let mode = md.permissions().mode() & 0o7777;
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| WalkError::Read(path.clone(), e))?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| WalkError::NotUtf8(path.clone()))?;
            entries.push(Entry {
                path: rel,
                kind: EntryKind::Symlink { target },
                mode: 0o777,
            });
            sources.push(None);
        } else if ft.is_dir() {
            entries.push(Entry {
                path: rel.clone(),
                kind: EntryKind::Directory,
                mode,
            });
            sources.push(None);
            walk_into(&path, &rel, entries, sources)?;
        } else {
            entries.push(Entry {
                path: rel,
                kind: EntryKind::Regular { size: md.len() },
                mode,
            });
            sources.push(Some(path));
        }
    }
    Ok(())
}

/// Walks `dir` and checks the manifest as the agent will.
pub fn walk(dir: &Path) -> Result<Tree, WalkError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WalkError::Missing(dir.into()))
        }
        Err(e) => return Err(WalkError::Read(dir.into(), e)),
        Ok(md) if !md.is_dir() => return Err(WalkError::NotAFolder(dir.into())),
        Ok(_) => {}
    }
    let (mut entries, mut sources) = (Vec::new(), Vec::new());
    walk_into(dir, "", &mut entries, &mut sources)?;
    files_manifest::check(&entries).map_err(|source| WalkError::Manifest {
        dir: dir.into(),
        source,
    })?;
    Ok(Tree { entries, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_walked_parents_first_links_as_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("etc/ssh")).unwrap();
        std::fs::write(d.join("etc/ssh/key"), b"k").unwrap();
        std::fs::set_permissions(
            d.join("etc/ssh/key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("ssh/key", d.join("etc/link")).unwrap();
        std::fs::write(d.join("a"), b"abc").unwrap();
        let tree = walk(d).unwrap();
        let names: Vec<&str> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["a", "etc", "etc/link", "etc/ssh", "etc/ssh/key"]);
        assert_eq!(tree.entries[4].mode, 0o600);
        assert_eq!(
            tree.entries[2].kind,
            EntryKind::Symlink {
                target: "ssh/key".into()
            }
        );
        assert_eq!(tree.data_bytes(), 4);
        assert_eq!(tree.sources[0].as_deref(), Some(d.join("a").as_path()));
    }

    #[test]
    fn bad_folders_and_entries_are_named() {
        let t = tempfile::tempdir().unwrap();
        let e = walk(&t.path().join("nope")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--extra-files {}: no such folder",
                t.path().join("nope").display()
            )
        );
        std::fs::write(t.path().join("file"), b"x").unwrap();
        let e = walk(&t.path().join("file")).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");

        let d = t.path().join("tree");
        std::fs::create_dir_all(d.join("run")).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(d.join("run/pipe"))
            .status()
            .expect("mkfifo (coreutils)");
        assert!(st.success());
        let e = walk(&d).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--extra-files: {} is a fifo; only folders, regular files and symbolic links can be sent",
                d.join("run/pipe").display()
            )
        );

        let d = t.path().join("tree2");
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink("../../etc/shadow", d.join("evil")).unwrap();
        let e = walk(&d).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert!(
            chain.contains(
                "evil: the symbolic link's target \"../../etc/shadow\" points outside the root"
            ),
            "{chain}"
        );
    }
}
