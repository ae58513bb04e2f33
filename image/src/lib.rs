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
mod kernel;
pub mod modules;

pub use build::{build_image, ImageError, ImageReport, ImageSpec};
pub use compress::{compress_initrd, INITRD_WINDOW_LOG, INITRD_ZSTD_LEVEL};
pub use kernel::bzimage_release;
/// The newc cpio format and the session archive live in `landfall-formats`
/// (shared with the agent and the tests); re-exported here for the image's users.
pub use landfall_formats::{append_archive, cpio, session_cpio, SessionFile};
