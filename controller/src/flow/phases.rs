//! The phases run against a connected agent — disko, install, files, bootloader,
//! reboot — each a function on plain values. The order and the checks
//! between them are [`super::run`]'s.

use std::time::Duration;

use anyhow::Context;
use landfall_proto::nar::StorePath;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::{
    BootloaderPolicy, BootloaderRequest, LayoutRequest, PutSecretsRequest, RebootRequest,
};
use tonic::transport::Channel;

use crate::closure::{Progress, TransferSummary};
use crate::disk;
use crate::disk_keys::DiskSecrets;
use crate::nix::{ClosureSource, Nix};

/// Whose disks the layout phase may keep: this install's ID, and whether
/// `--keep-existing` keeps any disk that holds the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub install_id: String,
    pub keep_existing: bool,
}

/// Disko: plan the layout, show it, ask before destroying (unless `yes`),
/// apply it and mount it. `disks` are the `--disk NAME=PATH` overrides; a
/// disk holding the layout is kept only if `own`'s install formatted it.
pub async fn disko(
    client: &mut AgentClient<Channel>,
    layout_json: String,
    disks: &[String],
    yes: bool,
    secrets: &DiskSecrets,
    own: &Ownership,
) -> anyhow::Result<()> {
    eprintln!("== disko: partition, format, mount");
    let mut req = LayoutRequest {
        layout_json,
        disks: disk::parse_disk_overrides(disks)?,
        mount: true,
        luks_passwords: secrets.passwords.clone().into_iter().collect(),
        install_id: own.install_id.clone(),
        keep_existing: own.keep_existing,
        ..Default::default()
    };
    let plan = disk::plan_and_show(client, req.clone()).await?;
    if plan.destructive && !yes {
        disk::confirm(&disk::destroy_question(&plan))?;
    }
    req.confirm_destroy = plan.destructive;
    if plan.destructive {
        // The agent applies exactly what was shown, or nothing.
        req.confirmed_plan = landfall_proto::layout::plan_digest(&plan.plan_json);
    }
    // The summary was printed as the job's last line.
    disk::apply(client, req).await?;
    Ok(())
}

/// The disk keys into the agent's RAM (PutSecrets), before any layout is
/// planned: prints the paths written, never the keys.
pub async fn put_secrets(
    client: &mut AgentClient<Channel>,
    req: PutSecretsRequest,
) -> anyhow::Result<()> {
    let reply = client
        .put_secrets(req)
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent refused the disk keys")?
        .into_inner();
    eprintln!(
        "Put {} disk key file(s) into the target's RAM: {}",
        reply.written.len(),
        reply.written.join(", ")
    );
    Ok(())
}

/// Install: stream `toplevel`'s closure into the target's store (what is
/// there already is not sent; a lost connection resumes).
pub async fn install(
    client: &mut AgentClient<Channel>,
    toplevel: &StorePath,
    json: bool,
    subst: &crate::substitute::Substitution,
) -> anyhow::Result<TransferSummary> {
    eprintln!("== install: {toplevel}");
    let infos = tokio::task::block_in_place(|| Nix::new().closure_path_info(toplevel))
        .context("Reading the closure with nix path-info failed")?;
    let closure = ClosureSource::new(infos)?;
    let progress = if json { Progress::Json } else { Progress::Bar };
    let s = crate::retry::put_closure_resuming(
        client,
        closure,
        Some(toplevel),
        "",
        progress,
        Default::default(),
        subst,
    )
    .await?;
    let from_caches = if s.cache_paths > 0 || s.fallback_paths > 0 {
        format!(
            "; {} paths ({:.1} MiB of NAR) came from binary caches, {} fell back to this machine",
            s.cache_paths,
            s.cache_nar_bytes as f64 / 1048576.0,
            s.fallback_paths
        )
    } else {
        String::new()
    };
    eprintln!(
        "Sent {} of {} paths ({:.1} MiB of NAR as {:.1} MiB on the wire) in {:.1} s{from_caches}. Agent: {}",
        s.sent_paths,
        s.closure_paths,
        s.nar_bytes as f64 / 1048576.0,
        s.wire_bytes as f64 / 1048576.0,
        s.seconds,
        crate::sanitize::text(&s.agent_summary)
    );
    Ok(s)
}

/// Files: write the extra files, apply the `--chown` rules, install the
/// captured host keys (after the closure, before the bootloader).
pub async fn files(
    client: &mut AgentClient<Channel>,
    extra: &crate::files::ExtraFiles,
    json: bool,
) -> anyhow::Result<crate::files::FilesReport> {
    let n = extra.tree.as_ref().map(|t| t.entries.len()).unwrap_or(0);
    eprintln!(
        "== files: {n} extra entr{}, {} --chown rule(s){}",
        if n == 1 { "y" } else { "ies" },
        extra.chown.len(),
        if extra.host_keys {
            ", the target's SSH host keys"
        } else {
            ""
        }
    );
    let r = crate::files::put_files(client, extra, json).await?;
    eprintln!("Agent: {}", r.agent_summary);
    for k in &r.host_keys {
        eprintln!("The installed system's host key: {k}");
    }
    Ok(r)
}

/// Bootloader: install it for `toplevel` with `policy`.
pub async fn bootloader(
    client: &mut AgentClient<Channel>,
    policy: BootloaderPolicy,
    policy_name: &str,
    toplevel: Option<&StorePath>,
) -> anyhow::Result<()> {
    eprintln!("== bootloader ({policy_name})");
    let req = BootloaderRequest {
        toplevel: toplevel.map(|t| t.to_string()).unwrap_or_default(),
        policy: policy as i32,
        ..Default::default()
    };
    crate::boot::install_bootloader(client, req)
        .await
        .map(|_| ())
}

/// Reboot: unmount and reboot into the installed system, then (with
/// `wait_ssh`, HOST:PORT) wait up to `wait` for its SSH server.
pub async fn reboot(
    client: &mut AgentClient<Channel>,
    wait_ssh: Option<&str>,
    wait: Duration,
) -> anyhow::Result<()> {
    eprintln!("== reboot");
    let reply = crate::boot::reboot(client, RebootRequest::default()).await?;
    eprint!("{}", crate::boot::describe_reboot(&reply));
    if let (true, Some(ssh)) = (reply.rebooting, wait_ssh) {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms as u64 + 2000)).await;
        let took = crate::boot::wait_for_ssh(ssh, wait).await?;
        eprintln!(
            "The machine is back: SSH answers at {ssh} after {:.1} s",
            took.as_secs_f64() + 2.0
        );
    }
    Ok(())
}
