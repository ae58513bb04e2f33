//! Unlocking: find the keyslot a passphrase opens, merge its stripes, check
//! the result against the digest, and describe the dm-crypt mapping.

use std::fs::File;

use zeroize::Zeroizing;

use super::digest;
use super::error::Luks2Error;
use super::keyslot;
use super::read::{Header, ReadAt};
use super::volume_key::VolumeKey;

/// How to open a LUKS2 device: disko's `settings.allowDiscards`,
/// `bypassWorkqueues` and the equivalent `extraOpenArgs`. These are dm table
/// options at open time; `cryptsetup luksFormat` stores none of them (only
/// `cryptsetup open --persistent` or `refresh` writes `config.flags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub allow_discards: bool,
    pub no_read_workqueue: bool,
    pub no_write_workqueue: bool,
}

/// An unlocked device: the volume key and what a dm-crypt table needs.
#[derive(Debug)]
pub struct Unlocked {
    pub volume_key: VolumeKey,
    /// The keyslot that opened (its JSON id).
    pub keyslot: String,
    pub cipher: String,
    /// Start of the encrypted data, bytes from the device's start.
    pub data_offset: u64,
    pub sector_size: u32,
    /// Fixed segment size in bytes, or `None` for "dynamic" (to the end).
    pub segment_size: Option<u64>,
    /// Flags stored persistently in the header (`config.flags`).
    pub persistent_flags: Vec<String>,
    pub uuid: String,
}

/// Unlocks with `passphrase` (a typed passphrase or a key file's bytes).
pub fn unlock(src: &(impl ReadAt + ?Sized), passphrase: &[u8]) -> Result<Unlocked, Luks2Error> {
    if passphrase.is_empty() {
        return Err(Luks2Error::EmptyKey);
    }
    let header = Header::read(src)?;
    unlock_header(&header, src, passphrase)
}

/// Unlocks a block device or image file.
pub fn unlock_device(dev: &File, passphrase: &[u8]) -> Result<Unlocked, Luks2Error> {
    unlock(dev, passphrase)
}

/// Unlocks with an already read header; keyslot material comes from `src`.
pub fn unlock_header(
    header: &Header,
    src: &(impl ReadAt + ?Sized),
    passphrase: &[u8],
) -> Result<Unlocked, Luks2Error> {
    let m = &header.metadata;
    if let Some(req) = &m.config.requirements {
        if req
            .get("mandatory")
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty())
        {
            return Err(Luks2Error::Unsupported(format!("requirements {req}")));
        }
    }
    let segment = m.segment()?;
    if segment.kind != "crypt" || segment.integrity.is_some() {
        return Err(Luks2Error::Unsupported(format!(
            "segment type {}",
            segment.kind
        )));
    }
    // Priority 2 (high) first, then normal; priority 0 means "ignore unless named".
    let mut order: Vec<(&String, &super::metadata::Keyslot)> = m
        .keyslots
        .iter()
        .filter(|(_, s)| s.priority != Some(0))
        .collect();
    order.sort_by_key(|(id, s)| {
        (
            std::cmp::Reverse(s.priority.unwrap_or(1)),
            id.parse::<u32>().unwrap_or(u32::MAX),
        )
    });
    for (id, slot) in order {
        let Some(entry) = m
            .digests
            .values()
            .find(|d| d.keyslots.contains(id) && d.segments.iter().any(|s| s == "0"))
        else {
            continue;
        };
        let candidate: Zeroizing<Vec<u8>> = keyslot::open(slot, passphrase, src)?;
        if digest::matches(entry, &candidate)? {
            let segment_size = match segment.size.as_str() {
                "dynamic" => None,
                n => Some(
                    n.parse()
                        .map_err(|_| Luks2Error::Metadata(format!("segment size `{n}`")))?,
                ),
            };
            return Ok(Unlocked {
                volume_key: VolumeKey::new(candidate),
                keyslot: id.clone(),
                cipher: segment.encryption.clone(),
                data_offset: segment.offset,
                sector_size: segment.sector_size,
                segment_size,
                persistent_flags: m.config.flags.clone().unwrap_or_default(),
                uuid: header.binary.uuid.clone(),
            });
        }
    }
    Err(Luks2Error::WrongKey)
}

