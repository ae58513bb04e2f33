//! `landfall-agent disk plan|apply|mount --layout FILE [--disk NAME=PATH]…`:
//! the disk engine from the command line, the way disko's format and mount
//! modes are called. Image files given as disks are attached to loop devices.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use landfall_agent::disk::{self, ApplyOptions};
use landfall_agent::steps::StepEvent;
use landfall_proto::layout::{render, Layout, PlanOptions};

#[derive(clap::Args, Debug)]
pub struct DiskArgs {
    #[command(subcommand)]
    command: DiskCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DiskCommand {
    /// Show what apply would destroy and create; touches nothing.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Print the plan as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Partition, format and mount.
    Apply {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        mount: MountArgs,
        /// Do not mount after formatting.
        #[arg(long)]
        no_mount: bool,
        /// Do not ask before destroying data.
        #[arg(long)]
        yes: bool,
        /// Rewrite disks even when they already hold the layout.
        #[arg(long)]
        force: bool,
    },
    /// Mount an already applied layout.
    Mount {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        mount: MountArgs,
    },
    /// Unmount a layout, turn its swap off and close its LVs and LUKS devices.
    Unmount {
        #[command(flatten)]
        common: Common,
        /// Where the layout's / is mounted.
        #[arg(long, default_value = "/mnt")]
        root: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct Common {
    /// The `disko.devices` JSON (evaluated or hand-written).
    #[arg(long)]
    layout: PathBuf,
    /// Use PATH (a block device or an image file) for the layout's disk NAME.
    #[arg(long = "disk", value_name = "NAME=PATH")]
    disks: Vec<String>,
    /// Logical sector size of loop devices made for image files.
    #[arg(long, default_value_t = 512)]
    image_sector_size: u32,
    /// The passphrase of the `askPassword` LUKS device NAME: the first line
    /// of FILE (`-` reads stdin); repeatable.
    #[arg(long = "luks-password", value_name = "NAME=FILE")]
    luks_passwords: Vec<String>,
    /// Plan and format as install ID (what `landfall install` sends): disks
    /// get a GPT disk GUID derived from it, and a disk that holds the layout
    /// is kept only if it carries that GUID — any other copy of the layout is
    /// wiped and recreated after confirmation. Without it, a local run
    /// belongs to no install and keeps a disk that holds the layout, as
    /// `--keep-existing` does.
    #[arg(long, value_name = "ID")]
    install_id: Option<String>,
    /// Keep a disk that holds the layout even if this install did not format it.
    #[arg(long)]
    keep_existing: bool,
}

impl Common {
    fn plan_options(&self) -> PlanOptions {
        match &self.install_id {
            Some(id) => PlanOptions::install(id, self.keep_existing),
            None => PlanOptions::keep_existing(),
        }
    }
}

/// Read `--luks-password NAME=FILE` arguments: each passphrase is FILE's
/// first line, as cryptsetup reads a passphrase from a pipe.
fn passphrases(args: &[String]) -> anyhow::Result<disk::LuksPassphrases> {
    let mut out = disk::LuksPassphrases::new();
    for a in args {
        let Some((name, file)) = a.split_once('=') else {
            bail!("--luks-password {a}: expected NAME=FILE");
        };
        let text = zeroize::Zeroizing::new(if file == "-" {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read(file)
                .with_context(|| format!("--luks-password {name}: cannot read {file}"))?
        });
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        out.insert(name, zeroize::Zeroizing::new(line.to_vec()));
    }
    Ok(out)
}

#[derive(clap::Args, Debug)]
struct MountArgs {
    /// Where the layout's / is mounted.
    #[arg(long, default_value = "/mnt")]
    root: PathBuf,
    /// Also activate swap partitions.
    #[arg(long)]
    swapon: bool,
}

fn load(
    common: &Common,
    writable: bool,
) -> anyhow::Result<(Layout, std::collections::BTreeMap<String, disk::OpenDisk>)> {
    let text = std::fs::read_to_string(&common.layout)
        .with_context(|| format!("Cannot read {}", common.layout.display()))?;
    let layout = Layout::from_json(&text)
        .with_context(|| format!("Invalid layout {}", common.layout.display()))?;
    let overrides = disk::parse_overrides(&layout, &common.disks)?;
    let disks = disk::open_disks(&layout, &overrides, writable, common.image_sector_size)?;
    Ok((layout, disks))
}

/// The steps apply would take, each with its description.
fn print_steps(plan: &landfall_proto::layout::Plan, opts: &ApplyOptions) {
    println!("steps (each skipped when its work is already done):");
    for (i, a) in disk::actions(plan, opts).iter().enumerate() {
        println!("  {:>2}. {}", i + 1, a.description(plan));
    }
}

fn print_event(e: &StepEvent) {
    eprintln!("{e}");
}

fn confirm() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("Refusing to destroy data without --yes: stdin is not a terminal to ask on");
    }
    eprint!("This destroys the data listed above. Type \"yes\" to continue: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("Not confirmed; nothing was changed");
    }
    Ok(())
}

pub fn run(args: &DiskArgs) -> anyhow::Result<()> {
    match &args.command {
        DiskCommand::Plan { common, json } => {
            let (layout, disks) = load(common, false)?;
            let plan = disk::plan_layout(&layout, &disks, &common.plan_options())?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", render(&plan, "/mnt"));
                print_steps(&plan, &ApplyOptions::default());
            }
            Ok(())
        }
        DiskCommand::Apply {
            common,
            mount,
            no_mount,
            yes,
            force,
        } => {
            let (layout, disks) = load(common, true)?;
            let plan = disk::plan_layout(&layout, &disks, &common.plan_options())?;
            let root = mount.root.to_string_lossy();
            print!("{}", render(&plan, &root));
            let opts = ApplyOptions {
                root: mount.root.clone(),
                mount: !no_mount,
                swapon: mount.swapon,
                force: *force,
            };
            print_steps(&plan, &opts);
            if (plan.is_destructive() || *force) && !yes {
                confirm()?;
            }
            let keys = passphrases(&common.luks_passwords)?;
            let report = disk::apply_with_keys(&plan, &disks, &opts, &keys, &mut print_event)?;
            if report.already_applied {
                println!("already applied: the disks hold this layout; nothing was destroyed");
            } else {
                println!(
                    "applied: {} step(s) run, {} skipped",
                    report.executed, report.skipped
                );
            }
            for p in &report.partitions {
                println!(
                    "{} partition {}: {} ({})",
                    p.disk,
                    p.number,
                    p.node.display(),
                    p.label
                );
            }
            for (name, outcome) in &report.luks {
                match outcome {
                    disk::mapper::LuksOutcome::Formatted { uuid } => {
                        println!("luks {name}: formatted {uuid}, open as /dev/mapper/{name}")
                    }
                    disk::mapper::LuksOutcome::Reopened { uuid } => {
                        println!("luks {name}: opened the existing {uuid} as /dev/mapper/{name}")
                    }
                }
            }
            for (name, vg) in &report.volume_groups {
                println!(
                    "volume group {name}: {:?}; new LVs {:?}; activated {:?}",
                    vg.outcome, vg.new_lvs, vg.activated
                );
            }
            Ok(())
        }
        DiskCommand::Mount { common, mount } => {
            let (layout, disks) = load(common, false)?;
            let plan = disk::plan_layout(&layout, &disks, &common.plan_options())?;
            let opts = ApplyOptions {
                root: mount.root.clone(),
                mount: true,
                swapon: mount.swapon,
                force: false,
            };
            let keys = passphrases(&common.luks_passwords)?;
            let report =
                disk::mount_layout_with_keys(&plan, &disks, &opts, &keys, &mut print_event)?;
            println!(
                "mounted: {} step(s) run, {} skipped",
                report.executed, report.skipped
            );
            Ok(())
        }
        DiskCommand::Unmount { common, root } => {
            let (layout, disks) = load(common, false)?;
            // Unmounting destroys nothing: whoever formatted the disks.
            let plan = disk::plan_layout(&layout, &disks, &PlanOptions::keep_existing())?;
            let unmounted = disk::unmount_layout(&plan, root)?;
            let swaps = disk::swapoff_layout(&plan, &disks, root)?;
            let closed = disk::close_layout(&plan)?;
            println!(
                "unmounted {unmounted}, swapped off {swaps}, closed {}",
                if closed.is_empty() {
                    "nothing".to_string()
                } else {
                    closed.join(" ")
                }
            );
            Ok(())
        }
    }
}
