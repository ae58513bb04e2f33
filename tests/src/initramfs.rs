//! A tiny busybox initramfs for harness self-tests and helper VMs.
//!
//! [`BusyboxInitramfs`] packs Debian's static busybox, chosen kernel modules
//! (with their dependencies, inserted in order by `insmod`) and a shell script
//! into an uncompressed newc cpio. Its `/init` mounts /proc, /sys and /dev,
//! prints [`INIT_STARTED`], loads the modules, runs the script, then powers
//! off (`poweroff -f`), so a VM started with `-no-reboot` ends by itself.
//!
//! This is independent of landfall-image on purpose: the harness must be able
//! to test VMs without trusting the code under test.

/// The newc writer: landfall's own (`landfall-formats`), which the image and
/// the agent use too.
pub use landfall_formats::cpio;
pub mod modules;

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use crate::fixtures::{self, DebianKernel, FixtureError};
use cpio::NewcWriter;
use modules::ModuleError;

/// Printed by `/init` once the console works.
pub const INIT_STARTED: &str = "landfall-harness: init started";
/// Printed by `/init` after the modules are loaded (failures are printed before).
pub const MODULES_LOADED: &str = "landfall-harness: modules loaded";
/// Printed by `/init` after the script, right before `poweroff -f`.
pub const INIT_DONE: &str = "landfall-harness: init done";
/// Printed (followed by the module name) when `insmod` fails.
pub const INSMOD_FAILED: &str = "landfall-harness: insmod failed:";

/// The kernel command line these initramfs images expect: console on the
/// first serial port, reboot (hence qemu exit with `-no-reboot`) on panic.
pub const KERNEL_APPEND: &str = "console=ttyS0 panic=-1 loglevel=4";

/// Kernel parameters for VMs whose emulated NVMe disk the agent writes to. Under
/// TCG on a loaded host, qemu's writes can stall in the host's dirty-page
/// throttling for longer than the guest driver's default 30 s I/O timeout, after
/// which Linux aborts, resets and finally disables the controller (seen in CI as
/// "I/O … QID 1 timeout, aborting" and then EIO). Cloud images raise the same
/// timeout for network-backed disks; the agent's image carries it over on kexec.
pub const NVME_TIMEOUT_APPEND: &str = "nvme_core.io_timeout=600";

/// Shell lines giving `eth0` qemu user networking's usual address (what its
/// DHCP server would hand out) without running a DHCP client.
pub const STATIC_NET_SCRIPT: &str =
    "for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done\n\
     ip link set lo up\n\
     ip link set eth0 up\n\
     ip addr add 10.0.2.15/24 dev eth0\n\
     ip route add default via 10.0.2.2\n";

