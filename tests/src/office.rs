//! Builds landfall's test fixture, the `office` example flake in
//! `examples/office/`, with real Nix: lays out a temporary copy of the flake
//! whose `vendor` input points at a folder beside it with the binaries it is
//! built from (Debian's static busybox, the cached Debian kernel, optionally
//! the systemd-boot EFI binary) and runs `nix build`. [`lay_out_vendor`] alone
//! fills the folder the committed example reads (scripts/office-vendor.sh). Offline: the flake has no inputs, and the Nix settings below
//! turn off the sandbox and substituters.
//!
//! Every crate's tests use this one builder (`landfall_tests::office`; the
//! controller's and the agent's tests through their dev-dependency).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Nix settings the fixture builds with (Debian's Nix 2.8, root, no network).
pub const NIX_CONFIG: &str = "experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters =";

/// Where Debian's busybox-static installs its binary.
pub const DEBIAN_BUSYBOX: &str = "/bin/busybox";
/// Where Debian's systemd-boot-efi installs the EFI binary.
pub const DEBIAN_SYSTEMD_BOOT_EFI: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Where Debian's grub-pc-bin and grub-efi-amd64-bin put GRUB's platform
/// folders (`i386-pc`, `x86_64-efi`).
pub const DEBIAN_GRUB_LIB: &str = "/usr/lib/grub";
/// GRUB's programs the `office-grub` system's installer runs (grub2-common, grub-common).
pub const DEBIAN_GRUB_PROGRAMS: &[&str] = &["/usr/sbin/grub-install", "/usr/sbin/grub-probe"];
/// GRUB's platforms the fixture installs: BIOS and 64-bit UEFI.
pub const GRUB_PLATFORMS: &[&str] = &["i386-pc", "x86_64-efi"];

/// Where Debian's cryptsetup-bin installs cryptsetup.
pub const DEBIAN_CRYPTSETUP: &str = "/usr/sbin/cryptsetup";
/// Where Debian's lvm2 installs lvm.
pub const DEBIAN_LVM: &str = "/usr/sbin/lvm";

