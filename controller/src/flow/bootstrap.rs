//! The bootstrap step: make an agent of this session run on the target.
//! When one already answers at the agent's address (a second run), nothing
//! is done; else, when the kexec phase is asked for, the RAM image is built
//! on the laptop (unless given) and `landfall kexec`'s upload-and-kexec runs
//! over SSH. This is the first step that reaches the target.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::agent_status;
use crate::kexec::{kexec_and_wait, KexecArgs, Says, SshArgs};

/// What the bootstrap needs, as plain values.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub ssh: SshArgs,
    /// Where the agent answers after the kexec (HOST:PORT).
    pub agent_addr: String,
    /// The session folder.
    pub tls: PathBuf,
    /// Whether the kexec phase was asked for.
    pub kexec: bool,
    /// The RAM image folder; None = build one into `image_out`.
    pub image: Option<PathBuf>,
    /// The kernel and modules to build the image from (else one found here).
    pub kernel: Option<PathBuf>,
    pub modules: Option<PathBuf>,
    pub image_out: PathBuf,
    /// Seconds to wait for the agent after the kexec.
    pub wait: u64,
    /// Carry the target's SSH host keys into the agent's image.
    pub copy_host_keys: bool,
}

/// Runs the bootstrap; returns the agent's address and, when a kexec ran,
/// how long it took.
pub async fn bootstrap(b: &Bootstrap) -> anyhow::Result<(String, Option<f64>)> {
    // The agent of this session's current boot already answering (a second
    // run): no kexec. An older boot's agent, or one with another key, does
    // not count: the kexec below boots a fresh one.
    if agent_status::answers_at(&b.agent_addr, &b.tls, Duration::from_secs(5)).await {
        eprintln!(
            "== kexec: the agent of this boot (ID {}) already answers at {}; skipping",
            crate::certs::boot_id(&b.tls).unwrap_or_default(),
            b.agent_addr
        );
        return Ok((b.agent_addr.clone(), None));
    }
    if !b.kexec {
        bail!(
            "No agent answers at {}, and the kexec phase was not asked for",
            b.agent_addr
        );
    }
    let image = match &b.image {
        Some(i) => i.clone(),
        None => {
            // The kernel the user names, else one found here (see vm::kernel).
            let k = crate::kernel::find(b.kernel.as_deref(), b.modules.as_deref())?;
            eprintln!("Building the agent's RAM image from {}", k.image.display());
            crate::image::build_from(&k, &b.image_out)?
        }
    };
    eprintln!("== kexec: {}", b.ssh.target);
    let t = Instant::now();
    let addr = kexec_and_wait(
        &KexecArgs {
            ssh: b.ssh.clone(),
            image,
            tls: b.tls.clone(),
            agent_bin: None,
            agent: Some(b.agent_addr.clone()),
            append: None,
            copy_host_keys: b.copy_host_keys,
            wait: b.wait,
        },
        Says::Stderr,
    )
    .await?;
    Ok((addr, Some(t.elapsed().as_secs_f64())))
}
