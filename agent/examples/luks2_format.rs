//! Benchmark helper: luksFormat an image file or block device with landfall's
//! native LUKS2 code, as `cryptsetup luksFormat --type luks2 -q --key-file`
//! would, and print the chosen argon2 cost. Run it under `/usr/bin/time -v`
//! beside cryptsetup (bench/luks2.sh) to compare wall time and peak memory.
//!
//!     cargo run -p landfall-agent --example luks2_format -- DEVICE KEYFILE [EXTRA ARGS…]
//!
//! EXTRA ARGS are disko's `extraFormatArgs` words (`--iter-time 2000`, …).
//! Not a test: nothing is asserted.

use std::fs::OpenOptions;
use std::time::Instant;

use landfall_agent::dm::luks2::{luks_format, parse_extra_args, FormatOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, key_file, extra @ ..] = args.as_slice() else {
        anyhow::bail!("usage: luks2_format DEVICE KEYFILE [EXTRA ARGS…]");
    };
    let extra = parse_extra_args(extra)?;
    let key = zeroize::Zeroizing::new(std::fs::read(key_file)?);
    let dev = OpenOptions::new().read(true).write(true).open(device)?;
    let opts = FormatOptions {
        label: extra.label.clone(),
        pbkdf: extra.pbkdf(),
        ..FormatOptions::for_this_machine()
    };
    let start = Instant::now();
    let made = luks_format(&dev, &key, &opts)?;
    println!(
        "luks2_format: {} argon2id time={} memory={} KiB lanes={} sector={} in {:.2} s (RAM {} KiB)",
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
