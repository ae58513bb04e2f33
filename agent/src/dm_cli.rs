//! `landfall-agent dm create|remove|list|table|info|load-modules|luks-format`: the
//! device-mapper engine from the command line, for rescue work and for the VM
//! tests that judge it beside Debian's `dmsetup`. Output is dmsetup-like text.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use landfall_agent::dm::device::{link_lvm_name, unlink_lvm_name, Mapper};
use landfall_agent::sys::dm::Target;

#[derive(clap::Args, Debug)]
pub struct DmArgs {
    #[command(subcommand)]
    command: DmCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DmCommand {
    /// Load dm-mod, dm-crypt and the aes-xts ciphers from the image's modules.
    LoadModules,
    /// Create a device with a table and make it live; prints `NAME MAJOR:MINOR`.
    Create {
        name: String,
        #[arg(long)]
        uuid: Option<String>,
        /// A table line `START LENGTH TYPE PARAMS`; repeat for several targets.
        #[arg(long = "table")]
        lines: Vec<String>,
        /// Read the table lines from FILE (`-` for stdin); keeps keys off the command line.
        #[arg(long)]
        table_file: Option<PathBuf>,
        /// Also make the /dev/VG/LV link of an LVM `VG-LV` name.
        #[arg(long)]
        lvm_link: bool,
    },
    /// Remove a device (and its nodes and /dev/VG/LV link).
    Remove { name: String },
    /// List devices: `NAME MAJOR:MINOR [UUID]`.
    List,
    /// Print the live table as `dmsetup table` does.
    Table { name: String },
    /// Print the status fields `dmsetup info` shows.
    Info { name: String },
    /// luksFormat DEVICE natively, as `cryptsetup luksFormat --type luks2 -q
    /// --key-file KEY_FILE` with disko's extraFormatArgs words after `--`;
    /// prints the UUID and the argon2 cost chosen (for benchmarks and rescue).
    LuksFormat {
        device: PathBuf,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(last = true)]
        extra: Vec<String>,
    },
}

fn table_lines(lines: &[String], file: Option<&PathBuf>) -> anyhow::Result<Vec<Target>> {
    let mut text = lines.join("\n");
    if let Some(file) = file {
        let mut s = String::new();
        if file.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut s)?;
        } else {
            s = std::fs::read_to_string(file)
                .with_context(|| format!("Cannot read {}", file.display()))?;
        }
        text.push('\n');
        text.push_str(&s);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Target::parse(l).map_err(anyhow::Error::from))
        .collect()
}

fn luks_format(device: &PathBuf, key_file: &PathBuf, extra: &[String]) -> anyhow::Result<()> {
    use landfall_agent::dm::luks2::{luks_format, parse_extra_args, FormatOptions};
    let extra = parse_extra_args(extra)?;
    let key = zeroize::Zeroizing::new(
        std::fs::read(key_file).with_context(|| format!("Cannot read {}", key_file.display()))?,
    );
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .with_context(|| format!("Cannot open {}", device.display()))?;
    let opts = FormatOptions {
        label: extra.label.clone(),
        pbkdf: extra.pbkdf(),
        ..FormatOptions::for_this_machine()
    };
    let start = std::time::Instant::now();
    let made = luks_format(&dev, &key, &opts)?;
    println!(
        "luksFormat {}: {} argon2id time={} memory={} KiB lanes={} sector={} in {:.2} s (RAM {} KiB)",
        device.display(),
        made.uuid,
        made.cost.time,
        made.cost.memory_kib,
        made.cost.lanes,
        made.sector_size,
        start.elapsed().as_secs_f64(),
        opts.ram_kib
    );
    Ok(())
}

pub fn run(args: DmArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    if let DmCommand::LoadModules = args.command {
        let n = landfall_agent::init::modules::load_for_device_mapper();
        println!("loaded {n} modules");
        return Ok(());
    }
    if let DmCommand::LuksFormat {
        device,
        key_file,
        extra,
    } = &args.command
    {
        return luks_format(device, key_file, extra);
    }
    let mapper = Mapper::open()?;
    match args.command {
        DmCommand::LoadModules | DmCommand::LuksFormat { .. } => {}
        DmCommand::Create {
            name,
            uuid,
            lines,
            table_file,
            lvm_link,
        } => {
            let targets = table_lines(&lines, table_file.as_ref())?;
            let d = mapper.create_device(&name, uuid.as_deref(), &targets)?;
            if lvm_link {
                link_lvm_name(std::path::Path::new("/dev"), &name)?;
            }
            println!("{} {}:{}", d.name, d.major, d.minor);
        }
        DmCommand::Remove { name } => {
            mapper.remove_device(&name)?;
            unlink_lvm_name(std::path::Path::new("/dev"), &name)?;
        }
        DmCommand::List => {
            for d in mapper.list()? {
                match d.uuid {
                    Some(u) => println!("{} {}:{} {u}", d.name, d.major, d.minor),
                    None => println!("{} {}:{}", d.name, d.major, d.minor),
                }
            }
        }
        DmCommand::Table { name } => {
            for t in mapper.table(&name)? {
                println!("{t}");
            }
        }
        DmCommand::Info { name } => {
            let s = mapper.status(&name)?;
            let state = if s.suspended { "SUSPENDED" } else { "ACTIVE" };
            println!("Name: {}", s.name);
            println!("State: {state}");
            println!("Read Ahead: -");
            println!(
                "Tables present: {}",
                match (s.active_table, s.inactive_table) {
                    (true, true) => "LIVE & INACTIVE",
                    (true, false) => "LIVE",
                    (false, true) => "INACTIVE",
                    (false, false) => "None",
                }
            );
            println!("Open count: {}", s.open_count);
            println!("Event number: {}", s.event_nr);
            println!("Major, minor: {}, {}", s.major(), s.minor());
            println!("Number of targets: {}", s.target_count);
            if !s.uuid.is_empty() {
                println!("UUID: {}", s.uuid);
            }
        }
    }
    Ok(())
}
