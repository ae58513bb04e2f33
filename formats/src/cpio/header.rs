//! The fixed 110-byte newc header: field order, encoding, and alignment rules.

/// Magic of the newc format without checksums.
pub(crate) const MAGIC_NEWC: &[u8; 6] = b"070701";
/// Magic of the newc format with a byte-sum checksum of the data.
pub(crate) const MAGIC_CRC: &[u8; 6] = b"070702";
/// Header length: 6 bytes of magic and 13 fields of 8 hex digits.
pub(crate) const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub(crate) const TRAILER: &str = "TRAILER!!!";

/// The numeric fields of a header, in on-disk order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub rdevmajor: u32,
    pub rdevminor: u32,
    /// Length of the name including its terminating NUL.
    pub namesize: u32,
    pub check: u32,
}

/// Field names in on-disk order, for error messages.
pub(crate) const FIELD_NAMES: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

impl Header {
    pub(crate) fn fields(&self) -> [u32; 13] {
        [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.devmajor,
            self.devminor,
            self.rdevmajor,
            self.rdevminor,
            self.namesize,
            self.check,
        ]
    }

    pub(crate) fn from_fields(f: [u32; 13]) -> Self {
        Header {
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            filesize: f[6],
            devmajor: f[7],
            devminor: f[8],
            rdevmajor: f[9],
            rdevminor: f[10],
            namesize: f[11],
            check: f[12],
        }
    }

    /// The 110 header bytes (newc magic, upper-case hex like GNU cpio).
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..6].copy_from_slice(MAGIC_NEWC);
        for (i, value) in self.fields().iter().enumerate() {
            let text = format!("{value:08X}");
            let start = 6 + i * 8;
            out[start..start + 8].copy_from_slice(text.as_bytes());
        }
        out
    }
}

/// Number of NUL bytes needed after `len` bytes to reach a multiple of 4.
pub(crate) fn pad4(len: u64) -> usize {
    ((4 - (len % 4)) % 4) as usize
}

/// Parses 8 hex digits; `None` if any byte is not a hex digit.
pub(crate) fn parse_hex8(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != 8 {
        return None;
    }
    let mut value: u32 = 0;
    for &b in bytes {
        let digit = (b as char).to_digit(16)?;
        value = (value << 4) | digit;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_puts_fields_in_order() {
        let h = Header {
            ino: 1,
            mode: 0o100644,
            namesize: 5,
            filesize: 0xABCDEF01,
            ..Header::default()
        };
        let bytes = h.encode();
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001");
        assert_eq!(&bytes[14..22], b"000081A4");
        assert_eq!(&bytes[54..62], b"ABCDEF01");
        assert_eq!(&bytes[94..102], b"00000005");
    }

    #[test]
    fn pad4_reaches_multiple_of_four() {
        for len in 0..20u64 {
            assert_eq!((len + pad4(len) as u64) % 4, 0);
            assert!(pad4(len) < 4);
        }
    }

    #[test]
    fn parse_hex8_rejects_garbage() {
        assert_eq!(parse_hex8(b"0000001f"), Some(31));
        assert_eq!(parse_hex8(b"0000001F"), Some(31));
        assert_eq!(parse_hex8(b"0000001g"), None);
        assert_eq!(parse_hex8(b"+0000001"), None);
        assert_eq!(parse_hex8(b"0001"), None);
    }
}
