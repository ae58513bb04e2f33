//! luksFormat and luksAddKey, writing what `cryptsetup luksFormat --type
//! luks2` 2.6 writes by default: 16 KiB header areas (4 KiB binary header +
//! 12 KiB JSON) at 0 and 16 KiB, the keyslots area from 32 KiB to the data
//! offset at 16 MiB (filled with random bytes, as cryptsetup wipes it), one
//! argon2id keyslot at 32 KiB, an aes-xts-plain64 segment with a 512-bit key
//! and a pbkdf2-sha256 digest.
//!
//! Invariant: everything is computed and checked in memory first (key, label,
//! device size, cost); the device is written only once all of it succeeded,
//! so bad input leaves it byte-identical.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt};

use super::digest;
use super::error::Luks2Error;
use super::header::{BinaryHeader, BINARY_HEADER_SIZE};
use super::kdf::{self, Argon2Cost, PbkdfRequest};
use super::keyslot;
use super::metadata::{Config, Metadata, Segment};
use super::read::Header;
use super::unlock::unlock_header;
use crate::sys::blk;

/// Header area (binary header + JSON) size cryptsetup uses by default.
pub const HDR_SIZE: u64 = 16384;
/// Data offset cryptsetup uses by default (header areas + keyslots area).
pub const DATA_OFFSET: u64 = 16 << 20;
pub const KEYSLOTS_OFFSET: u64 = 2 * HDR_SIZE;
pub const KEYSLOTS_SIZE: u64 = DATA_OFFSET - KEYSLOTS_OFFSET;
pub const VOLUME_KEY_BYTES: usize = 64;
pub const SEGMENT_CIPHER: &str = "aes-xts-plain64";
/// cryptsetup's first sequence id after luksFormat (it writes the header
/// three times while formatting); ours is written once, with the same value.
pub const FORMAT_SEQID: u64 = 3;

/// What to format with. [`FormatOptions::for_this_machine`] fills RAM and
/// CPUs from the running system (the target: the agent runs on it).
#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub label: Option<String>,
    /// Random when `None`.
    pub uuid: Option<uuid::Uuid>,
    pub pbkdf: PbkdfRequest,
    /// The machine's RAM, for the argon2 memory cap.
    pub ram_kib: u64,
    pub cpus: u32,
    /// Encryption sector size; chosen from the device when `None`.
    pub sector_size: Option<u32>,
}

impl FormatOptions {
    pub fn for_this_machine() -> FormatOptions {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(256 * 1024);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        FormatOptions {
            label: None,
            uuid: None,
            pbkdf: PbkdfRequest::default(),
            ram_kib,
            cpus,
            sector_size: None,
        }
    }
}

/// What luksFormat made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    pub uuid: String,
    pub cost: Argon2Cost,
    pub sector_size: u32,
    pub data_offset: u64,
}

/// cryptsetup 2.6's default encryption sector size: the physical block size
/// when it is larger than the logical one, at most 4096 and a multiple of it;
/// otherwise the logical size. A regular file (no BLKPBSZGET) counts as
/// physical 4096. Falls back to 512 when the data area is not a whole number
/// of such sectors.
pub fn default_sector_size(logical: u32, physical: Option<u32>, data_bytes: u64) -> u32 {
    let physical = physical.unwrap_or(4096);
    let chosen = if logical >= physical
        || physical <= 512
        || physical > 4096
        || !physical.is_multiple_of(logical.max(1))
    {
        logical
    } else {
        physical
    };
    if chosen > 512 && !data_bytes.is_multiple_of(chosen as u64) {
        512
    } else {
        chosen
    }
}

fn random(buf: &mut [u8]) -> Result<(), Luks2Error> {
    getrandom::getrandom(buf).map_err(Luks2Error::Random)
}

fn check_key(key: &[u8]) -> Result<(), Luks2Error> {
    if key.is_empty() {
        return Err(Luks2Error::EmptyKey);
    }
    Ok(())
}

