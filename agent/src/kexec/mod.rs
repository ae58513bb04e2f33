//! `landfall-agent kexec`: from whatever Linux the target runs, boot the RAM
//! image in place, keeping the machine reachable.
//!
//! Steps: capture the network (netlink + resolv.conf, and the proxy variables
//! of this environment or /etc/environment) → build a copy of the
//! initrd in memory (memfd) with an appended newc archive holding the session's
//! agent files and `/etc/landfall/network.json` → kexec_file_load → sync and
//! reboot(LINUX_REBOOT_CMD_KEXEC). When the syscall route fails and the target
//! has kexec-tools, `kexec -l` is tried before giving up.
//!
//! The session files (CA certificate, agent certificate and key) come on
//! stdin (`--session-stdin`, see `landfall_proto::session_stream`): they never
//! touch the target's filesystem, only the in-memory initrd, which the kexec
//! replaces.
//!
//! With `--copy-host-keys`, the running system's SSH host keys
//! (`/etc/ssh/ssh_host_*`, see [`crate::files::host_keys`]) go into the same
//! archive at `/etc/landfall/host-keys/`, so the agent can install them into
//! the new system; like the session, they only ever sit in memory.
//!
//! The kernel and the initrd are opened without following links and must be
//! owned by root (or the caller) and writable by nobody else; with
//! `--kernel-sha256`/`--initrd-sha256` (the controller always passes them)
//! their SHA-256, computed over the open files, must match (see [`inputs`]).

pub mod cmdline;
pub mod fallback;
pub mod inputs;
pub mod refusal;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use landfall_proto::session_stream::{self, SessionStreamError, MAX_STREAM_BYTES};
use landfall_proto::tlsnames::{AGENT_KEY, IMAGE_TLS_DIR};

use crate::files::host_keys::{self, IMAGE_HOST_KEYS_DIR};
use crate::net::config::{NetworkConfig, IMAGE_NETWORK_CONFIG};
use crate::net::proxy::ProxySettings;
use crate::net::{capture as netcapture, dump as netdump};
use crate::sys::kexec as sys;
use landfall_formats::{session_cpio, SessionFile};
pub use refusal::LoadRefusal;

/// What `landfall-agent kexec` was asked to do.
#[derive(Debug, Clone)]
pub struct KexecOptions {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The expected SHA-256 of the kernel and the initrd.
    pub kernel_sha256: Option<[u8; 32]>,
    pub initrd_sha256: Option<[u8; 32]>,
    pub append: Option<String>,
    /// The session stream (`landfall_proto::session_stream`), read from stdin.
    pub session: Option<Vec<u8>>,
    /// Capture the SSH host keys of this folder into the image
    /// (`--copy-host-keys`: `/etc/ssh`).
    pub host_keys_from: Option<PathBuf>,
    pub dry_run: bool,
    /// After the load, return at once and reboot into the image from a
    /// detached child a second later, so a caller over SSH sees the result.
    pub detach: bool,
}

