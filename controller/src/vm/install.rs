//! `landfall install --vm`: the whole normal flow — SSH, kexec, disko,
//! closure, bootloader, reboot — against a throwaway local rescue VM, then the
//! installed disk booted alone with the VM's firmware (`--firmware`) to see the installed system come up.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{boot_installed, start_rescue};
use crate::flow::{self, Phase};
use crate::install::InstallCli;
use crate::kernel;

/// Runs `landfall install --vm`.
pub async fn run(c: InstallCli) -> anyhow::Result<()> {
    let total = Instant::now();
    // --extra-files and --chown checked before anything starts.
    flow::install::extra_files_of(&c)?;
    // The flake first: a broken one stops before a VM is even started —
    // unless it imports a hardware configuration generated from the VM,
    // which the flow evaluates after the kexec (the flag is checked now).
    let evaluated = match flow::install::hardware_config_of(&c)? {
        Some(_) => None,
        None => Some(tokio::task::block_in_place(|| {
            flow::evaluate(&flow::install::sources_of(&c), &c.phases)
        })?),
    };
    // What stage 1 of the installed system will ask for on its console
    // (known only when the flake was evaluated before the VM started).
    let passphrases = match evaluated
        .as_ref()
        .and_then(|ev| ev.layout_json.as_ref().map(|text| (ev, text)))
    {
        Some((ev, text)) => crate::disk_keys::console_passphrases(
            &landfall_proto::layout::Layout::from_json(text)?,
            &ev.secrets,
        ),
        None => Vec::new(),
    };
    let kernel = kernel::find(c.kernel.as_deref(), c.modules.as_deref())?;
    let dir = c
        .vm_options
        .dir
        .clone()
        .unwrap_or_else(|| crate::state::state_dir("vm"));
    eprintln!(
        "== vm: a throwaway rescue machine in {} (kernel {})",
        dir.display(),
        kernel.image.display()
    );
    let opts = c.vm_options.clone();
    let k = kernel.clone();
    let d = dir.clone();
    let mut rescue = tokio::task::block_in_place(move || start_rescue(&opts, &k, &d))?;

    // The agent's RAM image, built from the same kernel unless --image names one.
    let image = match &c.image {
        Some(i) => i.clone(),
        None => crate::image::build_from(&kernel, &dir.join("image"))?,
    };
    let image_bytes = ["bzImage", "initrd"]
        .iter()
        .map(|f| {
            std::fs::metadata(image.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum::<u64>();

    // A fresh session per VM: the VM is new, so is its trust.
    let session = dir.join("session");
    crate::certs::init(&session, "landfall-vm", true)?;
    let mut ssh_options = c.ssh.ssh_options.clone();
    ssh_options.extend(rescue.ssh_options());
    let reboot = c.phases.contains(&Phase::Reboot);
    let keep = c.keep_vm;
    let inner = InstallCli {
        target: Some("root@127.0.0.1".into()),
        ssh: crate::kexec::SshFlags {
            port: Some(rescue.ssh_port),
            identity: Some(rescue.rescue.client_key.clone()),
            ssh_options,
        },
        image: Some(image),
        agent_addr: Some(rescue.agent_addr()),
        tls: Some(session),
        no_wait: true,
        vm: false,
        keep_vm: false,
        ..c
    };
    if let Err(e) = flow::install::run_on_target(inner, Some(dir.clone()), evaluated).await {
        eprintln!(
            "--- the VM's last console lines ({}):\n{}",
            rescue.vm.console.display(),
            crate::sanitize::text(&rescue.vm.console_tail(20))
        );
        return Err(e);
    }
    eprintln!(
        "The agent's RAM image was {} (kernel + initrd); the VM has {} MiB of RAM",
        crate::render::human_bytes(image_bytes),
        rescue.spec_memory()
    );
    if !reboot {
        eprintln!("The reboot phase was not asked for: the VM stays in the agent's image until this command ends.");
        return Ok(());
    }
    let t = Instant::now();
    let (vm, line) = tokio::task::block_in_place(|| {
        boot_installed(
            &mut rescue,
            Duration::from_secs(c.wait.max(600)),
            &passphrases,
        )
    })?;
    eprintln!(
        "The installed system came up {:.1} s after the reboot: {}",
        t.elapsed().as_secs_f64(),
        crate::sanitize::line(&line)
    );
    let mut vm = vm;
    if line.contains("LANDFALL-STAGE2:") {
        // The example system checks its own store and says so.
        let verdict = tokio::task::block_in_place(|| {
            vm.wait_for(
                &["LANDFALL-STORE-CHECK: OK"],
                &["LANDFALL-STORE-CHECK: FAILED"],
                Duration::from_secs(180),
            )
        })
        .context("The installed system's check of its own store failed")?;
        eprintln!("{}", crate::sanitize::line(&verdict));
    }
    eprintln!(
        "Installed onto the VM and booted it in {:.1} s in all",
        total.elapsed().as_secs_f64()
    );
    if keep {
        let console = vm.console.clone();
        let pid = vm.leave_running();
        eprintln!(
            "The installed VM keeps running: qemu pid {pid}, console {}, SSH forwarded to 127.0.0.1:{}",
            console.display(),
            rescue.ssh_port
        );
    }
    Ok(())
}
