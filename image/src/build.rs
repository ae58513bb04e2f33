//! `build_image`: kernel + modules + agent → `out_dir/bzImage` and `out_dir/initrd`.
//!
//! Layout of the initrd (one zstd frame over one newc archive, mtime 0, root-owned):
//!
//! ```text
//! init                                  the agent, 0755
//! dev/  dev/console (c 5 1, 0600)       console for PID 1 before devtmpfs
//! proc/ sys/ run/ mnt/ etc/ (0755)      tmp/ (1777)
//! lib/modules/<version>/kernel/…/*.ko   selected modules, decompressed, 0644
//! lib/modules/<version>/modules.dep     see `modules` for the formats
//! lib/modules/<version>/modules.alias
//! lib/modules/<version>/modules.softdep
//! lib/modules/<version>/modules.builtin, modules.builtin.modinfo (copied when present)
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::compress::compress_initrd;
use crate::cpio::{ArchiveTree, CpioWriteError};
use crate::kernel::bzimage_release;
use crate::modules::{
    modules_alias, modules_dep, modules_softdep, select_modules, IndexError, ModuleIndex,
    SelectError, DEFAULT_MODULES,
};

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The kernel image (x86 bzImage; other formats are copied unchecked).
    pub kernel: PathBuf,
    /// The kernel's `lib/modules/<version>` directory.
    pub modules_dir: PathBuf,
    /// The static agent binary, stored as `/init`.
    pub agent: PathBuf,
    /// Modules (names or aliases) wanted besides [`DEFAULT_MODULES`].
    pub extra_modules: Vec<String>,
    /// Where `bzImage` and `initrd` are written (created if missing).
    pub out_dir: PathBuf,
    /// zstd level of the initrd: [`INITRD_ZSTD_LEVEL`] (19) for an image that
    /// is kexeced — smaller to upload, as fast to unpack. Tests of the image's
    /// contents use a low level: level 19 on a 60 MB archive takes tens of
    /// seconds in a debug build.
    ///
    /// [`INITRD_ZSTD_LEVEL`]: crate::compress::INITRD_ZSTD_LEVEL
    pub zstd_level: i32,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// Kernel release (the modules directory's name).
    pub kernel_version: String,
    /// Path of the written kernel.
    pub kernel_path: PathBuf,
    /// Path of the written initrd.
    pub initrd_path: PathBuf,
    /// Kernel size in bytes.
    pub kernel_size: u64,
    /// Compressed initrd size in bytes.
    pub initrd_size: u64,
    /// Size of the cpio archive before compression.
    pub initrd_uncompressed_size: u64,
    /// Modules included, in load order (dependencies first).
    pub modules: Vec<String>,
    /// Wanted names that are built into this kernel.
    pub builtin: Vec<String>,
    /// Wanted names this kernel lacks entirely.
    pub absent: Vec<String>,
    /// `(module, softdep)` pairs nothing in this kernel provides.
    pub unresolved_softdeps: Vec<(String, String)>,
}

impl fmt::Display for ImageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kernel  {} ({} bytes)",
            self.kernel_path.display(),
            self.kernel_size
        )?;
        writeln!(
            f,
            "initrd  {} ({} bytes, {} uncompressed)",
            self.initrd_path.display(),
            self.initrd_size,
            self.initrd_uncompressed_size
        )?;
        writeln!(f, "version {}", self.kernel_version)?;
        writeln!(
            f,
            "modules {} included: {}",
            self.modules.len(),
            self.modules.join(" ")
        )?;
        if !self.builtin.is_empty() {
            writeln!(f, "built in: {}", self.builtin.join(" "))?;
        }
        if !self.absent.is_empty() {
            writeln!(f, "absent:   {}", self.absent.join(" "))?;
        }
        for (module, softdep) in &self.unresolved_softdeps {
            writeln!(
                f,
                "note: nothing provides {softdep} (soft dependency of {module})"
            )?;
        }
        Ok(())
    }
}