/// The argon2 cost for `opts` on this machine (benchmarks unless forced).
pub fn resolve_cost(opts: &FormatOptions) -> Result<Argon2Cost, Luks2Error> {
    let limit = kdf::memory_limit_kib(&opts.pbkdf, opts.ram_kib);
    let lanes = kdf::lanes_for(opts.cpus);
    let rate = if opts.pbkdf.force_time.is_some() {
        0.0
    } else {
        kdf::measure_argon2(limit, lanes)?
    };
    Ok(kdf::choose_cost(rate, &opts.pbkdf, limit, lanes))
}

fn write_headers(dev: &File, binary: &BinaryHeader, metadata: &Metadata) -> Result<(), Luks2Error> {
    let json = metadata.to_json();
    let room = binary.hdr_size as usize - BINARY_HEADER_SIZE;
    if json.len() >= room {
        return Err(Luks2Error::Metadata(format!(
            "JSON of {} bytes does not fit the {room}-byte area",
            json.len()
        )));
    }
    let mut primary = binary.clone();
    primary.primary = true;
    primary.hdr_offset = 0;
    random(&mut primary.salt)?;
    let mut secondary = binary.clone();
    secondary.primary = false;
    secondary.hdr_offset = binary.hdr_size;
    random(&mut secondary.salt)?;
    dev.write_all_at(&primary.encode_area(&json), 0)
        .map_err(Luks2Error::Write)?;
    dev.write_all_at(&secondary.encode_area(&json), binary.hdr_size)
        .map_err(Luks2Error::Write)?;
    Ok(())
}

/// Formats `dev` (a block device or image file) as LUKS2 with one keyslot
/// opened by `key`.
pub fn luks_format(dev: &File, key: &[u8], opts: &FormatOptions) -> Result<Formatted, Luks2Error> {
    check_key(key)?;
    let label = opts.label.clone().unwrap_or_default();
    if label.len() > 47 {
        return Err(Luks2Error::LabelTooLong(label.len()));
    }
    let size = blk::device_size(dev).map_err(Luks2Error::Geometry)?;
    if size <= DATA_OFFSET {
        return Err(Luks2Error::DeviceTooSmall {
            size,
            needed: DATA_OFFSET,
        });
    }
    let is_block = dev
        .metadata()
        .map_err(Luks2Error::Read)?
        .file_type()
        .is_block_device();
    let sector_size = match opts.sector_size {
        Some(s) if s.is_power_of_two() && (512..=4096).contains(&s) => s,
        Some(s) => {
            return Err(Luks2Error::Unsupported(format!(
                "encryption sector size {s}"
            )))
        }
        None => {
            let logical = blk::logical_sector_size(dev).map_err(Luks2Error::Geometry)?;
            let physical = if is_block {
                Some(blk::physical_sector_size(dev).map_err(Luks2Error::Geometry)?)
            } else {
                None
            };
            default_sector_size(logical, physical, size - DATA_OFFSET)
        }
    };
    let uuid = opts
        .uuid
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .to_string();

    let mut volume_key = zeroize::Zeroizing::new(vec![0u8; VOLUME_KEY_BYTES]);
    random(&mut volume_key)?;
    let cost = resolve_cost(opts)?;
    let (slot, material) = keyslot::create(&volume_key, key, &cost, KEYSLOTS_OFFSET)?;
    let digest = digest::create(&volume_key)?;

    let metadata = Metadata {
        keyslots: [("0".to_string(), slot)].into(),
        tokens: Default::default(),
        segments: [(
            "0".to_string(),
            Segment {
                kind: "crypt".into(),
                offset: DATA_OFFSET,
                size: "dynamic".into(),
                iv_tweak: 0,
                encryption: SEGMENT_CIPHER.into(),
                sector_size,
                integrity: None,
                flags: None,
            },
        )]
        .into(),
        digests: [("0".to_string(), digest)].into(),
        config: Config {
            json_size: HDR_SIZE - BINARY_HEADER_SIZE as u64,
            keyslots_size: KEYSLOTS_SIZE,
            flags: None,
            requirements: None,
        },
    };

    // The keyslots area: random bytes with the keyslot's material at its
    // start, then zeroed header areas replaced by the two headers.
    let mut keyslots = vec![0u8; KEYSLOTS_SIZE as usize];
    random(&mut keyslots)?;
    keyslots[..material.len()].copy_from_slice(&material);
    let binary = BinaryHeader {
        primary: true,
        hdr_size: HDR_SIZE,
        seqid: FORMAT_SEQID,
        label,
        subsystem: String::new(),
        salt: [0u8; 64],
        uuid: uuid.clone(),
        hdr_offset: 0,
    };
    dev.write_all_at(&vec![0u8; KEYSLOTS_OFFSET as usize], 0)
        .map_err(Luks2Error::Write)?;
    dev.write_all_at(&keyslots, KEYSLOTS_OFFSET)
        .map_err(Luks2Error::Write)?;
    write_headers(dev, &binary, &metadata)?;
    dev.sync_all().map_err(Luks2Error::Write)?;
    Ok(Formatted {
        uuid,
        cost,
        sector_size,
        data_offset: DATA_OFFSET,
    })
}

