//! `landfall kexec`: boot the agent's RAM image on a Linux machine reachable
//! over SSH, then wait for the agent to answer over mutual TLS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use landfall_proto::AGENT_PORT;

use crate::sanitize::line;
use crate::{certs, client, image, ssh};

/// How ssh reaches `--target`: the flags `landfall kexec` and `landfall
/// install` share (each declares `--target` itself: kexec needs one, install
/// may use `--agent` instead).
#[derive(Args, Clone, Debug, Default)]
pub struct SshFlags {
    /// SSH port of --target.
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// SSH identity file for --target.
    #[arg(short = 'i', long)]
    pub identity: Option<PathBuf>,
    /// Extra ssh option (`-o`), e.g. UserKnownHostsFile=FILE; repeatable.
    #[arg(long = "ssh-option")]
    pub ssh_options: Vec<String>,
}

/// How to reach the target over SSH.
#[derive(Args, Clone, Debug)]
pub struct SshArgs {
    /// The machine, [USER@]HOST, reached with your ssh (config, agent, known_hosts apply).
    #[arg(long)]
    pub target: String,
    #[command(flatten)]
    pub flags: SshFlags,
}

impl SshArgs {
    pub fn to_target(&self) -> anyhow::Result<ssh::Target> {
        let target = ssh::Target::parse(&self.target)?
            .port(self.flags.port)
            .identity(self.flags.identity.clone());
        Ok(self
            .flags
            .ssh_options
            .iter()
            .fold(target, |t, o| t.option(o.clone())))
    }
}

/// `landfall kexec`.
#[derive(Args, Clone)]
pub struct KexecArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The RAM image folder (bzImage + initrd, from `landfall image build`).
    #[arg(long)]
    pub image: PathBuf,
    /// The session folder (`landfall certs init`).
    #[arg(long)]
    pub tls: PathBuf,
    /// The static landfall-agent binary to upload (default: $LANDFALL_AGENT_BIN or beside landfall).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// Where the agent answers after the kexec (default HOST:7443).
    #[arg(long)]
    pub agent: Option<String>,
    /// Extra kernel parameters for the image.
    #[arg(long)]
    pub append: Option<String>,
    /// Carry the target's SSH host keys (/etc/ssh/ssh_host_*) into the image, for
    /// `landfall install --copy-host-keys` to install into the new system.
    #[arg(long)]
    pub copy_host_keys: bool,
    /// Seconds to wait for the agent after the kexec.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
}

pub async fn run_kexec(a: KexecArgs) -> anyhow::Result<()> {
    kexec_and_wait(&a, Says::Stdout).await.map(|_| ())
}

/// Where the kexec's progress lines go: stdout for `landfall kexec`,
/// stderr inside `landfall install` (whose stdout is `--json`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    Stdout,
    Stderr,
}

impl Says {
    fn line(self, s: std::fmt::Arguments<'_>) {
        match self {
            Says::Stdout => println!("{s}"),
            Says::Stderr => eprintln!("{s}"),
        }
    }
}

/// The agent's address after a kexec of `target`: HOST:[`AGENT_PORT`] with
/// the host as ssh resolves it.
pub fn default_agent_addr(target: &ssh::Target) -> String {
    let host = target.resolved_host();
    if host.contains(':') {
        format!("[{host}]:{AGENT_PORT}")
    } else {
        format!("{host}:{AGENT_PORT}")
    }
}

/// [`default_agent_addr`] for SSH arguments (the target as given when it does not parse).
pub fn default_agent_addr_of(ssh: &SshArgs) -> String {
    match ssh.to_target() {
        Ok(t) => default_agent_addr(&t),
        Err(_) => format!("{}:{AGENT_PORT}", ssh.target),
    }
}

/// Uploads and kexecs, then waits for the agent; returns its address.
pub async fn kexec_and_wait(a: &KexecArgs, says: Says) -> anyhow::Result<String> {
    let target = a.ssh.to_target()?;
    let agent_bin = a
        .agent_bin
        .clone()
        .or_else(image::find_agent)
        .context("No static agent found: pass --agent-bin or set LANDFALL_AGENT_BIN")?;
    let mut plan = ssh::KexecPlan::from_image_dir(&a.image, agent_bin, a.tls.clone());
    plan.append = a.append.clone();
    plan.copy_host_keys = a.copy_host_keys;
    let addr = a
        .agent
        .clone()
        .unwrap_or_else(|| default_agent_addr(&target));
    says.line(format_args!(
        "Checking {} and uploading the image",
        target.destination()
    ));
    let t = target.clone();
    let p = plan.clone();
    let report = tokio::task::spawn_blocking(move || t.prepare_kexec(&p)).await??;
    for (dir, why) in &report.refused_dirs {
        says.line(format_args!(
            "  not reused: {} ({})",
            line(dir),
            line(&why.to_string())
        ));
    }
    if report.reused_dir {
        says.line(format_args!(
            "  reusing {} (root's, mode 0700)",
            line(&report.upload_dir)
        ));
    }
    for u in &report.uploaded {
        says.line(format_args!(
            "  {} {} ({} bytes)",
            if u.sent { "uploaded" } else { "already there:" },
            u.name,
            u.bytes
        ));
    }
    says.line(format_args!(
        "Target: {} {}, {} MiB RAM; image {} bytes (kernel + initrd) in {}",
        line(&report.facts.os),
        line(&report.facts.arch),
        report.facts.mem_total_bytes >> 20,
        report.image_bytes,
        line(&report.upload_dir)
    ));
    // This boot's identity: a fresh agent key (pinned) and boot ID, which
    // start_kexec sends on the SSH channel's stdin.
    let identity = certs::issue_agent(&a.tls).with_context(|| {
        format!(
            "Cannot issue the agent's identity in the session {}",
            a.tls.display()
        )
    })?;
    says.line(format_args!(
        "Fresh agent identity for this boot: boot ID {}, key sha256 {}",
        identity.boot_id,
        &identity.pin[..16]
    ));
    let t = target.clone();
    let r = report.clone();
    tokio::task::spawn_blocking(move || t.start_kexec(&r, &plan)).await??;
    let kexec_at = std::time::Instant::now();
    says.line(format_args!(
        "Kexec started; waiting up to {} s for the agent at {addr}",
        a.wait
    ));
    let answered = async {
        let mut c = client::connect_with_retry(&addr, &a.tls, Duration::from_secs(a.wait)).await?;
        let left = Duration::from_secs(a.wait).saturating_sub(kexec_at.elapsed());
        crate::agent_status::ask(&mut c, left.max(Duration::from_secs(10))).await?;
        anyhow::Ok(())
    };
    // connect_with_retry's own clock starts late and a half-open forward can
    // stall a handshake: bound the whole wait here.
    let answered = match tokio::time::timeout(Duration::from_secs(a.wait + 5), answered).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("no answer")),
    };
    if let Err(e) = answered {
        anyhow::bail!(
            "The agent did not answer at {addr} within {} s after the kexec ({e}).\n\
             Check: is the agent's port ({AGENT_PORT}) reachable from here (firewall, security group, NAT port forward)?\n\
             What does the machine's console show (the agent logs there; after a kernel panic the machine \
             reboots into its old system)?\n\
             Did the network come back (the agent restores the addresses and routes captured before the \
             kexec; `landfall-agent kexec --dry-run` on the target prints them)?",
            a.wait
        );
    }
    says.line(format_args!(
        "The agent answered {:.1} s after the kexec (at {addr})",
        kexec_at.elapsed().as_secs_f64()
    ));
    Ok(addr)
}
