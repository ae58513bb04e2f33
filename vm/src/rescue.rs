//! The rescue machine of a cloud provider, as an initramfs: what a rented
//! server in its provider's rescue system looks like to landfall. Debian's
//! static busybox, the host's OpenSSH server (with the shared libraries `ldd`
//! names and the dynamic loader), the NIC and NVMe drivers of the kernel it
//! boots (the caller resolves [`MODULES`] and their dependencies for its
//! kernel), and fresh SSH keys made with `ssh-keygen`: a host key (its public
//! half goes into a `known_hosts`, so host-key checking stays on) and a client
//! key authorised for root and for the unprivileged [`PLAIN_USER`] (no sudo).
//!
//! The network is static (10.0.2.15/24 via 10.0.2.2, and fec0::15/64: what
//! qemu's user network expects) or DHCP (busybox udhcpc). The landfall agent is
//! NOT in the image: `landfall install` uploads it over SSH, as on a real target.
//!
//! `/init` prints [`INIT_STARTED`], loads the drivers, configures the network,
//! starts sshd (its log is copied to the console, lines prefixed `sshd: `),
//! prints [`SSHD_READY`] once port 22 listens (or [`SSHD_FAILED`]), then idles
//! as a rescue system does.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use landfall_formats::cpio::{ArchiveTree, CpioWriteError};

/// Printed by `/init` once the console works.
pub const INIT_STARTED: &str = "landfall-rescue: init started";
/// Printed on the console once sshd listens.
pub const SSHD_READY: &str = "landfall-rescue: sshd started";
/// Printed when sshd could not start (its log is on the console).
pub const SSHD_FAILED: &str = "landfall-rescue: sshd failed";
/// Printed (followed by the module's file name) when `insmod` fails.
pub const INSMOD_FAILED: &str = "landfall-rescue: insmod failed:";
/// The drivers the rescue system loads, in this order (each after its
/// dependencies): qemu's NICs and its NVMe controller.
pub const MODULES: &[&str] = &["virtio_pci", "virtio_net", "e1000", "nvme"];
/// The rescue system's address with [`RescueNetwork::Static`].
pub const STATIC_ADDRESS: &str = "10.0.2.15/24";
/// Its default gateway (qemu's user network).
pub const STATIC_GATEWAY: &str = "10.0.2.2";
/// A static IPv6 address it also has with [`RescueNetwork::Static`] (in qemu's
/// user-network prefix fec0::/64).
pub const STATIC_ADDRESS_V6: &str = "fec0::15/64";
/// The unprivileged user (no sudo in the image).
pub const PLAIN_USER: &str = "rescue";

const BUSYBOX: &str = "/bin/busybox";

/// The first lines of a busybox `/init` (this rescue system's, and the test
/// harness's small images'): busybox's applets installed as links, the
/// kernel's filesystems mounted.
pub const BUSYBOX_INIT_START: &str = "#!/bin/busybox sh\n\
     /bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin\n\
     /bin/busybox --install -s\n\
     export PATH=/sbin:/bin:/usr/sbin:/usr/bin\n\
     mount -t proc proc /proc\n\
     mount -t sysfs sysfs /sys\n\
     mount -t devtmpfs devtmpfs /dev\n";
const SSHD: &str = "/usr/sbin/sshd";
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// How the rescue system gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescueNetwork {
    /// 10.0.2.15/24, default route via 10.0.2.2, set with `ip`.
    Static,
    /// busybox `udhcpc` (qemu's user network answers with 10.0.2.15).
    Dhcp,
}

