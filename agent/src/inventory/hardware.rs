//! The facts nixos-generate-config's hardware scan reads — PCI devices with
//! their class and bound module, USB interfaces, the modules behind block
//! devices and MMC hosts, bcache and LVM devices, the CPU's vendor and flags,
//! the hypervisor, the network interfaces — gathered from a sysfs/procfs tree.
//!
//! Invariants:
//! - Everything is read below `root` (`/` on a machine; a recorded tree in
//!   tests): `root/sys/...`, `root/proc/...`. Only the hypervisor's CPUID
//!   signature comes from the CPU itself, and it is passed in.
//! - Every list is in the order the script's globs visit it: names sorted
//!   case-folded, ties by bytes (Perl's `glob`, GLOB_ALPHASORT), so the
//!   generated module lists keep the script's order.
//! - A module counts only when `driver/module` resolves to an existing
//!   module folder (the script's `-e $path/driver/module`); its name is that
//!   folder's name (`basename readlink -f`).
//! - Nothing unreadable fails the scan: a missing file reads as empty.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use landfall_proto::v1::{Hardware, PciDevice, UsbInterface};

use super::virt::{detect_virtualization, VirtFacts};

use crate::sys::sysfs::read_trimmed;

/// Perl's `glob` order: case-folded comparison, then bytes.
pub fn glob_order(a: &str, b: &str) -> Ordering {
    a.to_ascii_lowercase()
        .cmp(&b.to_ascii_lowercase())
        .then_with(|| a.cmp(b))
}

/// The entries of `dir` (names, paths) in glob order; empty when unreadable.
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                Some((name, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| glob_order(&a.0, &b.0));
    out
}

/// The module of the driver bound at `dev` (`dev/driver/module`), when that
/// link resolves: the name of the module folder it points to.
fn bound_module(dev: &Path) -> Option<String> {
    let target = fs::canonicalize(dev.join("driver/module")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn pci_devices(root: &Path) -> Vec<PciDevice> {
    entries(&root.join("sys/bus/pci/devices"))
        .into_iter()
        .map(|(slot, path)| PciDevice {
            vendor: read_trimmed(path.join("vendor")),
            device: read_trimmed(path.join("device")),
            class: read_trimmed(path.join("class")),
            module: bound_module(&path).unwrap_or_default(),
            slot,
        })
        .collect()
}

fn usb_interfaces(root: &Path) -> Vec<UsbInterface> {
    entries(&root.join("sys/bus/usb/devices"))
        .into_iter()
        .filter(|(_, path)| path.join("bInterfaceClass").exists())
        .map(|(name, path)| UsbInterface {
            class: read_trimmed(path.join("bInterfaceClass")),
            subclass: read_trimmed(path.join("bInterfaceSubClass")),
            protocol: read_trimmed(path.join("bInterfaceProtocol")),
            module: bound_module(&path).unwrap_or_default(),
            name,
        })
        .collect()
}

/// The modules behind /sys/class/block/* then /sys/class/mmc_host/* (the
/// script's brace glob visits the block class first).
fn block_modules(root: &Path) -> Vec<String> {
    ["sys/class/block", "sys/class/mmc_host"]
        .iter()
        .flat_map(|class| entries(&root.join(class)))
        .filter_map(|(_, path)| bound_module(&path.join("device")))
        .collect()
}

fn block_names(root: &Path) -> Vec<(String, PathBuf)> {
    entries(&root.join("sys/class/block"))
}

/// A bcache device exists (`bcache0`, …; bcachefs is not bcache).
fn has_bcache(root: &Path) -> bool {
    block_names(root)
        .iter()
        .any(|(n, _)| n.starts_with("bcache") && !n.starts_with("bcachefs"))
}

/// An LVM logical volume is active: a device-mapper device whose uuid
/// starts with `LVM-` (what lsblk reports as TYPE lvm).
fn has_lvm(root: &Path) -> bool {
    block_names(root)
        .iter()
        .any(|(_, p)| read_trimmed(p.join("dm/uuid")).starts_with("LVM-"))
}

/// The value of `key` on the first line of /proc/cpuinfo that has it.
fn cpuinfo_field<'a>(cpuinfo: &'a str, key: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim_end() == key).then(|| v.trim())
    })
}

fn net_interfaces(root: &Path) -> Vec<String> {
    entries(&root.join("sys/class/net"))
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "lo")
        .collect()
}

