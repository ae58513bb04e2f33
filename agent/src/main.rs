//! `landfall-agent`: the on-target half of landfall.
//!
//! As PID 1 of the RAM image it sets the machine up and serves the
//! `landfall.v1.Agent` gRPC service over mutual TLS; on an ordinary Linux the
//! same code runs through subcommands (`serve`, `inventory`, …).



use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "landfall-agent", version, about = "landfall's on-target agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print this machine's inventory (disks, memory, CPUs, firmware, NICs) as JSON.
    Inventory,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inventory => Ok(()),
    }
}
