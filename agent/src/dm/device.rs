//! Device-mapper devices for the engines above (LUKS, LVM): create one from a
//! table, remove it, list them — and the device nodes udev would make, since
//! the agent runs as PID 1 without udev.
//!
//! Invariants:
//! - Names, uuids and tables are checked before the first request, so bad
//!   input leaves nothing behind. A device whose table the kernel refuses (or
//!   that does not resume) is removed again before the error is returned; only
//!   if that removal fails too does the error say a device was left behind.
//! - After [`Mapper::create_device`], `/dev/mapper/NAME` and `/dev/dm-N` are block
//!   nodes of the device (devtmpfs makes `dm-N`; whatever is missing or wrong
//!   is made with mknod). [`Mapper::remove_device`] deletes the nodes that name
//!   the removed device and nothing else.
//! - `/dev/VG/LV` links ([`link_lvm_name`]) point at `../mapper/VG-LV`, as LVM's
//!   own node code does when udev does not.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::sys::dm::{Control, DeviceStatus, DmError, Target};

/// The misc device number of `/dev/mapper/control` (MISC_MAJOR, MAPPER_CTRL_MINOR),
/// used when sysfs does not say.
pub const CONTROL_DEV: (u32, u32) = (10, 236);

/// How long devtmpfs gets to make `/dev/dm-N` before we make it ourselves.
const DEVTMPFS_WAIT: Duration = Duration::from_millis(500);

