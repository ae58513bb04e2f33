//! Which binary caches the agent fetches from (issue 19): `--substituters`,
//! `--trusted-public-keys`, `--substituters-ca`, `--no-substitute-on-target`,
//! and the defaults from the flake's `nix.settings` (on NixOS:
//! cache.nixos.org and its key). The agent checks every narinfo's signature
//! and fields itself; the controller only picks what to ask for.

use anyhow::Context;
use landfall_proto::v1::SubstituteConfig;

use crate::nix::{FlakeTarget, Nix};

/// The caches handed to the agent; no caches = no substitution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitution {
    /// Cache URLs (http/https), in the order given.
    pub caches: Vec<String>,
    /// `name:base64` ed25519 public keys.
    pub trusted_keys: Vec<String>,
    /// PEM CA certificates the agent trusts besides its built-in roots.
    pub extra_ca_pem: Vec<u8>,
    /// The target's HTTP proxy (`http://host:port`), "" = none.
    pub proxy: String,
}

impl Substitution {
    /// No substitution at all.
    pub fn off() -> Self {
        Self::default()
    }

    /// Whether the agent is asked to fetch anything.
    pub fn enabled(&self) -> bool {
        !self.caches.is_empty()
    }

    /// The protocol's form.
    pub fn config(&self) -> SubstituteConfig {
        SubstituteConfig {
            caches: self.caches.clone(),
            trusted_keys: self.trusted_keys.clone(),
            extra_ca_pem: self.extra_ca_pem.clone(),
            proxy: self.proxy.clone(),
        }
    }
}

/// The command line's choices.
#[derive(Debug, Clone, Default)]
pub struct SubstituteArgs {
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub proxy: Option<String>,
    pub off: bool,
}

/// Only http(s) caches: the agent has no S3 or local-file client.
fn usable(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The caches to use: none with `--no-substitute-on-target`; the command
/// line's when given (each list separately); else the flake's
/// `nix.settings.substituters`/`trusted-public-keys` when they evaluate;
/// else none.
pub fn resolve(args: &SubstituteArgs, flake: Option<&str>) -> anyhow::Result<Substitution> {
    if args.off {
        return Ok(Substitution::off());
    }
    let extra_ca_pem = match &args.ca_file {
        Some(f) => std::fs::read(f).with_context(|| format!("Cannot read {}", f.display()))?,
        None => Vec::new(),
    };
    let (mut caches, mut keys) = (args.substituters.clone(), args.trusted_public_keys.clone());
    if caches.is_empty() || keys.is_empty() {
        if let Some((c, k)) = flake.and_then(flake_settings) {
            if caches.is_empty() {
                caches = c;
            }
            if keys.is_empty() {
                keys = k;
            }
        }
    }
    let (kept, dropped): (Vec<_>, Vec<_>) = caches.into_iter().partition(|u| usable(u));
    for d in dropped {
        eprintln!("Substituter {d} is not http(s): the target does not use it");
    }
    if kept.is_empty() || keys.is_empty() {
        return Ok(Substitution::off());
    }
    Ok(Substitution {
        caches: kept,
        trusted_keys: keys,
        extra_ca_pem,
        proxy: args.proxy.clone().unwrap_or_default(),
    })
}

/// The flake's `nix.settings.substituters` and `trusted-public-keys`, when
/// the configuration has them.
fn flake_settings(flake: &str) -> Option<(Vec<String>, Vec<String>)> {
    let target = FlakeTarget::parse(flake).ok()?;
    let attr = target.config_attr("nix.settings");
    let apply = "s: { substituters = s.substituters or []; keys = s.trusted-public-keys or []; }";
    let (_, v) = Nix::new()
        .run_json(["eval", "--json", &attr, "--apply", apply])
        .map_err(|e| tracing::debug!("no nix.settings in {flake}: {e}"))
        .ok()?;
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some((list("substituters"), list("keys")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_and_off_turns_everything_off() {
        let args = SubstituteArgs {
            substituters: vec!["https://cache.example.org".into(), "s3://bucket".into()],
            trusted_public_keys: vec!["k:AAAA".into()],
            ..Default::default()
        };
        let s = resolve(&args, None).unwrap();
        assert_eq!(s.caches, vec!["https://cache.example.org".to_string()]);
        assert!(s.enabled());
        let off = SubstituteArgs {
            off: true,
            ..args.clone()
        };
        assert!(!resolve(&off, None).unwrap().enabled());
        // No key: nothing could be trusted, so nothing is asked for.
        let nokey = SubstituteArgs {
            trusted_public_keys: vec![],
            ..args
        };
        assert!(!resolve(&nokey, None).unwrap().enabled());
    }
}