/// Knobs of the fixture system.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// The static busybox every derivation is built by and the system runs.
    pub busybox: PathBuf,
    /// The kernel image; `None` finds the cached Debian kernel
    /// (`$LANDFALL_CACHE` or `<workspace>/.cache`, see scripts/fetch-kernel.sh).
    pub kernel: Option<PathBuf>,
    /// The systemd-boot EFI binary to put in the closure (as `<toplevel>/systemd`).
    pub systemd_boot_efi: Option<PathBuf>,
    /// GRUB 2 for `office-grub`: the folder holding its platform folders
    /// (Debian's /usr/lib/grub); the programs are [`DEBIAN_GRUB_PROGRAMS`].
    /// Vendored as `grub/{bin,lib,i386-pc,x86_64-efi}`.
    pub grub: Option<PathBuf>,
    /// `kernelParams` of boot.json.
    pub kernel_params: Vec<String>,
    /// Makes `bin/switch-to-configuration` fail, to test a failing bootloader installer.
    pub bootloader_fails: bool,
    /// The kernel's modules folder (`lib/modules/<version>`); `None` finds the
    /// cached Debian kernel's, next to its image.
    pub modules: Option<PathBuf>,
    /// Modules stage 1 loads (with their dependencies, in order) to find and
    /// mount the root: NVMe, ext4 and the crc32c ext4's checksums ask for.
    pub stage1_modules: Vec<String>,
    /// Modules a btrfs root adds (`office-btrfs`'s stage 1), with the
    /// dependencies `stage1_modules` do not already bring: `kernel/modules-btrfs`.
    pub btrfs_modules: Vec<String>,
    /// Modules a LUKS + LVM root adds (`office-luks-lvm`'s stage 1):
    /// device-mapper, dm-crypt, the aes-xts-plain64 cipher's modules and the
    /// kernel crypto API cryptsetup opens keyslots with: `kernel/modules-dm`.
    pub dm_modules: Vec<String>,
    /// The modules a generated hardware configuration may name for stage 1
    /// (`office-hw`'s initrd loads exactly those its file and the profiles it
    /// imports name, plus the root file system's): `kernel/hw/<name>.ko`,
    /// one folder for all, and `kernel/hw/<name>.order`, the module and its
    /// dependencies in load order.
    pub hw_modules: Vec<String>,
    /// The programs that stage 1 unlocks LUKS and activates LVM with
    /// (Debian's cryptsetup and lvm, dynamically linked): copied with every
    /// library `ldd` names into `dm/bin` and `dm/lib`.
    pub dm_tools: Vec<PathBuf>,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            busybox: PathBuf::from(DEBIAN_BUSYBOX),
            kernel: None,
            systemd_boot_efi: None,
            grub: None,
            kernel_params: vec![
                "console=ttyS0,115200".into(),
                "panic=-1".into(),
                "loglevel=4".into(),
            ],
            bootloader_fails: false,
            modules: None,
            stage1_modules: vec!["nvme".into(), "ext4".into(), "crc32c_generic".into()],
            btrfs_modules: vec!["btrfs".into()],
            dm_modules: [
                "dm_mod",
                "dm_crypt",
                "ecb",
                "xts",
                "aesni_intel",
                "af_alg",
                "algif_skcipher",
            ]
            .map(String::from)
            .to_vec(),
            dm_tools: vec![DEBIAN_CRYPTSETUP.into(), DEBIAN_LVM.into()],
            // What nixos-generate-config names for the storage, USB and
            // keyboard controllers of PCs and VMs (and the fixture's
            // qemu-guest profile adds), and the ext4 root's modules.
            hw_modules: [
                "nvme",
                "ahci",
                "ata_piix",
                "sd_mod",
                "sr_mod",
                "virtio_pci",
                "virtio_blk",
                "virtio_scsi",
                "xhci_pci",
                "ehci_pci",
                "uhci_hcd",
                "usbhid",
                "usb_storage",
                "ext4",
                "crc32c_generic",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Why the fixture could not be built.
#[derive(Debug)]
pub enum FixtureError {
    /// A file the fixture is built from is missing (the message says which package).
    Missing(String),
    /// Copying or writing the flake folder failed.
    Io(PathBuf, io::Error),
    /// `nix` failed or printed something unexpected.
    Nix(String),
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(m) => write!(f, "Fixture input missing: {m}"),
            Self::Io(p, e) => write!(f, "Cannot lay out the fixture at {}: {e}", p.display()),
            Self::Nix(m) => write!(f, "Building the fixture with nix failed: {m}"),
        }
    }
}

impl std::error::Error for FixtureError {}

/// A built fixture.
#[derive(Debug, Clone)]
pub struct BuiltFixture {
    /// The laid-out flake folder.
    pub flake_dir: PathBuf,
    /// `path:<flake_dir>`, for `nix build/eval <flake_ref>#…`.
    pub flake_ref: String,
    /// `nixosConfigurations.office.config.system.build.toplevel`.
    pub toplevel: String,
}

/// `<workspace>/examples/office` (every crate sits one level below the workspace).
pub fn fixture_source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/office")
}

/// The `vendor` input's URL in the committed example's flake.nix.
pub const EXAMPLE_VENDOR_URL: &str = "path:/var/cache/landfall/office-vendor";

/// The cached Debian kernel image: `$LANDFALL_CACHE/kernel/current/boot/vmlinuz-*`
/// (default cache `<workspace>/.cache`).
pub fn find_kernel() -> Result<PathBuf, FixtureError> {
    let cache = std::env::var_os("LANDFALL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"));
    let boot = cache.join("kernel/current/boot");
    let missing = || {
        FixtureError::Missing(format!(
            "no vmlinuz-* in {}: run scripts/fetch-kernel.sh or set LANDFALL_CACHE",
            boot.display()
        ))
    };
    let entries = fs::read_dir(&boot).map_err(|_| missing())?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("vmlinuz-") {
            return Ok(e.path());
        }
    }
    Err(missing())
}

