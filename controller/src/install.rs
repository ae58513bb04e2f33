//! `landfall install`: the phases users run, in order — kexec (over SSH, into
//! the agent's RAM image), evaluate, disko (partition, format, mount), install
//! (stream the closure) — each also runnable alone with `--phases`. A re-run
//! skips work already done: an agent already answering is not kexec'd again, a
//! layout already applied destroys nothing, paths already on the target are not
//! sent. The session's certificates live in a state folder per target, so a
//! crashed controller reconnects to the same agent.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use landfall_proto::nar::StorePath;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::LayoutRequest;
use tonic::transport::Channel;

use crate::closure::Progress;
use crate::disk;
use crate::nix::{ClosureSource, FlakeTarget, Nix};

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Phase {
    /// Over SSH: upload the agent and its RAM image, kexec into it (with --target).
    Kexec,
    /// Partition, format and mount the target's disks from the disko layout.
    Disko,
    /// Stream the system closure into the new store, verified and registered.
    Install,
    /// Install the bootloader (native systemd-boot, or the closure's own installer).
    Bootloader,
    /// Unmount and reboot into the installed system; wait for its SSH server.
    Reboot,
}

/// What to install.
pub struct InstallArgs {
    pub bootloader: String,
    /// Where the rebooted machine's SSH answers (HOST:PORT); None = do not wait.
    pub wait_ssh: Option<String>,
    pub wait_secs: u64,
    pub flake: Option<String>,
    pub system: Option<String>,
    pub layout: Option<PathBuf>,
    pub disks: Vec<String>,
    pub phases: Vec<Phase>,
    pub yes: bool,
    pub json: bool,
}

/// Timings of each phase, for the summary.
#[derive(Default, serde::Serialize)]
struct Report {
    phases: Vec<(String, f64)>,
    closure: Option<crate::closure::TransferSummary>,
}

struct Evaluated {
    toplevel: Option<StorePath>,
    layout_json: Option<String>,
}

fn evaluate(a: &InstallArgs) -> anyhow::Result<Evaluated> {
    let nix = Nix::new();
    let needs_layout = a.phases.contains(&Phase::Disko);
    let needs_system = a.phases.contains(&Phase::Install);
    let needs_toplevel = needs_system || a.phases.contains(&Phase::Bootloader);
    let mut out = Evaluated {
        toplevel: None,
        layout_json: None,
    };
    if let Some(path) = &a.layout {
        out.layout_json = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("Cannot read {}", path.display()))?,
        );
    }
    if let Some(system) = &a.system {
        out.toplevel = Some(
            StorePath::parse(system)
                .with_context(|| format!("--system {system} is not a store path"))?,
        );
    }
    if let Some(flake) = &a.flake {
        let target = FlakeTarget::parse(flake)?;
        if needs_layout && out.layout_json.is_none() {
            eprintln!("Evaluating {}'s disko.devices …", flake);
            let v = nix
                .eval_disko_devices(&target)
                .context("Evaluating the disk layout failed")?;
            out.layout_json = Some(v.to_string());
        }
        if needs_toplevel && out.toplevel.is_none() {
            eprintln!("Building {}'s system (nix build) …", flake);
            out.toplevel = Some(
                nix.build_toplevel(&target)
                    .context("Building the system failed")?,
            );
        }
    }
    if needs_layout && out.layout_json.is_none() {
        bail!("The disko phase needs a layout: pass --flake REF#NAME or --layout FILE");
    }
    if needs_system && out.toplevel.is_none() {
        bail!("The install phase needs a system: pass --flake REF#NAME or --system /nix/store/…");
    }
    Ok(out)
}

async fn run_disko(
    client: &mut AgentClient<Channel>,
    a: &InstallArgs,
    layout_json: String,
) -> anyhow::Result<()> {
    let mut req = LayoutRequest {
        layout_json,
        disks: disk::parse_disk_overrides(&a.disks)?,
        mount: true,
        ..Default::default()
    };
    let plan = disk::plan_and_show(client, req.clone()).await?;
    if plan.destructive && !a.yes {
        disk::confirm("This destroys the data listed above.")?;
    }
    req.confirm_destroy = plan.destructive;
    // The summary was printed as the job's last line.
    disk::apply(client, req).await?;
    Ok(())
}

