//! `landfall`: install NixOS onto a remote machine over SSH, with one command.
//!
//! This binary is the laptop half: it makes session certificates, builds the
//! agent's RAM image, and drives the agent over gRPC with mutual TLS.

mod certs;
mod client;
mod image;
mod render;
mod ssh;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use landfall_proto::v1::{InventoryRequest, LogsRequest, StatusRequest};

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
        #[arg(long)]
        json: bool,
    },
    /// Show what a running agent is doing, its mounts and start-up time.
    Status {
        #[command(flatten)]
        agent: AgentArgs,
        #[arg(long)]
        json: bool,
    },
    /// The agent's RAM image (kernel + initrd with the agent as /init).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Boot the agent's RAM image on a Linux machine reachable over SSH (kexec),
    /// then wait for the agent to answer over mutual TLS.
    Kexec(KexecArgs),
    /// Print a running agent's log (`--follow` to keep printing new lines).
    Logs {
        #[command(flatten)]
        agent: AgentArgs,
        #[arg(long, short)]
        follow: bool,
    },
}

/// `landfall kexec`.
#[derive(Args, Clone)]
struct KexecArgs {
    /// The machine, [USER@]HOST, reached with your ssh (config, agent, known_hosts apply).
    #[arg(long)]
    target: String,
    /// SSH port.
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// SSH identity file.
    #[arg(short = 'i', long)]
    identity: Option<PathBuf>,
    /// Extra ssh option (`-o`), e.g. UserKnownHostsFile=FILE; repeatable.
    #[arg(long = "ssh-option")]
    ssh_options: Vec<String>,
    /// The RAM image folder (bzImage + initrd, from `landfall image build`).
    #[arg(long)]
    image: PathBuf,
    /// The session folder (`landfall certs init`).
    #[arg(long)]
    tls: PathBuf,
    /// The static landfall-agent binary to upload (default: $LANDFALL_AGENT_BIN or beside landfall).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// Where the agent answers after the kexec (default HOST:7443).
    #[arg(long)]
    agent: Option<String>,
    /// Extra kernel parameters for the image.
    #[arg(long)]
    append: Option<String>,
    /// Seconds to wait for the agent after the kexec.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

async fn run_kexec(a: KexecArgs) -> anyhow::Result<()> {
    let target = ssh::Target::parse(&a.target)?
        .port(a.port)
        .identity(a.identity.clone());
    let target = a
        .ssh_options
        .iter()
        .fold(target, |t, o| t.option(o.clone()));
    let agent_bin = a
        .agent_bin
        .clone()
        .or_else(image::find_agent)
        .context("No static agent found: pass --agent-bin or set LANDFALL_AGENT_BIN")?;
    let mut plan = ssh::KexecPlan::from_image_dir(&a.image, agent_bin, a.tls.clone());
    plan.append = a.append.clone();
    let addr = a.agent.clone().unwrap_or_else(|| {
        let host = target.resolved_host();
        if host.contains(':') {
            format!("[{host}]:7443")
        } else {
            format!("{host}:7443")
        }
    });
    println!("Checking {} and uploading the image", target.destination());
    let t = target.clone();
    let p = plan.clone();
    let report = tokio::task::spawn_blocking(move || t.prepare_kexec(&p)).await??;
    for u in &report.uploaded {
        println!(
            "  {} {} ({} bytes)",
            if u.sent { "uploaded" } else { "already there:" },
            u.name,
            u.bytes
        );
    }
    println!(
        "Target: {} {}, {} MiB RAM; image {} bytes (kernel + initrd) in {}",
        report.facts.os,
        report.facts.arch,
        report.facts.mem_total_bytes >> 20,
        report.image_bytes,
        report.upload_dir
    );
    let t = target.clone();
    let r = report.clone();
    tokio::task::spawn_blocking(move || t.start_kexec(&r, &plan)).await??;
    let kexec_at = std::time::Instant::now();
    println!(
        "Kexec started; waiting up to {} s for the agent at {addr}",
        a.wait
    );
    let answered = async {
        let mut c = client::connect_with_retry(&addr, &a.tls, Duration::from_secs(a.wait)).await?;
        let left = Duration::from_secs(a.wait).saturating_sub(kexec_at.elapsed());
        tokio::time::timeout(
            left.max(Duration::from_secs(10)),
            c.status(StatusRequest {}),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no Status answer"))?
        .map_err(|s| status_error("Status", s))?;
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
             Check: is the agent's port (7443) reachable from here (firewall, security group, NAT port forward)?\n\
             What does the machine's console show (the agent logs there; after a kernel panic the machine \
             reboots into its old system)?\n\
             Did the network come back (the agent restores the addresses and routes captured before the \
             kexec; `landfall-agent kexec --dry-run` on the target prints them)?",
            a.wait
        );
    }
    println!(
        "The agent answered {:.1} s after the kexec (at {addr})",
        kexec_at.elapsed().as_secs_f64()
    );
    Ok(())
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
}

async fn connect(
    a: &AgentArgs,
) -> anyhow::Result<landfall_proto::v1::agent_client::AgentClient<tonic::transport::Channel>> {
    Ok(client::connect_with_retry(&a.agent, &a.tls, Duration::from_secs(a.wait)).await?)
}

fn status_error(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} failed: {} ({:?})", s.message(), s.code())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Certs(CertsCommand::Init { dir, label, force }) => {
            certs::init(&dir, &label, force)?;
            println!("Created a landfall session in {}", dir.display());
            println!("  the agent needs ca.pem, agent.pem, agent.key; keep ca.key and controller.key private");
        }
        Command::Image(ImageCommand::Build { kernel, modules, agent, out, extra_modules, tls }) => {
            image::build(image::BuildArgs { kernel, modules, agent, out, extra_modules, tls })?;
        }
        Command::Inventory { agent, json } => {
            let mut c = connect(&agent).await?;
            let inv = c
                .inventory(InventoryRequest {})
                .await
                .map_err(|s| status_error("Inventory", s))?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                print!("{}", render::inventory(&inv));
            }
        }
        Command::Status { agent, json } => {
            let mut c = connect(&agent).await?;
            let st = c
                .status(StatusRequest {})
                .await
                .map_err(|s| status_error("Status", s))?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", render::status(&st));
            }
        }
        Command::Kexec(a) => run_kexec(a).await?,
        Command::Logs { agent, follow } => {
            let mut c = connect(&agent).await?;
            let mut stream = c
                .logs(LogsRequest { follow })
                .await
                .map_err(|s| status_error("Logs", s))?
                .into_inner();
            while let Some(line) = stream.message().await.context("The log stream broke")? {
                println!("{} {:>5} {}", line.unix_ms, line.level, line.message);
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("Error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
