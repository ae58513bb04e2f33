//! `landfall install` against a real target (`--target` over SSH, or
//! `--agent` already running): the command line turned into plain values and
//! the [`Steps`] that [`drive`] runs in order. `install --vm` calls
//! [`run_on_target`] with the VM it started; nothing here calls `vm`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::BootloaderPolicy;
use tonic::transport::Channel;

use super::bootstrap::{bootstrap, Bootstrap};
use super::evaluate::{evaluate, Evaluated, Sources};
use super::run::{drive, Steps};
use super::{phases, remount};
use crate::closure::TransferSummary;
use crate::disk_keys::{DiskSecrets, KeyArgs};
use crate::hardware_config::{self, HardwareConfigTarget};
use crate::install::InstallCli;
use crate::kexec::SshArgs;
use crate::phase::Phase;

/// The real steps: this laptop's nix, the target over SSH, the agent over TLS.
pub struct TargetSteps {
    sources: Sources,
    phases: Vec<Phase>,
    /// Already evaluated (by `install --vm`, before it started its VM).
    evaluated: Option<Evaluated>,
    /// None with `--agent` (no SSH, no kexec).
    bootstrap: Option<Bootstrap>,
    agent_addr: String,
    tls: PathBuf,
    wait: u64,
    disks: Vec<String>,
    yes: bool,
    json: bool,
    bootloader: BootloaderPolicy,
    bootloader_name: String,
    wait_ssh: Option<String>,
    /// `--generate-hardware-config`: where the file goes.
    hardware_config: Option<HardwareConfigTarget>,
    extra: crate::files::ExtraFiles,
    files_report: Option<crate::files::FilesReport>,
    client: Option<AgentClient<Channel>>,
    /// The disk keys, from the evaluation: sent right after connecting.
    secrets: DiskSecrets,
    /// This install's ID and `--keep-existing`, sent with each layout request.
    own: phases::Ownership,
    /// The binary caches the agent fetches from (resolved at evaluation).
    substitute_args: crate::substitute::SubstituteArgs,
    substitution: crate::substitute::Substitution,
}

impl TargetSteps {
    fn client(&mut self) -> anyhow::Result<&mut AgentClient<Channel>> {
        self.client
            .as_mut()
            .context("the flow asked for the agent before connecting")
    }
}

impl Steps for TargetSteps {
    fn evaluate(&mut self) -> anyhow::Result<Evaluated> {
        let ev = match self.evaluated.take() {
            Some(ev) => ev,
            None => tokio::task::block_in_place(|| evaluate(&self.sources, &self.phases))?,
        };
        self.secrets = ev.secrets.clone();
        if self.phases.contains(&Phase::Install) {
            self.substitution = tokio::task::block_in_place(|| {
                crate::substitute::resolve(&self.substitute_args, self.sources.flake.as_deref())
            })?;
            if self.substitution.enabled() {
                eprintln!(
                    "The target fetches from binary caches: {}",
                    crate::sanitize::line(&self.substitution.caches.join(" "))
                );
            }
        }
        Ok(ev)
    }

    fn generates_hardware_config(&self) -> bool {
        self.hardware_config.is_some()
    }

    async fn hardware_config(&mut self) -> anyhow::Result<String> {
        let target = self
            .hardware_config
            .clone()
            .context("no --generate-hardware-config was given")?;
        eprintln!(
            "== hardware-config: nixos-generate-config's rules on the agent's inventory → {}",
            target.path.display()
        );
        let inv = self
            .client()?
            .inventory(landfall_proto::v1::InventoryRequest {})
            .await
            .map_err(crate::agent_error::AgentError::from)
            .context("Inventory failed")?
            .into_inner();
        let text = hardware_config::render(&inv)?;
        let written = tokio::task::block_in_place(|| hardware_config::write(&target, &text))?;
        eprintln!(
            "Wrote {}{}",
            written.path.display(),
            if written.git_added {
                " (git add --intent-to-add: the flake sees it)"
            } else {
                ""
            }
        );
        Ok(written.path.display().to_string())
    }

