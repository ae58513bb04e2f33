//! The agent's RAM image for end-to-end tests, built once and shared.
//!
//! `landfall image build` (zstd -19 over ~25 MiB) takes a while under load, and
//! every VM test used to run it. [`cached_image`] builds it once per agent
//! binary and kernel into `$LANDFALL_TEST_DIR/image-cache/<key>` (other test
//! processes find it there; two racing builders each build into a private
//! folder and the first rename wins). [`agent_image`] then gives a test its
//! own copy whose initrd has the test's session appended — exactly what
//! `landfall image build --tls` writes, with the library the controller uses.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use landfall_image::{append_archive, session_cpio, SessionFile};
use landfall_proto::tlsnames::{AGENT_CERT, AGENT_KEY, CA_CERT, IMAGE_TLS_DIR};

use crate::bins::{agent_static_bin, landfall_ok};
use crate::fixtures::DebianKernel;
use crate::StartVm;

fn cache_root() -> PathBuf {
    std::env::var_os("LANDFALL_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("landfall-tests"))
        .join("image-cache")
}

/// What the image depends on: the agent binary and the kernel (paths, sizes, mtimes).
fn key(kernel: &DebianKernel) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [
        agent_static_bin(),
        kernel.image.clone(),
        kernel.modules.clone(),
    ] {
        p.hash(&mut h);
        if let Ok(m) = std::fs::metadata(&p) {
            m.len().hash(&mut h);
            if let Ok(t) = m.modified() {
                t.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .hash(&mut h);
            }
        }
    }
    format!("{:016x}", h.finish())
}