fn copy(from: &Path, to: &Path) -> Result<(), FixtureError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| FixtureError::Io(parent.to_path_buf(), e))?;
    }
    fs::copy(from, to).map_err(|e| FixtureError::Io(to.to_path_buf(), e))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), FixtureError> {
    fs::create_dir_all(to).map_err(|e| FixtureError::Io(to.to_path_buf(), e))?;
    for e in fs::read_dir(from).map_err(|e| FixtureError::Io(from.to_path_buf(), e))? {
        let e = e.map_err(|e| FixtureError::Io(from.to_path_buf(), e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// The cached Debian kernel's modules folder: `<kernel>/../../lib/modules/<version>`.
fn find_modules(kernel: &Path) -> Result<PathBuf, FixtureError> {
    let base = kernel
        .parent()
        .and_then(|b| b.parent())
        .map(|p| p.join("lib/modules"))
        .unwrap_or_default();
    fs::read_dir(&base)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
        .ok_or_else(|| {
            FixtureError::Missing(format!(
                "no kernel modules in {}: run scripts/fetch-kernel.sh",
                base.display()
            ))
        })
}

fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

/// Every `.ko` under `dir`, by module name (`-` and `_` alike).
fn index_modules(dir: &Path, out: &mut std::collections::BTreeMap<String, PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            index_modules(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = n.strip_suffix(".ko") {
                out.insert(module_key(stem), p.clone());
            }
        }
    }
}

/// The `depends=` list of an uncompressed module's .modinfo.
fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    ko.windows(key.len())
        .position(|w| w == key)
        .map(|i| {
            let rest = &ko[i + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(module_key)
                .collect()
        })
        .unwrap_or_default()
}

/// Copies `wanted` and their dependencies, except those in `loaded` (already
/// in another folder stage 1 loads first), to `dest/<name>.ko`, and writes
/// `dest/load-order` (dependencies first) for stage 1's insmod. Returns
/// `loaded` with the modules copied here appended.
fn copy_stage1_modules(
    modules: &Path,
    wanted: &[String],
    loaded: Vec<String>,
    dest: &Path,
) -> Result<Vec<String>, FixtureError> {
    let mut index = std::collections::BTreeMap::new();
    index_modules(&modules.join("kernel"), &mut index);
    let first_new = loaded.len();
    let mut order = loaded;
    fn visit(
        name: &str,
        index: &std::collections::BTreeMap<String, PathBuf>,
        order: &mut Vec<String>,
        dest: &Path,
        depth: usize,
    ) -> Result<(), FixtureError> {
        let key = module_key(name);
        if order.contains(&key) || depth > 32 {
            return Ok(());
        }
        let src = index.get(&key).ok_or_else(|| {
            FixtureError::Missing(format!("kernel module {name} (is it built in? not a .ko?)"))
        })?;
        let bytes = fs::read(src).map_err(|e| FixtureError::Io(src.clone(), e))?;
        for d in module_depends(&bytes) {
            visit(&d, index, order, dest, depth + 1)?;
        }
        let to = dest.join(format!("{key}.ko"));
        fs::write(&to, &bytes).map_err(|e| FixtureError::Io(to, e))?;
        order.push(key);
        Ok(())
    }
    fs::create_dir_all(dest).map_err(|e| FixtureError::Io(dest.to_path_buf(), e))?;
    for w in wanted {
        visit(w, &index, &mut order, dest, 0)?;
    }
    let list = dest.join("load-order");
    fs::write(&list, order[first_new..].join("\n") + "\n")
        .map_err(|e| FixtureError::Io(list, e))?;
    Ok(order)
}

/// The libraries `ldd` says `program` loads: (name in the folder, path), the
/// dynamic loader among them.
fn shared_libraries(program: &Path) -> Result<Vec<(String, PathBuf)>, FixtureError> {
    let out = Command::new("ldd").arg(program).output().map_err(|e| {
        FixtureError::Missing(format!("ldd ({e}): install the Debian package libc-bin"))
    })?;
    if !out.status.success() {
        return Err(FixtureError::Missing(format!(
            "ldd {}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)".
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|w| w.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            libs.push((name, p));
        }
    }
    Ok(libs)
}

/// Copies `program` to `dest/bin` and its libraries to `dest/lib`.
fn copy_program(program: &Path, dest: &Path) -> Result<(), FixtureError> {
    if !program.is_file() {
        return Err(FixtureError::Missing(format!(
            "{}: install the Debian packages cryptsetup-bin and lvm2",
            program.display()
        )));
    }
    let name = program.file_name().unwrap_or_default();
    copy(program, &dest.join("bin").join(name))?;
    for (lib, path) in shared_libraries(program)? {
        // glibc dlopens libgcc_s.so.1 when a thread exits (cryptsetup's
        // argon2 threads): ldd cannot see it, the program aborts without it.
        if lib == "libc.so.6" {
            let gcc = path.with_file_name("libgcc_s.so.1");
            if !gcc.is_file() {
                return Err(FixtureError::Missing(format!(
                    "{}: install the Debian package libgcc-s1",
                    gcc.display()
                )));
            }
            copy(&gcc, &dest.join("lib/libgcc_s.so.1"))?;
        }
        copy(&path, &dest.join("lib").join(lib))?;
    }
    Ok(())
}

/// GRUB for `office-grub` in `dest`: Debian's grub-install and grub-probe with
/// every library `ldd` names (`bin/`, `lib/`, run through `lib/`'s dynamic
/// loader) and the files of each platform folder (`i386-pc/`, `x86_64-efi/`:
/// modules, images, lists; not the prebuilt monolithic images).
fn lay_out_grub(lib: &Path, dest: &Path) -> Result<(), FixtureError> {
    let missing = |p: &Path| {
        FixtureError::Missing(format!(
            "{}: install the Debian packages grub-pc-bin, grub-efi-amd64-bin and grub2-common",
            p.display()
        ))
    };
    for platform in GRUB_PLATFORMS {
        let from = lib.join(platform);
        if !from.join("moddep.lst").is_file() {
            return Err(missing(&from));
        }
        let to = dest.join(platform);
        for e in fs::read_dir(&from).map_err(|e| FixtureError::Io(from.clone(), e))? {
            let e = e.map_err(|e| FixtureError::Io(from.clone(), e))?;
            if e.path().is_file() {
                copy(&e.path(), &to.join(e.file_name()))?;
            }
        }
    }
    for program in DEBIAN_GRUB_PROGRAMS {
        let program = Path::new(program);
        if !program.is_file() {
            return Err(missing(program));
        }
        copy_program(program, dest)?;
    }
    Ok(())
}

/// Fills `dest` (created) with what the office flake's `vendor` input holds:
/// `bb/busybox`, `kernel/{bzImage,version}`, `kernel/modules/*.ko` +
/// `load-order`, `kernel/modules-btrfs/` (the same for a btrfs root),
/// `kernel/modules-dm/` and `dm/{bin,lib}` (a LUKS + LVM root's),
/// `kernel/hw/` (the modules a hardware configuration may name), optional
/// `efi/systemd-bootx64.efi` and `grub/` ([`lay_out_grub`]), and `options.json`.
pub fn lay_out_vendor(dest: &Path, opts: &FixtureOptions) -> Result<(), FixtureError> {
    if !opts.busybox.is_file() {
        return Err(FixtureError::Missing(format!(
            "{}: install the Debian package busybox-static",
            opts.busybox.display()
        )));
    }
    copy(&opts.busybox, &dest.join("bb/busybox"))?;
    let kernel = match &opts.kernel {
        Some(k) => k.clone(),
        None => find_kernel()?,
    };
    let version = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("unknown")
        .to_owned();
    copy(&kernel, &dest.join("kernel/bzImage"))?;
    let modules = match &opts.modules {
        Some(m) => m.clone(),
        None => find_modules(&kernel)?,
    };
    let loaded = copy_stage1_modules(
        &modules,
        &opts.stage1_modules,
        Vec::new(),
        &dest.join("kernel/modules"),
    )?;
    copy_stage1_modules(
        &modules,
        &opts.btrfs_modules,
        loaded.clone(),
        &dest.join("kernel/modules-btrfs"),
    )?;
    copy_stage1_modules(
        &modules,
        &opts.dm_modules,
        loaded,
        &dest.join("kernel/modules-dm"),
    )?;
    let hw = dest.join("kernel/hw");
    for m in &opts.hw_modules {
        copy_stage1_modules(&modules, std::slice::from_ref(m), Vec::new(), &hw)?;
        let order = hw.join(format!("{}.order", module_key(m)));
        fs::rename(hw.join("load-order"), &order).map_err(|e| FixtureError::Io(order, e))?;
    }
    for tool in &opts.dm_tools {
        copy_program(tool, &dest.join("dm"))?;
    }
    let write = |p: PathBuf, data: String| fs::write(&p, data).map_err(|e| FixtureError::Io(p, e));
    write(dest.join("kernel/version"), format!("{version}\n"))?;
    if let Some(efi) = &opts.systemd_boot_efi {
        if !efi.is_file() {
            return Err(FixtureError::Missing(format!(
                "{}: install the Debian package systemd-boot-efi",
                efi.display()
            )));
        }
        copy(efi, &dest.join("efi/systemd-bootx64.efi"))?;
    }
    if let Some(grub) = &opts.grub {
        lay_out_grub(grub, &dest.join("grub"))?;
    }
    let options = serde_json::json!({
        "kernelParams": opts.kernel_params,
        "bootloaderFails": opts.bootloader_fails,
    });
    write(dest.join("options.json"), options.to_string())
}

/// Lays out the office flake in `dest` (created): the committed files, with
/// the `vendor` input pointing at `dest/vendor`, filled by [`lay_out_vendor`].
pub fn lay_out_office_flake(dest: &Path, opts: &FixtureOptions) -> Result<(), FixtureError> {
    copy_tree(&fixture_source_dir(), dest)?;
    let _ = fs::remove_file(dest.join("flake.lock"));
    let vendor = dest.join("vendor");
    lay_out_vendor(&vendor, opts)?;
    let vendor = fs::canonicalize(&vendor).map_err(|e| FixtureError::Io(vendor.clone(), e))?;
    let flake = dest.join("flake.nix");
    let text = fs::read_to_string(&flake).map_err(|e| FixtureError::Io(flake.clone(), e))?;
    if !text.contains(EXAMPLE_VENDOR_URL) {
        return Err(FixtureError::Nix(format!(
            "{} does not name the vendor input {EXAMPLE_VENDOR_URL}",
            flake.display()
        )));
    }
    let text = text.replace(EXAMPLE_VENDOR_URL, &format!("path:{}", vendor.display()));
    fs::write(&flake, text).map_err(|e| FixtureError::Io(flake, e))
}

/// A `nix` command with the fixture's settings.
pub fn nix_command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG);
    c
}

/// Lays out the flake in `dest` and builds its toplevel with real Nix.
pub fn build_office_fixture(
    dest: &Path,
    opts: &FixtureOptions,
) -> Result<BuiltFixture, FixtureError> {
    lay_out_office_flake(dest, opts)?;
    let flake_dir = fs::canonicalize(dest).map_err(|e| FixtureError::Io(dest.to_path_buf(), e))?;
    let flake_ref = format!("path:{}", flake_dir.display());
    let out = nix_command("nix")
        .args(["build", "--no-link", "--json"])
        .arg(format!(
            "{flake_ref}#nixosConfigurations.office.config.system.build.toplevel"
        ))
        .output()
        .map_err(|e| FixtureError::Nix(format!("cannot run nix (install nix-bin): {e}")))?;
    if !out.status.success() {
        return Err(FixtureError::Nix(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| FixtureError::Nix(format!("nix build --json printed invalid JSON: {e}")))?;
    let toplevel = v
        .get(0)
        .and_then(|o| o.get("outputs"))
        .and_then(|o| o.get("out"))
        .and_then(|o| o.as_str())
        .ok_or_else(|| FixtureError::Nix(format!("unexpected nix build output: {v}")))?
        .to_owned();
    Ok(BuiltFixture {
        flake_dir,
        flake_ref,
        toplevel,
    })
}
