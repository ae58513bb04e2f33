//! lvm2's checksum: the reflected CRC-32 polynomial (0xEDB88320) started from
//! lvm's own initial value 0xf597a6cf and with no final inversion. It guards
//! the label sector, the metadata area header and the metadata text.

/// lvm2's `INITIAL_CRC`.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

const TABLE: [u32; 256] = make_table();

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Continue a checksum over `buf` (lvm's `calc_crc(initial, buf, size)`).
pub fn crc_update(initial: u32, buf: &[u8]) -> u32 {
    buf.iter().fold(initial, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// The checksum lvm2 stores for `buf`.
pub fn lvm_crc(buf: &[u8]) -> u32 {
    crc_update(INITIAL_CRC, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_uses_lvm_initial_value() {
        // The standard CRC-32 of "123456789" is 0xcbf43926 (initial !0, final
        // inversion); lvm's variant starts elsewhere and does not invert.
        assert_eq!(lvm_crc(b"123456789"), 0x4991_cf02);
        assert_ne!(lvm_crc(b"123456789"), 0xcbf4_3926);
        assert_eq!(lvm_crc(b""), INITIAL_CRC);
    }

    #[test]
    fn label_sector_written_by_pvcreate_checks() {
        // Sector 1 of a 2 GiB PV made by Debian 12's pvcreate + vgcreate; the
        // crc at 0x10 covers bytes 0x14..0x200.
        let mut sector = [0u8; 512];
        let head: [u8; 0x50] = [
            0x4c, 0x41, 0x42, 0x45, 0x4c, 0x4f, 0x4e, 0x45, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x16,
            0xe4, 0x2e, 0x20, 0, 0, 0, 0x4c, 0x56, 0x4d, 0x32, 0x20, 0x30, 0x30, 0x31, 0x6e, 0x65,
            0x67, 0x59, 0x39, 0x63, 0x59, 0x61, 0x66, 0x6c, 0x69, 0x77, 0x31, 0x4e, 0x67, 0x63,
            0x71, 0x4a, 0x36, 0x52, 0x36, 0x76, 0x62, 0x73, 0x32, 0x36, 0x68, 0x33, 0x6a, 0x69,
            0x6e, 0x66, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0,
        ];
        sector[..0x50].copy_from_slice(&head);
        sector[0x68..0x70].copy_from_slice(&0x1000u64.to_le_bytes());
        sector[0x70..0x78].copy_from_slice(&0xf_f000u64.to_le_bytes());
        sector[0x88..0x8c].copy_from_slice(&2u32.to_le_bytes());
        sector[0x8c..0x90].copy_from_slice(&1u32.to_le_bytes());
        let stored = u32::from_le_bytes(sector[0x10..0x14].try_into().unwrap());
        assert_eq!(stored, 0x2ee4_167b);
        assert_eq!(lvm_crc(&sector[0x14..]), stored);
    }

    #[test]
    fn update_is_incremental() {
        let whole = lvm_crc(b"metadata that wraps around");
        let part = crc_update(lvm_crc(b"metadata that "), b"wraps around");
        assert_eq!(whole, part);
    }
}
