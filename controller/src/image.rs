//! `landfall image build`: the agent's RAM image from a kernel, its modules and
//! the static agent, optionally with a session's agent certificates appended.

use std::path::{Path, PathBuf};

use anyhow::Context;
use landfall_image::{append_archive, build_image, session_cpio, ImageSpec, SessionFile};
use landfall_proto::tlsnames::IMAGE_TLS_DIR;

use crate::certs;

/// Finds the static agent: `$LANDFALL_AGENT_BIN`, beside this executable, or the
/// workspace's musl release build.
pub fn find_agent() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LANDFALL_AGENT_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let beside = dir.join("landfall-agent-static");
    if beside.is_file() {
        return Some(beside);
    }
    // target/{debug,release}/landfall → target/x86_64-unknown-linux-musl/release/landfall-agent
    let musl = dir
        .parent()?
        .join("x86_64-unknown-linux-musl/release/landfall-agent");
    musl.is_file().then_some(musl)
}

/// Issues a fresh agent identity in the session `tls_dir` (a new key, a
/// short-lived certificate and a boot ID; the key is pinned) and appends it
/// with the CA certificate to `initrd`, which is rewritten 0600.
pub fn append_session(
    initrd: &Path,
    tls_dir: &Path,
    extra: Vec<SessionFile>,
) -> anyhow::Result<()> {
    let mut files: Vec<SessionFile> = certs::issue_agent(tls_dir)
        .with_context(|| {
            format!(
                "Cannot issue the agent's identity in the session {}",
                tls_dir.display()
            )
        })?
        .files
        .into_iter()
        .map(|(name, data)| SessionFile {
            path: format!("{IMAGE_TLS_DIR}/{name}"),
            mode: if name.ends_with(".key") { 0o600 } else { 0o644 },
            data,
        })
        .collect();
    files.extend(extra);
    let archive = session_cpio(&files).context("Cannot write the session archive")?;
    let mut data =
        std::fs::read(initrd).with_context(|| format!("Cannot read {}", initrd.display()))?;
    append_archive(&mut data, &archive);
    // It now holds the agent's key: 0600 from its creation on.
    crate::secret_file::write_atomic(initrd, &data, 0o600)
        .with_context(|| format!("Cannot write {}", initrd.display()))?;
    Ok(())
}

/// Builds the RAM image for `kernel` into `out` (the workspace's or
/// `$LANDFALL_AGENT_BIN`'s static agent, default modules); returns `out`.
/// Its report goes to stderr: the install flow's stdout is `--json`'s.
pub fn build_from(kernel: &crate::kernel::KernelPaths, out: &Path) -> anyhow::Result<PathBuf> {
    let report = build(BuildArgs {
        kernel: kernel.image.clone(),
        modules: kernel.modules.clone(),
        agent: None,
        out: out.to_path_buf(),
        extra_modules: Vec::new(),
        tls: None,
    })?;
    eprint!("{report}");
    Ok(out.to_path_buf())
}

pub struct BuildArgs {
    pub kernel: PathBuf,
    pub modules: PathBuf,
    pub agent: Option<PathBuf>,
    pub out: PathBuf,
    pub extra_modules: Vec<String>,
    pub tls: Option<PathBuf>,
}

/// Builds the image; returns its report for a person (modules, sizes).
pub fn build(a: BuildArgs) -> anyhow::Result<String> {
    let agent = a.agent.or_else(find_agent).context(
        "No static agent found: pass --agent, set LANDFALL_AGENT_BIN, or build it with \
         `cargo build --release --target x86_64-unknown-linux-musl -p landfall-agent`",
    )?;
    let report = build_image(&ImageSpec {
        kernel: a.kernel,
        modules_dir: a.modules,
        agent,
        extra_modules: a.extra_modules,
        out_dir: a.out.clone(),
        zstd_level: landfall_image::INITRD_ZSTD_LEVEL,
    })?;
    if let Some(tls) = &a.tls {
        append_session(&report.initrd_path, tls, Vec::new())?;
    }
    let initrd_size = std::fs::metadata(&report.initrd_path)?.len();
    Ok(format!(
        "{report}image   {} in all (kernel {} + initrd {}){}\n",
        crate::render::human_bytes(report.kernel_size + initrd_size),
        crate::render::human_bytes(report.kernel_size),
        crate::render::human_bytes(initrd_size),
        if a.tls.is_some() {
            ", session certificates included"
        } else {
            ""
        }
    ))
}