/// Runs the chosen phases against a connected agent.
pub async fn run(
    client: &mut AgentClient<Channel>,
    a: InstallArgs,
    kexec_secs: Option<f64>,
) -> anyhow::Result<()> {
    let total = Instant::now();
    let mut report = Report::default();
    if let Some(k) = kexec_secs {
        report.phases.push(("kexec".into(), k));
    }
    let t = Instant::now();
    let ev = tokio::task::block_in_place(|| evaluate(&a))?;
    report
        .phases
        .push(("evaluate".into(), t.elapsed().as_secs_f64()));

    let mut phases = a.phases.clone();
    phases.sort();
    phases.dedup();
    crate::remount::ensure_root_mounted(client, &a, ev.layout_json.as_deref(), &phases).await?;
    for phase in phases {
        let t = Instant::now();
        match phase {
            Phase::Kexec => {}
            Phase::Disko => {
                eprintln!("== disko: partition, format, mount");
                run_disko(client, &a, ev.layout_json.clone().unwrap_or_default()).await?;
            }
            Phase::Install => {
                let top = ev.toplevel.clone().context("no system to install")?;
                eprintln!("== install: {top}");
                let infos = tokio::task::block_in_place(|| Nix::new().closure_path_info(&top))
                    .context("Reading the closure with nix path-info failed")?;
                let closure = ClosureSource::new(infos)?;
                let progress = if a.json {
                    Progress::Json
                } else {
                    Progress::Bar
                };
                let s = crate::retry::put_closure_resuming(
                    client,
                    closure,
                    Some(&top),
                    "",
                    progress,
                    Default::default(),
                )
                .await?;
                eprintln!(
                    "Sent {} of {} paths ({:.1} MiB of NAR as {:.1} MiB on the wire) in {:.1} s. Agent: {}",
                    s.sent_paths,
                    s.closure_paths,
                    s.nar_bytes as f64 / 1048576.0,
                    s.wire_bytes as f64 / 1048576.0,
                    s.seconds,
                    s.agent_summary
                );
                report.closure = Some(s);
            }
            Phase::Bootloader => {
                eprintln!("== bootloader ({})", a.bootloader);
                let req = landfall_proto::v1::BootloaderRequest {
                    toplevel: ev
                        .toplevel
                        .as_ref()
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    policy: crate::boot::parse_policy(&a.bootloader)? as i32,
                    ..Default::default()
                };
                crate::boot::install_bootloader(client, req).await?;
            }
            Phase::Reboot => {
                eprintln!("== reboot");
                let reply =
                    crate::boot::reboot(client, landfall_proto::v1::RebootRequest::default())
                        .await?;
                eprint!("{}", crate::boot::describe_reboot(&reply));
                if let (true, Some(ssh)) = (reply.rebooting, &a.wait_ssh) {
                    tokio::time::sleep(std::time::Duration::from_millis(
                        reply.delay_ms as u64 + 2000,
                    ))
                    .await;
                    let took =
                        crate::boot::wait_for_ssh(ssh, std::time::Duration::from_secs(a.wait_secs))
                            .await?;
                    eprintln!(
                        "The machine is back: SSH answers at {ssh} after {:.1} s",
                        took.as_secs_f64() + 2.0
                    );
                }
            }
        }
        report.phases.push((
            format!("{phase:?}").to_lowercase(),
            t.elapsed().as_secs_f64(),
        ));
    }
    report.phases.push((
        "total".into(),
        total.elapsed().as_secs_f64() + kexec_secs.unwrap_or(0.0),
    ));
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let split: Vec<String> = report
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect();
        eprintln!("Done: {}", split.join(", "));
    }
    Ok(())
}