/// luksAddKey: a further keyslot opened by `new_key`, unlocking with
/// `existing_key` first (disko's `additionalKeyFiles`). Returns its id.
pub fn add_keyslot(
    dev: &File,
    existing_key: &[u8],
    new_key: &[u8],
    opts: &FormatOptions,
) -> Result<String, Luks2Error> {
    check_key(existing_key)?;
    check_key(new_key)?;
    let header = Header::read(dev)?;
    let unlocked = unlock_header(&header, dev, existing_key)?;
    let mut metadata = header.metadata.clone();
    let id = (0u32..)
        .map(|n| n.to_string())
        .find(|n| !metadata.keyslots.contains_key(n))
        .unwrap_or_default();
    let key_len = unlocked.volume_key.bytes().len();
    let need = keyslot::area_size(key_len);
    let areas_end = KEYSLOTS_OFFSET.max(2 * header.binary.hdr_size) + metadata.config.keyslots_size;
    let mut used: Vec<(u64, u64)> = metadata
        .keyslots
        .values()
        .map(|s| (s.area.offset, s.area.offset + s.area.size))
        .collect();
    used.sort();
    let mut offset = 2 * header.binary.hdr_size;
    for (start, end) in used {
        if offset + need <= start {
            break;
        }
        offset = offset.max(end);
    }
    if offset + need > areas_end {
        return Err(Luks2Error::KeyslotsFull);
    }
    let cost = resolve_cost(opts)?;
    let (slot, material) = keyslot::create(unlocked.volume_key.bytes(), new_key, &cost, offset)?;
    metadata.keyslots.insert(id.clone(), slot);
    for d in metadata.digests.values_mut() {
        if d.keyslots.contains(&unlocked.keyslot) {
            d.keyslots.push(id.clone());
        }
    }
    dev.write_all_at(&material, offset)
        .map_err(Luks2Error::Write)?;
    let mut binary = header.binary.clone();
    binary.seqid += 1;
    write_headers(dev, &binary, &metadata)?;
    dev.sync_all().map_err(Luks2Error::Write)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_size_follows_cryptsetup() {
        let data = 100 << 20;
        assert_eq!(default_sector_size(512, Some(512), data), 512);
        assert_eq!(default_sector_size(512, Some(4096), data), 4096);
        assert_eq!(default_sector_size(4096, Some(4096), data), 4096);
        assert_eq!(default_sector_size(512, None, data), 4096);
        assert_eq!(default_sector_size(512, Some(8192), data), 512);
        // A data area that is not whole 4 KiB sectors falls back to 512.
        assert_eq!(default_sector_size(512, Some(4096), data + 512), 512);
    }
}
