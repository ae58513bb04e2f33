//! Evaluating and building the user's configuration: `REF#NAME` parsing and
//! `nix build --no-link --json <ref>#nixosConfigurations.NAME.config.system.build.toplevel`
//! (Nix 2.8 has no `--print-out-paths`; `--json` works on old and new Nix).

use landfall_proto::nar::StorePath;

use super::command::{Nix, NixError};

/// A `--flake REF#NAME` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeTarget {
    /// The flake reference (`.`, `github:me/cfg`, `path:/x`).
    pub flake_ref: String,
    /// The `nixosConfigurations` attribute name.
    pub name: String,
}

/// A `--flake` argument without `#NAME`.
#[derive(Debug, thiserror::Error)]
#[error("Expected FLAKE#NAME (e.g. .#office), got {0:?}")]
pub struct FlakeTargetError(pub String);

impl FlakeTarget {
    /// Parses `REF#NAME`; the name may be quoted (`.#"my host"`).
    pub fn parse(text: &str) -> Result<Self, FlakeTargetError> {
        let (flake_ref, name) = text
            .rsplit_once('#')
            .ok_or_else(|| FlakeTargetError(text.to_owned()))?;
        let name = name.trim_matches('"');
        if flake_ref.is_empty() || name.is_empty() {
            return Err(FlakeTargetError(text.to_owned()));
        }
        Ok(Self {
            flake_ref: flake_ref.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `REF#nixosConfigurations."NAME".config.<attr>`.
    pub fn config_attr(&self, attr: &str) -> String {
        format!(
            "{}#nixosConfigurations.\"{}\".config.{attr}",
            self.flake_ref, self.name
        )
    }
}

impl Nix {
    /// Builds an installable and returns its `out` paths (`nix build --no-link --json`).
    pub fn build(&self, installable: &str) -> Result<Vec<StorePath>, NixError> {
        let (command, v) = self.run_json(["build", "--no-link", "--json", installable])?;
        let bad = |reason: String| NixError::Output {
            command: command.clone(),
            reason,
        };
        let items = v.as_array().ok_or_else(|| bad("not a JSON array".into()))?;
        let mut outs = Vec::new();
        for item in items {
            let out = item
                .get("outputs")
                .and_then(|o| o.get("out"))
                .and_then(|o| o.as_str())
                .ok_or_else(|| bad(format!("no outputs.out in {item}")))?;
            outs.push(StorePath::parse(out).map_err(|e| bad(e.to_string()))?);
        }
        Ok(outs)
    }

    /// Builds the system of `target` and returns its toplevel store path.
    pub fn build_toplevel(&self, target: &FlakeTarget) -> Result<StorePath, NixError> {
        let installable = target.config_attr("system.build.toplevel");
        let mut outs = self.build(&installable)?;
        match (outs.pop(), outs.is_empty()) {
            (Some(p), true) => Ok(p),
            _ => Err(NixError::Output {
                command: format!("nix build {installable}"),
                reason: "expected exactly one output".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flake_targets() {
        let t = FlakeTarget::parse(".#office").unwrap();
        assert_eq!((t.flake_ref.as_str(), t.name.as_str()), (".", "office"));
        assert_eq!(
            t.config_attr("disko.devices"),
            ".#nixosConfigurations.\"office\".config.disko.devices"
        );
        let t = FlakeTarget::parse("github:me/cfg?dir=a#\"web 1\"").unwrap();
        assert_eq!(t.name, "web 1");
        assert!(FlakeTarget::parse(".").is_err());
        assert!(FlakeTarget::parse(".#").is_err());
        assert!(FlakeTarget::parse("#x").is_err());
    }
}