impl Unlocked {
    /// Length of the mapping in 512-byte sectors on a device of
    /// `device_size` bytes: the segment, whole encryption sectors only.
    pub fn mapped_sectors(&self, device_size: u64) -> u64 {
        let bytes = match self.segment_size {
            Some(s) => s,
            None => device_size.saturating_sub(self.data_offset),
        };
        let whole = bytes / self.sector_size.max(512) as u64 * self.sector_size.max(512) as u64;
        whole / 512
    }

    /// The dm-crypt table line for `device` (a path or `major:minor`) of
    /// `device_size` bytes:
    /// `0 <len> crypt <cipher> <hexkey> <iv_tweak> <dev> <offset> [n opts…]`.
    /// Contains the key: zeroed when dropped; never log it.
    pub fn dm_crypt_table(
        &self,
        device: &str,
        device_size: u64,
        opts: &OpenOptions,
    ) -> Zeroizing<String> {
        let persistent = |f: &str| self.persistent_flags.iter().any(|x| x == f);
        let mut options: Vec<String> = Vec::new();
        if opts.allow_discards || persistent("allow-discards") {
            options.push("allow_discards".into());
        }
        if opts.no_read_workqueue || persistent("no-read-workqueue") {
            options.push("no_read_workqueue".into());
        }
        if opts.no_write_workqueue || persistent("no-write-workqueue") {
            options.push("no_write_workqueue".into());
        }
        if self.sector_size != 512 {
            options.push(format!("sector_size:{}", self.sector_size));
        }
        let mut line = Zeroizing::new(format!(
            "0 {} crypt {} {} 0 {} {}",
            self.mapped_sectors(device_size),
            self.cipher,
            &*self.volume_key.hex(),
            device,
            self.data_offset / 512
        ));
        if !options.is_empty() {
            line.push_str(&format!(" {} {}", options.len(), options.join(" ")));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlocked(sector_size: u32, flags: &[&str]) -> Unlocked {
        Unlocked {
            volume_key: VolumeKey::new(Zeroizing::new((0..64u8).collect())),
            keyslot: "0".into(),
            cipher: "aes-xts-plain64".into(),
            data_offset: 16 << 20,
            sector_size,
            segment_size: None,
            persistent_flags: flags.iter().map(|s| s.to_string()).collect(),
            uuid: String::new(),
        }
    }

    #[test]
    fn table_line_with_and_without_options() {
        let key: String = (0..64u8).map(|b| format!("{b:02x}")).collect();
        let u = unlocked(512, &[]);
        assert_eq!(
            *u.dm_crypt_table("/dev/vda2", 64 << 20, &OpenOptions::default()),
            format!("0 98304 crypt aes-xts-plain64 {key} 0 /dev/vda2 32768")
        );
        let u = unlocked(4096, &[]);
        let all = OpenOptions {
            allow_discards: true,
            no_read_workqueue: true,
            no_write_workqueue: true,
        };
        // 64 MiB + 1000 bytes: the odd tail is not a whole 4 KiB sector.
        assert_eq!(
            *u.dm_crypt_table("8:2", (64 << 20) + 1000, &all),
            format!("0 98304 crypt aes-xts-plain64 {key} 0 8:2 32768 4 allow_discards no_read_workqueue no_write_workqueue sector_size:4096")
        );
    }

    #[test]
    fn persistent_flags_are_honoured() {
        let u = unlocked(4096, &["allow-discards"]);
        let line = u.dm_crypt_table("/dev/sda1", 32 << 20, &OpenOptions::default());
        assert!(
            line.ends_with(" 2 allow_discards sector_size:4096"),
            "{}",
            &*line
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let u = unlocked(512, &[]);
        let shown = format!("{u:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("000102030405"));
    }
}
