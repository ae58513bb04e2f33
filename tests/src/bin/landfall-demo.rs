//! `landfall-demo`: the README's first command. Runs landfall against a
//! throwaway local qemu VM: builds the agent's RAM image from the Debian kernel,
//! boots it (256 MiB, an NVMe disk), shows the machine's inventory over mutual
//! TLS, then installs the test configuration (`tests/fixtures/office`, built by
//! your Nix) — disko and closure phases — and shows the mounted result.
//!
//! Usage: landfall-demo [--keep]   (--keep leaves the VM folder for a look)

#[path = "../../../controller/src/nix/fixture.rs"]
mod fixture;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::{debian_kernel, sparse_image, Disk, Nic, TestDir, VmBuilder};

const NIX_CONFIG: &str =
    "experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters =";

fn landfall(args: &[&str]) -> anyhow::Result<()> {
    println!("\n$ landfall {}", args.join(" "));
    let status = Command::new(landfall_bin())
        .args(args)
        .env(
            "NIX_CONFIG",
            std::env::var("NIX_CONFIG").unwrap_or_else(|_| NIX_CONFIG.into()),
        )
        .status()
        .context("cannot run landfall")?;
    if !status.success() {
        bail!("landfall {} failed", args.join(" "));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    if keep {
        std::env::set_var("LANDFALL_KEEP", "1");
    }
    let t0 = Instant::now();
    let kernel = debian_kernel().context("no Debian kernel: run scripts/fetch-kernel.sh")?;
    let tdir = TestDir::new("demo")?;
    let dir = tdir.path().to_path_buf();
    println!("Working in {}", dir.display());

    println!("Building the test configuration with nix …");
    let built =
        fixture::build_office_fixture(&dir.join("flake"), &fixture::FixtureOptions::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = dir.join("session").display().to_string();
    landfall(&["certs", "init", "--dir", &tls, "--label", "demo-vm"])?;
    let image = dir.join("image");
    landfall(&[
        "image",
        "build",
        "--kernel",
        &kernel.image.display().to_string(),
        "--modules",
        &kernel.modules.display().to_string(),
        "--agent",
        &agent_static_bin().display().to_string(),
        "--out",
        &image.display().to_string(),
        "--tls",
        &tls,
    ])?;

    let disk = sparse_image(&dir.join("nvme.img"), 4 << 30)?;
    println!("\nBooting a throwaway VM (qemu, 256 MiB, NVMe disk 'landfall-test-0') into the agent's image …");
    let mut vm = VmBuilder::new("demo")
        .kernel(image.join("bzImage"), "console=ttyS0 panic=-1")
        .initrd(image.join("initrd"))
        .memory_mib(256)
        .disk(Disk::nvme(disk).serial("landfall-test-0"))
        .nic(Nic::user().forward(7443))
        .start_in(tdir)?;
    let addr = vm
        .forwarded_addr(7443)
        .context("no forwarded port")?
        .to_string();
    vm.wait_for("Ready:", Duration::from_secs(120))?;
    vm.wait_for("DHCP lease", Duration::from_secs(120))?;

    landfall(&["inventory", "--agent", &addr, "--tls", &tls, "--wait", "30"])?;
    let flake = format!("{}#office", built.flake_ref);
    landfall(&[
        "install",
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--flake",
        &flake,
        "--phases",
        "disko,install",
        "--yes",
    ])?;
    landfall(&["status", "--agent", &addr, "--tls", &tls])?;
    vm.quit(Duration::from_secs(20))?;
    println!(
        "\nDone in {:.0} s. The VM's console log: {}",
        t0.elapsed().as_secs_f64(),
        vm.console_log().display()
    );
    Ok(())
}
