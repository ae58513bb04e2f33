//! Disks attached to a test VM: raw image files as NVMe or virtio-blk devices.
//!
//! NVMe disks always carry a serial number (qemu requires one); by default
//! `landfall-test-<index>`, which the guest sees in
//! `/sys/block/nvme0n1/device/serial` — like a real server's `/dev/nvme0n1`.

/// How the disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    /// `-device nvme` (guest: /dev/nvmeXn1).
    Nvme,
    /// `-device virtio-blk-pci` (guest: /dev/vdX).
    VirtioBlk,
}

/// A raw disk image attached to a VM.
#[derive(Debug, Clone)]
pub struct Disk {
    path: std::path::PathBuf,
    bus: DiskBus,
    serial: Option<String>,
    block_size: Option<u32>,
    read_only: bool,
}

impl Disk {
    /// A raw image as an NVMe disk.
    pub fn nvme(path: impl Into<std::path::PathBuf>) -> Disk {
        Disk::new(path.into(), DiskBus::Nvme)
    }

    /// A raw image as a virtio-blk disk.
    pub fn virtio_blk(path: impl Into<std::path::PathBuf>) -> Disk {
        Disk::new(path.into(), DiskBus::VirtioBlk)
    }

    fn new(path: std::path::PathBuf, bus: DiskBus) -> Disk {
        Disk {
            path,
            bus,
            serial: None,
            block_size: None,
            read_only: false,
        }
    }

    /// The serial number the guest sees.
    pub fn serial(mut self, serial: &str) -> Disk {
        self.serial = Some(serial.to_owned());
        self
    }

    /// Logical (and physical) block size, e.g. 4096 for a 4Kn disk.
    pub fn logical_block_size(mut self, bytes: u32) -> Disk {
        self.block_size = Some(bytes);
        self
    }

    /// Attach read-only.
    pub fn read_only(mut self) -> Disk {
        self.read_only = true;
        self
    }

    /// The image file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The qemu arguments for this disk as the `index`-th disk of the VM.
    pub fn args(&self, index: usize) -> Vec<String> {
        let id = format!("disk{index}");
        let mut drive = format!(
            "file={},if=none,id={id},format=raw,cache=unsafe",
            escape_option(&self.path.to_string_lossy())
        );
        if self.read_only {
            drive.push_str(",readonly=on");
        }
        let mut device = match self.bus {
            DiskBus::Nvme => format!(
                "nvme,drive={id},serial={}",
                escape_option(
                    self.serial
                        .as_deref()
                        .unwrap_or(&format!("landfall-test-{index}"))
                )
            ),
            DiskBus::VirtioBlk => {
                let mut d = format!("virtio-blk-pci,drive={id}");
                if let Some(s) = &self.serial {
                    d.push_str(&format!(",serial={}", escape_option(s)));
                }
                d
            }
        };
        if let Some(bs) = self.block_size {
            device.push_str(&format!(
                ",logical_block_size={bs},physical_block_size={bs}"
            ));
        }
        vec!["-drive".into(), drive, "-device".into(), device]
    }
}

/// Escapes a value for a qemu `key=value,...` option (a comma is doubled).
pub fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvme_with_serial_and_4k_blocks() {
        let args = Disk::nvme("/tmp/a,b.img")
            .serial("landfall-test-0")
            .logical_block_size(4096)
            .args(0);
        assert_eq!(
            args,
            [
                "-drive",
                "file=/tmp/a,,b.img,if=none,id=disk0,format=raw,cache=unsafe",
                "-device",
                "nvme,drive=disk0,serial=landfall-test-0,logical_block_size=4096,physical_block_size=4096",
            ]
        );
    }

    #[test]
    fn nvme_gets_a_default_serial_virtio_none() {
        assert!(Disk::nvme("/x").args(2)[3].contains("serial=landfall-test-2"));
        let v = Disk::virtio_blk("/x").read_only().args(1);
        assert_eq!(v[3], "virtio-blk-pci,drive=disk1");
        assert!(v[1].ends_with(",readonly=on"));
    }
}