/// The command line of `landfall install`.
#[derive(clap::Args, Clone)]
pub struct InstallCli {
    /// The machine to install, [USER@]HOST, reached with your ssh (config, agent, jump
    /// hosts and known_hosts apply; host keys are always verified).
    #[arg(long, conflicts_with = "agent")]
    pub target: Option<String>,
    /// SSH port of --target.
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// SSH identity file for --target.
    #[arg(short = 'i', long)]
    pub identity: Option<PathBuf>,
    /// Extra ssh option (`-o`), e.g. UserKnownHostsFile=FILE; repeatable.
    #[arg(long = "ssh-option")]
    pub ssh_options: Vec<String>,
    /// The RAM image to kexec (a folder with bzImage and initrd from `landfall image build`).
    /// Without it, one is built into the state folder from --kernel and --modules, or
    /// from a kernel found here: the Debian kernel scripts/fetch-kernel.sh unpacks
    /// (.cache/kernel/current), else this machine's /boot/vmlinuz-$(uname -r).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// A kernel for the RAM image: your distribution's /boot/vmlinuz-*, or nixpkgs' linux bzImage.
    #[arg(long, requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// That kernel's lib/modules/<version> folder.
    #[arg(long, requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// Where the agent answers after the kexec of --target (default: the host as ssh resolves it, port 7443).
    #[arg(long, requires = "target")]
    pub agent_addr: Option<String>,
    /// Attach to an agent already running (HOST:PORT): netboot, a rescue system, a second run.
    #[arg(long)]
    pub agent: Option<String>,
    /// The session folder; default: the target's state folder (created with fresh certificates).
    #[arg(long)]
    pub tls: Option<PathBuf>,
    /// The configuration, REF#NAME: builds nixosConfigurations.NAME.config.system.build.toplevel
    /// and evaluates its disko.devices.
    #[arg(long, conflicts_with = "system")]
    pub flake: Option<String>,
    /// An already built system (a /nix/store path) instead of --flake.
    #[arg(long)]
    pub system: Option<String>,
    /// The disko.devices JSON, instead of evaluating the flake's.
    #[arg(long)]
    pub layout: Option<PathBuf>,
    /// Put the layout's disk NAME on the target's device PATH; repeatable.
    #[arg(long = "disk", value_name = "NAME=PATH")]
    pub disks: Vec<String>,
    /// Phases to run (comma-separated); kexec runs only with --target.
    #[arg(long, value_delimiter = ',', default_values = ["kexec", "disko", "install", "bootloader", "reboot"])]
    pub phases: Vec<Phase>,
    /// The bootloader: auto (the closure's own installer when it has
    /// bin/switch-to-configuration, else native systemd-boot from boot.json),
    /// systemd-boot, closure or none.
    #[arg(long, default_value = "auto")]
    pub bootloader: String,
    /// Do not wait for the machine to come back after the reboot.
    #[arg(long)]
    pub no_wait: bool,
    /// Do not ask before destroying data.
    #[arg(long)]
    pub yes: bool,
    /// Machine-readable progress (JSON lines) and summary.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the agent (after a kexec, or to come up).
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Install onto a throwaway local qemu VM instead of a real machine: a "rescue
    /// system" (Debian kernel, busybox, OpenSSH server; 256 MiB, NVMe disk, UEFI)
    /// reachable only over SSH on a forwarded port. Runs the whole normal flow
    /// against it, then boots the installed disk and reports whether it came up.
    #[arg(long, conflicts_with_all = ["target", "agent"])]
    pub vm: bool,
    #[command(flatten)]
    pub vm_options: crate::vm::VmOptions,
    /// With --vm: leave the installed VM running at the end (its pid is printed).
    #[arg(long, requires = "vm")]
    pub keep_vm: bool,
}

/// The per-target state folder: `$LANDFALL_STATE_DIR/<target>`, else
/// `$XDG_STATE_HOME/landfall/<target>`, else `~/.local/state/landfall/<target>`.
pub fn state_dir(target: &str) -> PathBuf {
    let safe: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = std::env::var_os("LANDFALL_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|x| PathBuf::from(x).join("landfall")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/landfall"))
        })
        .unwrap_or_else(|| PathBuf::from(".landfall-state"));
    base.join(safe)
}