    async fn bootstrap(&mut self) -> anyhow::Result<Option<f64>> {
        let Some(b) = &self.bootstrap else {
            return Ok(None);
        };
        let (addr, secs) = bootstrap(b).await?;
        self.agent_addr = addr;
        Ok(secs)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        self.client = Some(
            crate::client::connect_with_retry(
                &self.agent_addr,
                &self.tls,
                Duration::from_secs(self.wait),
            )
            .await?,
        );
        // The disk keys before any layout is planned or applied.
        if !self.secrets.files.is_empty() {
            let req = self.secrets.request();
            phases::put_secrets(self.client()?, req).await?;
        }
        Ok(())
    }

    async fn ensure_root(&mut self, ev: &Evaluated, phases: &[Phase]) -> anyhow::Result<()> {
        let flake = self.sources.flake.clone();
        let disks = self.disks.clone();
        let own = self.own.clone();
        let client = self.client()?;
        remount::ensure_root_mounted(
            client,
            phases,
            ev.layout_json.as_deref(),
            flake.as_deref(),
            &disks,
            &ev.secrets,
            &own,
        )
        .await?;
        Ok(())
    }

    async fn phase(
        &mut self,
        phase: Phase,
        ev: &Evaluated,
    ) -> anyhow::Result<Option<TransferSummary>> {
        let (disks, yes, json) = (self.disks.clone(), self.yes, self.json);
        let (policy, policy_name) = (self.bootloader, self.bootloader_name.clone());
        let (wait_ssh, wait) = (self.wait_ssh.clone(), Duration::from_secs(self.wait));
        let extra = self.extra.clone();
        let own = self.own.clone();
        let subst = self.substitution.clone();
        let client = self.client()?;
        match phase {
            Phase::Kexec => {}
            Phase::Disko => {
                let layout = ev.layout_json.clone().unwrap_or_default();
                phases::disko(client, layout, &disks, yes, &ev.secrets, &own).await?;
            }
            Phase::Install => {
                let top = ev.toplevel.as_ref().context("no system to install")?;
                return Ok(Some(phases::install(client, top, json, &subst).await?));
            }
            Phase::Files if extra.is_empty() => {}
            Phase::Files => {
                let r = phases::files(client, &extra, json).await?;
                self.files_report = Some(r);
            }
            Phase::Bootloader => {
                phases::bootloader(client, policy, &policy_name, ev.toplevel.as_ref()).await?;
            }
            Phase::Reboot => phases::reboot(client, wait_ssh.as_deref(), wait).await?,
        }
        Ok(None)
    }
}

/// The flow's inputs from `landfall install`'s command line, evaluated
/// nothing yet.
pub fn sources_of(c: &InstallCli) -> Sources {
    Sources {
        flake: c.flake.clone(),
        system: c.system.clone(),
        layout: c.layout.clone(),
        keys: KeyArgs {
            encryption_keys: c.disk_encryption_keys.clone(),
            password_files: c.disk_password_files.clone(),
        },
    }
}

/// `--generate-hardware-config GENERATOR PATH`, checked (None without it).
pub fn hardware_config_of(c: &InstallCli) -> anyhow::Result<Option<HardwareConfigTarget>> {
    Ok(match &c.generate_hardware_config {
        Some(values) => Some(HardwareConfigTarget::parse(values)?),
        None => None,
    })
}

/// `--extra-files` walked and checked, `--chown` parsed, `--copy-host-keys`
/// noted; an error when they are given but the files phase is not asked for.
pub fn extra_files_of(c: &InstallCli) -> anyhow::Result<crate::files::ExtraFiles> {
    let extra =
        crate::files::ExtraFiles::from_cli(c.extra_files.as_deref(), &c.chown, c.copy_host_keys)?;
    if !extra.is_empty() && !c.phases.contains(&Phase::Files) {
        bail!("--extra-files, --chown and --copy-host-keys need the files phase (add `files` to --phases)");
    }
    if c.copy_host_keys && c.target.is_none() && !c.vm {
        eprintln!("Note: --copy-host-keys with --agent installs the keys that agent's kexec captured (landfall kexec --copy-host-keys)");
    }
    Ok(extra)
}