/// Why the kexec did not happen.
#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    #[error("The kernel was refused")]
    Kernel(#[source] inputs::InputError),
    #[error("The initrd was refused")]
    Initrd(#[source] inputs::InputError),
    #[error("Cannot read the session from stdin")]
    ReadSession(#[source] std::io::Error),
    #[error("The session on stdin is more than {MAX_STREAM_BYTES} bytes")]
    SessionTooLarge,
    #[error("The session on stdin is not valid")]
    Session(#[source] SessionStreamError),
    #[error("Cannot capture the SSH host keys (--copy-host-keys)")]
    HostKeys(#[source] crate::files::host_keys::HostKeyError),
    #[error("Cannot read the network configuration")]
    CaptureNetwork(#[source] netdump::NetDumpError),
    #[error("Cannot write the session archive")]
    Archive(#[source] landfall_formats::cpio::CpioWriteError),
    #[error("Cannot use the kernel command line")]
    Cmdline(#[source] sys::CmdlineError),
    #[error("Cannot make the in-memory initrd")]
    Memfd(#[source] std::io::Error),
    #[error("kexec refused{}", fallback_note(.fallback))]
    Refused {
        #[source]
        refusal: LoadRefusal,
        /// What the kexec-tools fallback said, when it was tried.
        fallback: Option<String>,
    },
    #[error("The image is loaded but reboot(LINUX_REBOOT_CMD_KEXEC) failed: {0}")]
    Reboot(nix::errno::Errno),
}

fn fallback_note(f: &Option<String>) -> String {
    match f {
        Some(msg) => format!(" (kexec-tools also failed: {msg})"),
        None => String::new(),
    }
}

/// What a (dry) run prepared.
#[derive(Debug)]
pub struct Prepared {
    pub network: NetworkConfig,
    pub cmdline: String,
    /// Size of the initrd with the appended archive.
    pub initrd_bytes: u64,
    /// Paths inside the image the appended archive holds.
    pub archive_paths: Vec<String>,
    kernel: File,
    initrd: File,
}

/// The network configuration of this machine, as the image will restore it.
pub fn capture_network() -> Result<NetworkConfig, KexecError> {
    let state = netdump::read_netlink_state().map_err(KexecError::CaptureNetwork)?;
    let mut resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if netcapture::only_local_stub(&resolv) {
        resolv = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default();
    }
    let mut config = netcapture::network_config(&state, &resolv);
    config.proxy = ProxySettings::capture();
    Ok(config)
}

/// Reads the session stream from `r` (stdin), at most [`MAX_STREAM_BYTES`].
pub fn read_session(r: impl Read) -> Result<Vec<u8>, KexecError> {
    let mut buf = Vec::new();
    r.take(MAX_STREAM_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(KexecError::ReadSession)?;
    if buf.len() > MAX_STREAM_BYTES {
        return Err(KexecError::SessionTooLarge);
    }
    Ok(buf)
}

/// The session stream's files, as the image's TLS files.
fn session_files(stream: &[u8]) -> Result<Vec<SessionFile>, KexecError> {
    Ok(session_stream::decode(stream)
        .map_err(KexecError::Session)?
        .into_iter()
        .map(|(name, data)| SessionFile {
            path: format!("{IMAGE_TLS_DIR}/{name}"),
            mode: if name == AGENT_KEY { 0o600 } else { 0o644 },
            data,
        })
        .collect())
}

/// Everything up to the load: the network capture, the command line and the
/// in-memory initrd.
pub fn prepare(opts: &KexecOptions) -> Result<Prepared, KexecError> {
    let kernel = inputs::open_verified(&opts.kernel, opts.kernel_sha256.as_ref())
        .map_err(KexecError::Kernel)?;
    let mut src = inputs::open_checked(&opts.initrd).map_err(KexecError::Initrd)?;
    let host_keys = match &opts.host_keys_from {
        Some(dir) => host_keys::read_dir(dir).map_err(KexecError::HostKeys)?,
        None => Vec::new(),
    };
    let network = capture_network()?;
    let current = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let cmdline = cmdline::compose(&current, opts.append.as_deref());
    sys::cmdline_buffer(&cmdline).map_err(KexecError::Cmdline)?;

    let mut files = match &opts.session {
        Some(stream) => session_files(stream)?,
        None => Vec::new(),
    };
    files.extend(host_keys.into_iter().map(|k| SessionFile {
        path: format!("{IMAGE_HOST_KEYS_DIR}/{}", k.name),
        mode: 0o600,
        data: k.data,
    }));
    let json = serde_json::to_vec_pretty(&network).unwrap_or_default();
    files.push(SessionFile {
        path: IMAGE_NETWORK_CONFIG.into(),
        mode: 0o644,
        data: json,
    });
    let archive = session_cpio(&files).map_err(KexecError::Archive)?;

    let mut initrd = sys::memfd("landfall-initrd").map_err(|e| KexecError::Memfd(e.into()))?;
    // Hashed while copied: what is loaded is exactly what was checked.
    let (copied, found) =
        inputs::copy_hashing(&opts.initrd, &mut src, &mut initrd).map_err(KexecError::Initrd)?;
    if let Some(expected) = &opts.initrd_sha256 {
        inputs::check_sha256(&opts.initrd, expected, &found).map_err(KexecError::Initrd)?;
    }
    let mut tail = Vec::new();
    let pad = (4 - copied % 4) % 4;
    tail.resize(pad as usize, 0u8);
    tail.extend_from_slice(&archive);
    initrd.write_all(&tail).map_err(KexecError::Memfd)?;
    initrd.seek(SeekFrom::Start(0)).map_err(KexecError::Memfd)?;
    Ok(Prepared {
        network,
        cmdline,
        initrd_bytes: copied + tail.len() as u64,
        archive_paths: files.into_iter().map(|f| f.path).collect(),
        kernel,
        initrd,
    })
}

/// Loads the prepared image: kexec_file_load, else kexec-tools.
pub fn load(p: &Prepared) -> Result<(), KexecError> {
    let (c, _) = sys::cmdline_buffer(&p.cmdline).map_err(KexecError::Cmdline)?;
    let errno = match sys::kexec_file_load(&p.kernel, &p.initrd, &c) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let refusal = refusal::classify(errno, &refusal::SystemState::read());
    tracing::warn!("kexec_file_load: {refusal}");
    // Disabled and no-permission block kexec_load too; anything else may be the
    // file-based call alone.
    let worth_fallback = !matches!(refusal, LoadRefusal::Disabled | LoadRefusal::NoCapability);
    let fallback = match fallback::find_kexec_tool().filter(|_| worth_fallback) {
        Some(tool) => {
            use std::os::fd::AsRawFd;
            // The files already opened and checked, not the paths again.
            let fd_path = |fd: i32| PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id()));
            let kernel_path = fd_path(p.kernel.as_raw_fd());
            let initrd_path = fd_path(p.initrd.as_raw_fd());
            tracing::info!("Trying {}", tool.display());
            match fallback::load_with_tool(&tool, &kernel_path, &initrd_path, &p.cmdline) {
                Ok(()) => return Ok(()),
                Err(e) => Some(e.to_string()),
            }
        }
        None => None,
    };
    Err(KexecError::Refused { refusal, fallback })
}

/// The whole command: prepare, and unless `dry_run`, load and reboot into the
/// image (returns only on failure, or with the prepared data on a dry run).
pub fn run(opts: &KexecOptions) -> Result<Prepared, KexecError> {
    let p = prepare(opts)?;
    if opts.dry_run {
        return Ok(p);
    }
    load(&p)?;
    eprintln!("{LOADED_MARKER}, rebooting into it (kexec)");
    if opts.detach {
        return match sys::reboot_kexec_detached(std::time::Duration::from_secs(1)) {
            Ok(()) => Ok(p),
            Err(e) => Err(KexecError::Reboot(e)),
        };
    }
    Err(KexecError::Reboot(sys::reboot_kexec()))
}

/// Printed on stderr once the image is loaded; the controller looks for it.
pub const LOADED_MARKER: &str = "landfall-agent: image loaded";
