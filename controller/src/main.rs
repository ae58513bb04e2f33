//! `landfall`: install NixOS onto a remote machine over SSH, with one command.
//!
//! This binary is the laptop half: it makes session certificates, builds the
//! agent's RAM image, and drives the agent over gRPC with mutual TLS.

mod agent_error;
mod agent_status;
mod boot;
mod certs;
mod client;
mod closure;
mod disk;
mod disk_keys;
mod files;
mod flow;
mod hardware_config;
mod image;
mod install;
mod install_id;
mod kernel;
mod kexec;
mod nix;
mod passphrase;
mod phase;
mod render;
mod retry;
mod sanitize;
mod secret_file;
mod session_dir;
mod ssh;
mod state;
mod substitute;
mod vm;
mod vm_options;

use std::path::PathBuf;
use std::time::Duration;

use agent_error::AgentError;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use landfall_proto::v1::{InventoryRequest, LayoutRequest, LogsRequest};

#[derive(Parser)]
#[command(
    name = "landfall",
    version,
    about = "Install NixOS onto a remote machine over SSH, with one command",
    long_about = "landfall installs NixOS onto a machine you can reach over SSH (a cloud VPS, a rented \
                  server, a box in a rescue system): it kexecs a small RAM image with the landfall agent, \
                  then partitions, formats, copies the system closure and installs the bootloader, \
                  driving the agent over gRPC secured with mutual TLS."
)]
struct Cli {
    /// Show the controller's own trace on stderr: -v for debug, -vv for
    /// everything (RUST_LOG, when set, chooses instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// How to reach a running agent.
#[derive(Args, Clone)]
struct AgentArgs {
    /// The agent's address, HOST:PORT (e.g. 203.0.113.7:7443 or [2001:db8::1]:7443).
    #[arg(long)]
    agent: String,
    /// The session folder made by `landfall certs init`.
    #[arg(long)]
    tls: PathBuf,
    /// How long to keep trying to connect (seconds), for an agent that is still booting.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Session certificates (a fresh CA per target, agent and controller identities).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Show a running agent's machine: disks, memory, CPUs, firmware, NICs.
    Inventory {
        #[command(flatten)]
        agent: AgentArgs,
        /// Print the data as JSON instead of a table.
        #[arg(long, conflicts_with = "hardware_config")]
        json: bool,
        /// Print the machine's NixOS hardware configuration instead, as
        /// `nixos-generate-config --show-hardware-config --no-filesystems`
        /// would print it there.
        #[arg(long)]
        hardware_config: bool,
    },
    /// Show what a running agent is doing, its mounts and start-up time.
    Status {
        #[command(flatten)]
        agent: AgentArgs,
        #[arg(long)]
        json: bool,
    },
    /// The disk layout (disko's `disko.devices`): plan it, or apply it through an agent.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Install NixOS: kexec the target into the agent's RAM image over SSH
    /// (--target), partition and format (disko), stream the system closure
    /// (install). `--phases` picks some; a re-run skips what is already done.
    /// `--agent` attaches to an agent already running instead of --target.
    Install(Box<install::InstallCli>),
    /// The agent's RAM image (kernel + initrd with the agent as /init).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Boot the agent's RAM image on a Linux machine reachable over SSH (kexec),
    /// then wait for the agent to answer over mutual TLS.
    Kexec(kexec::KexecArgs),
    /// Install the bootloader into the target's installed root: native systemd-boot
    /// from the closure's boot.json, or the closure's own switch-to-configuration.
    Bootloader {
        #[command(flatten)]
        agent: AgentArgs,
        /// auto (the closure's installer if it has one, else systemd-boot), systemd-boot,
        /// closure or none.
        #[arg(long, default_value = "auto")]
        policy: String,
        /// The system to boot (default: the root's /nix/var/nix/profiles/system).
        #[arg(long)]
        toplevel: Option<String>,
        /// The installed root on the target (default: the agent's root, /mnt).
        #[arg(long)]
        root: Option<String>,
        /// systemd-boot's menu timeout in seconds (default 5, as NixOS).
        #[arg(long)]
        loader_timeout: Option<u32>,
        /// Only show what would be done.
        #[arg(long)]
        plan: bool,
    },
    /// Unmount the target's installed root and reboot it; then wait for its SSH server.
    Reboot {
        #[command(flatten)]
        agent: AgentArgs,
        /// Do not wait for the machine to come back.
        #[arg(long)]
        no_wait: bool,
        /// Where the rebooted machine's SSH answers: PORT on the agent's host, or HOST:PORT.
        #[arg(long, default_value = "22")]
        ssh_port: String,
        /// How long to wait for SSH (seconds).
        #[arg(long, default_value_t = 600)]
        wait_timeout: u64,
        /// Reboot even though the bootloader install failed.
        #[arg(long)]
        force: bool,
        /// Only sync and unmount; do not reboot.
        #[arg(long)]
        unmount_only: bool,
    },
    /// Start a throwaway local qemu "rescue" machine (Debian kernel, busybox, OpenSSH
    /// server; 256 MiB, NVMe disk, UEFI) reachable only over SSH on a forwarded port,
    /// to try `landfall install --target` on. `landfall install --vm` does this itself.
    Vm(vm::VmCli),
    /// Print a running agent's log (`--follow` to keep printing new lines).
    Logs {
        #[command(flatten)]
        agent: AgentArgs,
        #[arg(long, short)]
        follow: bool,
    },
}

/// Where the layout comes from and which disks it goes to.
#[derive(Args, Clone)]
struct LayoutArgs {
    /// The `disko.devices` JSON (evaluated with `nix eval --json`, or written by hand).
    #[arg(long)]
    layout: PathBuf,
    /// Put the layout's disk NAME on PATH instead of its `device`; repeatable.
    #[arg(long = "disk", value_name = "NAME=PATH")]
    disks: Vec<String>,
}

#[derive(Subcommand)]
enum DiskCommand {
    /// Show the plan without touching anything: alone, what the layout creates; with
    /// --agent, what exists on the target's disks and will be destroyed, and the exact sectors.
    Plan {
        #[command(flatten)]
        layout: LayoutArgs,
        /// Plan on this agent's real disks (HOST:PORT; needs --tls).
        #[arg(long, requires = "tls")]
        agent: Option<String>,
        #[arg(long)]
        tls: Option<PathBuf>,
        /// Print the agent's plan as JSON.
        #[arg(long)]
        json: bool,
        /// Plan to keep a disk that holds the layout even if this install did not format it.
        #[arg(long)]
        keep_existing: bool,
    },
    /// Partition, format and mount through an agent. Asks before destroying data.
    Apply {
        #[command(flatten)]
        layout: LayoutArgs,
        #[command(flatten)]
        agent: AgentArgs,
        /// Do not ask before destroying what the plan lists.
        #[arg(long)]
        yes: bool,
        /// Do not mount the filesystems after formatting.
        #[arg(long)]
        no_mount: bool,
        /// Rewrite disks that already hold the layout.
        #[arg(long)]
        force: bool,
        /// Keep a disk that already holds the layout even though this install did not
        /// format it. By default a disk is kept only if it carries this install's ID
        /// (the one in the agent's state folder, shared with `landfall install --agent`
        /// until its reboot phase); any other copy of the layout is wiped and recreated
        /// after confirmation.
        #[arg(long)]
        keep_existing: bool,
        /// Mount under this folder on the target instead of the agent's root (/mnt).
        #[arg(long)]
        root: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the RAM image: writes OUT/bzImage and OUT/initrd (zstd newc cpio with the
    /// static agent as /init and the storage, network and filesystem modules it needs).
    Build {
        /// The kernel image (bzImage), e.g. /boot/vmlinuz-6.1.0-28-amd64 or a nixpkgs `linux` package's bzImage.
        #[arg(long)]
        kernel: PathBuf,
        /// That kernel's modules folder, lib/modules/<version>.
        #[arg(long)]
        modules: PathBuf,
        /// The static landfall-agent binary (default: $LANDFALL_AGENT_BIN or the workspace's musl build).
        #[arg(long)]
        agent: Option<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Further modules to include (names or aliases); repeatable.
        #[arg(long = "module")]
        extra_modules: Vec<String>,
        /// Also embed a session's agent certificates (from `landfall certs init`).
        #[arg(long)]
        tls: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a new session: CA, agent server certificate (name "landfall-agent"),
    /// controller client certificate. Keys are written with mode 0600.
    Init {
        /// Folder to write ca.pem, ca.key, agent.pem, agent.key, controller.pem, controller.key.
        #[arg(long)]
        dir: PathBuf,
        /// A label for the CA's name, e.g. the target's host name.
        #[arg(long, default_value = "target")]
        label: String,
        /// Replace an existing session in that folder.
        #[arg(long)]
        force: bool,
    },
    /// Issue a fresh agent identity in a session (what each kexec and `image
    /// build --tls` do): a new key, a certificate valid a few days, a new boot
    /// ID; the controller then accepts only that key. For an agent started by
    /// hand with `landfall-agent serve --tls`.
    Agent {
        /// The session folder (`landfall certs init`).
        #[arg(long)]
        dir: PathBuf,
    },
}

async fn connect(
    a: &AgentArgs,
) -> anyhow::Result<landfall_proto::v1::agent_client::AgentClient<tonic::transport::Channel>> {
    Ok(client::connect_with_retry(&a.agent, &a.tls, Duration::from_secs(a.wait)).await?)
}

/// Prints a reply as pretty JSON or as the table `table` renders (both
/// escaped by [`sanitize`]: the reply comes from the target).
fn show<T: serde::Serialize>(reply: &T, json: bool, table: fn(&T) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", sanitize::json(reply, true)?);
    } else {
        print!("{}", table(reply));
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Certs(CertsCommand::Init { dir, label, force }) => {
            certs::init(&dir, &label, force)?;
            println!("Created a landfall session in {}", dir.display());
            println!("  the agent needs ca.pem, agent.pem, agent.key, boot-id; keep ca.key and controller.key private");
            println!(
                "  (each kexec and `image build --tls` issues a fresh agent identity and pins it)"
            );
        }
        Command::Certs(CertsCommand::Agent { dir }) => {
            let id = certs::issue_agent(&dir)?;
            println!(
                "Issued a fresh agent identity in {}: boot ID {}, key sha256 {}",
                dir.display(),
                id.boot_id,
                id.pin
            );
            println!("  the agent needs ca.pem, agent.pem, agent.key, boot-id; an agent with an older key is refused");
        }
        // --vm builds a throwaway machine and runs the same flow against it.
        Command::Install(cli) if cli.vm => vm::install::run(*cli).await?,
        Command::Install(cli) => flow::install::run_on_target(*cli, None, None).await?,
        Command::Disk(DiskCommand::Plan {
            layout,
            agent,
            tls,
            json,
            keep_existing,
        }) => {
            let text = std::fs::read_to_string(&layout.layout)
                .with_context(|| format!("Cannot read {}", layout.layout.display()))?;
            let parsed = landfall_proto::layout::Layout::from_json(&text)
                .with_context(|| format!("{} is not a valid layout", layout.layout.display()))?;
            match (agent, tls) {
                (Some(agent), Some(tls)) => {
                    let (install_id, _) = install_id::current(&state::state_dir(&agent))?;
                    let mut c = connect(&AgentArgs {
                        agent,
                        tls,
                        wait: 0,
                    })
                    .await?;
                    let req = LayoutRequest {
                        layout_json: text,
                        disks: disk::parse_disk_overrides(&layout.disks)?,
                        install_id,
                        keep_existing,
                        ..Default::default()
                    };
                    let plan = disk::plan(&mut c, req).await?;
                    if json {
                        let v: serde_json::Value = serde_json::from_str(&plan.plan_json)
                            .context("The agent's plan is not JSON")?;
                        println!("{}", sanitize::json(&v, false)?);
                    } else {
                        print!("{}", sanitize::text(&plan.rendered));
                        print!("{}", disk::identities_of(&mut c, &plan).await);
                    }
                }
                _ => print!("{}", disk::describe(&parsed)),
            }
        }
        Command::Disk(DiskCommand::Apply {
            layout,
            agent,
            yes,
            no_mount,
            force,
            keep_existing,
            root,
        }) => {
            let text = std::fs::read_to_string(&layout.layout)
                .with_context(|| format!("Cannot read {}", layout.layout.display()))?;
            let (install_id, _) = install_id::current(&state::state_dir(&agent.agent))?;
            let mut c = connect(&agent).await?;
            let mut req = LayoutRequest {
                layout_json: text,
                disks: disk::parse_disk_overrides(&layout.disks)?,
                root: root.unwrap_or_default(),
                mount: !no_mount,
                force,
                install_id,
                keep_existing,
                ..Default::default()
            };
            let plan = disk::plan_and_show(&mut c, req.clone()).await?;
            if (plan.destructive || force) && !yes {
                disk::confirm(&disk::destroy_question(&plan))?;
            }
            req.confirm_destroy = plan.destructive || force;
            if req.confirm_destroy {
                // The agent applies exactly what was shown, or nothing.
                req.confirmed_plan = landfall_proto::layout::plan_digest(&plan.plan_json);
            }
            println!("{}", sanitize::text(&disk::apply(&mut c, req).await?));
        }
        Command::Image(ImageCommand::Build {
            kernel,
            modules,
            agent,
            out,
            extra_modules,
            tls,
        }) => {
            print!(
                "{}",
                image::build(image::BuildArgs {
                    kernel,
                    modules,
                    agent,
                    out,
                    extra_modules,
                    tls,
                })?
            );
        }
        Command::Inventory {
            agent,
            json,
            hardware_config,
        } => {
            let mut c = connect(&agent).await?;
            let inv = c.inventory(InventoryRequest {}).await;
            let inv = inv
                .map_err(AgentError::from)
                .context("Inventory failed")?
                .into_inner();
            if hardware_config {
                print!("{}", hardware_config::render(&inv)?);
            } else {
                show(&inv, json, render::inventory)?;
            }
        }
        Command::Status { agent, json } => {
            let mut c = connect(&agent).await?;
            let st = match agent_status::ask(&mut c, Duration::from_secs(60)).await {
                Ok(st) => st,
                Err(e) => return Err(e.into()),
            };
            show(&st, json, render::status)?;
            if let Some(why) = agent_status::other_boot(&st, &agent.tls) {
                eprintln!("Note: {why}");
            }
        }
        Command::Kexec(a) => kexec::run_kexec(a).await?,
        Command::Vm(c) => vm::run_vm(c).await?,
        Command::Bootloader {
            agent,
            policy,
            toplevel,
            root,
            loader_timeout,
            plan,
        } => {
            let mut c = connect(&agent).await?;
            let req = landfall_proto::v1::BootloaderRequest {
                toplevel: toplevel.unwrap_or_default(),
                policy: boot::parse_policy(&policy)? as i32,
                root: root.unwrap_or_default(),
                plan_only: plan,
                loader_timeout_secs: loader_timeout,
                ..Default::default()
            };
            println!(
                "{}",
                sanitize::text(&boot::install_bootloader(&mut c, req).await?)
            );
        }
        Command::Reboot {
            agent,
            no_wait,
            ssh_port,
            wait_timeout,
            force,
            unmount_only,
        } => {
            let ssh = boot::ssh_address(&agent.agent, &ssh_port)?;
            let mut c = connect(&agent).await?;
            let req = landfall_proto::v1::RebootRequest {
                unmount_only,
                force,
                ..Default::default()
            };
            let reply = boot::reboot(&mut c, req).await?;
            print!("{}", boot::describe_reboot(&reply));
            if reply.rebooting && !no_wait {
                tokio::time::sleep(Duration::from_millis(reply.delay_ms as u64 + 2000)).await;
                let took = boot::wait_for_ssh(&ssh, Duration::from_secs(wait_timeout)).await?;
                println!(
                    "The machine is back: SSH answers at {ssh} {:.1} s after the reboot",
                    took.as_secs_f64() + reply.delay_ms as f64 / 1000.0 + 2.0
                );
            }
        }
        Command::Logs { agent, follow } => {
            let mut c = connect(&agent).await?;
            let mut stream = c
                .logs(LogsRequest { follow })
                .await
                .map_err(AgentError::from)
                .context("Logs failed")?
                .into_inner();
            while let Some(line) = stream.message().await.context("The log stream broke")? {
                println!(
                    "{} {:>5} {}",
                    line.unix_ms,
                    sanitize::line(&line.level),
                    sanitize::line(&line.message)
                );
            }
        }
    }
    Ok(())
}

/// The controller's tracing output, on stderr: off by default, `-v` debug
/// for landfall itself, `-vv` trace for everything; `RUST_LOG` overrides.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match (std::env::var("RUST_LOG"), verbose) {
        (Ok(spec), _) if !spec.is_empty() => EnvFilter::new(spec),
        (_, 0) => return,
        (_, 1) => EnvFilter::new("landfall=debug"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        // Errors carry the agent's messages and remote stderr: escaped.
        eprintln!("Error: {}", sanitize::text(&e.to_string()));
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {}", sanitize::text(&cause.to_string()));
        }
        std::process::exit(1);
    }
}
