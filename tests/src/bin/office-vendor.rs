//! `office-vendor DIR`: fills the folder the `office` example flake's `vendor`
//! input reads (examples/office/flake.nix) — static busybox, the cached
//! Debian kernel with its stage-1 modules, the systemd-boot EFI binary, GRUB 2 (office-grub).

use landfall_tests::office as fixture;

use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!(
            "usage: office-vendor DIR   (the example reads /var/cache/landfall/office-vendor)"
        );
        std::process::exit(2);
    };
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        grub: Some(fixture::DEBIAN_GRUB_LIB.into()),
        ..fixture::FixtureOptions::default()
    };
    let tmp = dir.with_extension("new");
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = fixture::lay_out_vendor(&tmp, &opts) {
        eprintln!("office-vendor: {e}");
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        eprintln!(
            "office-vendor: cannot move {} to {}: {e}",
            tmp.display(),
            dir.display()
        );
        std::process::exit(1);
    }
    println!("{}", dir.display());
}
