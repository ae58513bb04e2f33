//! The "rescue" machine of a cloud provider, as a test fixture: the Debian
//! kernel with a busybox + OpenSSH-server initramfs, an NVMe disk, 256 MiB of
//! RAM, reachable only through SSH on a forwarded host port (and the agent's
//! port 7443 forwarded too, for after the kexec).
//!
//! Debian's `sshd` is dynamically linked: the binary, the shared libraries
//! `ldd` lists and the dynamic loader are copied into the initramfs. Host keys
//! and a client key pair are made with `ssh-keygen` at build time; the host's
//! public key is kept so tests write a real `known_hosts` (checking stays on).
//! Users: `root` and an unprivileged `rescue` (no sudo), both with the test
//! key. The network is static (10.0.2.15/24 via 10.0.2.2, what qemu's user
//! network expects) or DHCP (busybox udhcpc). The landfall agent is NOT in the
//! image: tests upload it over SSH, as on a real target.
//!
//! ```no_run
//! use landfall_tests::{debian_kernel, sparse_image, TestDir};
//! use landfall_tests::rescue::{RescueImage, RescueNetwork, SSHD_READY};
//! let kernel = debian_kernel()?;
//! let dir = TestDir::new("rescue")?;
//! let image = RescueImage::build(&kernel, dir.path(), RescueNetwork::Static)?;
//! let disk = sparse_image(&dir.join("nvme.img"), 1 << 30)?;
//! let mut vm = image.vm_builder(&kernel, &disk).start_in(dir)?;
//! vm.wait_for(SSHD_READY, std::time::Duration::from_secs(120))?;
//! let port = vm.host_port(22).unwrap();
//! let known_hosts = image.write_known_hosts(port)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures::{DebianKernel, FixtureError};
use crate::initramfs::{BusyboxInitramfs, InitramfsError};
use crate::{Disk, Nic, VmBuilder};

/// Printed on the console once sshd runs.
pub const SSHD_READY: &str = "landfall-rescue: sshd started";
/// Printed when sshd could not start (its log follows).
pub const SSHD_FAILED: &str = "landfall-rescue: sshd failed";
/// The agent's port, forwarded for after the kexec.
pub const AGENT_PORT: u16 = 7443;
/// The rescue system's address with [`RescueNetwork::Static`].
pub const STATIC_ADDRESS: &str = "10.0.2.15/24";
pub const STATIC_GATEWAY: &str = "10.0.2.2";
/// A static IPv6 address the rescue system also has with [`RescueNetwork::Static`]
/// (in qemu's user-network prefix fec0::/64).
pub const STATIC_ADDRESS_V6: &str = "fec0::15/64";
/// The unprivileged user (no sudo in the image).
pub const PLAIN_USER: &str = "rescue";

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const SSHD: &str = "/usr/sbin/sshd";

/// How the rescue system gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescueNetwork {
    /// 10.0.2.15/24, default route via 10.0.2.2, set with `ip`.
    Static,
    /// busybox `udhcpc` (qemu's user network answers with 10.0.2.15).
    Dhcp,
}

