//! `landfall-agent`: the on-target half of landfall.
//!
//! As PID 1 of the RAM image it sets the machine up and serves the
//! `landfall.v1.Agent` gRPC service over mutual TLS; on an ordinary Linux the
//! same code runs through subcommands (`serve`, `inventory`, …).

mod disk_cli;
mod mkfs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use landfall_agent::init::{self, monotonic_ns, START_ENV};
use landfall_agent::server::{serve, ServeOptions};
use landfall_agent::service::AgentState;

#[derive(Parser)]
#[command(
    name = "landfall-agent",
    version,
    about = "landfall's on-target agent",
    long_about = "landfall's on-target agent. As PID 1 of landfall's RAM image it starts by itself \
                  (mounts, drivers, network) and serves the landfall.v1 gRPC API over mutual TLS on port 7443. \
                  On an ordinary Linux (a rescue system, a test machine) use the subcommands."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the landfall.v1 API over mutual TLS (what PID 1 runs).
    Serve {
        /// Address to listen on; repeat for several. `[::]:7443` also takes IPv4.
        #[arg(long, default_value = "[::]:7443")]
        listen: Vec<SocketAddr>,
        /// Folder with ca.pem, agent.pem and agent.key (from `landfall certs init`).
        #[arg(long)]
        tls: PathBuf,
        /// Where later phases mount and write the new system.
        #[arg(long, default_value = "/mnt")]
        root: PathBuf,
        /// On a set-up failure (e.g. unreadable certificates) log it and try again
        /// every 5 s instead of exiting.
        #[arg(long)]
        retry: bool,
    },
    /// Print this machine's inventory (disks, memory, CPUs, firmware, NICs) as JSON.
    Inventory,
    /// Make a filesystem (ext4, vfat or swap) on a block device or image file.
    Mkfs(mkfs::MkfsArgs),
    /// Partition, format and mount disks from a disko layout.
    Disk(disk_cli::DiskArgs),
}

fn run_serve(
    listen: Vec<SocketAddr>,
    tls: PathBuf,
    root: PathBuf,
    retry: bool,
) -> anyhow::Result<()> {
    landfall_agent::logbuf::init();
    let under_pid1 = std::env::var_os("LANDFALL_UNDER_PID1").is_some();
    let start_ns = std::env::var(START_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(monotonic_ns);
    std::panic::set_hook(Box::new(|info| tracing::error!("Internal error: {info}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let state = AgentState::new(root, under_pid1, start_ns);
    let opts = ServeOptions {
        listen,
        tls_dir: tls,
    };
    loop {
        match rt.block_on(serve(&opts, state.clone())) {
            Ok(()) => tracing::warn!("The server stopped"),
            Err(e) => {
                let chain: Vec<String> = anyhow::Error::from(e)
                    .chain()
                    .map(|c| c.to_string())
                    .collect();
                tracing::error!("{}", chain.join(": "));
                if !retry {
                    anyhow::bail!("{}", chain.join(": "));
                }
            }
        }
        std::thread::sleep(Duration::from_secs(5));
        tracing::info!("Trying to serve again");
    }
}

fn main() -> anyhow::Result<()> {
    if std::process::id() == 1 {
        init::run_as_pid1();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            tls,
            root,
            retry,
        } => run_serve(listen, tls, root, retry),
        Command::Inventory => {
            let inv = landfall_agent::inventory::collect();
            println!("{}", serde_json::to_string_pretty(&inv)?);
            Ok(())
        }
        Command::Mkfs(args) => mkfs::run(&args),
        Command::Disk(args) => disk_cli::run(&args),
    }
}
