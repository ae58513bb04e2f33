//! Assembles landfall's RAM image: the kernel plus an initramfs — a
//! zstd-compressed newc cpio holding the agent as `/init` and the kernel
//! modules it needs, with `modules.dep` / `modules.alias` generated for them.
//!
//! Platform-neutral: plain file I/O and pure-Rust parsing only, so the
//! controller can build images on macOS too.
//!
//! Entry points: [`build_image`] for the whole image, [`session_cpio`] +
//! [`append_archive`] to add per-install files, [`cpio`] and [`modules`] for
//! the parts.

mod build;
mod compress;
pub mod cpio;
mod kernel;
pub mod modules;
mod session;

pub use build::{build_image, ImageError, ImageReport, ImageSpec};
pub use compress::{append_archive, compress_initrd, INITRD_WINDOW_LOG, INITRD_ZSTD_LEVEL};
pub use kernel::bzimage_release;
pub use session::{session_cpio, SessionFile};
