//! The laptop-side first step of the flow: read or evaluate the disk layout
//! and build (or name) the system, before anything is done on the target. A
//! broken flake, a failing build or a configuration without `disko.devices`
//! ends here, with the target untouched — and so does a disk key that is
//! missing, empty or not given for a path the layout names, or an
//! `askPassword` passphrase nobody typed ([`crate::disk_keys`]).

use std::path::PathBuf;

use anyhow::{bail, Context};
use landfall_proto::nar::StorePath;

use crate::disk_keys::{self, DiskSecrets, KeyArgs};
use crate::nix::{FlakeTarget, Nix};
use crate::passphrase;
use crate::phase::Phase;

/// Where the layout and the system come from (the command line's choices).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// REF#NAME: evaluates its disko.devices and builds its toplevel.
    pub flake: Option<String>,
    /// An already built system (a store path), instead of building the flake's.
    pub system: Option<String>,
    /// A disko.devices JSON file, instead of evaluating the flake's.
    pub layout: Option<PathBuf>,
    /// `--disk-encryption-keys` and `--disk-password-file`.
    pub keys: KeyArgs,
}

/// What the phases need, ready before the target is touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// The system to install (install and bootloader phases).
    pub toplevel: Option<StorePath>,
    /// The disko.devices JSON (disko phase).
    pub layout_json: Option<String>,
    /// The disk keys for the agent's RAM and the askPassword passphrases.
    pub secrets: DiskSecrets,
}

/// Reads or evaluates what `phases` need: the layout for disko, the system
/// for install and bootloader (built with `nix build` when it comes from a flake).
pub fn evaluate(s: &Sources, phases: &[Phase]) -> anyhow::Result<Evaluated> {
    let needs_layout = phases.contains(&Phase::Disko);
    let needs_system = phases.contains(&Phase::Install);
    let needs_toplevel = needs_system || phases.contains(&Phase::Bootloader);
    let mut out = Evaluated::default();
    if let Some(path) = &s.layout {
        out.layout_json = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("Cannot read {}", path.display()))?,
        );
    }
    if let Some(system) = &s.system {
        out.toplevel = Some(
            StorePath::parse(system)
                .with_context(|| format!("--system {system} is not a store path"))?,
        );
    }
    if let Some(flake) = &s.flake {
        if needs_layout && out.layout_json.is_none() {
            out.layout_json = Some(disko_layout(flake)?);
        }
        if needs_toplevel && out.toplevel.is_none() {
            let target = FlakeTarget::parse(flake)?;
            eprintln!("Building {flake}'s system (nix build) …");
            out.toplevel = Some(
                Nix::new()
                    .build_toplevel(&target)
                    .context("Building the system failed")?,
            );
        }
    }
    if needs_layout && out.layout_json.is_none() {
        bail!("The disko phase needs a layout: pass --flake REF#NAME or --layout FILE");
    }
    if needs_system && out.toplevel.is_none() {
        bail!("The install phase needs a system: pass --flake REF#NAME or --system /nix/store/…");
    }
    out.secrets = secrets(
        s,
        out.layout_json.as_deref(),
        needs_layout,
        &mut |d: &str| passphrase::ask_on_terminal(d),
    )?;
    Ok(out)
}

/// The disk keys: the `--disk-encryption-keys` files read, and — when the
/// disko phase runs — checked against the layout's LUKS devices, with a
/// passphrase for each `askPassword` one (`ask` prompts for it).
pub fn secrets(
    s: &Sources,
    layout_json: Option<&str>,
    needs_layout: bool,
    ask: &mut dyn FnMut(&str) -> Result<passphrase::Passphrase, passphrase::PassphraseError>,
) -> anyhow::Result<DiskSecrets> {
    match layout_json.filter(|_| needs_layout) {
        Some(text) => {
            let layout = landfall_proto::layout::Layout::from_json(text)
                .context("The disk layout is not valid")?;
            Ok(disk_keys::prepare(&layout, &s.keys, ask)?)
        }
        None => Ok(DiskSecrets {
            files: disk_keys::read_key_files(&s.keys.encryption_keys)?,
            ..Default::default()
        }),
    }
}

/// The flake's disko.devices as JSON.
pub fn disko_layout(flake: &str) -> anyhow::Result<String> {
    let target = FlakeTarget::parse(flake)?;
    eprintln!("Evaluating {flake}'s disko.devices …");
    let v = Nix::new()
        .eval_disko_devices(&target)
        .context("Evaluating the disk layout failed")?;
    Ok(v.to_string())
}
