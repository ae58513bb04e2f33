//! Assembles landfall's RAM image: the kernel plus an initramfs — a
//! zstd-compressed newc cpio holding the agent as `/init` and the kernel
//! modules it needs, with `modules.dep` / `modules.alias` generated for them.
//!
//! Platform-neutral: plain file I/O and pure-Rust parsing only, so the
//! controller can build images on macOS too.

pub mod cpio;
pub mod modules;
