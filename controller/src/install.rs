//! `landfall install`: the phases users run, in order — evaluate, disko
//! (partition, format, mount), install (stream the closure) — each also
//! runnable alone with `--phases`. A re-run skips work already done: a layout
//! already applied destroys nothing, paths already on the target are not sent.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use landfall_proto::nar::StorePath;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::LayoutRequest;
use tonic::transport::Channel;

use crate::closure::{put_closure, Progress};
use crate::disk;
use crate::nix::{ClosureSource, FlakeTarget, Nix};

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Phase {
    /// Partition, format and mount the target's disks from the disko layout.
    Disko,
    /// Stream the system closure into the new store, verified and registered.
    Install,
}

/// What to install.
pub struct InstallArgs {
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
        if needs_system && out.toplevel.is_none() {
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
    let plan = disk::plan(client, req.clone()).await?;
    eprint!("{}", plan.rendered);
    if plan.destructive && !a.yes {
        disk::confirm("This destroys the data listed above.")?;
    }
    req.confirm_destroy = plan.destructive;
    let summary = disk::apply(client, req).await?;
    eprintln!("{summary}");
    Ok(())
}

/// Runs the chosen phases against a connected agent.
pub async fn run(client: &mut AgentClient<Channel>, a: InstallArgs) -> anyhow::Result<()> {
    let total = Instant::now();
    let mut report = Report::default();
    let t = Instant::now();
    let ev = tokio::task::block_in_place(|| evaluate(&a))?;
    report
        .phases
        .push(("evaluate".into(), t.elapsed().as_secs_f64()));

    let mut phases = a.phases.clone();
    phases.sort();
    phases.dedup();
    for phase in phases {
        let t = Instant::now();
        match phase {
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
                let s = put_closure(client, closure, Some(&top), "", progress).await?;
                eprintln!(
                    "Sent {} of {} paths ({:.1} MiB of NAR as {:.1} MiB zstd) in {:.1} s. Agent: {}",
                    s.sent_paths,
                    s.closure_paths,
                    s.nar_bytes as f64 / 1048576.0,
                    s.wire_bytes as f64 / 1048576.0,
                    s.seconds,
                    s.agent_summary
                );
                report.closure = Some(s);
            }
        }
        report.phases.push((
            format!("{phase:?}").to_lowercase(),
            t.elapsed().as_secs_f64(),
        ));
    }
    report
        .phases
        .push(("total".into(), total.elapsed().as_secs_f64()));
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
