//! Reads the version string embedded in an x86 bzImage's setup header.

/// Offset of the `HdrS` signature in the setup header.
const HDRS_OFFSET: usize = 0x202;
/// Offset of the `kernel_version` pointer (relative to 0x200).
const VERSION_PTR_OFFSET: usize = 0x20E;

/// The release (first word of the version string, e.g. `6.1.0-56-amd64`) of
/// an x86 bzImage, or `None` if the file is not one or carries no version.
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(HDRS_OFFSET..HDRS_OFFSET + 4)? != b"HdrS" {
        return None;
    }
    let ptr = image.get(VERSION_PTR_OFFSET..VERSION_PTR_OFFSET + 2)?;
    let ptr = u16::from_le_bytes([ptr[0], ptr[1]]);
    if ptr == 0 {
        return None;
    }
    let start = 0x200 + usize::from(ptr);
    let rest = image.get(start..)?;
    let text = &rest[..rest.iter().position(|&b| b == 0)?.min(256)];
    let text = std::str::from_utf8(text).ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_release_from_setup_header() {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x300..0x300 + version.len()].copy_from_slice(version);
        assert_eq!(bzimage_release(&image).as_deref(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn non_bzimage_has_no_release() {
        assert_eq!(bzimage_release(b"short"), None);
        assert_eq!(bzimage_release(&[0u8; 0x400]), None);
        let mut unterminated = vec![0u8; 0x400];
        unterminated[0x202..0x206].copy_from_slice(b"HdrS");
        unterminated[0x20E..0x210].copy_from_slice(&0x1F0u16.to_le_bytes());
        unterminated[0x3F0..].fill(b'a');
        assert_eq!(bzimage_release(&unterminated), None);
    }
}
