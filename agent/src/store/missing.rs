//! Which store paths a root still lacks: the resume question a re-run asks
//! before sending anything. A path counts as present only when the database
//! says it is valid *and* it exists on disk (not followed if a symlink).

use std::path::Path;

use landfall_proto::nar::StorePath;

use super::db::{DbError, NixDb};

/// The paths of `paths` that are not valid in `root`, in the order given.
pub fn query_missing(root: &Path, paths: &[StorePath]) -> Result<Vec<StorePath>, DbError> {
    let Some(db) = NixDb::open_existing(root)? else {
        return Ok(paths.to_vec());
    };
    let store = root.join("nix/store");
    let mut missing = Vec::new();
    for p in paths {
        let on_disk = store.join(p.base_name()).symlink_metadata().is_ok();
        if !on_disk || !db.is_valid(p)? {
            missing.push(p.clone());
        }
    }
    Ok(missing)
}
