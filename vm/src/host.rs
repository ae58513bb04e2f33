//! What a VM needs from the host: the qemu binary, OVMF's firmware files and
//! free TCP ports on 127.0.0.1.
//!
//! A missing file is an error naming the Debian package that provides it.
//! `LANDFALL_QEMU` names the qemu binary, `LANDFALL_OVMF_DIR` a folder with
//! `OVMF_CODE_4M.fd` and `OVMF_VARS_4M.fd`.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Something the host should provide is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file from a Debian package is missing.
    #[error("{path} is missing: install the Debian package {package}")]
    PackageFileMissing {
        path: PathBuf,
        package: &'static str,
    },
    /// A host operation failed.
    #[error("Cannot {step}")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(step: impl Into<String>) -> impl FnOnce(io::Error) -> HostError {
    let step = step.into();
    move |source| HostError::Io { step, source }
}

/// OVMF's code and variable-store template, where distributions put them.
const OVMF: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
];

/// The OVMF firmware files.
#[derive(Debug, Clone)]
pub struct OvmfFiles {
    /// Read-only code, e.g. `OVMF_CODE_4M.fd` (no Secure Boot keys enrolled).
    pub code: PathBuf,
    /// Template for the per-VM variable store, e.g. `OVMF_VARS_4M.fd`.
    pub vars_template: PathBuf,
}

/// Finds OVMF: `$LANDFALL_OVMF_DIR`, else Debian's (or Arch's) usual paths.
pub fn ovmf() -> Result<OvmfFiles, HostError> {
    if let Some(dir) = std::env::var_os("LANDFALL_OVMF_DIR").map(PathBuf::from) {
        let files = OvmfFiles {
            code: dir.join("OVMF_CODE_4M.fd"),
            vars_template: dir.join("OVMF_VARS_4M.fd"),
        };
        for path in [&files.code, &files.vars_template] {
            require_file(path, "ovmf")?;
        }
        return Ok(files);
    }
    for (code, vars) in OVMF {
        if Path::new(code).is_file() && Path::new(vars).is_file() {
            return Ok(OvmfFiles {
                code: code.into(),
                vars_template: vars.into(),
            });
        }
    }
    Err(HostError::PackageFileMissing {
        path: PathBuf::from(OVMF[0].0),
        package: "ovmf",
    })
}

/// `qemu-system-x86_64`: `$LANDFALL_QEMU`, else the first in `$PATH`.
pub fn qemu_binary() -> Result<PathBuf, HostError> {
    if let Some(q) = std::env::var_os("LANDFALL_QEMU") {
        return Ok(PathBuf::from(q));
    }
    find_in_path("qemu-system-x86_64").ok_or(HostError::PackageFileMissing {
        path: PathBuf::from("qemu-system-x86_64"),
        package: "qemu-system-x86",
    })
}

/// Finds `program` in `$PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Fails naming `package` when `path` is not a file.
pub fn require_file(path: &Path, package: &'static str) -> Result<(), HostError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(HostError::PackageFileMissing {
            path: path.to_path_buf(),
            package,
        })
    }
}

/// Ports handed out by [`free_port`] in this process, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that is free now and not yet handed out in this
/// process (threads start VMs in parallel; the kernel may otherwise offer the
/// same ephemeral port twice). It is released before use: qemu binds it.
pub fn free_port() -> Result<u16, HostError> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    for _ in 0..64 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind 127.0.0.1:0"))?;
        let port = listener
            .local_addr()
            .map_err(io_err("read the bound port"))?
            .port();
        if handed.insert(port) {
            return Ok(port);
        }
    }
    Err(HostError::Io {
        step: "find a free port".into(),
        source: io::Error::new(io::ErrorKind::AddrInUse, "no new free port in 64 tries"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        TcpListener::bind((Ipv4Addr::LOCALHOST, a)).unwrap();
    }

    #[test]
    fn a_missing_file_names_its_package() {
        let e = require_file(Path::new("/nonexistent/OVMF_CODE_4M.fd"), "ovmf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/OVMF_CODE_4M.fd is missing: install the Debian package ovmf"
        );
    }
}
