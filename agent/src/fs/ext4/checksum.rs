//! CRC32C (Castagnoli) as ext4 and JBD2 use it: the raw register value of the
//! kernel's `crc32c(seed, data)` — no final inversion — so a checksum is
//! `crc32c(seed, bytes)` chained field by field exactly as the kernel chains it.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// Eight 256-entry tables for slicing-by-8, built at compile time.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

/// The kernel's `crc32c(seed, data)`: continue the raw CRC register `seed` over `data`.
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    let mut crc = seed;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xFF) as usize]
            ^ TABLES[2][((hi >> 8) & 0xFF) as usize]
            ^ TABLES[1][((hi >> 16) & 0xFF) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    crc
}

/// The filesystem-wide checksum seed: `crc32c(~0, uuid)`.
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The per-inode seed used by inodes, extent blocks and directory blocks:
/// `crc32c(crc32c(fs_seed, le32 ino), le32 generation)`.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard CRC-32C check value: CRC32C("123456789") = 0xE3069283
    /// (with the usual ~0 start and final inversion).
    #[test]
    fn standard_check_value() {
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let one = crc32c(!0, &data);
        let two = crc32c(crc32c(!0, &data[..333]), &data[333..]);
        assert_eq!(one, two);
    }

    /// A 4 KiB block of zeros, checked against the bytewise definition.
    #[test]
    fn known_block() {
        let block = [0u8; 4096];
        let mut bytewise = 0x1234_5678u32;
        for &b in &block {
            bytewise ^= u32::from(b);
            for _ in 0..8 {
                bytewise = if bytewise & 1 != 0 {
                    (bytewise >> 1) ^ POLY
                } else {
                    bytewise >> 1
                };
            }
        }
        assert_eq!(crc32c(0x1234_5678, &block), bytewise);
    }
}