/// Building the initramfs failed.
#[derive(thiserror::Error)]
pub enum InitramfsError {
    /// busybox is missing.
    #[error("Cannot build the busybox initramfs")]
    Busybox(#[source] FixtureError),
    /// A module or its dependencies could not be resolved.
    #[error("Cannot collect the kernel modules")]
    Modules(#[source] ModuleError),
    /// Reading an input file failed.
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `ldd` could not list an executable's libraries (Debian package libc-bin).
    #[error("Cannot list the shared libraries of {path} with ldd")]
    Ldd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the image failed.
    #[error("Cannot write the initramfs {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
crate::debug_as_display!(InitramfsError);

/// A busybox initramfs under construction.
#[derive(Debug, Clone)]
pub struct BusyboxInitramfs {
    busybox: PathBuf,
    modules: Vec<PathBuf>,
    script: String,
    files: Vec<(String, Vec<u8>, u32)>,
}

impl BusyboxInitramfs {
    /// An image with busybox only (fails naming busybox-static when missing).
    pub fn new() -> Result<BusyboxInitramfs, InitramfsError> {
        Ok(BusyboxInitramfs {
            busybox: fixtures::busybox().map_err(InitramfsError::Busybox)?,
            modules: Vec::new(),
            script: String::new(),
            files: Vec::new(),
        })
    }

    /// Adds kernel modules `names` of `kernel` and their dependencies.
    ///
    /// Modules are inserted in the order given, each after its dependencies;
    /// e.g. `["nvme"]` for an NVMe disk, `["virtio_pci", "virtio_net"]` for a
    /// virtio NIC (virtio_pci is the bus driver, not a dependency).
    pub fn modules(
        mut self,
        kernel: &DebianKernel,
        names: &[&str],
    ) -> Result<BusyboxInitramfs, InitramfsError> {
        for file in modules::resolve(&kernel.modules, names).map_err(InitramfsError::Modules)? {
            if !self.modules.contains(&file) {
                self.modules.push(file);
            }
        }
        Ok(self)
    }

    /// Appends shell commands run by `/init` after the modules are loaded.
    pub fn script(mut self, body: &str) -> BusyboxInitramfs {
        self.script.push_str(body);
        if !body.ends_with('\n') {
            self.script.push('\n');
        }
        self
    }

    /// Adds a file at `path` (absolute inside the image) with permissions `mode`.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> BusyboxInitramfs {
        self.files.push((path.to_owned(), data.into(), mode));
        self
    }

    /// Adds the host executable `host` at `dest` (absolute inside the image),
    /// with the shared libraries and loader it needs at their host paths, so a
    /// dynamically linked Debian binary (e.g. `/usr/sbin/sshd`) runs in the guest.
    pub fn executable(
        mut self,
        host: &Path,
        dest: &str,
    ) -> Result<BusyboxInitramfs, InitramfsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| InitramfsError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        self.files.push((dest.to_owned(), read(host)?, 0o755));
        let out = std::process::Command::new("ldd")
            .arg(host)
            .output()
            .map_err(|source| InitramfsError::Ldd {
                path: host.to_path_buf(),
                source,
            })?;
        // ldd fails ("not a dynamic executable") for static binaries: no libraries.
        for lib in shared_libraries(&String::from_utf8_lossy(&out.stdout)) {
            let inside = lib.to_string_lossy().into_owned();
            if !self.files.iter().any(|(p, _, _)| *p == inside) {
                let data = read(&lib)?;
                self.files.push((inside, data, 0o755));
            }
        }
        Ok(self)
    }

    /// The module files that will be inserted, in order.
    pub fn module_files(&self) -> &[PathBuf] {
        &self.modules
    }

    /// The text of `/init`.
    pub fn init_text(&self) -> String {
        let mut init = String::from(landfall_vm::rescue::BUSYBOX_INIT_START);
        init.push_str(&format!("echo '{INIT_STARTED}'\n"));
        for file in &self.modules {
            let name = module_file_name(file);
            init.push_str(&format!(
                "insmod /lib/modules/{name} || echo '{INSMOD_FAILED} {name}'\n"
            ));
        }
        init.push_str(&format!("echo '{MODULES_LOADED}'\n"));
        init.push_str(&self.script);
        init.push_str(&format!("echo '{INIT_DONE}'\nsync\npoweroff -f\n"));
        init
    }

    /// Writes the image to `path` and returns `path`.
    pub fn write(&self, path: &Path) -> Result<PathBuf, InitramfsError> {
        let write_err = |source| InitramfsError::Write {
            path: path.to_path_buf(),
            source,
        };
        let cpio_err = |e: cpio::CpioWriteError| InitramfsError::Write {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| InitramfsError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let file = std::fs::File::create(path).map_err(write_err)?;
        let mut w = NewcWriter::new(BufWriter::new(file));
        let mut run = || -> Result<(), InitramfsError> {
            for dir in self.directories() {
                w.directory(&dir, 0o755).map_err(cpio_err)?;
            }
            w.char_device("dev/console", 0o600, 5, 1)
                .map_err(cpio_err)?;
            w.file("bin/busybox", 0o755, &read(&self.busybox)?)
                .map_err(cpio_err)?;
            w.symlink("bin/sh", "busybox").map_err(cpio_err)?;
            for module in &self.modules {
                let name = format!("lib/modules/{}", module_file_name(module));
                w.file(&name, 0o644, &read(module)?).map_err(cpio_err)?;
            }
            for (p, data, mode) in &self.files {
                w.file(p, *mode, data).map_err(cpio_err)?;
            }
            w.file("init", 0o755, self.init_text().as_bytes())
                .map_err(cpio_err)?;
            Ok(())
        };
        run()?;
        w.finish().map_err(cpio_err)?;
        Ok(path.to_path_buf())
    }
}

impl BusyboxInitramfs {
    /// The base folders plus every parent folder of the added files, parents first.
    fn directories(&self) -> Vec<String> {
        let mut dirs: Vec<String> = ["bin", "dev", "lib", "lib/modules", "proc", "sys", "tmp"]
            .map(String::from)
            .to_vec();
        for (path, _, _) in &self.files {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            for end in 1..parts.len() {
                let dir = parts[..end].join("/");
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        dirs
    }
}

/// The absolute library paths in `ldd` output (loader included, vDSO skipped).
fn shared_libraries(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|line| {
            let target = match line.split_once("=>") {
                Some((_, right)) => right,
                None => line,
            };
            target
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

fn module_file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare() -> BusyboxInitramfs {
        BusyboxInitramfs {
            busybox: PathBuf::from("/bin/busybox"),
            modules: vec![
                PathBuf::from("/m/nvme-core.ko"),
                PathBuf::from("/m/nvme.ko"),
            ],
            script: String::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn init_loads_modules_in_order_then_runs_the_script() {
        let init = bare().script("echo hello").init_text();
        let core = init.find("insmod /lib/modules/nvme-core.ko").unwrap();
        let nvme = init.find("insmod /lib/modules/nvme.ko").unwrap();
        let hello = init.find("echo hello").unwrap();
        let off = init.find("poweroff -f").unwrap();
        assert!(init.starts_with("#!/bin/busybox sh\n"));
        assert!(init.find(INIT_STARTED).unwrap() < core);
        assert!(core < nvme && nvme < hello && hello < off);
    }

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let ldd = "\tlinux-vdso.so.1 (0x00007f)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                   \tlibgone.so => not found\n";
        assert_eq!(
            shared_libraries(ldd),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn parents_of_added_files_become_directories() {
        let img = bare().file("/etc/ssh/sshd_config", "x", 0o600);
        let dirs = img.directories();
        let etc = dirs.iter().position(|d| d == "etc").unwrap();
        let ssh = dirs.iter().position(|d| d == "etc/ssh").unwrap();
        assert!(etc < ssh);
    }
}
