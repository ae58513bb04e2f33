//! Native systemd-boot, as NixOS's systemd-boot builder lays out the ESP:
//! `EFI/nixos/<hash-name>-bzImage.efi` and `…-initrd.efi` (content-addressed:
//! a file already there with the same bytes is left alone),
//! `loader/entries/nixos-generation-1.conf`, `loader/loader.conf`, and the
//! closure's systemd-boot EFI binary at `EFI/systemd/systemd-boot<arch>.efi`
//! and at the removable path `EFI/BOOT/BOOT<ARCH>.EFI` (boots with no NVRAM entry).
//!
//! Each file is written as `<name>.tmp`, fsynced, renamed over `<name>`; the
//! ESP is synced (syncfs) at the end. The ESP is written through the kernel's
//! vfat driver (a mounted filesystem), never by a userspace FAT writer.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ::bootspec::v1::BootSpecV1;

use super::bootspec::{esp_name, resolve_in_root, BootSpecError};
use super::BootEvent;
use crate::steps::StepEvent;

/// The loader entry NixOS writes for the first generation.
pub const ENTRY_NAME: &str = "nixos-generation-1.conf";

#[derive(Debug, thiserror::Error)]
pub enum SystemdBootError {
    #[error("Cannot find {what} in the closure")]
    Closure {
        what: String,
        #[source]
        source: BootSpecError,
    },
    #[error("No systemd-boot EFI binary for system '{0}'")]
    Arch(String),
    #[error(
        "{esp} is not a mounted vfat ESP (filesystem type {fs_type:#x}); mount the layout first"
    )]
    NotVfat { esp: PathBuf, fs_type: i64 },
    #[error("Cannot inspect the ESP at {esp}")]
    Statfs {
        esp: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot sync the ESP at {esp}")]
    Sync {
        esp: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Knobs of the native installer.
#[derive(Debug, Clone)]
pub struct SystemdBootOptions {
    /// The ESP as the agent sees it (normally `<root>/boot`).
    pub esp: PathBuf,
    /// Refuse an ESP that is not a mounted vfat (off only for tests on a plain folder).
    pub require_vfat: bool,
}

/// Where one ESP file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspContent {
    /// A file of the closure, as the agent sees it (`<root>/nix/store/…`).
    Copy(PathBuf),
    /// Text made here (loader entry, loader.conf).
    Text(String),
}

/// One file the native installer writes, relative to the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    pub path: PathBuf,
    pub content: EspContent,
}

/// systemd's EFI architecture names for a Nix system.
fn efi_arch(system: &str) -> Option<&'static str> {
    match system {
        "x86_64-linux" => Some("x64"),
        "aarch64-linux" => Some("aa64"),
        "i686-linux" => Some("ia32"),
        "riscv64-linux" => Some("riscv64"),
        "loongarch64-linux" => Some("loongarch64"),
        _ => None,
    }
}

/// The loader entry's text, as NixOS writes it (kernel params after `init=`).
pub fn entry_text(spec: &BootSpecV1, kernel_name: &str, initrd_name: Option<&str>) -> String {
    let mut s = format!(
        "title NixOS\nsort-key nixos\nversion Generation 1 {}\nlinux /EFI/nixos/{kernel_name}\n",
        spec.label
    );
    if let Some(i) = initrd_name {
        s += &format!("initrd /EFI/nixos/{i}\n");
    }
    let mut options = format!("init={}", spec.init.display());
    for p in &spec.kernel_params {
        options.push(' ');
        options.push_str(p);
    }
    s += &format!("options {options}\n");
    s
}

/// loader.conf: the first generation by default, the menu timeout, the console as it is.
pub fn loader_conf_text(timeout_secs: u32) -> String {
    format!("timeout {timeout_secs}\ndefault {ENTRY_NAME}\nconsole-mode keep\n")
}