/// The Nix system of this build of the agent: `x86_64-linux`, `aarch64-linux`.
pub fn this_host_platform() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// Reads the hardware facts below `root`. `cpuid_signature` is the
/// hypervisor's CPUID vendor signature (leaf 0x40000000) when the CPU says
/// it runs under one; `host_platform` the Nix system to write.
pub fn collect_hardware(
    root: &Path,
    cpuid_signature: Option<&str>,
    host_platform: &str,
) -> Hardware {
    let cpuinfo = fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let cpu_flags: Vec<String> = cpuinfo_field(&cpuinfo, "flags")
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let dmi = |name: &str| read_trimmed(root.join("sys/class/dmi/id").join(name));
    let facts = VirtFacts {
        dmi: [
            "product_name",
            "sys_vendor",
            "board_vendor",
            "bios_vendor",
            "product_version",
        ]
        .iter()
        .map(|f| dmi(f))
        .collect(),
        cpuid_signature: cpuid_signature.map(str::to_string),
        proc_xen: root.join("proc/xen").exists(),
        xen_dom0: read_trimmed(root.join("proc/xen/capabilities")).contains("control_d"),
        sys_hypervisor_type: read_trimmed(root.join("sys/hypervisor/type")),
    };
    Hardware {
        pci_devices: pci_devices(root),
        usb_interfaces: usb_interfaces(root),
        block_modules: block_modules(root),
        bcache: has_bcache(root),
        lvm: has_lvm(root),
        cpu_vendor: cpuinfo_field(&cpuinfo, "vendor_id")
            .unwrap_or_default()
            .to_string(),
        cpu_flags,
        virtualization: detect_virtualization(&facts).to_string(),
        net_interfaces: net_interfaces(root),
        host_platform: host_platform.to_string(),
    }
}

/// This machine's hardware facts.
pub fn hardware() -> Hardware {
    collect_hardware(
        Path::new("/"),
        super::virt::cpuid_hypervisor_signature().as_deref(),
        &this_host_platform(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_order_folds_case_then_compares_bytes() {
        let mut v = vec!["eth1", "Eth0", "eth0", "enp1s0", "bonding_masters"];
        v.sort_by(|a, b| glob_order(a, b));
        assert_eq!(v, ["bonding_masters", "enp1s0", "Eth0", "eth0", "eth1"]);
    }

    #[test]
    fn cpuinfo_fields_come_from_the_first_cpu() {
        let t = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n\n\
                 processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu\n";
        assert_eq!(cpuinfo_field(t, "vendor_id"), Some("AuthenticAMD"));
        assert_eq!(cpuinfo_field(t, "flags"), Some("fpu svm"));
        assert_eq!(cpuinfo_field(t, "model name"), None);
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn lvm_bcache_and_mmc_hosts_are_seen() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // dm-0 is an LVM volume, dm-1 a LUKS mapping; bcache0 is bcache.
        write(root, "sys/class/block/dm-0/dm/uuid", "LVM-Xq8s2abcdef\n");
        write(
            root,
            "sys/class/block/dm-1/dm/uuid",
            "CRYPT-LUKS2-0123-root\n",
        );
        write(root, "sys/class/block/bcache0/dev", "252:0\n");
        // An SD/MMC host bound to sdhci_pci, after the block devices.
        write(root, "sys/module/sdhci_pci/initstate", "live\n");
        write(root, "sys/module/sd_mod/initstate", "live\n");
        fs::create_dir_all(root.join("sys/class/mmc_host/mmc0/device/driver")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../../module/sdhci_pci",
            root.join("sys/class/mmc_host/mmc0/device/driver/module"),
        )
        .unwrap();
        fs::create_dir_all(root.join("sys/class/block/sda/device/driver")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../../module/sd_mod",
            root.join("sys/class/block/sda/device/driver/module"),
        )
        .unwrap();
        // A link to a module folder that does not exist does not count.
        fs::create_dir_all(root.join("sys/class/block/sdb/device/driver")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../../module/gone",
            root.join("sys/class/block/sdb/device/driver/module"),
        )
        .unwrap();
        let hw = collect_hardware(root, None, "x86_64-linux");
        assert!(hw.lvm && hw.bcache);
        assert_eq!(hw.block_modules, ["sd_mod", "sdhci_pci"]);
        let no_lvm = tempfile::tempdir().unwrap();
        write(
            no_lvm.path(),
            "sys/class/block/dm-1/dm/uuid",
            "CRYPT-LUKS2-0123-root\n",
        );
        write(no_lvm.path(), "sys/class/block/bcachefs0/dev", "1:1\n");
        let hw = collect_hardware(no_lvm.path(), None, "x86_64-linux");
        assert!(!hw.lvm && !hw.bcache);
    }

    #[test]
    fn an_empty_root_reads_as_nothing() {
        let d = tempfile::tempdir().unwrap();
        let hw = collect_hardware(d.path(), None, "x86_64-linux");
        assert!(hw.pci_devices.is_empty() && hw.block_modules.is_empty());
        assert_eq!(hw.virtualization, "none");
        assert_eq!(hw.host_platform, "x86_64-linux");
    }
}
