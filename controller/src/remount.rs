//! An agent restarted between phases (the machine rebooted back into the RAM
//! image, power-cycled, the agent crashed and came back): its install root is
//! no longer mounted, and without a check the install phase would write the
//! closure into the RAM image's own `/mnt`. Before the install or bootloader
//! phase runs without the disko phase, the controller asks the agent what is
//! mounted; when the root is not, and the disks already hold the layout, it
//! mounts that layout again (disko's "mount" mode: nothing is partitioned or
//! formatted, the plan must not be destructive); when they do not, it stops
//! and says to run the disko phase. An agent not running as PID 1 (`serve
//! --root DIR` in a rescue system) writes where it was told and is not checked.

use anyhow::{bail, Context};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::{LayoutRequest, StatusReply, StatusRequest};
use tonic::transport::Channel;

use crate::disk;
use crate::install::{InstallArgs, Phase};
use crate::nix::{FlakeTarget, Nix};

/// What [`ensure_root_mounted`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootState {
    /// The root is mounted (or the agent is not PID 1): nothing to do.
    Ready,
    /// The root was not mounted; the layout already on the disks was mounted again.
    Remounted,
}

/// True when the agent's install root is a mount point.
pub fn root_is_mounted(status: &StatusReply) -> bool {
    let root = status.root.trim_end_matches('/');
    status
        .mounts
        .iter()
        .any(|m| m.target.trim_end_matches('/') == root)
}

/// The layout to mount again: the one given or already evaluated, else the flake's.
fn layout_of(a: &InstallArgs, known: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(l) = known {
        return Ok(Some(l.to_string()));
    }
    let Some(flake) = &a.flake else {
        return Ok(None);
    };
    eprintln!("Evaluating {flake}'s disko.devices …");
    let v = Nix::new()
        .eval_disko_devices(&FlakeTarget::parse(flake)?)
        .context("Evaluating the disk layout failed")?;
    Ok(Some(v.to_string()))
}

/// Makes sure the agent's root is mounted before `phases` write to it: only
/// when they include install or bootloader and not disko (which mounts).
/// `known_layout` is the layout JSON when one was read or evaluated already.
pub async fn ensure_root_mounted(
    client: &mut AgentClient<Channel>,
    a: &InstallArgs,
    known_layout: Option<&str>,
    phases: &[Phase],
) -> anyhow::Result<RootState> {
    let writes = phases
        .iter()
        .any(|p| matches!(p, Phase::Install | Phase::Bootloader));
    if !writes || phases.contains(&Phase::Disko) {
        return Ok(RootState::Ready);
    }
    let status = client
        .status(StatusRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))
        .context("The agent could not say what is mounted")?
        .into_inner();
    if !status.pid1 || root_is_mounted(&status) {
        return Ok(RootState::Ready);
    }
    eprintln!(
        "The agent's root {} is not mounted (the agent was restarted since the disko phase?)",
        status.root
    );
    let Some(layout_json) = tokio::task::block_in_place(|| layout_of(a, known_layout))? else {
        bail!(
            "The agent's root {} is not mounted: run the disko phase, or pass --flake or --layout \
             so the layout already on the disks can be mounted again",
            status.root
        );
    };
    let req = LayoutRequest {
        layout_json,
        disks: disk::parse_disk_overrides(&a.disks)?,
        mount: true,
        ..Default::default()
    };
    let plan = disk::plan(client, req.clone()).await?;
    if !plan.already_applied || plan.destructive {
        eprint!("{}", plan.rendered);
        bail!(
            "The agent's root {} is not mounted and its disks do not hold the layout (an interrupted \
             disko phase?): run the disko phase again (it shows what it destroys)",
            status.root
        );
    }
    eprintln!("The disks already hold the layout: mounting it again, nothing is formatted");
    // The job's events, its summary included, are printed as they come.
    disk::apply(client, req).await?;
    Ok(RootState::Remounted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::v1::Mount;

    fn status(root: &str, mounts: &[&str]) -> StatusReply {
        StatusReply {
            pid1: true,
            root: root.into(),
            mounts: mounts
                .iter()
                .map(|t| Mount {
                    target: t.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_root_itself_must_be_a_mount_point() {
        assert!(root_is_mounted(&status("/mnt", &["/mnt", "/mnt/boot"])));
        assert!(root_is_mounted(&status("/mnt/", &["/mnt"])));
        assert!(!root_is_mounted(&status("/mnt", &[])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt/boot"])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt2"])));
    }
}
