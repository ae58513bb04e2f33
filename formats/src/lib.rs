//! The byte formats both sides of landfall need, in one place so a fix lands
//! once: the newc cpio archive the kernel unpacks as its initramfs ([`cpio`]),
//! the small session archive appended to an initrd at install or kexec time
//! ([`session`]), and kernel-module names, `modules.alias` globs and
//! `modules.dep` lines ([`kmod`]). Pure code over byte buffers and `io::Write`: no platform
//! calls, so the controller (on any OS), the image builder, the static agent and
//! the test harness share it.

pub mod cpio;
pub mod kmod;
pub mod session;

pub use session::{append_archive, session_cpio, SessionFile};
