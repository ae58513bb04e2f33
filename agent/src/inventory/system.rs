//! Memory, CPUs, firmware mode and kernel release from procfs, sysfs and uname(2).

use std::fs;
use std::path::Path;

use landfall_proto::v1::{Cpu, Firmware, Memory};

fn meminfo_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn memory() -> Memory {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Memory {
        total_bytes: meminfo_kib(&text, "MemTotal") * 1024,
        available_bytes: meminfo_kib(&text, "MemAvailable") * 1024,
    }
}

pub fn cpu() -> Cpu {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Cpu {
        count: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        model: text
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default(),
        architecture: std::env::consts::ARCH.to_string(),
    }
}

pub fn firmware() -> Firmware {
    let uefi = Path::new("/sys/firmware/efi").exists();
    // SecureBoot-8be4df61-…: 4 bytes of attributes, then one byte 0/1 (readable once efivarfs is mounted).
    let secure_boot =
        fs::read("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
            .map(|b| b.get(4) == Some(&1))
            .unwrap_or(false);
    Firmware {
        mode: if uefi { "uefi" } else { "bios" }.to_string(),
        secure_boot,
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parses() {
        let t = "MemTotal:        8000 kB\nMemFree: 1 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(meminfo_kib(t, "MemTotal"), 8000);
        assert_eq!(meminfo_kib(t, "MemAvailable"), 4000);
        assert_eq!(meminfo_kib(t, "Nope"), 0);
    }
}
