//! Decompresses `.ko.xz`, `.ko.zst` and `.ko.gz` modules (as NixOS and newer
//! distributions ship them) with pure-Rust or bundled decoders, bounded in size.

use std::io::{self, Read, Write};

/// Largest decompressed module we accept (256 MiB; real ones are < 30 MiB).
pub const MAX_MODULE_SIZE: u64 = 256 << 20;

/// How a module file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain `.ko`.
    None,
    /// `.ko.xz`.
    Xz,
    /// `.ko.zst`.
    Zstd,
    /// `.ko.gz`.
    Gzip,
}

impl Compression {
    /// The compression of a module file name, or `None` if it is no module.
    pub fn from_file_name(name: &str) -> Option<Compression> {
        if name.ends_with(".ko") {
            Some(Compression::None)
        } else if name.ends_with(".ko.xz") {
            Some(Compression::Xz)
        } else if name.ends_with(".ko.zst") {
            Some(Compression::Zstd)
        } else if name.ends_with(".ko.gz") {
            Some(Compression::Gzip)
        } else {
            None
        }
    }

    /// The file name suffix after `.ko`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }
}

/// Why a module could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The decoder rejected the data.
    #[error("Decoding {0:?} data")]
    Decode(Compression, #[source] io::Error),
    /// The output exceeds [`MAX_MODULE_SIZE`].
    #[error("Decompressed module exceeds {MAX_MODULE_SIZE} bytes")]
    TooLarge,
}

/// The plain `.ko` bytes of `data`.
pub fn decompress(data: Vec<u8>, compression: Compression) -> Result<Vec<u8>, DecompressError> {
    let decode = |e| DecompressError::Decode(compression, e);
    let mut out = Vec::new();
    match compression {
        Compression::None => return Ok(data),
        Compression::Xz => {
            let mut limited = LimitedWriter { out: &mut out };
            let mut input = io::BufReader::new(data.as_slice());
            if let Err(e) = lzma_rs::xz_decompress(&mut input, &mut limited) {
                if out.len() as u64 > MAX_MODULE_SIZE {
                    return Err(DecompressError::TooLarge);
                }
                return Err(decode(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(data.as_slice()).map_err(decode)?;
            read_limited(decoder, &mut out).map_err(decode)?;
        }
        Compression::Gzip => {
            read_limited(flate2::read::MultiGzDecoder::new(data.as_slice()), &mut out)
                .map_err(decode)?;
        }
    }
    if out.len() as u64 > MAX_MODULE_SIZE {
        return Err(DecompressError::TooLarge);
    }
    Ok(out)
}

fn read_limited<R: Read>(reader: R, out: &mut Vec<u8>) -> io::Result<()> {
    reader
        .take(MAX_MODULE_SIZE + 1)
        .read_to_end(out)
        .map(|_| ())
}

/// A writer that fails once more than [`MAX_MODULE_SIZE`] bytes arrive.
struct LimitedWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > MAX_MODULE_SIZE {
            self.out.extend_from_slice(buf);
            return Err(io::Error::other("module too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn names_map_to_compression() {
        assert_eq!(Compression::from_file_name("a.ko"), Some(Compression::None));
        assert_eq!(
            Compression::from_file_name("a.ko.xz"),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::from_file_name("a.ko.zst"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_file_name("a.ko.gz"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_file_name("a.ko.bz2"), None);
        assert_eq!(Compression::from_file_name("modules.dep"), None);
    }

    #[test]
    fn zstd_and_gzip_round_trip() {
        let data = payload();
        let zst = zstd::encode_all(data.as_slice(), 3).unwrap();
        assert_eq!(decompress(zst, Compression::Zstd).unwrap(), data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        assert_eq!(
            decompress(gz.finish().unwrap(), Compression::Gzip).unwrap(),
            data
        );
    }

    #[test]
    fn xz_round_trip() {
        let data = payload();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut data.as_slice(), &mut xz).unwrap();
        assert_eq!(decompress(xz, Compression::Xz).unwrap(), data);
    }

    #[test]
    fn garbage_is_an_error() {
        for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            assert!(decompress(b"definitely not compressed".to_vec(), c).is_err());
        }
    }
}
