//! The rescue machine's initramfs: what a cloud provider's rescue system looks
//! like to landfall — Debian's static busybox, the host's OpenSSH server (with
//! the shared libraries `ldd` names and the dynamic loader), the NIC and NVMe
//! drivers of the kernel it boots, and fresh SSH keys: a host key (its public
//! half goes into a `known_hosts`, so host-key checking stays on) and a client
//! key authorised for root. The landfall agent is not in it: `landfall
//! install` uploads it over SSH, as on a real target.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use landfall_image::cpio::ArchiveTree;
use landfall_image::modules::{select_modules, ModuleIndex};

/// Printed on the console once sshd listens.
pub const SSHD_READY: &str = "landfall-rescue: sshd started";
/// Printed when sshd could not start (its log follows).
pub const SSHD_FAILED: &str = "landfall-rescue: sshd failed";

const BUSYBOX: &str = "/bin/busybox";
const SSHD: &str = "/usr/sbin/sshd";
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Drivers the rescue system loads: qemu's NICs and its NVMe controller.
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "e1000", "nvme"];

/// A built rescue initramfs and the keys that reach it.
#[derive(Debug, Clone)]
pub struct Rescue {
    pub initrd: PathBuf,
    /// `ssh -i` key, authorised for root.
    pub client_key: PathBuf,
    /// `ssh-ed25519 AAAA…`, the host key's public half.
    pub host_key: String,
}

