//! The `/dev/disk/by-*` links udev would make, for the closure's installer.
//!
//! The agent runs without udev, so its `/dev` (a devtmpfs) has the device
//! nodes but no `/dev/disk`. A bootloader installer looks there: NixOS's
//! install-grub.pl finds the UUID of the file system holding the store (and
//! of /boot) through `/dev/disk/by-uuid`, a configuration may name its GRUB
//! devices `/dev/disk/by-id/…`, and stage 1 finds its root by label. Inside
//! the installer's private mount namespace ([`super::enter`]) a tmpfs is
//! mounted on the root's `dev/disk` and filled with the links below; the
//! agent's own `/dev` never gains them (only, when missing, the empty
//! `disk` folder the tmpfs is mounted on).
//!
//! Links are relative (`../../nvme0n1p2`), as udev writes them, and names are
//! escaped as udev escapes them (`\x2f` for `/`, `\x20` for a space).

use std::fs::File;
use std::path::{Path, PathBuf};

use landfall_proto::v1::Disk;

use crate::disk::signatures::{detect, Signature};

/// One link: `by-uuid/<uuid>` → `../../<device name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLink {
    /// Relative to `/dev/disk`: `by-partlabel/disk-main-ESP`.
    pub name: PathBuf,
    /// The device's name under /dev: `nvme0n1p1`.
    pub device: String,
}

/// udev's escaping of a link name (`udev_util_encode_string`): bytes outside
/// `[A-Za-z0-9#+-.:=@_]` and UTF-8 become `\xNN`.
pub fn udev_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            out += &format!("\\x{:02x}", c as u32);
        }
    }
    out
}

