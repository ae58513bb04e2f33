//! Human-readable renderings of agent replies. Every string in a reply
//! comes from the target: each passes [`crate::sanitize`] here.

use landfall_proto::v1::{InventoryReply, StatusReply};

use crate::sanitize::{line, or_dash};

/// Sizes as people read them: 1 decimal, binary units (one definition, in proto).
pub use landfall_proto::layout::human_bytes;

/// Strings from the target joined by `sep`, each made safe.
fn joined(items: &[String], sep: &str) -> String {
    items.iter().map(|s| line(s)).collect::<Vec<_>>().join(sep)
}

/// The inventory as a few aligned tables.
pub fn inventory(inv: &InventoryReply) -> String {
    let mut out = String::new();
    let fw = inv.firmware.clone().unwrap_or_default();
    let mem = inv.memory.unwrap_or_default();
    let cpu = inv.cpu.clone().unwrap_or_default();
    out += &format!(
        "Machine   {} · kernel {} · firmware {}{} · {} CPU ({}) · memory {} ({} available) · agent {}\n\n",
        or_dash(&inv.hostname),
        or_dash(&inv.kernel),
        or_dash(&fw.mode).to_uppercase(),
        if fw.secure_boot { " (Secure Boot on)" } else { "" },
        cpu.count,
        or_dash(&cpu.architecture),
        human_bytes(mem.total_bytes),
        human_bytes(mem.available_bytes),
        or_dash(&inv.agent_version),
    );
    out += &format!(
        "{:<14} {:>10} {:>9} {:<24} {:<22} {:<6} {}\n",
        "DISK", "SIZE", "SECTOR", "MODEL", "SERIAL", "TABLE", "NOTES"
    );
    for d in &inv.disks {
        let mut notes = Vec::new();
        if d.read_only {
            notes.push("read-only".to_string());
        }
        if d.removable {
            notes.push("removable".to_string());
        }
        if d.rotational {
            notes.push("rotational".to_string());
        }
        notes.extend(d.signatures.iter().map(|s| line(s).into_owned()));
        notes.extend(d.holders.iter().map(|s| line(s).into_owned()));
        out += &format!(
            "{:<14} {:>10} {:>9} {:<24} {:<22} {:<6} {}\n",
            line(&d.path),
            human_bytes(d.size_bytes),
            format!("{}/{}", d.logical_sector_size, d.physical_sector_size),
            or_dash(&d.model),
            or_dash(&d.serial),
            or_dash(&d.partition_table),
            notes.join(", ")
        );
        for p in &d.partitions {
            out += &format!(
                "  {:<12} {:>10} {:>9} {:<24} {:<22} {:<6} {}\n",
                line(p.path.trim_start_matches("/dev/")),
                human_bytes(p.size_bytes),
                "",
                or_dash(&p.label),
                or_dash(&p.filesystem),
                "",
                [
                    line(&p.filesystem_label).into_owned(),
                    joined(&p.mountpoints, " ")
                ]
                .join(" ")
                .trim()
            );
        }
    }
    out += &format!(
        "\n{:<12} {:<19} {:<8} {:<6} {}\n",
        "NIC", "MAC", "CARRIER", "MTU", "ADDRESSES"
    );
    for n in &inv.nics {
        out += &format!(
            "{:<12} {:<19} {:<8} {:<6} {}\n",
            line(&n.name),
            or_dash(&n.mac),
            if n.carrier { "up" } else { "down" },
            n.mtu,
            joined(&n.addresses, " ")
        );
    }
    out
}

pub fn status(s: &StatusReply) -> String {
    let mut out = format!(
        "Job: {}\nUp for {:.1} s{}; ready {} ms after start\nBoot ID: {}\nRoot: {}\n",
        if s.job.is_empty() {
            "idle".into()
        } else {
            line(&s.job)
        },
        s.uptime_ms as f64 / 1000.0,
        if s.pid1 {
            " as PID 1 of the RAM image"
        } else {
            ""
        },
        s.boot_to_serve_ms,
        if s.boot_id.is_empty() {
            "none (started without one)".into()
        } else {
            line(&s.boot_id)
        },
        line(&s.root)
    );
    for m in &s.mounts {
        out += &format!(
            "  {} on {} type {} ({})\n",
            line(&m.source),
            line(&m.target),
            line(&m.fstype),
            line(&m.options)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(human_bytes(3 * (1 << 29)), "1.5 GiB");
    }

    /// A hostile target's inventory: a model that clears the screen and
    /// writes "blank", a serial with an OSC 52 clipboard write, a label
    /// turned around by U+202E. The table shows each sequence as text.
    fn hostile_inventory() -> InventoryReply {
        use landfall_proto::v1::{Disk, Partition};
        InventoryReply {
            hostname: "rescue\u{1b}]0;pwned\u{7}".into(),
            disks: vec![Disk {
                path: "/dev/nvme0n1".into(),
                size_bytes: 4 << 30,
                model: "QEMU\u{1b}[2J\u{1b}[Hblank\u{9b}0m".into(),
                serial: "S1\u{1b}]52;c;cm0gLXJmIH4=\u{7}".into(),
                partitions: vec![Partition {
                    path: "/dev/nvme0n1p1".into(),
                    label: "ESP\u{202e}lanif".into(),
                    filesystem: "vfat\r".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_disk_model_with_escape_sequences_is_printed_escaped() {
        let out = inventory(&hostile_inventory());
        assert!(
            !out.chars()
                .any(|c| crate::sanitize::is_unsafe(c) && c != '\n'),
            "{out:?}"
        );
        assert!(out.contains("QEMU\\x1b[2J\\x1b[Hblank\\x9b0m"), "{out}");
        assert!(out.contains("S1\\x1b]52;c;cm0gLXJmIH4=\\x07"), "{out}");
        assert!(out.contains("ESP\\u{202e}lanif"), "{out}");
        assert!(out.contains("vfat\\x0d"), "{out}");
        assert!(out.contains("rescue\\x1b]0;pwned\\x07"), "{out}");
    }
}