/// Runs `landfall install`.
pub async fn run_cli(c: InstallCli) -> anyhow::Result<()> {
    if c.vm {
        return crate::vm::install::run(c).await;
    }
    run_on_target(c, None).await
}

/// The normal flow against `--target` or `--agent`; `state` overrides the
/// per-target state folder (the local VM keeps everything in its own folder).
pub async fn run_on_target(c: InstallCli, state: Option<PathBuf>) -> anyhow::Result<()> {
    let key = match (&c.target, &c.agent) {
        (Some(t), _) => match c.port {
            Some(p) => format!("{t}:{p}"),
            None => t.clone(),
        },
        (None, Some(a)) => a.clone(),
        (None, None) => {
            bail!("Say where to install: --target [USER@]HOST (over SSH) or --agent HOST:PORT")
        }
    };
    let state = state.unwrap_or_else(|| state_dir(&key));
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
    let total = Instant::now();
    let mut kexec_secs = None;
    let addr = if let Some(target) = &c.target {
        let ssh = crate::kexec::SshArgs {
            target: target.clone(),
            port: c.port,
            identity: c.identity.clone(),
            ssh_options: c.ssh_options.clone(),
        };
        let default_addr = c
            .agent_addr
            .clone()
            .unwrap_or_else(|| crate::kexec::default_agent_addr_of(&ssh));
        // An agent of this session already answering (a second run): no kexec.
        let already =
            crate::client::connect_with_retry(&default_addr, &tls, std::time::Duration::ZERO).await;
        let answering = match already {
            Ok(mut cl) => tokio::time::timeout(
                std::time::Duration::from_secs(5),
                cl.status(landfall_proto::v1::StatusRequest {}),
            )
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false),
            Err(_) => false,
        };
        if answering {
            eprintln!("== kexec: the agent already answers at {default_addr}; skipping");
            default_addr
        } else if c.phases.contains(&Phase::Kexec) {
            let image = match &c.image {
                Some(i) => i.clone(),
                None => {
                    // The kernel the user names, else one found here (see vm::kernel).
                    let k = crate::vm::kernel::find(c.kernel.as_deref(), c.modules.as_deref())?;
                    eprintln!("Building the agent's RAM image from {}", k.image.display());
                    crate::image::build_from(&k, &state.join("image"))?
                }
            };
            eprintln!("== kexec: {key}");
            let t = Instant::now();
            let addr = crate::kexec::kexec_and_wait(&crate::kexec::KexecArgs {
                ssh,
                image,
                tls: tls.clone(),
                agent_bin: None,
                agent: Some(default_addr.clone()),
                append: None,
                wait: c.wait,
            })
            .await?;
            kexec_secs = Some(t.elapsed().as_secs_f64());
            addr
        } else {
            bail!("No agent answers at {default_addr}, and the kexec phase was not asked for")
        }
    } else {
        c.agent.clone().unwrap_or_default()
    };
    let mut client =
        crate::client::connect_with_retry(&addr, &tls, std::time::Duration::from_secs(c.wait))
            .await?;
    let wait_ssh = match (&c.target, c.no_wait) {
        (Some(t), false) => {
            let host = crate::kexec::default_agent_addr_of(&crate::kexec::SshArgs {
                target: t.clone(),
                port: None,
                identity: None,
                ssh_options: c.ssh_options.clone(),
            });
            let host = host
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or(host);
            Some(format!("{host}:{}", c.port.unwrap_or(22)))
        }
        _ => None,
    };
    crate::boot::parse_policy(&c.bootloader)?;
    let args = InstallArgs {
        bootloader: c.bootloader.clone(),
        wait_ssh,
        wait_secs: c.wait,
        flake: c.flake,
        system: c.system,
        layout: c.layout,
        disks: c.disks,
        phases: c
            .phases
            .into_iter()
            .filter(|p| *p != Phase::Kexec)
            .collect(),
        yes: c.yes,
        json: c.json,
    };
    run(&mut client, args, kexec_secs).await?;
    if !c.json {
        eprintln!("All phases done in {:.1} s", total.elapsed().as_secs_f64());
    }
    Ok(())
}
