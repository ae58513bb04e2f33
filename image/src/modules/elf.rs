//! Finds the `.modinfo` section of a kernel module's ELF image.
//!
//! Reads only the ELF header, the section header table, the section name
//! table and `.modinfo` through [`ReadAt`], so scanning a directory of
//! uncompressed modules does not read whole files. 32/64-bit, either byte order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Largest section header table or section we agree to read (16 MiB).
const MAX_READ: u64 = 16 << 20;

/// Why `.modinfo` could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    #[error("Not an ELF file")]
    NotElf,
    /// An ELF class or byte order other than 32/64-bit little/big endian.
    #[error("Unsupported ELF class or byte order")]
    Unsupported,
    /// A header or table points outside the file or is absurdly large.
    #[error("Malformed ELF: {0}")]
    Malformed(&'static str),
    /// The file has no `.modinfo` section.
    #[error("No .modinfo section")]
    NoModinfo,
    /// Reading the bytes failed.
    #[error("Reading ELF data")]
    Io(#[source] io::Error),
}

/// Random access to a module's bytes.
pub trait ReadAt {
    /// Exactly `len` bytes at `offset`, or an error.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::UnexpectedEof)?;
        self.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }
}

impl ReadAt for File {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; len];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }
}

#[derive(Clone, Copy)]
struct Layout {
    is64: bool,
    little: bool,
}

impl Layout {
    fn uint(&self, bytes: &[u8], at: usize, size: usize) -> Result<u64, ElfError> {
        let raw = bytes
            .get(at..at + size)
            .ok_or(ElfError::Malformed("field outside its table"))?;
        let mut value = 0u64;
        if self.little {
            for &b in raw.iter().rev() {
                value = (value << 8) | u64::from(b);
            }
        } else {
            for &b in raw {
                value = (value << 8) | u64::from(b);
            }
        }
        Ok(value)
    }

    /// A field that is 4 bytes in ELF32 and 8 in ELF64.
    fn word(&self, bytes: &[u8], at32: usize, at64: usize) -> Result<u64, ElfError> {
        if self.is64 {
            self.uint(bytes, at64, 8)
        } else {
            self.uint(bytes, at32, 4)
        }
    }
}

struct Section {
    name: u32,
    link: u32,
    offset: u64,
    size: u64,
}

/// The raw bytes of the `.modinfo` section.
pub fn modinfo_section<R: ReadAt>(source: &mut R) -> Result<Vec<u8>, ElfError> {
    let ident = source.read_at(0, 16).map_err(|_| ElfError::NotElf)?;
    if ident[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let layout = Layout {
        is64: match ident[4] {
            1 => false,
            2 => true,
            _ => return Err(ElfError::Unsupported),
        },
        little: match ident[5] {
            1 => true,
            2 => false,
            _ => return Err(ElfError::Unsupported),
        },
    };
    let header_len = if layout.is64 { 64 } else { 52 };
    let header = source.read_at(0, header_len).map_err(ElfError::Io)?;
    let shoff = layout.word(&header, 0x20, 0x28)?;
    let (entsize_at, num_at, strndx_at) = if layout.is64 {
        (0x3A, 0x3C, 0x3E)
    } else {
        (0x2E, 0x30, 0x32)
    };
    let shentsize = layout.uint(&header, entsize_at, 2)?;
    let mut shnum = layout.uint(&header, num_at, 2)?;
    let mut shstrndx = layout.uint(&header, strndx_at, 2)?;
    let min_entsize = if layout.is64 { 64 } else { 40 };
    if shoff == 0 || shentsize < min_entsize {
        return Err(ElfError::Malformed("no section header table"));
    }
    let read_section = |source: &mut R, index: u64| -> Result<Section, ElfError> {
        let at = index
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or(ElfError::Malformed("section header offset overflows"))?;
        let raw = source
            .read_at(at, min_entsize as usize)
            .map_err(ElfError::Io)?;
        Ok(Section {
            name: layout.uint(&raw, 0, 4)? as u32,
            link: layout.uint(&raw, if layout.is64 { 40 } else { 24 }, 4)? as u32,
            offset: layout.word(&raw, 16, 24)?,
            size: layout.word(&raw, 20, 32)?,
        })
    };
    // Extended numbering: counts that do not fit 16 bits live in section 0.
    if shnum == 0 || shstrndx == 0xFFFF {
        let zero = read_section(source, 0)?;
        if shnum == 0 {
            shnum = zero.size;
        }
        if shstrndx == 0xFFFF {
            shstrndx = u64::from(zero.link);
        }
    }
    if shnum.saturating_mul(shentsize) > MAX_READ {
        return Err(ElfError::Malformed("section header table too large"));
    }
    if shstrndx >= shnum {
        return Err(ElfError::Malformed("section name table index out of range"));
    }
    let names = read_section(source, shstrndx)?;
    let names = read_bounded(source, names.offset, names.size)?;
    for index in 0..shnum {
        let section = read_section(source, index)?;
        let name = names
            .get(section.name as usize..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .unwrap_or(&[]);
        if name == b".modinfo" {
            return read_bounded(source, section.offset, section.size);
        }
    }
    Err(ElfError::NoModinfo)
}

fn read_bounded<R: ReadAt>(source: &mut R, offset: u64, size: u64) -> Result<Vec<u8>, ElfError> {
    if size > MAX_READ {
        return Err(ElfError::Malformed("section too large"));
    }
    source.read_at(offset, size as usize).map_err(ElfError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_elf::tiny_elf;

    #[test]
    fn finds_modinfo_in_a_synthetic_module() {
        let elf = tiny_elf(b"name=demo\0depends=a,b\0");
        let section = modinfo_section(&mut elf.as_slice()).unwrap();
        assert_eq!(section, b"name=demo\0depends=a,b\0");
    }

    #[test]
    fn rejects_non_elf_and_missing_section() {
        assert!(matches!(
            modinfo_section(&mut b"hello world, not an elf".as_slice()),
            Err(ElfError::NotElf)
        ));
        let mut elf = tiny_elf(b"name=demo\0");
        // Rename ".modinfo" to ".modinfX".
        let pos = elf.windows(8).position(|w| w == b".modinfo").unwrap();
        elf[pos + 7] = b'X';
        assert!(matches!(
            modinfo_section(&mut elf.as_slice()),
            Err(ElfError::NoModinfo)
        ));
    }

    #[test]
    fn never_panics_on_corrupted_headers() {
        let good = tiny_elf(b"name=demo\0");
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..20_000 {
            let mut data = good.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let pos = (state as usize) % data.len();
                data[pos] = (state >> 32) as u8;
            }
            state ^= state << 13;
            data.truncate((state as usize) % (data.len() + 1));
            let _ = modinfo_section(&mut data.as_slice());
        }
    }
}
