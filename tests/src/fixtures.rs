//! Things tests need from the host: the fetched Debian kernel, busybox,
//! sparse disk images; and, from the VM library, OVMF, qemu and free TCP ports.
//!
//! A missing tool is an error naming the Debian package (or script) that
//! provides it: a test without its tools fails loudly, it never passes unchecked.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

pub use landfall_vm::host::{find_in_path, free_port, ovmf, qemu_binary, OvmfFiles};

/// Something a test needs is missing or unusable.
#[derive(thiserror::Error)]
pub enum FixtureError {
    /// The Debian kernel has not been fetched.
    #[error("No kernel in {dir}: run scripts/fetch-kernel.sh (or set LANDFALL_CACHE)")]
    KernelMissing { dir: PathBuf },
    /// A file from a Debian package is missing.
    #[error("{path} is missing: install the Debian package {package}")]
    PackageFileMissing {
        path: PathBuf,
        package: &'static str,
    },
    /// A host tool failed.
    #[error("{step} failed")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
}
crate::debug_as_display!(FixtureError);

fn io_err(step: impl Into<String>) -> impl FnOnce(io::Error) -> FixtureError {
    let step = step.into();
    move |source| FixtureError::Io { step, source }
}

/// The workspace's top folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `$LANDFALL_CACHE`, or `<workspace>/.cache` (where scripts/fetch-kernel.sh unpacks).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LANDFALL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache"))
}

/// The unpacked Debian kernel package the test VMs boot.
#[derive(Debug, Clone)]
pub struct DebianKernel {
    /// `<cache>/kernel/current`, the package's unpacked root.
    pub dir: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// `boot/vmlinuz-<version>`, the bzImage.
    pub image: PathBuf,
    /// `lib/modules/<version>` (no modules.dep: the package is unpacked, not installed).
    pub modules: PathBuf,
}

/// The folder holding the fetched Debian kernel (`<cache>/kernel/current`).
pub fn kernel_dir() -> Result<PathBuf, FixtureError> {
    debian_kernel().map(|k| k.dir)
}

/// The fetched Debian kernel: its image, version and modules folder.
pub fn debian_kernel() -> Result<DebianKernel, FixtureError> {
    let dir = cache_dir().join("kernel").join("current");
    let missing = || FixtureError::KernelMissing { dir: dir.clone() };
    let boot = std::fs::read_dir(dir.join("boot")).map_err(|_| missing())?;
    let version = boot
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .map(str::to_owned)
        })
        .max()
        .ok_or_else(missing)?;
    let image = dir.join("boot").join(format!("vmlinuz-{version}"));
    let modules = dir.join("lib").join("modules").join(&version);
    if !modules.is_dir() {
        return Err(missing());
    }
    Ok(DebianKernel {
        dir,
        version,
        image,
        modules,
    })
}

/// The statically linked busybox (Debian package `busybox-static`).
pub fn busybox() -> Result<PathBuf, FixtureError> {
    let missing = |what: &str| FixtureError::PackageFileMissing {
        path: PathBuf::from(what),
        package: "busybox-static",
    };
    let elf = std::fs::read("/bin/busybox").map_err(|_| missing("/bin/busybox"))?;
    if !is_static_elf(&elf) {
        return Err(missing("/bin/busybox (statically linked)"));
    }
    Ok(PathBuf::from("/bin/busybox"))
}

/// Whether an ELF image has no program interpreter (`PT_INTERP`), i.e. is static.
pub fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false;
    }
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).all(|i| {
        let at = phoff as usize + i * phentsize as usize;
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .is_some_and(|t| t != PT_INTERP)
    })
}

/// Creates (or truncates) a sparse file of `size` bytes at `path`.
pub fn sparse_image(path: &Path, size: u64) -> Result<PathBuf, FixtureError> {
    let step = format!("create the sparse image {}", path.display());
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io_err(step.clone()))?;
    file.set_len(size).map_err(io_err(step))?;
    Ok(path.to_path_buf())
}

/// `git -C DIR ARGS…`, which must succeed; its stdout. (The hardware
/// configuration tests need a git work tree: the generated file is added with
/// `git add --intent-to-add` so the flake sees it.)
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git is missing ({e}): apt-get install -y git"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_images_take_no_space() {
        let dir = tempfile::tempdir().unwrap();
        let path = sparse_image(&dir.path().join("disk.img"), 1 << 30).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    }

    #[test]
    fn static_elf_detection() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // This test binary is linked against glibc dynamically.
        assert!(!is_static_elf(&me));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }
}
