//! Loop devices: find a free one (LOOP_CTL_GET_FREE) and attach an image file
//! with a chosen logical block size in one step (LOOP_CONFIGURE), with
//! autoclear so the device goes away when its last user closes it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

// <linux/loop.h>
const LOOP_CTL_GET_FREE: u32 = 0x4C82;
const LOOP_CONFIGURE: u32 = 0x4C0A;
const LOOP_CLR_FD: u32 = 0x4C01;
nix::ioctl_none_bad!(loop_ctl_get_free, LOOP_CTL_GET_FREE);
nix::ioctl_write_ptr_bad!(loop_configure, LOOP_CONFIGURE, LoopConfig);
nix::ioctl_none_bad!(loop_clr_fd, LOOP_CLR_FD);

/// `LO_FLAGS_AUTOCLEAR`.
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `LO_FLAGS_PARTSCAN`.
const LO_FLAGS_PARTSCAN: u32 = 8;
/// `LO_NAME_SIZE`.
const LO_NAME_SIZE: usize = 64;

/// <linux/loop.h> `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// <linux/loop.h> `struct loop_config`.
#[repr(C)]
pub struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Errors of loop-device handling, each naming the step.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("Cannot open /dev/loop-control")]
    OpenControl(#[source] io::Error),
    #[error("LOOP_CTL_GET_FREE failed")]
    GetFree(#[source] nix::Error),
    #[error("Cannot open {path}")]
    OpenDevice {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot open the image {path}")]
    OpenImage {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Block size {0} is not a power of two between 512 and 4096")]
    BlockSize(u32),
    #[error("LOOP_CONFIGURE of {path} failed")]
    Configure {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("LOOP_CLR_FD failed")]
    Clear(#[source] nix::Error),
}

/// An attached loop device; it detaches itself (autoclear) when the last open
/// file of it — this one, and any mount — is closed.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
    pub file: File,
}

fn check_block_size(block_size: u32) -> Result<(), LoopError> {
    if (512..=4096).contains(&block_size) && block_size.is_power_of_two() {
        Ok(())
    } else {
        Err(LoopError::BlockSize(block_size))
    }
}

/// Attach `image` to a free loop device with the given logical block size.
pub fn attach(image: &Path, block_size: u32) -> Result<LoopDevice, LoopError> {
    check_block_size(block_size)?;
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|source| LoopError::OpenImage {
            path: image.to_path_buf(),
            source,
        })?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(LoopError::OpenControl)?;
    // Another process may take the device between GET_FREE and CONFIGURE: retry.
    let mut attempts = 0;
    loop {
        attempts += 1;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; it returns a device number.
        let n = unsafe { loop_ctl_get_free(control.as_raw_fd()) }.map_err(LoopError::GetFree)?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| LoopError::OpenDevice {
                path: path.clone(),
                source,
            })?;
        let mut name = [0u8; LO_NAME_SIZE];
        let bytes = image.as_os_str().as_encoded_bytes();
        let len = bytes.len().min(LO_NAME_SIZE - 1);
        name[..len].copy_from_slice(&bytes[..len]);
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN,
                lo_file_name: name,
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `config` is a fully initialised `struct loop_config` that lives
        // across the call; the kernel only reads it and takes its own reference
        // to the backing file descriptor.
        match unsafe { loop_configure(dev.as_raw_fd(), &config) } {
            Ok(_) => return Ok(LoopDevice { path, file: dev }),
            Err(nix::Error::EBUSY) if attempts < 20 => continue,
            Err(source) => return Err(LoopError::Configure { path, source }),
        }
    }
}

impl LoopDevice {
    /// Detach now (instead of at the last close).
    pub fn detach(self) -> Result<(), LoopError> {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is open.
        unsafe { loop_clr_fd(self.file.as_raw_fd()) }.map_err(LoopError::Clear)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // <linux/loop.h>: LOOP_CTL_GET_FREE 0x4C82, LOOP_CONFIGURE 0x4C0A, LOOP_CLR_FD 0x4C01
        assert_eq!(LOOP_CTL_GET_FREE, 0x4C82);
        assert_eq!(LOOP_CONFIGURE, 0x4C0A);
        assert_eq!(LOOP_CLR_FD, 0x4C01);
    }

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn block_sizes() {
        assert!(check_block_size(512).is_ok() && check_block_size(4096).is_ok());
        assert!(check_block_size(1000).is_err() && check_block_size(8192).is_err());
    }
}