impl Rescue {
    /// The `known_hosts` line for 127.0.0.1:`port`.
    pub fn known_hosts_line(&self, port: u16) -> String {
        let key: Vec<&str> = self.host_key.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{port} {}", key.join(" "))
    }
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<String> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("Cannot run ssh-keygen (install openssh-client)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let public = format!("{}.pub", path.display());
    Ok(std::fs::read_to_string(&public)
        .with_context(|| format!("Cannot read {public}"))?
        .trim()
        .to_string())
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` lines → the paths.
pub fn parse_ldd(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("=>")?;
            let path = rest.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("Cannot read {path}"))
}

const SSHD_CONFIG: &str = "Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
";

/// `/init`: mounts, drivers, a static address (what qemu's user network
/// expects), sshd; then idles as a rescue system does.
pub fn init_script(modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin\n\
         /bin/busybox --install -s\n\
         export PATH=/sbin:/bin:/usr/sbin:/usr/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mkdir -p /dev/pts && mount -t devpts devpts /dev/pts\n\
         mount -t tmpfs -o mode=755,size=200m tmpfs /run\n\
         mkdir -p /run/sshd /var/empty /var/log\n\
         chmod 700 /root; chmod 1777 /tmp\n\
         echo 'landfall-rescue: init started'\n",
    );
    for m in modules {
        s += &format!("insmod /lib/modules/{m} || echo 'landfall-rescue: insmod failed: {m}'\n");
    }
    s += "ip link set lo up\n\
          IF=\n\
          for i in $(seq 1 50); do for p in /sys/class/net/*; do n=${p##*/}; [ \"$n\" = lo ] || IF=${IF:-$n}; done; [ -n \"$IF\" ] && break; sleep 0.1; done\n\
          ip link set \"$IF\" up\n\
          ip addr add 10.0.2.15/24 dev \"$IF\"\n\
          ip route add default via 10.0.2.2 dev \"$IF\"\n\
          echo 'nameserver 10.0.2.3' > /etc/resolv.conf\n\
          echo \"landfall-rescue: $IF is 10.0.2.15/24\"\n\
          touch /run/sshd.log\n";
    s += &format!(
        "if {SSHD} -E /run/sshd.log; then\n\
           i=0; until netstat -tln | grep -q ':22 ' || [ $i -ge 120 ]; do sleep 0.5; i=$((i+1)); done\n\
           echo '{SSHD_READY}'\n\
         else echo '{SSHD_FAILED}'; cat /run/sshd.log; fi\n\
         while :; do sleep 3600; done\n"
    );
    s
}

/// Builds the initramfs and keys in `dir` for the kernel whose modules are in `modules_dir`.
pub fn build(modules_dir: &Path, dir: &Path) -> anyhow::Result<Rescue> {
    for (path, package) in [
        (BUSYBOX, "busybox-static"),
        (SSHD, "openssh-server"),
        (LOADER, "libc6"),
    ] {
        if !Path::new(path).is_file() {
            bail!("The rescue VM needs {path}: install the Debian package {package}");
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    let host_key_path = dir.join("ssh_host_ed25519_key");
    let host_key = keygen(&host_key_path, "landfall-rescue-host")?;
    let client_key = dir.join("client_key");
    let client_pub = keygen(&client_key, "landfall-vm-client")?;

    let index = ModuleIndex::scan(modules_dir).with_context(|| {
        format!(
            "Cannot read the kernel modules in {}",
            modules_dir.display()
        )
    })?;
    let selection =
        select_modules(&index, MODULES).context("Cannot resolve the NIC and NVMe drivers")?;

    let mut t = ArchiveTree::new();
    let mut names = Vec::new();
    for m in &selection.modules {
        let name = format!("{}.ko", m.name());
        t.file(&format!("lib/modules/{name}"), 0o644, m.module.data.clone())?;
        names.push(name);
    }
    t.char_device("dev/console", 0o600, 5, 1)?;
    t.file("bin/busybox", 0o755, read(BUSYBOX)?)?;
    t.symlink("bin/sh", "busybox")?;
    t.file(SSHD, 0o755, read(SSHD)?)?;
    t.file(LOADER, 0o755, read(LOADER)?)?;
    let ldd = Command::new("ldd")
        .arg(SSHD)
        .output()
        .context("Cannot run ldd (install libc-bin)")?;
    for lib in parse_ldd(&String::from_utf8_lossy(&ldd.stdout)) {
        t.file(&lib, 0o755, read(&lib)?)?;
    }
    t.file("etc/ssh/sshd_config", 0o644, SSHD_CONFIG.into())?;
    t.file(
        "etc/ssh/ssh_host_ed25519_key",
        0o600,
        std::fs::read(&host_key_path)?,
    )?;
    // Both halves, as a real rescue system has them (`--copy-host-keys` carries both).
    t.file(
        "etc/ssh/ssh_host_ed25519_key.pub",
        0o644,
        format!("{host_key}\n").into_bytes(),
    )?;
    t.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n".to_vec(),
    )?;
    t.file(
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
    )?;
    t.file("etc/shadow", 0o600, b"root:*:19000:0:99999:7:::\n".to_vec())?;
    t.file(
        "root/.ssh/authorized_keys",
        0o600,
        format!("{client_pub}\n").into_bytes(),
    )?;
    t.file("init", 0o755, init_script(&names).into_bytes())?;
    let initrd = dir.join("rescue-initrd");
    std::fs::write(&initrd, t.to_bytes()?)
        .with_context(|| format!("Cannot write {}", initrd.display()))?;
    Ok(Rescue {
        initrd,
        client_key,
        host_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibfoo.so => not found\n";
        assert_eq!(parse_ldd(out), ["/lib/x86_64-linux-gnu/libc.so.6"]);
    }

    #[test]
    fn init_loads_drivers_in_order_before_sshd() {
        let s = init_script(&["nvme-core.ko".into(), "nvme.ko".into()]);
        let core = s.find("insmod /lib/modules/nvme-core.ko").unwrap();
        let nvme = s.find("insmod /lib/modules/nvme.ko").unwrap();
        let sshd = s.find("/usr/sbin/sshd -E").unwrap();
        assert!(core < nvme && nvme < sshd);
        assert!(s.contains(SSHD_READY) && s.contains("10.0.2.15/24"));
    }

    #[test]
    fn known_hosts_names_the_forwarded_port() {
        let r = Rescue {
            initrd: "i".into(),
            client_key: "k".into(),
            host_key: "ssh-ed25519 AAAAC3Nz comment".into(),
        };
        assert_eq!(
            r.known_hosts_line(2222),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz"
        );
    }
}
