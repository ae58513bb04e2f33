//! One keyslot: the volume key AF-split into 4000 sha256 stripes, encrypted
//! with aes-xts-plain64 under a key argon2id derives from the passphrase.
//! Creating returns the JSON entry and the encrypted material; opening
//! reverses it and checks nothing (the caller checks the digest).

use zeroize::Zeroizing;

use super::af;
use super::area::{self, AREA_SECTOR, KEYSLOT_CIPHER};
use super::error::Luks2Error;
use super::kdf::{self, Argon2Cost};
use super::metadata::{b64, unb64, Af, Area, Kdf, Keyslot};
use super::read::ReadAt;

pub const STRIPES: u32 = 4000;
pub const AREA_KEY_SIZE: u32 = 64;
/// Area sizes are rounded up to 4 KiB, as cryptsetup does.
pub const AREA_ALIGN: u64 = 4096;

/// Bytes a keyslot's area takes for a key of `key_len` bytes.
pub fn area_size(key_len: usize) -> u64 {
    let material = key_len as u64 * STRIPES as u64;
    material.div_ceil(AREA_ALIGN) * AREA_ALIGN
}

fn random(buf: &mut [u8]) -> Result<(), Luks2Error> {
    getrandom::getrandom(buf).map_err(Luks2Error::Random)
}

/// Makes a keyslot for `volume_key` opened by `passphrase`, its area at
/// `area_offset`. Returns the JSON entry and the encrypted AF material.
pub fn create(
    volume_key: &[u8],
    passphrase: &[u8],
    cost: &Argon2Cost,
    area_offset: u64,
) -> Result<(Keyslot, Zeroizing<Vec<u8>>), Luks2Error> {
    let mut salt = [0u8; 32];
    random(&mut salt)?;
    let mut area_key = Zeroizing::new(vec![0u8; AREA_KEY_SIZE as usize]);
    kdf::argon2(true, cost, passphrase, &salt, &mut area_key)?;
    let mut material = af::split(volume_key, STRIPES as usize)?;
    // 64 × 4000 bytes is a whole number of 512-byte sectors; other key sizes
    // are padded with zeros to the next sector before encryption.
    let padded = (material.len()).div_ceil(AREA_SECTOR) * AREA_SECTOR;
    material.resize(padded, 0);
    area::encrypt(&area_key, &mut material)?;
    let slot = Keyslot {
        kind: "luks2".into(),
        key_size: volume_key.len() as u32,
        af: Af {
            kind: "luks1".into(),
            stripes: STRIPES,
            hash: "sha256".into(),
        },
        area: Area {
            kind: "raw".into(),
            offset: area_offset,
            size: area_size(volume_key.len()),
            encryption: KEYSLOT_CIPHER.into(),
            key_size: AREA_KEY_SIZE,
        },
        kdf: Kdf {
            kind: "argon2id".into(),
            hash: None,
            iterations: None,
            time: Some(cost.time),
            memory: Some(cost.memory_kib),
            cpus: Some(cost.lanes),
            salt: b64(&salt),
        },
        priority: None,
    };
    Ok((slot, material))
}

/// The key a keyslot yields for `passphrase` (right or wrong: the caller
/// compares it with the digest).
pub fn open(
    slot: &Keyslot,
    passphrase: &[u8],
    src: &(impl ReadAt + ?Sized),
) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    if slot.kind != "luks2" {
        return Err(Luks2Error::Unsupported(format!(
            "keyslot type {}",
            slot.kind
        )));
    }
    if slot.af.kind != "luks1" || slot.af.hash != "sha256" {
        return Err(Luks2Error::Unsupported(format!(
            "AF {} with {}",
            slot.af.kind, slot.af.hash
        )));
    }
    if slot.area.kind != "raw" || slot.area.encryption != KEYSLOT_CIPHER {
        return Err(Luks2Error::Unsupported(format!(
            "keyslot area {} {}",
            slot.area.kind, slot.area.encryption
        )));
    }
    let salt = unb64(&slot.kdf.salt)?;
    let mut area_key = Zeroizing::new(vec![0u8; slot.area.key_size as usize]);
    match slot.kdf.kind.as_str() {
        "argon2id" | "argon2i" => {
            let field = |v: Option<u32>, name: &str| {
                v.ok_or_else(|| Luks2Error::Metadata(format!("argon2 keyslot without {name}")))
            };
            let cost = Argon2Cost {
                time: field(slot.kdf.time, "time")?,
                memory_kib: field(slot.kdf.memory, "memory")?,
                lanes: field(slot.kdf.cpus, "cpus")?,
            };
            kdf::argon2(
                slot.kdf.kind == "argon2id",
                &cost,
                passphrase,
                &salt,
                &mut area_key,
            )?;
        }
        "pbkdf2" if slot.kdf.hash.as_deref() == Some("sha256") => {
            let iterations = slot
                .kdf
                .iterations
                .ok_or_else(|| Luks2Error::Metadata("pbkdf2 keyslot without iterations".into()))?;
            kdf::pbkdf2_sha256(passphrase, &salt, iterations, &mut area_key);
        }
        other => return Err(Luks2Error::Unsupported(format!("keyslot KDF {other}"))),
    }
    let key_len = slot.key_size as usize;
    let stripes = slot.af.stripes as usize;
    let len = (key_len * stripes).div_ceil(AREA_SECTOR) * AREA_SECTOR;
    if stripes == 0 || len as u64 > slot.area.size {
        return Err(Luks2Error::Metadata(
            "keyslot material larger than its area".into(),
        ));
    }
    let mut material = Zeroizing::new(vec![0u8; len]);
    src.read_at_exact(slot.area.offset, &mut material)
        .map_err(Luks2Error::Read)?;
    area::decrypt(&area_key, &mut material)?;
    Ok(af::merge(&material, key_len, stripes))
}
