//! The LUKS2 binary header (4096 bytes) and its checksum.
//!
//! Layout (big-endian integers, NUL-padded strings), as the LUKS2 on-disk
//! format specification gives it: magic[6], version u16, hdr_size u64, seqid
//! u64, label[48], checksum_alg[32], salt[64], uuid[40], subsystem[48],
//! hdr_offset u64, padding[184], csum[64], padding[3584].
//!
//! Invariant: `csum` is sha256 over the whole header area (`hdr_size` bytes:
//! this binary header with `csum` zeroed, followed by the JSON area), stored in
//! the first 32 bytes of the 64-byte field. The primary header sits at 0 with
//! magic `LUKS\xba\xbe`, the secondary at `hdr_size` with `SKUL\xba\xbe`; each
//! has its own random salt.

use sha2::{Digest, Sha256};

pub const BINARY_HEADER_SIZE: usize = 4096;
pub const MAGIC_PRIMARY: [u8; 6] = *b"LUKS\xba\xbe";
pub const MAGIC_SECONDARY: [u8; 6] = *b"SKUL\xba\xbe";
/// Header-area sizes the specification allows (binary header + JSON area).
pub const ALLOWED_HDR_SIZES: [u64; 7] = [16384, 32768, 65536, 131072, 262144, 524288, 1048576];

const OFF_VERSION: usize = 6;
const OFF_HDR_SIZE: usize = 8;
const OFF_SEQID: usize = 16;
const OFF_LABEL: usize = 24;
const OFF_CSUM_ALG: usize = 72;
const OFF_SALT: usize = 104;
const OFF_UUID: usize = 168;
const OFF_SUBSYSTEM: usize = 208;
const OFF_HDR_OFFSET: usize = 256;
const OFF_CSUM: usize = 448;
pub const LABEL_LEN: usize = 48;

/// The fields of one binary header that landfall reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryHeader {
    pub primary: bool,
    pub hdr_size: u64,
    pub seqid: u64,
    pub label: String,
    pub subsystem: String,
    pub salt: [u8; 64],
    pub uuid: String,
    pub hdr_offset: u64,
}

fn put_str(buf: &mut [u8], off: usize, len: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(len - 1);
    buf[off..off + n].copy_from_slice(&b[..n]);
}

fn get_str(buf: &[u8], off: usize, len: usize) -> String {
    let field = &buf[off..off + len];
    let end = field.iter().position(|&c| c == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn be64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_be_bytes(b)
}

/// sha256 of a header area with its checksum field taken as zeros.
pub fn area_checksum(area: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&area[..OFF_CSUM]);
    h.update([0u8; 64]);
    h.update(&area[OFF_CSUM + 64..]);
    h.finalize().into()
}

impl BinaryHeader {
    /// The whole header area: this header, `json` (compact text, NUL-padded to
    /// `hdr_size - 4096`) and the checksum over both. `json` must fit.
    pub fn encode_area(&self, json: &[u8]) -> Vec<u8> {
        let mut area = vec![0u8; self.hdr_size as usize];
        let magic = if self.primary {
            MAGIC_PRIMARY
        } else {
            MAGIC_SECONDARY
        };
        area[..6].copy_from_slice(&magic);
        area[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&2u16.to_be_bytes());
        area[OFF_HDR_SIZE..OFF_HDR_SIZE + 8].copy_from_slice(&self.hdr_size.to_be_bytes());
        area[OFF_SEQID..OFF_SEQID + 8].copy_from_slice(&self.seqid.to_be_bytes());
        put_str(&mut area, OFF_LABEL, LABEL_LEN, &self.label);
        put_str(&mut area, OFF_CSUM_ALG, 32, "sha256");
        area[OFF_SALT..OFF_SALT + 64].copy_from_slice(&self.salt);
        put_str(&mut area, OFF_UUID, 40, &self.uuid);
        put_str(&mut area, OFF_SUBSYSTEM, 48, &self.subsystem);
        area[OFF_HDR_OFFSET..OFF_HDR_OFFSET + 8].copy_from_slice(&self.hdr_offset.to_be_bytes());
        area[BINARY_HEADER_SIZE..BINARY_HEADER_SIZE + json.len()].copy_from_slice(json);
        let csum = area_checksum(&area);
        area[OFF_CSUM..OFF_CSUM + 32].copy_from_slice(&csum);
        area
    }

