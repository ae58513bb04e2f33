//! The Linux swap header, version 1 (`union swap_header` of <linux/swap.h>):
//! `SWAPSPACE2` in the last 10 bytes of the first page, version 1, the last
//! usable page, no bad pages, the UUID and a 16-byte label. The page size is
//! this machine's (4 KiB on x86_64), as mkswap uses, since the kernel that
//! will swap on it is the one running here.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::{device, FormatReport, SwapOptions};
use crate::sys::blk::{self, BlkError};

/// The page size of x86_64, used when the system does not say.
pub const PAGE_SIZE: u64 = 4096;
pub const MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// mkswap refuses fewer than 10 pages.
pub const MIN_PAGES: u64 = 10;
pub const MAX_LABEL: usize = 16;
/// Bytes of old contents cleared before the header is written.
const WIPE_BYTES: u64 = 1 << 20;

/// Errors of the swap writer.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("Cannot read the device size")]
    DeviceSize(#[source] BlkError),
    #[error("Device too small for swap: {size} bytes, at least {MIN_PAGES} pages are needed")]
    TooSmall { size: u64 },
    #[error("Label {label:?} is longer than {MAX_LABEL} bytes")]
    LabelTooLong { label: String },
    #[error("Cannot clear the start of the device")]
    Wipe(#[source] io::Error),
    #[error("Cannot write the swap header")]
    Write(#[source] io::Error),
    #[error("Cannot flush the device")]
    Sync(#[source] io::Error),
}

/// This machine's page size.
pub fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n >= 4096 => n as u64,
        _ => PAGE_SIZE,
    }
}

/// The first page (of `page_size` bytes) of a swap area of `pages` pages.
pub fn header(page_size: u64, pages: u64, uuid: &[u8; 16], label: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; page_size as usize];
    p[1024..1028].copy_from_slice(&1u32.to_le_bytes()); // version
    p[1028..1032].copy_from_slice(&((pages - 1) as u32).to_le_bytes()); // last_page
    p[1032..1036].copy_from_slice(&0u32.to_le_bytes()); // nr_badpages
    p[1036..1052].copy_from_slice(uuid);
    p[1052..1052 + label.len()].copy_from_slice(label);
    p[page_size as usize - 10..].copy_from_slice(MAGIC);
    p
}

/// Write a swap header on `dev`.
pub fn format(dev: &File, opts: &SwapOptions) -> Result<FormatReport, SwapError> {
    let label = opts.label.clone().unwrap_or_default();
    if label.len() > MAX_LABEL {
        return Err(SwapError::LabelTooLong { label });
    }
    let size = blk::device_size(dev).map_err(SwapError::DeviceSize)?;
    // The kernel addresses swap in u32 pages; beyond that the rest is unused.
    let page = page_size();
    let pages = (size / page).min(u64::from(u32::MAX));
    if pages < MIN_PAGES {
        return Err(SwapError::TooSmall { size });
    }
    let uuid = opts
        .uuid
        .unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
    device::zero_range(dev, 0, size.min(WIPE_BYTES)).map_err(SwapError::Wipe)?;
    dev.write_all_at(&header(page, pages, &uuid, label.as_bytes()), 0)
        .map_err(SwapError::Write)?;
    dev.sync_all().map_err(SwapError::Sync)?;
    Ok(FormatReport {
        fs_type: "swap",
        size_bytes: pages * page,
        uuid: uuid::Uuid::from_bytes(uuid).hyphenated().to_string(),
        label: Some(label).filter(|l| !l.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let h = header(4096, 256, &[0xAB; 16], b"swap");
        assert_eq!(&h[4086..4096], b"SWAPSPACE2");
        assert_eq!(&h[1024..1028], &[1, 0, 0, 0]);
        assert_eq!(&h[1028..1032], &255u32.to_le_bytes());
        assert_eq!(&h[1032..1036], &[0, 0, 0, 0]);
        assert_eq!(&h[1036..1052], &[0xAB; 16]);
        assert_eq!(&h[1052..1056], b"swap");
        assert!(h[..1024].iter().all(|&b| b == 0));
    }

    #[test]
    fn too_small_and_long_label() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(9 * PAGE_SIZE).unwrap();
        assert!(matches!(
            format(&f, &SwapOptions::default()),
            Err(SwapError::TooSmall { .. })
        ));
        let opts = SwapOptions {
            label: Some("x".repeat(17)),
            uuid: None,
        };
        assert!(matches!(
            format(&f, &opts),
            Err(SwapError::LabelTooLong { .. })
        ));
    }
}