/// Building the rescue image failed.
#[derive(Debug, thiserror::Error)]
pub enum RescueError {
    #[error("{0} is missing: install the Debian package {1}")]
    Missing(String, &'static str),
    #[error("`{0}` failed: {1}")]
    Tool(String, String),
    #[error("Cannot write {0}")]
    Write(PathBuf, #[source] io::Error),
    #[error("Cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    #[error("Cannot pack the rescue initramfs")]
    Cpio(#[source] CpioWriteError),
}

/// A built rescue initramfs and the keys to reach it.
#[derive(Debug, Clone)]
pub struct Rescue {
    /// The initramfs (uncompressed newc).
    pub initrd: PathBuf,
    /// The client's private key (`ssh -i`), authorised for root and [`PLAIN_USER`].
    pub client_key: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA… comment`).
    pub host_public_key: String,
    dir: PathBuf,
}

/// A kernel module for the image: its file name (`nvme-core.ko`) and bytes.
pub type ModuleFile = (String, Vec<u8>);

fn run(cmd: &mut Command) -> Result<String, RescueError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| RescueError::Tool(shown.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(RescueError::Tool(
            shown,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read(p: &Path) -> Result<Vec<u8>, RescueError> {
    std::fs::read(p).map_err(|e| RescueError::Read(p.to_path_buf(), e))
}

/// Makes an ed25519 key pair at `path` (+ `.pub`) with `ssh-keygen`; returns
/// the public key line.
pub fn keygen(path: &Path, comment: &str) -> Result<String, RescueError> {
    if crate::host::find_in_path("ssh-keygen").is_none() {
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

/// Shell lines bringing every interface up (waiting up to 5 s for the first)
/// and giving the first one its address.
fn network_script(net: RescueNetwork) -> String {
    let mut s = String::from(
        "ip link set lo up\n\
         IF=\n\
         for i in $(seq 1 50); do for p in /sys/class/net/*; do n=${p##*/}; [ \"$n\" = lo ] || IF=${IF:-$n}; done; [ -n \"$IF\" ] && break; sleep 0.1; done\n\
         for p in /sys/class/net/*; do n=${p##*/}; [ \"$n\" = lo ] || ip link set \"$n\" up; done\n\
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

/// `/init` for the modules `modules` (file names under /lib/modules, in load order).
pub fn init_script(modules: &[String], net: RescueNetwork) -> String {
    let mut s = format!(
        "{BUSYBOX_INIT_START}\
         mkdir -p /dev/pts && mount -t devpts devpts /dev/pts\n\
         mount -t tmpfs -o mode=755,size=200m tmpfs /run\n\
         mkdir -p /run/sshd /var/empty /var/log\n\
         chmod 700 /root; chmod 1777 /tmp\n\
         chown -R 1000:1000 /home/{PLAIN_USER}\n\
         echo '{INIT_STARTED}'\n"
    );
    for m in modules {
        s += &format!("insmod /lib/modules/{m} || echo '{INSMOD_FAILED} {m}'\n");
    }
    s += &network_script(net);
    s += &format!(
        "touch /run/sshd.log\n\
         (tail -f /run/sshd.log | sed 's/^/sshd: /' > /dev/console) &\n\
         if {SSHD} -E /run/sshd.log; then\n\
           i=0; until netstat -tln | grep -q ':22 ' || [ $i -ge 120 ]; do sleep 0.5; i=$((i+1)); done\n\
           echo '{SSHD_READY}'\n\
         else echo '{SSHD_FAILED}'; fi\n\
         while :; do sleep 3600; done\n"
    );
    s
}

impl Rescue {
    /// Builds the initramfs (`<dir>/rescue-initrd`) and keys in `dir` with
    /// `modules`: [`MODULES`] and their dependencies for the kernel it boots,
    /// in load order.
    pub fn build(
        dir: &Path,
        modules: &[ModuleFile],
        net: RescueNetwork,
    ) -> Result<Rescue, RescueError> {
        for (path, package) in [
            (BUSYBOX, "busybox-static"),
            (SSHD, "openssh-server"),
            (LOADER, "libc6"),
        ] {
            if !Path::new(path).is_file() {
                return Err(RescueError::Missing(path.into(), package));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| RescueError::Write(dir.to_path_buf(), e))?;
        let host_key = dir.join("ssh_host_ed25519_key");
        let host_public_key = keygen(&host_key, "landfall-rescue-host")?;
        let client_key = dir.join("client_key");
        let client_pub = keygen(&client_key, "landfall-client")?;

        let mut t = ArchiveTree::new();
        let mut add = |path: &str, mode: u32, data: Vec<u8>| t.file(path, mode, data);
        let mut names = Vec::new();
        for (name, data) in modules {
            add(&format!("lib/modules/{name}"), 0o644, data.clone()).map_err(RescueError::Cpio)?;
            names.push(name.clone());
        }
        let mut files: Vec<(String, u32, Vec<u8>)> = vec![
            (BUSYBOX.into(), 0o755, read(Path::new(BUSYBOX))?),
            (SSHD.into(), 0o755, read(Path::new(SSHD))?),
            (LOADER.into(), 0o755, read(Path::new(LOADER))?),
        ];
        for lib in shared_libraries(SSHD)? {
            files.push((lib.display().to_string(), 0o755, read(&lib)?));
        }
        let text = |s: String| s.into_bytes();
        files.extend([
            (
                "etc/ssh/sshd_config".into(),
                0o644,
                text(SSHD_CONFIG.into()),
            ),
            (
                "etc/ssh/ssh_host_ed25519_key".into(),
                0o600,
                read(&host_key)?,
            ),
            // Both halves, as a real rescue system has them (`--copy-host-keys` carries both).
            (
                "etc/ssh/ssh_host_ed25519_key.pub".into(),
                0o644,
                text(format!("{host_public_key}\n")),
            ),
            (
                "etc/passwd".into(),
                0o644,
                text(format!(
                    "root:x:0:0:root:/root:/bin/sh\n\
                     sshd:x:100:65534::/run/sshd:/bin/false\n\
                     {PLAIN_USER}:x:1000:1000::/home/{PLAIN_USER}:/bin/sh\n"
                )),
            ),
            (
                "etc/group".into(),
                0o644,
                text(format!(
                    "root:x:0:\nnogroup:x:65534:\n{PLAIN_USER}:x:1000:\n"
                )),
            ),
            (
                "etc/shadow".into(),
                0o600,
                text(format!(
                    "root:*:19000:0:99999:7:::\n{PLAIN_USER}:*:19000:0:99999:7:::\n"
                )),
            ),
            (
                "root/.ssh/authorized_keys".into(),
                0o600,
                text(format!("{client_pub}\n")),
            ),
            (
                format!("home/{PLAIN_USER}/.ssh/authorized_keys"),
                0o644,
                text(format!("{client_pub}\n")),
            ),
            (
                "etc/udhcpc.script".into(),
                0o755,
                text(UDHCPC_SCRIPT.into()),
            ),
            ("init".into(), 0o755, text(init_script(&names, net))),
        ]);
        for (path, mode, data) in files {
            add(path.trim_start_matches('/'), mode, data).map_err(RescueError::Cpio)?;
        }
        t.symlink("bin/sh", "busybox").map_err(RescueError::Cpio)?;
        t.char_device("dev/console", 0o600, 5, 1)
            .map_err(RescueError::Cpio)?;
        let initrd = dir.join("rescue-initrd");
        let bytes = t.to_bytes().map_err(RescueError::Cpio)?;
        std::fs::write(&initrd, bytes).map_err(|e| RescueError::Write(initrd.clone(), e))?;
        Ok(Rescue {
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
    fn ldd_lines() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibfoo.so => not found\n";
        assert_eq!(
            parse_ldd(out),
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")]
        );
    }

    #[test]
    fn init_loads_drivers_in_order_before_the_network_and_sshd() {
        let s = init_script(
            &["nvme-core.ko".into(), "nvme.ko".into()],
            RescueNetwork::Static,
        );
        let started = s.find(INIT_STARTED).unwrap();
        let core = s.find("insmod /lib/modules/nvme-core.ko").unwrap();
        let nvme = s.find("insmod /lib/modules/nvme.ko").unwrap();
        let addr = s.find("ip addr add 10.0.2.15/24").unwrap();
        let sshd = s.find("/usr/sbin/sshd -E").unwrap();
        assert!(started < core && core < nvme && nvme < addr && addr < sshd);
        assert!(s.starts_with("#!/bin/busybox sh\n") && s.contains(SSHD_READY));
    }

    #[test]
    fn network_static_or_dhcp() {
        let s = network_script(RescueNetwork::Static);
        assert!(s.contains("default via 10.0.2.2") && s.contains("fec0::15/64"));
        let d = network_script(RescueNetwork::Dhcp);
        assert!(d.contains("udhcpc") && !d.contains("10.0.2.15"));
    }

    #[test]
    fn known_hosts_names_the_forwarded_port() {
        let r = Rescue {
            initrd: "i".into(),
            client_key: "k".into(),
            host_public_key: "ssh-ed25519 AAAAC3Nz comment".into(),
            dir: "d".into(),
        };
        assert_eq!(
            r.known_hosts_line(2222),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz"
        );
    }
}
