//! `landfall-agent`: the on-target half of landfall.
//!
//! As PID 1 of the RAM image it sets the machine up and serves the
//! `landfall.v1.Agent` gRPC service over mutual TLS; on an ordinary Linux the
//! same code runs through subcommands (`serve`, `inventory`, …).

mod disk_cli;
mod dm_cli;
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
    /// Device-mapper devices: create, remove, list, show (like dmsetup, without udev).
    Dm(dm_cli::DmArgs),
    /// Boot landfall's RAM image in place of the running system (kexec), keeping
    /// its network configuration. Needs root; no kexec-tools needed.
    Kexec {
        /// The image's kernel (bzImage).
        #[arg(long)]
        kernel: PathBuf,
        /// The image's initrd.
        #[arg(long)]
        initrd: PathBuf,
        /// Further kernel parameters (the running system's console= are kept unless given here).
        #[arg(long)]
        append: Option<String>,
        /// The kernel's expected SHA-256 (hex); refused when it differs.
        #[arg(long)]
        kernel_sha256: Option<String>,
        /// The initrd's expected SHA-256 (hex); refused when it differs.
        #[arg(long)]
        initrd_sha256: Option<String>,
        /// Read the session's ca.pem, agent.pem and agent.key from stdin (the
        /// controller's session stream) and add them to the image; they never
        /// touch this machine's disk.
        #[arg(long)]
        session_stdin: bool,
        /// Carry this system's SSH host keys (/etc/ssh/ssh_host_*) into the image, for
        /// the agent to install into the new system (`landfall install --copy-host-keys`).
        #[arg(long)]
        copy_host_keys: bool,
        /// Where --copy-host-keys reads the keys from.
        #[arg(long, default_value = "/etc/ssh", requires = "copy_host_keys")]
        host_keys_dir: PathBuf,
        /// Do everything but the load and the reboot; print the captured network configuration.
        #[arg(long)]
        dry_run: bool,
        /// Return once the image is loaded and reboot into it a second later from a
        /// background process (for callers over SSH, which then see the result).
        #[arg(long)]
        detach: bool,
    },
}

/// The boot ID the session put beside the agent's TLS files ("" when there is
/// none, e.g. an agent started by hand; a malformed one is logged and ignored).
fn read_boot_id(tls: &std::path::Path) -> String {
    let path = tls.join(landfall_proto::tlsnames::BOOT_ID);
    match std::fs::read_to_string(&path) {
        Ok(text) => match landfall_proto::boot_id::parse(&text) {
            Some(id) => id.to_string(),
            None => {
                tracing::warn!("{} is not a boot ID; Status reports none", path.display());
                String::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            tracing::warn!(
                "Cannot read {}: {e}; Status reports no boot ID",
                path.display()
            );
            String::new()
        }
    }
}

fn run_serve(
    listen: Vec<SocketAddr>,
    tls: PathBuf,
    root: PathBuf,
    retry: bool,
) -> anyhow::Result<()> {
    landfall_agent::logbuf::init();
    let under_pid1 = std::env::var_os("LANDFALL_UNDER_PID1").is_some();
    // A flood of connections must not run the agent out of descriptors.
    match landfall_agent::sys::rlimit::raise_nofile() {
        Ok(n) => tracing::debug!("Open-file limit: {n}"),
        Err(e) => tracing::warn!("{e:#}"),
    }
    if under_pid1 {
        // The RAM image has no business partitioning its own files.
        landfall_agent::disk::require_block_devices();
    }
    let start_ns = std::env::var(START_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(monotonic_ns);
    std::panic::set_hook(Box::new(|info| tracing::error!("Internal error: {info}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let boot_id = read_boot_id(&tls);
    let state = AgentState::new(root, under_pid1, start_ns, boot_id);
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

/// `landfall-agent kexec`'s options: the hashes parsed, the session read from stdin.
#[allow(clippy::too_many_arguments)]
fn kexec_options(
    kernel: PathBuf,
    initrd: PathBuf,
    kernel_sha256: Option<String>,
    initrd_sha256: Option<String>,
    append: Option<String>,
    session_stdin: bool,
    host_keys_from: Option<PathBuf>,
    dry_run: bool,
    detach: bool,
) -> anyhow::Result<landfall_agent::kexec::KexecOptions> {
    use landfall_agent::kexec::inputs::parse_sha256;
    Ok(landfall_agent::kexec::KexecOptions {
        kernel,
        initrd,
        kernel_sha256: kernel_sha256
            .map(|h| parse_sha256("kernel-sha256", &h))
            .transpose()?,
        initrd_sha256: initrd_sha256
            .map(|h| parse_sha256("initrd-sha256", &h))
            .transpose()?,
        append,
        session: if session_stdin {
            Some(landfall_agent::kexec::read_session(
                std::io::stdin().lock(),
            )?)
        } else {
            None
        },
        host_keys_from,
        dry_run,
        detach,
    })
}

fn run_kexec(opts: landfall_agent::kexec::KexecOptions) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let p = match landfall_agent::kexec::run(&opts) {
        Ok(p) => p,
        Err(e) => {
            let refused = matches!(e, landfall_agent::kexec::KexecError::Refused { .. });
            let chain: Vec<String> = anyhow::Error::from(e)
                .chain()
                .map(|c| c.to_string())
                .collect();
            eprintln!("landfall-agent kexec: {}", chain.join(": "));
            // Exit codes: 3 = the kernel refused the kexec, 1 = anything else.
            std::process::exit(if refused { 3 } else { 1 });
        }
    };
    if !opts.dry_run {
        return Ok(());
    }
    println!("{}", serde_json::to_string_pretty(&p.network)?);
    eprintln!(
        "Dry run: command line '{}', initrd {} bytes with {}",
        p.cmdline,
        p.initrd_bytes,
        p.archive_paths.join(", ")
    );
    Ok(())
}

/// musl's malloc is slow under the closure transfer's load (a third of the
/// agent's CPU time went to it and to page faults; bench/README.md). mimalloc
/// without transparent huge pages (`no_thp`) and with immediate purging keeps
/// the peak RSS low.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the version the
/// mimalloc crate builds by default), and its default (src/options.c).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;

/// Purge freed memory at once instead of after a second: on a 256 MiB target
/// the RSS matters more than the few madvise calls this costs.
fn tune_allocator() {
    // SAFETY: called first thing in `main`, before any other thread exists
    // (mimalloc's option functions are not thread-safe); both functions take
    // plain integers. The option is only changed if the index still names the
    // purge delay (its default value), so a renumbered enum changes nothing.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
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
        Command::Kexec {
            kernel,
            initrd,
            kernel_sha256,
            initrd_sha256,
            append,
            session_stdin,
            copy_host_keys,
            host_keys_dir,
            dry_run,
            detach,
        } => match kexec_options(
            kernel,
            initrd,
            kernel_sha256,
            initrd_sha256,
            append,
            session_stdin,
            copy_host_keys.then_some(host_keys_dir),
            dry_run,
            detach,
        ) {
            Ok(opts) => run_kexec(opts),
            Err(e) => {
                // The controller reads the agent's message from this prefix.
                eprintln!("landfall-agent kexec: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Inventory => {
            let inv = landfall_agent::inventory::collect();
            println!("{}", serde_json::to_string_pretty(&inv)?);
            Ok(())
        }
        Command::Mkfs(args) => mkfs::run(&args),
        Command::Disk(args) => disk_cli::run(&args),
        Command::Dm(args) => dm_cli::run(args),
    }
}