/// Building the rescue image failed.
#[derive(thiserror::Error)]
pub enum RescueError {
    #[error("{0} is missing: install the Debian package {1}")]
    Missing(String, &'static str),
    #[error("`{0}` failed: {1}")]
    Tool(String, String),
    #[error("Cannot write {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("Cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("Cannot build the initramfs")]
    Initramfs(#[source] InitramfsError),
    #[error("Cannot use a fixture")]
    Fixture(#[source] FixtureError),
}
crate::debug_as_display!(RescueError);

/// A built rescue initramfs and the keys to reach it.
#[derive(Debug, Clone)]
pub struct RescueImage {
    /// The initramfs (uncompressed newc).
    pub initrd: PathBuf,
    /// The client's private key (`ssh -i`), authorised for root and `rescue`.
    pub client_key: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA… comment`).
    pub host_public_key: String,
    dir: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String, RescueError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| RescueError::Tool(shown.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(RescueError::Tool(
            shown,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read(p: &Path) -> Result<Vec<u8>, RescueError> {
    std::fs::read(p).map_err(|e| RescueError::Read(p.to_path_buf(), e))
}

/// Makes an ed25519 key pair at `path` (+ `.pub`) with `ssh-keygen`.
pub fn keygen(path: &Path, comment: &str) -> Result<String, RescueError> {
    if crate::fixtures::find_in_path("ssh-keygen").is_none() {
        return Err(RescueError::Missing("ssh-keygen".into(), "openssh-client"));
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))?;
    let pubkey = read(&PathBuf::from(format!("{}.pub", path.display())))?;
    Ok(String::from_utf8_lossy(&pubkey).trim().to_string())
}

/// The shared libraries `ldd` lists for `binary` (resolved paths), without the loader.
pub fn shared_libraries(binary: &str) -> Result<Vec<PathBuf>, RescueError> {
    let out = run(Command::new("ldd").arg(binary))?;
    Ok(parse_ldd(&out))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` lines → paths.
pub fn parse_ldd(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("=>")?;
            let path = rest.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

const SSHD_CONFIG: &str = "Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
LogLevel VERBOSE
Subsystem sftp internal-sftp
";

fn network_script(net: RescueNetwork) -> String {
    let mut s = String::from(
        "ip link set lo up\n\
         IF=\n\
         for p in /sys/class/net/*; do n=${p##*/}; [ \"$n\" = lo ] && continue; ip link set \"$n\" up; IF=${IF:-$n}; done\n\
         echo \"landfall-rescue: interface $IF\"\n",
    );
    match net {
        RescueNetwork::Static => s.push_str(&format!(
            "ip addr add {STATIC_ADDRESS} dev \"$IF\"\n\
             ip route add default via {STATIC_GATEWAY} dev \"$IF\"\n\
             ip addr add {STATIC_ADDRESS_V6} dev \"$IF\"\n\
             echo 'nameserver 10.0.2.3' > /etc/resolv.conf\n"
        )),
        RescueNetwork::Dhcp => s.push_str("udhcpc -i \"$IF\" -s /etc/udhcpc.script -t 10 -n\n"),
    }
    s.push_str("ip addr show\n");
    s
}

const UDHCPC_SCRIPT: &str = "#!/bin/sh
case \"$1\" in
  bound|renew)
    ip addr flush dev \"$interface\"
    ip addr add \"$ip/${mask:-24}\" dev \"$interface\" valid_lft \"${lease:-3600}\" preferred_lft \"${lease:-3600}\"
    for r in $router; do ip route add default via \"$r\" dev \"$interface\"; done
    : > /etc/resolv.conf
    for d in $dns; do echo \"nameserver $d\" >> /etc/resolv.conf; done
    ;;
esac
";

impl RescueImage {
    /// Builds the initramfs and keys in `dir`.
    pub fn build(
        kernel: &DebianKernel,
        dir: &Path,
        net: RescueNetwork,
    ) -> Result<RescueImage, RescueError> {
        if !Path::new(SSHD).is_file() {
            return Err(RescueError::Missing(SSHD.into(), "openssh-server"));
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let host_public_key = keygen(&host_key, "landfall-rescue-host")?;
        let client_key = dir.join("client_key");
        let client_pub = keygen(&client_key, "landfall-test-client")?;

        let mut img = BusyboxInitramfs::new()
            .map_err(RescueError::Initramfs)?
            .modules(kernel, &["virtio_pci", "virtio_net", "e1000", "nvme"])
            .map_err(RescueError::Initramfs)?;
        img = img.file(SSHD, read(Path::new(SSHD))?, 0o755);
        img = img.file(LOADER, read(Path::new(LOADER))?, 0o755);
        for lib in shared_libraries(SSHD)? {
            let data = read(&lib)?;
            img = img.file(&lib.display().to_string(), data, 0o755);
        }
        img = img
            .file("/etc/ssh/sshd_config", SSHD_CONFIG, 0o644)
            .file("/etc/ssh/ssh_host_ed25519_key", read(&host_key)?, 0o600)
            .file(
                "/etc/ssh/ssh_host_ed25519_key.pub",
                format!("{host_public_key}\n"),
                0o644,
            )
            .file(
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/bin/sh\n\
                     sshd:x:100:65534::/run/sshd:/bin/false\n\
                     {PLAIN_USER}:x:1000:1000::/home/{PLAIN_USER}:/bin/sh\n"
                ),
                0o644,
            )
            .file(
                "/etc/group",
                format!("root:x:0:\nnogroup:x:65534:\n{PLAIN_USER}:x:1000:\n"),
                0o644,
            )
            .file(
                "/etc/shadow",
                format!("root:*:19000:0:99999:7:::\n{PLAIN_USER}:*:19000:0:99999:7:::\n"),
                0o600,
            )
            .file("/root/.ssh/authorized_keys", format!("{client_pub}\n"), 0o600)
            .file(
                &format!("/home/{PLAIN_USER}/.ssh/authorized_keys"),
                format!("{client_pub}\n"),
                0o644,
            )
            .file("/etc/udhcpc.script", UDHCPC_SCRIPT, 0o755)
            .script(&format!(
                "mkdir -p /dev/pts /run /var/empty /var/log\n\
                 mount -t devpts devpts /dev/pts\n\
                 mount -t tmpfs -o mode=755,size=200m tmpfs /run\n\
                 mkdir -p /run/sshd\n\
                 chmod 700 /root\n\
                 chmod 1777 /tmp\n\
                 chown -R 1000:1000 /home/{PLAIN_USER}\n\
                 {}\
                 touch /run/sshd.log\n\
                 (tail -f /run/sshd.log | sed 's/^/sshd: /' > /dev/console) &\n\
                 if {SSHD} -E /run/sshd.log; then\n\
                   i=0; until netstat -tln | grep -q ':22 ' || [ $i -ge 120 ]; do sleep 0.5; i=$((i+1)); done\n\
                   echo '{SSHD_READY}'\n\
                 else echo '{SSHD_FAILED}'; fi\n\
                 while :; do sleep 3600; done\n",
                network_script(net)
            ));
        let initrd = img
            .write(&dir.join("rescue-initrd"))
            .map_err(RescueError::Initramfs)?;
        Ok(RescueImage {
            initrd,
            client_key,
            host_public_key,
            dir: dir.to_path_buf(),
        })
    }

    /// The `known_hosts` line for the rescue machine on 127.0.0.1:`port`.
    pub fn known_hosts_line(&self, port: u16) -> String {
        let key: Vec<&str> = self.host_public_key.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{port} {}", key.join(" "))
    }

    /// Writes `known_hosts` (in the image's folder) for 127.0.0.1:`port`; returns its path.
    pub fn write_known_hosts(&self, port: u16) -> Result<PathBuf, RescueError> {
        let p = self.dir.join("known_hosts");
        std::fs::write(&p, format!("{}\n", self.known_hosts_line(port)))
            .map_err(|e| RescueError::Write(p.clone(), e))?;
        Ok(p)
    }

    /// The VM: the Debian kernel with this initramfs, 256 MiB, an NVMe disk
    /// with serial `landfall-test-0`, SSH (22) and the agent port (7443)
    /// forwarded, and reboots allowed (a kexec must not end qemu).
    pub fn vm_builder(&self, kernel: &DebianKernel, disk: &Path) -> VmBuilder {
        VmBuilder::new("rescue")
            .kernel(
                &kernel.image,
                &format!("{} {}", crate::KERNEL_APPEND, crate::NVME_TIMEOUT_APPEND),
            )
            .initrd(self.initrd.clone())
            .memory_mib(256)
            .disk(Disk::nvme(disk.to_path_buf()).serial("landfall-test-0"))
            .nic(Nic::user().forward(22).forward(AGENT_PORT))
            .allow_reboot()
    }

    /// `ssh` arguments (before the command) to log in as `user` on 127.0.0.1:`port`.
    pub fn ssh_args(&self, user: &str, port: u16, known_hosts: &Path) -> Vec<String> {
        vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-p".into(),
            port.to_string(),
            "-i".into(),
            self.client_key.display().to_string(),
            "-T".into(),
            format!("{user}@127.0.0.1"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_parsing() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibfoo.so => not found\n";
        assert_eq!(
            parse_ldd(out),
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")]
        );
    }

    #[test]
    fn static_network_script() {
        let s = network_script(RescueNetwork::Static);
        assert!(s.contains("ip addr add 10.0.2.15/24"));
        assert!(s.contains("default via 10.0.2.2"));
        assert!(network_script(RescueNetwork::Dhcp).contains("udhcpc"));
    }
}
