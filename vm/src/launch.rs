//! From a [`VmBuilder`] to a qemu command for one folder: the accelerator
//! resolved, the OVMF variable store in place, the QMP socket named and the
//! host ports of the forwards chosen. Spawning and watching qemu stays with
//! the caller, which knows how it wants the process kept (the test harness
//! registers it to be killed on panic; the controller leaves it in its
//! process group so Ctrl-C stops both).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::accel::Accel;
use crate::builder::{Firmware, VmBuilder, VmPaths};
use crate::host::{self, io_err, HostError};

/// A VM ready to be spawned.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The qemu binary.
    pub qemu: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The accelerator it runs with (`Kvm` or `Tcg`).
    pub accel: Accel,
    /// The firmware files and QMP socket name the arguments use.
    pub paths: VmPaths,
    /// `(guest port, host port)` of every forward, NIC by NIC, in order.
    pub forwards: Vec<(u16, u16)>,
    /// Whether some host port was chosen here (a port taken meanwhile by
    /// another program is worth a retry with new ones).
    pub chose_ports: bool,
}

impl VmBuilder {
    /// Resolves what the command line needs for a VM whose files live in
    /// `dir`: qemu, the accelerator (probed once per process for `Auto`),
    /// OVMF with its variable store (`<dir>/<name>-OVMF_VARS.fd` unless
    /// [`VmBuilder::ovmf_with_vars`] named one; the template is copied only
    /// when the file does not exist yet) and a free host port for each forward
    /// without a fixed one. Called again, it chooses new ports.
    pub fn prepare(&self, dir: &Path) -> Result<Launch, HostError> {
        let qemu = host::qemu_binary()?;
        let accel = self.accel.resolve();
        let mut paths = VmPaths {
            ovmf_vars: None,
            ovmf_code: None,
            qmp_socket: qmp_socket_name(),
        };
        if self.firmware == Firmware::Uefi {
            let ovmf = host::ovmf()?;
            let vars = self
                .ovmf_vars
                .clone()
                .unwrap_or_else(|| dir.join(format!("{}-OVMF_VARS.fd", self.name)));
            if !vars.exists() {
                fs::copy(&ovmf.vars_template, &vars).map_err(io_err(format!(
                    "copy the OVMF variables to {}",
                    vars.display()
                )))?;
            }
            paths.ovmf_code = Some(ovmf.code);
            paths.ovmf_vars = Some(vars);
        }
        let ports: Vec<Vec<u16>> = self
            .nics
            .iter()
            .map(|nic| {
                nic.forwards()
                    .iter()
                    .map(|f| f.host.map_or_else(host::free_port, Ok))
                    .collect()
            })
            .collect::<Result<_, _>>()?;
        let forwards = self
            .nics
            .iter()
            .zip(&ports)
            .flat_map(|(nic, hosts)| nic.forwards().iter().zip(hosts).map(|(f, h)| (f.guest, *h)))
            .collect();
        let chose_ports = self
            .nics
            .iter()
            .any(|n| n.forwards().iter().any(|f| f.host.is_none()));
        Ok(Launch {
            args: self.args(accel, &paths, &ports),
            qemu,
            accel,
            paths,
            forwards,
            chose_ports,
        })
    }
}

impl Launch {
    /// The host port forwarded to `guest_port` (on 127.0.0.1).
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
    }

    /// qemu and its arguments, stdio left to the caller.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.qemu);
        c.args(&self.args);
        c
    }

    /// The command line for a POSIX shell (saved beside a VM, re-runnable by hand).
    pub fn command_line(&self) -> String {
        std::iter::once(self.qemu.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A unique abstract-namespace name for a VM's QMP socket.
fn qmp_socket_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("landfall-qmp-{}-{n}", std::process::id())
}

/// Quotes `arg` for a POSIX shell when needed.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Nic;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("-m"), "-m");
        assert_eq!(
            shell_quote("console=ttyS0 panic=-1"),
            "'console=ttyS0 panic=-1'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn forwards_get_host_ports_in_order() {
        // A fake qemu: prepare only looks it up.
        std::env::set_var("LANDFALL_QEMU", "/nonexistent/qemu");
        let b = VmBuilder::new("t")
            .accel(Accel::Tcg)
            .nic(Nic::user().forward(22).forward_fixed(2222, 7443));
        let l = b.prepare(Path::new("/nonexistent")).unwrap();
        let ssh = l.host_port(22).unwrap();
        assert_eq!(l.host_port(7443), Some(2222));
        assert!(l.chose_ports && ssh != 2222);
        assert!(
            l.command_line().contains(&format!(
                "hostfwd=tcp:127.0.0.1:{ssh}-:22,hostfwd=tcp:127.0.0.1:2222-:7443"
            )),
            "{}",
            l.command_line()
        );
        assert_eq!(l.host_port(80), None);
    }
}