/// The files the native installer writes for `spec`, closure files resolved in `root`.
pub fn plan_esp(
    root: &Path,
    toplevel: &Path,
    spec: &BootSpecV1,
    timeout_secs: u32,
) -> Result<Vec<EspFile>, SystemdBootError> {
    let closure = |what: &str, p: &Path| {
        resolve_in_root(root, p).map_err(|source| SystemdBootError::Closure {
            what: format!("{what} {}", p.display()),
            source,
        })
    };
    let host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let named = |what: &str, p: &Path| -> Result<(String, PathBuf), SystemdBootError> {
        let r = closure(what, p)?;
        let name = esp_name(&r).map_err(|source| SystemdBootError::Closure {
            what: format!("{what} {}", p.display()),
            source,
        })?;
        Ok((name, host(&r)))
    };
    let arch = efi_arch(&spec.system).ok_or_else(|| SystemdBootError::Arch(spec.system.clone()))?;
    let efi = closure(
        "the systemd-boot EFI binary",
        &toplevel.join(format!(
            "systemd/lib/systemd/boot/efi/systemd-boot{arch}.efi"
        )),
    )?;
    let (kname, kfile) = named("the kernel", &spec.kernel)?;
    let initrd = match &spec.initrd {
        Some(i) => Some(named("the initrd", i)?),
        None => None,
    };
    let mut files = vec![EspFile {
        path: Path::new("EFI/nixos").join(&kname),
        content: EspContent::Copy(kfile),
    }];
    if let Some((iname, ifile)) = &initrd {
        files.push(EspFile {
            path: Path::new("EFI/nixos").join(iname),
            content: EspContent::Copy(ifile.clone()),
        });
    }
    let efi = host(&efi);
    files.push(EspFile {
        path: PathBuf::from(format!("EFI/systemd/systemd-boot{arch}.efi")),
        content: EspContent::Copy(efi.clone()),
    });
    files.push(EspFile {
        path: PathBuf::from(format!("EFI/BOOT/BOOT{}.EFI", arch.to_ascii_uppercase())),
        content: EspContent::Copy(efi),
    });
    files.push(EspFile {
        path: Path::new("loader/entries").join(ENTRY_NAME),
        content: EspContent::Text(entry_text(
            spec,
            &kname,
            initrd.as_ref().map(|(n, _)| n.as_str()),
        )),
    });
    files.push(EspFile {
        path: PathBuf::from("loader/loader.conf"),
        content: EspContent::Text(loader_conf_text(timeout_secs)),
    });
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>, SystemdBootError> {
    fs::read(path).map_err(|source| SystemdBootError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn content_bytes(c: &EspContent) -> Result<Vec<u8>, SystemdBootError> {
    match c {
        EspContent::Copy(p) => read(p),
        EspContent::Text(t) => Ok(t.clone().into_bytes()),
    }
}

/// Checks the ESP is a mounted vfat filesystem.
pub fn check_vfat(esp: &Path) -> Result<(), SystemdBootError> {
    let st = nix::sys::statfs::statfs(esp).map_err(|source| SystemdBootError::Statfs {
        esp: esp.to_path_buf(),
        source,
    })?;
    let t = st.filesystem_type();
    if t != nix::sys::statfs::MSDOS_SUPER_MAGIC {
        return Err(SystemdBootError::NotVfat {
            esp: esp.to_path_buf(),
            fs_type: t.0 as i64,
        });
    }
    Ok(())
}

/// Writes `data` to `path` through `<path>.tmp`, fsync, rename.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), SystemdBootError> {
    let err = |source| SystemdBootError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)
}

/// Writes the planned files into the ESP, one step each, then syncs it.
pub fn write_esp(
    files: &[EspFile],
    opts: &SystemdBootOptions,
    on_event: &mut dyn FnMut(BootEvent),
) -> Result<usize, SystemdBootError> {
    if opts.require_vfat {
        check_vfat(&opts.esp)?;
    }
    let total = files.len() + 1;
    let mut written = 0;
    for (index, f) in files.iter().enumerate() {
        let description = format!("Write {} on the ESP", f.path.display());
        let data = content_bytes(&f.content)?;
        let dest = opts.esp.join(&f.path);
        // Content-addressed and unchanged: leave it (as NixOS's builder does).
        if fs::read(&dest).map(|d| d == data).unwrap_or(false) {
            on_event(BootEvent::Step(StepEvent::Skipped {
                index,
                total,
                description,
                reason: "already there with the same content".into(),
            }));
            continue;
        }
        on_event(BootEvent::Step(StepEvent::Started {
            index,
            total,
            description: description.clone(),
        }));
        let t = Instant::now();
        write_atomically(&dest, &data)?;
        written += 1;
        on_event(BootEvent::Step(StepEvent::Finished {
            index,
            total,
            description: format!("{description} ({} bytes)", data.len()),
            duration: t.elapsed(),
        }));
    }
    let description = format!("Sync the ESP ({})", opts.esp.display());
    on_event(BootEvent::Step(StepEvent::Started {
        index: total - 1,
        total,
        description: description.clone(),
    }));
    let t = Instant::now();
    let dir = File::open(&opts.esp).map_err(|source| SystemdBootError::Write {
        path: opts.esp.clone(),
        source,
    })?;
    nix::unistd::syncfs(dir.as_fd()).map_err(|source| SystemdBootError::Sync {
        esp: opts.esp.clone(),
        source,
    })?;
    on_event(BootEvent::Step(StepEvent::Finished {
        index: total - 1,
        total,
        description,
        duration: t.elapsed(),
    }));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::bootspec::SystemConfigurationRoot;

    fn spec() -> BootSpecV1 {
        BootSpecV1 {
            label: "NixOS 24.05 (Linux 6.6.1)".into(),
            kernel: "/nix/store/kkk-linux-6.6.1/bzImage".into(),
            kernel_params: vec!["console=ttyS0".into(), "loglevel=4".into()],
            init: "/nix/store/sss-nixos-system/init".into(),
            initrd: Some("/nix/store/iii-initrd-linux/initrd".into()),
            initrd_secrets: None,
            system: "x86_64-linux".into(),
            toplevel: SystemConfigurationRoot("/nix/store/sss-nixos-system".into()),
        }
    }

    #[test]
    fn entry_is_what_nixos_writes() {
        let e = entry_text(
            &spec(),
            "kkk-linux-6.6.1-bzImage.efi",
            Some("iii-initrd-linux-initrd.efi"),
        );
        assert_eq!(
            e,
            "title NixOS\nsort-key nixos\nversion Generation 1 NixOS 24.05 (Linux 6.6.1)\n\
             linux /EFI/nixos/kkk-linux-6.6.1-bzImage.efi\n\
             initrd /EFI/nixos/iii-initrd-linux-initrd.efi\n\
             options init=/nix/store/sss-nixos-system/init console=ttyS0 loglevel=4\n"
        );
        assert_eq!(
            loader_conf_text(0),
            "timeout 0\ndefault nixos-generation-1.conf\nconsole-mode keep\n"
        );
    }

    #[test]
    fn unknown_architecture_is_refused() {
        let mut s = spec();
        s.system = "mips-linux".into();
        let t = tempfile::tempdir().unwrap();
        let e = plan_esp(t.path(), Path::new("/nix/store/sss-nixos-system"), &s, 5);
        assert!(matches!(e, Err(SystemdBootError::Arch(_))));
    }
}
