//! Which disks an install may keep as they are: a disk counts as "already
//! applied" only when this install formatted it, so a disk that merely holds
//! the same (deterministic) layout — left by a previous, possibly
//! compromised, system — is planned as destroyed and recreated.
//!
//! The record: the GPT **disk GUID**. When the agent writes a disk's table
//! for an install, the disk GUID is [`install_disk_guid`] of the install ID
//! (a random ID the controller mints per install) and the layout's disk key.
//! Why there and not elsewhere:
//! - it is written in the same step as the table, before any content, so a
//!   layout partially applied by this install is recognised on a re-run, and
//!   it covers whatever lies inside (filesystems, LUKS, LVM) without
//!   touching their metadata;
//! - disko layouts name filesystem UUIDs and labels, partition GUIDs and
//!   partition labels, never the disk GUID: nothing the user chose changes;
//! - every tool takes any GUID there (`sgdisk -v`, blkid's `PTUUID`, the
//!   kernel), and it needs no file inside a filesystem (which a root-owned
//!   marker would, and which the old system could have planted or faked);
//! - it survives an agent restart (it is on the disk) but not a new install:
//!   the ID is fresh per install and the GUID a one-way hash of it, so the
//!   previous system cannot write the next install's GUID in advance.
//!
//! Invariant: with an install ID and without `keep_existing`, a disk is
//! trusted only if its disk GUID is the one derived from that ID; with no ID
//! and without `keep_existing`, no disk is trusted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How the planner treats disks that already hold the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// The install this plan belongs to: disks get the GUID derived from
    /// it, and disks carrying it count as this install's.
    pub install_id: Option<String>,
    /// Keep any disk that holds the layout, whoever formatted it
    /// (`--keep-existing`: the behaviour before install IDs).
    pub keep_existing: bool,
}

impl PlanOptions {
    /// Plans for `install_id` (an empty ID is none).
    pub fn install(install_id: &str, keep_existing: bool) -> Self {
        Self {
            install_id: (!install_id.is_empty()).then(|| install_id.to_string()),
            keep_existing,
        }
    }

    /// Keep whatever holds the layout, record no install (what-if plans).
    pub fn keep_existing() -> Self {
        Self {
            install_id: None,
            keep_existing: true,
        }
    }

    /// The disk GUID this install writes on disk `key`.
    pub fn disk_guid(&self, key: &str) -> Option<String> {
        self.install_id
            .as_deref()
            .map(|id| install_disk_guid(id, key))
    }

    /// Whether a disk whose table holds `found` (its disk GUID) may be kept.
    pub fn trusts(&self, key: &str, found: Option<&str>) -> bool {
        self.keep_existing
            || match (self.disk_guid(key), found) {
                (Some(want), Some(found)) => want.eq_ignore_ascii_case(found),
                _ => false,
            }
    }
}

/// The GPT disk GUID of disk `key` formatted by install `install_id`: the
/// first 16 bytes of SHA-256 over a domain tag, the ID and the key, with the
/// RFC 9562 version 8 (custom) and variant bits set; upper case, hyphenated,
/// as the rest of the plan spells GUIDs.
pub fn install_disk_guid(install_id: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"landfall install disk guid\0");
    h.update(install_id.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guid_is_a_version_8_uuid_fixed_by_id_and_disk() {
        let g = install_disk_guid("3f2a", "main");
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "8", "{g}");
        assert!(matches!(&g[19..20], "8" | "9" | "A" | "B"), "{g}");
        assert_eq!(g, install_disk_guid("3f2a", "main"));
        assert_ne!(g, install_disk_guid("3f2b", "main"));
        assert_ne!(g, install_disk_guid("3f2a", "data"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(install_disk_guid("ab", "c"), install_disk_guid("a", "bc"));
    }

    #[test]
    fn only_this_installs_guid_or_keep_existing_is_trusted() {
        let mine = PlanOptions::install("id-1", false);
        let g = install_disk_guid("id-1", "main");
        assert!(mine.trusts("main", Some(&g.to_ascii_lowercase())));
        assert!(!mine.trusts("main", Some(&install_disk_guid("id-0", "main"))));
        assert!(!mine.trusts("main", None));
        assert!(!PlanOptions::install("", false).trusts("main", Some(&g)));
        assert!(PlanOptions::install("id-2", true).trusts("main", Some(&g)));
        assert!(PlanOptions::keep_existing().trusts("main", None));
        assert_eq!(PlanOptions::install("", true).disk_guid("main"), None);
    }
}