/// `QEMU NVMe Ctrl` → `QEMU_NVMe_Ctrl`: udev's whitespace replacement in ids.
fn id_part(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

/// The `by-id` name of a whole disk, where the bus is known from its name:
/// `nvme-<model>_<serial>` (NVMe), `virtio-<serial>` (virtio-blk).
fn disk_id(d: &Disk) -> Option<String> {
    let (model, serial) = (id_part(&d.model), id_part(&d.serial));
    if serial.is_empty() {
        return None;
    }
    if d.name.starts_with("nvme") && !model.is_empty() {
        Some(format!("nvme-{model}_{serial}"))
    } else if d.name.starts_with("vd") {
        Some(format!("virtio-{serial}"))
    } else {
        None
    }
}

fn link(kind: &str, value: &str, device: &str) -> Option<DiskLink> {
    (!value.is_empty()).then(|| DiskLink {
        name: Path::new(kind).join(udev_escape(value)),
        device: device.to_string(),
    })
}

/// The links for `disks` (the inventory's view) and for device-mapper
/// devices with a file system (`dm` pairs of `dm-N` and its signature).
pub fn links(disks: &[Disk], dm: &[(String, Signature)]) -> Vec<DiskLink> {
    let mut out = Vec::new();
    for d in disks {
        let id = disk_id(d);
        if let Some(id) = &id {
            out.extend(link("by-id", id, &d.name));
        }
        for p in &d.partitions {
            out.extend(link("by-partlabel", &p.label, &p.name));
            out.extend(link("by-partuuid", &p.uuid.to_ascii_lowercase(), &p.name));
            out.extend(link("by-uuid", &p.filesystem_uuid, &p.name));
            out.extend(link("by-label", &p.filesystem_label, &p.name));
            if let Some(id) = &id {
                out.extend(link("by-id", &format!("{id}-part{}", p.number), &p.name));
            }
        }
    }
    for (name, sig) in dm {
        out.extend(link("by-uuid", sig.uuid.as_deref().unwrap_or(""), name));
        out.extend(link("by-label", sig.label.as_deref().unwrap_or(""), name));
    }
    // Two file systems with one UUID or label (a copied disk): udev keeps
    // one; so do we — the first.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|l| seen.insert(l.name.clone()));
    out
}

/// The file system signatures of this machine's device-mapper devices.
fn dm_signatures() -> Vec<(String, Signature)> {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("dm-") {
            continue;
        }
        let Ok(f) = File::open(Path::new("/dev").join(&name)) else {
            continue;
        };
        let size = crate::sys::blk::device_size(&f).unwrap_or(0);
        // The disk engine's detector, as the plan and the inventory use it; a
        // partition table on a mapped device gets no file system link.
        let sector = crate::sys::blk::logical_sector_size(&f).map_or(512, u64::from);
        let found = detect(&f, 0, size, sector).unwrap_or_default();
        if let Some(sig) = found.into_iter().find(|s| !matches!(s.kind, "gpt" | "dos")) {
            out.push((name, sig));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// This machine's links, as the inventory sees its disks now.
pub fn current_links() -> Vec<DiskLink> {
    links(&crate::disk::present::list_disks(), &dm_signatures())
}

/// Writes `links` under `dir` (the tmpfs on the root's `dev/disk`).
pub fn write_links(dir: &Path, links: &[DiskLink]) -> std::io::Result<()> {
    for l in links {
        let path = dir.join(&l.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(Path::new("../../").join(&l.device), &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::v1::Partition;

    fn seed_disk() -> Disk {
        let part = |n: u32, label: &str, fs_uuid: &str, fs_label: &str| Partition {
            name: format!("nvme0n1p{n}"),
            path: format!("/dev/nvme0n1p{n}"),
            number: n,
            label: label.into(),
            uuid: format!("0FC63DAF-8483-4772-8E79-3D69D8477DE{n}"),
            filesystem_uuid: fs_uuid.into(),
            filesystem_label: fs_label.into(),
            ..Default::default()
        };
        Disk {
            name: "nvme0n1".into(),
            path: "/dev/nvme0n1".into(),
            model: "QEMU NVMe Ctrl ".into(),
            serial: "landfall-vm-0".into(),
            partitions: vec![
                part(1, "disk-main-boot", "", ""),
                part(2, "disk-main-ESP", "1234-ABCD", "EFI"),
                part(
                    3,
                    "disk-main-root",
                    "5f0c2a34-0000-4000-8000-000000000001",
                    "my root",
                ),
            ],
            ..Default::default()
        }
    }

    fn as_pairs(v: &[DiskLink]) -> Vec<(String, String)> {
        v.iter()
            .map(|l| (l.name.display().to_string(), l.device.clone()))
            .collect()
    }

    #[test]
    fn the_seed_disk_gets_udevs_links() {
        let got = as_pairs(&links(&[seed_disk()], &[]));
        for (name, dev) in [
            ("by-id/nvme-QEMU_NVMe_Ctrl_landfall-vm-0", "nvme0n1"),
            ("by-id/nvme-QEMU_NVMe_Ctrl_landfall-vm-0-part2", "nvme0n1p2"),
            ("by-partlabel/disk-main-boot", "nvme0n1p1"),
            ("by-partlabel/disk-main-ESP", "nvme0n1p2"),
            (
                "by-partuuid/0fc63daf-8483-4772-8e79-3d69d8477de3",
                "nvme0n1p3",
            ),
            ("by-uuid/1234-ABCD", "nvme0n1p2"),
            ("by-uuid/5f0c2a34-0000-4000-8000-000000000001", "nvme0n1p3"),
            ("by-label/EFI", "nvme0n1p2"),
            ("by-label/my\\x20root", "nvme0n1p3"),
        ] {
            assert!(
                got.contains(&(name.to_string(), dev.to_string())),
                "{name} -> {dev} missing from {got:?}"
            );
        }
        // The BIOS boot partition has no file system: no by-uuid link for it.
        assert!(!got
            .iter()
            .any(|(n, d)| d == "nvme0n1p1" && n.starts_with("by-uuid")));
    }

    #[test]
    fn names_are_escaped_and_duplicates_dropped() {
        assert_eq!(udev_escape("a/b c"), "a\\x2fb\\x20c");
        assert_eq!(udev_escape("héllo_1.2"), "héllo_1.2");
        let mut twin = seed_disk();
        twin.name = "nvme1n1".into();
        twin.serial = "other".into();
        for p in &mut twin.partitions {
            p.name = p.name.replace("nvme0n1", "nvme1n1");
        }
        let got = as_pairs(&links(&[seed_disk(), twin], &[]));
        let esp: Vec<_> = got
            .iter()
            .filter(|(n, _)| n == "by-partlabel/disk-main-ESP")
            .collect();
        assert_eq!(
            esp,
            [&("by-partlabel/disk-main-ESP".into(), "nvme0n1p2".into())]
        );
    }

    #[test]
    fn device_mapper_file_systems_get_uuid_links() {
        let sig = Signature {
            kind: "ext4",
            label: Some("root".into()),
            uuid: Some("abcd".into()),
        };
        let got = as_pairs(&links(&[], &[("dm-1".into(), sig)]));
        assert_eq!(
            got,
            [
                ("by-uuid/abcd".to_string(), "dm-1".to_string()),
                ("by-label/root".to_string(), "dm-1".to_string())
            ]
        );
    }

    #[test]
    fn links_are_written_relative() {
        let dir = tempfile::tempdir().unwrap();
        write_links(dir.path(), &links(&[seed_disk()], &[])).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("by-partlabel/disk-main-ESP")).unwrap(),
            Path::new("../../nvme0n1p2")
        );
    }
}
