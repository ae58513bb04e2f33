//! `landfall install`'s command line: the phases users run, in order —
//! kexec (over SSH, into the agent's RAM image), disko (partition, format,
//! mount), install (stream the closure), files (--extra-files, --chown,
//! --copy-host-keys), bootloader, reboot — each also
//! runnable alone with `--phases`. The flow itself is [`crate::flow`]'s; the
//! flake is evaluated and built there before anything reaches the target.

use std::path::PathBuf;

use crate::phase::Phase;

/// The command line of `landfall install`.
#[derive(clap::Args, Clone)]
pub struct InstallCli {
    /// The machine to install, [USER@]HOST, reached with your ssh (config, agent, jump
    /// hosts and known_hosts apply; host keys are always verified).
    #[arg(long, conflicts_with = "agent")]
    pub target: Option<String>,
    #[command(flatten)]
    pub ssh: crate::kexec::SshFlags,
    /// The RAM image to kexec (a folder with bzImage and initrd from `landfall image build`).
    /// Without it, one is built into the state folder from --kernel and --modules, or
    /// from a kernel found here: the Debian kernel scripts/fetch-kernel.sh unpacks
    /// (.cache/kernel/current), else this machine's /boot/vmlinuz-$(uname -r).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// A kernel for the RAM image: your distribution's /boot/vmlinuz-*, or nixpkgs' linux bzImage.
    #[arg(long, requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// That kernel's lib/modules/<version> folder.
    #[arg(long, requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// Where the agent answers after the kexec of --target (default: the host as ssh resolves it, port 7443).
    #[arg(long, requires = "target")]
    pub agent_addr: Option<String>,
    /// Attach to an agent already running (HOST:PORT): netboot, a rescue system, a second run.
    #[arg(long)]
    pub agent: Option<String>,
    /// The session folder; default: the target's state folder (created with fresh certificates).
    #[arg(long)]
    pub tls: Option<PathBuf>,
    /// The configuration, REF#NAME: builds nixosConfigurations.NAME.config.system.build.toplevel
    /// and evaluates its disko.devices.
    #[arg(long, conflicts_with = "system")]
    pub flake: Option<String>,
    /// An already built system (a /nix/store path) instead of --flake.
    #[arg(long)]
    pub system: Option<String>,
    /// The disko.devices JSON, instead of evaluating the flake's.
    #[arg(long)]
    pub layout: Option<PathBuf>,
    /// A disk key for the layout's LUKS devices: LOCAL (a file on this machine) is put
    /// at REMOTE in the agent's RAM (mode 0600, never on the installed disk), where
    /// `settings.keyFile`, `passwordFile` or `additionalKeyFiles` name it; repeatable,
    /// as nixos-anywhere's flag, e.g. --disk-encryption-keys /tmp/disk.key ./disk.key.
    #[arg(long = "disk-encryption-keys", num_args = 2, value_names = ["REMOTE", "LOCAL"], action = clap::ArgAction::Append)]
    pub disk_encryption_keys: Vec<String>,
    /// The passphrase of the `askPassword` LUKS device NAME, read from FILE (one
    /// trailing newline dropped) instead of asked on the terminal; repeatable.
    #[arg(long = "disk-password-file", num_args = 2, value_names = ["NAME", "FILE"], action = clap::ArgAction::Append)]
    pub disk_password_files: Vec<String>,
    /// Put the layout's disk NAME on the target's device PATH; repeatable.
    #[arg(long = "disk", value_name = "NAME=PATH")]
    pub disks: Vec<String>,
    /// Write the target's NixOS hardware configuration to PATH, as
    /// `nixos-generate-config --show-hardware-config --no-filesystems` would
    /// on it (initrd modules for its disk, USB and keyboard controllers, KVM
    /// module, qemu-guest or not-detected profile, microcode). The generator
    /// must be `nixos-generate-config`; PATH's folder must exist. The file is
    /// made after the kexec from the agent's inventory, added with `git add
    /// --intent-to-add` inside a git work tree, and then the flake is
    /// evaluated and built (the one case where evaluation follows the kexec).
    #[arg(long, num_args = 2, value_names = ["GENERATOR", "PATH"])]
    pub generate_hardware_config: Option<Vec<String>>,
    /// Phases to run (comma-separated); kexec runs only with --target.
    #[arg(long, value_delimiter = ',', default_values = ["kexec", "disko", "install", "files", "bootloader", "reboot"])]
    pub phases: Vec<Phase>,
    /// The bootloader: auto (the closure's own installer when it has
    /// bin/switch-to-configuration, else native systemd-boot from boot.json),
    /// systemd-boot, closure or none.
    #[arg(long, default_value = "auto")]
    pub bootloader: String,
    /// A folder whose tree is written into the installed system's root after the
    /// closure, before the bootloader: modes kept, owned by root, links as links
    /// (e.g. DIR/etc/ssh/ssh_host_ed25519_key lands at /etc/ssh/ssh_host_ed25519_key).
    #[arg(long, value_name = "DIR")]
    pub extra_files: Option<PathBuf>,
    /// Change the owner of PATH (in the installed system) and everything beneath it,
    /// after the extra files; links are not followed. OWNER and GROUP are numbers or
    /// names of the installed system's /etc/passwd and /etc/group. Repeatable.
    #[arg(long = "chown", num_args = 2, value_names = ["PATH", "OWNER[:GROUP]"], action = clap::ArgAction::Append)]
    pub chown: Vec<String>,
    /// Keep the target's SSH host keys: the kexec carries /etc/ssh/ssh_host_* into the
    /// agent's memory and the agent installs them into the new system's /etc/ssh
    /// (unless --extra-files brings them), so it presents the same host key.
    #[arg(long)]
    pub copy_host_keys: bool,
    /// Do not wait for the machine to come back after the reboot.
    #[arg(long)]
    pub no_wait: bool,
    /// Do not ask before destroying data.
    #[arg(long)]
    pub yes: bool,
    /// Keep a disk that already holds the layout even though this install did not
    /// format it. By default only disks this install formatted are kept (each
    /// install has a random ID, in the target's state folder until its reboot phase
    /// is done, recorded in the disks' GPT disk GUID); a disk holding the same
    /// layout from any other system is wiped and recreated after confirmation,
    /// since whoever ran that system could have changed what is on it.
    #[arg(long)]
    pub keep_existing: bool,
    /// Binary caches the target fetches missing store paths from itself, while this
    /// machine streams the rest (http:// or https://; repeatable). Default: the flake's
    /// `nix.settings.substituters` (cache.nixos.org on NixOS) when it evaluates, else none.
    #[arg(long, num_args = 1.., value_name = "URL")]
    pub substituters: Vec<String>,
    /// Keys (NAME:BASE64) whose signature makes a cache's path trusted; repeatable.
    /// Default: the flake's `nix.settings.trusted-public-keys`. Without a key nothing
    /// is fetched from caches.
    #[arg(long, num_args = 1.., value_name = "KEY")]
    pub trusted_public_keys: Vec<String>,
    /// A PEM file of CA certificates the target trusts for https caches, besides
    /// the web's roots built into the agent.
    #[arg(long, value_name = "FILE")]
    pub substituters_ca: Option<PathBuf>,
    /// The HTTP proxy the target reaches the caches through (http://HOST:PORT; https
    /// caches through CONNECT). Without it, the target uses its old system's
    /// `http_proxy`/`https_proxy`/`no_proxy` (captured at kexec).
    #[arg(long, value_name = "URL")]
    pub substituters_proxy: Option<String>,
    /// The target fetches nothing from binary caches: every path comes from this
    /// machine (nixos-anywhere's flag).
    #[arg(long)]
    pub no_substitute_on_target: bool,
    /// Machine-readable progress (JSON lines) and summary.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the agent (after a kexec, or to come up).
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Install onto a throwaway local qemu VM instead of a real machine: a "rescue
    /// system" (Debian kernel, busybox, OpenSSH server; 256 MiB, NVMe disk, UEFI)
    /// reachable only over SSH on a forwarded port. Runs the whole normal flow
    /// against it, then boots the installed disk and reports whether it came up.
    #[arg(long, conflicts_with_all = ["target", "agent"])]
    pub vm: bool,
    #[command(flatten)]
    pub vm_options: crate::vm_options::VmOptions,
    /// With --vm: leave the installed VM running at the end (its pid is printed).
    #[arg(long, requires = "vm")]
    pub keep_vm: bool,
}
