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

use anyhow::bail;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::LayoutRequest;
use tonic::transport::Channel;

use crate::agent_status;
use crate::disk;
use crate::phase::Phase;

/// What [`ensure_root_mounted`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootState {
    /// The root is mounted (or the agent is not PID 1): nothing to do.
    Ready,
    /// The root was not mounted; the layout already on the disks was mounted again.
    Remounted,
}

/// True when `phases` write into the agent's root without mounting it first
/// (install or bootloader without disko): only then is the root checked.
pub fn needs_root_check(phases: &[Phase]) -> bool {
    let writes = phases
        .iter()
        .any(|p| matches!(p, Phase::Install | Phase::Bootloader));
    writes && !phases.contains(&Phase::Disko)
}

/// Makes sure the agent's root is mounted before `phases` write to it.
/// `known_layout` is the layout JSON when one was read or evaluated already;
/// else `flake`'s disko.devices is evaluated, only when the root turns out
/// not to be mounted. `disks` are the `--disk NAME=PATH` overrides.
pub async fn ensure_root_mounted(
    client: &mut AgentClient<Channel>,
    phases: &[Phase],
    known_layout: Option<&str>,
    flake: Option<&str>,
    disks: &[String],
    secrets: &crate::disk_keys::DiskSecrets,
    own: &super::phases::Ownership,
) -> anyhow::Result<RootState> {
    if !needs_root_check(phases) {
        return Ok(RootState::Ready);
    }
    let status = agent_status::ask(client, std::time::Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::Error::new(e).context("The agent could not say what is mounted"))?;
    if !status.pid1 || agent_status::root_is_mounted(&status) {
        return Ok(RootState::Ready);
    }
    eprintln!(
        "The agent's root {} is not mounted (the agent was restarted since the disko phase?)",
        crate::sanitize::line(&status.root)
    );
    let layout_json = match (known_layout, flake) {
        (Some(l), _) => l.to_string(),
        (None, Some(f)) => tokio::task::block_in_place(|| super::evaluate::disko_layout(f))?,
        (None, None) => bail!(
            "The agent's root {} is not mounted: run the disko phase, or pass --flake or --layout \
             so the layout already on the disks can be mounted again",
            status.root
        ),
    };
    let req = LayoutRequest {
        layout_json,
        disks: disk::parse_disk_overrides(disks)?,
        mount: true,
        luks_passwords: secrets.passwords.clone().into_iter().collect(),
        // Only the layout this install formatted is mounted again.
        install_id: own.install_id.clone(),
        keep_existing: own.keep_existing,
        ..Default::default()
    };
    let plan = disk::plan(client, req.clone()).await?;
    if !plan.already_applied || plan.destructive {
        eprint!("{}", crate::sanitize::text(&plan.rendered));
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

    #[test]
    fn only_writes_without_disko_check_the_root() {
        assert!(needs_root_check(&[Phase::Install]));
        assert!(needs_root_check(&[Phase::Bootloader, Phase::Reboot]));
        assert!(!needs_root_check(&[Phase::Disko, Phase::Install]));
        assert!(!needs_root_check(&[Phase::Reboot]));
    }
}
