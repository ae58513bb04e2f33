//! kexec_file_load(2), reboot(LINUX_REBOOT_CMD_KEXEC) and memfd_create(2): the
//! kernel interfaces `landfall-agent kexec` needs to boot the RAM image without
//! kexec-tools.
//!
//! The command line is passed with its length *including* the trailing NUL, as
//! the kernel requires (`cmdline_len` of 0 means "no command line"; a length
//! without the NUL makes the kernel reject the buffer with EINVAL).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use nix::errno::Errno;

/// x86_64 syscall number of kexec_file_load (arch/x86/entry/syscalls/syscall_64.tbl).
pub const SYS_KEXEC_FILE_LOAD: libc::c_long = 320;

/// The largest command line the x86 kernel accepts (COMMAND_LINE_SIZE), NUL included.
pub const COMMAND_LINE_SIZE: usize = 2048;

/// Why a command line cannot be handed to the kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("The kernel command line contains a NUL byte")]
    Nul,
    #[error("The kernel command line is {0} bytes with its NUL; the kernel takes at most {COMMAND_LINE_SIZE}")]
    TooLong(usize),
}

/// The command line as the kernel wants it: NUL-terminated, at most
/// [`COMMAND_LINE_SIZE`] bytes with the NUL. Returns the buffer and the length
/// to pass (`buffer.as_bytes_with_nul().len()`).
pub fn cmdline_buffer(cmdline: &str) -> Result<(CString, usize), CmdlineError> {
    let c = CString::new(cmdline).map_err(|_| CmdlineError::Nul)?;
    let len = c.as_bytes_with_nul().len();
    if len > COMMAND_LINE_SIZE {
        return Err(CmdlineError::TooLong(len));
    }
    Ok((c, len))
}

/// Loads `kernel` and `initrd` for a later `reboot(LINUX_REBOOT_CMD_KEXEC)`
/// (flags 0: a normal, not a crash, kernel; with an initramfs).
pub fn kexec_file_load(kernel: &File, initrd: &File, cmdline: &CString) -> Result<(), Errno> {
    let len = cmdline.as_bytes_with_nul().len();
    // SAFETY: both fds are open files borrowed for the duration of the call; the
    // command-line pointer is valid for `len` bytes (a CString with its NUL) and
    // the kernel only reads it. The flags argument 0 requests a plain load.
    let rc = unsafe {
        libc::syscall(
            SYS_KEXEC_FILE_LOAD,
            kernel.as_raw_fd() as libc::c_long,
            initrd.as_raw_fd() as libc::c_long,
            len as libc::c_ulong,
            cmdline.as_ptr(),
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Whether a kexec image is loaded (`/sys/kernel/kexec_loaded`).
pub fn kexec_loaded() -> bool {
    std::fs::read_to_string("/sys/kernel/kexec_loaded")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// Boots the loaded kernel. Returns only on failure.
pub fn reboot_kexec() -> Errno {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_KEXEC) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// Reboots into the loaded kernel from a detached child process after
/// `delay`, and returns in the parent at once. The caller must be
/// single-threaded (no runtime threads left), as after any fork.
pub fn reboot_kexec_detached(delay: std::time::Duration) -> Result<(), Errno> {
    // SAFETY: called when the process has a single thread (the kexec command's
    // netlink runtime is a current-thread runtime, dropped before the load), so
    // the child inherits no lock held by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { .. } => Ok(()),
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors of this process;
                    // `null` stays open for the call.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            std::thread::sleep(delay);
            let _ = reboot_kexec();
            // SAFETY: leaving the forked child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(1) }
        }
    }
}

/// An anonymous in-memory file (memfd_create), so the patched initrd with the
/// session key never touches the target's disk.
pub fn memfd(name: &str) -> Result<File, Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the
    // call; on success the kernel returns a new fd that nothing else owns.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by no one else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_number_matches_the_kernel() {
        assert_eq!(SYS_KEXEC_FILE_LOAD, libc::SYS_kexec_file_load);
        assert_eq!(libc::LINUX_REBOOT_CMD_KEXEC, 0x4558_4543);
        assert_eq!(
            nix::sys::reboot::RebootMode::RB_KEXEC as libc::c_int,
            libc::LINUX_REBOOT_CMD_KEXEC
        );
    }

    #[test]
    fn cmdline_length_counts_the_nul() {
        let (c, len) = cmdline_buffer("console=ttyS0").unwrap();
        assert_eq!(len, "console=ttyS0".len() + 1);
        assert_eq!(c.as_bytes_with_nul().last(), Some(&0));
        let (_, empty) = cmdline_buffer("").unwrap();
        assert_eq!(empty, 1);
    }

    #[test]
    fn cmdline_limits() {
        assert_eq!(cmdline_buffer("a\0b"), Err(CmdlineError::Nul));
        assert!(cmdline_buffer(&"x".repeat(COMMAND_LINE_SIZE - 1)).is_ok());
        assert_eq!(
            cmdline_buffer(&"x".repeat(COMMAND_LINE_SIZE)),
            Err(CmdlineError::TooLong(COMMAND_LINE_SIZE + 1))
        );
    }

    #[test]
    fn memfd_holds_data() {
        use std::io::{Read, Seek, Write};
        let mut f = memfd("test").unwrap();
        f.write_all(b"hello").unwrap();
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }
}