    /// Reads the first 4096 bytes of a header area: `None` unless the magic
    /// is LUKS2's (either copy), the version is 2, the checksum algorithm is
    /// sha256 and `hdr_size` is one the specification allows.
    pub fn decode(buf: &[u8]) -> Option<BinaryHeader> {
        if buf.len() < BINARY_HEADER_SIZE {
            return None;
        }
        let primary = match &buf[..6] {
            m if m == MAGIC_PRIMARY => true,
            m if m == MAGIC_SECONDARY => false,
            _ => return None,
        };
        if u16::from_be_bytes([buf[OFF_VERSION], buf[OFF_VERSION + 1]]) != 2 {
            return None;
        }
        if get_str(buf, OFF_CSUM_ALG, 32) != "sha256" {
            return None;
        }
        let hdr_size = be64(buf, OFF_HDR_SIZE);
        if !ALLOWED_HDR_SIZES.contains(&hdr_size) {
            return None;
        }
        let mut salt = [0u8; 64];
        salt.copy_from_slice(&buf[OFF_SALT..OFF_SALT + 64]);
        Some(BinaryHeader {
            primary,
            hdr_size,
            seqid: be64(buf, OFF_SEQID),
            label: get_str(buf, OFF_LABEL, LABEL_LEN),
            subsystem: get_str(buf, OFF_SUBSYSTEM, 48),
            salt,
            uuid: get_str(buf, OFF_UUID, 40),
            hdr_offset: be64(buf, OFF_HDR_OFFSET),
        })
    }

    /// Whether a full header area (`hdr_size` bytes) carries a correct checksum.
    pub fn checksum_ok(area: &[u8]) -> bool {
        area.len() > OFF_CSUM + 64 && area_checksum(area)[..] == area[OFF_CSUM..OFF_CSUM + 32]
    }
}

/// The JSON text of a header area: up to the first NUL.
pub fn json_text(area: &[u8]) -> &[u8] {
    let json = &area[BINARY_HEADER_SIZE..];
    let end = json.iter().position(|&c| c == 0).unwrap_or(json.len());
    &json[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(primary: bool) -> BinaryHeader {
        BinaryHeader {
            primary,
            hdr_size: 16384,
            seqid: 7,
            label: "cryptroot".into(),
            subsystem: String::new(),
            salt: [0x5a; 64],
            uuid: "6a1e5c0d-2b44-4c7e-9f11-0abcdef01234".into(),
            hdr_offset: if primary { 0 } else { 16384 },
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let area = sample(true).encode_area(b"{\"a\":1}");
        assert_eq!(area.len(), 16384);
        assert_eq!(&area[..8], b"LUKS\xba\xbe\x00\x02");
        assert_eq!(&area[8..16], &16384u64.to_be_bytes());
        assert_eq!(&area[24..33], b"cryptroot");
        assert_eq!(&area[72..78], b"sha256");
        assert_eq!(&area[168..204], b"6a1e5c0d-2b44-4c7e-9f11-0abcdef01234");
        assert_eq!(&area[4096..4103], b"{\"a\":1}");
        assert_eq!(area[4103], 0);
        assert_eq!(BinaryHeader::decode(&area), Some(sample(true)));
        assert_eq!(json_text(&area), b"{\"a\":1}");
        let sec = sample(false).encode_area(b"{}");
        assert_eq!(&sec[..6], b"SKUL\xba\xbe");
        assert_eq!(BinaryHeader::decode(&sec), Some(sample(false)));
    }

    #[test]
    fn checksum_is_sha256_of_the_area_with_a_zeroed_field() {
        let area = sample(true).encode_area(b"{}");
        let mut zeroed = area.clone();
        zeroed[448..512].fill(0);
        let expect: [u8; 32] = Sha256::digest(&zeroed).into();
        assert_eq!(&area[448..480], &expect);
        assert!(area[480..512].iter().all(|&b| b == 0));
        assert!(BinaryHeader::checksum_ok(&area));
        let mut bad = area.clone();
        bad[5000] ^= 1;
        assert!(!BinaryHeader::checksum_ok(&bad));
    }

    #[test]
    fn refuses_other_magic_version_and_sizes() {
        let mut area = sample(true).encode_area(b"{}");
        area[7] = 1;
        assert_eq!(BinaryHeader::decode(&area), None);
        let mut area = sample(true).encode_area(b"{}");
        area[8..16].copy_from_slice(&5000u64.to_be_bytes());
        assert_eq!(BinaryHeader::decode(&area), None);
        assert_eq!(BinaryHeader::decode(&[0u8; 4096]), None);
        assert_eq!(BinaryHeader::decode(&[0u8; 10]), None);
    }
}
