//! Reading a LUKS2 header from a device or from bytes: both binary headers
//! are checked (magic, version, sha256 checksum over header + JSON), and the
//! valid one with the highest sequence id wins, as cryptsetup picks.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::error::Luks2Error;
use super::header::{self, BinaryHeader, ALLOWED_HDR_SIZES, BINARY_HEADER_SIZE};
use super::metadata::Metadata;

/// Something LUKS2 data can be read from at byte offsets.
pub trait ReadAt {
    fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A validated LUKS2 header: the winning binary header and its metadata.
#[derive(Debug, Clone)]
pub struct Header {
    pub binary: BinaryHeader,
    pub metadata: Metadata,
}

/// Label, UUID and subsystem of an existing LUKS2 device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksInfo {
    pub label: String,
    pub uuid: String,
    pub subsystem: String,
}

fn read_area(src: &(impl ReadAt + ?Sized), offset: u64) -> Option<(BinaryHeader, Vec<u8>)> {
    let mut first = vec![0u8; BINARY_HEADER_SIZE];
    src.read_at_exact(offset, &mut first).ok()?;
    let bin = BinaryHeader::decode(&first)?;
    if bin.hdr_offset != offset {
        return None;
    }
    let mut area = vec![0u8; bin.hdr_size as usize];
    src.read_at_exact(offset, &mut area).ok()?;
    if !BinaryHeader::checksum_ok(&area) {
        return None;
    }
    Some((bin, area))
}

impl Header {
    /// Reads the header: the primary at 0, or a secondary at one of the
    /// offsets the specification allows. `NotLuks2` if none validates.
    pub fn read(src: &(impl ReadAt + ?Sized)) -> Result<Header, Luks2Error> {
        let mut best: Option<(BinaryHeader, Vec<u8>)> = None;
        for offset in std::iter::once(0).chain(ALLOWED_HDR_SIZES) {
            if let Some((bin, area)) = read_area(src, offset) {
                if best.as_ref().is_none_or(|(b, _)| bin.seqid > b.seqid) {
                    best = Some((bin, area));
                }
            }
        }
        let (binary, area) = best.ok_or(Luks2Error::NotLuks2)?;
        let metadata = Metadata::parse(header::json_text(&area))?;
        if metadata.config.json_size + BINARY_HEADER_SIZE as u64 != binary.hdr_size {
            return Err(Luks2Error::Metadata(format!(
                "json_size {} does not match the header size {}",
                metadata.config.json_size, binary.hdr_size
            )));
        }
        Ok(Header { binary, metadata })
    }

    pub fn info(&self) -> LuksInfo {
        LuksInfo {
            label: self.binary.label.clone(),
            uuid: self.binary.uuid.clone(),
            subsystem: self.binary.subsystem.clone(),
        }
    }

    /// Where the data segment starts (bytes).
    pub fn data_offset(&self) -> Result<u64, Luks2Error> {
        Ok(self.metadata.segment()?.offset)
    }
}

/// The label and UUID of a LUKS2 device, or `None` if it carries no valid
/// LUKS2 header (for idempotent re-runs: format only what is not LUKS yet).
pub fn probe(src: &(impl ReadAt + ?Sized)) -> Result<Option<LuksInfo>, Luks2Error> {
    match Header::read(src) {
        Ok(h) => Ok(Some(h.info())),
        Err(Luks2Error::NotLuks2) => Ok(None),
        Err(e) => Err(e),
    }
}
