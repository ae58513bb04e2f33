//! The disk layout: `nix eval --json <ref>#nixosConfigurations.NAME.config.disko.devices`
//! with disko's internal `_`-prefixed attributes (functions among them, which
//! `--json` cannot print) filtered out by an `--apply` written with builtins
//! only, so it needs no nixpkgs and works offline and on old Nix.

use super::build::FlakeTarget;
use super::command::{Nix, NixError};

/// Removes every attribute whose name starts with `_`, recursively through
/// attribute sets and lists (`lib.filterAttrsRecursive (n: _: !hasPrefix "_" n)`
/// without nixpkgs).
pub const FILTER_INTERNAL_ATTRS: &str = "let
  strip = v:
    if builtins.isAttrs v then
      builtins.mapAttrs (_: strip)
        (builtins.removeAttrs v
          (builtins.filter (n: builtins.substring 0 1 n == \"_\") (builtins.attrNames v)))
    else if builtins.isList v then
      map strip v
    else
      v;
in strip";

impl Nix {
    /// `config.disko.devices` of `target`, internal attributes removed, as JSON.
    pub fn eval_disko_devices(&self, target: &FlakeTarget) -> Result<serde_json::Value, NixError> {
        let attr = target.config_attr("disko.devices");
        let (_, v) = self.run_json(["eval", "--json", &attr, "--apply", FILTER_INTERNAL_ATTRS])?;
        Ok(v)
    }
}