/// The normal flow against `--target` or `--agent`; `state` overrides the
/// per-target state folder (the local VM keeps everything in its own
/// folder); `evaluated` is the evaluation already done by the caller.
pub async fn run_on_target(
    c: InstallCli,
    state: Option<PathBuf>,
    evaluated: Option<Evaluated>,
) -> anyhow::Result<()> {
    let key = match (&c.target, &c.agent) {
        (Some(t), _) => match c.ssh.port {
            Some(p) => format!("{t}:{p}"),
            None => t.clone(),
        },
        (None, Some(a)) => a.clone(),
        (None, None) => {
            bail!("Say where to install: --target [USER@]HOST (over SSH) or --agent HOST:PORT")
        }
    };
    let bootloader = crate::boot::parse_policy(&c.bootloader)?;
    // Checked before anything else: a wrong generator or a missing folder
    // stops here, with the target untouched.
    let hardware_config = hardware_config_of(&c)?;
    // --extra-files walked and checked, --chown parsed: before anything else.
    let extra = extra_files_of(&c)?;
    let state = state.unwrap_or_else(|| crate::state::state_dir(&key));
    let total = Instant::now();
    // Laptop only: this install's ID, minted now or kept from the unfinished
    // install a re-run resumes.
    let (install_id, minted) = crate::install_id::current(&state)?;
    if !minted {
        eprintln!(
            "Resuming the unfinished install {install_id} (from {}/{})",
            state.display(),
            crate::install_id::FILE
        );
    }
    // Laptop only: a new session's certificates (nothing reaches the target).
    let tls = match &c.tls {
        Some(t) => t.clone(),
        None => {
            let t = state.join("session");
            if !crate::certs::exists(&t) {
                crate::certs::init(&t, &key, false)?;
                eprintln!("New session for {key} in {}", t.display());
            }
            t
        }
    };
    let (boot, agent_addr) = match &c.target {
        Some(target) => {
            let ssh = SshArgs {
                target: target.clone(),
                flags: c.ssh.clone(),
            };
            let addr = c
                .agent_addr
                .clone()
                .unwrap_or_else(|| crate::kexec::default_agent_addr_of(&ssh));
            let b = Bootstrap {
                ssh,
                agent_addr: addr.clone(),
                tls: tls.clone(),
                kexec: c.phases.contains(&Phase::Kexec),
                image: c.image.clone(),
                kernel: c.kernel.clone(),
                modules: c.modules.clone(),
                image_out: state.join("image"),
                wait: c.wait,
                copy_host_keys: c.copy_host_keys,
            };
            (Some(b), addr)
        }
        None => (None, c.agent.clone().unwrap_or_default()),
    };
    let wait_ssh = match (&c.target, c.no_wait) {
        (Some(t), false) => {
            let host = crate::kexec::default_agent_addr_of(&SshArgs {
                target: t.clone(),
                flags: crate::kexec::SshFlags {
                    ssh_options: c.ssh.ssh_options.clone(),
                    ..Default::default()
                },
            });
            let host = host
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or(host);
            Some(format!("{host}:{}", c.ssh.port.unwrap_or(22)))
        }
        _ => None,
    };
    let mut steps = TargetSteps {
        sources: sources_of(&c),
        phases: c.phases.clone(),
        evaluated,
        bootstrap: boot,
        agent_addr,
        tls,
        wait: c.wait,
        disks: c.disks.clone(),
        yes: c.yes,
        json: c.json,
        bootloader,
        bootloader_name: c.bootloader.clone(),
        wait_ssh,
        hardware_config,
        extra,
        files_report: None,
        client: None,
        secrets: Default::default(),
        own: phases::Ownership {
            install_id,
            keep_existing: c.keep_existing,
        },
        substitute_args: crate::substitute::SubstituteArgs {
            substituters: c.substituters.clone(),
            trusted_public_keys: c.trusted_public_keys.clone(),
            ca_file: c.substituters_ca.clone(),
            proxy: c.substituters_proxy.clone(),
            off: c.no_substitute_on_target,
        },
        substitution: Default::default(),
    };
    let mut report = drive(&mut steps, &c.phases).await?;
    if c.phases.contains(&Phase::Reboot) {
        // The install is finished: the next one gets a new ID.
        crate::install_id::finish(&state)?;
    }
    report.files = steps.files_report.take();
    if c.json {
        println!("{}", crate::sanitize::json(&report, false)?);
    } else {
        let split: Vec<String> = report
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect();
        eprintln!("Done: {}", split.join(", "));
        eprintln!("All phases done in {:.1} s", total.elapsed().as_secs_f64());
    }
    Ok(())
}
