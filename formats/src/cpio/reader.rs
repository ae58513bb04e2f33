//! Newc reader for untrusted bytes: bounds-checked, never panics.

use super::entry::{mode_bits, Entry, EntryKind};
use super::header::{
    pad4, parse_hex8, Header, FIELD_NAMES, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, TRAILER,
};

/// Why an archive could not be read. `offset` is where the bad entry starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpioReadError {
    /// The data ends inside an entry.
    #[error("Archive truncated in the {what} of the entry at offset {offset}")]
    Truncated {
        /// Start of the entry.
        offset: usize,
        /// Which part was cut off.
        what: &'static str,
    },
    /// The data ends (or zero padding runs out) before `TRAILER!!!`.
    #[error("Archive ends at offset {offset} without a TRAILER!!! entry")]
    MissingTrailer {
        /// Where the next header was expected.
        offset: usize,
    },
    /// Neither `070701` nor `070702`.
    #[error("Bad magic at offset {offset}")]
    BadMagic {
        /// Start of the entry.
        offset: usize,
    },
    /// A header field is not 8 hex digits.
    #[error("Header field {field} is not hexadecimal at offset {offset}")]
    BadField {
        /// Start of the entry.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// The name is empty, lacks its NUL, contains a NUL, or is not UTF-8.
    #[error("Bad entry name at offset {offset}")]
    BadName {
        /// Start of the entry.
        offset: usize,
    },
    /// A symlink target is not UTF-8.
    #[error("Symlink target of {path:?} is not UTF-8")]
    BadSymlinkTarget {
        /// The link's path.
        path: String,
    },
    /// The mode's file type bits name no known type.
    #[error("Unknown file type in mode {mode:#o} of {path:?}")]
    UnknownType {
        /// The entry's path.
        path: String,
        /// The whole mode field.
        mode: u32,
    },
    /// A `070702` entry whose byte sum does not match its check field.
    #[error("Checksum mismatch for {path:?}")]
    BadChecksum {
        /// The entry's path.
        path: String,
    },
}

/// Reads one archive; bytes after its trailer are ignored.
pub fn read_archive(data: &[u8]) -> Result<Vec<Entry>, CpioReadError> {
    read_archive_prefix(data).map(|(entries, _)| entries)
}

/// Reads one archive and also returns the offset just past its (padded) trailer,
/// where a concatenated archive may follow.
pub fn read_archive_prefix(data: &[u8]) -> Result<(Vec<Entry>, usize), CpioReadError> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    loop {
        let (parsed, next) = read_one(data, offset)?;
        offset = next;
        match parsed {
            Some(entry) => entries.push(entry),
            None => return Ok((entries, offset)),
        }
    }
}

/// Reads the entry at `offset`; `None` means the trailer was reached.
fn read_one(data: &[u8], offset: usize) -> Result<(Option<Entry>, usize), CpioReadError> {
    let header_bytes = match data.get(offset..) {
        Some([]) => return Err(CpioReadError::MissingTrailer { offset }),
        Some(rest) if rest.len() < HEADER_LEN => {
            return Err(CpioReadError::Truncated {
                offset,
                what: "header",
            })
        }
        Some(rest) => &rest[..HEADER_LEN],
        None => return Err(CpioReadError::MissingTrailer { offset }),
    };
    let magic = &header_bytes[..6];
    let with_crc = if magic == MAGIC_NEWC {
        false
    } else if magic == MAGIC_CRC {
        true
    } else {
        return Err(CpioReadError::BadMagic { offset });
    };
    let mut fields = [0u32; 13];
    for (i, field) in fields.iter_mut().enumerate() {
        let start = 6 + i * 8;
        *field = parse_hex8(&header_bytes[start..start + 8]).ok_or(CpioReadError::BadField {
            offset,
            field: FIELD_NAMES[i],
        })?;
    }
    let header = Header::from_fields(fields);

    let truncated = |what| CpioReadError::Truncated { offset, what };
    let name_start = offset + HEADER_LEN;
    let namesize = header.namesize as usize;
    if namesize == 0 {
        return Err(CpioReadError::BadName { offset });
    }
    let name_end = name_start.checked_add(namesize).ok_or(truncated("name"))?;
    let name_bytes = data.get(name_start..name_end).ok_or(truncated("name"))?;
    let (last, name_bytes) = name_bytes
        .split_last()
        .ok_or(CpioReadError::BadName { offset })?;
    if *last != 0 || name_bytes.contains(&0) || name_bytes.is_empty() {
        return Err(CpioReadError::BadName { offset });
    }
    let name = std::str::from_utf8(name_bytes)
        .map_err(|_| CpioReadError::BadName { offset })?
        .to_owned();

    let data_start = name_end + pad4((HEADER_LEN + namesize) as u64);
    let filesize = header.filesize as usize;
    let data_end = data_start.checked_add(filesize).ok_or(truncated("data"))?;
    let payload = data.get(data_start..data_end).ok_or(truncated("data"))?;
    let next = data_end + pad4(filesize as u64);
    // The final padding may be missing at the very end of the input.
    let next = next.min(data.len());

    if with_crc {
        let sum = payload
            .iter()
            .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
        if sum != header.check {
            return Err(CpioReadError::BadChecksum { path: name });
        }
    }
    if name == TRAILER {
        return Ok((None, next));
    }

    let kind = match header.mode & mode_bits::S_IFMT {
        mode_bits::S_IFDIR => EntryKind::Directory,
        mode_bits::S_IFREG => EntryKind::File(payload.to_vec()),
        mode_bits::S_IFLNK => EntryKind::Symlink(
            std::str::from_utf8(payload)
                .map_err(|_| CpioReadError::BadSymlinkTarget { path: name.clone() })?
                .to_owned(),
        ),
        mode_bits::S_IFCHR => EntryKind::CharDevice {
            major: header.rdevmajor,
            minor: header.rdevminor,
        },
        mode_bits::S_IFBLK => EntryKind::BlockDevice {
            major: header.rdevmajor,
            minor: header.rdevminor,
        },
        mode_bits::S_IFIFO => EntryKind::Fifo,
        mode_bits::S_IFSOCK => EntryKind::Socket,
        _ => {
            return Err(CpioReadError::UnknownType {
                path: name,
                mode: header.mode,
            })
        }
    };
    let entry = Entry {
        path: name,
        perm: header.mode & mode_bits::PERM_MASK,
        uid: header.uid,
        gid: header.gid,
        mtime: header.mtime,
        kind,
    };
    Ok((Some(entry), next))
}
