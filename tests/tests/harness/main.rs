//! The harness tier: the test harness's own checks (qemu boots, initramfs building, the
//! network, OVMF, process handling, reboots). One binary, a module per scenario. `image_boot` boots
//! an image of `landfall-image` in qemu (it lives here so that `cargo test -p landfall-image`
//! runs without qemu).

#[path = "../../../image/tests/common/mod.rs"]
mod image_common;

mod boot;
mod image_boot;
mod initramfs;
mod net;
mod ovmf;
mod process;
mod reboot;