/// The image (bzImage + initrd, no session) for this agent binary and `kernel`.
pub fn cached_image(kernel: &DebianKernel) -> PathBuf {
    let dir = cache_root().join(key(kernel));
    if dir.join("initrd").is_file() {
        return dir;
    }
    std::fs::create_dir_all(cache_root()).expect("create the image cache");
    let tmp = tempfile::Builder::new()
        .prefix("building-")
        .tempdir_in(cache_root())
        .expect("a private build folder");
    let out = tmp.path().join("image");
    landfall_ok(&[
        "image",
        "build",
        "--kernel",
        kernel.image.to_str().unwrap(),
        "--modules",
        kernel.modules.to_str().unwrap(),
        "--agent",
        agent_static_bin().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // Another process may have won the race: then its image is as good as ours.
    let _ = std::fs::rename(&out, &dir);
    assert!(
        dir.join("initrd").is_file(),
        "no image in {}",
        dir.display()
    );
    dir
}

/// A session (`landfall certs init`) in `dir/session`; returns its path.
pub fn new_session(dir: &Path) -> PathBuf {
    let session = dir.join("session");
    landfall_ok(&["certs", "init", "--dir", session.to_str().unwrap()]);
    session
}

/// `dir/image/{bzImage,initrd}`: the cached image with `session`'s agent files appended.
pub fn agent_image(kernel: &DebianKernel, dir: &Path, session: &Path) -> PathBuf {
    let cached = cached_image(kernel);
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::copy(cached.join("bzImage"), image.join("bzImage")).unwrap();
    let mut initrd = std::fs::read(cached.join("initrd")).unwrap();
    let files: Vec<SessionFile> = [CA_CERT, AGENT_CERT, AGENT_KEY]
        .iter()
        .map(|name| SessionFile {
            path: format!("{IMAGE_TLS_DIR}/{name}"),
            mode: if name.ends_with(".key") { 0o600 } else { 0o644 },
            data: std::fs::read(session.join(name)).expect("a session file"),
        })
        .collect();
    append_archive(&mut initrd, &session_cpio(&files).unwrap());
    std::fs::write(image.join("initrd"), initrd).unwrap();
    image
}

/// How [`start_agent_vm`] boots the agent: its folder's label, the NVMe disk's
/// size and serial, the RAM, UEFI or direct boot, and whether a guest reboot
/// restarts the VM (default: it ends qemu).
pub struct AgentVmSpec {
    label: String,
    serial: String,
    disk_bytes: u64,
    memory_mib: u32,
    ovmf: bool,
    allow_reboot: bool,
    guest_forwards: Vec<(String, u16)>,
    host_dns: bool,
}

impl AgentVmSpec {
    /// 256 MiB, a 2 GiB NVMe disk with serial `landfall-test-0`, direct boot.
    pub fn new(label: &str) -> AgentVmSpec {
        AgentVmSpec {
            label: label.into(),
            serial: "landfall-test-0".into(),
            disk_bytes: 2 << 30,
            memory_mib: 256,
            ovmf: false,
            allow_reboot: false,
            guest_forwards: Vec::new(),
            host_dns: false,
        }
    }
    pub fn serial(mut self, serial: &str) -> AgentVmSpec {
        self.serial = serial.into();
        self
    }
    pub fn disk_bytes(mut self, bytes: u64) -> AgentVmSpec {
        self.disk_bytes = bytes;
        self
    }
    pub fn memory_mib(mut self, mib: u32) -> AgentVmSpec {
        self.memory_mib = mib;
        self
    }
    /// UEFI (OVMF) with the agent's kernel booted directly.
    pub fn ovmf(mut self) -> AgentVmSpec {
        self.ovmf = true;
        self
    }
    pub fn allow_reboot(mut self) -> AgentVmSpec {
        self.allow_reboot = true;
        self
    }
    /// The guest reaches the host's `127.0.0.1:host_port` at `addr` (see
    /// [`crate::Nic::guest_forward`]).
    pub fn guest_forward(mut self, addr: &str, host_port: u16) -> AgentVmSpec {
        self.guest_forwards.push((addr.into(), host_port));
        self
    }
    /// The guest resolves names through the host's nameserver ([`crate::Nic::host_dns`]).
    pub fn host_dns(mut self) -> AgentVmSpec {
        self.host_dns = true;
        self
    }
}

/// A running agent VM: the test's folder, the agent's forwarded address, the
/// session folder for `--tls`, and the disk image.
pub struct AgentVm {
    pub vm: crate::Vm,
    pub dir: PathBuf,
    pub addr: String,
    pub tls: String,
    pub disk: PathBuf,
}

/// A session, the agent image with it, the disk, and the VM with the agent's
/// port 7443 forwarded; returns once the agent has its DHCP lease.
pub fn start_agent_vm(spec: AgentVmSpec) -> AgentVm {
    let kernel = crate::debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = crate::TestDir::new(&spec.label).unwrap();
    let dir = tdir.path().to_path_buf();
    let session = new_session(&dir);
    let image = agent_image(&kernel, &dir, &session);
    let disk = crate::sparse_image(&dir.join("nvme.img"), spec.disk_bytes).unwrap();
    let mut builder = crate::VmBuilder::new("agent");
    if spec.ovmf {
        builder = builder.ovmf();
    }
    if spec.allow_reboot {
        builder = builder.allow_reboot();
    }
    let mut nic = crate::Nic::user().forward(7443);
    for (addr, port) in &spec.guest_forwards {
        nic = nic.guest_forward(addr, *port);
    }
    if spec.host_dns {
        nic = nic.host_dns();
    }
    let mut vm = builder
        .kernel(
            image.join("bzImage"),
            &format!("console=ttyS0 panic=-1 {}", crate::NVME_TIMEOUT_APPEND),
        )
        .initrd(image.join("initrd"))
        .memory_mib(spec.memory_mib)
        .disk(crate::Disk::nvme(disk.clone()).serial(&spec.serial))
        .nic(nic)
        .start_in(tdir)
        .unwrap();
    let addr = vm.forwarded_addr(7443).unwrap().to_string();
    vm.wait_for("DHCP lease", std::time::Duration::from_secs(240))
        .unwrap();
    AgentVm {
        vm,
        dir,
        addr,
        tls: session.display().to_string(),
        disk,
    }
}

/// Boots an installed disk by itself under OVMF (512 MiB, NVMe with `serial`)
/// and asserts the office example came up: stage 2 prints its toplevel, then
/// the verdict of checking its own store must be OK.
pub fn assert_installed_disk_boots(
    tdir: crate::TestDir,
    disk: &Path,
    serial: &str,
    toplevel: &str,
) -> crate::Vm {
    let mut vm = crate::VmBuilder::new("installed")
        .ovmf()
        .memory_mib(512)
        .disk(crate::Disk::nvme(disk.to_path_buf()).serial(serial))
        .start_in(tdir)
        .unwrap();
    vm.wait_for(
        format!("LANDFALL-STAGE2: {toplevel}").as_str(),
        std::time::Duration::from_secs(400),
    )
    .unwrap();
    let verdict = vm
        .wait_for_any(
            ["LANDFALL-STORE-CHECK: OK", "LANDFALL-STORE-CHECK: FAILED"],
            std::time::Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(verdict.text, "LANDFALL-STORE-CHECK: OK");
    vm
}