/// Why the image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The kernel could not be read.
    #[error("Reading kernel {path}")]
    ReadKernel {
        /// The kernel path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel's own version differs from the modules directory's.
    #[error("Kernel {kernel} does not match modules directory {modules}")]
    VersionMismatch {
        /// Release embedded in the bzImage.
        kernel: String,
        /// Name of the modules directory.
        modules: String,
    },
    /// The agent could not be read.
    #[error("Reading agent {path}")]
    ReadAgent {
        /// The agent path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The agent file is empty.
    #[error("Agent {0} is empty")]
    EmptyAgent(PathBuf),
    /// The modules directory could not be indexed.
    #[error("Indexing kernel modules")]
    Index(#[source] IndexError),
    /// Module selection failed.
    #[error("Selecting kernel modules")]
    Select(#[source] SelectError),
    /// A metadata file of the modules directory could not be read.
    #[error("Reading {path}")]
    ReadMetadata {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive could not be assembled.
    #[error("Assembling the initramfs archive")]
    Archive(#[source] CpioWriteError),
    /// zstd failed.
    #[error("Compressing the initramfs")]
    Compress(#[source] io::Error),
    /// An output file could not be written.
    #[error("Writing {path}")]
    WriteOutput {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Builds the image described by `spec`; see the module docs for the layout.
pub fn build_image(spec: &ImageSpec) -> Result<ImageReport, ImageError> {
    let kernel = fs::read(&spec.kernel).map_err(|source| ImageError::ReadKernel {
        path: spec.kernel.clone(),
        source,
    })?;
    let index = ModuleIndex::scan(&spec.modules_dir).map_err(ImageError::Index)?;
    let version = index.version().to_owned();
    if let Some(release) = bzimage_release(&kernel) {
        if release != version {
            return Err(ImageError::VersionMismatch {
                kernel: release,
                modules: version,
            });
        }
    }
    let agent = fs::read(&spec.agent).map_err(|source| ImageError::ReadAgent {
        path: spec.agent.clone(),
        source,
    })?;
    if agent.is_empty() {
        return Err(ImageError::EmptyAgent(spec.agent.clone()));
    }

    let wanted: Vec<&str> = DEFAULT_MODULES
        .iter()
        .copied()
        .chain(spec.extra_modules.iter().map(String::as_str))
        .collect();
    let selection = select_modules(&index, &wanted).map_err(ImageError::Select)?;

    let mut tree = ArchiveTree::new();
    let archive = |e| ImageError::Archive(e);
    tree.file("init", 0o755, agent).map_err(archive)?;
    for dir in ["dev", "proc", "sys", "run", "mnt", "etc"] {
        tree.directory(dir, 0o755).map_err(archive)?;
    }
    tree.directory("tmp", 0o1777).map_err(archive)?;
    tree.char_device("dev/console", 0o600, 5, 1)
        .map_err(archive)?;
    let base = format!("lib/modules/{version}");
    for module in &selection.modules {
        let path = format!("{base}/{}", module.image_path());
        tree.file(&path, 0o644, module.module.data.clone())
            .map_err(archive)?;
    }
    let generated = [
        ("modules.dep", modules_dep(&selection)),
        ("modules.alias", modules_alias(&selection)),
        ("modules.softdep", modules_softdep(&selection)),
    ];
    for (name, text) in generated {
        tree.file(&format!("{base}/{name}"), 0o644, text.into_bytes())
            .map_err(archive)?;
    }
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        if let Some(data) = read_optional(&spec.modules_dir.join(name))? {
            tree.file(&format!("{base}/{name}"), 0o644, data)
                .map_err(archive)?;
        }
    }
    let cpio = tree.to_bytes().map_err(archive)?;
    let initrd = compress_initrd(&cpio, spec.zstd_level).map_err(ImageError::Compress)?;

    fs::create_dir_all(&spec.out_dir).map_err(|source| ImageError::WriteOutput {
        path: spec.out_dir.clone(),
        source,
    })?;
    let kernel_path = spec.out_dir.join("bzImage");
    let initrd_path = spec.out_dir.join("initrd");
    write_atomically(&kernel_path, &kernel)?;
    write_atomically(&initrd_path, &initrd)?;

    Ok(ImageReport {
        kernel_version: version,
        kernel_path,
        initrd_path,
        kernel_size: kernel.len() as u64,
        initrd_size: initrd.len() as u64,
        initrd_uncompressed_size: cpio.len() as u64,
        modules: selection.names(),
        builtin: selection.builtin,
        absent: selection.absent,
        unresolved_softdeps: selection.unresolved_softdeps,
    })
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ImageError> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImageError::ReadMetadata {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `path.tmp` then renames it over `path`, so a crash never leaves a
/// half-written image under the final name.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let err = |source| ImageError::WriteOutput {
        path: path.to_owned(),
        source,
    };
    fs::write(&tmp, data).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}