/// Errors of device-mapper device handling.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("Cannot make the device-mapper control node {path}")]
    ControlNode {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Request(#[from] DmError),
    #[error("{cause}; removing the half-made device {name:?} failed too, so it is left behind")]
    LeftBehind {
        name: String,
        cause: Box<DmError>,
        #[source]
        remove: DmError,
    },
    #[error("Cannot make the device node {path}")]
    Node {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot remove the device node {path}")]
    RemoveNode {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot link {link} to {target}")]
    Link {
        link: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A live device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    pub name: String,
    pub uuid: Option<String>,
    pub major: u32,
    pub minor: u32,
}

impl DmDevice {
    fn from_dev(name: &str, uuid: Option<String>, dev: u64) -> DmDevice {
        DmDevice {
            name: name.to_string(),
            uuid,
            major: libc::major(dev),
            minor: libc::minor(dev),
        }
    }

    /// The `dev_t` as glibc's `makedev` encodes it.
    pub fn dev_t(&self) -> u64 {
        libc::makedev(self.major, self.minor)
    }

    /// `/dev/mapper/NAME` under `dev_root`.
    pub fn mapper_path(&self, dev_root: &Path) -> PathBuf {
        dev_root.join("mapper").join(&self.name)
    }

    /// `/dev/dm-N` under `dev_root`.
    pub fn dm_path(&self, dev_root: &Path) -> PathBuf {
        dev_root.join(format!("dm-{}", self.minor))
    }
}

/// The control node and the `/dev` the nodes are made in.
#[derive(Debug)]
pub struct Mapper {
    control: Control,
    dev_root: PathBuf,
}

impl Mapper {
    /// Opens `/dev/mapper/control`, making the node first if it is missing.
    pub fn open() -> Result<Mapper, DeviceError> {
        Self::open_in(Path::new("/dev"))
    }

    /// As [`Mapper::open`] with the nodes under `dev_root`.
    pub fn open_in(dev_root: &Path) -> Result<Mapper, DeviceError> {
        let path = ensure_control_node(dev_root)?;
        let control = Control::open_at(&path)?;
        control.version()?;
        Ok(Mapper {
            control,
            dev_root: dev_root.to_path_buf(),
        })
    }

    /// The raw requests, for callers that need more than this module offers.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Creates `name` with `targets` live: DM_DEV_CREATE, DM_TABLE_LOAD,
    /// resume; then the nodes. Undoes the create when a later step fails.
    pub fn create_device(
        &self,
        name: &str,
        uuid: Option<&str>,
        targets: &[Target],
    ) -> Result<DmDevice, DeviceError> {
        crate::sys::dm::check_name(name)?;
        crate::sys::dm::check_uuid(uuid.unwrap_or(""))?;
        crate::sys::dm::check_table(targets)?;
        let dev = self.control.create(name, uuid.unwrap_or(""))?;
        let live = self
            .control
            .load_table(name, targets)
            .and_then(|()| self.control.resume(name));
        if let Err(cause) = live {
            return Err(match self.control.remove(name) {
                Ok(()) => DeviceError::Request(cause),
                Err(remove) => DeviceError::LeftBehind {
                    name: name.to_string(),
                    cause: Box::new(cause),
                    remove,
                },
            });
        }
        let device = DmDevice::from_dev(name, uuid.map(str::to_string), dev);
        make_nodes(&self.dev_root, &device)?;
        tracing::info!(
            "Device-mapper device {name} is {}:{} ({} targets)",
            device.major,
            device.minor,
            targets.len()
        );
        Ok(device)
    }

    /// Removes `name` and the nodes that name it.
    pub fn remove_device(&self, name: &str) -> Result<(), DeviceError> {
        let status = self.control.status(name)?;
        self.control.remove(name)?;
        let device = DmDevice::from_dev(name, None, status.dev);
        for node in [
            device.mapper_path(&self.dev_root),
            device.dm_path(&self.dev_root),
        ] {
            if is_block_node(&node, device.dev_t()) {
                match fs::remove_file(&node) {
                    // devtmpfs removes its own dm-N node at the same time.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(DeviceError::RemoveNode { path: node, source }),
                    Ok(()) => {}
                }
            }
        }
        Ok(())
    }

    /// Every device-mapper device.
    pub fn list(&self) -> Result<Vec<DmDevice>, DeviceError> {
        Ok(self
            .control
            .list()?
            .into_iter()
            .map(|d| DmDevice::from_dev(&d.name, d.uuid, d.dev))
            .collect())
    }

    /// The live table of `name`.
    pub fn table(&self, name: &str) -> Result<Vec<Target>, DeviceError> {
        Ok(self.control.table(name)?)
    }

    /// DM_DEV_STATUS of `name`.
    pub fn status(&self, name: &str) -> Result<DeviceStatus, DeviceError> {
        Ok(self.control.status(name)?)
    }
}

/// Whether `path` is a block device node with number `dev`.
fn is_block_node(path: &Path, dev: u64) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_block_device() && m.rdev() == dev)
        .unwrap_or(false)
}

/// Makes `path` a node of type `kind` and number (major, minor), replacing
/// whatever else is there.
fn make_node(
    path: &Path,
    kind: SFlag,
    mode: u32,
    (major, minor): (u32, u32),
) -> Result<(), DeviceError> {
    let err = |source| DeviceError::Node {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    mknod(
        path,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(major.into(), minor.into()),
    )
    .map_err(|e| err(io::Error::from(e)))
}

/// `/dev/mapper/control`, made (char 10:236, or what sysfs says) if missing.
pub fn ensure_control_node(dev_root: &Path) -> Result<PathBuf, DeviceError> {
    let path = dev_root.join("mapper/control");
    if fs::symlink_metadata(&path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
    {
        return Ok(path);
    }
    let number = fs::read_to_string("/sys/class/misc/device-mapper/dev")
        .ok()
        .and_then(|s| parse_dev_pair(&s))
        .unwrap_or(CONTROL_DEV);
    make_node(&path, SFlag::S_IFCHR, 0o600, number).map_err(|e| match e {
        DeviceError::Node { path, source } => DeviceError::ControlNode { path, source },
        other => other,
    })?;
    Ok(path)
}

/// Parses sysfs's `MAJOR:MINOR`.
pub fn parse_dev_pair(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Makes `/dev/dm-N` (if devtmpfs did not in time) and `/dev/mapper/NAME`.
fn make_nodes(dev_root: &Path, device: &DmDevice) -> Result<(), DeviceError> {
    let dm = device.dm_path(dev_root);
    let deadline = Instant::now() + DEVTMPFS_WAIT;
    while !is_block_node(&dm, device.dev_t()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let number = (device.major, device.minor);
    if !is_block_node(&dm, device.dev_t()) {
        make_node(&dm, SFlag::S_IFBLK, 0o660, number)?;
    }
    let mapper = device.mapper_path(dev_root);
    if !is_block_node(&mapper, device.dev_t()) {
        make_node(&mapper, SFlag::S_IFBLK, 0o660, number)?;
    }
    Ok(())
}

/// Splits a device-mapper name LVM made (`VG-LV`, with `-` inside either name
/// doubled) into (VG, LV). `None` for names with no single dash, or with a
/// layer suffix (`vg-lv-real`, `vg-lv_tmeta` is fine: `_` is not special).
pub fn split_lvm_name(name: &str) -> Option<(String, String)> {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' {
            if chars.peek() == Some(&'-') {
                chars.next();
                parts.last_mut()?.push('-');
            } else {
                parts.push(String::new());
            }
        } else {
            parts.last_mut()?.push(c);
        }
    }
    match parts.as_slice() {
        [vg, lv] if !vg.is_empty() && !lv.is_empty() => Some((vg.clone(), lv.clone())),
        _ => None,
    }
}

/// Joins VG and LV names into the device-mapper name LVM uses.
pub fn lvm_dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Makes `/dev/VG/LV -> ../mapper/NAME` for an LVM device name; returns the
/// link, or `None` when `name` is no plain `VG-LV` name.
pub fn link_lvm_name(dev_root: &Path, name: &str) -> Result<Option<PathBuf>, DeviceError> {
    let Some((vg, lv)) = split_lvm_name(name) else {
        return Ok(None);
    };
    let dir = dev_root.join(&vg);
    let link = dir.join(&lv);
    let target = Path::new("../mapper").join(name);
    let err = |source| DeviceError::Link {
        link: link.clone(),
        target: target.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(err)?;
    match fs::read_link(&link) {
        Ok(existing) if existing == target => return Ok(Some(link)),
        Ok(_) => fs::remove_file(&link).map_err(err)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&target, &link).map_err(err)?;
    Ok(Some(link))
}

/// Removes the `/dev/VG/LV` link of an LVM device name (and the VG folder once empty).
pub fn unlink_lvm_name(dev_root: &Path, name: &str) -> Result<(), DeviceError> {
    let Some((vg, lv)) = split_lvm_name(name) else {
        return Ok(());
    };
    let link = dev_root.join(&vg).join(&lv);
    if fs::symlink_metadata(&link)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
    {
        fs::remove_file(&link).map_err(|source| DeviceError::RemoveNode {
            path: link.clone(),
            source,
        })?;
    }
    let _ = fs::remove_dir(dev_root.join(&vg));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_names_split_on_the_single_dash() {
        assert_eq!(
            split_lvm_name("pool-root"),
            Some(("pool".into(), "root".into()))
        );
        assert_eq!(
            split_lvm_name("my--vg-home--data"),
            Some(("my-vg".into(), "home-data".into()))
        );
        assert_eq!(split_lvm_name("cryptroot"), None);
        assert_eq!(split_lvm_name("vg-lv-real"), None);
        assert_eq!(split_lvm_name("-lv"), None);
        for (vg, lv) in [("a-b", "c--d"), ("pool", "root"), ("x", "y-")] {
            assert_eq!(
                split_lvm_name(&lvm_dm_name(vg, lv)),
                Some((vg.into(), lv.into()))
            );
        }
    }

    #[test]
    fn sysfs_device_numbers_parse() {
        assert_eq!(parse_dev_pair("10:236\n"), Some((10, 236)));
        assert_eq!(parse_dev_pair("10"), None);
    }

    #[test]
    fn lvm_links_point_at_the_mapper_node_and_go_away() {
        let d = tempfile::tempdir().unwrap();
        let link = link_lvm_name(d.path(), "my--vg-root").unwrap().unwrap();
        assert_eq!(link, d.path().join("my-vg/root"));
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("../mapper/my--vg-root")
        );
        // Idempotent.
        assert_eq!(
            link_lvm_name(d.path(), "my--vg-root").unwrap(),
            Some(link.clone())
        );
        assert_eq!(link_lvm_name(d.path(), "cryptroot").unwrap(), None);
        unlink_lvm_name(d.path(), "my--vg-root").unwrap();
        assert!(!d.path().join("my-vg").exists());
    }

    #[test]
    fn nodes_are_made_with_the_device_number_and_removed_by_it() {
        // Needs CAP_MKNOD (the tests run as root, as the agent does).
        let d = tempfile::tempdir().unwrap();
        let device = DmDevice {
            name: "pool-root".into(),
            uuid: None,
            major: 253,
            minor: 3,
        };
        fs::write(d.path().join("dm-3"), b"stale file").unwrap();
        make_nodes(d.path(), &device).unwrap();
        assert!(is_block_node(
            &d.path().join("mapper/pool-root"),
            device.dev_t()
        ));
        assert!(is_block_node(&d.path().join("dm-3"), device.dev_t()));
        assert!(!is_block_node(
            &d.path().join("dm-3"),
            libc::makedev(253, 4)
        ));
        let control = ensure_control_node(d.path()).unwrap();
        let m = fs::metadata(&control).unwrap();
        assert!(m.file_type().is_char_device());
        // The misc major is 10 on every kernel; the minor comes from sysfs or 236.
        assert_eq!(libc::major(m.rdev()), 10);
    }
}
